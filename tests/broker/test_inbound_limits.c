/*
 * Memory that clients make the broker hold on the way in:
 *   - before CONNECT a frame may be at most 16 KiB (ERR 5 and close);
 *   - a frame that starts and is not finished within frame_timeout_ms is
 *     released with the connection (ERR 12), not held until the heartbeat
 *     gives up;
 *   - read buffers together stay under max_inbound_total (a frame past it:
 *     ERR 5), while frames within it go through;
 *   - a connection has at most 10,000 subscriptions and 1 MiB of
 *     patterns by default (ERR 10, non-fatal).
 * Presence of the buffers is read from /metrics (tern_inbound_bytes);
 * nothing waits on time.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "ops_util.h"
#include "raw_client.h"
#include "tern_proto/buf.h"

TT_BROKER_FIXTURE_DEFAULT(plain)
TT_BROKER_FIXTURE(quick, "--http-port", "-1", "--frame-timeout-ms", "300")
TT_BROKER_FIXTURE(capped, "--http-port", "-1", "--max-inbound-total", "2097152")

TestSuite(inbound, .timeout = 120);

static uint64_t metric(const char *name) {
  return ops_metric(tt_g_broker.http_port, name);
}

/* A PUB of n payload bytes to topic, encoded into b. */
static void encode_pub(tp_buf_t *b, const char *topic, size_t n) {
  uint8_t *payload = calloc(1, n);
  cr_assert_not_null(payload);
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = tt_str(topic);
  f.u.pub.payload.ptr = payload;
  f.u.pub.payload.len = (uint32_t)n;
  tp_buf_init(b);
  cr_assert_eq(tp_frame_encode(b, &f), 0);
  free(payload);
}

/* Polls /metrics until tern_inbound_bytes is at least `least` (each GET
 * is served by the loop that reads the clients). */
static uint64_t wait_inbound(uint64_t least) {
  uint64_t v = 0;
  for (int i = 0; i < 20000 && (v = metric("tern_inbound_bytes")) < least; i++)
    ;
  return v;
}

/* Before CONNECT: a 64 KiB frame is refused at its length prefix (it was
 * accepted up to max_frame, ~1 MiB, and held); a CONNECT with an 8 KiB
 * name still works. */
Test(inbound, frame_before_connect_is_small, .init = plain_init,
     .fini = plain_fini) {
  tt_raw_t c;
  tt_raw_open(&c, tt_g_broker.port, false, false, false);
  tp_buf_t b;
  encode_pub(&b, "pre.connect", 64 * 1024);
  tt_raw_send_bytes(&c, b.data, 4096);
  tt_raw_expect_err(&c, 5, TT_RECV_MS);
  cr_assert(tt_raw_wait_closed(&c, TT_RECV_MS));
  tt_raw_close(&c);
  tp_buf_free(&b);

  static char name[8192];
  memset(name, 'n', sizeof name - 1);
  tt_raw_open(&c, tt_g_broker.port, false, false, false);
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = TP_PROTO_VERSION;
  f.u.connect.name = tt_str(name);
  tt_raw_send(&c, &f);
  tt_raw_expect(&c, &f, TP_OK, TT_RECV_MS);
  tt_raw_check_pubsub(&c);
  tt_raw_close(&c);
}

/* After CONNECT: the start of a 512 KiB PUB, then nothing. The broker
 * holds its buffer (tern_inbound_bytes) only until frame_timeout_ms
 * (300 ms here; it was until the heartbeat gave up, ~90 s), then closes
 * with ERR 12 and the buffer is gone. */
Test(inbound, unfinished_frame_is_released, .init = quick_init,
     .fini = quick_fini) {
  tt_raw_t c;
  tt_raw_open(&c, tt_g_broker.port, true, false, false);
  tp_buf_t b;
  encode_pub(&b, "slow.frame", 512 * 1024);
  tt_raw_send_bytes(&c, b.data, b.len / 2);
  cr_assert_geq(wait_inbound(b.len), b.len, "the frame's buffer never showed");
  tt_raw_expect_err(&c, 12, TT_RECV_MS);
  cr_assert(tt_raw_wait_closed(&c, TT_RECV_MS));
  tt_raw_close(&c);
  tp_buf_free(&b);
  /* The close callback has run once a new connection is served. */
  tt_raw_t d;
  tt_raw_open(&d, tt_g_broker.port, true, true, false);
  tt_raw_check_pubsub(&d);
  cr_assert_eq(metric("tern_inbound_bytes"), 0u);
  cr_assert_eq(metric("tern_frame_timeouts_total"), 1u);
  tt_raw_close(&d);
}

/* max_inbound_total 2 MiB: two 800 KiB frames half sent fit (each
 * buffer is the whole frame once its rest is being read), a third is
 * refused with ERR 5; the first two complete and are delivered. */
Test(inbound, read_buffers_have_a_server_cap, .init = capped_init,
     .fini = capped_fini) {
  tt_raw_t s, p[3];
  tt_raw_open(&s, tt_g_broker.port, true, false, false);
  tt_raw_sub(&s, 1, "big.frame", NULL);
  tt_raw_barrier_strict(&s);
  tp_buf_t b;
  encode_pub(&b, "big.frame", 800 * 1024);
  for (int i = 0; i < 3; i++)
    tt_raw_open(&p[i], tt_g_broker.port, true, false, false);
  size_t half = b.len / 2;
  tt_raw_send_bytes(&p[0], b.data, half);
  cr_assert_geq(wait_inbound(b.len), b.len);
  tt_raw_send_bytes(&p[1], b.data, half);
  cr_assert_geq(wait_inbound(2 * b.len), 2 * b.len);
  tt_raw_send_bytes(&p[2], b.data, half);
  tt_raw_expect_err(&p[2], 5, TT_RECV_MS);
  cr_assert(tt_raw_wait_closed(&p[2], TT_RECV_MS));
  cr_assert_eq(metric("tern_inbound_refused_total"), 1u);
  for (int i = 0; i < 2; i++) {
    tt_raw_send_bytes(&p[i], b.data + half, b.len - half);
    tp_frame_t f;
    tt_raw_expect(&s, &f, TP_MSG, TT_RECV_MS);
    cr_assert_eq(f.u.msg.payload.len, 800u * 1024u);
    tt_raw_barrier_strict(&p[i]);
  }
  for (int i = 0; i < 3; i++)
    tt_raw_close(&p[i]);
  tt_raw_close(&s);
  tp_buf_free(&b);
}

/* Sends SUBs sid first.. of n patterns of `plen` bytes, then PING; returns
 * how many ERR 10 came back before the PONG. */
static int subscribe_many(tt_raw_t *c, uint64_t first, int n, size_t plen) {
  static char pat[1024];
  for (int i = 0; i < n; i++) {
    int k =
        snprintf(pat, sizeof pat, "m%llu.", (unsigned long long)(first + i));
    memset(pat + k, 'x', plen - (size_t)k);
    pat[plen] = '\0';
    tp_frame_t f;
    tp_frame_init(&f, TP_SUB);
    f.u.sub.sid = first + (uint64_t)i;
    f.u.sub.pattern = tt_str(pat);
    tt_raw_queue(c, &f);
    if (i % 256 == 255)
      tt_raw_flush(c);
  }
  tp_frame_t f;
  tp_frame_init(&f, TP_PING);
  tt_raw_queue(c, &f);
  tt_raw_flush(c);
  int errs = 0;
  for (;;) {
    tt_raw_recv(c, &f, TT_RECV_MS);
    if (f.type == TP_PONG)
      return errs;
    cr_assert_eq(f.type, TP_ERR, "got %s", tp_frame_type_name(f.type));
    cr_assert_eq(f.u.err.code, 10u);
    errs++;
  }
}

/* Defaults: 1 MiB of patterns per connection (1,048 of 1,000 bytes), and
 * 10,000 subscriptions; both refusals are ERR 10 and the connection goes
 * on. */
Test(inbound, subscriptions_are_bounded_by_default, .init = plain_init,
     .fini = plain_fini) {
  tt_raw_t c;
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  cr_assert_eq(subscribe_many(&c, 1, 1100, 1000), 1100 - 1048);
  tt_raw_check_pubsub(&c);
  tt_raw_close(&c);

  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  cr_assert_eq(subscribe_many(&c, 1, 10001, 16), 1);
  /* An UNSUB makes room for one more. */
  tt_raw_unsub(&c, 1, 0);
  cr_assert_eq(subscribe_many(&c, 20000, 1, 16), 0);
  tt_raw_close(&c);
}
