/*
 * Interest: subscriptions in and out of the subject index.
 */
#include "delivery/interest.h"

#include "delivery/endpoint.h"
#include "delivery/handoff.h"
#include "tern_proto/errors.h"

static void remove_from(index_replica_t *r, const sub_t *s) {
  uv_mutex_lock(&r->lock);
  sublist_remove(r->index, s->pattern, s->plen, s->queue, s->qlen, (void *)s);
  uv_mutex_unlock(&r->lock);
}

static inline void tell_added(broker_t *b, const sub_t *s) {
  if (b->watch != NULL && !s->remote)
    b->watch->added(b->watch_ctx, s);
}

static inline void tell_removed(broker_t *b, const sub_t *s) {
  if (b->watch != NULL && !s->remote)
    b->watch->removed(b->watch_ctx, s);
}

int interest_add(broker_t *b, sub_t *s) {
  if (!broker_multi(b)) {
    int rc =
        sublist_insert(b->index, s->pattern, s->plen, s->queue, s->qlen, s);
    if (rc == 0)
      tell_added(b, s);
    return rc;
  }
  worker_t *w = s->env->worker;
  s->self = s;
  if (hashmap_put(w->live_subs, &s->self, sizeof s->self, s) != 0)
    return TP_ENOMEM;
  for (int i = 0; i < b->nworkers; i++) {
    index_replica_t *r = &b->replicas[i];
    uv_mutex_lock(&r->lock);
    int rc =
        sublist_insert(r->index, s->pattern, s->plen, s->queue, s->qlen, s);
    uv_mutex_unlock(&r->lock);
    if (rc != 0) {
      while (i-- > 0)
        remove_from(&b->replicas[i], s);
      hashmap_remove(w->live_subs, &s->self, sizeof s->self);
      return TP_ENOMEM;
    }
  }
  tell_added(b, s);
  return 0;
}

void interest_remove(broker_t *b, sub_t *s) {
  tell_removed(b, s);
  if (!broker_multi(b)) {
    sublist_remove(b->index, s->pattern, s->plen, s->queue, s->qlen, s);
    sub_destroy(s);
    return;
  }
  for (int i = 0; i < b->nworkers; i++)
    remove_from(&b->replicas[i], s);
  worker_t *w = s->env->worker;
  hashmap_remove(w->live_subs, &s->self, sizeof s->self);
  /* No loop can name s in a new item now; one may have named it already. */
  sub_retire(s);
  handoff_bury(w, s);
}
