/*
 * A connection's authentication and permissions: the glue between conn.c
 * and auth.c. CONNECT is verified on the thread pool while the connection
 * reads nothing more; the verdict comes back on the loop.
 */
#ifndef TERND_CONN_AUTH_H
#define TERND_CONN_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "conn.h"
#include "server.h"
#include "tern_proto/frame.h"

/* True when the server asks for credentials (users or a token). */
static inline bool conn_auth_required(const server_t *srv) {
  return srv->cfg.users != NULL || srv->cfg.auth_token[0] != '\0';
}

/*
 * Starts verifying req's credentials (copied). The connection stays in
 * HANDSHAKE, processing nothing, until the verdict: OK and its buffered
 * frames, or ERR 2 and close. The connect timeout still runs. 0 or an
 * error (the caller fails the connection).
 */
int conn_auth_begin(conn_t *c, const tp_connect_t *req);
/* From the close path: forgets a verification in progress, drops rights. */
void conn_auth_release(conn_t *c);

/* Permission checks. A refusal is counted (by operation), logged (at most
 * one line per connection per second, with the count of those not logged)
 * and worded for the ERR 3 message (conn_auth_denial). */
bool conn_auth_deny(conn_t *c, bool sub, const char *topic, size_t len);
static inline bool conn_may_publish(conn_t *c, const char *topic, size_t len) {
  if (c->perms == NULL || auth_may_publish(c->perms, topic, len))
    return true;
  return conn_auth_deny(c, false, topic, len);
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
