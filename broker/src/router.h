/*
 * PUB fan-out: from one decoded PUB to a MSG queued on every matching
 * subscription (one member per queue group), with each subscription's
 * overflow policy applied.
 */
#ifndef TERND_ROUTER_H
#define TERND_ROUTER_H

#include <stdint.h>

#include "tern_proto/frame.h"

struct conn;
struct server;

/*
 * Checks a PUB against the server's rules. 0 when it may be routed, or the
 * wire ERR code (13 payload too large, 4 invalid topic or reply, 3 server
 * topic) with *msg set to its text.
 */
int router_check(const struct server *srv, const tp_pub_t *pub,
                 const char **msg);

/*
 * Routes a checked PUB from publisher (NULL for messages the server makes
 * itself, which never block). *receivers gets the number of subscriptions
 * the message was queued to. Slow consumers are only marked for closing
 * and subscriptions that reached UNSUB max_msgs are removed after the
 * walk, so the match result stays valid throughout.
 * 0 or TP_ENOMEM.
 */
int router_publish(struct server *srv, struct conn *publisher,
                   const tp_pub_t *pub, uint64_t *receivers);

#endif
