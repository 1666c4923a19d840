/*
 * Publish/subscribe acceptance tests in raw frames (PROTOCOL.md "Delivery",
 * "Topics"): matching, wildcards, $-topics, reply and headers, PUBACK, echo,
 * verbose, UNSUB and per-publisher order.
 *
 * A missing message is never proven by waiting: the test publishes a
 * sentinel after it and asserts that the sentinel comes first.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "broker_proc.h"
#include "raw_client.h"

TT_BROKER_FIXTURE_DEFAULT(plain)

TestSuite(pubsub, .init = plain_init, .fini = plain_fini, .timeout = 60);

static void open2(tt_raw_t *sub, tt_raw_t *pub) {
  tt_raw_open(sub, tt_g_broker.port, true, true, false);
  tt_raw_open(pub, tt_g_broker.port, true, true, false);
}

Test(pubsub, exact_topic) {
  tt_raw_t s, p;
  open2(&s, &p);
  tt_raw_sub(&s, 1, "a.b", NULL);
  tt_raw_barrier(&s);
  tt_raw_pub(&p, "a.b", "hello", 5);
  tt_raw_expect_msg(&s, 1, "a.b", "hello", 5, TT_RECV_MS);
  /* A plain message carries no options. */
  tt_raw_pub(&p, "a.b", "", 0);
  tp_frame_t f;
  tt_raw_expect(&s, &f, TP_MSG, TT_RECV_MS);
  cr_assert_eq(f.u.msg.payload.len, 0u);
  cr_assert_null(f.u.msg.reply.ptr);
  cr_assert_null(f.u.msg.headers.raw);
  cr_assert_not(f.u.msg.retained);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/*
 * Publishes topic once and expects exactly the sids in want (any order
 * across subscriptions, each once).
 */
static void expect_sids(tt_raw_t *s, tt_raw_t *p, const char *topic,
                        const uint64_t *want, size_t n) {
  bool seen[16] = {false};
  cr_assert_leq(n, 16u);
  tt_raw_pub(p, topic, topic, strlen(topic));
  for (size_t got = 0; got < n; got++) {
    tp_frame_t f;
    tt_raw_expect(s, &f, TP_MSG, TT_RECV_MS);
    cr_assert(tt_str_eq(f.u.msg.topic, topic), "topic '%.*s' for '%s'",
              (int)f.u.msg.topic.len, f.u.msg.topic.ptr, topic);
    size_t i = 0;
    while (i < n && want[i] != f.u.msg.sid)
      i++;
    cr_assert_lt(i, n, "sid %llu must not match '%s'",
                 (unsigned long long)f.u.msg.sid, topic);
    cr_assert_not(seen[i], "sid %llu got '%s' twice",
                  (unsigned long long)f.u.msg.sid, topic);
    seen[i] = true;
  }
}

Test(pubsub, wildcards) {
  tt_raw_t s, p;
  open2(&s, &p);
  tt_raw_sub(&s, 1, "w.*", NULL);
  tt_raw_sub(&s, 2, "w.>", NULL);
  tt_raw_sub(&s, 3, "w.*.c", NULL);
  tt_raw_sub(&s, 4, ">", NULL);
  tt_raw_sub(&s, 5, "*.b.*", NULL);
  tt_raw_sub(&s, 6, "end", NULL);
  tt_raw_barrier(&s);
  /* Each publish's set must be complete before the next, and an extra
   * match shows up as a wrong sid in the next set. */
  expect_sids(&s, &p, "w.b", (uint64_t[]){1, 2, 4}, 3);
  expect_sids(&s, &p, "w.b.c", (uint64_t[]){2, 3, 4, 5}, 4);
  expect_sids(&s, &p, "w", (uint64_t[]){4}, 1);
  expect_sids(&s, &p, "w.x.c.d", (uint64_t[]){2, 4}, 2);
  expect_sids(&s, &p, "x.b.y", (uint64_t[]){4, 5}, 2);
  expect_sids(&s, &p, "end", (uint64_t[]){4, 6}, 2);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

Test(pubsub, system_topics) {
  tt_raw_t s, v, p;
  open2(&s, &p);
  tt_raw_open(&v, tt_g_broker.port, true, true, true);
  tt_raw_sub(&s, 1, ">", NULL);
  tt_raw_sub(&s, 2, "*.x", NULL);
  tt_raw_barrier(&s);
  /* Explicit subscription to the server's topics is allowed. */
  tt_raw_sub(&v, 1, "$SYS.>", NULL);
  tp_frame_t f;
  tt_raw_expect(&v, &f, TP_OK, TT_RECV_MS);
  /* Publishing to them is not, and is not fatal. */
  tt_raw_pub(&p, "$SYS.x", "forged", 6);
  tt_raw_expect_err(&p, 3, TT_RECV_MS);
  tt_raw_barrier_strict(&p);
  /* Had the forged message been routed, it would come before this one. */
  expect_sids(&s, &p, "end.x", (uint64_t[]){1, 2}, 2);
  tt_raw_barrier_strict(&v);
  tt_raw_close(&v);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

Test(pubsub, reply_and_headers_pass_through) {
  tt_raw_t s, p;
  open2(&s, &p);
  tt_raw_sub(&s, 7, "rh.t", NULL);
  tt_raw_barrier(&s);

  tp_buf_t hb;
  tp_buf_init(&hb);
  tp_str_t keys[2] = {tt_str("trace-id"), tt_str("content-type")};
  tp_str_t vals[2] = {tt_str("abc123"), tt_str("text/plain; ü")};
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  cr_assert_eq(tp_headers_build(&hb, keys, vals, 2, &f.u.pub.headers), 0);
  f.u.pub.topic = tt_str("rh.t");
  f.u.pub.payload.ptr = (const uint8_t *)"body";
  f.u.pub.payload.len = 4;
  f.u.pub.reply = tt_str("_INBOX.r.1");
  tt_raw_send(&p, &f);
  tp_buf_free(&hb);

  tt_raw_expect(&s, &f, TP_MSG, TT_RECV_MS);
  cr_assert_eq(f.u.msg.sid, 7u);
  cr_assert(tt_str_eq(f.u.msg.reply, "_INBOX.r.1"), "reply '%.*s'",
            (int)f.u.msg.reply.len, f.u.msg.reply.ptr);
  cr_assert_eq(f.u.msg.payload.len, 4u);
  cr_assert_eq(memcmp(f.u.msg.payload.ptr, "body", 4), 0);
  cr_assert_eq(f.u.msg.headers.count, 2u);
  tp_headers_iter_t it;
  tp_headers_iter_init(&it, &f.u.msg.headers);
  bool seen[2] = {false, false};
  tp_str_t k, v;
  int pairs = 0;
  while (tp_headers_next(&it, &k, &v) == 1) {
    pairs++;
    for (int i = 0; i < 2; i++) {
      if (k.len == keys[i].len && memcmp(k.ptr, keys[i].ptr, k.len) == 0) {
        cr_assert_not(seen[i]);
        seen[i] = true;
        cr_assert(v.len == vals[i].len &&
                      memcmp(v.ptr, vals[i].ptr, v.len) == 0,
                  "header %d value '%.*s'", i, (int)v.len, v.ptr);
      }
    }
  }
  cr_assert_eq(pairs, 2);
  cr_assert(seen[0] && seen[1], "a header is missing");
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/* PUB with ack, and the PUBACK it must produce. */
static void pub_ack(tt_raw_t *p, const char *topic, uint64_t ack,
                    uint64_t receivers) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = tt_str(topic);
  f.u.pub.payload.ptr = (const uint8_t *)"a";
  f.u.pub.payload.len = 1;
  f.u.pub.has_ack = true;
  f.u.pub.ack = ack;
  tt_raw_send(p, &f);
  tt_raw_expect(p, &f, TP_PUBACK, TT_RECV_MS);
  cr_assert_eq(f.u.puback.ack_id, ack);
  cr_assert_eq(f.u.puback.receivers, receivers, "receivers %llu, want %llu",
               (unsigned long long)f.u.puback.receivers,
               (unsigned long long)receivers);
}

Test(pubsub, puback_counts_receivers) {
  tt_raw_t s1, s2, p;
  open2(&s1, &p);
  tt_raw_open(&s2, tt_g_broker.port, true, true, false);
  pub_ack(&p, "ack.t", 7, 0);
  tt_raw_sub(&s1, 1, "ack.t", NULL);
  tt_raw_sub(&s1, 2, "ack.*", NULL);
  tt_raw_sub(&s2, 1, "ack.>", NULL);
  tt_raw_barrier(&s1);
  tt_raw_barrier(&s2);
  pub_ack(&p, "ack.t", 8, 3);
  pub_ack(&p, "ack.other", 9, 2);
  pub_ack(&p, "nobody.listens", 10, 0);
  tt_raw_close(&s2);
  tt_raw_close(&s1);
  tt_raw_close(&p);
}

Test(pubsub, echo_on_delivers_own_messages) {
  tt_raw_t a;
  tt_raw_open(&a, tt_g_broker.port, true, true, false);
  tt_raw_sub(&a, 1, "echo.t", NULL);
  tt_raw_barrier(&a);
  tt_raw_pub(&a, "echo.t", "mine", 4);
  tt_raw_expect_msg(&a, 1, "echo.t", "mine", 4, TT_RECV_MS);
  tt_raw_close(&a);
}

Test(pubsub, echo_off_suppresses_own_messages) {
  tt_raw_t a, b;
  tt_raw_open(&a, tt_g_broker.port, true, false, false);
  tt_raw_open(&b, tt_g_broker.port, true, true, false);
  tt_raw_sub(&a, 1, "echo.t", NULL);
  tt_raw_sub(&b, 1, "echo.t", NULL);
  tt_raw_barrier(&a);
  tt_raw_barrier(&b);
  tt_raw_pub(&a, "echo.t", "mine", 4);
  /* Others still get a's message. */
  tt_raw_expect_msg(&b, 1, "echo.t", "mine", 4, TT_RECV_MS);
  /* Strict: an echoed MSG queued before the PONG fails here. */
  tt_raw_barrier_strict(&a);
  tt_raw_pub(&b, "echo.t", "theirs", 6);
  /* a's first MSG must be b's: its own was never queued. */
  tt_raw_expect_msg(&a, 1, "echo.t", "theirs", 6, TT_RECV_MS);
  tt_raw_close(&b);
  tt_raw_close(&a);
}

Test(pubsub, verbose_acknowledges_each_operation) {
  tt_raw_t v;
  tt_raw_open(&v, tt_g_broker.port, true, true, true);
  tp_frame_t f;
  tt_raw_sub(&v, 1, "verb.t", NULL);
  tt_raw_expect(&v, &f, TP_OK, TT_RECV_MS);
  tt_raw_barrier_strict(&v);
  tt_raw_pub(&v, "verb.other", "x", 1);
  tt_raw_expect(&v, &f, TP_OK, TT_RECV_MS);
  tt_raw_barrier_strict(&v);
  tt_raw_unsub(&v, 1, 0);
  tt_raw_expect(&v, &f, TP_OK, TT_RECV_MS);
  tt_raw_barrier_strict(&v);
  /* A failure is answered by ERR instead of OK, never by both. */
  tt_raw_sub(&v, 2, "verb..bad", NULL);
  tt_raw_expect_err(&v, 4, TT_RECV_MS);
  tt_raw_barrier_strict(&v);
  tt_raw_pub(&v, "verb.*", "x", 1);
  tt_raw_expect_err(&v, 4, TT_RECV_MS);
  tt_raw_barrier_strict(&v);
  tt_raw_unsub(&v, 99, 0);
  tt_raw_expect_err(&v, 8, TT_RECV_MS);
  tt_raw_barrier_strict(&v);
  tt_raw_close(&v);
}

Test(pubsub, quiet_connection_gets_no_ok) {
  tt_raw_t c;
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  tt_raw_sub(&c, 1, "quiet.t", NULL);
  tt_raw_pub(&c, "quiet.other", "x", 1);
  tt_raw_unsub(&c, 1, 0);
  tt_raw_barrier_strict(&c);
  tt_raw_close(&c);
}

Test(pubsub, unsub_stops_delivery) {
  tt_raw_t s, p;
  open2(&s, &p);
  tt_raw_sub(&s, 1, "u.t", NULL);
  tt_raw_sub(&s, 2, "u.end", NULL);
  tt_raw_barrier(&s);
  tt_raw_pub(&p, "u.t", "1", 1);
  tt_raw_expect_msg(&s, 1, "u.t", "1", 1, TT_RECV_MS);
  tt_raw_unsub(&s, 1, 0);
  tt_raw_barrier(&s);
  tt_raw_pub(&p, "u.t", "2", 1);
  tt_raw_pub(&p, "u.end", "end", 3);
  tt_raw_expect_msg(&s, 2, "u.end", "end", 3, TT_RECV_MS);
  tt_raw_barrier_strict(&s);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

Test(pubsub, unsub_with_max_msgs) {
  tt_raw_t s, p;
  open2(&s, &p);
  tt_raw_sub(&s, 1, "max.t", NULL);
  tt_raw_sub(&s, 2, "max.end", NULL);
  tt_raw_unsub(&s, 1, 3);
  tt_raw_barrier(&s);
  for (char i = '0'; i < '5'; i++)
    tt_raw_pub(&p, "max.t", &i, 1);
  tt_raw_pub(&p, "max.end", "end", 3);
  tt_raw_expect_msg(&s, 1, "max.t", "0", 1, TT_RECV_MS);
  tt_raw_expect_msg(&s, 1, "max.t", "1", 1, TT_RECV_MS);
  tt_raw_expect_msg(&s, 1, "max.t", "2", 1, TT_RECV_MS);
  tt_raw_expect_msg(&s, 2, "max.end", "end", 3, TT_RECV_MS);
  tt_raw_barrier_strict(&s);
  /* The subscription ended by itself: its sid is free again. */
  tt_raw_sub(&s, 1, "max.t", NULL);
  tt_raw_barrier_strict(&s);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/*
 * 10,000 messages from one publisher reach one subscription in order. Sent
 * in batches that fit in the socket buffers, so the single-threaded test
 * cannot deadlock against the broker's backpressure.
 */
Test(pubsub, order_of_ten_thousand) {
  enum { TOTAL = 10000, BATCH = 1000 };
  tt_raw_t s, p;
  open2(&s, &p);
  tt_raw_sub(&s, 1, "ord.t", NULL);
  tt_raw_barrier(&s);
  uint32_t next = 0;
  for (uint32_t sent = 0; sent < TOTAL; sent += BATCH) {
    for (uint32_t i = sent; i < sent + BATCH; i++) {
      uint8_t seq[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16),
                        (uint8_t)(i >> 8), (uint8_t)i};
      tp_frame_t f;
      tp_frame_init(&f, TP_PUB);
      f.u.pub.topic = tt_str("ord.t");
      f.u.pub.payload.ptr = seq;
      f.u.pub.payload.len = 4;
      tt_raw_queue(&p, &f);
    }
    tt_raw_flush(&p);
    while (next < sent + BATCH) {
      tp_frame_t f;
      tt_raw_expect(&s, &f, TP_MSG, TT_RECV_MS);
      cr_assert_eq(f.u.msg.payload.len, 4u);
      const uint8_t *b = f.u.msg.payload.ptr;
      uint32_t got = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
                     (uint32_t)b[2] << 8 | b[3];
      cr_assert_eq(got, next, "message %u arrived where %u was due", got, next);
      next++;
    }
  }
  tt_raw_barrier_strict(&s);
  tt_raw_close(&p);
  tt_raw_close(&s);
}
