/*
 * Interest: the one way into and out of the subject index.
 *
 * Every subscribe goes through interest_add, every unsubscribe and every
 * subscription of a closing connection through interest_remove; nothing
 * else writes the index (the router only matches it). This is the choke
 * point where interest is told to others later: to the routes of a
 * cluster, or to the index replicas of other event loops.
 */
#ifndef TERND_INTEREST_H
#define TERND_INTEREST_H

#include "data/sublist.h"
#include "delivery/sub.h"

/* s (made by sub_create) enters the index: messages match it from now on.
 * 0, or TP_ENOMEM (s is not in the index; the caller still owns it). */
int interest_add(sublist_t *index, sub_t *s);
/* s leaves the index and is freed (sub_destroy): UNSUB, UNSUB max_msgs
 * reached, or its connection closing. */
void interest_remove(sublist_t *index, sub_t *s);

#endif
