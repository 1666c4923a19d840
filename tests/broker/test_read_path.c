/*
 * The broker's read path (broker/data/readbuf.h): every connection reads
 * into one shared buffer and keeps only its unfinished frame. These tests
 * send frames cut at awkward places, frames larger than the shared buffer,
 * and several connections interleaving partial frames, and check that
 * every message arrives whole and in order.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "raw_client.h"

TT_BROKER_FIXTURE_DEFAULT(plain)

TestSuite(read_path, .init = plain_init, .fini = plain_fini, .timeout = 60);

/* Encodes PUB topic payload into b (appending). */
static void encode_pub(tp_buf_t *b, const char *topic, const uint8_t *payload,
                       size_t len) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = tt_str(topic);
  f.u.pub.payload.ptr = payload;
  f.u.pub.payload.len = (uint32_t)len;
  cr_assert_eq(tp_frame_encode(b, &f), 0);
}

static uint8_t *pattern_bytes(size_t len, unsigned seed) {
  uint8_t *p = malloc(len ? len : 1);
  cr_assert_not_null(p);
  for (size_t i = 0; i < len; i++)
    p[i] = (uint8_t)(i * 31u + seed);
  return p;
}

/* Small frames, a frame far larger than the shared read buffer, and
 * small ones again, all sent a few bytes at a time. */
Test(read_path, frames_cut_anywhere) {
  static const size_t sizes[] = {0, 16, 300000, 5, 70000, 1024, 1};
  const size_t n = sizeof sizes / sizeof sizes[0];
  tt_raw_t s, p;
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub(&s, 1, "rp.cut", NULL);
  tt_raw_barrier(&s);

  tp_buf_t all;
  tp_buf_init(&all);
  uint8_t *payloads[sizeof sizes / sizeof sizes[0]];
  for (size_t i = 0; i < n; i++) {
    payloads[i] = pattern_bytes(sizes[i], (unsigned)i);
    encode_pub(&all, "rp.cut", payloads[i], sizes[i]);
  }
  /* Cuts of 1, 2, ... 13 bytes, then large writes for the large frames. */
  size_t at = 0, step = 1;
  while (at < all.len) {
    size_t k = at < 64 ? step : step * 997;
    if (k > all.len - at)
      k = all.len - at;
    tt_raw_send_bytes(&p, all.data + at, k);
    at += k;
    step = step % 13 + 1;
  }
  for (size_t i = 0; i < n; i++)
    tt_raw_expect_msg(&s, 1, "rp.cut", payloads[i], sizes[i], TT_RECV_MS);
  for (size_t i = 0; i < n; i++)
    free(payloads[i]);
  tp_buf_free(&all);
  tt_raw_close(&p);
  tt_raw_close(&s);
}

/* Publishers take turns sending half a frame each: each one's unfinished
 * frame must survive the others' reads through the shared buffer. */
Test(read_path, interleaved_partial_frames) {
  enum { NPUB = 4, ROUNDS = 20 };
  tt_raw_t s, p[NPUB];
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  tt_raw_sub(&s, 1, "rp.mix.*", NULL);
  tt_raw_barrier(&s);
  for (int i = 0; i < NPUB; i++)
    tt_raw_open(&p[i], tt_g_broker.port, true, true, false);

  char topic[NPUB][16];
  for (int i = 0; i < NPUB; i++)
    snprintf(topic[i], sizeof topic[i], "rp.mix.%d", i);
  for (int r = 0; r < ROUNDS; r++) {
    uint8_t payload[40];
    tp_buf_t b[NPUB];
    for (int i = 0; i < NPUB; i++) {
      memset(payload, 'a' + i, sizeof payload);
      payload[0] = (uint8_t)r;
      tp_buf_init(&b[i]);
      encode_pub(&b[i], topic[i], payload, sizeof payload);
      tt_raw_send_bytes(&p[i], b[i].data, b[i].len / 2);
    }
    /* A round trip on another connection: the first halves have most
     * likely been read (and kept) before any second half arrives. */
    tt_raw_barrier(&s);
    for (int i = 0; i < NPUB; i++) {
      tt_raw_send_bytes(&p[i], b[i].data + b[i].len / 2,
                        b[i].len - b[i].len / 2);
      memset(payload, 'a' + i, sizeof payload);
      payload[0] = (uint8_t)r;
      tt_raw_expect_msg(&s, 1, topic[i], payload, sizeof payload, TT_RECV_MS);
      tp_buf_free(&b[i]);
    }
  }
  for (int i = 0; i < NPUB; i++)
    tt_raw_close(&p[i]);
  tt_raw_close(&s);
}
