/*
 * Flow control with small messages, which the broker packs into
 * per-connection chunks (broker/data/outq.h) instead of one queue
 * entry each: every policy's limits, pauses and drops, and the pending
 * counters of /subz, must come out exactly as with one entry per message,
 * and a subscription that goes away while its messages sit in a chunk must
 * leave them to be sent without being counted against anything.
 *
 * SIZE keeps each MSG (head + topic + payload) under the broker's chunk
 * limit (OUTQ_CHUNK_MSG_MAX, 512 bytes); TOTAL x SIZE is 16 MiB, far more
 * than the socket buffers on the way to a subscriber whose receive buffer
 * is 4 KiB, so its pending queue fills. Absent frames are proven with
 * PING/PONG barriers.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "flood.h"
#include "ops_util.h"
#include "raw_client.h"

enum { TOTAL = 40000, SIZE = 400, SLOW_RCVBUF = 4096, LIMIT = 10 };

/* See test_flow_block.c: only gives a wrongly forwarded PING time to come
 * back; the proof is the ordering. */
#define NO_PONG_WAIT_MS 300

TT_BROKER_FIXTURE(mon, "--http-port", "-1", "--stall-timeout-ms", "600000")

/* max_pending_total far below what two stalled subscribers would hold. */
TT_BROKER_FIXTURE(gate, "--http-port", "-1", "--max-pending-total", "1048576",
                  "--max-pending-bytes", "268435456", "--max-pending-msgs",
                  "1000000", "--stall-timeout-ms", "300")

TestSuite(chunks, .init = mon_init, .fini = mon_fini, .timeout = 120);
TestSuite(chunks_total, .init = gate_init, .fini = gate_fini, .timeout = 120);

static char body[1 << 20];

/*
 * A counter of the subscription with this (test-unique) pattern and sid in
 * /subz, or -1 when there is no such subscription.
 */
static int64_t subz(const char *pattern, uint64_t sid, const char *field) {
  cr_assert_eq(ops_http_get(tt_g_broker.http_port, "/subz", body, sizeof body),
               200);
  char key[160];
  snprintf(key, sizeof key, "\"sid\":%llu,\"pattern\":\"%s\"",
           (unsigned long long)sid, pattern);
  const char *at = strstr(body, key);
  if (at == NULL)
    return -1;
  const char *end = strchr(at, '}');
  snprintf(key, sizeof key, "\"%s\":", field);
  const char *v = strstr(at, key);
  cr_assert(v != NULL && v < end, "no %s in %s", field, body);
  return strtoll(v + strlen(key), NULL, 10);
}

/* block: a 10-message queue stops the publisher; once the subscriber reads
 * everything arrives in order and the queue's counters are back to 0. */
Test(chunks, block_pauses_and_resumes_with_small_messages) {
  tt_raw_t s, p;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&s, 1, "chk.block", NULL, LIMIT, TP_OVERFLOW_BLOCK);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "chk.block", 0, TOTAL, SIZE, true);
  tt_flood_expect_held(&p, NO_PONG_WAIT_MS);
  /* The publisher stops after the MSG that fills the queue: never more
   * than the limit (in flight included). */
  int64_t pending = subz("chk.block", 1, "pending_msgs");
  cr_assert(pending >= 0 && pending <= LIMIT, "pending_msgs %lld",
            (long long)pending);
  tt_flood_read_in_order(&s, 1, 0, TOTAL, SIZE);
  tt_flood_expect_done(&p, &fl);
  tt_raw_barrier_strict(&s);
  cr_assert_eq(subz("chk.block", 1, "pending_msgs"), 0);
  cr_assert_eq(subz("chk.block", 1, "pending_bytes"), 0);
  cr_assert_eq(subz("chk.block", 1, "delivered"), TOTAL);
  cr_assert_eq(subz("chk.block", 1, "dropped"), 0);
  cr_assert_eq(subz("chk.block", 1, "blocked_publishers"), 0);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/*
 * UNSUB while the subscription's messages sit in the broker: what was
 * queued is still sent, in order, and nothing after; the broker neither
 * counts them against anything nor touches the gone subscription (ASan
 * and valgrind runs check the latter).
 */
Test(chunks, unsub_while_messages_are_queued) {
  tt_raw_t s, p;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&s, 1, "chk.unsub", NULL, 1000, TP_OVERFLOW_DROP_NEWEST);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "chk.unsub", 0, TOTAL, SIZE, true);
  tt_flood_expect_done(&p, &fl); /* drop_newest never blocks */
  int64_t delivered = subz("chk.unsub", 1, "delivered");
  cr_assert_gt(subz("chk.unsub", 1, "pending_msgs"), 0,
               "nothing pending: the test proves nothing");
  cr_assert_lt(delivered, TOTAL, "the subscriber was never behind");
  tt_raw_unsub(&s, 1, 0);
  tp_frame_t f;
  tp_frame_init(&f, TP_PING);
  tt_raw_send(&s, &f);
  /* Every MSG queued before the UNSUB, in order; drops (if the queue took
   * messages again during the flood) are reported before the next MSG. */
  int64_t received = 0, dropped = 0, last = -1;
  for (;;) {
    int r = tt_raw_recv(&s, &f, TT_RECV_MS);
    cr_assert_eq(r, 1, "subscriber %s before its PONG",
                 r == 0 ? "timed out" : "closed");
    if (f.type == TP_PONG)
      break;
    if (f.type == TP_DROPPED) {
      dropped += (int64_t)f.u.dropped.count;
      continue;
    }
    int64_t seq = tt_flood_seq(&f, SIZE);
    cr_assert_gt(seq, last, "out of order at %lld", (long long)seq);
    cr_assert_eq(seq, received + dropped, "unreported gap at %lld",
                 (long long)seq);
    last = seq;
    received++;
  }
  cr_assert_eq(received, delivered, "received %lld of %lld queued",
               (long long)received, (long long)delivered);
  cr_assert_eq(subz("chk.unsub", 1, "pending_msgs"), -1, "still subscribed");
  /* Nothing more arrives, and the connection is served. */
  tt_flood_start(&fl, p.fd, "chk.unsub", 0, 100, SIZE, true);
  tt_flood_expect_done(&p, &fl);
  tt_raw_barrier_strict(&s);
  tt_raw_check_pubsub(&s);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/*
 * Subscribers that close with messages queued, one of them with two
 * subscriptions whose messages alternate in its chunks: the broker frees
 * everything and serves the others.
 */
Test(chunks, close_while_messages_are_queued) {
  tt_raw_t a, b, p, good;
  tt_raw_open_ex(&a, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open_ex(&b, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&good, tt_g_broker.port, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&a, 1, "chk.close", NULL, 1000, TP_OVERFLOW_DROP_NEWEST);
  tt_raw_sub_policy(&b, 1, "chk.close", NULL, 1000, TP_OVERFLOW_DROP_NEWEST);
  tt_raw_sub_policy(&b, 2, "chk.close", NULL, 1000, TP_OVERFLOW_DROP_NEWEST);
  tt_raw_sub_policy(&good, 1, "chk.close", NULL, 0, TP_OVERFLOW_BLOCK);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "chk.close", 0, TOTAL / 4, SIZE, true);
  tt_flood_read_in_order(&good, 1, 0, TOTAL / 4, SIZE);
  tt_flood_expect_done(&p, &fl);
  cr_assert_gt(subz("chk.close", 2, "pending_msgs"), 0);
  tt_raw_close(&a);
  tt_raw_close(&b);
  /* The broker sees the closes in its own time: round trips until it has
   * (bounded; each barrier is a full PING/PONG, not a sleep). */
  int64_t deadline = tt_now_ms() + TT_RECV_MS;
  for (;;) {
    cr_assert_eq(
        ops_http_get(tt_g_broker.http_port, "/subz", body, sizeof body), 200);
    if (strstr(body, "\"num_subscriptions\":1,") != NULL)
      break;
    cr_assert_lt(tt_now_ms(), deadline, "closed subscribers remain: %s", body);
    tt_raw_barrier(&good);
  }
  cr_assert_eq(subz("chk.close", 1, "pending_msgs"), 0);
  cr_assert_eq(subz("chk.close", 1, "delivered"), TOTAL / 4);
  tt_raw_check_pubsub(&p);
  tt_raw_close(&good);
  tt_raw_close(&p);
}

/*
 * disconnect: the slow subscriber gets a gapless prefix, then ERR 6 (the
 * unsent MSGs are cut out of its queue, the ERR still goes out), then the
 * close; a healthy subscriber of the same flood gets everything.
 */
Test(chunks, disconnect_policy_with_small_messages) {
  tt_raw_t slow, good, p;
  tt_raw_open_ex(&slow, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&good, tt_g_broker.port, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&slow, 1, "chk.dc", NULL, LIMIT, TP_OVERFLOW_DISCONNECT);
  tt_raw_sub_policy(&good, 1, "chk.dc", NULL, 0, TP_OVERFLOW_BLOCK);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "chk.dc", 0, TOTAL, SIZE, true);
  tt_flood_read_in_order(&good, 1, 0, TOTAL, SIZE);
  tt_flood_expect_done(&p, &fl);
  tt_raw_barrier_strict(&good);

  uint32_t next = 0;
  tp_frame_t f;
  for (;;) {
    int r = tt_raw_recv(&slow, &f, TT_RECV_MS);
    cr_assert_eq(r, 1, "slow consumer: %s before ERR 6",
                 r == 0 ? "timeout" : "close");
    if (f.type != TP_MSG)
      break;
    cr_assert_eq(tt_flood_seq(&f, SIZE), next, "gap at %u", next);
    next++;
  }
  cr_assert_eq(f.type, TP_ERR, "slow consumer got %s",
               tp_frame_type_name(f.type));
  cr_assert_eq(f.u.err.code, 6u, "ERR %u", f.u.err.code);
  cr_assert_lt(next, (uint32_t)TOTAL, "the slow consumer was never slow");
  cr_assert(tt_raw_wait_closed(&slow, TT_RECV_MS), "not closed after ERR 6");
  cr_assert_eq(subz("chk.dc", 1, "pending_msgs"), 0);
  cr_assert_eq(subz("chk.dc", 1, "delivered"), TOTAL);
  tt_raw_check_pubsub(&good);
  tt_raw_close(&p);
  tt_raw_close(&good);
  tt_raw_close(&slow);
}

/*
 * drop_oldest (one entry per MSG, so it can evict) and block (chunked) on
 * one connection: sid 2 (block) takes two floods from two publishers, sid
 * 1 (drop_oldest) one of them, so the connection's queue mixes chunks of
 * sid 2 alone with entries of sid 1 and whatever the two floods interleave
 * to. Each flood keeps its order per subscription; block gets everything,
 * drop_oldest the newest with every eviction reported; both queues end
 * empty and /subz agrees with what arrived.
 */
Test(chunks, drop_oldest_and_block_share_a_connection) {
  enum { N = TOTAL / 2, OLD_LIMIT = 50 };
  tt_raw_t s, pa, pb;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&pa, tt_g_broker.port, true, true, false);
  tt_raw_open(&pb, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&s, 1, "chk.mix.b", NULL, OLD_LIMIT,
                    TP_OVERFLOW_DROP_OLDEST);
  tt_raw_sub_policy(&s, 2, "chk.mix.*", NULL, 0, TP_OVERFLOW_BLOCK);
  tt_flood_t fa, fb;
  tt_flood_start(&fa, pa.fd, "chk.mix.a", 0, N, SIZE, true);
  tt_flood_start(&fb, pb.fd, "chk.mix.b", 0, N, SIZE, true);
  /* 16 MiB for sid 2: inside its default limits, so both floods end. */
  tt_flood_expect_done(&pa, &fa);
  tt_flood_expect_done(&pb, &fb);
  cr_assert_gt(subz("chk.mix.*", 2, "pending_msgs"), OLD_LIMIT,
               "nothing queued: the test proves nothing");

  tp_frame_t f;
  tp_frame_init(&f, TP_PING);
  tt_raw_send(&s, &f);
  uint32_t next_a = 0, next_b = 0, received1 = 0;
  int64_t last1 = -1;
  uint64_t dropped1 = 0;
  for (;;) {
    int r = tt_raw_recv(&s, &f, TT_RECV_MS);
    cr_assert_eq(r, 1, "subscriber %s before its PONG",
                 r == 0 ? "timed out" : "closed");
    if (f.type == TP_PONG)
      break;
    if (f.type == TP_DROPPED) {
      cr_assert_eq(f.u.dropped.sid, 1u, "DROPPED for sid %llu",
                   (unsigned long long)f.u.dropped.sid);
      dropped1 += f.u.dropped.count;
      continue;
    }
    uint32_t seq = tt_flood_seq(&f, SIZE);
    bool is_a = tt_str_eq(f.u.msg.topic, "chk.mix.a");
    if (f.u.msg.sid == 2) {
      uint32_t *next = is_a ? &next_a : &next_b;
      cr_assert_eq(seq, *next, "sid 2, flood %s: expected %u, got %u",
                   is_a ? "a" : "b", *next, seq);
      (*next)++;
    } else {
      cr_assert_eq(f.u.msg.sid, 1u);
      cr_assert(!is_a, "sid 1 got flood a");
      cr_assert_gt((int64_t)seq, last1, "sid 1 out of order");
      last1 = seq;
      received1++;
    }
  }
  cr_assert_eq(next_a, (uint32_t)N);
  cr_assert_eq(next_b, (uint32_t)N);
  cr_assert_eq(last1, (int64_t)N - 1, "sid 1 lost the newest");
  cr_assert_gt(dropped1, 0u, "sid 1 dropped nothing");
  cr_assert_eq(received1 + dropped1, (uint64_t)N,
               "sid 1: received %u + dropped %llu != %u", received1,
               (unsigned long long)dropped1, N);
  cr_assert_eq(subz("chk.mix.b", 1, "dropped"), (int64_t)dropped1);
  cr_assert_eq(subz("chk.mix.b", 1, "delivered"), N);
  cr_assert_eq(subz("chk.mix.*", 2, "delivered"), 2 * N);
  cr_assert_eq(subz("chk.mix.b", 1, "pending_msgs"), 0);
  cr_assert_eq(subz("chk.mix.b", 1, "pending_bytes"), 0);
  cr_assert_eq(subz("chk.mix.*", 2, "pending_msgs"), 0);
  cr_assert_eq(subz("chk.mix.*", 2, "pending_bytes"), 0);
  tt_raw_close(&pa);
  tt_raw_close(&pb);
  tt_raw_close(&s);
}

/*
 * A fatal error drops every MSG not yet handed to the kernel, but not the
 * control frames queued among them. The subscriber's socket is full (a
 * flood on sid 1 it does not read), so its own frames, read in one go,
 * stay queued together: five MSGs of its sid 2 (echo), the PONG for its
 * PING, then MSGs until sid 2's limit of 10 is passed and `disconnect`
 * fires. It must see the PONG, then ERR 6, and none of those sid 2 MSGs.
 */
Test(chunks, control_frames_survive_the_drop_of_queued_msgs) {
  tt_raw_t s, p;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&s, 1, "chk.ctl.fill", NULL, 1000, TP_OVERFLOW_DROP_NEWEST);
  tt_raw_sub_policy(&s, 2, "chk.ctl.dc", NULL, LIMIT, TP_OVERFLOW_DISCONNECT);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "chk.ctl.fill", 0, TOTAL, SIZE, true);
  tt_flood_expect_done(&p, &fl);
  cr_assert_gt(subz("chk.ctl.fill", 1, "pending_msgs"), 0,
               "nothing pending: the test proves nothing");

  static uint8_t payload[SIZE];
  tp_frame_t f;
  for (int i = 0; i < 2 * LIMIT; i++) {
    if (i == LIMIT / 2) {
      tp_frame_init(&f, TP_PING);
      tt_raw_queue(&s, &f);
    }
    tp_frame_init(&f, TP_PUB);
    f.u.pub.topic = tt_str("chk.ctl.dc");
    f.u.pub.payload.ptr = payload;
    f.u.pub.payload.len = SIZE;
    tt_raw_queue(&s, &f);
  }
  tt_raw_flush(&s);

  int64_t next = 0;
  bool pong = false;
  for (;;) {
    int r = tt_raw_recv(&s, &f, TT_RECV_MS);
    cr_assert_eq(r, 1, "subscriber %s before ERR 6",
                 r == 0 ? "timed out" : "closed");
    if (f.type == TP_ERR)
      break;
    if (f.type == TP_PONG) {
      cr_assert(!pong, "two PONGs");
      pong = true;
      continue;
    }
    cr_assert_eq(f.type, TP_MSG, "got %s", tp_frame_type_name(f.type));
    cr_assert_eq(f.u.msg.sid, 1u, "a dropped MSG of sid 2 arrived");
    cr_assert(!pong, "sid 1 MSG after the PONG");
    cr_assert_eq(tt_flood_seq(&f, SIZE), next, "gap at %lld", (long long)next);
    next++;
  }
  cr_assert(pong, "the PONG queued among the dropped MSGs was lost");
  cr_assert_eq(f.u.err.code, 6u, "ERR %u", f.u.err.code);
  cr_assert(tt_raw_wait_closed(&s, TT_RECV_MS), "not closed after ERR 6");
  tt_raw_check_pubsub(&p);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/*
 * max_pending_total counts what chunks hold: two drop_newest subscribers
 * that stall on small messages (their own limits are 256 MiB) are squeezed
 * by the server's 1 MiB cap (pending_gate.h): the flood goes through,
 * what they hold, chunks counted whole, stays near the cap, and each gets
 * a prefix and an exact DROPPED count for the rest.
 */
Test(chunks_total, the_total_cap_counts_chunks) {
  tt_raw_t subs[2], p;
  for (int i = 0; i < 2; i++) {
    tt_raw_open_ex(&subs[i], tt_g_broker.port, SLOW_RCVBUF, true, true, false);
    tt_raw_sub_policy(&subs[i], 1, "chk.total", NULL, 0,
                      TP_OVERFLOW_DROP_NEWEST);
  }
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "chk.total", 0, TOTAL, SIZE, true);
  tt_flood_expect_done(&p, &fl);
  /* Each holds its budget; chunks in flight (one write each, 64 KiB under
   * pressure) and the last message each on top. */
  uint64_t held = ops_metric(tt_g_broker.http_port, "tern_pending_total_bytes");
  cr_assert_leq(held, 2u * 1048576u, "the subscribers hold %llu bytes",
                (unsigned long long)held);
  tt_gaps_t g[2];
  memset(g, 0, sizeof g);
  tp_frame_t f;
  for (int i = 0; i < 2; i++) {
    tp_frame_init(&f, TP_PING);
    tt_raw_send(&subs[i], &f);
    tt_flood_read_gaps(&subs[i], 1, SIZE, -1, &g[i]);
    cr_assert_lt(g[i].received, (uint64_t)TOTAL);
  }
  tt_flood_start(&fl, p.fd, "chk.total", TOTAL, 1, SIZE, true);
  tt_flood_expect_done(&p, &fl);
  for (int i = 0; i < 2; i++) {
    tt_flood_read_gaps(&subs[i], 1, SIZE, TOTAL, &g[i]);
    cr_assert_eq(g[i].received + g[i].dropped, (uint64_t)TOTAL + 1);
    tt_raw_close(&subs[i]);
  }
  tt_raw_check_pubsub(&p);
  tt_raw_close(&p);
}
