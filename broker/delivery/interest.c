/*
 * Interest: subscriptions in and out of the subject index.
 */
#include "delivery/interest.h"

int interest_add(sublist_t *index, sub_t *s) {
  return sublist_insert(index, s->pattern, s->plen, s->queue, s->qlen, s);
}

void interest_remove(sublist_t *index, sub_t *s) {
  sublist_remove(index, s->pattern, s->plen, s->queue, s->qlen, s);
  sub_destroy(s);
}
