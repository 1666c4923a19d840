/*
 * Memory pressure falls on those who hold the memory
 * (broker/delivery/pending_gate.h): with a small max_pending_total,
 * subscribers that stop reading fill it, and
 *   - loss-accepting ones (drop_newest, drop_oldest) lose messages early,
 *     each gap announced by DROPPED exactly where it is, counts exact;
 *   - `disconnect` ones are closed with ERR 6, the largest holder first;
 *   - only the publisher feeding a full `block` queue is paused;
 * while an unrelated publisher -> subscriber pair gets every message. A
 * gate that paused every publisher at the cap would hold them until
 * stall_timeout (here 10 minutes): these tests would then hang on the first
 * PONG or MSG the pair should get.
 *
 * Each subscriber that stops reading has a 4 KiB receive buffer, so its
 * queue fills at once; absent frames are proven by barriers, never by
 * waiting.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "flood.h"
#include "ops_util.h"
#include "raw_client.h"

enum { SLOW_RCVBUF = 4096, NLOSS = 4 };
#define CAP (8u * 1024u * 1024u)

TT_BROKER_FIXTURE(pressure, "--http-port", "-1", "--max-pending-total",
                  "8388608", "--max-pending-bytes", "268435456",
                  "--max-pending-msgs", "100000000", "--stall-timeout-ms",
                  "600000")

TestSuite(pressure, .init = pressure_init, .fini = pressure_fini,
          .timeout = 120);

/* A sample of /metrics (name with its labels, if any). */
static uint64_t metric(const char *name) {
  return ops_metric(tt_g_broker.http_port, name);
}

/* The pair: n flood messages from p to s on topic (sid 1 of s), all of
 * them, in order, and p's PING answered after them. */
static void pair_gets_everything(tt_raw_t *p, tt_raw_t *s, const char *topic,
                                 uint32_t first, uint32_t n) {
  tt_flood_t fl;
  tt_flood_start(&fl, p->fd, topic, first, n, 100, true);
  tt_flood_read_in_order(s, 1, first, n, 100);
  tt_flood_expect_done(p, &fl);
  tt_raw_barrier_strict(s);
}

/*
 * 4 drop_newest and 4 drop_oldest subscribers stop reading while 100,000
 * messages of 200 bytes (about 23 MiB each) are published to them: far
 * more than the 8 MiB cap. The flood goes through, the unrelated pair
 * gets every message, and once the subscribers read, every message is
 * either received or counted by a DROPPED at its gap.
 */
Test(pressure, loss_accepting_holders_lose_and_the_pair_does_not_stall) {
  enum { COUNT = 100000, SIZE = 200 };
  tt_raw_t subs[2 * NLOSS], p, pp, ps;
  for (int i = 0; i < 2 * NLOSS; i++) {
    tt_raw_open_ex(&subs[i], tt_g_broker.port, SLOW_RCVBUF, true, true, false);
    tt_raw_sub_policy(&subs[i], 1, "pr.flood", NULL, 0,
                      i < NLOSS ? TP_OVERFLOW_DROP_NEWEST
                                : TP_OVERFLOW_DROP_OLDEST);
  }
  tt_raw_open(&pp, tt_g_broker.port, true, true, false);
  tt_raw_open(&ps, tt_g_broker.port, true, true, false);
  tt_raw_sub(&ps, 1, "pr.pair", NULL);
  tt_raw_barrier_strict(&ps);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);

  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "pr.flood", 0, COUNT, SIZE, true);
  /* During the flood, and after it with the cap still held. */
  pair_gets_everything(&pp, &ps, "pr.pair", 0, 2000);
  tt_flood_expect_done(&p, &fl);
  pair_gets_everything(&pp, &ps, "pr.pair", 2000, 2000);

  uint64_t total = metric("tern_pending_total_bytes");
  cr_log_info("pending total %llu of %u after the flood",
              (unsigned long long)total, CAP);
  cr_assert_geq(metric("tern_memory_pressure"), 1u);
  cr_assert_eq(metric("tern_blocked_publishers"), 0u);
  cr_assert_gt(
      metric("tern_pressure_dropped_messages_total{policy=\"drop_newest\"}"),
      0u);
  cr_assert_gt(
      metric("tern_pressure_dropped_messages_total{policy=\"drop_oldest\"}"),
      0u);
  cr_assert_eq(metric("tern_pressure_disconnects_total"), 0u);

  /* Each subscriber reads what it holds (up to its PONG), then one more
   * message makes drop_newest report what it dropped last. */
  tt_gaps_t g[2 * NLOSS];
  memset(g, 0, sizeof g);
  for (int i = 0; i < 2 * NLOSS; i++) {
    tp_frame_t ping;
    tp_frame_init(&ping, TP_PING);
    tt_raw_send(&subs[i], &ping);
    tt_flood_read_gaps(&subs[i], 1, SIZE, -1, &g[i]);
  }
  tt_flood_start(&fl, p.fd, "pr.flood", COUNT, 1, SIZE, true);
  tt_flood_expect_done(&p, &fl);
  uint64_t all_dropped = 0;
  for (int i = 0; i < 2 * NLOSS; i++) {
    tt_flood_read_gaps(&subs[i], 1, SIZE, COUNT, &g[i]);
    cr_log_info("subscriber %d (%s): %llu received, %llu dropped", i,
                i < NLOSS ? "drop_newest" : "drop_oldest",
                (unsigned long long)g[i].received,
                (unsigned long long)g[i].dropped);
    cr_assert_eq(g[i].received + g[i].dropped, (uint64_t)COUNT + 1,
                 "subscriber %d: %llu + %llu != %u", i,
                 (unsigned long long)g[i].received,
                 (unsigned long long)g[i].dropped, COUNT + 1);
    cr_assert_gt(g[i].dropped, 0u);
    tt_raw_barrier_strict(&subs[i]);
    all_dropped += g[i].dropped;
    tt_raw_close(&subs[i]);
  }
  cr_assert_eq(
      metric("tern_dropped_messages_total{policy=\"drop_newest\"}") +
          metric("tern_dropped_messages_total{policy=\"drop_oldest\"}"),
      all_dropped);
  tt_raw_check_pubsub(&p);
  tt_raw_close(&p);
  tt_raw_close(&pp);
  tt_raw_close(&ps);
}

/*
 * Two `disconnect` subscribers stop reading: b holds about 0.5 MiB, then a
 * is flooded. a, the largest holder, is closed with ERR 6 after a gapless
 * prefix once it holds more than its share; b, far below the cap, keeps
 * its queue and its connection; the publisher is never paused.
 */
Test(pressure, disconnect_closes_the_largest_holder_first) {
  enum { SIZE = 400, COUNT_B = 1200, COUNT_A = 40000 };
  tt_raw_t a, b, p;
  tt_raw_open_ex(&a, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_sub_policy(&a, 1, "pd.a", NULL, 0, TP_OVERFLOW_DISCONNECT);
  tt_raw_open_ex(&b, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_sub_policy(&b, 1, "pd.b", NULL, 0, TP_OVERFLOW_DISCONNECT);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);

  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "pd.b", 0, COUNT_B, SIZE, true);
  tt_flood_expect_done(&p, &fl);
  tt_flood_start(&fl, p.fd, "pd.a", 0, COUNT_A, SIZE, true);
  tt_flood_expect_done(&p, &fl);

  uint32_t next = 0;
  tp_frame_t f;
  for (;;) {
    int r = tt_raw_recv(&a, &f, TT_RECV_MS);
    cr_assert_eq(r, 1, "a: %s before ERR 6", r == 0 ? "timeout" : "close");
    if (f.type != TP_MSG)
      break;
    cr_assert_eq(tt_flood_seq(&f, SIZE), next, "a: gap at %u", next);
    next++;
  }
  cr_assert_eq(f.type, TP_ERR, "a got %s", tp_frame_type_name(f.type));
  cr_assert_eq(f.u.err.code, 6u);
  cr_assert_lt(next, (uint32_t)COUNT_A);
  cr_assert(tt_raw_wait_closed(&a, TT_RECV_MS));
  tt_raw_close(&a);
  cr_assert_eq(metric("tern_pressure_disconnects_total"), 1u);

  tt_flood_read_in_order(&b, 1, 0, COUNT_B, SIZE);
  tt_raw_barrier_strict(&b);
  tt_raw_check_pubsub(&b);
  tt_raw_check_pubsub(&p);
  tt_raw_close(&b);
  tt_raw_close(&p);
}

/*
 * A `block` subscriber stops reading: its publisher is paused, and counted
 * in tern_blocked_publishers so that an operator can see the pause, while
 * an unrelated pair gets every message. Once the subscriber reads, it gets
 * the whole flood in order and its publisher finishes.
 */
Test(pressure, only_the_block_feeder_is_paused) {
  enum { COUNT = 100000, SIZE = 200 };
  tt_raw_t x, px, pp, ps;
  tt_raw_open_ex(&x, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_sub_policy(&x, 1, "pb.x", NULL, 0, TP_OVERFLOW_BLOCK);
  tt_raw_open(&pp, tt_g_broker.port, true, true, false);
  tt_raw_open(&ps, tt_g_broker.port, true, true, false);
  tt_raw_sub(&ps, 1, "pb.pair", NULL);
  tt_raw_barrier_strict(&ps);
  tt_raw_open(&px, tt_g_broker.port, true, true, false);

  tt_flood_t fl;
  tt_flood_start(&fl, px.fd, "pb.x", 0, COUNT, SIZE, true);
  /* Each GET is answered by the loop that would resume px. */
  uint64_t blocked = 0;
  for (int i = 0; i < 200000 && blocked == 0; i++)
    blocked = metric("tern_blocked_publishers");
  cr_assert_eq(blocked, 1u, "the block feeder never showed as paused");
  pair_gets_everything(&pp, &ps, "pb.pair", 0, 4000);
  cr_assert_eq(metric("tern_blocked_publishers"), 1u);
  cr_assert_gt(metric("tern_pressure_publisher_pauses_total"), 0u);

  tt_flood_read_in_order(&x, 1, 0, COUNT, SIZE);
  tt_flood_expect_done(&px, &fl);
  tt_raw_barrier_strict(&x);
  cr_assert_eq(metric("tern_blocked_publishers"), 0u);
  tt_raw_close(&x);
  tt_raw_close(&px);
  tt_raw_close(&pp);
  tt_raw_close(&ps);
}

/*
 * A cap of 1 MiB with a short stall_timeout, and the mix of the soak's
 * non-readers: drop_newest, drop_oldest, disconnect and block. The block
 * subscriber pauses the flood until stall_timeout closes it; the flood
 * then runs at the cap (the budgets' floor times these subscribers is
 * more than the cap), where the budget is 0 and a drop_oldest queue keeps
 * only the newest message. Each message used to evict the previous one
 * and queue a DROPPED of its own in front of itself, which nothing ever
 * removed: the pending total grew by an entry per message per drop_oldest
 * subscriber, far past the cap. It must stay within a little of the cap.
 */
#define SMALL_CAP (1024u * 1024u)
TT_BROKER_FIXTURE(pressure_stall, "--http-port", "-1", "--max-pending-total",
                  "1048576", "--max-pending-bytes", "268435456",
                  "--max-pending-msgs", "100000000", "--stall-timeout-ms",
                  "1000")

TestSuite(pressure_stall, .init = pressure_stall_init,
          .fini = pressure_stall_fini, .timeout = 120);

Test(pressure_stall, the_total_stays_near_the_cap_past_stall_timeout) {
  enum { COUNT = 300000, SIZE = 200, NLOSS2 = 8, NSUBS = 2 * NLOSS2 + 2 };
  tt_raw_t subs[NSUBS], p;
  for (int i = 0; i < NSUBS; i++) {
    int policy = i < NLOSS2        ? TP_OVERFLOW_DROP_NEWEST
                 : i < 2 * NLOSS2  ? TP_OVERFLOW_DROP_OLDEST
                 : i == 2 * NLOSS2 ? TP_OVERFLOW_DISCONNECT
                                   : TP_OVERFLOW_BLOCK;
    tt_raw_open_ex(&subs[i], tt_g_broker.port, SLOW_RCVBUF, true, true, false);
    tt_raw_sub_policy(&subs[i], 1, "ps.flood", NULL, 0, policy);
    tt_raw_barrier_strict(&subs[i]);
  }
  tt_raw_open(&p, tt_g_broker.port, true, true, false);

  /* Paused by the block subscriber until its stall_timeout, then on. */
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "ps.flood", 0, COUNT, SIZE, true);
  tt_flood_expect_done(&p, &fl);

  uint64_t total = metric("tern_pending_total_bytes");
  cr_log_info("pending total %llu of %u after the flood",
              (unsigned long long)total, SMALL_CAP);
  /* The block and disconnect subscribers were closed as slow consumers. */
  cr_assert_geq(metric("tern_slow_consumer_disconnects_total"), 2u);
  cr_assert_gt(
      metric("tern_pressure_dropped_messages_total{policy=\"drop_oldest\"}"),
      0u);
  cr_assert_leq(total, (uint64_t)SMALL_CAP + SMALL_CAP / 2,
                "pending total %llu, far past the cap %u",
                (unsigned long long)total, SMALL_CAP);

  tt_raw_check_pubsub(&p);
  tt_raw_close(&p);
  for (int i = 0; i < NSUBS; i++)
    tt_raw_close(&subs[i]);
}
