/*
 * The per-connection output queue and its write path (see outq.h).
 */
#include "data/outq.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/pending.h"
#include "tern_proto/errors.h"

/* Buffers per writev: two per entry (head, body). */
#define MAX_BUFS 512
/* Bytes copied together for one try_write; a body larger than
 * COALESCE_MAX is written from its own buffer instead of being copied. */
#define SCRATCH_SIZE (256u * 1024u)
#define COALESCE_MAX 512u

int outq_pool_create(outq_pool_t **out, size_t keep_max) {
  outq_pool_t *p = calloc(1, sizeof *p);
  if (p == NULL)
    return TP_ENOMEM;
  p->scratch = malloc(SCRATCH_SIZE);
  if (p->scratch == NULL) {
    free(p);
    return TP_ENOMEM;
  }
  p->keep_max = keep_max;
  *out = p;
  return 0;
}

void outq_pool_destroy(outq_pool_t *pool) {
  if (pool == NULL)
    return;
  outq_entry_t *e = pool->free_list;
  while (e != NULL) {
    outq_entry_t *next = (outq_entry_t *)(void *)e->link.next;
    free(e);
    e = next;
  }
  outq_chunk_pool_destroy(&pool->chunks);
  free(pool->scratch);
  free(pool);
}

static outq_entry_t *entry_get(outq_pool_t *pool) {
  outq_entry_t *e = pool->free_list;
  if (e != NULL) {
    pool->free_list = (outq_entry_t *)(void *)e->link.next;
    pool->nfree--;
  } else {
    e = malloc(sizeof *e);
    if (e == NULL)
      return NULL;
  }
  memset(e, 0, offsetof(outq_entry_t, head));
  pool->live++;
  list_init(&e->link);
  list_init(&e->sub_link);
  return e;
}

static void entry_put(outq_pool_t *pool, outq_entry_t *e) {
  pool->live--;
  if (pool->nfree >= pool->keep_max) {
    free(e);
    return;
  }
  e->link.next = (list_node_t *)(void *)pool->free_list;
  pool->free_list = e;
  pool->nfree++;
}

void outq_init(outq_t *q, outq_pool_t *pool) {
  memset(q, 0, sizeof *q);
  list_init(&q->entries);
  q->pool = pool;
  q->chunks = &pool->chunks;
}

/* Marks e (not) handed to the write, keeping its subscription's count. */
static void set_inflight(outq_entry_t *e, bool on) {
  e->inflight = on;
  if (e->is_chunk) {
    outq_chunk_set_inflight(outq_chunk_of(e), on);
  } else if (e->is_notice) {
    /* Its count is final from now on: the next gap gets a new notice. */
    if (e->pend != NULL)
      pending_notice_sealed(e->pend, e);
    e->pend = NULL;
  } else if (e->pend != NULL) {
    e->pend->inflight_msgs += on ? 1 : (uint64_t)-1;
    e->pend->inflight_bytes += on ? e->bytes : -(uint64_t)e->bytes;
    /* In queue order: e is its subscription's first queued entry. */
    if (on && e->pend->first_queued == e)
      e->pend->first_queued = pending_next(e->pend, e);
  }
}

/*
 * Unlinks e from the queue and gives back everything it holds: its
 * subscription's pending accounting (which may wake blocked publishers),
 * its body reference and the entry itself.
 */
static void entry_release(outq_t *q, outq_entry_t *e, bool written) {
  list_remove(&e->link);
  if (--q->nentries == 0)
    q->small_streak = 0; /* a new burst must show it is a stream again */
  q->bytes -= e->bytes;
  if (e->inflight) {
    q->ninflight--;
    set_inflight(e, false);
  }
  if (e->is_chunk) {
    outq_chunk_t *c = outq_chunk_of(e);
    if (written) {
      q->bytes_written += e->bytes;
      q->msgs_written += c->nmsgs;
    }
    outq_chunk_release_runs(c, written);
    outq_chunk_put(q->chunks, c);
    return;
  }
  if (written) {
    q->bytes_written += e->bytes;
    if (e->is_msg)
      q->msgs_written++;
  }
  if (e->is_notice) {
    if (e->pend != NULL)
      pending_notice_sealed(e->pend, e);
  } else if (e->pend != NULL) {
    pending_entry_released(e->pend, e);
  }
  if (e->body != NULL) {
    if (--e->body->queued == 0)
      q->pool->body_bytes -= e->body->bytes.len;
    msgbuf_unref(e->body);
  }
  entry_put(q->pool, e);
}

void outq_clear(outq_t *q) {
  list_node_t *n;
  while ((n = list_first(&q->entries)) != NULL)
    entry_release(q, LIST_ENTRY(n, outq_entry_t, link), false);
  q->writing = false;
}

static outq_entry_t *push(outq_t *q, const uint8_t *head, size_t head_len,
                          msgbuf_t *body) {
  outq_entry_t *e = entry_get(q->pool);
  if (e == NULL)
    return NULL;
  q->small_streak = 0;
  if (head_len > 0)
    memcpy(e->head, head, head_len);
  e->head_len = (uint8_t)head_len;
  e->body = body;
  if (body != NULL && body->queued++ == 0)
    q->pool->body_bytes += body->bytes.len;
  e->bytes = (uint32_t)(head_len + (body ? body->bytes.len : 0));
  list_insert_tail(&q->entries, &e->link);
  q->nentries++;
  q->bytes += e->bytes;
  return e;
}

int outq_push_buf(outq_t *q, msgbuf_t *body) {
  if (push(q, NULL, 0, body) == NULL) {
    msgbuf_unref(body);
    return TP_ENOMEM;
  }
  return 0;
}

int outq_push_small(outq_t *q, const uint8_t *bytes, size_t len) {
  if (len > OUTQ_INLINE_MAX)
    return TP_EINVAL;
  if (outq_chunk_append_ctrl(q, bytes, len))
    return 0;
  return push(q, bytes, len, NULL) ? 0 : TP_ENOMEM;
}

outq_entry_t *outq_push_msg(outq_t *q, const uint8_t *head, size_t head_len,
                            msgbuf_t *body) {
  outq_entry_t *e = push(q, head, head_len, body);
  if (e == NULL)
    return NULL;
  msgbuf_ref(body);
  e->is_msg = true;
  return e;
}

outq_entry_t *outq_insert_small_before(outq_t *q, outq_entry_t *next,
                                       const uint8_t *bytes, size_t len) {
  if (len > OUTQ_INLINE_MAX || (next != NULL && next->inflight))
    return NULL;
  outq_entry_t *e = entry_get(q->pool);
  if (e == NULL)
    return NULL;
  memcpy(e->head, bytes, len);
  e->head_len = (uint8_t)len;
  e->bytes = (uint32_t)len;
  list_insert_before(next != NULL ? &next->link : &q->entries, &e->link);
  q->nentries++;
  q->bytes += len;
  return e;
}

void outq_rewrite_small(outq_t *q, outq_entry_t *e, const uint8_t *bytes,
                        size_t len) {
  if (len > OUTQ_INLINE_MAX || e->inflight || e->body != NULL || e->is_chunk)
    return;
  q->bytes -= e->bytes;
  memcpy(e->head, bytes, len);
  e->head_len = (uint8_t)len;
  e->bytes = (uint32_t)len;
  q->bytes += len;
}

void outq_drop(outq_t *q, outq_entry_t *e) {
  if (!e->inflight)
    entry_release(q, e, false);
}

void outq_drop_queued_msgs(outq_t *q) {
  list_node_t *n = q->entries.next;
  while (n != &q->entries) {
    list_node_t *next = n->next;
    outq_entry_t *e = LIST_ENTRY(n, outq_entry_t, link);
    if (e->is_chunk && !e->inflight) {
      /* Its control frames stay; an empty chunk goes. */
      q->bytes -= outq_chunk_drop_msgs(outq_chunk_of(e));
      if (e->bytes == 0)
        entry_release(q, e, false);
    } else if (e->is_msg && !e->inflight) {
      entry_release(q, e, false);
    }
    n = next;
  }
}

/* The bytes of e after its inline head: its body, or a chunk's data. */
static inline const uint8_t *entry_data(const outq_entry_t *e, size_t *len) {
  if (e->is_chunk) {
    *len = e->bytes;
    return ((const outq_chunk_t *)(const void *)e)->data;
  }
  if (e->body != NULL) {
    *len = e->body->bytes.len;
    return e->body->bytes.data;
  }
  *len = 0;
  return NULL;
}

/*
 * Fills bufs with the entries from first on, skipping `skip` bytes of the
 * first one, until cap bytes or MAX_BUFS. Returns the number of buffers;
 * *nentries gets the entries covered.
 */
static size_t gather(outq_t *q, size_t skip, size_t cap, size_t max_entries,
                     uv_buf_t *bufs, size_t *nentries) {
  size_t nb = 0, total = 0, k = 0;
  for (list_node_t *n = q->entries.next; n != &q->entries; n = n->next) {
    outq_entry_t *e = LIST_ENTRY(n, outq_entry_t, link);
    if (k == max_entries || nb + 2 > MAX_BUFS || (k > 0 && total >= cap))
      break;
    size_t hs = e->head_len, bs;
    const uint8_t *bd = entry_data(e, &bs);
    size_t hskip = skip < hs ? skip : hs;
    size_t bskip = skip - hskip;
    skip = 0;
    if (hs > hskip)
      bufs[nb++] = uv_buf_init((char *)e->head + hskip, (unsigned)(hs - hskip));
    if (bs > bskip)
      bufs[nb++] = uv_buf_init((char *)bd + bskip, (unsigned)(bs - bskip));
    total += e->bytes;
    k++;
  }
  *nentries = k;
  return nb;
}

/*
 * Like gather from the first entry, but for try_write: small entries are
 * copied back to back into the pool's scratch buffer, so a run of small
 * messages becomes one buffer instead of two per message (the kernel's
 * cost per iovec, not per byte, dominates for small messages). Bodies
 * above COALESCE_MAX keep a buffer of their own. The scratch bytes are
 * only valid until the next flush: what the kernel does not take is
 * handed to the write from the entries themselves (gather).
 */
static size_t gather_copy(outq_t *q, size_t cap, uv_buf_t *bufs,
                          size_t *nentries) {
  uint8_t *scratch = q->pool->scratch;
  size_t used = 0, nb = 0, total = 0, k = 0;
  bool open = false; /* bufs[nb - 1] is a scratch run still growing */
  for (list_node_t *n = q->entries.next; n != &q->entries; n = n->next) {
    outq_entry_t *e = LIST_ENTRY(n, outq_entry_t, link);
    if (k > 0 && total >= cap)
      break;
    size_t hs = e->head_len, bs;
    const uint8_t *bd = entry_data(e, &bs);
    bool copy_body = bs <= COALESCE_MAX;
    size_t ncopy = hs + (copy_body ? bs : 0);
    size_t nnew = (open || ncopy == 0 ? 0 : 1) + (copy_body ? 0 : 1);
    if (used + ncopy > SCRATCH_SIZE || nb + nnew > MAX_BUFS)
      break;
    if (ncopy > 0) {
      if (!open)
        bufs[nb++] = uv_buf_init((char *)scratch + used, 0);
      memcpy(scratch + used, e->head, hs);
      if (copy_body && bs > 0)
        memcpy(scratch + used + hs, bd, bs);
      used += ncopy;
      bufs[nb - 1].len += ncopy;
      open = true;
    }
    if (!copy_body) {
      bufs[nb++] = uv_buf_init((char *)bd, (unsigned)bs);
      open = false;
    }
    total += e->bytes;
    k++;
  }
  *nentries = k;
  return nb;
}

int outq_flush(outq_t *q, size_t cap, const outq_writer_t *wr, void *ctx) {
  if (q->writing)
    return 1;
  uv_buf_t bufs[MAX_BUFS];
  size_t k = 0, sent = 0, written = 0;
  /* As long as the kernel takes everything, up to cap bytes this turn. */
  for (;;) {
    if (q->nentries == 0)
      return 0;
    if (sent >= cap)
      return 1;
    size_t nb = gather_copy(q, cap - sent, bufs, &k);
    if (nb == 0)
      return 0; /* only empty entries: cannot happen, frames are never empty */
    int n = wr->try_write(ctx, bufs, (unsigned)nb);
    if (n < 0)
      return n;
    /* Entries the kernel took whole are done now. */
    written = (size_t)n;
    sent += written;
    while (k > 0) {
      outq_entry_t *e = LIST_ENTRY(q->entries.next, outq_entry_t, link);
      if (e->bytes > written)
        break;
      written -= e->bytes;
      entry_release(q, e, true);
      k--;
    }
    if (k > 0)
      break;
  }
  /* The rest of this batch (the first entry maybe half sent) waits in
   * one write; its entries stay queued and accounted until it is done. */
  size_t k2 = 0;
  size_t nb = gather(q, written, SIZE_MAX, k, bufs, &k2);
  size_t i = 0;
  for (list_node_t *ln = q->entries.next; i < k2; ln = ln->next, i++)
    set_inflight(LIST_ENTRY(ln, outq_entry_t, link), true);
  int rc = wr->write(ctx, bufs, (unsigned)nb);
  if (rc != 0) {
    i = 0;
    list_node_t *last = &q->entries;
    for (list_node_t *ln = q->entries.next; i < k2; ln = ln->next, i++) {
      set_inflight(LIST_ENTRY(ln, outq_entry_t, link), false);
      last = ln;
    }
    /* Queued again: newest first, so each subscription ends with its
     * oldest as the first queued. */
    for (list_node_t *ln = last; ln != &q->entries; ln = ln->prev) {
      outq_entry_t *e = LIST_ENTRY(ln, outq_entry_t, link);
      if (e->pend != NULL && !e->is_chunk && !e->is_notice)
        e->pend->first_queued = e;
    }
    return rc;
  }
  q->ninflight = k2;
  q->writing = true;
  return 1;
}

void outq_write_done(outq_t *q, bool ok) {
  while (q->ninflight > 0) {
    outq_entry_t *e = LIST_ENTRY(q->entries.next, outq_entry_t, link);
    entry_release(q, e, ok);
  }
  q->writing = false;
}
