/*
 * A connection's authentication (see conn_auth.h).
 */
#include "conn_auth.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sysevents.h"
#include "tern_proto/errors.h"

/* Denials logged per connection: one line per this many milliseconds. */
#define DENY_LOG_INTERVAL_MS 1000

static char denial_text[64 + TP_DEFAULT_MAX_TOPIC];

/* Says how many denials were not logged since the last line, if any. */
static void log_suppressed(conn_t *c) {
  if (c->deny_suppressed > 0) {
    LOG_CONN(LOG_WARN, c->id, c->addr, c->name,
             "%llu more permission denial%s in the last %d ms not logged",
             (unsigned long long)c->deny_suppressed,
             c->deny_suppressed == 1 ? "" : "s", DENY_LOG_INTERVAL_MS);
    c->deny_suppressed = 0;
  }
}

/*
 * The topic is a valid topic or pattern by now (checked before the
 * permissions), so it holds no control characters and is bounded by
 * max_topic: it goes into the log line and the ERR message as it is.
 * The message names the frame for people; clients must not need it
 * (protocol/PROTOCOL.md).
 */
bool conn_auth_deny(conn_t *c, bool sub, const char *topic, size_t len) {
  server_t *srv = c->srv;
  uint64_t now = uv_now(srv->loop);
  int n = len > INT32_MAX ? INT32_MAX : (int)len;
  srv->ops.perm_denials++;
  if (sub)
    srv->ops.perm_denials_sub++;
  snprintf(denial_text, sizeof denial_text, "permission denied: %s '%.*s'",
           sub ? "subscribe to" : "publish to", n, topic);
  if (c->deny_logged_ms != 0 &&
      now - c->deny_logged_ms < DENY_LOG_INTERVAL_MS) {
    c->deny_suppressed++;
    return false;
  }
  log_suppressed(c);
  c->deny_logged_ms = now != 0 ? now : 1;
  LOG_CONN(LOG_WARN, c->id, c->addr, c->name, "%s%s%s", denial_text,
           c->auth_user ? " for user " : "", c->auth_user ? c->auth_user : "");
  return false;
}

const char *conn_auth_denial(void) {
  return denial_text;
}

/* The verdict, on the loop. */
static void on_verdict(void *data, bool ok, auth_db_t *db,
                       const auth_user_t *user) {
  conn_t *c = data;
  c->auth_job = NULL;
  c->authenticating = false;
  if (c->state != CONN_HANDSHAKE)
    return; /* it closed (timeout, shutdown) while we were busy */
  server_t *srv = c->srv;
  if (!ok) {
    srv->ops.auth_failures++;
    LOG_CONN(LOG_WARN, c->id, c->addr, c->name, "authentication failed%s%s",
             c->auth_user ? " for user " : "", log_field(c->auth_user));
    sysevents_auth_failure(srv, c);
    conn_fail(c, TP_WIRE_AUTH, "authentication failed");
    return;
  }
  if (user != NULL) {
    c->perms_db = auth_db_ref(db);
    c->perms = user;
  } else {
    free(c->auth_user); /* the shared token names nobody */
    c->auth_user = NULL;
  }
  conn_connected(c);
  /* The frames that came after CONNECT, then the socket again. */
  conn_resume(c);
}

int conn_auth_begin(conn_t *c, const tp_connect_t *req) {
  server_t *srv = c->srv;
  if (req->user.ptr != NULL) {
    c->auth_user = strndup(req->user.ptr, req->user.len);
    if (c->auth_user == NULL)
      return -1;
  }
  c->authenticating = true;
  int rc = auth_verify_start(srv->loop, &c->auth_job, srv->cfg.users,
                             srv->cfg.auth_token, req->user.ptr, req->user.len,
                             req->pass.ptr, req->pass.len, req->token.ptr,
                             req->token.len, on_verdict, c);
  if (rc != 0) {
    c->authenticating = false;
    return rc;
  }
  return 0;
}

void conn_auth_release(conn_t *c) {
  log_suppressed(c);
  if (c->auth_job != NULL) {
    auth_verify_cancel(c->auth_job);
    c->auth_job = NULL;
  }
  auth_db_unref(c->perms_db);
  c->perms_db = NULL;
  c->perms = NULL;
  free(c->auth_user);
  c->auth_user = NULL;
}
