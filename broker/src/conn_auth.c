/*
 * A connection's authentication (see conn_auth.h).
 */
#include "conn_auth.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sysevents.h"
#include "tern_proto/errors.h"

bool conn_auth_deny_count(conn_t *c) {
  c->srv->ops.perm_denials++;
  return false;
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
