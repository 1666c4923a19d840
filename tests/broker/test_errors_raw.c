/*
 * Error acceptance tests in raw frames (PROTOCOL.md "Error codes"): each bad
 * input gets its code; after a non-fatal error the same connection goes on,
 * after a fatal one it is closed; and every time a well-behaved connection
 * opened before the bad input still publishes and subscribes afterwards.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_proc.h"
#include "raw_client.h"

TT_BROKER_FIXTURE_DEFAULT(plain)
TT_BROKER_FIXTURE(small, "--max-payload", "1024")
TT_BROKER_FIXTURE(maxsubs, "--max-subs", "2")
TT_BROKER_FIXTURE(maxconns, "--max-connections", "2")

TestSuite(errors, .timeout = 60);

#define SMALL_MAX_PAYLOAD 1024u
#define SMALL_MAX_FRAME (SMALL_MAX_PAYLOAD + 65536u)

/*
 * The fatal-error pattern: a bystander connection, a CONNECTed offender that
 * sends raw bytes, the expected ERR, the close, and the bystander still
 * served. The bytes include their own length prefix.
 */
static void expect_fatal_bytes(const void *bytes, size_t n, int code) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  tt_raw_send_bytes(&c, bytes, n);
  tt_raw_expect_err(&c, code, TT_RECV_MS);
  cr_assert(tt_raw_wait_closed(&c, TT_RECV_MS), "connection not closed");
  tt_raw_check_pubsub(&w);
  tt_raw_close(&c);
  tt_raw_close(&w);
}

static void expect_fatal_body(const void *body, size_t n, int code) {
  uint8_t *buf = malloc(4 + n);
  cr_assert_not_null(buf);
  buf[0] = (uint8_t)(n >> 24);
  buf[1] = (uint8_t)(n >> 16);
  buf[2] = (uint8_t)(n >> 8);
  buf[3] = (uint8_t)n;
  memcpy(buf + 4, body, n);
  expect_fatal_bytes(buf, 4 + n, code);
  free(buf);
}

/* After a non-fatal ERR: nothing else pending, and the session works. */
static void still_works(tt_raw_t *c, tt_raw_t *w) {
  tt_raw_barrier_strict(c);
  tt_raw_check_pubsub(c);
  tt_raw_check_pubsub(w);
}

/* Payloads at and just over the limit, published on c to a subscriber s. */
static void payload_limit(uint32_t max_payload) {
  tt_raw_t w, s, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  tt_raw_sub(&s, 1, "big.t", NULL);
  tt_raw_barrier(&s);
  uint8_t *payload = malloc(max_payload + 1);
  cr_assert_not_null(payload);
  for (uint32_t i = 0; i <= max_payload; i++)
    payload[i] = (uint8_t)(i * 7 + 3);
  tt_raw_pub(&c, "big.t", payload, max_payload);
  tt_raw_expect_msg(&s, 1, "big.t", payload, max_payload, TT_RECV_MS);
  tt_raw_barrier_strict(&c);
  tt_raw_pub(&c, "big.t", payload, max_payload + 1);
  tt_raw_expect_err(&c, 13, TT_RECV_MS);
  still_works(&c, &w);
  /* The refused payload was not delivered: the next MSG is a new one. */
  tt_raw_pub(&c, "big.t", "after", 5);
  tt_raw_expect_msg(&s, 1, "big.t", "after", 5, TT_RECV_MS);
  free(payload);
  tt_raw_close(&c);
  tt_raw_close(&s);
  tt_raw_close(&w);
}

Test(errors, payload_limit_small, .init = small_init, .fini = small_fini) {
  payload_limit(SMALL_MAX_PAYLOAD);
}

Test(errors, payload_limit_default, .init = plain_init, .fini = plain_fini) {
  payload_limit(1024u * 1024u);
}

Test(errors, length_prefix_above_max_frame, .init = small_init,
     .fini = small_fini) {
  uint32_t l = SMALL_MAX_FRAME + 1;
  uint8_t prefix[4] = {(uint8_t)(l >> 24), (uint8_t)(l >> 16),
                       (uint8_t)(l >> 8), (uint8_t)l};
  /* Only the prefix: the broker must refuse before any body arrives. */
  expect_fatal_bytes(prefix, 4, 5);
}

Test(errors, length_prefix_huge, .init = plain_init, .fini = plain_fini) {
  uint8_t prefix[4] = {0xff, 0xff, 0xff, 0xff};
  expect_fatal_bytes(prefix, 4, 5);
}

Test(errors, zero_length_frame, .init = plain_init, .fini = plain_fini) {
  uint8_t prefix[4] = {0, 0, 0, 0};
  expect_fatal_bytes(prefix, 4, 1);
}

Test(errors, garbage_body, .init = plain_init, .fini = plain_fini) {
  /* 0xc1 is the one byte msgpack never uses. */
  uint8_t body[] = {0xc1, 0xc1, 0xc1, 0xc1, 0xc1};
  expect_fatal_body(body, sizeof body, 1);
}

Test(errors, body_is_a_map, .init = plain_init, .fini = plain_fini) {
  uint8_t body[] = {0x81, 0xa1, 'a', 0x07}; /* {"a": 7} */
  expect_fatal_body(body, sizeof body, 1);
}

Test(errors, body_is_a_scalar, .init = plain_init, .fini = plain_fini) {
  uint8_t body[] = {0x07};
  expect_fatal_body(body, sizeof body, 1);
}

Test(errors, bytes_after_the_array, .init = plain_init, .fini = plain_fini) {
  uint8_t body[] = {0x91, 0x07, 0xc0}; /* [7] then nil */
  expect_fatal_body(body, sizeof body, 1);
}

Test(errors, unknown_frame_type, .init = plain_init, .fini = plain_fini) {
  uint8_t body[] = {0x91, 0x63}; /* [99] */
  expect_fatal_body(body, sizeof body, 1);
}

Test(errors, server_frame_from_client, .init = plain_init, .fini = plain_fini) {
  uint8_t body[] = {0x91, 0x09}; /* [9] OK is S->C only */
  expect_fatal_body(body, sizeof body, 1);
}

Test(errors, str_payload, .init = plain_init, .fini = plain_fini) {
  /* [3, "a.b", "xyz"] */
  uint8_t body[] = {0x93, 0x03, 0xa3, 'a', '.', 'b', 0xa3, 'x', 'y', 'z'};
  expect_fatal_body(body, sizeof body, 1);
}

Test(errors, missing_payload, .init = plain_init, .fini = plain_fini) {
  uint8_t body[] = {0x92, 0x03, 0xa3, 'a', '.', 'b'}; /* [3, "a.b"] */
  expect_fatal_body(body, sizeof body, 1);
}

Test(errors, sid_of_wrong_type, .init = plain_init, .fini = plain_fini) {
  /* [4, "x", "a.b"] */
  uint8_t body[] = {0x93, 0x04, 0xa1, 'x', 0xa3, 'a', '.', 'b'};
  expect_fatal_body(body, sizeof body, 1);
}

Test(errors, topic_not_utf8, .init = plain_init, .fini = plain_fini) {
  /* [3, "\xff", bin "x"] */
  uint8_t body[] = {0x93, 0x03, 0xa1, 0xff, 0xc4, 0x01, 'x'};
  expect_fatal_body(body, sizeof body, 1);
}

Test(errors, hostile_array32_header, .init = plain_init, .fini = plain_fini) {
  /* An array32 claiming ~2.47e9 elements in 7 bytes. */
  uint8_t body[] = {0xdd, 0x93, 0x85, 0x85, 0x85, 0x85, 0x85};
  expect_fatal_body(body, sizeof body, 1);
}

Test(errors, hostile_bin32_header, .init = plain_init, .fini = plain_fini) {
  /* [3, "a.b", bin32 claiming 2 GiB] in 11 bytes. */
  uint8_t body[] = {0x93, 0x03, 0xa3, 'a',  '.', 'b',
                    0xc6, 0x7f, 0xff, 0xff, 0xff};
  expect_fatal_body(body, sizeof body, 1);
}

Test(errors, frame_cut_short_then_close, .init = plain_init,
     .fini = plain_fini) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  uint8_t part[14] = {0, 0, 0, 100, 0x94, 0x03, 0xa3, 'a', '.', 'b'};
  tt_raw_send_bytes(&c, part, sizeof part);
  tt_raw_close(&c);
  tt_raw_check_pubsub(&w);
  tt_raw_close(&w);
}

Test(errors, frame_written_byte_by_byte, .init = plain_init,
     .fini = plain_fini) {
  tt_raw_t s, c;
  tt_raw_open(&s, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  tt_raw_sub(&s, 1, "slow.t", NULL);
  tt_raw_barrier(&s);
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = tt_str("slow.t");
  f.u.pub.payload.ptr = (const uint8_t *)"drip";
  f.u.pub.payload.len = 4;
  tp_buf_reset(&c.out);
  tt_raw_queue(&c, &f);
  tp_frame_init(&f, TP_PING);
  tt_raw_queue(&c, &f);
  /* One byte per write; the PONG proves each byte was taken in order. */
  for (size_t i = 0; i < c.out.len; i++)
    tt_send_all(c.fd, c.out.data + i, 1);
  tp_buf_reset(&c.out);
  tt_raw_expect(&c, &f, TP_PONG, TT_RECV_MS);
  tt_raw_expect_msg(&s, 1, "slow.t", "drip", 4, TT_RECV_MS);
  tt_raw_close(&c);
  tt_raw_close(&s);
}

/* PUB topic on c must get ERR code, and the session goes on. */
static void bad_pub(tt_raw_t *c, tt_raw_t *w, const char *topic, int code) {
  tt_raw_pub(c, topic, "x", 1);
  tt_raw_expect_err(c, code, TT_RECV_MS);
  still_works(c, w);
}

/* SUB pattern on c must get ERR code, and the session goes on. */
static void bad_sub(tt_raw_t *c, tt_raw_t *w, const char *pattern, int code) {
  tt_raw_sub(c, 77, pattern, NULL);
  tt_raw_expect_err(c, code, TT_RECV_MS);
  still_works(c, w);
}

Test(errors, invalid_topics, .init = plain_init, .fini = plain_fini) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  const char *bad[] = {"a..b", ".a", "a.", "", "a b", "a.\tb", "a*", "b>.c"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    bad_pub(&c, &w, bad[i], 4);
  tt_raw_close(&c);
  tt_raw_close(&w);
}

Test(errors, wildcard_in_pub_topic, .init = plain_init, .fini = plain_fini) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  bad_pub(&c, &w, "a.*", 4);
  bad_pub(&c, &w, "a.>", 4);
  bad_pub(&c, &w, "*", 4);
  tt_raw_close(&c);
  tt_raw_close(&w);
}

Test(errors, topic_length_limit, .init = plain_init, .fini = plain_fini) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  char topic[1026];
  memset(topic, 'a', sizeof topic);
  topic[1024] = '\0';
  /* Exactly 1024 bytes is allowed, for SUB and PUB. */
  tt_raw_sub(&c, 1, topic, NULL);
  tt_raw_barrier_strict(&c);
  tt_raw_pub(&c, topic, "x", 1);
  tt_raw_expect_msg(&c, 1, topic, "x", 1, TT_RECV_MS);
  topic[1024] = 'a';
  topic[1025] = '\0';
  bad_pub(&c, &w, topic, 4);
  bad_sub(&c, &w, topic, 4);
  tt_raw_close(&c);
  tt_raw_close(&w);
}

Test(errors, pub_to_system_topic, .init = plain_init, .fini = plain_fini) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  bad_pub(&c, &w, "$SYS.x", 3);
  bad_pub(&c, &w, "$SYS", 3);
  tt_raw_close(&c);
  tt_raw_close(&w);
}

Test(errors, invalid_patterns, .init = plain_init, .fini = plain_fini) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  const char *bad[] = {"a.>.b", ">.a", "a.b*", "a.*x", "a..b", "", "a .b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    bad_sub(&c, &w, bad[i], 4);
  /* None of the refused sids exists. */
  tt_raw_unsub(&c, 77, 0);
  tt_raw_expect_err(&c, 8, TT_RECV_MS);
  tt_raw_close(&c);
  tt_raw_close(&w);
}

Test(errors, duplicate_sid, .init = plain_init, .fini = plain_fini) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  tt_raw_sub(&c, 1, "dup.a", NULL);
  tt_raw_barrier_strict(&c);
  tt_raw_sub(&c, 1, "dup.b", NULL);
  tt_raw_expect_err(&c, 9, TT_RECV_MS);
  still_works(&c, &w);
  /* The first subscription is intact and the refused one does not exist. */
  tt_raw_pub(&w, "dup.b", "b", 1);
  tt_raw_pub(&w, "dup.a", "a", 1);
  tt_raw_expect_msg(&c, 1, "dup.a", "a", 1, TT_RECV_MS);
  tt_raw_barrier_strict(&c);
  tt_raw_close(&c);
  tt_raw_close(&w);
}

Test(errors, unsub_unknown_sid, .init = plain_init, .fini = plain_fini) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  tt_raw_unsub(&c, 4242, 0);
  tt_raw_expect_err(&c, 8, TT_RECV_MS);
  still_works(&c, &w);
  /* Unsubscribing twice: the second is unknown. */
  tt_raw_sub(&c, 5, "twice.t", NULL);
  tt_raw_unsub(&c, 5, 0);
  tt_raw_barrier_strict(&c);
  tt_raw_unsub(&c, 5, 0);
  tt_raw_expect_err(&c, 8, TT_RECV_MS);
  still_works(&c, &w);
  tt_raw_close(&c);
  tt_raw_close(&w);
}

Test(errors, too_many_subscriptions, .init = maxsubs_init,
     .fini = maxsubs_fini) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  tt_raw_sub(&c, 1, "lim.a", NULL);
  tt_raw_sub(&c, 2, "lim.b", NULL);
  tt_raw_barrier_strict(&c);
  tt_raw_sub(&c, 3, "lim.c", NULL);
  tt_raw_expect_err(&c, 10, TT_RECV_MS);
  tt_raw_barrier_strict(&c);
  /* The two accepted subscriptions work; the refused one does not exist. */
  tt_raw_pub(&w, "lim.c", "c", 1);
  tt_raw_pub(&w, "lim.a", "a", 1);
  tt_raw_pub(&w, "lim.b", "b", 1);
  tt_raw_expect_msg(&c, 1, "lim.a", "a", 1, TT_RECV_MS);
  tt_raw_expect_msg(&c, 2, "lim.b", "b", 1, TT_RECV_MS);
  /* A freed slot can be used again. */
  tt_raw_unsub(&c, 1, 0);
  tt_raw_sub(&c, 3, "lim.c", NULL);
  tt_raw_barrier_strict(&c);
  tt_raw_pub(&w, "lim.c", "c2", 2);
  tt_raw_expect_msg(&c, 3, "lim.c", "c2", 2, TT_RECV_MS);
  /* The limit is per connection: w has its own. */
  tt_raw_check_pubsub(&w);
  tt_raw_close(&c);
  tt_raw_close(&w);
}

/*
 * Opens a socket and reads its first frames: true if the broker greeted it
 * and answers PING, false if it refused it with ERR 11 and closed (a HELLO
 * before that ERR is allowed).
 */
static bool try_connection(tt_raw_t *c) {
  tt_raw_attach(c, tt_connect(tt_g_broker.port));
  tp_frame_t f;
  int r = tt_raw_recv(c, &f, TT_RECV_MS);
  cr_assert_eq(r, 1, "no HELLO and no ERR 11 (%d)", r);
  if (f.type == TP_HELLO) {
    /* HELLO could still be followed by the refusal: ask with PING. */
    tp_frame_init(&f, TP_PING);
    tt_raw_send(c, &f);
    r = tt_raw_recv(c, &f, TT_RECV_MS);
    cr_assert_neq(r, 0, "no answer to PING");
    if (r == 1 && f.type == TP_PONG)
      return true;
  }
  cr_assert_eq(r, 1, "closed without ERR 11");
  cr_assert_eq(f.type, TP_ERR, "got %s", tp_frame_type_name(f.type));
  cr_assert_eq(f.u.err.code, 11u, "ERR %u", f.u.err.code);
  cr_assert(tt_raw_wait_closed(c, TT_RECV_MS), "refused but not closed");
  return false;
}

Test(errors, too_many_connections, .init = maxconns_init,
     .fini = maxconns_fini) {
  tt_raw_t w, a, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&a, tt_g_broker.port, true, true, false);
  /* The third socket: either ERR 11 at once, or HELLO then ERR 11. */
  tt_raw_attach(&c, tt_connect(tt_g_broker.port));
  tp_frame_t f;
  int r = tt_raw_recv(&c, &f, TT_RECV_MS);
  cr_assert_eq(r, 1, "third connection: no frame (%d)", r);
  if (f.type == TP_HELLO)
    r = tt_raw_recv(&c, &f, TT_RECV_MS);
  cr_assert_eq(r, 1, "third connection: closed without ERR 11");
  cr_assert_eq(f.type, TP_ERR, "third connection got %s",
               tp_frame_type_name(f.type));
  cr_assert_eq(f.u.err.code, 11u, "ERR %u", f.u.err.code);
  cr_assert(tt_raw_wait_closed(&c, TT_RECV_MS), "refused but not closed");
  tt_raw_close(&c);
  tt_raw_check_pubsub(&w);
  tt_raw_check_pubsub(&a);
  /* Closing one frees a slot. The broker may see the new socket before
   * the old one's EOF, so a few refusals are allowed, not an endless run. */
  tt_raw_close(&a);
  bool admitted = false;
  for (int attempt = 0; attempt < 100 && !admitted; attempt++) {
    admitted = try_connection(&c);
    if (!admitted)
      tt_raw_close(&c);
  }
  cr_assert(admitted, "a freed connection slot was never reused");
  tt_raw_connect(&c, true, false);
  tt_raw_check_pubsub(&c);
  tt_raw_close(&c);
  tt_raw_close(&w);
}
