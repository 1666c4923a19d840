/*
 * Refcounted, immutable-once-shared byte buffers: the shared body of a MSG
 * (topic, payload, opts encoded once per PUB, whatever the fan-out) and the
 * bytes of control frames (HELLO, ERR, ...).
 *
 * Buffers come from a pool that keeps released small buffers with their
 * capacity, so a steady stream of small messages allocates nothing.
 * Every queue entry that points at a buffer holds one reference; the buffer
 * goes back to the pool when the last one is dropped.
 */
#ifndef TERND_MSGBUF_H
#define TERND_MSGBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern_proto/buf.h"

typedef struct msgbuf_pool msgbuf_pool_t;

typedef struct msgbuf {
  uint32_t refs;
  bool has_opts;   /* MSG bodies: the body ends with an opts map */
  uint32_t queued; /* output-queue entries pointing here (outq.c counts the
                      body once in the server's pending total while > 0) */
  tp_buf_t bytes;  /* owned; write it only before the first extra ref */
  struct msgbuf *next_free;
  msgbuf_pool_t *pool;
} msgbuf_t;

/* Keeps up to keep_max released buffers holding at most keep_bytes of
 * capacity in all for reuse. 0 or TP_ENOMEM. */
int msgbuf_pool_create(msgbuf_pool_t **out, size_t keep_max, size_t keep_bytes);
/* Frees the kept buffers. Every buffer must have been released. */
void msgbuf_pool_destroy(msgbuf_pool_t *pool);
/* Buffers currently handed out (for leak checks and metrics). */
size_t msgbuf_pool_live(const msgbuf_pool_t *pool);

/* An empty buffer with one reference (the caller's), or NULL. */
msgbuf_t *msgbuf_get(msgbuf_pool_t *pool);
static inline void msgbuf_ref(msgbuf_t *b) {
  b->refs++;
}
/* Drops one reference; the last one returns the buffer to its pool. */
void msgbuf_unref(msgbuf_t *b);

#endif
