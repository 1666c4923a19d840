/*
 * conn: one broker connection of the load generator: a non-blocking TCP
 * socket, an input buffer parsed in place by the adapter, and an output
 * buffer written with as few write() calls as the kernel allows.
 *
 * A conn belongs to one thread. Setup uses the blocking helpers
 * (bench_conn_open, bench_conn_barrier); the measured loops use
 * bench_conn_flush / bench_conn_read / bench_conn_next directly.
 */
#ifndef TERN_BENCH_CONN_H
#define TERN_BENCH_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapter.h"

struct ttls_ctx;
struct ttls_conn;

typedef struct bench_conn {
  int fd;
  struct ttls_conn *tls; /* NULL: plaintext */
  size_t tls_pending;    /* ciphertext the socket has not taken yet */
  const bench_adapter_t *ad;
  void *state; /* the adapter's parser state */
  uint8_t *in; /* owned */
  size_t in_cap, in_start, in_end;
  tp_buf_t out; /* commands not written yet, from out_off on */
  size_t out_off;
  char err[256]; /* why the last call failed */
} bench_conn_t;

/*
 * Connects to host:port (over TLS with tls: the handshake first, or for
 * nats after its INFO), sends the adapter's CONNECT and a ping, and waits
 * for the pong (timeout_ms), so the session is usable when this returns 0.
 * On failure c->err says why and the conn must still be closed.
 */
int bench_conn_open(bench_conn_t *c, const bench_adapter_t *ad,
                    const char *host, int port, const char *client_id,
                    int timeout_ms, struct ttls_ctx *tls);
/* Closes the socket and frees the buffers. Safe on a failed open. */
void bench_conn_close(bench_conn_t *c);

/* Bytes queued in c->out and not written yet. */
static inline size_t bench_conn_pending(const bench_conn_t *c) {
  return c->out.len - c->out_off + c->tls_pending;
}
/* Writes what the socket takes now. 0 (maybe partial) or -1. */
int bench_conn_flush(bench_conn_t *c);
/* Reads what is there now. >0 bytes read, 0 nothing (EAGAIN), -1 EOF/error. */
long bench_conn_read(bench_conn_t *c);
/*
 * Takes the next buffered event. 1: *ev is valid until the next read;
 * 0: nothing complete buffered; -1: broken stream or a server error (c->err).
 * Server pings are answered here (queued in c->out) and not returned.
 */
int bench_conn_next(bench_conn_t *c, bench_ev_t *ev);
/*
 * Polls the socket for input (and for output while some is pending) up to
 * timeout_ms, then flushes and reads once. 0 or -1.
 */
int bench_conn_poll(bench_conn_t *c, int timeout_ms);
/*
 * Appends a ping, writes everything and waits for the pong, skipping other
 * events (a delivered message here is counted in *skipped_msgs if given).
 * The barrier of every protocol here: commands before it are done.
 */
int bench_conn_barrier(bench_conn_t *c, int timeout_ms, uint64_t *skipped_msgs);
/* Waits for the next delivered message (request/reply). 1, 0 timeout, -1. */
int bench_conn_wait_msg(bench_conn_t *c, bench_ev_t *ev, int timeout_ms);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

#endif
