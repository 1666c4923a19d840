/*
 * The server's own topics under $SYS: periodic statistics
 * ($SYS.server.stats, the /varz document) and advisories, each a JSON
 * object: $SYS.conn.connect, $SYS.conn.disconnect, $SYS.conn.slow_consumer,
 * $SYS.auth.failure, $SYS.server.reload.
 *
 * Advisories are raised in the middle of other work (a fan-out that finds a
 * slow consumer, a close path), where publishing would re-enter the router.
 * So they are queued (bounded: extra ones are counted and dropped) and
 * published from a zero-delay timer, outside any fan-out.
 */
#ifndef TERND_SYSEVENTS_H
#define TERND_SYSEVENTS_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct server;

/* Starts the stats timer (sys_interval_ms, 0 = no stats). 0 or -1. */
int sysevents_start(struct server *srv);
/* Closes the timers; queued advisories are dropped. */
void sysevents_stop(struct server *srv);

void sysevents_connect(struct server *srv, struct conn *c);
void sysevents_disconnect(struct server *srv, struct conn *c);
void sysevents_slow_consumer(struct server *srv, struct conn *c);
void sysevents_auth_failure(struct server *srv, struct conn *c);
/* $SYS.server.reload {"ok":bool}: tells operators (and tests) that a
 * SIGHUP has been handled. */
void sysevents_reload(struct server *srv, int ok);
/* $SYS.route.up / $SYS.route.down {"node","addr","server_id"}: a route to
 * another node of the cluster came up or went down. */
void sysevents_route(struct server *srv, bool up, const char *node,
                     const char *addr);
/* A streams advisory ($SYS.stream.full, $SYS.stream.consumer.
 * max_deliveries): topic (static) and its JSON body. srv is a server_t. */
void sysevents_stream(void *srv, const char *topic, const char *json,
                      size_t len);

#endif
