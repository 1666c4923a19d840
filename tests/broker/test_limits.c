/*
 * Configurable limits that test_errors_raw.c and test_session.c leave out
 * (they cover ERR 4, 5, 7, 10, 11, 12 and 13): the server's cap on a
 * subscription's pending bytes (--max-pending-bytes) and the stall timeout
 * of a full `block` subscription (--stall-timeout-ms). Both end in ERR 6
 * for the subscriber, while the publisher and a healthy subscriber go on.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "raw_client.h"
#include "tern_proto/errors.h"

TT_BROKER_FIXTURE(pending, "--max-pending-bytes", "65536")
TT_BROKER_FIXTURE(stall, "--stall-timeout-ms", "200")
TT_BROKER_FIXTURE(topic16, "--max-topic", "16")

TestSuite(limits, .timeout = 60);

enum { SIZE = 8192, COUNT = 1000, SLOW_RCVBUF = 4096 };

static void sub_opts(tt_raw_t *c, const char *pattern, uint64_t max_bytes,
                     int policy) {
  tp_frame_t f;
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = 1;
  f.u.sub.pattern = tt_str(pattern);
  f.u.sub.max_bytes = max_bytes;
  f.u.sub.overflow = policy;
  tt_raw_send(c, &f);
  tt_raw_barrier_strict(c);
}

/* Publishes COUNT messages of SIZE bytes (8 MiB: more than any kernel
 * buffer between the broker and a subscriber that does not read). */
static void flood(tt_raw_t *p, const char *topic) {
  uint8_t *payload = calloc(1, SIZE);
  cr_assert_not_null(payload);
  for (int i = 0; i < COUNT; i++) {
    tp_frame_t f;
    tp_frame_init(&f, TP_PUB);
    f.u.pub.topic = tt_str(topic);
    f.u.pub.payload.ptr = payload;
    f.u.pub.payload.len = SIZE;
    tt_raw_queue(p, &f);
    if (i % 50 == 49)
      tt_raw_flush(p);
  }
  tt_raw_flush(p);
  free(payload);
}

/* Reads until the close: the last ERR code (0: none). */
static int last_err(tt_raw_t *c) {
  int code = 0;
  for (;;) {
    tp_frame_t f;
    int r = tt_raw_recv(c, &f, TT_RECV_MS);
    cr_assert_neq(r, 0, "not closed");
    if (r < 0)
      return code;
    if (f.type == TP_ERR)
      code = (int)f.u.err.code;
  }
}

/* The subscriber asks for 1 GiB of pending bytes; the server caps it at
 * 64 KiB, so `disconnect` fires long before the flood ends. */
Test(limits, max_pending_bytes_caps_what_a_sub_asks, .init = pending_init,
     .fini = pending_fini) {
  tt_raw_t slow, pub;
  tt_raw_open_ex(&slow, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&pub, tt_g_broker.port, true, true, false);
  sub_opts(&slow, "lim.bytes", 1u << 30, TP_OVERFLOW_DISCONNECT);
  flood(&pub, "lim.bytes");
  tt_raw_barrier(&pub);
  cr_assert_eq(last_err(&slow), 6, "expected ERR 6 (slow consumer)");
  tt_raw_check_pubsub(&pub);
  tt_raw_close(&slow);
  tt_raw_close(&pub);
}

/* A full `block` subscription whose reader never reads: after the stall
 * timeout it is closed with ERR 6 and the blocked publisher resumes (its
 * PONG arrives), while a reading subscriber got every message. */
Test(limits, stall_timeout_releases_blocked_publisher, .init = stall_init,
     .fini = stall_fini) {
  tt_raw_t dead, live, pub;
  tt_raw_open_ex(&dead, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&live, tt_g_broker.port, true, true, false);
  tt_raw_open(&pub, tt_g_broker.port, true, true, false);
  sub_opts(&dead, "lim.stall", 65536, TP_OVERFLOW_BLOCK);
  sub_opts(&live, "lim.stall", 0, TP_OVERFLOW_BLOCK);
  flood(&pub, "lim.stall");
  tt_raw_barrier(&pub);
  cr_assert_eq(last_err(&dead), 6, "expected ERR 6 (stalled consumer)");
  tp_frame_t f;
  for (int i = 0; i < COUNT; i++)
    tt_raw_expect(&live, &f, TP_MSG, TT_RECV_MS);
  tt_raw_barrier_strict(&live);
  tt_raw_close(&dead);
  tt_raw_close(&live);
  tt_raw_close(&pub);
}

/* --max-topic: a topic or pattern one byte over the limit is ERR 4 (the
 * connection goes on); one of exactly the limit is accepted. */
Test(limits, max_topic_bounds_topics_and_patterns, .init = topic16_init,
     .fini = topic16_fini) {
  tt_raw_t c;
  tp_frame_t f;
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  tt_raw_sub(&c, 1, "a.bcdefghijklmno", NULL); /* 16 bytes */
  tt_raw_barrier_strict(&c);
  tt_raw_sub(&c, 2, "a.bcdefghijklmnop", NULL); /* 17 bytes */
  tt_raw_expect_err(&c, TP_WIRE_INVALID_TOPIC, TT_RECV_MS);
  tt_raw_pub(&c, "a.bcdefghijklmnop", "x", 1);
  tt_raw_expect_err(&c, TP_WIRE_INVALID_TOPIC, TT_RECV_MS);
  tt_raw_pub(&c, "a.bcdefghijklmno", "y", 1);
  tt_raw_expect(&c, &f, TP_MSG, TT_RECV_MS);
  cr_assert_eq(f.u.msg.sid, 1u);
  cr_assert_eq(f.u.msg.payload.len, 1u);
  cr_assert_eq(f.u.msg.payload.ptr[0], 'y');
  tt_raw_close(&c);
}
