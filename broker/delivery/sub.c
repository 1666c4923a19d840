/*
 * Subscriptions: limits, pending accounting and blocked publishers.
 */
#include "delivery/sub.h"

#include <stdlib.h>
#include <string.h>

#include "data/outq.h"
#include "tern_proto/errors.h"

/* A limit from the SUB options: 0 means the server default, and the
 * server's value caps whatever the client asked for. */
static uint64_t capped(uint64_t asked, uint64_t cap) {
  return asked == 0 || asked > cap ? cap : asked;
}

/*
 * The pattern and the queue name live in the same block as the struct:
 * one allocation per subscription instead of two or three.
 */
sub_t *sub_create(struct conn *conn, outq_t *out, const sub_env_t *env,
                  const tp_sub_t *req, uint64_t max_msgs_cap,
                  uint64_t max_bytes_cap) {
  size_t plen = req->pattern.len;
  size_t qlen = req->queue.ptr != NULL ? req->queue.len : 0;
  sub_t *s = calloc(1, sizeof *s + plen + 1 + (qlen > 0 ? qlen + 1 : 0));
  if (s == NULL)
    return NULL;
  s->conn = conn;
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
  list_init(&s->pending);
  list_init(&s->stalled_link);
  return s;
}

void sub_destroy(sub_t *s) {
  /* Pending entries are still sent, but no longer count against s. */
  list_node_t *n;
  while ((n = list_first(&s->pending)) != NULL) {
    outq_entry_t *e = LIST_ENTRY(n, outq_entry_t, sub_link);
    e->sub = NULL;
    list_remove(n);
  }
  if (s->chunk_runs > 0)
    outq_detach_sub(s->out, s);
  if (s->gap_notice != NULL) /* still sent, as a plain control frame */
    s->gap_notice->sub = NULL;
  sub_release_waiters(s);
  free(s->waiters);
  free(s);
}

void sub_entry_queued(sub_t *s, outq_entry_t *e) {
  e->sub = s;
  list_insert_tail(&s->pending, &e->sub_link);
  if (s->first_queued == NULL)
    s->first_queued = e; /* all before it are in flight */
  s->pending_msgs++;
  s->pending_bytes += e->bytes;
}

/*
 * The low-water mark: blocked publishers resume once the queue is at most
 * half full in both messages and bytes, so they do not flap on and off
 * with every message written.
 */
static bool below_low_water(const sub_t *s) {
  return s->pending_msgs <= s->max_msgs / 2 &&
         s->pending_bytes <= s->max_bytes / 2;
}

void sub_entry_released(sub_t *s, outq_entry_t *e, bool written) {
  (void)written;
  if (s->first_queued == e)
    s->first_queued = sub_next_pending(s, e);
  list_remove(&e->sub_link);
  e->sub = NULL;
  s->pending_msgs--;
  s->pending_bytes -= e->bytes;
  if (s->nwaiters > 0 && below_low_water(s))
    sub_release_waiters(s);
}

void sub_run_released(sub_t *s, uint64_t msgs, uint64_t bytes) {
  s->chunk_runs--;
  s->pending_msgs -= msgs;
  s->pending_bytes -= bytes;
  if (s->nwaiters > 0 && below_low_water(s))
    sub_release_waiters(s);
}

outq_entry_t *sub_next_pending(const sub_t *s, outq_entry_t *e) {
  list_node_t *n = e->sub_link.next;
  return n == &s->pending ? NULL : LIST_ENTRY(n, outq_entry_t, sub_link);
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
  if (s->nwaiters == 1) {
    s->times_blocked++;
    s->blocked_since = uv_now(s->env->loop);
    list_insert_tail(s->env->stalled, &s->stalled_link);
  }
  return 0;
}

void sub_remove_waiter(sub_t *s, struct conn *publisher) {
  for (size_t i = 0; i < s->nwaiters; i++) {
    if (s->waiters[i] == publisher) {
      s->waiters[i] = s->waiters[--s->nwaiters];
      break;
    }
  }
  if (s->nwaiters == 0)
    list_remove(&s->stalled_link);
}

void sub_release_waiters(sub_t *s) {
  /* unblock only schedules the resume, so the array is stable. */
  for (size_t i = 0; i < s->nwaiters; i++)
    s->env->unblock(s->waiters[i], s);
  s->nwaiters = 0;
  list_remove(&s->stalled_link);
}
