/*
 * The `block` policy end to end (PROTOCOL.md "Flow control and
 * backpressure"): a subscriber that stops reading stops its publisher,
 * nothing is lost, and the publisher resumes when the subscriber reads,
 * leaves, unsubscribes or is closed for stalling.
 *
 * The publisher floods from a thread (flood.h) and ends with a PING. Its
 * PONG is the proof of progress: the broker handles a connection's frames
 * in order, so the PONG cannot come before every PUB of the flood has been
 * routed, and a blocked publisher is not read at all.
 */
#include <criterion/criterion.h>

#include <stdlib.h>

#include "broker_proc.h"
#include "flood.h"
#include "raw_client.h"

/* 16 MiB: far more than a 10-message queue plus every socket buffer on
 * the way (the slow side's receive buffer is 4 KiB). */
enum { TOTAL = 2048, SIZE = 8192, SLOW_RCVBUF = 4096, LIMIT = 10 };

/* Absent frames are proven by ordering, and this wait only gives a broker
 * that wrongly forwarded the PING time to answer it. */
#define NO_PONG_WAIT_MS 300

/* The stall timeout of the "release" suite never fires within a test, so
 * only what the test does can release the publisher. */
TT_BROKER_FIXTURE(patient, "--stall-timeout-ms", "600000")
TT_BROKER_FIXTURE(impatient, "--stall-timeout-ms", "300")

TestSuite(block, .init = patient_init, .fini = patient_fini, .timeout = 60);
TestSuite(stall, .init = impatient_init, .fini = impatient_fini, .timeout = 60);

Test(block, publisher_stalls_then_everything_arrives_in_order) {
  tt_raw_t s, p;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&s, 1, "blk.order", NULL, LIMIT, TP_OVERFLOW_BLOCK);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "blk.order", 0, TOTAL, SIZE, true);
  tt_flood_expect_held(&p, NO_PONG_WAIT_MS);
  /* The subscriber reads: everything, in order, no DROPPED (the strict
   * expectation fails on any other frame). */
  tt_flood_read_in_order(&s, 1, 0, TOTAL, SIZE);
  tt_flood_expect_done(&p, &fl);
  tt_raw_barrier_strict(&s);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

Test(block, publisher_resumes_when_subscriber_disconnects) {
  tt_raw_t s, p, other;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_open(&other, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&s, 1, "blk.dc", NULL, LIMIT, TP_OVERFLOW_BLOCK);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "blk.dc", 0, TOTAL, SIZE, true);
  tt_flood_expect_held(&p, NO_PONG_WAIT_MS);
  tt_raw_close(&s);
  tt_flood_expect_done(&p, &fl);
  /* The broker is not frozen for anyone else either. */
  tt_raw_check_pubsub(&other);
  tt_raw_check_pubsub(&p);
  tt_raw_close(&other);
  tt_raw_close(&p);
}

Test(block, publisher_resumes_when_subscriber_unsubscribes) {
  tt_raw_t s, p;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&s, 1, "blk.unsub", NULL, LIMIT, TP_OVERFLOW_BLOCK);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "blk.unsub", 0, TOTAL, SIZE, true);
  tt_flood_expect_held(&p, NO_PONG_WAIT_MS);
  /* The subscriber's own frames are still read: UNSUB releases the
   * publisher although nothing was drained. */
  tt_raw_unsub(&s, 1, 0);
  tt_flood_expect_done(&p, &fl);
  /* What was queued before the UNSUB still arrives, in order, from 0;
   * nothing after it. */
  uint32_t next = 0;
  tp_frame_t f;
  tp_frame_init(&f, TP_PING);
  tt_raw_send(&s, &f);
  int r;
  while ((r = tt_raw_recv(&s, &f, TT_RECV_MS)) == 1 && f.type == TP_MSG) {
    cr_assert_eq(tt_flood_seq(&f, SIZE), next, "gap at %u", next);
    next++;
  }
  cr_assert_eq(r, 1, "subscriber closed or silent");
  cr_assert_eq(f.type, TP_PONG, "got %s", tp_frame_type_name(f.type));
  cr_assert_lt(next, (uint32_t)TOTAL, "the subscriber was never behind");
  tt_raw_barrier_strict(&s);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

Test(stall, stuck_block_subscriber_is_disconnected_and_publisher_resumes) {
  tt_raw_t s, good, p;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&good, tt_g_broker.port, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&s, 1, "blk.stall", NULL, LIMIT, TP_OVERFLOW_BLOCK);
  /* A healthy reader elsewhere: the publisher reaches it afterwards. */
  tt_raw_sub(&good, 2, "blk.stall.done", NULL);
  tt_raw_barrier_strict(&good);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "blk.stall", 0, TOTAL, SIZE, true);
  /* Nobody reads the stuck subscriber: only the stall timeout can let the
   * flood finish. */
  tt_flood_expect_done(&p, &fl);
  /* The stuck one: a prefix of the stream in order, then ERR 6, close. */
  uint32_t next = 0;
  tp_frame_t f;
  for (;;) {
    int r = tt_raw_recv(&s, &f, TT_RECV_MS);
    cr_assert_eq(r, 1, "no ERR 6 before %s", r == 0 ? "timeout" : "close");
    if (f.type != TP_MSG)
      break;
    cr_assert_eq(tt_flood_seq(&f, SIZE), next, "gap at %u", next);
    next++;
  }
  cr_assert_eq(f.type, TP_ERR, "got %s", tp_frame_type_name(f.type));
  cr_assert_eq(f.u.err.code, 6u);
  cr_assert_lt(next, (uint32_t)TOTAL);
  cr_assert(tt_raw_wait_closed(&s, TT_RECV_MS));
  /* The publisher is read normally again. */
  tt_raw_pub(&p, "blk.stall.done", "x", 1);
  tt_raw_expect_msg(&good, 2, "blk.stall.done", "x", 1, TT_RECV_MS);
  tt_raw_check_pubsub(&p);
  tt_raw_close(&p);
  tt_raw_close(&good);
  tt_raw_close(&s);
}
