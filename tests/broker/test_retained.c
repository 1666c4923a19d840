/*
 * Unit tests of the retained store (broker/data/retained.c): a wildcard
 * match walks only the branches that can match, replace and delete keep
 * the counts right, and ttl expiry runs from one timer on the loop.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "data/msgbuf.h"
#include "data/retained.h"

static uv_loop_t loop;
static uv_timer_t timer;
static msgbuf_pool_t *pool;
static retained_t *store;

static void setup(void) {
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(uv_timer_init(&loop, &timer), 0);
  cr_assert_eq(msgbuf_pool_create(&pool, 16, 1 << 20), 0);
  cr_assert_eq(retained_create(&store, &timer, 0, 0), 0);
}

static void teardown(void) {
  retained_destroy(store);
  cr_assert_eq(msgbuf_pool_live(pool), 0u, "bodies leaked");
  msgbuf_pool_destroy(pool);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

TestSuite(retained_store, .init = setup, .fini = teardown, .timeout = 60);

static msgbuf_t *body_of(const char *s) {
  msgbuf_t *b = msgbuf_get(pool);
  cr_assert_not_null(b);
  cr_assert_eq(tp_buf_append(&b->bytes, s, strlen(s)), 0);
  return b;
}

static void put(const char *topic, const char *val, uint64_t ttl) {
  int rc =
      retained_put(store, topic, strlen(topic), val ? body_of(val) : NULL, ttl);
  cr_assert_eq(rc, 0, "put %s: %d", topic, rc);
}

static void count_visit(void *ud, msgbuf_t *body) {
  (void)body;
  (*(int *)ud)++;
}

static uint64_t match(const char *pattern, int *found) {
  *found = 0;
  return retained_match(store, pattern, strlen(pattern), count_visit, found);
}

Test(retained_store, wildcards_visit_only_matching_branches) {
  char topic[64];
  for (int g = 0; g < 10000; g++) {
    for (int i = 0; i < 10; i++) {
      snprintf(topic, sizeof topic, "big.g%d.t%d", g, i);
      put(topic, topic, 0);
    }
  }
  retained_stats_t st;
  retained_get_stats(store, &st);
  cr_assert_eq(st.topics, 100000u);
  cr_assert_eq(st.nodes, 1u + 1u + 10000u + 100000u);

  int found;
  /* root, big, g4242, its 10 children */
  cr_assert_eq(match("big.g4242.*", &found), 13u);
  cr_assert_eq(found, 10);
  cr_assert_eq(match("big.g77.>", &found), 13u);
  cr_assert_eq(found, 10);
  /* root, big, g9999, t9 */
  cr_assert_eq(match("*.g9999.t9", &found), 4u);
  cr_assert_eq(found, 1);
  cr_assert_eq(match("big.nope.*", &found), 2u);
  cr_assert_eq(found, 0);
  /* '*' in the middle: every group is visited, and one leaf in each. */
  cr_assert_eq(match("big.*.t3", &found), 1u + 1u + 2u * 10000u);
  cr_assert_eq(found, 10000);
  /* Everything: the whole tree, once each. */
  cr_assert_eq(match(">", &found), st.nodes);
  cr_assert_eq(found, 100000);
}

Test(retained_store, replace_and_delete_keep_counts) {
  put("a.b", "one", 0);
  put("a.b", "three", 0);
  put("a.c", "x", 0);
  retained_stats_t st;
  retained_get_stats(store, &st);
  cr_assert_eq(st.topics, 2u);
  cr_assert_eq(st.bytes, 6u);
  put("a.b", NULL, 0);
  put("a.c", NULL, 0);
  put("a.zzz", NULL, 0); /* deleting nothing is fine */
  retained_get_stats(store, &st);
  cr_assert_eq(st.topics, 0u);
  cr_assert_eq(st.bytes, 0u);
  cr_assert_eq(st.nodes, 1u, "empty branches are pruned");
}

Test(retained_store, caps_refuse_and_leave_the_store_alone) {
  retained_destroy(store);
  cr_assert_eq(retained_create(&store, &timer, 2, 10), 0);
  put("a", "12345", 0);
  put("b", "1234", 0);
  cr_assert_eq(retained_put(store, "c", 1, body_of("1"), 0),
               TERND_ERETAINED_TOPICS);
  cr_assert_eq(retained_put(store, "a", 1, body_of("1234567"), 0),
               TERND_ERETAINED_BYTES);
  put("a", "123456", 0); /* 6 + 4 = 10 fits */
  retained_stats_t st;
  retained_get_stats(store, &st);
  cr_assert_eq(st.topics, 2u);
  cr_assert_eq(st.bytes, 10u);
}

/* Expiry: the loop runs while the store's timer is armed and returns once
 * nothing is left to expire; no test-side waiting. */
Test(retained_store, ttl_expiry_from_one_timer) {
  put("t.keep", "k", 0);
  put("t.x", "1", 5);
  put("t.y", "2", 1);
  put("t.z", "3", 3);
  put("t.z", "3", 0); /* replaced without a ttl: no longer expires */
  uv_run(&loop, UV_RUN_DEFAULT);
  retained_stats_t st;
  retained_get_stats(store, &st);
  cr_assert_eq(st.expired, 2u);
  cr_assert_eq(st.topics, 2u);
  int found;
  match("t.*", &found);
  cr_assert_eq(found, 2);
}
