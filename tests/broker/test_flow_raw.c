/*
 * Flow-control smoke tests in raw frames (PROTOCOL.md "Flow control and
 * backpressure"): a subscriber that stops reading, with drop_newest (it
 * sees DROPPED counts that account for every message) and with disconnect
 * (ERR 6 and close, while a healthy subscriber gets everything).
 *
 * The slow subscriber's socket has a tiny receive buffer, and the messages
 * are large enough (8 MiB in all) that the kernel buffers cannot hide the
 * overflow: the broker's pending queue must fill.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "raw_client.h"

TT_BROKER_FIXTURE_DEFAULT(plain)

TestSuite(flow, .init = plain_init, .fini = plain_fini, .timeout = 90);

enum { TOTAL = 1000, SIZE = 8192, SLOW_RCVBUF = 4096, BATCH = 20 };

/* Queues PUBs of seq first..first+n-1; the payload starts with seq. */
static void queue_pubs(tt_raw_t *p, const char *topic, uint8_t *payload,
                       uint32_t first, uint32_t n) {
  for (uint32_t i = first; i < first + n; i++) {
    payload[0] = (uint8_t)(i >> 24);
    payload[1] = (uint8_t)(i >> 16);
    payload[2] = (uint8_t)(i >> 8);
    payload[3] = (uint8_t)i;
    tp_frame_t f;
    tp_frame_init(&f, TP_PUB);
    f.u.pub.topic = tt_str(topic);
    f.u.pub.payload.ptr = payload;
    f.u.pub.payload.len = SIZE;
    tt_raw_queue(p, &f);
  }
}

static uint32_t seq_of(const tp_frame_t *f) {
  cr_assert_eq(f->u.msg.payload.len, (uint32_t)SIZE);
  const uint8_t *b = f->u.msg.payload.ptr;
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         b[3];
}

/*
 * drop_newest: publish TOTAL while the subscriber sleeps, then let it read.
 * DROPPED must come before the next MSG after a gap, so the test keeps
 * publishing single markers until one is delivered: then every message
 * published so far is either received or counted in a DROPPED.
 */
Test(flow, drop_newest_counts_every_message) {
  tt_raw_t s, p;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&s, 1, "flow.drop", NULL, 10, TP_OVERFLOW_DROP_NEWEST);
  uint8_t *payload = calloc(1, SIZE);
  cr_assert_not_null(payload);
  for (uint32_t sent = 0; sent < TOTAL; sent += BATCH) {
    queue_pubs(&p, "flow.drop", payload, sent, BATCH);
    tt_raw_flush(&p);
  }
  /* drop_newest never blocks the publisher: its PONG comes back. */
  tt_raw_barrier_strict(&p);

  uint64_t received = 0, dropped = 0, notices = 0;
  int64_t last_seq = -1;
  uint32_t published = TOTAL;
  bool marker_seen = false;
  bool gap_seen = false; /* the first gap: oldest first, then drops */
  while (!marker_seen) {
    cr_assert_lt(published, (uint32_t)TOTAL + 100, "no marker delivered");
    queue_pubs(&p, "flow.drop", payload, published++, 1);
    tt_raw_flush(&p);
    tp_frame_t f;
    /* Each wait ends either with the marker or with the queue drained. */
    int r;
    while ((r = tt_raw_recv(&s, &f, 500)) == 1) {
      if (f.type == TP_DROPPED) {
        cr_assert_eq(f.u.dropped.sid, 1u);
        cr_assert_gt(f.u.dropped.count, 0u, "DROPPED with count 0");
        dropped += f.u.dropped.count;
        notices++;
        continue;
      }
      cr_assert_eq(f.type, TP_MSG, "unexpected %s", tp_frame_type_name(f.type));
      int64_t seq = seq_of(&f);
      cr_assert_gt(seq, last_seq, "message %lld after %lld", (long long)seq,
                   (long long)last_seq);
      /* drop_newest keeps the oldest: the stream starts 0, 1, 2, ... with
       * at least the queue's limit before the first gap. */
      if (seq != last_seq + 1 && !gap_seen) {
        gap_seen = true;
        cr_assert_geq(seq, 10, "gap before the queue was full, at %lld",
                      (long long)seq);
      }
      last_seq = seq;
      received++;
      if (seq == published - 1) {
        marker_seen = true;
        break;
      }
    }
    cr_assert_neq(r, -1, "the subscriber was closed");
  }
  cr_assert_gt(notices, 0u, "no DROPPED notice");
  cr_assert(gap_seen, "nothing was dropped");
  cr_assert_eq(received + dropped, published,
               "received %llu + dropped %llu != published %u",
               (unsigned long long)received, (unsigned long long)dropped,
               published);
  tt_raw_barrier_strict(&s);
  free(payload);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/*
 * disconnect: the slow subscriber gets ERR 6 and is closed; a healthy
 * subscriber on the same topic gets all TOTAL in order. The healthy one is
 * read after every batch, and a batch fits in the socket buffers, so the
 * test never waits on its own unread data.
 */
Test(flow, disconnect_slow_consumer) {
  tt_raw_t slow, good, p;
  tt_raw_open_ex(&slow, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&good, tt_g_broker.port, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&slow, 1, "flow.dc", NULL, 10, TP_OVERFLOW_DISCONNECT);
  tt_raw_sub(&good, 2, "flow.dc", NULL);
  tt_raw_barrier_strict(&good);
  uint8_t *payload = calloc(1, SIZE);
  cr_assert_not_null(payload);
  for (uint32_t sent = 0; sent < TOTAL; sent += BATCH) {
    queue_pubs(&p, "flow.dc", payload, sent, BATCH);
    tt_raw_flush(&p);
    for (uint32_t i = sent; i < sent + BATCH; i++) {
      tp_frame_t f;
      tt_raw_expect(&good, &f, TP_MSG, TT_RECV_MS);
      cr_assert_eq(seq_of(&f), i);
    }
  }
  tt_raw_barrier_strict(&p);
  tt_raw_barrier_strict(&good);

  /* The slow one: whatever MSGs made it, in order, then ERR 6, then EOF. */
  int64_t last_seq = -1;
  tp_frame_t f;
  for (;;) {
    int r = tt_raw_recv(&slow, &f, TT_RECV_MS);
    cr_assert_eq(r, 1, "slow consumer: %s before ERR 6",
                 r == 0 ? "timeout" : "close");
    if (f.type != TP_MSG)
      break;
    int64_t seq = seq_of(&f);
    cr_assert_gt(seq, last_seq);
    last_seq = seq;
  }
  cr_assert_eq(f.type, TP_ERR, "slow consumer got %s",
               tp_frame_type_name(f.type));
  cr_assert_eq(f.u.err.code, 6u, "ERR %u", f.u.err.code);
  cr_assert_lt(last_seq, TOTAL - 1, "the slow consumer was never slow");
  cr_assert(tt_raw_wait_closed(&slow, TT_RECV_MS), "not closed after ERR 6");
  tt_raw_check_pubsub(&good);
  free(payload);
  tt_raw_close(&p);
  tt_raw_close(&good);
  tt_raw_close(&slow);
}

/*
 * drop_oldest: the same flood; the queue keeps the newest. After the flood
 * (the publisher's PONG proves it was all routed) the last LIMIT messages
 * of the flood are all delivered, and received + dropped == published.
 * Each DROPPED sits exactly at its gap: the next MSG's sequence number is
 * the last one seen + 1 + the count, never a gap without a notice before
 * it, never a notice in the middle of a run of consecutive messages.
 */
Test(flow, drop_oldest_keeps_the_newest) {
  enum { LIMIT = 10 };
  tt_raw_t s, p;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&s, 1, "flow.old", NULL, LIMIT, TP_OVERFLOW_DROP_OLDEST);
  uint8_t *payload = calloc(1, SIZE);
  cr_assert_not_null(payload);
  for (uint32_t sent = 0; sent < TOTAL; sent += BATCH) {
    queue_pubs(&p, "flow.old", payload, sent, BATCH);
    tt_raw_flush(&p);
  }
  tt_raw_barrier_strict(&p);
  /* One marker after the flood: drop_oldest always makes room for it. */
  queue_pubs(&p, "flow.old", payload, TOTAL, 1);
  tt_raw_flush(&p);
  uint32_t published = TOTAL + 1;

  uint64_t received = 0, dropped = 0, notices = 0;
  int64_t expect = 0; /* the next sequence number, gaps reported so far */
  bool notice_pending = false;
  /* Consecutive sequence numbers ending at the last one. */
  uint32_t tail_run = 0;
  for (;;) {
    tp_frame_t f;
    int r = tt_raw_recv(&s, &f, TT_RECV_MS);
    cr_assert_eq(r, 1, "subscriber %s before the marker",
                 r == 0 ? "timed out" : "closed");
    if (f.type == TP_DROPPED) {
      cr_assert_eq(f.u.dropped.sid, 1u);
      cr_assert_gt(f.u.dropped.count, 0u, "DROPPED with count 0");
      cr_assert_not(notice_pending, "two DROPPED for one gap");
      dropped += f.u.dropped.count;
      expect += (int64_t)f.u.dropped.count;
      notices++;
      notice_pending = true;
      continue;
    }
    cr_assert_eq(f.type, TP_MSG, "unexpected %s", tp_frame_type_name(f.type));
    int64_t seq = seq_of(&f);
    cr_assert_eq(seq, expect,
                 "message %lld where %lld was due: a gap without its "
                 "DROPPED, or a DROPPED away from its gap",
                 (long long)seq, (long long)expect);
    tail_run = notice_pending ? 1 : tail_run + 1;
    notice_pending = false;
    expect = seq + 1;
    received++;
    if (seq == (int64_t)published - 1)
      break;
  }
  cr_assert_gt(dropped, 0u, "nothing was dropped");
  cr_assert_eq(received + dropped, published,
               "received %llu + dropped %llu != published %u",
               (unsigned long long)received, (unsigned long long)dropped,
               published);
  /* The newest survive: the last LIMIT messages published (the marker
   * included) arrived with no gap between them. */
  cr_assert_geq(tail_run, (uint32_t)LIMIT, "only the last %u arrived in a row",
                tail_run);
  cr_log_info("drop_oldest: %llu received, %llu dropped in %llu notices",
              (unsigned long long)received, (unsigned long long)dropped,
              (unsigned long long)notices);
  tt_raw_barrier_strict(&s);
  free(payload);
  tt_raw_close(&p);
  tt_raw_close(&s);
}
