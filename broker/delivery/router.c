/*
 * PUB fan-out.
 *
 * The body (topic, payload, opts) is encoded once into a refcounted msgbuf;
 * each receiving subscription gets an output-queue entry holding its own
 * small head (length prefix, array header, type, sid) and a reference to
 * that body. So the payload is copied exactly once, whatever the fan-out.
 *
 * Small MSGs are the exception (outq.h): below OUTQ_CHUNK_MSG_MAX the
 * per-entry bookkeeping costs more than the bytes, so head and body are
 * copied into the receiving connection's tail chunk instead, except for
 * drop_oldest subscriptions, which must be able to evict each MSG.
 */
#include "delivery/router.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "data/outq.h"
#include "delivery/endpoint.h"
#include "delivery/handoff.h"
#include "delivery/interest.h"
#include "delivery/sub.h"
#include "delivery/worker.h"
#include "tern_proto/errors.h"
#include "tern_proto/topic.h"

int router_check(const worker_t *w, const tp_pub_t *pub, const char **msg) {
  if (pub->payload.len > w->broker->cfg.max_payload) {
    *msg = "payload too large";
    return TP_WIRE_PAYLOAD_TOO_LARGE;
  }
  /* The decoder has usually checked the topic's rules already. */
  size_t max_topic = w->broker->cfg.max_topic ? w->broker->cfg.max_topic
                                              : TP_DEFAULT_MAX_TOPIC;
  if (pub->topic_checked
          ? pub->topic.len > max_topic
          : tp_topic_validate(pub->topic.ptr, pub->topic.len, max_topic) != 0) {
    *msg = "invalid topic";
    return TP_WIRE_INVALID_TOPIC;
  }
  const publish_hook_t *hook = &w->broker->publish_hook;
  if (tp_topic_is_system(pub->topic.ptr, pub->topic.len) &&
      !(hook->prefix != NULL && pub->topic.len > hook->prefix_len &&
        memcmp(pub->topic.ptr, hook->prefix, hook->prefix_len) == 0)) {
    *msg = "permission denied: topics starting with '$' belong to the server";
    return TP_WIRE_PERMISSION;
  }
  if (pub->reply.ptr != NULL &&
      tp_topic_validate(pub->reply.ptr, pub->reply.len,
                        w->broker->cfg.max_topic) != 0) {
    *msg = "invalid reply topic";
    return TP_WIRE_INVALID_TOPIC;
  }
  return 0;
}

/* Remembers a subscription to remove once the walk is over. */
static void note_ended(worker_t *w, sub_t *s) {
  if (w->nended == w->ended_cap) {
    size_t cap = w->ended_cap ? w->ended_cap * 2 : 16;
    sub_t **a = realloc(w->ended, cap * sizeof *a);
    if (a == NULL)
      return; /* it stays ending (gets nothing more) until its conn closes */
    w->ended = a;
    w->ended_cap = cap;
  }
  s->ending = true;
  w->ended[w->nended++] = s;
}

/* Whether s may receive a message from publisher at all. */
static bool eligible(const sub_t *s, const endpoint_t *publisher) {
  if (s->ending || !s->ep->active)
    return false;
  return s->ep != publisher || publisher->echo;
}

/* pressure: only the server's budget (pending_gate.h), not the
 * subscription's own limits, refused the message. */
static void count_drop(worker_t *w, sub_t *s, bool pressure) {
  s->dropped++;
  s->dropped_unreported++;
  w->stats.msgs_dropped++;
  w->stats.drops_by_policy[s->policy & 7]++;
  if (pressure)
    w->gate->drops[s->policy & 7]++;
}

/*
 * drop_oldest evicted the oldest queued MSGs of s: the DROPPED notice goes
 * where the gap is, just before the oldest MSG of s still queued, not with
 * the message that caused the eviction, so the subscriber sees the gap
 * where it happened (PROTOCOL.md section 7.1). A notice not sent yet grows
 * instead of a second one being queued: it still sits before every queued
 * MSG of s, since evictions take the oldest and new MSGs go to the tail.
 * With nothing of s left to evict (everything in flight, or at the cap,
 * where the budget is 0, every queued MSG evicted), the notice goes to the
 * tail, just before the new message, which is the same place; it is still
 * s's notice, so the next eviction grows it. A plain DROPPED there would
 * sit behind every MSG evicted after it: at the cap, one per message,
 * queued forever to a subscriber that does not read.
 */
static void report_gap(worker_t *w, sub_t *s) {
  outq_t *q = s->out;
  outq_entry_t *next = NULL;
  if (s->q.gap_notice == NULL)
    next = sub_oldest_droppable(s);
  tp_frame_t f;
  tp_frame_init(&f, TP_DROPPED);
  f.u.dropped.sid = s->sid;
  f.u.dropped.count = s->q.gap_notice_count + s->dropped_unreported;
  tp_buf_t *b = &w->scratch;
  tp_buf_reset(b);
  if (tp_frame_encode(b, &f) != 0 || b->len > OUTQ_INLINE_MAX)
    return;
  if (s->q.gap_notice != NULL) {
    outq_rewrite_small(q, s->q.gap_notice, b->data, b->len);
  } else {
    outq_entry_t *e = outq_insert_small_before(q, next, b->data, b->len);
    /* Out of memory: deliver_here() reports it with the new message. */
    if (e == NULL)
      return;
    e->is_notice = true;
    e->pend = &s->q;
    s->q.gap_notice = e;
  }
  s->q.gap_notice_count = f.u.dropped.count;
  s->dropped_unreported = 0;
}

/*
 * Applies s's overflow policy to a message of `bytes` that does not fit
 * its limits or, under memory pressure, the server's budget (the same
 * policy, applied early: pending_gate.h). Returns true when the message
 * should still be queued.
 */
static bool make_room(worker_t *w, sub_t *s, uint64_t bytes, uint64_t budget) {
  switch (s->policy) {
  case TP_OVERFLOW_DROP_NEWEST:
    count_drop(w, s, !sub_would_overflow(s, bytes));
    return false;
  case TP_OVERFLOW_DROP_OLDEST:
    /* Entries already handed to uv_write cannot be evicted and do not
     * count here (sub_would_overflow_queued), so the newest max_msgs
     * always survive; one write in flight is the most on top. */
    while (sub_over_budget_queued(s, bytes, budget)) {
      outq_entry_t *old = sub_oldest_droppable(s);
      if (old == NULL)
        break;
      bool pressure = !sub_would_overflow_queued(s, bytes);
      outq_drop(s->out, old);
      count_drop(w, s, pressure);
    }
    if (s->dropped_unreported > 0)
      report_gap(w, s);
    return true;
  case TP_OVERFLOW_DISCONNECT:
    w->stats.slow_consumers++;
    if (!sub_would_overflow(s, bytes)) {
      w->gate->disconnects++;
      LOG(LOG_INFO,
          "conn %llu (%s): sid %llu holds %llu bytes, over its share under "
          "memory pressure, closing as a slow consumer",
          (unsigned long long)s->ep->id, s->ep->addr,
          (unsigned long long)s->sid, (unsigned long long)s->q.pending_bytes);
      s->ep->ops->fail_slow(s->ep, "slow consumer (server memory pressure)");
      return false;
    }
    LOG(LOG_INFO, "conn %llu (%s): slow consumer on sid %llu, closing",
        (unsigned long long)s->ep->id, s->ep->addr, (unsigned long long)s->sid);
    s->ep->ops->fail_slow(s->ep, "slow consumer");
    return false;
  default: /* block: queue it; the publisher stops after this frame */
    return true;
  }
}

/* Deliver here: queues body for s, a subscription of this loop, whose byte
 * limit is at most budget (the server's pressure, pending_gate.h). True
 * when it was queued (a receiver). Always inlined into fan_out and
 * deliver_pressed below, so that without pressure (budget UINT64_MAX, a
 * constant there) the budget costs the fan-out nothing. */
static inline __attribute__((always_inline)) bool
deliver_here(worker_t *w, endpoint_t *publisher, sub_t *s, msgbuf_t *body,
             uint64_t budget) {
  uint8_t head[TP_MSG_HEAD_MAX];
  size_t hl = tp_msg_head_encode(head, s->sid, body->bytes.len, body->has_opts);
  uint64_t bytes = hl + body->bytes.len;
  bool over = s->policy == TP_OVERFLOW_DROP_OLDEST
                  ? sub_over_budget_queued(s, bytes, budget)
                  : sub_over_budget(s, bytes, budget);
  if (over && !make_room(w, s, bytes, budget))
    return false;
  endpoint_t *ep = s->ep;
  if (s->dropped_unreported > 0) {
    tp_frame_t f;
    tp_frame_init(&f, TP_DROPPED);
    f.u.dropped.sid = s->sid;
    f.u.dropped.count = s->dropped_unreported;
    if (ep->ops->send_frame(ep, &f) == 0)
      s->dropped_unreported = 0;
  }
  if (bytes <= OUTQ_CHUNK_MSG_MAX && s->policy != TP_OVERFLOW_DROP_OLDEST) {
    if (outq_push_msg_chunked(s->out, head, hl, body, &s->q) != 0)
      return false;
  } else {
    outq_entry_t *e = outq_push_msg(s->out, head, hl, body);
    if (e == NULL)
      return false;
    sub_entry_queued(s, e);
  }
  s->delivered++;
  w->stats.msgs_out++;
  endpoint_want_flush(ep);
  if (s->policy == TP_OVERFLOW_BLOCK && publisher != NULL &&
      sub_full_budget(s, budget)) {
    if (!publisher->ops->is_blocked(publisher)) {
      w->stats.publisher_blocks++;
      if (!sub_is_full(s))
        w->gate->pauses++;
    }
    sub_add_waiter(s, publisher->owner);
  }
  if (s->unsub_at > 0 && s->delivered >= s->unsub_at)
    note_ended(w, s);
  return true;
}

/* Deliver there: s belongs to another owner (another loop), which queues
 * body and applies s's policy itself, through what that owner registered
 * (sub_env_t.hand_over). True when handed over. */
static bool deliver_there(worker_t *w, endpoint_t *publisher, sub_t *s,
                          msgbuf_t *body, const tp_str_t *reply) {
  return s->env->hand_over != NULL &&
         s->env->hand_over(w, s, publisher, body, reply);
}

/* Every delivery: here when this loop owns s, else handed to its owner.
 * `here` is this loop's sub_env_t, or NULL while the broker runs one loop
 * (no loop registered hand_over, so this one owns every subscription):
 * then the single loop's walk has no ownership test at all. */
static inline __attribute__((always_inline)) bool
deliver(worker_t *w, const sub_env_t *here, endpoint_t *publisher, sub_t *s,
        msgbuf_t *body, uint64_t budget) {
  if (here != NULL && __builtin_expect(s->env != here, 0))
    return deliver_there(w, publisher, s, body, NULL);
  return deliver_here(w, publisher, s, body, budget);
}

/* This loop's sub_env_t while other loops own subscriptions, else NULL
 * (deliver above). */
static inline const sub_env_t *owner_test(const worker_t *w) {
  return w->sub_env.hand_over != NULL ? &w->sub_env : NULL;
}

static bool deliver_pressed(worker_t *w, endpoint_t *publisher, sub_t *s,
                            msgbuf_t *body, uint64_t budget) {
  return deliver(w, owner_test(w), publisher, s, body, budget);
}

/*
 * One member of a queue group: from the group's cursor on, the first
 * eligible local member whose queue is not full, else the first remote
 * one (a route's: interest of another node) that is not full, else the
 * first eligible one (whose policy then decides). Advances the cursor past
 * the choice.
 */
static sub_t *pick_member(const sublist_group_t *g,
                          const endpoint_t *publisher) {
  size_t n = g->nmembers;
  if (n == 0)
    return NULL;
  size_t start = *g->cursor % n;
  sub_t *fallback = NULL, *remote = NULL;
  size_t fallback_at = 0, remote_at = 0;
  for (size_t i = 0; i < n; i++) {
    size_t at = (start + i) % n;
    sub_t *s = g->members[at];
    if (!eligible(s, publisher))
      continue;
    if (!sub_is_full(s)) {
      if (__builtin_expect(!s->remote, 1)) {
        *g->cursor = (uint32_t)(at + 1);
        return s;
      }
      if (remote == NULL) {
        remote = s;
        remote_at = at;
      }
      continue;
    }
    if (fallback == NULL) {
      fallback = s;
      fallback_at = at;
    }
  }
  if (remote != NULL) {
    *g->cursor = (uint32_t)(remote_at + 1);
    return remote;
  }
  if (fallback != NULL)
    *g->cursor = (uint32_t)(fallback_at + 1);
  return fallback;
}

/* Encodes the shared MSG body for pub. NULL when out of memory. Inlined:
 * it is most of the single loop's publish. */
static inline __attribute__((always_inline)) msgbuf_t *
encode_body(worker_t *w, const tp_pub_t *pub) {
  msgbuf_t *body = msgbuf_get(w->bufs);
  if (body == NULL)
    return NULL;
  size_t estimate = (size_t)pub->topic.len + pub->payload.len + pub->reply.len +
                    pub->headers.len + 64;
  bool has_opts = false;
  if (tp_buf_reserve(&body->bytes, estimate) != 0 ||
      tp_msg_body_encode(&body->bytes, pub->topic, pub->payload, pub->reply,
                         pub->headers, false, &has_opts) != 0) {
    msgbuf_unref(body);
    return NULL;
  }
  body->has_opts = has_opts;
  return body;
}

/*
 * Delivers body to every eligible plain subscription and one member of
 * each group; the number of receivers. With reply, each receiver may
 * answer it (allow_responses).
 */
static inline __attribute__((always_inline)) uint64_t
fan_out(worker_t *w, const sub_env_t *here, endpoint_t *publisher,
        const sublist_result_t *res, msgbuf_t *body, const tp_str_t *reply,
        uint64_t budget) {
  uint64_t n = 0;
  for (size_t i = 0; i < res->nplain; i++) {
    sub_t *s = res->plain[i];
    if (eligible(s, publisher) &&
        deliver(w, here, publisher, s, body, budget)) {
      n++;
      if (reply != NULL && s->ep->notes_requests)
        s->ep->ops->note_request(s->ep, reply->ptr, reply->len);
    }
  }
  for (size_t i = 0; i < res->ngroups; i++) {
    sub_t *s = pick_member(&res->groups[i], publisher);
    if (s != NULL && deliver(w, here, publisher, s, body, budget)) {
      n++;
      if (reply != NULL && s->ep->notes_requests)
        s->ep->ops->note_request(s->ep, reply->ptr, reply->len);
    }
  }
  return n;
}

/*
 * Several loops: one member of a queue group, as pick_member, where a
 * member of another loop is judged by what its loop last said (x_full);
 * whether it still takes messages at all is its own loop's decision.
 */
static sub_t *pick_member_multi(const sublist_group_t *g,
                                const endpoint_t *publisher,
                                const sub_env_t *here, bool local_only) {
  size_t n = g->nmembers;
  if (n == 0)
    return NULL;
  size_t start = *g->cursor % n;
  sub_t *fallback = NULL, *remote = NULL;
  size_t fallback_at = 0, remote_at = 0;
  for (size_t i = 0; i < n; i++) {
    size_t at = (start + i) % n;
    sub_t *s = g->members[at];
    if (s->remote && local_only)
      continue;
    bool full;
    if (s->env == here) {
      if (!eligible(s, publisher))
        continue;
      full = sub_is_full(s);
    } else {
      full = atomic_load_explicit(&s->x_full, memory_order_relaxed);
    }
    if (!full) {
      if (!s->remote) {
        *g->cursor = (uint32_t)(at + 1);
        return s;
      }
      if (remote == NULL) {
        remote = s;
        remote_at = at;
      }
      continue;
    }
    if (fallback == NULL) {
      fallback = s;
      fallback_at = at;
    }
  }
  if (remote != NULL) {
    *g->cursor = (uint32_t)(remote_at + 1);
    return remote;
  }
  if (fallback != NULL)
    *g->cursor = (uint32_t)(fallback_at + 1);
  return fallback;
}

/* What publishers of other loops see of s (a block subscription). */
static inline void show_pending(worker_t *w, sub_t *s) {
  atomic_store_explicit(&s->x_pending_msgs, s->q.pending_msgs,
                        memory_order_relaxed);
  atomic_store_explicit(&s->x_pending_bytes, s->q.pending_bytes,
                        memory_order_relaxed);
  if (!list_linked(&s->xpend_link))
    list_insert_tail(&w->xpend_subs, &s->xpend_link);
}

/* A group member of this loop queued a message: other loops see whether
 * it is full (cleared by router_refresh_groups once it drains). */
static inline void note_group_fill(worker_t *w, sub_t *s) {
  if (s->queue != NULL && sub_is_full(s) && !list_linked(&s->full_link)) {
    atomic_store_explicit(&s->x_full, true, memory_order_relaxed);
    list_insert_tail(&w->full_groups, &s->full_link);
  }
}

void router_refresh_groups(worker_t *w) {
  for (list_node_t *n = w->xpend_subs.next; n != &w->xpend_subs;) {
    sub_t *s = LIST_ENTRY(n, sub_t, xpend_link);
    n = n->next;
    show_pending(w, s);
    if (s->q.pending_msgs == 0)
      list_remove(&s->xpend_link);
  }
  for (list_node_t *n = w->full_groups.next; n != &w->full_groups;) {
    sub_t *s = LIST_ENTRY(n, sub_t, full_link);
    n = n->next;
    if (!sub_is_full(s)) {
      atomic_store_explicit(&s->x_full, false, memory_order_relaxed);
      list_remove(&s->full_link);
    }
  }
}

/* Several loops: the walk, with each subscription of another loop handed
 * to it (which decides its eligibility and policy there). */
static uint64_t fan_out_multi(worker_t *w, endpoint_t *publisher,
                              const sublist_result_t *res, msgbuf_t *body,
                              const tp_str_t *reply, uint64_t budget) {
  const sub_env_t *here = &w->sub_env;
  uint64_t n = 0;
  for (size_t i = 0; i < res->nplain; i++) {
    sub_t *s = res->plain[i];
    if (s->env != here) {
      if (s->ep != publisher && deliver_there(w, publisher, s, body, reply))
        n++;
      continue;
    }
    if (eligible(s, publisher) && deliver_here(w, publisher, s, body, budget)) {
      n++;
      note_group_fill(w, s);
      if (reply != NULL && s->ep->notes_requests)
        s->ep->ops->note_request(s->ep, reply->ptr, reply->len);
    }
  }
  for (size_t i = 0; i < res->ngroups; i++) {
    sub_t *s = pick_member_multi(&res->groups[i], publisher, here, false);
    if (s == NULL)
      continue;
    if (s->env != here) {
      if (deliver_there(w, publisher, s, body, reply))
        n++;
      continue;
    }
    if (deliver_here(w, publisher, s, body, budget)) {
      n++;
      note_group_fill(w, s);
      if (reply != NULL && s->ep->notes_requests)
        s->ep->ops->note_request(s->ep, reply->ptr, reply->len);
    }
  }
  return n;
}

static void remove_ended(worker_t *w) {
  for (size_t i = 0; i < w->nended; i++)
    w->ended[i]->ep->ops->remove_sub(w->ended[i]->ep, w->ended[i]);
  w->nended = 0;
}

/* router_publish with several loops: this loop's replica of the index,
 * held while the walk uses its result. */
static int publish_multi(worker_t *w, endpoint_t *publisher,
                         const tp_pub_t *pub, const tp_str_t to,
                         uint64_t *receivers) {
  index_replica_t *r = &w->broker->replicas[w->wid];
  uv_mutex_lock(&r->lock);
  const sublist_result_t *res = NULL;
  int rc = sublist_match(r->index, to.ptr, to.len, &res);
  if (rc != 0 || (res->nplain == 0 && res->ngroups == 0)) {
    uv_mutex_unlock(&r->lock);
    return rc;
  }
  msgbuf_t *body = encode_body(w, pub);
  if (body == NULL) {
    uv_mutex_unlock(&r->lock);
    return TP_ENOMEM;
  }
  uint64_t budget = pending_gate_budget(w->gate, worker_pending_total(w));
  w->nended = 0;
  *receivers =
      fan_out_multi(w, publisher, res, body,
                    pub->reply.ptr != NULL ? &pub->reply : NULL, budget);
  uv_mutex_unlock(&r->lock);
  msgbuf_unref(body);
  remove_ended(w);
  return 0;
}

/* Several loops: the pending bytes of all of them, the others' as of this
 * loop's last turn (worker.h). */
static inline uint64_t pending_now(const worker_t *w) {
  return outq_pool_pending_bytes(w->entries) + w->pending_others;
}

/* A copy of another loop's body in this loop's pool (one per message and
 * loop: consecutive items for the same body share it). */
static msgbuf_t *local_copy(worker_t *w, msgbuf_t *src) {
  if (w->xcopy_src == src && w->xcopy != NULL)
    return w->xcopy;
  msgbuf_t *b = msgbuf_get(w->bufs);
  if (b == NULL)
    return NULL;
  if (tp_buf_append(&b->bytes, src->bytes.data, src->bytes.len) != 0) {
    msgbuf_unref(b);
    return NULL;
  }
  b->has_opts = src->has_opts;
  if (w->xcopy != NULL)
    msgbuf_unref(w->xcopy);
  w->xcopy = b;
  w->xcopy_src = src;
  return b;
}

void router_take_wait(worker_t *w, const handoff_item_t *it) {
  sub_t *s = it->s;
  /* Everything the publisher sent before is taken: is s still full? */
  if (!s->dead && sub_is_full(s) &&
      sub_add_remote_waiter(s, it->from, it->conn_id) >= 0) {
    w->stats.publisher_blocks++;
    return;
  }
  handoff_notice(w, it->from, HANDOFF_UNBLOCK, s, it->conn_id);
}

void router_take_handed(worker_t *w, const handoff_item_t *it) {
  sub_t *s = it->s;
  if (s->dead || !eligible(s, NULL))
    return;
  /* A small MSG is copied into this loop's chunks as on one loop: the
   * other loop's body is only read (its reference is the other loop's,
   * dropped once this loop is past the item). One the queue keeps by
   * reference is first copied into a body of this loop. */
  msgbuf_t *body = it->body;
  uint64_t bytes = body->bytes.len + TP_MSG_HEAD_MAX;
  bool copied =
      bytes > OUTQ_CHUNK_MSG_MAX || s->policy == TP_OVERFLOW_DROP_OLDEST;
  if (copied && (body = local_copy(w, it->body)) == NULL)
    return;
  uint64_t budget = pending_gate_budget(w->gate, pending_now(w));
  w->nended = 0;
  s->out->copy_pool = w->bufs;
  bool queued = deliver_here(w, NULL, s, body, budget);
  s->out->copy_pool = NULL;
  if (!queued)
    return;
  note_group_fill(w, s);
  endpoint_t *ep = s->ep;
  if (it->reply_len > 0 && ep->notes_requests)
    ep->ops->note_request(ep, (const char *)body->bytes.data + it->reply_off,
                          it->reply_len);
  /* The publisher is on another loop: it waits there until s drains (a
   * server message's loop, the streams', may wait for room too). */
  if (s->policy == TP_OVERFLOW_BLOCK)
    show_pending(w, s);
  if (s->policy == TP_OVERFLOW_BLOCK && it->conn_id != 0 &&
      sub_full_budget(s, budget)) {
    int added = sub_add_remote_waiter(s, it->from, it->conn_id);
    if (added == 1) {
      w->stats.publisher_blocks++;
      if (!sub_is_full(s))
        w->gate->pauses++;
      handoff_notice(w, it->from, HANDOFF_BLOCK, s, it->conn_id);
    }
  }
  remove_ended(w);
}

/* The fan-out of pub to the subscriptions of topic `to` (pub's own topic
 * but for router_publish_as). */
static int publish_to(worker_t *w, endpoint_t *publisher, const tp_pub_t *pub,
                      const tp_str_t to, uint64_t *receivers) {
  if (broker_multi(w->broker))
    return publish_multi(w, publisher, pub, to, receivers);
  const sublist_result_t *res = NULL;
  int rc = sublist_match(w->broker->index, to.ptr, to.len, &res);
  if (rc != 0)
    return rc;
  if (res->nplain == 0 && res->ngroups == 0)
    return 0;
  msgbuf_t *body = encode_body(w, pub);
  if (body == NULL)
    return TP_ENOMEM;

  /* Once per PUB: the fan-out may overshoot it by one message per
   * receiver, which the next PUB sees. */
  uint64_t budget =
      pending_gate_budget(w->gate, outq_pool_pending_bytes(w->entries));
  w->nended = 0;
  /* Inlined copies of the walk: the common one (no reply topic, no
   * pressure, one loop) tests nothing for allow_responses, the budget or
   * ownership. */
  const sub_env_t *here = owner_test(w);
  uint64_t n;
  if (pub->reply.ptr != NULL)
    n = fan_out(w, here, publisher, res, body, &pub->reply, budget);
  else if (budget == UINT64_MAX && here == NULL)
    n = fan_out(w, NULL, publisher, res, body, NULL, UINT64_MAX);
  else
    n = fan_out(w, here, publisher, res, body, NULL, budget);
  msgbuf_unref(body);

  /* The walk is over: now the index may change. */
  for (size_t i = 0; i < w->nended; i++)
    w->ended[i]->ep->ops->remove_sub(w->ended[i]->ep, w->ended[i]);
  w->nended = 0;
  *receivers = n;
  return 0;
}

/* Whether s is a local subscription on exactly pattern (a route's
 * message is for the subscriptions of one pattern: cluster/route.h). */
static inline bool same_pattern(const sub_t *s, const char *pattern,
                                size_t plen) {
  return !s->remote && s->plen == plen &&
         memcmp(s->pattern, pattern, plen) == 0;
}

/* The walk for a message from a route: the local subscriptions on
 * pattern, or one local member of (pattern, queue). */
static uint64_t fan_out_routed(worker_t *w, endpoint_t *route,
                               const sublist_result_t *res, msgbuf_t *body,
                               const tp_str_t *reply, uint64_t budget,
                               const char *pattern, size_t plen,
                               const char *queue, size_t qlen) {
  const sub_env_t *here = owner_test(w);
  uint64_t n = 0;
  if (queue == NULL) {
    for (size_t i = 0; i < res->nplain; i++) {
      sub_t *s = res->plain[i];
      if (!same_pattern(s, pattern, plen))
        continue;
      if (here != NULL && s->env != here) {
        if (deliver_there(w, route, s, body, reply))
          n++;
        continue;
      }
      if (eligible(s, route) && deliver_here(w, route, s, body, budget)) {
        n++;
        if (reply != NULL && s->ep->notes_requests)
          s->ep->ops->note_request(s->ep, reply->ptr, reply->len);
      }
    }
    return n;
  }
  for (size_t i = 0; i < res->ngroups; i++) {
    const sublist_group_t *g = &res->groups[i];
    if (g->name_len != qlen || memcmp(g->name, queue, qlen) != 0 ||
        g->nmembers == 0)
      continue;
    const sub_t *first = g->members[0];
    if (first->plen != plen || memcmp(first->pattern, pattern, plen) != 0)
      continue;
    sub_t *s = pick_member_multi(g, route, here, true);
    if (s == NULL)
      break;
    if (here != NULL && s->env != here) {
      if (deliver_there(w, route, s, body, reply))
        n++;
      continue;
    }
    if (deliver_here(w, route, s, body, budget)) {
      n++;
      if (here != NULL)
        note_group_fill(w, s);
      if (reply != NULL && s->ep->notes_requests)
        s->ep->ops->note_request(s->ep, reply->ptr, reply->len);
    }
    break; /* one member of the one group */
  }
  return n;
}

/* DROPPED with count 0 (an unknown number lost upstream) to s, a
 * subscription of this loop; drops counted but not reported yet are
 * covered by it. */
static bool lost_here(worker_t *w, sub_t *s) {
  (void)w;
  if (s->ending || !s->ep->active)
    return false;
  tp_frame_t f;
  tp_frame_init(&f, TP_DROPPED);
  f.u.dropped.sid = s->sid;
  f.u.dropped.count = 0;
  if (s->ep->ops->send_frame(s->ep, &f) != 0)
    return false;
  s->dropped_unreported = 0;
  return true;
}

void router_take_lost(worker_t *w, const handoff_item_t *it) {
  if (!it->s->dead)
    lost_here(w, it->s);
}

static size_t lost_one(worker_t *w, const sub_env_t *here, sub_t *s) {
  if (here != NULL && s->env != here) {
    handoff_notice(w, s->env->worker->wid, HANDOFF_LOST, s, 0);
    return 1;
  }
  return lost_here(w, s) ? 1 : 0;
}

size_t router_report_loss(worker_t *w, const char *pattern, size_t plen,
                          const char *queue, size_t qlen) {
  bool multi = broker_multi(w->broker);
  index_replica_t *r = multi ? &w->broker->replicas[w->wid] : NULL;
  sublist_t *index = multi ? r->index : w->broker->index;
  if (multi)
    uv_mutex_lock(&r->lock);
  /* The pattern read as a topic matches the subscriptions on exactly it
   * (its wildcards match themselves), filtered by same_pattern. */
  const sublist_result_t *res = NULL;
  size_t n = 0;
  const sub_env_t *here = owner_test(w);
  if (sublist_match(index, pattern, plen, &res) == 0) {
    if (queue == NULL) {
      for (size_t i = 0; i < res->nplain; i++) {
        sub_t *s = res->plain[i];
        if (same_pattern(s, pattern, plen))
          n += lost_one(w, here, s);
      }
    } else {
      for (size_t i = 0; i < res->ngroups; i++) {
        const sublist_group_t *g = &res->groups[i];
        if (g->name_len != qlen || memcmp(g->name, queue, qlen) != 0)
          continue;
        for (size_t j = 0; j < g->nmembers; j++) {
          sub_t *s = g->members[j];
          if (same_pattern(s, pattern, plen))
            n += lost_one(w, here, s);
        }
      }
    }
  }
  if (multi)
    uv_mutex_unlock(&r->lock);
  return n;
}

int router_publish_routed(worker_t *w, endpoint_t *route, const tp_pub_t *pub,
                          const char *pattern, size_t plen, const char *queue,
                          size_t qlen, uint64_t *receivers) {
  *receivers = 0;
  w->stats.msgs_in++;
  w->stats.bytes_in += pub->payload.len;
  bool multi = broker_multi(w->broker);
  index_replica_t *r = multi ? &w->broker->replicas[w->wid] : NULL;
  sublist_t *index = multi ? r->index : w->broker->index;
  if (multi)
    uv_mutex_lock(&r->lock);
  const sublist_result_t *res = NULL;
  int rc = sublist_match(index, pub->topic.ptr, pub->topic.len, &res);
  if (rc != 0 || (res->nplain == 0 && res->ngroups == 0)) {
    if (multi)
      uv_mutex_unlock(&r->lock);
    return rc;
  }
  msgbuf_t *body = encode_body(w, pub);
  if (body == NULL) {
    if (multi)
      uv_mutex_unlock(&r->lock);
    return TP_ENOMEM;
  }
  uint64_t budget =
      pending_gate_budget(w->gate, multi ? worker_pending_total(w)
                                         : outq_pool_pending_bytes(w->entries));
  w->nended = 0;
  *receivers = fan_out_routed(w, route, res, body,
                              pub->reply.ptr != NULL ? &pub->reply : NULL,
                              budget, pattern, plen, queue, qlen);
  if (multi)
    uv_mutex_unlock(&r->lock);
  msgbuf_unref(body);
  remove_ended(w);
  return 0;
}

int router_publish(worker_t *w, endpoint_t *publisher, const tp_pub_t *pub,
                   uint64_t *receivers) {
  *receivers = 0;
  w->stats.msgs_in++;
  w->stats.bytes_in += pub->payload.len;
  const publish_hook_t *hook = &w->broker->publish_hook;
  int kept = hook->on_publish != NULL
                 ? hook->on_publish(hook->ctx, w, publisher, pub)
                 : PUBLISH_HOOK_NONE;
  if (kept == PUBLISH_HOOK_TAKEN) {
    *receivers = 1;
    return 0;
  }
  int rc = publish_to(w, publisher, pub, pub->topic, receivers);
  if (kept == PUBLISH_HOOK_KEPT)
    (*receivers)++;
  return rc;
}

int router_publish_as(worker_t *w, const char *to, size_t len,
                      const tp_pub_t *pub, uint64_t *receivers, bool *full) {
  *receivers = 0;
  *full = false;
  tp_str_t t = {to, (uint32_t)len};
  int rc = publish_to(w, NULL, pub, t, receivers);
  if (rc == 0)
    *full = !router_has_room(w, to, len);
  return rc;
}

/* Several loops: whether s, a `block` subscription of another loop, is
 * full as its loop last said, counting what this loop handed to it and it
 * has not taken yet as one message each (as handoff.c's publishers do).
 * Atomics only: nothing of the other loop's own is read. A push consumer
 * that finds no room tries again on its loop's next turn (at the latest
 * the streams' tick), as on one loop. */
static bool remote_full(worker_t *w, sub_t *s) {
  spsc_t *q = &w->out[s->env->worker->wid];
  uint64_t inflight =
      q->tail - atomic_load_explicit(&q->consumed, memory_order_relaxed);
  return atomic_load_explicit(&s->x_pending_msgs, memory_order_relaxed) +
                 inflight >=
             s->max_msgs ||
         atomic_load_explicit(&s->x_pending_bytes, memory_order_relaxed) >=
             s->max_bytes;
}

static bool full_for(worker_t *w, sub_t *s) {
  if (s->policy != TP_OVERFLOW_BLOCK)
    return false;
  if (!broker_multi(w->broker) || s->env == &w->sub_env)
    return sub_is_full(s);
  return remote_full(w, s);
}

static bool has_room_in(worker_t *w, const sublist_result_t *res) {
  if (res->nplain == 0 && res->ngroups == 0)
    return false;
  for (size_t i = 0; i < res->nplain; i++)
    if (full_for(w, res->plain[i]))
      return false;
  for (size_t i = 0; i < res->ngroups; i++) {
    const sublist_group_t *g = &res->groups[i];
    bool room = false;
    for (size_t j = 0; j < g->nmembers && !room; j++)
      room = !full_for(w, g->members[j]);
    if (!room && g->nmembers > 0)
      return false;
  }
  return true;
}

bool router_has_room(worker_t *w, const char *to, size_t len) {
  const sublist_result_t *res = NULL;
  if (broker_multi(w->broker)) {
    /* This loop's replica, held while its subscriptions are read. */
    index_replica_t *r = &w->broker->replicas[w->wid];
    uv_mutex_lock(&r->lock);
    bool room =
        sublist_match(r->index, to, len, &res) == 0 && has_room_in(w, res);
    uv_mutex_unlock(&r->lock);
    return room;
  }
  if (sublist_match(w->broker->index, to, len, &res) != 0)
    return false;
  return has_room_in(w, res);
}

/* The retained body of pub (NULL: delete) from pool. 0 or TP_ENOMEM. */
static int retain_locked(worker_t *w, const tp_pub_t *pub, msgbuf_pool_t *pool,
                         msgbuf_t **out) {
  (void)w;
  *out = NULL;
  if (pub->payload.len == 0)
    return 0;
  msgbuf_t *body = msgbuf_get(pool);
  if (body == NULL)
    return TP_ENOMEM;
  bool has_opts = false;
  if (tp_msg_body_encode(&body->bytes, pub->topic, pub->payload, pub->reply,
                         pub->headers, true, &has_opts) != 0) {
    msgbuf_unref(body);
    return TP_ENOMEM;
  }
  body->has_opts = has_opts;
  *out = body;
  return 0;
}

int router_retain(worker_t *w, const tp_pub_t *pub, const char **msg) {
  int rc = router_retain_routed(w, pub, msg);
  const broker_t *b = w->broker;
  if (rc == 0 && b->watch != NULL && b->watch->retained != NULL)
    b->watch->retained(b->watch_ctx, pub);
  return rc;
}

int router_retain_routed(worker_t *w, const tp_pub_t *pub, const char **msg) {
  msgbuf_t *body = NULL;
  /* Several loops share the store: under its lock, with bodies from its
   * own pool. */
  bool multi = broker_multi(w->broker);
  if (multi)
    uv_mutex_lock(&w->broker->retained_lock);
  int rc =
      retain_locked(w, pub, multi ? w->broker->retained_bufs : w->bufs, &body);
  if (rc == 0)
    rc = retained_put(w->broker->retained, pub->topic.ptr, pub->topic.len, body,
                      pub->ttl_ms);
  if (multi)
    uv_mutex_unlock(&w->broker->retained_lock);
  switch (rc) {
  case 0:
    return 0;
  case TERND_ERETAINED_TOPICS:
    *msg = "retained store full: too many retained topics";
    return TP_WIRE_PAYLOAD_TOO_LARGE;
  case TERND_ERETAINED_BYTES:
    *msg = "retained store full: too many retained bytes";
    return TP_WIRE_PAYLOAD_TOO_LARGE;
  default:
    return rc;
  }
}

typedef struct retained_ctx {
  worker_t *w;
  sub_t *sub;
} retained_ctx_t;

static void deliver_one_retained(void *ud, msgbuf_t *body) {
  retained_ctx_t *ctx = ud;
  if (!eligible(ctx->sub, NULL))
    return;
  if (broker_multi(ctx->w->broker)) {
    /* The store's body is shared: this loop's queue gets a copy. */
    worker_t *w = ctx->w;
    w->xcopy_src = NULL;
    msgbuf_t *copy = local_copy(w, body);
    w->xcopy_src = NULL;
    if (copy != NULL)
      deliver_here(w, NULL, ctx->sub, copy,
                   pending_gate_budget(w->gate, worker_pending_total(w)));
    return;
  }
  if (eligible(ctx->sub, NULL))
    deliver_pressed(ctx->w, NULL, ctx->sub, body,
                    pending_gate_budget(ctx->w->gate, outq_pool_pending_bytes(
                                                          ctx->w->entries)));
}

uint64_t router_deliver_retained(worker_t *w, sub_t *s) {
  if (s->queue != NULL)
    return 0;
  retained_ctx_t ctx = {w, s};
  w->nended = 0;
  bool multi = broker_multi(w->broker);
  if (multi)
    uv_mutex_lock(&w->broker->retained_lock);
  uint64_t visited = retained_match(w->broker->retained, s->pattern, s->plen,
                                    deliver_one_retained, &ctx);
  if (multi)
    uv_mutex_unlock(&w->broker->retained_lock);
  /* UNSUB max_msgs cannot have been set yet, but keep the rule in one
   * place: ended subscriptions go after the walk. */
  for (size_t i = 0; i < w->nended; i++)
    w->ended[i]->ep->ops->remove_sub(w->ended[i]->ep, w->ended[i]);
  w->nended = 0;
  return visited;
}
