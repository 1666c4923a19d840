/*
 * A connection's ordered output stream: every frame the broker sends to one
 * client (HELLO, OK, ERR, PONG, PUBACK, DROPPED, GOAWAY and MSG) goes
 * through one FIFO of small entries, so control frames and messages reach
 * the client in the order the broker produced them.
 *
 * An entry is a head of at most 16 bytes stored inline plus one reference
 * to a shared msgbuf: a MSG is the per-sid head + the body shared by every
 * receiver of that PUB; a control frame is a msgbuf holding the whole
 * frame (head empty) or, when it is small, just the inline head.
 *
 * Small frames are packed into chunks instead (outq_chunk.h): one entry
 * holding the bytes of many MSGs and control frames back to back.
 *
 * Writing: outq_flush gathers queued entries (up to a byte cap per call)
 * into one writev, tries it at once with uv_try_write, and hands whatever
 * the kernel did not take to a single uv_write. Entries stay in the queue,
 * marked in flight, until their bytes are written; only then are they
 * released, so "pending" includes bytes the kernel has not accepted yet.
 */
#ifndef TERND_OUTQ_H
#define TERND_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"
#include "msgbuf.h"
#include "tern_proto/frame.h"

struct sub;

/* Inline head room: a MSG head, or a small control frame (PUBACK, ...). */
#define OUTQ_INLINE_MAX 32u
/* A MSG of at most this many bytes (head + body) may be copied into a
 * chunk rather than queued as an entry with a shared body. */
#define OUTQ_CHUNK_MSG_MAX 512u

typedef struct outq_entry {
  list_node_t link;     /* in the connection's queue */
  list_node_t sub_link; /* in its subscription's pending list (MSG only) */
  struct sub *sub;      /* accounted to this sub; NULL for control frames or
                           once the subscription is gone */
  msgbuf_t *body;       /* one reference, or NULL */
  uint32_t bytes;       /* head_len + body length */
  uint8_t head_len;
  bool inflight; /* handed to uv_write, not completed yet */
  bool is_msg;
  bool is_chunk;  /* an outq_chunk_t (outq_chunk.h): bytes inside, no body */
  bool is_notice; /* a drop_oldest DROPPED notice that `sub` may still grow
                     (sub->gap_notice); a plain control frame once in flight */
  uint8_t head[OUTQ_INLINE_MAX];
} outq_entry_t;

/* A free list of entries shared by all connections of a server. */
typedef struct outq_pool outq_pool_t;
int outq_pool_create(outq_pool_t **out, size_t keep_max);
void outq_pool_destroy(outq_pool_t *pool);
/* (outq_pool_pending_bytes, what max_pending_total bounds: outq_chunk.h.) */

typedef struct outq {
  list_node_t entries; /* oldest first; in-flight ones at the front */
  size_t nentries;
  uint64_t bytes; /* all queued bytes, in flight included */
  size_t ninflight;
  bool writing; /* a uv_write is outstanding */
  uv_write_t req;
  outq_pool_t *pool;
  struct outq_chunk_pool *chunks; /* the pool's free chunks */
  /* Chunkable MSGs queued as entries since the queue was last empty or a
   * frame needed an entry of its own (outq_chunk.c: when a new chunk may be
   * opened). */
  uint32_t small_streak;
  /* Counters of what reached the socket. */
  uint64_t msgs_written;
  uint64_t bytes_written;
} outq_t;

void outq_init(outq_t *q, outq_pool_t *pool);
/* Releases every entry (the connection is gone); nothing may be in flight
 * any more (call after the stream's close callback). */
void outq_clear(outq_t *q);

/* Appends a control frame whose bytes are in body (consumes the caller's
 * reference). 0 or TP_ENOMEM (the reference is dropped either way). */
int outq_push_buf(outq_t *q, msgbuf_t *body);
/* Appends a small control frame copied inline (len <= OUTQ_INLINE_MAX). */
int outq_push_small(outq_t *q, const uint8_t *bytes, size_t len);
/* Appends a MSG: head copied inline, a new reference taken on body.
 * Returns the entry (for the subscription's pending list) or NULL. */
outq_entry_t *outq_push_msg(outq_t *q, const uint8_t *head, size_t head_len,
                            msgbuf_t *body);
/* (Small MSGs: outq_push_msg_chunked in outq_chunk.h.) */

/* s is going away: its MSGs in q's chunks stay queued (they are still
 * sent) but stop counting against it. O(q's entries). */
void outq_detach_sub(outq_t *q, const struct sub *s);
/* The same for every subscription at once (the connection is closing and
 * destroys them all next): one walk instead of one per subscription. */
void outq_detach_all_subs(outq_t *q);
/*
 * Inserts a small control frame (copied inline) just before `next`, which
 * must be queued and not in flight, so the in-flight entries stay in front;
 * next NULL: at the tail, as an entry of its own (never in a chunk). For
 * drop_oldest's DROPPED notice, which belongs where the gap is and stays
 * rewritable. Returns the entry or NULL (out of memory).
 */
outq_entry_t *outq_insert_small_before(outq_t *q, outq_entry_t *next,
                                       const uint8_t *bytes, size_t len);
/* Replaces the bytes of such an entry (not in flight) by a new frame of at
 * most OUTQ_INLINE_MAX bytes. */
void outq_rewrite_small(outq_t *q, outq_entry_t *e, const uint8_t *bytes,
                        size_t len);
/* Removes and releases a queued entry that is not in flight (drop_oldest).
 * Not counted as written. */
void outq_drop(outq_t *q, outq_entry_t *e);
/* Drops every MSG entry that is not in flight (slow consumer, fatal error:
 * what is left to send is the final control frames). */
void outq_drop_queued_msgs(outq_t *q);

/* Bytes queued and not yet handed to the kernel or uv_write. */
static inline bool outq_has_unsent(const outq_t *q) {
  return q->nentries > q->ninflight;
}
static inline bool outq_empty(const outq_t *q) {
  return q->nentries == 0;
}

/*
 * Writes up to cap bytes of queued entries to stream (see the file
 * comment). write_cb is the uv_write callback; its req is &q->req and the
 * caller sets q->req.data. Returns 0 when everything queued went to the
 * kernel, 1 when the write is now waiting in uv_write or the cap left
 * entries unsent, or a negative libuv error (the connection is broken).
 * Does nothing while a uv_write is outstanding.
 */
int outq_flush(outq_t *q, uv_stream_t *stream, size_t cap, uv_write_cb cb);
/* From the write callback: releases the entries that were in flight
 * (ok: they were written, false: the write failed or was cancelled). */
void outq_write_done(outq_t *q, bool ok);

#endif
