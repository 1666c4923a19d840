/*
 * Test harness: a raw-frame client over a blocking socket, for tests that
 * speak the wire protocol directly (malformed input, exact frames).
 */
#ifndef TERN_TESTS_RAW_CLIENT_H
#define TERN_TESTS_RAW_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "tern_proto/frame.h"
#include "tern_proto/reader.h"

typedef struct tt_raw {
  int fd;
  tp_reader_t *reader;
  tp_buf_t out;
} tt_raw_t;

/* Connects, reads HELLO (cr_assert). With do_connect, sends CONNECT
 * {proto:1, echo, verbose} and waits for OK. */
void tt_raw_open(tt_raw_t *c, int port, bool do_connect, bool echo,
                 bool verbose);
void tt_raw_close(tt_raw_t *c);
/* Encodes and sends one frame. */
void tt_raw_send(tt_raw_t *c, const tp_frame_t *f);
/* Sends raw bytes as they are. */
void tt_raw_send_bytes(tt_raw_t *c, const void *p, size_t n);
/* Next frame within timeout_ms: 1 (frame in *f, valid until the next call),
 * 0 on timeout, -1 on EOF / connection reset, or a TP_E* decode error. */
int tt_raw_recv(tt_raw_t *c, tp_frame_t *f, int timeout_ms);
/* Next frame, which must be of the given type (cr_assert). */
void tt_raw_expect(tt_raw_t *c, tp_frame_t *f, int type, int timeout_ms);
/* PING, then skip frames until PONG, collecting nothing (barrier). */
void tt_raw_barrier(tt_raw_t *c);
/* True when the peer closed the connection within timeout_ms (frames
 * before the close are skipped). */
bool tt_raw_wait_closed(tt_raw_t *c, int timeout_ms);

/* Additions beyond the agreed interface. Note: a frame the harness cannot
 * decode fails the test inside tt_raw_recv (TP_EPROTO is -1, the same value
 * as EOF, so it could not be told apart from a close). */

/* A tp_str_t view of a NUL-terminated string. */
static inline tp_str_t tt_str(const char *s) {
  tp_str_t r = {s, 0};
  while (s && s[r.len])
    r.len++;
  return r;
}
/* True when the view equals the NUL-terminated string. */
bool tt_str_eq(tp_str_t a, const char *s);

/* Like tt_raw_open; rcvbuf > 0 sets SO_RCVBUF before connect, so a reader
 * that stops reading fills up after a few KiB. */
void tt_raw_open_ex(tt_raw_t *c, int port, int rcvbuf, bool do_connect,
                    bool echo, bool verbose);
/* Wraps an already connected socket without reading anything (for tests
 * that inspect HELLO or expect the broker to refuse the connection). */
void tt_raw_attach(tt_raw_t *c, int fd);
/* Sends CONNECT {proto:1, echo, verbose} and expects OK. */
void tt_raw_connect(tt_raw_t *c, bool echo, bool verbose);

/* Encodes one frame after those already queued, without sending. */
void tt_raw_queue(tt_raw_t *c, const tp_frame_t *f);
/* Sends every queued frame in one write. */
void tt_raw_flush(tt_raw_t *c);

/* PUB [3, topic, payload]. */
void tt_raw_pub(tt_raw_t *c, const char *topic, const void *payload,
                size_t len);
/* SUB [4, sid, pattern] or, with queue != NULL, {queue}. */
void tt_raw_sub(tt_raw_t *c, uint64_t sid, const char *pattern,
                const char *queue);
/* SUB with flow options (queue may be NULL, max_msgs 0 = the server's
 * default, policy a tp_overflow), then a strict PING barrier. */
void tt_raw_sub_policy(tt_raw_t *c, uint64_t sid, const char *pattern,
                       const char *queue, uint64_t max_msgs, int policy);
/* UNSUB [5, sid] or, with max_msgs > 0, [5, sid, max_msgs]. */
void tt_raw_unsub(tt_raw_t *c, uint64_t sid, uint64_t max_msgs);

/* Next frame must be ERR with this code (server PINGs are answered). */
void tt_raw_expect_err(tt_raw_t *c, int code, int timeout_ms);
/* Next frame must be this MSG (server PINGs are answered). */
void tt_raw_expect_msg(tt_raw_t *c, uint64_t sid, const char *topic,
                       const void *payload, size_t len, int timeout_ms);
/* PING, and the very next frame must be PONG: nothing (no OK, no ERR, no
 * MSG) is pending on the connection. */
void tt_raw_barrier_strict(tt_raw_t *c);
/* Proves the connection is alive and served: subscribes a fresh sid to a
 * fresh topic, publishes to it, receives the MSG, unsubscribes. Needs a
 * CONNECTed connection with echo on and verbose off. */
void tt_raw_check_pubsub(tt_raw_t *c);
/* Frames whose receive is the point of a test use this timeout; absent
 * frames are proven with barriers, never with this. */
#define TT_RECV_MS 10000

#endif
