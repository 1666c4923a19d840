/*
 * Fan-out acceptance tests in raw frames: one message to many
 * subscriptions (each gets exactly one MSG with its own sid), and a large
 * payload to many subscribers intact.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "raw_client.h"

TT_BROKER_FIXTURE_DEFAULT(plain)

TestSuite(fanout, .init = plain_init, .fini = plain_fini, .timeout = 90);

Test(fanout, thousand_subscriptions) {
  enum { CONNS = 10, PER_CONN = 100 };
  static const char *const patterns[] = {"fan.x", "fan.*", "fan.>", "*.x", ">"};
  tt_raw_t c[CONNS], p;
  for (int i = 0; i < CONNS; i++) {
    tt_raw_open(&c[i], tt_g_broker.port, true, true, false);
    for (uint64_t sid = 1; sid <= PER_CONN; sid++) {
      tp_frame_t f;
      tp_frame_init(&f, TP_SUB);
      f.u.sub.sid = sid;
      f.u.sub.pattern = tt_str(patterns[sid % 5]);
      tt_raw_queue(&c[i], &f);
    }
    tt_raw_flush(&c[i]);
    tt_raw_barrier_strict(&c[i]);
  }
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_pub(&p, "fan.x", "one", 3);
  for (int i = 0; i < CONNS; i++) {
    bool seen[PER_CONN + 1] = {false};
    for (int n = 0; n < PER_CONN; n++) {
      tp_frame_t f;
      tt_raw_expect(&c[i], &f, TP_MSG, TT_RECV_MS);
      uint64_t sid = f.u.msg.sid;
      cr_assert(sid >= 1 && sid <= PER_CONN, "conn %d: sid %llu", i,
                (unsigned long long)sid);
      cr_assert_not(seen[sid], "conn %d: sid %llu twice", i,
                    (unsigned long long)sid);
      seen[sid] = true;
      cr_assert(tt_str_eq(f.u.msg.topic, "fan.x"));
      cr_assert_eq(f.u.msg.payload.len, 3u);
      cr_assert_eq(memcmp(f.u.msg.payload.ptr, "one", 3), 0);
    }
    tt_raw_barrier_strict(&c[i]);
  }
  for (int i = 0; i < CONNS; i++)
    tt_raw_close(&c[i]);
  tt_raw_close(&p);
}

Test(fanout, large_payload_to_fifty) {
  enum { SUBS = 50, SIZE = 512 * 1024 };
  uint8_t *payload = malloc(SIZE);
  cr_assert_not_null(payload);
  for (uint32_t i = 0; i < SIZE; i++)
    payload[i] = (uint8_t)((i * 2654435761u) >> 13);
  tt_raw_t s[SUBS], p;
  for (int i = 0; i < SUBS; i++) {
    tt_raw_open(&s[i], tt_g_broker.port, true, true, false);
    tt_raw_sub(&s[i], (uint64_t)i + 1, "big.fan", NULL);
    tt_raw_barrier(&s[i]);
  }
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_pub(&p, "big.fan", payload, SIZE);
  for (int i = 0; i < SUBS; i++) {
    tt_raw_expect_msg(&s[i], (uint64_t)i + 1, "big.fan", payload, SIZE,
                      TT_RECV_MS);
    tt_raw_barrier_strict(&s[i]);
  }
  for (int i = 0; i < SUBS; i++)
    tt_raw_close(&s[i]);
  tt_raw_close(&p);
  free(payload);
}
