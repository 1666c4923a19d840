/*
 * Hand-over between event loops (see handoff.h).
 */
#include "delivery/handoff.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "data/msgbuf.h"
#include "delivery/endpoint.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"

int handoff_init(worker_t *w, uv_async_cb wake_cb) {
  int n = w->broker->nworkers;
  w->out = calloc((size_t)n, sizeof *w->out);
  w->out_dirty = calloc((size_t)n, sizeof *w->out_dirty);
  w->grave_marks = calloc((size_t)n, sizeof *w->grave_marks);
  if (w->out == NULL || w->out_dirty == NULL || w->grave_marks == NULL)
    return TP_ENOMEM;
  for (int i = 0; i < n; i++) {
    if (spsc_init(&w->out[i], sizeof(handoff_item_t)) != 0)
      return TP_ENOMEM;
  }
  w->wake.data = w;
  if (uv_async_init(w->loop, &w->wake, wake_cb) != 0)
    return TP_ENOMEM;
  return 0;
}

static void drop_item(void *item, void *ud) {
  (void)ud;
  handoff_item_t *it = item;
  if (it->kind == HANDOFF_MSG || it->kind == HANDOFF_ERR)
    msgbuf_unref(it->body);
}

void handoff_drop_all(worker_t *w) {
  if (w->out == NULL)
    return;
  /* Nothing runs any more: consume what nobody took, then reclaim. */
  for (int i = 0; i < w->broker->nworkers; i++) {
    spsc_t *q = &w->out[i];
    spsc_publish(q);
    while (spsc_pop(q) != NULL)
      ;
    spsc_consumed(q);
    spsc_reclaim(q, drop_item, NULL);
  }
}

void handoff_free(worker_t *w) {
  if (w->out == NULL)
    return;
  for (int i = 0; i < w->broker->nworkers; i++)
    spsc_free(&w->out[i]);
  free(w->out);
  free(w->out_dirty);
  w->out = NULL;
  list_node_t *n;
  while ((n = list_first(&w->graveyard)) != NULL ||
         (n = list_first(&w->grave_closing)) != NULL) {
    list_remove(n);
    free(LIST_ENTRY(n, sub_t, grave_link));
  }
  free(w->grave_marks);
  w->grave_marks = NULL;
  if (w->xcopy != NULL)
    msgbuf_unref(w->xcopy);
  w->xcopy = NULL;
}

static handoff_item_t *push(worker_t *w, int to) {
  handoff_item_t *it = spsc_push(&w->out[to]);
  if (it != NULL) {
    w->out_dirty[to] = true;
    w->out_any = true;
  }
  return it;
}

/* A message for s, a `block` subscription of loop `to`: the publisher
 * stops here when what `to` holds for s (as of its last turn) and what
 * this loop handed to `to` and `to` has not taken yet (every item in the
 * queue counted as one for s: an upper bound, no shared counter to write
 * per message) reach a limit. */
static void count_blocking(worker_t *from, int to, sub_t *s,
                           endpoint_t *publisher, msgbuf_t *body) {
  spsc_t *q = &from->out[to];
  uint64_t inflight =
      q->tail - atomic_load_explicit(&q->consumed, memory_order_relaxed);
  uint64_t m =
      atomic_load_explicit(&s->x_pending_msgs, memory_order_relaxed) + inflight;
  if (m < s->max_msgs &&
      atomic_load_explicit(&s->x_pending_bytes, memory_order_relaxed) +
              inflight * (body->bytes.len + HANDOFF_HEAD_BYTES) <
          s->max_bytes)
    return;
  if (from->sub_env.block_remote != NULL &&
      from->sub_env.block_remote(publisher->owner, s, to) == 1) {
    handoff_item_t *it = push(from, to);
    if (it == NULL)
      return;
    it->kind = HANDOFF_WAIT;
    it->from = (uint8_t)from->wid;
    it->s = s;
    it->body = NULL;
    it->conn_id = publisher->id;
    it->reply_off = it->reply_len = 0;
  }
}

bool handoff_hand_over(worker_t *from, sub_t *s, endpoint_t *publisher,
                       msgbuf_t *body, const tp_str_t *reply) {
  worker_t *owner = s->env->worker;
  handoff_item_t *it = push(from, owner->wid);
  if (it == NULL)
    return false;
  msgbuf_ref(body);
  it->kind = HANDOFF_MSG;
  it->from = (uint8_t)from->wid;
  it->s = s;
  it->body = body;
  it->conn_id = publisher != NULL ? publisher->id : 0;
  if (publisher != NULL)
    publisher->handed_to |= 1ull << owner->wid;
  it->reply_off = it->reply_len = 0;
  if (reply != NULL && reply->len > 0) {
    /* Where the reply topic sits in the encoded body, for the owner's
     * allow_responses (it has the bytes, not the decoded PUB). */
    const uint8_t *at = NULL;
    const uint8_t *b = body->bytes.data;
    size_t blen = body->bytes.len;
    for (size_t i = 0; i + reply->len <= blen; i++) {
      if (memcmp(b + i, reply->ptr, reply->len) == 0) {
        at = b + i;
        break;
      }
    }
    if (at != NULL) {
      it->reply_off = (uint32_t)(at - b);
      it->reply_len = reply->len;
    }
  }
  /* Visible at once (the owner may retire s as soon as the walk lets go
   * of the index, and frees it after its next drain: that drain must see
   * this); the owner is woken once per turn, in handoff_flush. */
  if (s->policy == TP_OVERFLOW_BLOCK && publisher != NULL)
    count_blocking(from, owner->wid, s, publisher, body);
  atomic_store_explicit(&from->out[owner->wid].published,
                        from->out[owner->wid].tail, memory_order_release);
  return true;
}

void handoff_notice(worker_t *w, int to, int kind, sub_t *s, uint64_t conn_id) {
  handoff_item_t *it = push(w, to);
  if (it == NULL) {
    LOG(LOG_WARN, "out of memory telling loop %d about a blocked publisher",
        to);
    return;
  }
  it->kind = (uint8_t)kind;
  it->from = (uint8_t)w->wid;
  it->s = s;
  it->body = NULL;
  it->conn_id = conn_id;
  it->reply_off = it->reply_len = 0;
}

void handoff_err(worker_t *w, int to, uint64_t conn_id, const char *text) {
  msgbuf_t *b = msgbuf_get(w->bufs);
  if (b == NULL || tp_buf_append(&b->bytes, text, strlen(text) + 1) != 0) {
    if (b != NULL)
      msgbuf_unref(b);
    return;
  }
  handoff_item_t *it = push(w, to);
  if (it == NULL) {
    msgbuf_unref(b);
    return;
  }
  it->kind = HANDOFF_ERR;
  it->from = (uint8_t)w->wid;
  it->s = NULL;
  it->body = b;
  it->conn_id = conn_id;
  it->reply_off = it->reply_len = 0;
}

void handoff_unblock_remote(sub_t *s, int wid, uint64_t conn_id) {
  handoff_notice(s->env->worker, wid, HANDOFF_UNBLOCK, s, conn_id);
}

void handoff_flush(worker_t *w) {
  int n = w->broker->nworkers;
  if (w->out_any) {
    w->out_any = false;
    for (int i = 0; i < n; i++) {
      if (!w->out_dirty[i])
        continue;
      w->out_dirty[i] = false;
      spsc_publish(&w->out[i]);
      if (!w->stopping)
        uv_async_send(&w->broker->workers[i]->wake);
    }
  }
  for (int i = 0; i < n; i++) {
    if (spsc_unreclaimed(&w->out[i]) > 0)
      spsc_reclaim(&w->out[i], drop_item, NULL);
  }
}

/* Every queue into w is past the marks taken when the closing generation
 * of retired subscriptions closed. */
static bool past_marks(worker_t *w) {
  broker_t *b = w->broker;
  for (int i = 0; i < b->nworkers; i++) {
    if (i != w->wid &&
        spsc_head(&b->workers[i]->out[w->wid]) < w->grave_marks[i])
      return false;
  }
  return true;
}

/* Subscriptions retired in two generations: the closing one is freed once
 * every queue into w is past the items that existed when it closed (no
 * item naming them can come later: they were out of every index); then
 * the open one closes, with the marks of now. */
static void bury_due(worker_t *w) {
  broker_t *b = w->broker;
  if (!list_empty(&w->grave_closing) && past_marks(w)) {
    list_node_t *n;
    while ((n = list_first(&w->grave_closing)) != NULL) {
      list_remove(n);
      free(LIST_ENTRY(n, sub_t, grave_link));
    }
  }
  if (list_empty(&w->grave_closing) && !list_empty(&w->graveyard)) {
    list_node_t open;
    list_move_all(&open, &w->graveyard);
    list_node_t *n;
    while ((n = list_first(&open)) != NULL) {
      list_remove(n);
      list_insert_tail(&w->grave_closing, n);
    }
    for (int i = 0; i < b->nworkers; i++) {
      if (i != w->wid)
        w->grave_marks[i] = spsc_written(&b->workers[i]->out[w->wid]);
    }
  }
}

void handoff_drain(worker_t *w, const handoff_ops_t *ops) {
  broker_t *b = w->broker;
  for (int i = 0; i < b->nworkers; i++) {
    if (i == w->wid)
      continue;
    spsc_t *q = &b->workers[i]->out[w->wid];
    handoff_item_t *it;
    bool any = false;
    w->xcopy_src = NULL;
    while ((it = spsc_pop(q)) != NULL) {
      any = true;
      switch (it->kind) {
      case HANDOFF_MSG:
        ops->msg(w, it);
        break;
      case HANDOFF_BLOCK:
        ops->block(w, it);
        break;
      case HANDOFF_UNBLOCK:
        ops->unblock(w, it);
        break;
      case HANDOFF_FORGET:
        ops->forget(w, it);
        break;
      case HANDOFF_WAIT:
        ops->wait(w, it);
        break;
      case HANDOFF_FENCE:
        /* Everything before it is taken (queued here): answer. */
        handoff_notice(w, it->from, HANDOFF_FENCE_ACK, NULL, it->conn_id);
        break;
      case HANDOFF_FENCE_ACK:
        ops->fence_ack(w, it);
        break;
      case HANDOFF_ERR:
        ops->err(w, it);
        break;
      case HANDOFF_LOST:
        if (ops->lost != NULL)
          ops->lost(w, it);
        break;
      default:
        break;
      }
    }
    w->xcopy_src = NULL;
    if (any)
      spsc_consumed(q);
  }
  bury_due(w);
}

void handoff_bury(worker_t *w, sub_t *s) {
  list_insert_tail(&w->graveyard, &s->grave_link);
}
