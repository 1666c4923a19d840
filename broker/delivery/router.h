/*
 * PUB fan-out: from one decoded PUB to a MSG queued on every matching
 * subscription (one member per queue group), with each subscription's
 * overflow policy applied.
 */
#ifndef TERND_ROUTER_H
#define TERND_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "tern_proto/frame.h"

struct endpoint;
struct worker;

/*
 * Checks a PUB against the server's rules. 0 when it may be routed, or the
 * wire ERR code (13 payload too large, 4 invalid topic or reply, 3 server
 * topic) with *msg set to its text.
 */
int router_check(const struct worker *w, const tp_pub_t *pub, const char **msg);

/*
 * Routes a checked PUB from publisher (NULL for messages the server makes
 * itself, which never block). *receivers gets the number of subscriptions
 * the message was queued to. Slow consumers are only marked for closing
 * and subscriptions that reached UNSUB max_msgs are removed after the
 * walk, so the match result stays valid throughout.
 * 0 or TP_ENOMEM.
 */
int router_publish(struct worker *w, struct endpoint *publisher,
                   const tp_pub_t *pub, uint64_t *receivers);

/*
 * A message that came over a route (cluster/), for this node's interest
 * (pattern, queue): delivered to the local subscriptions on exactly
 * pattern (queue NULL), or to one local member of the group (pattern,
 * queue); never to another route (one hop). route is the publisher: a full
 * `block` subscription blocks it (it stops reading). 0 or TP_ENOMEM.
 */
int router_publish_routed(struct worker *w, struct endpoint *route,
                          const tp_pub_t *pub, const char *pattern, size_t plen,
                          const char *queue, size_t qlen, uint64_t *receivers);

/*
 * The streams' delivery (stream/): pub (its topic, payload, reply,
 * headers) goes to the subscriptions of topic `to` instead of pub's own,
 * as a server message (never blocking anyone, no publish hook). *full is
 * set when a `block` subscription it reached is now full (the consumer
 * then waits: router_has_room). 0 or TP_ENOMEM.
 */
int router_publish_as(struct worker *w, const char *to, size_t len,
                      const tp_pub_t *pub, uint64_t *receivers, bool *full);
/* True when topic `to` has a subscription and no `block` one (or every
 * member of a group) is full: the streams' pacing of a push consumer. */
bool router_has_room(struct worker *w, const char *to, size_t len);

/*
 * A PUB with `retain`: stores (or, with an empty payload, deletes) the
 * topic's retained message. 0, or the wire ERR code for the publisher
 * with *msg set: 13 when a retained cap refuses it (the live delivery has
 * happened regardless).
 */
int router_retain(struct worker *w, const tp_pub_t *pub, const char **msg);
/* The same for a retained message another node sent (a cluster's route):
 * stored, and not told to the cluster again. */
int router_retain_routed(struct worker *w, const tp_pub_t *pub,
                         const char **msg);

struct sub;
/*
 * Queues every retained message that s's pattern matches, marked
 * `retained`, through s's pending queue and policy (never blocking anyone:
 * there is no publisher to pause). Plain subscriptions only; call it right
 * after s enters the index, so live messages follow. Returns the trie
 * nodes visited.
 */
uint64_t router_deliver_retained(struct worker *w, struct sub *s);

struct handoff_item;
/*
 * Several loops: a message another loop handed over for a subscription of
 * this one (delivery/handoff.h): queued through its policy here; a full
 * `block` subscription records the publisher (of the other loop) as a
 * waiter and sends it BLOCK.
 */
void router_take_handed(struct worker *w, const struct handoff_item *it);
/* Several loops: a publisher of another loop stopped for a subscription
 * of this one (WAIT): recorded as its waiter while the subscription is
 * full, else told at once to go on (UNBLOCK). */
void router_take_wait(struct worker *w, const struct handoff_item *it);
/* HANDOFF_LOST: another loop's route went down (router_report_loss). */
void router_take_lost(struct worker *w, const struct handoff_item *it);

/*
 * A route went down and messages it carried for this node's interest
 * (pattern, queue) may have been lost on the way (PROTOCOL.md section
 * 9.4): every local subscription on exactly pattern (queue NULL), or every
 * local member of the group (pattern, queue), is sent DROPPED with count
 * 0 (an unknown number), those of other loops through their loop.
 * The number of subscriptions told.
 */
size_t router_report_loss(struct worker *w, const char *pattern, size_t plen,
                          const char *queue, size_t qlen);
/* Several loops: queue-group members marked full that have drained are
 * marked not full again, for the other loops' choice. Once per turn. */
void router_refresh_groups(struct worker *w);

#endif
