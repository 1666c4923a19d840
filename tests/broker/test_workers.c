/*
 * Several workers (--workers 2): connections go to the workers in turn, so
 * a test's first connection is on worker 0 and its second on worker 1
 * (checked in /connz, which shows each connection's worker). What one
 * worker guarantees must hold across two: order per publisher per
 * subscription, `block` pausing a publisher of the other worker and
 * resuming it, one member per message in a queue group spread over both,
 * and a subscriber that comes and goes on one worker while the other
 * delivers. PING/PONG is the barrier throughout.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "flood.h"
#include "ops_util.h"
#include "raw_client.h"

enum { TOTAL = 20000, SIZE = 64, SLOW_RCVBUF = 4096, LIMIT = 10 };

/* Only gives a wrongly answered PING time to come back. */
#define NO_PONG_WAIT_MS 300

TT_BROKER_FIXTURE(two, "--workers", "2", "--http-port", "-1",
                  "--stall-timeout-ms", "600000")

TestSuite(workers, .init = two_init, .fini = two_fini, .timeout = 120);

static char body[1 << 20];

/* The worker /connz shows for connection cid, or -1. */
static int worker_of(uint64_t cid) {
  cr_assert_eq(ops_http_get(tt_g_broker.http_port, "/connz", body, sizeof body),
               200);
  char key[64];
  snprintf(key, sizeof key, "{\"cid\":%llu,", (unsigned long long)cid);
  const char *at = strstr(body, key);
  if (at == NULL)
    return -1;
  const char *end = strchr(at, '}');
  const char *w = strstr(at, "\"worker\":");
  cr_assert(w != NULL && w < end, "no worker in %s", body);
  return atoi(w + strlen("\"worker\":"));
}

/* A counter of the subscription (pattern, sid) in /subz, or -1. */
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

Test(workers, connections_alternate_between_workers) {
  tt_raw_t a, b, c;
  tt_raw_open(&a, tt_g_broker.port, true, true, false);
  tt_raw_open(&b, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  int wa = worker_of(1), wb = worker_of(2), wc = worker_of(3);
  cr_expect_eq(wa, 0);
  cr_expect_eq(wb, 1);
  cr_expect_eq(wc, 0);
  tt_raw_close(&a);
  tt_raw_close(&b);
  tt_raw_close(&c);
}

/* A publisher on worker 1, a subscriber on worker 0: every message, in
 * the order published, and the publisher's PONG only once they are all
 * queued there. */
Test(workers, order_is_kept_across_workers) {
  tt_raw_t s, p;
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  cr_assert_neq(worker_of(1), worker_of(2), "both on one worker");
  tt_raw_sub_policy(&s, 1, "w.order", NULL, TOTAL, TP_OVERFLOW_BLOCK);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "w.order", 0, TOTAL, SIZE, true);
  tt_flood_read_in_order(&s, 1, 0, TOTAL, SIZE);
  tt_flood_expect_done(&p, &fl);
  tt_raw_barrier_strict(&s);
  cr_assert_eq(subz("w.order", 1, "delivered"), TOTAL);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/* block: a subscription of worker 0 with room for 10 stops a publisher of
 * worker 1 as one worker would (no PONG, at most the limit pending);
 * reading resumes it and everything arrives in order. */
Test(workers, block_pauses_a_publisher_of_the_other_worker) {
  tt_raw_t s, p;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  cr_assert_neq(worker_of(1), worker_of(2), "both on one worker");
  tt_raw_sub_policy(&s, 1, "w.block", NULL, LIMIT, TP_OVERFLOW_BLOCK);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "w.block", 0, TOTAL, 400, true);
  tt_flood_expect_held(&p, NO_PONG_WAIT_MS);
  int64_t pending = subz("w.block", 1, "pending_msgs");
  cr_assert(pending >= 0 && pending <= LIMIT, "pending_msgs %lld",
            (long long)pending);
  tt_flood_read_in_order(&s, 1, 0, TOTAL, 400);
  tt_flood_expect_done(&p, &fl);
  tt_raw_barrier_strict(&s);
  cr_assert_eq(subz("w.block", 1, "pending_msgs"), 0);
  tt_raw_check_pubsub(&p);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/* The blocked publisher of worker 1 goes on once the subscriber of worker
 * 0 that held it disconnects. */
Test(workers, a_blocked_publisher_resumes_when_the_subscriber_leaves) {
  tt_raw_t s, p;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&s, 1, "w.leave", NULL, LIMIT, TP_OVERFLOW_BLOCK);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "w.leave", 0, TOTAL, 400, true);
  tt_flood_expect_held(&p, NO_PONG_WAIT_MS);
  tt_raw_close(&s);
  tt_flood_expect_done(&p, &fl);
  tt_raw_check_pubsub(&p);
  tt_raw_close(&p);
}

/* ... and once it unsubscribes. */
Test(workers, a_blocked_publisher_resumes_on_unsub) {
  tt_raw_t s, p;
  tt_raw_open_ex(&s, tt_g_broker.port, SLOW_RCVBUF, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub_policy(&s, 1, "w.unsub", NULL, LIMIT, TP_OVERFLOW_BLOCK);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "w.unsub", 0, TOTAL, 400, true);
  tt_flood_expect_held(&p, NO_PONG_WAIT_MS);
  tt_raw_unsub(&s, 1, 0);
  tt_flood_expect_done(&p, &fl);
  tt_raw_check_pubsub(&p);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/* A queue group with two members on each worker: every message goes to
 * exactly one member, and members of both workers take some. */
Test(workers, a_queue_group_spans_workers) {
  enum { MEMBERS = 4, N = 2000 };
  tt_raw_t m[MEMBERS], p;
  for (int i = 0; i < MEMBERS; i++)
    tt_raw_open(&m[i], tt_g_broker.port, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  for (int i = 0; i < MEMBERS; i++)
    tt_raw_sub_policy(&m[i], 1, "w.group", "g", N, TP_OVERFLOW_BLOCK);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "w.group", 0, N, SIZE, true);
  tt_flood_expect_done(&p, &fl);
  static bool seen[N];
  memset(seen, 0, sizeof seen);
  int got[MEMBERS] = {0};
  int total = 0;
  for (int i = 0; i < MEMBERS; i++) {
    /* Everything for m[i] is queued before p's PONG: read to a barrier. */
    tp_frame_t f;
    tp_frame_init(&f, TP_PING);
    tt_raw_send(&m[i], &f);
    for (;;) {
      cr_assert_eq(tt_raw_recv(&m[i], &f, TT_RECV_MS), 1, "member %d", i);
      if (f.type == TP_PONG)
        break;
      cr_assert_eq(f.type, TP_MSG, "got %s", tp_frame_type_name(f.type));
      uint32_t seq = tt_flood_seq(&f, SIZE);
      cr_assert_lt(seq, (uint32_t)N);
      cr_assert(!seen[seq], "message %u delivered twice", seq);
      seen[seq] = true;
      got[i]++;
      total++;
    }
  }
  cr_assert_eq(total, N, "%d of %d messages delivered", total, N);
  cr_expect(got[0] + got[2] > 0, "worker 0's members got nothing");
  cr_expect(got[1] + got[3] > 0, "worker 1's members got nothing");
  for (int i = 0; i < MEMBERS; i++)
    tt_raw_close(&m[i]);
  tt_raw_close(&p);
}

/* Worker 1 subscribes and unsubscribes, over and over, to what worker 0's
 * publisher floods to a steady subscriber of worker 1: the steady one gets
 * everything in order; the churning one only within its subscriptions. */
Test(workers, subscription_churn_on_one_worker_while_the_other_delivers) {
  enum { CYCLES = 2000 };
  tt_raw_t p, s, churn;
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  tt_raw_open(&churn, tt_g_broker.port, true, true, false);
  cr_assert_eq(worker_of(1), 0);
  cr_assert_eq(worker_of(2), 1);
  tt_raw_sub_policy(&s, 1, "w.churn", NULL, TOTAL, TP_OVERFLOW_BLOCK);
  tt_flood_t fl;
  tt_flood_start(&fl, p.fd, "w.churn", 0, TOTAL, SIZE, true);
  for (uint64_t i = 1; i <= CYCLES; i++) {
    tp_frame_t f;
    tp_frame_init(&f, TP_SUB);
    f.u.sub.sid = i;
    f.u.sub.pattern = tt_str(i % 2 ? "w.churn" : "w.*");
    tt_raw_queue(&churn, &f);
    tp_frame_init(&f, TP_UNSUB);
    f.u.unsub.sid = i;
    tt_raw_queue(&churn, &f);
    if (i % 100 == 0)
      tt_raw_flush(&churn);
  }
  tt_raw_flush(&churn);
  tt_flood_read_in_order(&s, 1, 0, TOTAL, SIZE);
  tt_flood_expect_done(&p, &fl);
  /* What the churning connection got: MSGs of its sids, then the PONG. */
  tp_frame_t f;
  tp_frame_init(&f, TP_PING);
  tt_raw_send(&churn, &f);
  for (;;) {
    cr_assert_eq(tt_raw_recv(&churn, &f, TT_RECV_MS), 1);
    if (f.type == TP_PONG)
      break;
    cr_assert_eq(f.type, TP_MSG, "churn got %s", tp_frame_type_name(f.type));
    cr_assert(f.u.msg.sid >= 1 && f.u.msg.sid <= CYCLES);
  }
  cr_assert_eq(subz("w.churn", 1, "delivered"), TOTAL);
  tt_raw_check_pubsub(&churn);
  tt_raw_close(&churn);
  tt_raw_close(&s);
  tt_raw_close(&p);
}
