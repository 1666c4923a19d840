/*
 * The msgbuf pool: a free list of released buffers. Buffers whose capacity
 * grew past KEEP_CAP_MAX give their bytes back to malloc on release, so one
 * large message does not pin memory in the pool; and the pool keeps at most
 * keep_bytes of capacity, so its count limit can be high enough to absorb
 * the burst of releases that one large completed write produces.
 */
#include "data/msgbuf.h"

#include <stdlib.h>

#include "tern_proto/errors.h"

#define KEEP_CAP_MAX 8192u

struct msgbuf_pool {
  msgbuf_t *free_list;
  size_t nfree;
  size_t keep_max;
  size_t keep_bytes; /* capacity the free list may hold */
  size_t free_bytes; /* capacity it holds */
  size_t live;
};

int msgbuf_pool_create(msgbuf_pool_t **out, size_t keep_max,
                       size_t keep_bytes) {
  msgbuf_pool_t *p = calloc(1, sizeof *p);
  if (p == NULL)
    return TP_ENOMEM;
  p->keep_max = keep_max;
  p->keep_bytes = keep_bytes;
  *out = p;
  return 0;
}

void msgbuf_pool_destroy(msgbuf_pool_t *pool) {
  if (pool == NULL)
    return;
  msgbuf_t *b = pool->free_list;
  while (b != NULL) {
    msgbuf_t *next = b->next_free;
    tp_buf_free(&b->bytes);
    free(b);
    b = next;
  }
  free(pool);
}

size_t msgbuf_pool_live(const msgbuf_pool_t *pool) {
  return pool->live;
}

msgbuf_t *msgbuf_get(msgbuf_pool_t *pool) {
  msgbuf_t *b = pool->free_list;
  if (b != NULL) {
    pool->free_list = b->next_free;
    pool->nfree--;
    pool->free_bytes -= b->bytes.cap;
  } else {
    b = calloc(1, sizeof *b);
    if (b == NULL)
      return NULL;
    b->pool = pool;
  }
  b->refs = 1;
  b->has_opts = false;
  b->queued = 0;
  b->next_free = NULL;
  tp_buf_reset(&b->bytes);
  pool->live++;
  return b;
}

void msgbuf_unref(msgbuf_t *b) {
  if (--b->refs > 0)
    return;
  msgbuf_pool_t *pool = b->pool;
  pool->live--;
  if (b->bytes.cap > KEEP_CAP_MAX)
    tp_buf_free(&b->bytes);
  if (pool->nfree >= pool->keep_max ||
      pool->free_bytes + b->bytes.cap > pool->keep_bytes) {
    tp_buf_free(&b->bytes);
    free(b);
    return;
  }
  b->next_free = pool->free_list;
  pool->free_list = b;
  pool->nfree++;
  pool->free_bytes += b->bytes.cap;
}
