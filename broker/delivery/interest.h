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

/* s (made by sub_create) enters the index: messages match it from now on.
 * 0, or TP_ENOMEM (s is not in the index; the caller still owns it). */
int interest_add(broker_t *b, sub_t *s);
/* s leaves the index and is freed (sub_destroy; with several loops once no
 * queue can name it, delivery/handoff.h): UNSUB, UNSUB max_msgs reached,
 * or its connection closing. */
void interest_remove(broker_t *b, sub_t *s);

#endif
