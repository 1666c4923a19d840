/*
 * Test harness: assertion-free socket and frame helpers.
 *
 * raw_client.h fails the test with cr_assert, which is only safe on the
 * test's main thread. Load tests run publishers, subscribers and hostile
 * clients on worker threads and juggle hundreds of sockets: these helpers
 * return errors instead, and the main thread asserts on what they report.
 */
#ifndef TERN_TESTS_WIRE_H
#define TERN_TESTS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern_proto/buf.h"
#include "tern_proto/frame.h"
#include "tern_proto/reader.h"

/* A connected blocking TCP socket to 127.0.0.1:port (TCP_NODELAY; rcvbuf
 * > 0 sets SO_RCVBUF before connect), or -errno. */
int tt_wire_connect(int port, int rcvbuf);
/* Closes fd with SO_LINGER 0: the peer sees a reset, not a FIN. */
void tt_wire_reset(int fd);

/* One connection's receiving side. */
typedef struct tt_wire {
  int fd;
  tp_reader_t *reader;
} tt_wire_t;

/* Wraps fd (owned from now on). 0 or a TP_E* error. */
int tt_wire_init(tt_wire_t *w, int fd);
/* Closes the socket (unless already -1) and frees the reader. */
void tt_wire_free(tt_wire_t *w);
/* Next frame within timeout_ms: 1 (in *f, valid until the next call), 0 on
 * timeout, -1 on EOF or reset, or a TP_E* decode error (< -1 never
 * collides: TP_EPROTO is reported as -100). */
int tt_wire_recv(tt_wire_t *w, tp_frame_t *f, int timeout_ms);
#define TT_WIRE_EPROTO (-100)

/* Appends frame f to out. 0 or a TP_E* error. */
int tt_wire_encode(tp_buf_t *out, const tp_frame_t *f);
/* CONNECT {proto:1, echo, verbose:false} appended to out. */
int tt_wire_encode_connect(tp_buf_t *out, bool echo);
/* SUB [4, sid, pattern, {queue?, max_msgs?, overflow?}] appended to out. */
int tt_wire_encode_sub(tp_buf_t *out, uint64_t sid, const char *pattern,
                       const char *queue, uint64_t max_msgs, int overflow);
/* PUB [3, topic, payload] (with {ack} when ack > 0) appended to out. */
int tt_wire_encode_pub(tp_buf_t *out, const char *topic, const void *payload,
                       size_t len, uint64_t ack);
/* PING [7] appended to out. */
int tt_wire_encode_ping(tp_buf_t *out);

/* Reads frames until PONG within timeout_ms, answering server PINGs.
 * err_code (if not NULL) gets the code of the last ERR seen (0: none).
 * 1 on PONG, 0 on timeout, -1 on close, < -1 on a decode error. */
int tt_wire_wait_pong(tt_wire_t *w, int timeout_ms, int *err_code);

/* Big-endian uint32 into the first 4 bytes of a MSG payload, and back. */
void tt_put_seq(uint8_t *p, uint32_t seq);
uint32_t tt_get_seq(const uint8_t *p);

#endif
