/*
 * Chunks: small frames packed into one output-queue entry (see
 * outq.h).
 */
#include "data/outq.h"

#include <stdlib.h>
#include <string.h>

#include "data/pending.h"
#include "tern_proto/errors.h"

_Static_assert(OUTQ_CHUNK_CAP <= 65536u, "a run counts msgs in 16 bits");
_Static_assert(OUTQ_CHUNK_CAP % _Alignof(outq_run_t) == 0,
               "runs sit at the end of data");
_Static_assert(offsetof(outq_chunk_t, data) % _Alignof(outq_run_t) == 0,
               "runs sit at the end of data");
_Static_assert(OUTQ_CHUNK_MSG_MAX + 2 * sizeof(outq_run_t) <= OUTQ_CHUNK_CAP,
               "an empty chunk takes any small frame");

void outq_chunk_pool_destroy(outq_chunk_pool_t *p) {
  outq_chunk_t *c = p->free_list;
  while (c != NULL) {
    outq_chunk_t *next = c->next_free;
    free(c);
    c = next;
  }
  p->free_list = NULL;
  p->nfree = 0;
}

void outq_chunk_put(outq_chunk_pool_t *p, outq_chunk_t *c) {
  p->live--;
  if (p->nfree >= OUTQ_CHUNK_KEEP_BYTES / OUTQ_CHUNK_CAP) {
    free(c);
    return;
  }
  c->next_free = p->free_list;
  p->free_list = c;
  p->nfree++;
}

/* q's tail entry when it is a chunk that may still grow, else NULL. */
static inline outq_chunk_t *open_tail(outq_t *q) {
  if (q->entries.prev == &q->entries)
    return NULL;
  outq_entry_t *e = LIST_ENTRY(q->entries.prev, outq_entry_t, link);
  return e->is_chunk && !e->inflight ? outq_chunk_of(e) : NULL;
}

/* A new, empty chunk appended to q as its tail entry, or NULL. */
static outq_chunk_t *chunk_open(outq_t *q) {
  outq_chunk_pool_t *p = q->chunks;
  outq_chunk_t *c = p->free_list;
  if (c != NULL) {
    p->free_list = c->next_free;
    p->nfree--;
  } else {
    c = malloc(sizeof *c + OUTQ_CHUNK_CAP);
    if (c == NULL)
      return NULL;
  }
  p->live++;
  memset(&c->e, 0, offsetof(outq_entry_t, head));
  list_init(&c->e.sub_link);
  c->e.is_chunk = true;
  c->nruns = 0;
  c->nmsgs = 0;
  c->next_free = NULL;
  list_insert_tail(&q->entries, &c->e.link);
  q->nentries++;
  return c;
}

/*
 * Whether a small MSG that does not fit the tail should open a new chunk.
 * Yes when the tail is a chunk (full, or in flight): a stream of small
 * frames. Otherwise (an empty queue, or a tail entry: a large MSG, a
 * drop_oldest MSG, a large control frame) small MSGs get entries until
 * OUTQ_CHUNK_STREAK of them in a row show a stream. A chunk would hold
 * OUTQ_CHUNK_CAP for a few dozen bytes where frames alternate, or where one PUB
 * fans out to many idle connections (each would take a chunk for one message);
 * so a chunk wastes at most its capacity per OUTQ_CHUNK_STREAK small MSGs, and
 * the pending total counts it anyway. The streak restarts when the queue
 * empties (outq.c).
 */
static bool chunk_worth_opening(const outq_t *q) {
  if (q->small_streak >= OUTQ_CHUNK_STREAK)
    return true;
  if (q->entries.prev == &q->entries)
    return false;
  const outq_entry_t *e = LIST_ENTRY(q->entries.prev, outq_entry_t, link);
  return e->is_chunk;
}

/* A small MSG as an ordinary entry with a body reference. */
static int push_entry(outq_t *q, const uint8_t *head, size_t head_len,
                      msgbuf_t *body, pending_t *s) {
  uint32_t streak = q->small_streak;
  msgbuf_t *copy = NULL;
  if (q->copy_pool != NULL) {
    copy = msgbuf_get(q->copy_pool);
    if (copy == NULL ||
        tp_buf_append(&copy->bytes, body->bytes.data, body->bytes.len) != 0) {
      if (copy != NULL)
        msgbuf_unref(copy);
      return TP_ENOMEM;
    }
    copy->has_opts = body->has_opts;
    body = copy;
  }
  outq_entry_t *e = outq_push_msg(q, head, head_len, body);
  if (copy != NULL)
    msgbuf_unref(copy); /* the entry holds its own reference */
  if (e == NULL)
    return TP_ENOMEM;
  q->small_streak = streak + 1;
  pending_entry_queued(s, e);
  return 0;
}

int outq__push_msg_chunked_slow(outq_t *q, const uint8_t *head, size_t head_len,
                                msgbuf_t *body, pending_t *s) {
  size_t bl = body->bytes.len;
  uint32_t n = (uint32_t)(head_len + bl);
  outq_chunk_t *c = open_tail(q);
  outq_run_t *r = NULL;
  if (c != NULL && c->nruns > 0) {
    r = outq_chunk_run(c, c->nruns - 1);
    if (r->pend != s || !r->is_msg || outq_chunk_room(c) < n)
      r = NULL;
  }
  bool new_run = r == NULL;
  if (new_run) {
    if (c == NULL || outq_chunk_room(c) < n + sizeof *r) {
      if (!chunk_worth_opening(q))
        return push_entry(q, head, head_len, body, s);
      c = chunk_open(q);
      if (c == NULL)
        return TP_ENOMEM;
    }
    r = outq_chunk_run(c, c->nruns++);
    r->pend = s;
    r->bytes = 0;
    r->msgs = 0;
    r->is_msg = 1;
    r->pad = 0;
  }
  uint8_t *dst = c->data + c->e.bytes;
  memcpy(dst, head, head_len);
  memcpy(dst + head_len, body->bytes.data, bl);
  outq_chunk_count_msg(q, c, r, s, n, new_run);
  return 0;
}

/* Control frames only join a chunk that is already open: a lone PONG on
 * an idle connection is not worth a chunk. */
bool outq_chunk_append_ctrl(outq_t *q, const uint8_t *bytes, size_t len) {
  outq_chunk_t *c = open_tail(q);
  if (c == NULL)
    return false;
  outq_run_t *r = NULL;
  if (c->nruns > 0) {
    r = outq_chunk_run(c, c->nruns - 1);
    if (r->is_msg)
      r = NULL;
  }
  if (outq_chunk_room(c) < len + (r == NULL ? sizeof *r : 0))
    return false;
  if (r == NULL) {
    r = outq_chunk_run(c, c->nruns++);
    memset(r, 0, sizeof *r);
  }
  memcpy(c->data + c->e.bytes, bytes, len);
  r->bytes += (uint32_t)len;
  r->msgs++;
  c->e.bytes += (uint32_t)len;
  q->bytes += len;
  return true;
}

void outq_chunk_set_inflight(outq_chunk_t *c, bool on) {
  for (uint32_t i = 0; i < c->nruns; i++) {
    outq_run_t *r = outq_chunk_run(c, i);
    if (r->pend == NULL)
      continue;
    r->pend->inflight_msgs += on ? r->msgs : -(uint64_t)r->msgs;
    r->pend->inflight_bytes += on ? r->bytes : -(uint64_t)r->bytes;
  }
}

void outq_chunk_release_runs(outq_chunk_t *c, bool written) {
  (void)written;
  for (uint32_t i = 0; i < c->nruns; i++) {
    outq_run_t *r = outq_chunk_run(c, i);
    if (r->pend != NULL)
      pending_run_released(r->pend, r->msgs, r->bytes);
  }
  c->nruns = 0;
}

/*
 * Runs are kept in place: run i moves to a slot <= i, so each is read
 * before anything overwrites it, and so are the bytes (memmove down).
 */
uint32_t outq_chunk_drop_msgs(outq_chunk_t *c) {
  uint32_t rd = 0, wr = 0, kept = 0;
  for (uint32_t i = 0; i < c->nruns; i++) {
    outq_run_t r = *outq_chunk_run(c, i);
    if (r.is_msg) {
      if (r.pend != NULL)
        pending_run_released(r.pend, r.msgs, r.bytes);
      c->nmsgs -= r.msgs;
    } else {
      memmove(c->data + wr, c->data + rd, r.bytes);
      wr += r.bytes;
      *outq_chunk_run(c, kept++) = r;
    }
    rd += r.bytes;
  }
  c->nruns = kept;
  c->e.bytes = wr;
  return rd - wr;
}

/*
 * Forgets the subscription of every run of q's chunks that points at
 * `only`, or at any subscription when `only` is NULL (the connection is
 * closing: each one's count of runs goes down with it).
 */
static void detach_runs(outq_t *q, const pending_t *only) {
  for (list_node_t *n = q->entries.next; n != &q->entries; n = n->next) {
    outq_entry_t *e = LIST_ENTRY(n, outq_entry_t, link);
    if (!e->is_chunk)
      continue;
    outq_chunk_t *c = outq_chunk_of(e);
    for (uint32_t i = 0; i < c->nruns; i++) {
      outq_run_t *r = outq_chunk_run(c, i);
      if (r->pend == NULL || (only != NULL && r->pend != only))
        continue;
      if (only == NULL)
        r->pend->chunk_runs--;
      r->pend = NULL;
    }
  }
}

void outq_detach_all_subs(outq_t *q) {
  detach_runs(q, NULL);
}

void outq_detach_pending(outq_t *q, const pending_t *s) {
  detach_runs(q, s);
}
