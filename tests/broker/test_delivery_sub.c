/*
 * The delivery core's subscriptions without a socket: limits, pending
 * accounting and blocked publishers, with a stub environment (sub_env_t)
 * standing in for the session that would pause and resume publishers.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <uv.h>

#include "data/outq.h"
#include "delivery/sub.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"

/* The stub session: which publishers were told to wait, and to resume. */
static struct conn *blocked[8], *unblocked[8];
static int nblocked, nunblocked, fail_block;
static uv_loop_t loop;
static list_node_t stalled;
static sub_env_t env;

static int stub_block(struct conn *publisher, struct sub *s) {
  (void)s;
  if (fail_block)
    return TP_ENOMEM;
  blocked[nblocked++] = publisher;
  return 0;
}

static void stub_unblock(struct conn *publisher, struct sub *s) {
  (void)s;
  unblocked[nunblocked++] = publisher;
}

static void setup(void) {
  nblocked = nunblocked = fail_block = 0;
  cr_assert_eq(uv_loop_init(&loop), 0);
  list_init(&stalled);
  env = (sub_env_t){.loop = &loop,
                    .stalled = &stalled,
                    .block = stub_block,
                    .unblock = stub_unblock};
}

static void teardown(void) {
  uv_loop_close(&loop);
}

/* A block subscription to "a.>" with limits of msgs messages and bytes
 * bytes; conn and out are never dereferenced by these paths. */
static sub_t *make_sub(int overflow, uint64_t msgs, uint64_t bytes) {
  tp_sub_t req;
  memset(&req, 0, sizeof req);
  req.sid = 7;
  req.pattern = (tp_str_t){.ptr = "a.>", .len = 3};
  req.overflow = overflow;
  sub_t *s =
      sub_create((struct conn *)0x1, NULL, NULL, &env, &req, msgs, bytes);
  cr_assert_not_null(s);
  return s;
}

static void queue(sub_t *s, outq_entry_t *e, uint32_t bytes) {
  memset(e, 0, sizeof *e);
  list_init(&e->link);
  list_init(&e->sub_link);
  e->bytes = bytes;
  e->is_msg = true;
  sub_entry_queued(s, e);
}

TestSuite(delivery_sub, .init = setup, .fini = teardown);

Test(delivery_sub, limits_are_capped_by_the_servers_and_unset_means_block) {
  tp_sub_t req;
  memset(&req, 0, sizeof req);
  req.pattern = (tp_str_t){.ptr = "x", .len = 1};
  req.max_msgs = 1000; /* more than the server allows */
  req.max_bytes = 0;   /* the server's default */
  req.overflow = TP_OVERFLOW_UNSET;
  sub_t *s = sub_create((struct conn *)0x1, NULL, NULL, &env, &req, 100, 4096);
  cr_assert_not_null(s);
  cr_expect_eq(s->max_msgs, 100);
  cr_expect_eq(s->max_bytes, 4096);
  cr_expect_eq(s->policy, TP_OVERFLOW_BLOCK);
  sub_destroy(s);
}

Test(delivery_sub, an_empty_queue_takes_any_message_a_full_one_none) {
  sub_t *s = make_sub(TP_OVERFLOW_DROP_NEWEST, 2, 100);
  outq_entry_t e[3];
  cr_expect(!sub_would_overflow(s, 1000)); /* empty: even over max_bytes */
  queue(s, &e[0], 60);
  cr_expect(sub_would_overflow(s, 41)); /* 60 + 41 > 100 bytes */
  cr_expect(!sub_would_overflow(s, 40));
  queue(s, &e[1], 10);
  cr_expect(sub_is_full(s)); /* 2 messages */
  cr_expect(sub_would_overflow(s, 1));
  cr_expect_eq(s->q.pending_msgs, 2);
  cr_expect_eq(s->q.pending_bytes, 70);
  sub_entry_released(s, &e[0]);
  cr_expect_eq(s->q.pending_msgs, 1);
  cr_expect_eq(s->q.pending_bytes, 10);
  cr_expect(!sub_is_full(s));
  sub_destroy(s);
}

Test(delivery_sub, drop_oldest_counts_only_what_it_can_still_evict) {
  sub_t *s = make_sub(TP_OVERFLOW_DROP_OLDEST, 2, 1000);
  outq_entry_t e[3];
  queue(s, &e[0], 10);
  queue(s, &e[1], 10);
  cr_expect(sub_would_overflow_queued(s, 10));
  cr_expect_eq(sub_oldest_droppable(s), &e[0]);
  /* Both handed to the kernel: nothing left that drop_oldest could evict,
   * so a third message is taken. */
  s->q.inflight_msgs = 2;
  s->q.inflight_bytes = 20;
  s->q.first_queued = NULL;
  cr_expect(!sub_would_overflow_queued(s, 10));
  cr_expect(sub_would_overflow(s, 10));
  sub_destroy(s);
}

Test(delivery_sub, a_blocked_publisher_waits_until_half_drained) {
  sub_t *s = make_sub(TP_OVERFLOW_BLOCK, 4, 1 << 20);
  outq_entry_t e[4];
  for (int i = 0; i < 4; i++)
    queue(s, &e[i], 10);
  struct conn *pub = (struct conn *)0x2;
  cr_assert_eq(sub_add_waiter(s, pub), 0);
  cr_assert_eq(sub_add_waiter(s, pub), 0); /* once only */
  cr_expect_eq(nblocked, 1);
  cr_expect_eq(blocked[0], pub);
  cr_expect_eq(s->nwaiters, 1);
  cr_expect_eq(s->times_blocked, 1);
  cr_expect_eq(stalled.next, &s->stalled_link); /* the stall timer sees it */

  sub_entry_released(s, &e[0]); /* 3 of 4: above half */
  cr_expect_eq(nunblocked, 0);
  sub_entry_released(s, &e[1]); /* 2 of 4: the low-water mark */
  cr_expect_eq(nunblocked, 1);
  cr_expect_eq(unblocked[0], pub);
  cr_expect_eq(s->nwaiters, 0);
  cr_expect(list_empty(&stalled));
  sub_destroy(s);
  cr_expect_eq(nunblocked, 1); /* released once, not again */
}

Test(delivery_sub, a_subscription_that_goes_away_releases_its_waiters) {
  sub_t *s = make_sub(TP_OVERFLOW_BLOCK, 1, 1 << 20);
  outq_entry_t e;
  queue(s, &e, 10);
  struct conn *p1 = (struct conn *)0x2, *p2 = (struct conn *)0x3;
  cr_assert_eq(sub_add_waiter(s, p1), 0);
  cr_assert_eq(sub_add_waiter(s, p2), 0);
  cr_expect_eq(s->times_blocked, 1); /* one stall, two publishers */
  sub_destroy(s);
  cr_expect_eq(nunblocked, 2);
  cr_expect(list_empty(&stalled));
  cr_expect_null(e.pend); /* the entry is still sent, no longer counted */
}

Test(delivery_sub, a_publisher_that_cannot_be_blocked_is_not_recorded) {
  sub_t *s = make_sub(TP_OVERFLOW_BLOCK, 1, 1 << 20);
  fail_block = 1;
  cr_expect_eq(sub_add_waiter(s, (struct conn *)0x2), TP_ENOMEM);
  cr_expect_eq(s->nwaiters, 0);
  cr_expect(list_empty(&stalled));
  sub_destroy(s);
}
