/*
 * Retained messages over the wire (PROTOCOL.md "Delivery"):
 * replace, delete, expiry, wildcard selection from a large store, caps and
 * ordering against live traffic.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "broker_proc.h"
#include "flood.h"
#include "raw_client.h"

TT_BROKER_FIXTURE_DEFAULT(plain)
TT_BROKER_FIXTURE(capped, "--max-retained-topics", "3", "--max-retained-bytes",
                  "4096")

TestSuite(retained, .init = plain_init, .fini = plain_fini, .timeout = 60);
TestSuite(retained_caps, .init = capped_init, .fini = capped_fini,
          .timeout = 60);

static void pub_retained(tt_raw_t *c, const char *topic, const void *payload,
                         size_t len, uint64_t ttl_ms) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = tt_str(topic);
  f.u.pub.payload.ptr = payload;
  f.u.pub.payload.len = (uint32_t)len;
  f.u.pub.retain = true;
  f.u.pub.ttl_ms = ttl_ms;
  tt_raw_queue(c, &f);
}

/* Next frame: a MSG for sid with this payload and retained flag. */
static void expect_msg(tt_raw_t *c, uint64_t sid, const char *payload,
                       bool retained) {
  tp_frame_t f;
  tt_raw_expect(c, &f, TP_MSG, TT_RECV_MS);
  cr_assert_eq(f.u.msg.sid, sid);
  cr_assert_eq(f.u.msg.payload.len, strlen(payload));
  cr_assert(memcmp(f.u.msg.payload.ptr, payload, strlen(payload)) == 0,
            "payload '%.*s', expected '%s'", (int)f.u.msg.payload.len,
            (const char *)f.u.msg.payload.ptr, payload);
  cr_assert_eq(f.u.msg.retained, retained, "retained flag %d",
               f.u.msg.retained);
}

Test(retained, replace_then_live) {
  tt_raw_t p, s;
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  pub_retained(&p, "ret.a", "one", 3, 0);
  pub_retained(&p, "ret.a", "two", 3, 0);
  tt_raw_flush(&p);
  tt_raw_barrier_strict(&p);
  tt_raw_sub(&s, 1, "ret.a", NULL);
  expect_msg(&s, 1, "two", true);
  tt_raw_barrier_strict(&s); /* only the last value */
  tt_raw_pub(&p, "ret.a", "three", 5);
  expect_msg(&s, 1, "three", false);
  /* A plain PUB does not replace the retained value. */
  tt_raw_sub(&s, 2, "ret.a", NULL);
  expect_msg(&s, 2, "two", true);
  tt_raw_barrier_strict(&s);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

Test(retained, empty_payload_deletes) {
  tt_raw_t p, s;
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  pub_retained(&p, "del.a", "gone", 4, 0);
  pub_retained(&p, "del.b", "kept", 4, 0);
  pub_retained(&p, "del.a", "", 0, 0);
  tt_raw_flush(&p);
  tt_raw_barrier_strict(&p);
  tt_raw_sub(&s, 1, "del.*", NULL);
  expect_msg(&s, 1, "kept", true);
  tt_raw_barrier_strict(&s);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

Test(retained, queue_groups_get_no_retained) {
  tt_raw_t p, s;
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  pub_retained(&p, "grp.a", "old", 3, 0);
  tt_raw_flush(&p);
  tt_raw_barrier_strict(&p);
  tt_raw_sub(&s, 1, "grp.a", "workers");
  tt_raw_barrier_strict(&s);
  tt_raw_pub(&p, "grp.a", "new", 3);
  expect_msg(&s, 1, "new", false);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/*
 * Expiry without sleeping: one message with a long ttl, one with a short
 * one. New subscriptions are made until the short one is gone (bounded by
 * the test timeout); the long one must be there every time.
 */
Test(retained, ttl_expires) {
  tt_raw_t p, s;
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  pub_retained(&p, "exp.long", "long", 4, 600000);
  pub_retained(&p, "exp.short", "short", 5, 50);
  tt_raw_flush(&p);
  tt_raw_barrier_strict(&p);
  bool short_gone = false;
  for (uint64_t sid = 1; !short_gone; sid++) {
    tt_raw_sub(&s, sid, "exp.*", NULL);
    tp_frame_t f;
    tp_frame_init(&f, TP_PING);
    tt_raw_send(&s, &f);
    bool saw_long = false, saw_short = false;
    int r;
    while ((r = tt_raw_recv(&s, &f, TT_RECV_MS)) == 1 && f.type == TP_MSG) {
      cr_assert(f.u.msg.retained);
      if (tt_str_eq(f.u.msg.topic, "exp.long"))
        saw_long = true;
      else if (tt_str_eq(f.u.msg.topic, "exp.short"))
        saw_short = true;
      else
        cr_assert_fail("unexpected topic");
    }
    cr_assert_eq(r, 1);
    cr_assert_eq(f.type, TP_PONG, "got %s", tp_frame_type_name(f.type));
    cr_assert(saw_long, "the long-lived retained message expired");
    short_gone = !saw_short;
    tt_raw_unsub(&s, sid, 0);
  }
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/*
 * 100,000 retained topics; a wildcard subscription receives exactly the
 * ones it matches. (That the match visits only matching branches is
 * checked on the store itself, in test_retained.c.)
 */
Test(retained, wildcard_selects_from_100k_topics) {
  enum { GROUPS = 10000, PER = 10 };
  tt_raw_t p, s;
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  char topic[64];
  for (int g = 0; g < GROUPS; g++) {
    for (int i = 0; i < PER; i++) {
      snprintf(topic, sizeof topic, "big.g%d.t%d", g, i);
      pub_retained(&p, topic, topic, strlen(topic), 0);
    }
    if (g % 100 == 99)
      tt_raw_flush(&p);
  }
  tt_raw_flush(&p);
  tt_raw_barrier_strict(&p);
  tt_raw_sub(&s, 1, "big.g4242.*", NULL);
  bool seen[PER] = {false};
  for (int i = 0; i < PER; i++) {
    tp_frame_t f;
    tt_raw_expect(&s, &f, TP_MSG, TT_RECV_MS);
    cr_assert(f.u.msg.retained);
    int k = -1;
    cr_assert_eq(sscanf(f.u.msg.topic.ptr, "big.g4242.t%d", &k), 1);
    cr_assert(k >= 0 && k < PER && !seen[k], "topic t%d twice or unknown", k);
    seen[k] = true;
  }
  tt_raw_barrier_strict(&s);
  /* '>' from a deeper point, and a literal. */
  tt_raw_sub(&s, 2, "big.g77.>", NULL);
  for (int i = 0; i < PER; i++) {
    tp_frame_t f;
    tt_raw_expect(&s, &f, TP_MSG, TT_RECV_MS);
    cr_assert_eq(f.u.msg.sid, 2u);
  }
  tt_raw_barrier_strict(&s);
  tt_raw_sub(&s, 3, "big.g9999.t9", NULL);
  expect_msg(&s, 3, "big.g9999.t9", true);
  tt_raw_barrier_strict(&s);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/*
 * Retained before live, and no live message lost in between: the
 * publisher floods with retain while subscriptions come; each one gets one
 * retained message (seq k) first, then live messages k+1, k+2, ... with no
 * gap to the end of the flood.
 */
Test(retained, retained_before_live_without_gap) {
  enum { COUNT = 20000, SIZE = 64, NSUBS = 5 };
  tt_raw_t p, s;
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  /* One retained value exists before the flood starts. */
  tt_flood_t fl;
  tt_flood_start_retained(&fl, p.fd, "ord.x", 0, 1, SIZE, true);
  cr_assert_eq(tt_flood_join(&fl), 0);
  tp_frame_t f;
  tt_raw_expect(&p, &f, TP_PONG, TT_RECV_MS);
  tt_flood_start_retained(&fl, p.fd, "ord.x", 1, COUNT, SIZE, true);
  for (uint64_t sid = 1; sid <= NSUBS; sid++)
    tt_raw_sub(&s, sid, "ord.x", NULL);
  int64_t next[NSUBS + 1];
  for (int i = 0; i <= NSUBS; i++)
    next[i] = -1;
  uint32_t done = 0;
  while (done < NSUBS) {
    tt_raw_expect(&s, &f, TP_MSG, TT_RECV_MS);
    uint64_t sid = f.u.msg.sid;
    cr_assert(sid >= 1 && sid <= NSUBS);
    int64_t seq = tt_flood_seq(&f, SIZE);
    if (next[sid] < 0) {
      cr_assert(f.u.msg.retained, "sid %llu: first message is live",
                (unsigned long long)sid);
    } else {
      cr_assert(!f.u.msg.retained, "sid %llu: retained after live",
                (unsigned long long)sid);
      cr_assert_eq(seq, next[sid], "sid %llu: got %lld, expected %lld",
                   (unsigned long long)sid, (long long)seq,
                   (long long)next[sid]);
    }
    next[sid] = seq + 1;
    if (seq == COUNT)
      done++;
  }
  cr_assert_eq(tt_flood_join(&fl), 0);
  tt_raw_expect(&p, &f, TP_PONG, TT_RECV_MS);
  tt_raw_barrier_strict(&s);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/* Caps: 3 topics, 4096 bytes. A refused retain is ERR 13, non-fatal, and
 * the message is still delivered live; replacing within the caps works. */
Test(retained_caps, topic_and_byte_caps) {
  tt_raw_t p, s;
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  tt_raw_sub(&s, 1, "cap.*", NULL);
  tt_raw_barrier_strict(&s);
  pub_retained(&p, "cap.a", "a", 1, 0);
  pub_retained(&p, "cap.b", "b", 1, 0);
  pub_retained(&p, "cap.c", "c", 1, 0);
  tt_raw_flush(&p);
  tt_raw_barrier_strict(&p);
  pub_retained(&p, "cap.d", "d", 1, 0);
  tt_raw_flush(&p);
  tt_raw_expect_err(&p, 13, TT_RECV_MS);
  tt_raw_barrier_strict(&p);
  /* Replacing an existing topic is not a new topic. */
  pub_retained(&p, "cap.a", "A", 1, 0);
  tt_raw_flush(&p);
  tt_raw_barrier_strict(&p);
  /* Bytes: a 4090-byte payload does not fit next to the others. */
  static char big[4090];
  memset(big, 'x', sizeof big);
  pub_retained(&p, "cap.b", big, sizeof big, 0);
  tt_raw_flush(&p);
  tt_raw_expect_err(&p, 13, TT_RECV_MS);
  tt_raw_check_pubsub(&p); /* non-fatal */
  /* Live delivery happened for every PUB, refused or not. */
  const char *live[] = {"a", "b", "c", "d", "A"};
  for (int i = 0; i < 5; i++)
    expect_msg(&s, 1, live[i], false);
  tp_frame_t f;
  tt_raw_expect(&s, &f, TP_MSG, TT_RECV_MS);
  cr_assert_eq(f.u.msg.payload.len, sizeof big);
  tt_raw_barrier_strict(&s);
  /* The store: A, b, c. */
  tt_raw_sub(&s, 2, "cap.*", NULL);
  bool seen_a = false, seen_b = false, seen_c = false;
  for (int i = 0; i < 3; i++) {
    tt_raw_expect(&s, &f, TP_MSG, TT_RECV_MS);
    cr_assert(f.u.msg.retained);
    cr_assert_eq(f.u.msg.payload.len, 1u);
    char ch = (char)f.u.msg.payload.ptr[0];
    seen_a |= ch == 'A';
    seen_b |= ch == 'b';
    seen_c |= ch == 'c';
  }
  cr_assert(seen_a && seen_b && seen_c);
  tt_raw_barrier_strict(&s);
  tt_raw_close(&p);
  tt_raw_close(&s);
}
