/*
 * Subscriptions: limits, pending accounting and blocked publishers.
 */
#include "delivery/sub.h"

#include "delivery/endpoint.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "data/outq.h"
#include "tern_proto/errors.h"

/* The queue drained to its low-water mark while publishers wait. */
static void on_drained(pending_t *p) {
  sub_release_waiters((sub_t *)((char *)p - offsetof(sub_t, q)));
}

/* A limit from the SUB options: 0 means the server default, and the
 * server's value caps whatever the client asked for. */
static uint64_t capped(uint64_t asked, uint64_t cap) {
  return asked == 0 || asked > cap ? cap : asked;
}

/*
 * The pattern and the queue name live in the same block as the struct:
 * one allocation per subscription instead of two or three.
 */
sub_t *sub_create(struct conn *conn, struct endpoint *ep, outq_t *out,
                  const sub_env_t *env, const tp_sub_t *req,
                  uint64_t max_msgs_cap, uint64_t max_bytes_cap) {
  size_t plen = req->pattern.len;
  size_t qlen = req->queue.ptr != NULL ? req->queue.len : 0;
  sub_t *s = calloc(1, sizeof *s + plen + 1 + (qlen > 0 ? qlen + 1 : 0));
  if (s == NULL)
    return NULL;
  s->conn = conn;
  s->ep = ep;
  s->remote = ep != NULL && ep->route;
  s->out = out;
  s->env = env;
  s->sid = req->sid;
  for (int i = 0; i < 8; i++)
    s->sid_key[i] = (uint8_t)(req->sid >> (8 * i));
  s->pattern = (char *)(s + 1);
  memcpy(s->pattern, req->pattern.ptr, plen);
  s->plen = plen;
  if (qlen > 0) {
    s->queue = s->pattern + plen + 1;
    memcpy(s->queue, req->queue.ptr, qlen);
    s->qlen = qlen;
  }
  s->max_msgs = capped(req->max_msgs, max_msgs_cap);
  s->max_bytes = capped(req->max_bytes, max_bytes_cap);
  s->policy =
      req->overflow == TP_OVERFLOW_UNSET ? TP_OVERFLOW_BLOCK : req->overflow;
  /* Blocked publishers resume once the queue is at most half full in both
   * messages and bytes, so they do not flap on and off with every message
   * written. */
  pending_init(&s->q, s->max_msgs / 2, s->max_bytes / 2);
  list_init(&s->stalled_link);
  list_init(&s->grave_link);
  list_init(&s->full_link);
  list_init(&s->xpend_link);
  atomic_init(&s->x_full, false);
  atomic_init(&s->x_pending_msgs, 0);
  atomic_init(&s->x_pending_bytes, 0);
  return s;
}

void sub_retire(sub_t *s) {
  /* Pending entries are still sent, but no longer count against s. */
  pending_forget(&s->q);
  if (s->q.chunk_runs > 0)
    outq_detach_pending(s->out, &s->q);
  sub_release_waiters(s);
  free(s->waiters);
  s->waiters = NULL;
  s->waiters_cap = 0;
  free(s->rwaiters);
  s->rwaiters = NULL;
  s->rwaiters_cap = 0;
  list_remove(&s->full_link);
  list_remove(&s->xpend_link);
  s->dead = true;
}

void sub_destroy(sub_t *s) {
  sub_retire(s);
  free(s);
}

/* The first waiter (of this loop or another) arrived. */
static void first_waiter(sub_t *s) {
  s->q.drained = on_drained;
  s->times_blocked++;
  s->blocked_since = uv_now(s->env->loop);
  list_insert_tail(s->env->stalled, &s->stalled_link);
}

static void no_waiter_left(sub_t *s) {
  if (s->nwaiters == 0 && s->nrwaiters == 0) {
    s->q.drained = NULL;
    list_remove(&s->stalled_link);
  }
}

int sub_add_remote_waiter(sub_t *s, int wid, uint64_t conn_id) {
  for (size_t i = 0; i < s->nrwaiters; i++) {
    if (s->rwaiters[i].wid == wid && s->rwaiters[i].conn_id == conn_id)
      return 0;
  }
  if (s->nrwaiters == s->rwaiters_cap) {
    size_t cap = s->rwaiters_cap ? s->rwaiters_cap * 2 : 4;
    remote_waiter_t *a = realloc(s->rwaiters, cap * sizeof *a);
    if (a == NULL)
      return TP_ENOMEM;
    s->rwaiters = a;
    s->rwaiters_cap = cap;
  }
  s->rwaiters[s->nrwaiters++] = (remote_waiter_t){conn_id, wid};
  if (s->nrwaiters + s->nwaiters == 1)
    first_waiter(s);
  return 1;
}

void sub_remove_remote_waiter(sub_t *s, int wid, uint64_t conn_id) {
  for (size_t i = 0; i < s->nrwaiters; i++) {
    if (s->rwaiters[i].wid == wid && s->rwaiters[i].conn_id == conn_id) {
      s->rwaiters[i] = s->rwaiters[--s->nrwaiters];
      break;
    }
  }
  no_waiter_left(s);
}

int sub_add_waiter(sub_t *s, struct conn *publisher) {
  for (size_t i = 0; i < s->nwaiters; i++) {
    if (s->waiters[i] == publisher)
      return 0;
  }
  if (s->nwaiters == s->waiters_cap) {
    size_t cap = s->waiters_cap ? s->waiters_cap * 2 : 4;
    struct conn **w = realloc(s->waiters, cap * sizeof *w);
    if (w == NULL)
      return TP_ENOMEM;
    s->waiters = w;
    s->waiters_cap = cap;
  }
  if (s->env->block(publisher, s) != 0)
    return TP_ENOMEM;
  s->waiters[s->nwaiters++] = publisher;
  if (s->nwaiters + s->nrwaiters == 1)
    first_waiter(s);
  return 0;
}

void sub_remove_waiter(sub_t *s, struct conn *publisher) {
  for (size_t i = 0; i < s->nwaiters; i++) {
    if (s->waiters[i] == publisher) {
      s->waiters[i] = s->waiters[--s->nwaiters];
      break;
    }
  }
  no_waiter_left(s);
}

void sub_release_waiters(sub_t *s) {
  /* unblock only schedules the resume, so the array is stable. */
  for (size_t i = 0; i < s->nwaiters; i++)
    s->env->unblock(s->waiters[i], s);
  s->nwaiters = 0;
  for (size_t i = 0; i < s->nrwaiters; i++)
    s->env->unblock_remote(s, s->rwaiters[i].wid, s->rwaiters[i].conn_id);
  s->nrwaiters = 0;
  s->q.drained = NULL;
  list_remove(&s->stalled_link);
}
