/*
 * A connection's authentication and permissions: the glue between conn.c
 * and auth.c. CONNECT is verified on the thread pool while the connection
 * reads nothing more; the verdict comes back on the loop.
 */
#ifndef TERND_CONN_AUTH_H
#define TERND_CONN_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "delivery/worker.h"
#include "session/auth.h"
#include "session/conn.h"
#include "tern_proto/frame.h"

/* True when the server asks for credentials (users or a token). */
static inline bool conn_auth_required(const worker_t *w) {
  return w->broker->cfg.users != NULL || w->broker->cfg.auth_token[0] != '\0';
}

/*
 * Starts verifying req's credentials (copied). A token, a remembered login
 * or a refusal is decided at once; a password waits for its hash, with the
 * connection in HANDSHAKE processing nothing and the connect timeout
 * stopped (the verifier's queue is bounded, so is the wait), until the
 * verdict: OK and its buffered frames, or ERR 2 and close. A full queue is
 * ERR 11 (retry later). Credentials holding a NUL byte are ERR 2. 0, or -1
 * (no memory: the caller fails the connection).
 */
int conn_auth_begin(conn_t *c, const tp_connect_t *req);
/* From the close path: forgets a verification in progress, drops rights. */
void conn_auth_release(conn_t *c);

/* A reload changed the auth_* limits; remembered logins are forgotten. */
void conn_auth_reconfigure(worker_t *w);

/* Permission checks. A refusal is counted (by operation), logged (at most
 * one line per connection per second, with the count of those not logged)
 * and worded for the ERR 3 message (conn_auth_denial). */
bool conn_auth_deny(conn_t *c, bool sub, const char *topic, size_t len);
/* PUB refused by the lists: still allowed when topic is the reply topic of
 * a request c received and may answer (allow_responses); else a refusal as
 * conn_auth_deny. */
bool conn_auth_pub_denied(conn_t *c, const char *topic, size_t len);
static inline bool conn_may_publish(conn_t *c, const char *topic, size_t len) {
  if (c->perms == NULL || auth_may_publish(c->perms, topic, len))
    return true;
  return conn_auth_pub_denied(c, topic, len);
}

/*
 * allow_responses: a MSG carrying reply topic reply was queued for c. Only
 * connections of users with allow_responses keep a table (at most 1,024
 * reply topics, the oldest forgotten first); for the others this is one
 * test.
 */
typedef struct conn_responses conn_responses_t;
void conn_auth_note_request_slow(conn_t *c, const char *reply, size_t len);
static inline void conn_auth_note_request(conn_t *c, const char *reply,
                                          size_t len) {
  if (c->responses != NULL)
    conn_auth_note_request_slow(c, reply, len);
}
static inline bool conn_may_subscribe(conn_t *c, const char *pattern,
                                      size_t len) {
  if (c->perms == NULL || auth_may_subscribe(c->perms, pattern, len))
    return true;
  return conn_auth_deny(c, true, pattern, len);
}
/* The ERR 3 message of the last refusal ("permission denied: publish to
 * 'a.b'"). Valid until the next refusal (one loop thread). */
const char *conn_auth_denial(void);

#endif
