/*
 * A transport with no socket (broker/transport/transport.h), for unit
 * tests of the session and the delivery core: what the session writes is
 * kept in `out`, reading and the timer are flags the test reads, and the
 * test feeds bytes with stub_transport_feed. Close goes through a libuv
 * handle's close so on_closed comes later, as with TCP (run the loop).
 */
#ifndef TERN_TEST_STUB_TRANSPORT_H
#define TERN_TEST_STUB_TRANSPORT_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "transport/transport.h"

typedef struct stub_transport {
  transport_t base;
  uv_idle_t handle; /* never started: only closed, for a deferred on_closed */
  uint8_t *out;     /* every byte written, in order */
  size_t out_len, out_cap;
  bool reading, timer_on, closing, write_pending;
  uint64_t timer_ms, timer_repeat;
  size_t writes; /* try_write and write calls that took bytes */
} stub_transport_t;

static inline stub_transport_t *stub_of(transport_t *t) {
  return (stub_transport_t *)t;
}

static inline void stub_append(stub_transport_t *st, const uv_buf_t *bufs,
                               unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    if (st->out_len + bufs[i].len > st->out_cap) {
      size_t cap = (st->out_len + bufs[i].len) * 2 + 64;
      st->out = realloc(st->out, cap);
      cr_assert_not_null(st->out);
      st->out_cap = cap;
    }
    memcpy(st->out + st->out_len, bufs[i].base, bufs[i].len);
    st->out_len += bufs[i].len;
  }
}

static inline int stub_start_read(transport_t *t) {
  stub_of(t)->reading = true;
  return 0;
}
static inline void stub_stop_read(transport_t *t) {
  stub_of(t)->reading = false;
}
static inline int stub_try_write(transport_t *t, const uv_buf_t *bufs,
                                 unsigned n) {
  size_t total = 0;
  for (unsigned i = 0; i < n; i++)
    total += bufs[i].len;
  stub_append(stub_of(t), bufs, n);
  stub_of(t)->writes++;
  return (int)total;
}
static inline int stub_write(transport_t *t, const uv_buf_t *bufs, unsigned n) {
  /* try_write takes everything, so the queue never gets here; kept whole
   * all the same, completed by stub_transport_write_done. */
  stub_append(stub_of(t), bufs, n);
  stub_of(t)->writes++;
  stub_of(t)->write_pending = true;
  return 0;
}
static inline void stub_timer_start(transport_t *t, uint64_t ms,
                                    uint64_t repeat) {
  stub_of(t)->timer_on = true;
  stub_of(t)->timer_ms = ms;
  stub_of(t)->timer_repeat = repeat;
}
static inline void stub_timer_stop(transport_t *t) {
  stub_of(t)->timer_on = false;
}
static inline void stub_on_handle_closed(uv_handle_t *h) {
  stub_transport_t *st = h->data;
  if (st->base.cbs != NULL)
    st->base.cbs->on_closed(st->base.owner);
  free(st->out);
  free(st);
}
static inline void stub_close(transport_t *t) {
  stub_transport_t *st = stub_of(t);
  cr_assert(!st->closing, "transport closed twice");
  st->closing = true;
  st->reading = false;
  st->timer_on = false;
  uv_close((uv_handle_t *)&st->handle, stub_on_handle_closed);
}
static inline int stub_peer(transport_t *t, struct sockaddr_storage *ss) {
  (void)t;
  memset(ss, 0, sizeof *ss);
  return uv_ip4_addr("127.0.0.1", 4242, (struct sockaddr_in *)ss);
}
static inline size_t stub_unacked(transport_t *t) {
  (void)t;
  return 0;
}
static inline bool stub_connected(transport_t *t) {
  return !stub_of(t)->closing;
}

static const transport_ops_t stub_transport_ops = {
    .start_read = stub_start_read,
    .stop_read = stub_stop_read,
    .try_write = stub_try_write,
    .write = stub_write,
    .timer_start = stub_timer_start,
    .timer_stop = stub_timer_stop,
    .close = stub_close,
    .peer = stub_peer,
    .unacked = stub_unacked,
    .connected = stub_connected,
};

static inline stub_transport_t *stub_transport_new(uv_loop_t *loop) {
  stub_transport_t *st = calloc(1, sizeof *st);
  cr_assert_not_null(st);
  st->base.ops = &stub_transport_ops;
  cr_assert_eq(uv_idle_init(loop, &st->handle), 0);
  st->handle.data = st;
  return st;
}

/* Frees a stub whose owner cleans up by itself (no on_closed). */
static inline void stub_transport_drop(stub_transport_t *st) {
  st->base.cbs = NULL;
  if (!st->closing) {
    st->closing = true;
    uv_close((uv_handle_t *)&st->handle, stub_on_handle_closed);
  }
}

/* The peer sends len bytes: through alloc and on_data, as a socket's read
 * would, in as many reads as the owner's buffers need. */
static inline void stub_transport_feed(stub_transport_t *st,
                                       const uint8_t *bytes, size_t len) {
  while (len > 0 && st->reading) {
    uv_buf_t buf = uv_buf_init(NULL, 0);
    st->base.cbs->alloc(st->base.owner, &buf);
    if (buf.base == NULL || buf.len == 0) {
      st->base.cbs->on_error(st->base.owner, UV_ENOBUFS);
      return;
    }
    size_t n = len < buf.len ? len : buf.len;
    memcpy(buf.base, bytes, n);
    bytes += n;
    len -= n;
    st->base.cbs->on_data(st->base.owner, n);
  }
}

/* The peer closes its side. */
static inline void stub_transport_eof(stub_transport_t *st) {
  st->base.cbs->on_error(st->base.owner, UV_EOF);
}

#endif
