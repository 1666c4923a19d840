/*
 * The blocking API: tern_client_t on its own loop thread, subscriptions
 * read with tern_sub_next(timeout).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

TestSuite(client_blocking, .init = broker_up, .fini = broker_down,
          .timeout = 120);

static void expect_msg(tern_sub_t *sub, const char *topic, const char *data) {
  tern_msg_t *m = NULL;
  int rc = tern_sub_next(sub, 5000, &m);
  cr_assert_eq(rc, 0, "next: %s", tern_strerror(rc));
  cr_expect_str_eq(tern_msg_topic(m), topic);
  cr_expect_eq(tern_msg_len(m), strlen(data));
  cr_expect_str_eq((const char *)tern_msg_data(m), data);
  tern_msg_release(m);
}

Test(client_blocking, pubsub_and_next_timeout) {
  tern_client_t *cl = test_client(NULL);
  tern_sub_t *sub;
  tern_msg_t *m = NULL;
  cr_assert_eq(tern_client_subscribe(cl, &sub, "b.t", NULL), 0);
  cr_expect_neq(tern_sub_sid(sub), 0);
  cr_assert_eq(tern_client_publish(cl, "b.t", "one", 3, NULL), 0);
  cr_assert_eq(tern_client_publish(cl, "b.t", "two", 3, NULL), 0);
  expect_msg(sub, "b.t", "one");
  expect_msg(sub, "b.t", "two");
  cr_expect_eq(tern_sub_next(sub, 50, &m), TERN_ETIMEOUT);
  cr_expect_null(m);
  cr_expect_eq(tern_sub_next(sub, 0, &m), TERN_ETIMEOUT);
  tern_sub_destroy(sub);
  tern_client_close(cl);
}

Test(client_blocking, wildcards) {
  tern_client_t *cl = test_client(NULL);
  tern_sub_t *star, *gt;
  tern_msg_t *m = NULL;
  cr_assert_eq(tern_client_subscribe(cl, &star, "w.*.x", NULL), 0);
  cr_assert_eq(tern_client_subscribe(cl, &gt, "w.>", NULL), 0);
  cr_assert_eq(tern_client_publish(cl, "w.a.x", "1", 1, NULL), 0);
  cr_assert_eq(tern_client_publish(cl, "w.a.b.x", "2", 1, NULL), 0);
  cr_assert_eq(tern_client_publish(cl, "w", "3", 1, NULL), 0);
  cr_assert_eq(tern_client_publish(cl, "w.b.x", "4", 1, NULL), 0);
  cr_assert_eq(tern_client_flush(cl, 5000), 0);
  expect_msg(star, "w.a.x", "1");
  expect_msg(star, "w.b.x", "4");
  expect_msg(gt, "w.a.x", "1");
  expect_msg(gt, "w.a.b.x", "2");
  expect_msg(gt, "w.b.x", "4");
  cr_expect_eq(tern_sub_next(star, 50, &m), TERN_ETIMEOUT);
  tern_client_close(cl); /* destroys both subscriptions */
}

Test(client_blocking, queue_group_balances_across_three_clients) {
  tern_client_t *pub = test_client(NULL);
  tern_client_t *cl[3];
  tern_sub_t *sub[3];
  tern_sub_opts_t so;
  tern_sub_opts_init(&so);
  so.queue = "workers";
  for (int i = 0; i < 3; i++) {
    cl[i] = test_client(NULL);
    cr_assert_eq(tern_client_subscribe(cl[i], &sub[i], "job.run", &so), 0);
  }
  for (int i = 0; i < 300; i++) {
    cr_assert_eq(tern_client_publish(pub, "job.run", "j", 1, NULL), 0);
  }
  cr_assert_eq(tern_client_flush(pub, 5000), 0);
  for (int i = 0; i < 3; i++) {
    for (int n = 0; n < 100; n++) {
      tern_msg_t *m;
      int rc = tern_sub_next(sub[i], 5000, &m);
      cr_assert_eq(rc, 0, "member %d got only %d of 100", i, n);
      tern_msg_release(m);
    }
  }
  for (int i = 0; i < 3; i++) {
    cr_expect_eq(tern_sub_pending(sub[i]), 0);
    tern_client_close(cl[i]);
  }
  tern_client_close(pub);
}

Test(client_blocking, unsubscribe_now_and_after_max_msgs) {
  tern_client_t *cl = test_client(NULL);
  tern_sub_t *now, *later;
  tern_msg_t *m = NULL;
  cr_assert_eq(tern_client_subscribe(cl, &now, "u.t", NULL), 0);
  cr_assert_eq(tern_client_subscribe(cl, &later, "u.t", NULL), 0);
  cr_assert_eq(tern_sub_unsubscribe(now, 0), 0);
  cr_assert_eq(tern_sub_unsubscribe(later, 3), 0);
  for (int i = 0; i < 10; i++) {
    cr_assert_eq(tern_client_publish(cl, "u.t", "m", 1, NULL), 0);
  }
  cr_assert_eq(tern_client_flush(cl, 5000), 0);
  for (int i = 0; i < 3; i++) {
    expect_msg(later, "u.t", "m");
  }
  cr_expect_eq(tern_sub_next(later, 1000, &m), TERN_ECLOSED);
  cr_expect_eq(tern_sub_next(now, 1000, &m), TERN_ECLOSED);
  cr_expect_eq(tern_sub_unsubscribe(now, 0), TERN_ECLOSED);
  tern_sub_destroy(now);
  tern_sub_destroy(later);
  tern_client_close(cl);
}

/*
 * With echo off a client's own publish is not delivered to it: "mine" is
 * queued before "theirs" exists, so it would come first if it came at all.
 */
Test(client_blocking, echo_off) {
  tern_options_t o = test_opts();
  tern_client_t *self, *other;
  tern_sub_t *sub;
  o.echo = false;
  self = test_client(&o);
  other = test_client(NULL);
  cr_assert_eq(tern_client_subscribe(self, &sub, "e.*", NULL), 0);
  cr_assert_eq(tern_client_publish(self, "e.mine", "mine", 4, NULL), 0);
  cr_assert_eq(tern_client_flush(self, 5000), 0);
  cr_assert_eq(tern_client_publish(other, "e.theirs", "theirs", 6, NULL), 0);
  expect_msg(sub, "e.theirs", "theirs");
  tern_client_close(other);
  tern_client_close(self);
}

Test(client_blocking, headers_and_reply_round_trip) {
  tern_client_t *cl = test_client(NULL);
  const char *keys[] = {"content-type", "trace"};
  const char *vals[] = {"text/plain", "abc-123"};
  tern_pub_opts_t po;
  tern_header_t h;
  tern_sub_t *sub;
  tern_msg_t *m;
  cr_assert_eq(tern_client_subscribe(cl, &sub, "h.t", NULL), 0);
  tern_pub_opts_init(&po);
  po.header_keys = keys;
  po.header_values = vals;
  po.header_count = 2;
  po.reply = "h.reply";
  cr_assert_eq(tern_client_publish(cl, "h.t", "body", 4, &po), 0);
  cr_assert_eq(tern_sub_next(sub, 5000, &m), 0);
  cr_expect_str_eq(tern_msg_reply(m), "h.reply");
  cr_assert_eq(tern_msg_header_count(m), 2);
  cr_assert_eq(tern_msg_header(m, 0, &h), 0);
  cr_expect_str_eq(h.key, "content-type");
  cr_expect_str_eq(h.value, "text/plain");
  cr_expect_eq(h.value_len, strlen("text/plain"));
  cr_expect_str_eq(tern_msg_header_get(m, "trace"), "abc-123");
  cr_expect_null(tern_msg_header_get(m, "missing"));
  cr_expect_eq(tern_msg_header(m, 2, &h), TERN_EINVAL);
  cr_expect_not(tern_msg_retained(m));
  tern_msg_release(m);
  tern_client_close(cl);
}

/*
 * More header pairs than are viewed on the stack (pub.c allocates for
 * them), through both publish paths: the batched plain publish and the
 * acked one, which the loop thread encodes. A NULL key or value is refused
 * by both before anything is queued.
 */
Test(client_blocking, many_headers_and_null_header_through_both_paths) {
  enum { N = 40 };
  tern_client_t *cl = test_client(NULL);
  const char *keys[N], *vals[N];
  char kbuf[N][8], vbuf[N][8];
  tern_pub_opts_t po;
  tern_sub_t *sub;
  uint64_t receivers = 0;
  for (int i = 0; i < N; i++) {
    snprintf(kbuf[i], sizeof(kbuf[i]), "k%d", i);
    snprintf(vbuf[i], sizeof(vbuf[i]), "v%d", i);
    keys[i] = kbuf[i];
    vals[i] = vbuf[i];
  }
  cr_assert_eq(tern_client_subscribe(cl, &sub, "mh.t", NULL), 0);
  tern_pub_opts_init(&po);
  po.header_keys = keys;
  po.header_values = vals;
  po.header_count = N;
  cr_assert_eq(tern_client_publish(cl, "mh.t", "a", 1, &po), 0);
  cr_assert_eq(
      tern_client_publish_ack(cl, "mh.t", "b", 1, &po, 5000, &receivers), 0);
  cr_expect_eq(receivers, 1);
  for (int m = 0; m < 2; m++) {
    tern_msg_t *msg;
    cr_assert_eq(tern_sub_next(sub, 5000, &msg), 0);
    cr_expect_eq(tern_msg_header_count(msg), N);
    cr_expect_str_eq(tern_msg_header_get(msg, "k0"), "v0");
    cr_expect_str_eq(tern_msg_header_get(msg, "k39"), "v39");
    tern_msg_release(msg);
  }
  keys[N - 1] = NULL;
  cr_expect_eq(tern_client_publish(cl, "mh.t", "c", 1, &po), TERN_EINVAL);
  cr_expect_eq(
      tern_client_publish_ack(cl, "mh.t", "c", 1, &po, 5000, &receivers),
      TERN_EINVAL);
  po.header_keys = NULL;
  cr_expect_eq(tern_client_publish(cl, "mh.t", "c", 1, &po), TERN_EINVAL);
  tern_sub_destroy(sub);
  tern_client_close(cl);
}

Test(client_blocking, payload_of_max_payload_and_one_more) {
  tern_client_t *cl = test_client(NULL);
  uint64_t max = tern_client_max_payload(cl);
  tern_sub_t *sub;
  tern_msg_t *m;
  char *big;
  cr_assert_gt(max, 0);
  big = malloc(max + 1);
  cr_assert_not_null(big);
  memset(big, 'p', max + 1);
  cr_assert_eq(tern_client_subscribe(cl, &sub, "big.t", NULL), 0);
  cr_assert_eq(tern_client_publish(cl, "big.t", big, max, NULL), 0);
  cr_expect_eq(tern_client_publish(cl, "big.t", big, max + 1, NULL),
               TERN_ETOOLARGE);
  cr_assert_eq(tern_sub_next(sub, 5000, &m), 0);
  cr_expect_eq(tern_msg_len(m), max);
  cr_expect_eq(memcmp(tern_msg_data(m), big, max), 0);
  tern_msg_release(m);
  free(big);
  tern_client_close(cl);
}

/*
 * 10,000 messages arrive in publish order. The subscriber's local queue is
 * tiny, so the loop thread pauses and resumes reading many times on the way.
 */
Test(client_blocking, ten_thousand_in_order_through_a_small_queue) {
  tern_client_t *sub_cl = test_client(NULL);
  tern_client_t *pub_cl = test_client(NULL);
  tern_sub_opts_t so;
  tern_sub_t *sub;
  tern_sub_opts_init(&so);
  so.queue_msgs = 32;
  cr_assert_eq(tern_client_subscribe(sub_cl, &sub, "seq.t", &so), 0);
  for (uint32_t i = 0; i < 10000; i++) {
    cr_assert_eq(tern_client_publish(pub_cl, "seq.t", &i, sizeof(i), NULL), 0);
  }
  for (uint32_t i = 0; i < 10000; i++) {
    tern_msg_t *m;
    uint32_t got;
    cr_assert_eq(tern_sub_next(sub, 10000, &m), 0, "message %u", i);
    cr_assert_leq(tern_sub_pending(sub), 32);
    cr_assert_eq(tern_msg_len(m), sizeof(got));
    memcpy(&got, tern_msg_data(m), sizeof(got));
    cr_assert_eq(got, i);
    tern_msg_release(m);
  }
  tern_client_close(pub_cl);
  tern_client_close(sub_cl);
}

Test(client_blocking, invalid_topics_and_arguments) {
  tern_client_t *cl = test_client(NULL);
  tern_sub_t *sub = NULL;
  tern_pub_opts_t po;
  cr_expect_eq(tern_client_publish(cl, "bad..t", "x", 1, NULL), TERN_ETOPIC);
  cr_expect_eq(tern_client_publish(cl, "a.>", "x", 1, NULL), TERN_ETOPIC);
  cr_expect_eq(tern_client_subscribe(cl, &sub, "a.>.b", NULL), TERN_ETOPIC);
  cr_expect_null(sub);
  cr_expect_eq(tern_client_publish(cl, NULL, "x", 1, NULL), TERN_EINVAL);
  tern_pub_opts_init(&po);
  po.ack_cb = (tern_ack_cb)1; /* not allowed in the blocking API */
  cr_expect_eq(tern_client_publish(cl, "a", "x", 1, &po), TERN_EINVAL);
  cr_expect_eq(tern_client_flush(cl, 5000), 0);
  tern_client_close(cl);
}

Test(client_blocking, publish_ack_reports_receivers) {
  tern_client_t *cl = test_client(NULL);
  tern_sub_t *s1, *s2;
  uint64_t n = 99;
  cr_assert_eq(tern_client_subscribe(cl, &s1, "pa.t", NULL), 0);
  cr_assert_eq(tern_client_subscribe(cl, &s2, "pa.>", NULL), 0);
  cr_assert_eq(tern_client_publish_ack(cl, "pa.t", "x", 1, NULL, 5000, &n), 0);
  cr_expect_eq(n, 2);
  cr_assert_eq(tern_client_publish_ack(cl, "nobody.t", "x", 1, NULL, 5000, &n),
               0);
  cr_expect_eq(n, 0);
  tern_client_close(cl);
}

Test(client_blocking, connect_failure_is_reported) {
  tern_options_t o = test_opts();
  tern_client_t *cl = (tern_client_t *)1;
  tt_broker_t other;
  int rc;
  tt_broker_start(&other, NULL);
  o.port = other.port;
  cr_assert_eq(tt_broker_stop(&other), 0);
  rc = tern_client_connect(&cl, &o);
  cr_expect_eq(rc, UV_ECONNREFUSED, "%s", tern_err_name(rc));
  cr_expect_null(cl);
}
