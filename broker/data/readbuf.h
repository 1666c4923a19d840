/*
 * The read path's memory: one large buffer shared by every connection of
 * the loop, and per connection only the bytes it could not use yet.
 *
 * Why: a read buffer per connection costs its size on every idle
 * connection, and a small one means many small reads on a busy one. With
 * one loop, reads never overlap: libuv calls alloc_cb, reads, then calls
 * read_cb, which decodes every complete frame before returning. So all
 * connections can read into the same large buffer, and only what is left
 * afterwards (the start of an unfinished frame, or the frames a publisher
 * blocked by backpressure must not handle yet) is copied into the
 * connection's own `rx_tail_t`, allocated on demand and freed when empty.
 * An idle connection holds no read memory at all.
 *
 * A frame larger than half the shared buffer is read straight into the
 * connection's tail, grown to exactly that frame's size (its prefix has
 * passed the max_frame check), so it is never copied twice.
 */
#ifndef TERND_READBUF_H
#define TERND_READBUF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tern_proto/frame.h"

/* Size of the loop-wide read buffer: one read takes this much at most. */
#define READBUF_SHARED_SIZE (128u * 1024u)
/* Bytes one connection may read per loop turn before it yields (conn.c),
 * so that the output of what it sent is written in between. */
#define READBUF_TURN_BUDGET (256u * 1024u)

typedef struct rx_shared {
  uint8_t *buf; /* READBUF_SHARED_SIZE bytes, owned */
  size_t cap;
  /* Every connection's tail, by capacity: the inbound memory that
   * max_inbound_total bounds (0: no bound). A large frame that would take
   * the total past it is refused (rx_alloc). */
  size_t tail_bytes, tail_max;
  /* Several loops: the tails of every loop, which tail_max bounds then
   * (NULL: this loop's alone). */
  _Atomic size_t *all_tails;
  /* Frames are handled one at a time, each before the next is decoded,
   * so one decoder (and its msgpack scratch zone) serves every
   * connection too. */
  tp_decoder_t *dec;
} rx_shared_t;

/* A connection's bytes received but not handled yet, oldest first. */
typedef struct rx_tail {
  uint8_t *buf; /* owned; NULL when empty */
  size_t len, cap;
  bool into_tail; /* the read in progress goes straight into buf */
  bool over_cap;  /* rx_alloc refused to grow it: max_inbound_total */
} rx_tail_t;

/* 0 or TP_ENOMEM. */
int rx_shared_init(rx_shared_t *sh);
void rx_shared_free(rx_shared_t *sh);

/*
 * alloc_cb: where the next read of a connection goes. Normally the shared
 * buffer after room for t's bytes (copied in front by rx_received, so a
 * read that brings nothing loses nothing); for a large unfinished frame
 * the rest of t's own buffer. A zero-length *out means out of memory, or
 * (t->over_cap) that the frame would take the tails past sh->tail_max
 * (libuv then reports UV_ENOBUFS).
 */
void rx_alloc(rx_shared_t *sh, rx_tail_t *t, size_t max_frame, uv_buf_t *out);

/*
 * read_cb, nread > 0: the bytes to decode, t's bytes first, then the new
 * ones. t is empty afterwards until rx_keep.
 */
void rx_received(rx_shared_t *sh, rx_tail_t *t, size_t nread,
                 const uint8_t **bytes, size_t *len);

/*
 * After decoding [bytes, bytes + len) of which `used` were handled: the
 * rest goes into t (which is freed when nothing is left). bytes is what
 * rx_received or rx_take returned. 0 or TP_ENOMEM.
 */
int rx_keep(rx_shared_t *sh, rx_tail_t *t, const uint8_t *bytes, size_t len,
            size_t used);

/* The bytes kept in t, to decode before reading again (resume). */
void rx_take(rx_tail_t *t, const uint8_t **bytes, size_t *len);

void rx_tail_free(rx_shared_t *sh, rx_tail_t *t);

#endif
