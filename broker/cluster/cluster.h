/*
 * The cluster: several ternd nodes as one broker (protocol/PROTOCOL.md,
 * section "Routes").
 *
 * Each node listens on a route port and dials every node it learns of (the
 * seeds, resolved again periodically, so a DNS name that returns every pod
 * works; and the route URLs other nodes tell it): a full mesh, one route
 * per pair (when two form, the one dialed by the lower node id stays).
 * A route is a session connection with this module's hooks
 * (session/conn.h): the session reads, writes, blocks and closes it; this
 * module speaks the route protocol on it.
 *
 * Interest: every local subscription entering or leaving the index is
 * told here (delivery/interest.h, any loop's thread); this module keeps
 * one entry per (pattern, queue) with its local member count and sends the
 * changes to every route (RSUB / RUNSUB), and the whole table when a route
 * comes up. What a peer sends becomes, on the route's connection, one
 * subscription per remote (pattern, queue), with the route's limits and
 * the `block` policy: the router then matches it like any subscription
 * (remote members of a group after local ones), queues the MSG on the
 * route with the remote interest's id as its sid, and a full route pauses
 * the publisher as a full local `block` subscription does. A MSG read from
 * a route goes to the local subscriptions of that one (pattern, queue)
 * (router_publish_routed), never to another route.
 *
 * Every route lives on worker 0 (the loop that accepts): a publisher of
 * another loop hands its message for a route to worker 0 like any
 * cross-loop delivery, and a route's message for a subscription of
 * another loop is handed to that loop.
 */
#ifndef TERND_CLUSTER_H
#define TERND_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern_proto/buf.h"

#include "delivery/worker.h"

typedef struct cluster cluster_t;

/* A cluster for broker w->broker, its routes on worker w (worker 0);
 * registers the interest watch. 0 or a negative error. */
int cluster_create(cluster_t **out, worker_t *w);
/* Listens on cluster_port (0 there: an ephemeral port, see
 * cluster_port), starts dialing the seeds. 0 or a libuv error. */
int cluster_start(cluster_t *cl);
/*
 * Retained messages are the same on every node: a client's retained PUB is
 * sent to every route (RRETAIN), and a route that comes up gets the whole
 * store (with the time each message has left), then SYNC. A node with
 * seeds serves no client before it is in sync: fn (set before
 * cluster_start) is called once, when the first peer's SYNC arrives, or
 * after route_sync_ms without one (the first node of a cluster), or at
 * start without seeds.
 */
void cluster_on_synced(cluster_t *cl, void (*fn)(void *ud), void *ud);
bool cluster_synced(const cluster_t *cl);
/* fn is told each route that comes up or goes down ($SYS advisories). */
void cluster_on_route(cluster_t *cl,
                      void (*fn)(void *ud, bool up, const char *node,
                                 const char *addr),
                      void *ud);
/* The route port actually bound. */
int cluster_port(const cluster_t *cl);
/* Stops listening and dialing (the routes close with the connections). */
void cluster_stop(cluster_t *cl);
/* After the loop has closed every handle. */
void cluster_free(cluster_t *cl);

/* The client URLs of this node and of every node a route is up to,
 * comma-separated, for HELLO's cluster_urls (valid until the next call). */
const char *cluster_client_urls(cluster_t *cl);
/* Routes in the ready state now. */
size_t cluster_routes_up(const cluster_t *cl);
/* /routez as JSON, appended to out. */
void cluster_routez(cluster_t *cl, tp_buf_t *out);
/* The route metrics in Prometheus text, appended to out. */
void cluster_metrics(cluster_t *cl, tp_buf_t *out);

#endif
