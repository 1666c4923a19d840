/*
 * A connection's authentication and permissions (declared in conn.h).
 */
#include "session/conn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/list.h"
#include "base/log.h"
#include "data/hashmap.h"
#include "tern_proto/errors.h"
#include "tern_tls/tls.h"

/* Denials logged per connection: one line per this many milliseconds. */
#define DENY_LOG_INTERVAL_MS 1000

static _Thread_local char denial_text[64 + TP_DEFAULT_MAX_TOPIC];

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
  worker_t *w = c->w;
  uint64_t now = uv_now(w->loop);
  int n = len > INT32_MAX ? INT32_MAX : (int)len;
  w->ops.perm_denials++;
  if (sub)
    w->ops.perm_denials_sub++;
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
           c->auth_user ? " for user " : "", log_field(c->auth_user));
  return false;
}

const char *conn_auth_denial(void) {
  return denial_text;
}

/* ---- allow_responses ----------------------------------------------------- */

/* Reply topics a connection may still answer on. */
#define RESP_TRACK_MAX 1024u

typedef struct resp_entry {
  list_node_t link; /* the table's list, oldest (first to expire) first */
  uint64_t expires; /* loop time, ms */
  uint32_t left;    /* replies still allowed */
  uint32_t len;
  char topic[];
} resp_entry_t;

struct conn_responses {
  hashmap_t *map;   /* topic -> resp_entry_t (key inside the entry) */
  list_node_t fifo; /* every entry, by expiry (one ttl per table) */
  size_t n;
  uint32_t max;
  uint64_t ttl_ms;
};

static void resp_drop(conn_responses_t *r, resp_entry_t *e) {
  hashmap_remove(r->map, e->topic, e->len);
  list_remove(&e->link);
  r->n--;
  free(e);
}

static void resp_expire(conn_responses_t *r, uint64_t now) {
  while (!list_empty(&r->fifo)) {
    resp_entry_t *e = LIST_ENTRY(list_first(&r->fifo), resp_entry_t, link);
    if (e->expires > now)
      break;
    resp_drop(r, e);
  }
}

static conn_responses_t *resp_create(const auth_user_t *u) {
  conn_responses_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  if (hashmap_create(&r->map, 0) != 0) {
    free(r);
    return NULL;
  }
  list_init(&r->fifo);
  r->max = u->resp_max;
  r->ttl_ms = u->resp_ttl_ms;
  return r;
}

static void resp_free(conn_responses_t *r) {
  if (r == NULL)
    return;
  while (!list_empty(&r->fifo))
    resp_drop(r, LIST_ENTRY(list_first(&r->fifo), resp_entry_t, link));
  hashmap_destroy(r->map);
  free(r);
}

void conn_auth_note_request_slow(conn_t *c, const char *reply, size_t len) {
  conn_responses_t *r = c->responses;
  uint64_t now = uv_now(c->w->loop);
  resp_expire(r, now);
  resp_entry_t *e = hashmap_get(r->map, reply, len);
  if (e != NULL) {
    /* The same reply topic again: a new request, a fresh allowance. */
    list_remove(&e->link);
  } else {
    if (r->n == RESP_TRACK_MAX)
      resp_drop(r, LIST_ENTRY(list_first(&r->fifo), resp_entry_t, link));
    e = malloc(sizeof *e + len);
    if (e == NULL)
      return; /* the reply will be refused: no worse than no tracking */
    memcpy(e->topic, reply, len);
    e->len = (uint32_t)len;
    if (hashmap_put(r->map, e->topic, len, e) != 0) {
      free(e);
      return;
    }
    r->n++;
  }
  e->left = r->max;
  e->expires = now + r->ttl_ms;
  list_insert_tail(&r->fifo, &e->link);
}

/* True (and one reply used) when topic is the reply topic of a request c
 * received, still answerable. */
static bool resp_take(conn_t *c, const char *topic, size_t len) {
  conn_responses_t *r = c->responses;
  if (r == NULL || auth_pub_denied_explicitly(c->perms, topic, len))
    return false;
  resp_expire(r, uv_now(c->w->loop));
  resp_entry_t *e = hashmap_get(r->map, topic, len);
  if (e == NULL)
    return false;
  if (--e->left == 0)
    resp_drop(r, e);
  c->w->ops.resp_allowed++;
  return true;
}

bool conn_auth_pub_denied(conn_t *c, const char *topic, size_t len) {
  if (resp_take(c, topic, len))
    return true;
  return conn_auth_deny(c, false, topic, len);
}

/* ---- login --------------------------------------------------------------- */

static void limits_of(const config_t *cfg, auth_limits_t *lim) {
  lim->queue_max = cfg->auth_queue;
  lim->max_wait_ms = cfg->connect_timeout_ms;
  lim->fail_limit = cfg->auth_fail_limit;
  lim->fail_window_ms = cfg->auth_fail_window_ms;
  lim->cache_size = cfg->auth_cache_size;
  lim->cache_ttl_ms = cfg->auth_cache_ttl_ms;
}

void conn_auth_reconfigure(worker_t *w) {
  if (w->auth != NULL) {
    auth_limits_t lim;
    limits_of(&w->broker->cfg, &lim);
    auth_verifier_configure(w->auth, &lim);
  }
}

/*
 * A refused login. A verdict is logged and announced ($SYS.auth.failure);
 * the cheap refusals a flood causes (blocked address, full queue) are
 * not, one by one: the verifier logs a blocking once, and a full queue is
 * logged at most every 10 s with the count.
 */
static void refuse(conn_t *c, int code, const char *why, bool quiet) {
  worker_t *w = c->w;
  if (code == TP_WIRE_AUTH)
    w->ops.auth_failures++;
  LOG_CONN(quiet ? LOG_DEBUG : LOG_WARN, c->id, c->addr, c->name,
           "authentication failed%s%s: %s", c->auth_user ? " for user " : "",
           log_field(c->auth_user), why);
  if (!quiet)
    CONN_EVENT(w, auth_failure, c);
  conn_fail(c, code, code == TP_WIRE_AUTH ? "authentication failed" : why);
}

static void log_busy(worker_t *w) {
  static _Thread_local uint64_t last_ms; /* per worker */
  static _Thread_local bool logged;
  uint64_t now = uv_now(w->loop);
  if (logged && now - last_ms < 10000)
    return;
  logged = true;
  last_ms = now;
  auth_stats_t st;
  auth_verifier_stats(w->auth, &st);
  LOG(LOG_WARN,
      "login queue full (%llu waiting): CONNECTs refused with ERR 11, %llu "
      "so far",
      (unsigned long long)st.queued, (unsigned long long)st.busy);
}

/* Good credentials: the user's rights. 0, or -1 (failed, closing). */
static int grant(conn_t *c, auth_db_t *db, const auth_user_t *user) {
  if (user == NULL) {
    free(c->auth_user); /* the shared token names nobody */
    c->auth_user = NULL;
    return 0;
  }
  c->perms_db = auth_db_ref(db);
  c->perms = user;
  if (user->resp_max > 0 && (c->responses = resp_create(user)) == NULL) {
    conn_fail(c, TP_WIRE_PROTOCOL, "out of memory");
    return -1;
  }
  c->ep.notes_requests = c->responses != NULL;
  return 0;
}

/* The verdict, on the loop. */
static void on_verdict(void *data, auth_verdict_t verdict, auth_db_t *db,
                       const auth_user_t *user) {
  conn_t *c = data;
  c->auth_job = NULL;
  c->authenticating = false;
  if (c->state != CONN_HANDSHAKE)
    return; /* it closed (shutdown) while we were busy */
  if (verdict == AUTH_GONE) {
    LOG(LOG_DEBUG, "conn %llu (%s): left before its login was verified",
        (unsigned long long)c->id, c->addr);
    conn_abort(c);
    return;
  }
  if (verdict != AUTH_GOOD) {
    refuse(c, TP_WIRE_AUTH, "wrong credentials", false);
    return;
  }
  if (grant(c, db, user) == 0) {
    conn_connected(c);
    /* The frames that came after CONNECT, then the socket again. */
    conn_resume(c);
  }
}

/*
 * Is the client still there? The connection is not read while its login
 * waits (frames after CONNECT stay in the socket), so a close shows only
 * in the connection's state as the transport sees it (for TCP, anything
 * but ESTABLISHED): then nobody will read the answer.
 */
static bool still_there(void *data) {
  conn_t *c = data;
  return transport_connected(c->tr);
}

static bool has_nul(tp_str_t s) {
  return s.ptr != NULL && memchr(s.ptr, '\0', s.len) != NULL;
}

static bool peer_has_san(void *ctx, const char *san) {
  return ttls_conn_peer_has_san(ctx, san);
}

/* Mutual TLS and no credentials: the user the verified client certificate
 * is bound to (cert_subject, cert_san), or NULL. */
static const auth_user_t *cert_user(conn_t *c, const tp_connect_t *req) {
  struct ttls_conn *tls = transport_tls(c->tr);
  char subject[512];
  if (tls == NULL || !c->w->broker->cfg.tls_verify || req->user.ptr != NULL ||
      req->pass.ptr != NULL || req->token.ptr != NULL ||
      !ttls_conn_peer_subject(tls, subject, sizeof subject))
    return NULL;
  return auth_db_find_cert(c->w->broker->cfg.users, subject, peer_has_san, tls);
}

int conn_auth_begin(conn_t *c, const tp_connect_t *req) {
  worker_t *w = c->w;
  const auth_user_t *bound = cert_user(c, req);
  if (bound != NULL) {
    c->auth_user = strdup(bound->name);
    if (c->auth_user == NULL)
      return -1;
    LOG_CONN(LOG_DEBUG, c->id, c->addr, c->name,
             "client certificate logs in as %s", log_field(bound->name));
    if (grant(c, w->broker->cfg.users, bound) == 0) {
      conn_connected(c);
      if (!list_linked(&c->resume_link))
        list_insert_tail(&w->resume_list, &c->resume_link);
    }
    return 0;
  }
  if (req->user.ptr != NULL) {
    c->auth_user = strndup(req->user.ptr, req->user.len);
    if (c->auth_user == NULL)
      return -1;
  }
  /* C strings would cut them there: "pw\0junk" must not pass as "pw". */
  if (has_nul(req->user) || has_nul(req->pass) || has_nul(req->token)) {
    refuse(c, TP_WIRE_AUTH, "NUL byte in credentials", false);
    return 0;
  }
  if (w->auth == NULL) {
    auth_limits_t lim;
    limits_of(&w->broker->cfg, &lim);
    if (auth_verifier_create(w->loop, &lim, &w->auth) != 0)
      return -1;
  }
  struct sockaddr_storage peer;
  bool have_peer = transport_peer(c->tr, &peer) == 0;
  const auth_user_t *user = NULL;
  c->authenticating = true;
  auth_start_t r = auth_verify_start(
      w->auth, &c->auth_job, w->broker->cfg.users, w->broker->cfg.auth_token,
      req->user.ptr, req->user.len, req->pass.ptr, req->pass.len,
      req->token.ptr, req->token.len, have_peer ? &peer : NULL, &user,
      on_verdict, still_there, c);
  if (r == AUTH_PENDING) {
    /* The queue is bounded, so the wait is: a login waiting behind
     * others' hashes must not time out for it. */
    transport_timer_stop(c->tr);
    return 0;
  }
  c->auth_job = NULL;
  c->authenticating = false;
  switch (r) {
  case AUTH_ACCEPT:
    /* We are inside the frame loop: it goes on with the frames after
     * CONNECT; reading starts again from the before-sleep hook. */
    if (grant(c, w->broker->cfg.users, user) == 0) {
      conn_connected(c);
      if (!list_linked(&c->resume_link))
        list_insert_tail(&w->resume_list, &c->resume_link);
    }
    return 0;
  case AUTH_REJECT:
    refuse(c, TP_WIRE_AUTH, "wrong credentials", false);
    return 0;
  case AUTH_BLOCKED:
    refuse(c, TP_WIRE_AUTH, "too many failed logins from this address", true);
    return 0;
  case AUTH_BUSY:
    log_busy(w);
    refuse(c, TP_WIRE_TOO_MANY_CONNS, "busy verifying logins, retry later",
           true);
    return 0;
  default:
    return -1;
  }
}

void conn_auth_release(conn_t *c) {
  log_suppressed(c);
  if (c->auth_job != NULL) {
    auth_verify_cancel(c->auth_job);
    c->auth_job = NULL;
  }
  resp_free(c->responses);
  c->responses = NULL;
  c->ep.notes_requests = false;
  auth_db_unref(c->perms_db);
  c->perms_db = NULL;
  c->perms = NULL;
  free(c->auth_user);
  c->auth_user = NULL;
}
