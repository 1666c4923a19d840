/*
 * Interest: the one way into and out of the subject index.
 *
 * Every subscribe goes through interest_add, every unsubscribe and every
 * subscription of a closing connection through interest_remove; nothing
 * else writes the index (the router only matches it). This is the choke
 * point where interest is told to others: with several event loops, to
 * every loop's replica of the index (worker.h), each under its own lock,
 * so a subscription is matched by every loop as soon as its SUB is
 * answered; later to the routes of a cluster.
 */
#ifndef TERND_INTEREST_H
#define TERND_INTEREST_H

#include "delivery/sub.h"
#include "delivery/worker.h"

/*
 * A cluster watches local interest: every subscription of a connection
 * that is not a route (endpoint_t.route) is told as it enters and as it
 * leaves the index, on the loop that owns it (any thread with several
 * loops: the watcher locks). Route subscriptions (remote interest) are
 * not told, so interest travels one hop. Registered in broker_t.watch.
 */
typedef struct interest_watch {
  void (*added)(void *ctx, const sub_t *s);
  void (*removed)(void *ctx, const sub_t *s);
  /* A client's PUB with `retain` was stored (router_retain): the other
   * nodes store it too. Not for what a route brought. */
  void (*retained)(void *ctx, const tp_pub_t *pub);
} interest_watch_t;

/* s (made by sub_create) enters the index: messages match it from now on.
 * 0, or TP_ENOMEM (s is not in the index; the caller still owns it). */
int interest_add(broker_t *b, sub_t *s);
/* s leaves the index and is freed (sub_destroy; with several loops once no
 * queue can name it, delivery/handoff.h): UNSUB, UNSUB max_msgs reached,
 * or its connection closing. */
void interest_remove(broker_t *b, sub_t *s);

#endif
