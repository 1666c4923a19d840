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
 * Small frames are packed into chunks instead (outq.h): one entry
 * holding the bytes of many MSGs and control frames back to back.
 *
 * Writing: outq_flush gathers queued entries (up to a byte cap per call)
 * into one writev, tries it at once (the writer's try_write), and hands
 * whatever the transport did not take to a single write (the writer's
 * write, which calls back when done: outq_write_done). Entries stay in the
 * queue, marked in flight, until their bytes are written; only then are they
 * released, so "pending" includes bytes the kernel has not accepted yet.
 */
#ifndef TERND_OUTQ_H
#define TERND_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "base/list.h"
#include "data/msgbuf.h"
#include "data/outq_entry.h"
#include "data/pending.h"
#include "tern_proto/frame.h"

/* A free list of entries shared by all connections of a server. */
typedef struct outq_pool outq_pool_t;
int outq_pool_create(outq_pool_t **out, size_t keep_max);
void outq_pool_destroy(outq_pool_t *pool);
/* (outq_pool_pending_bytes, what max_pending_total bounds: outq.h.) */

typedef struct outq {
  list_node_t entries; /* oldest first; in-flight ones at the front */
  size_t nentries;
  uint64_t bytes; /* all queued bytes, in flight included */
  size_t ninflight;
  bool writing; /* a write is outstanding */
  outq_pool_t *pool;
  struct outq_chunk_pool *chunks; /* the pool's free chunks */
  /* Chunkable MSGs queued as entries since the queue was last empty or a
   * frame needed an entry of its own (outq_chunk.c: when a new chunk may be
   * opened). */
  uint32_t small_streak;
  /* While set, a small MSG's body that the queue would keep by reference
   * (no chunk worth opening) is copied into this pool first: the body is
   * another loop's (several workers), only its bytes may be used. */
  msgbuf_pool_t *copy_pool;
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
/* (Small MSGs: outq_push_msg_chunked in outq.h.) */

/* s is going away: its MSGs in q's chunks stay queued (they are still
 * sent) but stop counting against it. O(q's entries). */
void outq_detach_pending(outq_t *q, const struct pending *p);
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

/* Bytes queued and not yet handed to the transport. */
static inline bool outq_has_unsent(const outq_t *q) {
  return q->nentries > q->ninflight;
}
static inline bool outq_empty(const outq_t *q) {
  return q->nentries == 0;
}

/*
 * Where outq_flush hands its buffers: the connection's transport, seen
 * from below. try_write writes what it can now and returns the bytes
 * taken (0: none) or a negative error; write takes all of them, keeps
 * them (they point into the queue's entries) until it calls back, and
 * returns 0 or a negative error.
 */
typedef struct outq_writer {
  int (*try_write)(void *ctx, const uv_buf_t *bufs, unsigned n);
  int (*write)(void *ctx, const uv_buf_t *bufs, unsigned n);
} outq_writer_t;

/*
 * Writes up to cap bytes of queued entries through wr (see the file
 * comment). Returns 0 when everything queued was taken, 1 when the write
 * is now outstanding or the cap left entries unsent, or a negative error
 * (the connection is broken). Does nothing while a write is outstanding;
 * its end is outq_write_done.
 */
int outq_flush(outq_t *q, size_t cap, const outq_writer_t *wr, void *ctx);
/* From the write callback: releases the entries that were in flight
 * (ok: they were written, false: the write failed or was cancelled). */
void outq_write_done(outq_t *q, bool ok);

/* ---- chunks --------------------------------------------------------- */
/*
 * Chunks: small frames of one connection packed back to back into one
 * output-queue entry.
 *
 * Why: as an entry each, a 16-byte MSG fanned out to N connections costs N
 * queue entries, N body references and, per connection, an entry walk at
 * write time; at that size the bookkeeping, not the bytes, is the work.
 * A chunk is a byte
 * buffer that is itself one entry of the connection's ordered queue
 * (outq.h): small MSGs (head + body copied, at most OUTQ_CHUNK_MSG_MAX
 * bytes) and small control frames are appended to the queue's tail chunk as
 * long as it is the tail entry, is not in flight and has room; otherwise a
 * new chunk (from a pool) becomes the tail. Frames that are not appended
 * (large MSGs, large control frames, MSGs of drop_oldest subscriptions)
 * keep their own entry, so the connection's order is exactly the order the
 * broker produced the frames in.
 *
 * Accounting is run-length: the chunk records its bytes as an ordered list
 * of runs, each either consecutive MSGs of one subscription (its pending
 * count, msgs, bytes) or consecutive control frames (no count). A fan-out over
 * separate connections gives one run per chunk. When the chunk is released
 * (written, dropped or cleared) each MSG run credits its subscription at once:
 * what pending_entry_released does per entry. The runs are stored at the end of
 * the chunk's buffer, growing down towards the bytes, so a chunk is full when
 * the two meet and a chunk with many short runs wastes nothing.
 *
 * drop_oldest subscriptions do not use chunks: their policy evicts the
 * oldest unsent MSG from the middle of the queue, which a run cannot give
 * back; they keep one entry per MSG and their eviction code is unchanged.
 * block, drop_newest and disconnect never evict from the middle: a MSG is
 * either queued, or refused before it is queued, or every unsent MSG of the
 * connection goes (outq_drop_queued_msgs, which cuts the MSG runs out of
 * unsent chunks and keeps their control frames).
 *
 * Memory: a live chunk counts its whole capacity plus its header in the
 * server's pending total (outq_pool_pending_bytes, max_pending_total), so
 * the cap bounds the memory chunks really hold, waste included; a new
 * chunk is opened only where small frames come as a stream
 * (chunk_worth_opening in outq_chunk.c), so waste stays small; the pool
 * keeps at most OUTQ_CHUNK_KEEP_BYTES of free chunks. Idle connections
 * cannot pin the cap with chunks: a chunk is full before the next one
 * opens, so the room wasted is at most the partly filled tail chunk and
 * the one in flight, 32 KiB per connection, and a connection that stops
 * reading holds no more than its subscriptions' budgets under pressure
 * (pending_gate.h), which fall on it and not on other connections. Counting
 * only the used bytes would let that waste escape the cap.
 *
 */
/* Bytes of frame data per chunk (runs included). At most 64 KiB so a
 * run's msgs fits in 16 bits. */
#define OUTQ_CHUNK_CAP (16u * 1024u)
/* A new chunk, unless the tail is a chunk already, only once this many
 * small MSGs were queued as entries in a row (outq_chunk.c,
 * chunk_worth_opening). */
#define OUTQ_CHUNK_STREAK 16u
/* Free chunks kept for reuse, in bytes of capacity. */
#define OUTQ_CHUNK_KEEP_BYTES (1024u * 1024u)

struct pending;

/* Consecutive frames of one kind in a chunk, in byte order. */
typedef struct outq_run {
  struct pending *pend; /* MSGs of this pending count; NULL for control
                           frames or once the subscription is gone */
  uint32_t bytes;
  uint16_t msgs;  /* frames in the run */
  uint8_t is_msg; /* MSG frames (counted as messages, dropped on failure) */
  uint8_t pad;
} outq_run_t;

typedef struct outq_chunk {
  outq_entry_t e; /* is_chunk; e.bytes is the bytes used in data */
  uint32_t nruns; /* runs at the end of data, the first one last */
  uint32_t nmsgs; /* MSG frames in the chunk */
  struct outq_chunk *next_free;
  uint64_t pad;   /* keeps data 8-aligned for the runs */
  uint8_t data[]; /* OUTQ_CHUNK_CAP bytes */
} outq_chunk_t;

/* The pool of free chunks, one per server (inside outq_pool_t). */
typedef struct outq_chunk_pool {
  outq_chunk_t *free_list;
  size_t nfree;
  size_t live; /* chunks in some queue */
} outq_chunk_pool_t;

/* Memory of one live chunk, as the pending total counts it. */
#define OUTQ_CHUNK_FOOTPRINT ((uint64_t)sizeof(outq_chunk_t) + OUTQ_CHUNK_CAP)

/* The pool of entries of outq.h (defined here so that the pending total
 * is an inline read: the router asks for it on every PUB). */
struct outq_pool {
  outq_entry_t *free_list; /* chained through link.next */
  size_t nfree;
  size_t keep_max;
  size_t live;         /* entries in some queue */
  uint64_t body_bytes; /* bodies with queued > 0, each once */
  uint8_t *scratch;    /* SCRATCH_SIZE bytes, reused by every flush */
  outq_chunk_pool_t chunks;
};

/*
 * Every byte pending in all output queues of the pool, in flight included:
 * each queued body once however many entries share it, plus the whole
 * entry struct (its inline head included) for every entry, plus the whole
 * capacity of every live chunk. This is what max_pending_total bounds.
 */
static inline uint64_t outq_pool_pending_bytes(const outq_pool_t *pool) {
  return pool->body_bytes + (uint64_t)pool->live * sizeof(outq_entry_t) +
         (uint64_t)pool->chunks.live * OUTQ_CHUNK_FOOTPRINT;
}

static inline outq_chunk_t *outq_chunk_of(outq_entry_t *e) {
  return (outq_chunk_t *)(void *)e;
}
/* Run i (0 the oldest) of c. */
static inline outq_run_t *outq_chunk_run(outq_chunk_t *c, uint32_t i) {
  return (outq_run_t *)(void *)(c->data + OUTQ_CHUNK_CAP) - 1 - i;
}

/* Bytes still free in c for frame data and runs. */
static inline size_t outq_chunk_room(const outq_chunk_t *c) {
  return OUTQ_CHUNK_CAP - c->e.bytes - c->nruns * sizeof(outq_run_t);
}

/* Accounts a MSG of n bytes just copied to the end of c's data, in run r
 * of s (new_run: the MSG opened r). */
static inline void outq_chunk_count_msg(outq_t *q, outq_chunk_t *c,
                                        outq_run_t *r, pending_t *s, uint32_t n,
                                        bool new_run) {
  r->bytes += n;
  r->msgs++;
  c->e.bytes += n;
  c->nmsgs++;
  q->bytes += n;
  pending_run_msg_queued(s, n, new_run);
}

/* outq_push_msg_chunked's general case (new run, new chunk, or none). */
int outq__push_msg_chunked_slow(outq_t *q, const uint8_t *head, size_t head_len,
                                msgbuf_t *body, pending_t *s);

/*
 * Appends a MSG of s (not drop_oldest; head_len + body length at most
 * OUTQ_CHUNK_MSG_MAX) by copying head and body into the tail chunk, and
 * accounts it to s as pending. Where a new chunk would likely hold only a
 * few frames it is queued as an ordinary entry instead (outq_chunk.c).
 * 0 or TP_ENOMEM.
 *
 * Inline for the hot path of a small fan-out: the MSG extends the tail
 * chunk's last run, which in a fan-out over separate connections is always
 * s's. head is the whole TP_MSG_HEAD_MAX buffer: all of it is copied in
 * one fixed-size move and the body overwrites what is not head, so that
 * path wants TP_MSG_HEAD_MAX bytes of slack.
 */
static inline int outq_push_msg_chunked(outq_t *q,
                                        const uint8_t head[TP_MSG_HEAD_MAX],
                                        size_t head_len, msgbuf_t *body,
                                        pending_t *s) {
  if (q->entries.prev != &q->entries) {
    outq_entry_t *e = LIST_ENTRY(q->entries.prev, outq_entry_t, link);
    outq_chunk_t *c = outq_chunk_of(e);
    size_t bl = body->bytes.len;
    uint32_t n = (uint32_t)(head_len + bl);
    if (e->is_chunk && !e->inflight && c->nruns > 0 &&
        outq_chunk_room(c) >= n + TP_MSG_HEAD_MAX) {
      outq_run_t *r = outq_chunk_run(c, c->nruns - 1);
      if (r->pend == s && r->is_msg) {
        uint8_t *dst = c->data + c->e.bytes;
        memcpy(dst, head, TP_MSG_HEAD_MAX);
        memcpy(dst + head_len, body->bytes.data, bl);
        outq_chunk_count_msg(q, c, r, s, n, false);
        return 0;
      }
    }
  }
  return outq__push_msg_chunked_slow(q, head, head_len, body, s);
}

void outq_chunk_pool_destroy(outq_chunk_pool_t *p);
/* Memory held by live chunks (the pending total's share). */
static inline uint64_t outq_chunk_pool_bytes(const outq_chunk_pool_t *p) {
  return (uint64_t)p->live * OUTQ_CHUNK_FOOTPRINT;
}
/* Returns a released chunk to the pool (or frees it). */
void outq_chunk_put(outq_chunk_pool_t *p, outq_chunk_t *c);

/* Appends a small control frame to q's tail chunk when that is open and
 * has room. False when the frame needs an entry of its own. */
bool outq_chunk_append_ctrl(outq_t *q, const uint8_t *bytes, size_t len);

/* Marks every MSG run of c (not) in flight in its subscription's counts. */
void outq_chunk_set_inflight(outq_chunk_t *c, bool on);
/* Credits every MSG run of c to its subscription (c is being released). */
void outq_chunk_release_runs(outq_chunk_t *c, bool written);
/*
 * Cuts every MSG out of c, which is not in flight: their subscriptions are
 * credited (not written), the control frames move to the front in order.
 * Returns the bytes removed; c->e.bytes is what is left.
 */
uint32_t outq_chunk_drop_msgs(outq_chunk_t *c);

#endif
