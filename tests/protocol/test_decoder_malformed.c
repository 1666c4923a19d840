/*
 * Every class of malformed body the decoder must refuse, with the error
 * code and the reason, and the forward-compatible inputs it must accept.
 * Bodies are packed by hand so they can be what no encoder would write.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "proto_test_util.h"

static tp_decoder_t *dec;
static tp_buf_t b;
static msgpack_packer pk;
static tp_frame_t f;

static void setup(void) {
  cr_assert_eq(tp_decoder_create(&dec), 0);
  tp_buf_init(&b);
  pt_packer(&pk, &b);
}

static void teardown(void) {
  tp_decoder_destroy(dec);
  tp_buf_free(&b);
}

TestSuite(malformed, .init = setup, .fini = teardown);

static int decode(void) {
  return tp_frame_decode(dec, b.data, b.len, &f);
}

/* Decoding b must fail with rc and a reason containing why. */
static void refuse(int rc, const char *why) {
  int got = decode();
  cr_assert_eq(got, rc, "want %d got %d (%s)", rc, got, tp_decoder_errmsg(dec));
  cr_assert(strstr(tp_decoder_errmsg(dec), why) != NULL,
            "reason '%s' lacks '%s'", tp_decoder_errmsg(dec), why);
}

static void refuse_bytes(const void *p, size_t n, int rc, const char *why) {
  tp_buf_reset(&b);
  tp_buf_append(&b, p, n);
  refuse(rc, why);
}

/* refuse_bytes for a string literal, embedded NULs included. */
#define RB(lit, rc, why) refuse_bytes(lit, sizeof(lit) - 1, rc, why)

static void accept_ok(void) {
  int rc = decode();
  cr_assert_eq(rc, 0, "refused: %d %s", rc, tp_decoder_errmsg(dec));
}

Test(malformed, length_prefix) {
  size_t size = 0;
  static const uint8_t zero[] = {0, 0, 0, 0};
  static const uint8_t big[] = {0, 1, 0, 1};
  static const uint8_t ok[] = {0, 1, 0, 0};
  cr_assert_eq(tp_frame_size(zero, 4, 65536, &size), TP_EPROTO);
  cr_assert_eq(tp_frame_size(big, 4, 65536, &size), TP_ETOOBIG);
  cr_assert_eq(tp_frame_size(ok, 4, 65536, &size), 1);
  cr_assert_eq(size, 65540);
  cr_assert_eq(tp_frame_size(ok, 3, 65536, &size), 0);
}

Test(malformed, body_not_an_array) {
  msgpack_pack_map(&pk, 0);
  refuse(TP_EPROTO, "not a msgpack array");
  RB("\x07", TP_EPROTO, "not a msgpack array");
  RB("", TP_EPROTO, "not a msgpack array");
}

Test(malformed, empty_array) {
  RB("\x90", TP_EPROTO, "empty frame array");
}

Test(malformed, frame_type) {
  RB("\x91\xa1x", TP_EPROTO, "must be an integer");
  RB("\x91\xff", TP_EPROTO, "positive integer");
  RB("\x91\xcb\x3f\xf0\0\0\0\0\0\0", TP_EPROTO, "must be an integer");
  RB("\x91\x63", TP_ETYPE, "unknown frame type 99");
  RB("\x91\x00", TP_ETYPE, "unknown frame type 0");
  RB("\x91\x0e", TP_ETYPE, "unknown frame type 14");
  /* A type packed in a wider int form is still the type. */
  tp_buf_reset(&b);
  tp_buf_append(&b, "\x91\xcd\x00\x07", 4);
  accept_ok();
  cr_assert_eq(f.type, TP_PING);
}

Test(malformed, trailing_bytes) {
  RB("\x91\x07\x00", TP_EPROTO, "bytes after");
  RB("\x91\x07\x91\x07", TP_EPROTO, "bytes after");
}

Test(malformed, truncated_and_reserved) {
  RB("\x92\x07", TP_EPROTO, "element count exceeds");
  RB("\x92\x03\xa5"
     "ab",
     TP_EPROTO, "declared length");
  RB("\x92\x07\xcd\x01", TP_EPROTO, "declared length");
  RB("\x92\x07\xc1", TP_EPROTO, "0xc1");
  RB("\x92\x07\xd9", TP_EPROTO, "truncated");
}

/* Declared lengths far beyond the frame must be refused before msgpack-c. */
Test(malformed, hostile_declared_lengths) {
  static const uint8_t array32[] = {0xdd, 0x93, 0x85, 0x85, 0x85, 0x85, 0x85};
  refuse_bytes(array32, sizeof(array32), TP_EPROTO, "element count exceeds");
  static const uint8_t map32[] = {0x92, 0x07, 0xdf, 0x93, 0x85, 0x85, 0x85};
  refuse_bytes(map32, sizeof(map32), TP_EPROTO, "element count exceeds");
  static const uint8_t str32[] = {0x92, 0x07, 0xdb, 0xff, 0xff, 0xff, 0xff};
  refuse_bytes(str32, sizeof(str32), TP_EPROTO, "declared length");
  static const uint8_t bin32[] = {0x92, 0x07, 0xc6, 0xff, 0xff, 0xff, 0xf0};
  refuse_bytes(bin32, sizeof(bin32), TP_EPROTO, "declared length");
  static const uint8_t ext32[] = {0x92, 0x07, 0xc9, 0x7f,
                                  0xff, 0xff, 0xff, 0x01};
  refuse_bytes(ext32, sizeof(ext32), TP_EPROTO, "declared length");
  static const uint8_t array16[] = {0x92, 0x07, 0xdc, 0xff, 0xff, 0x00};
  refuse_bytes(array16, sizeof(array16), TP_EPROTO, "element count exceeds");
  /* A map of n pairs needs 2n bytes at least. */
  static const uint8_t map_half[] = {0x92, 0x07, 0x82, 0x00, 0x00, 0x00};
  refuse_bytes(map_half, sizeof(map_half), TP_EPROTO, "element count exceeds");
}

static void nested(int levels) {
  tp_buf_reset(&b);
  /* [7, [[[...]]]]: the frame array is level 1. */
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint8(&pk, 7);
  for (int i = 1; i < levels; i++)
    msgpack_pack_array(&pk, i + 1 < levels ? 1 : 0);
}

Test(malformed, nesting) {
  nested(1000);
  refuse(TP_EPROTO, "nesting deeper than 32");
  nested(33);
  refuse(TP_EPROTO, "nesting deeper than 32");
  nested(32);
  accept_ok();
  cr_assert_eq(f.type, TP_PING);
  /* Maps count as levels too. */
  tp_buf_reset(&b);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint8(&pk, 7);
  for (int i = 0; i < 40; i++) {
    msgpack_pack_map(&pk, 1);
    msgpack_pack_nil(&pk);
  }
  msgpack_pack_nil(&pk);
  refuse(TP_EPROTO, "nesting deeper than 32");
}

/* The shortest array each type accepts, minus its last element. */
Test(malformed, missing_required_elements) {
  RB("\x91\x01", TP_EPROTO, "HELLO missing info");
  RB("\x91\x02", TP_EPROTO, "CONNECT missing opts");
  RB("\x92\x03\xa1t", TP_EPROTO, "PUB missing payload");
  RB("\x91\x03", TP_EPROTO, "PUB missing topic");
  RB("\x92\x04\x01", TP_EPROTO, "SUB missing pattern");
  RB("\x91\x05", TP_EPROTO, "UNSUB missing sid");
  RB("\x93\x06\x01\xa1t", TP_EPROTO, "MSG missing payload");
  RB("\x92\x0a\x01", TP_EPROTO, "ERR missing message");
  RB("\x92\x0b\x01", TP_EPROTO, "PUBACK missing receivers");
  RB("\x92\x0c\x01", TP_EPROTO, "DROPPED missing count");
  RB("\x91\x0d", TP_EPROTO, "GOAWAY missing reason");
  RB("\x92\x02\x80", TP_EPROTO, "CONNECT missing proto");
  RB("\x92\x01\x80", TP_EPROTO, "HELLO missing proto");
  /* proto: nil counts as missing */
  RB("\x92\x02\x81\xa5proto\xc0", TP_EPROTO, "CONNECT missing proto");
}

Test(malformed, wrong_element_types) {
  RB("\x93\x03\x01\xc4\x00", TP_EPROTO, "PUB topic must be str");
  RB("\x93\x03\xc4\x01t\xc4\x00", TP_EPROTO, "PUB topic must be str");
  RB("\x93\x04\xa1x\xa1x", TP_EPROTO, "SUB sid must be an unsigned integer");
  RB("\x93\x04\xff\xa1x", TP_EPROTO, "SUB sid must not be negative");
  RB("\x92\x05\xd0\x80", TP_EPROTO, "UNSUB sid must not be negative");
  RB("\x93\x05\x01\xc3", TP_EPROTO,
     "UNSUB max_msgs must be an unsigned integer");
  RB("\x93\x0a\xa1x\xa1x", TP_EPROTO, "ERR code must be an unsigned integer");
  RB("\x93\x0a\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xa0", TP_EPROTO,
     "ERR code is out of range");
  RB("\x93\x0b\xff\x01", TP_EPROTO, "PUBACK ack_id must not be negative");
  RB("\x93\x0c\x01\xca\0\0\0\0", TP_EPROTO,
     "DROPPED count must be an unsigned integer");
  RB("\x92\x0d\xc4\x00", TP_EPROTO, "GOAWAY reason must be str");
  RB("\x94\x06\x01\x01\xc4\x00", TP_EPROTO, "MSG topic must be str");
  RB("\x92\x02\x90", TP_EPROTO, "CONNECT opts must be a map");
  RB("\x92\x01\x01", TP_EPROTO, "HELLO opts must be a map");
}

Test(malformed, str_payload) {
  RB("\x93\x03\xa1t\xa2hi", TP_EPROTO, "PUB payload must be bin");
  RB("\x94\x06\x01\xa1t\xa2hi", TP_EPROTO, "MSG payload must be bin");
  RB("\x93\x03\xa1t\xc0", TP_EPROTO, "PUB payload must be bin");
}

Test(malformed, invalid_utf8) {
  RB("\x93\x03\xa2\xc3\x28\xc4\x00", TP_EUTF8, "PUB topic is not valid UTF-8");
  /* overlong '/' and a surrogate */
  RB("\x93\x04\x01\xa2\xc0\xaf", TP_EUTF8, "SUB pattern is not valid UTF-8");
  RB("\x93\x04\x01\xa3\xed\xa0\x80", TP_EUTF8,
     "SUB pattern is not valid UTF-8");
  RB("\x93\x0a\x01\xa1\xff", TP_EUTF8, "ERR message is not valid UTF-8");
  /* header value */
  tp_buf_reset(&b);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint8(&pk, TP_PUB);
  pt_pack_str(&pk, "t");
  pt_pack_bin(&pk, "p");
  msgpack_pack_map(&pk, 1);
  pt_pack_str(&pk, "headers");
  msgpack_pack_map(&pk, 1);
  pt_pack_str(&pk, "k");
  pt_pack_str(&pk, "\xf8\x88\x80\x80\x80");
  refuse(TP_EUTF8, "PUB header is not valid UTF-8");
  /* header key, in a MSG */
  tp_buf_reset(&b);
  msgpack_pack_array(&pk, 5);
  msgpack_pack_uint8(&pk, TP_MSG);
  msgpack_pack_uint8(&pk, 1);
  pt_pack_str(&pk, "t");
  pt_pack_bin(&pk, "p");
  msgpack_pack_map(&pk, 1);
  pt_pack_str(&pk, "headers");
  msgpack_pack_map(&pk, 1);
  pt_pack_str(&pk, "\xe2\x82");
  pt_pack_str(&pk, "v");
  refuse(TP_EUTF8, "MSG header is not valid UTF-8");
}

/* [3, "t", bin "p", opts] with opts = {key: value packed by the caller}. */
static void pub_with_opt(const char *key) {
  tp_buf_reset(&b);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint8(&pk, TP_PUB);
  pt_pack_str(&pk, "t");
  pt_pack_bin(&pk, "p");
  msgpack_pack_map(&pk, 1);
  pt_pack_str(&pk, key);
}

static void sub_with_opt(const char *key) {
  tp_buf_reset(&b);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint8(&pk, TP_SUB);
  msgpack_pack_uint8(&pk, 1);
  pt_pack_str(&pk, "p.>");
  msgpack_pack_map(&pk, 1);
  pt_pack_str(&pk, key);
}

Test(malformed, opts_not_a_map) {
  RB("\x94\x03\xa1t\xc4\x00\x90", TP_EPROTO, "PUB opts must be a map");
  RB("\x94\x04\x01\xa1t\xa1x", TP_EPROTO, "SUB opts must be a map");
  RB("\x95\x06\x01\xa1t\xc4\x00\x01", TP_EPROTO, "MSG opts must be a map");
}

Test(malformed, known_option_wrong_type) {
  pub_with_opt("reply");
  msgpack_pack_uint8(&pk, 1);
  refuse(TP_EPROTO, "PUB reply must be str");
  pub_with_opt("headers");
  msgpack_pack_array(&pk, 0);
  refuse(TP_EPROTO, "PUB headers must be a map");
  pub_with_opt("headers");
  msgpack_pack_map(&pk, 1);
  pt_pack_str(&pk, "k");
  msgpack_pack_uint8(&pk, 1);
  refuse(TP_EPROTO, "PUB headers must map str to str");
  pub_with_opt("ack");
  msgpack_pack_int8(&pk, -1);
  refuse(TP_EPROTO, "PUB ack must not be negative");
  pub_with_opt("retain");
  msgpack_pack_uint8(&pk, 1);
  refuse(TP_EPROTO, "PUB retain must be bool");
  pub_with_opt("ttl_ms");
  pt_pack_str(&pk, "10");
  refuse(TP_EPROTO, "PUB ttl_ms must be an unsigned integer");
  sub_with_opt("queue");
  msgpack_pack_true(&pk);
  refuse(TP_EPROTO, "SUB queue must be str");
  sub_with_opt("max_bytes");
  msgpack_pack_double(&pk, 1.5);
  refuse(TP_EPROTO, "SUB max_bytes must be an unsigned integer");
  sub_with_opt("overflow");
  msgpack_pack_uint8(&pk, 1);
  refuse(TP_EPROTO, "SUB overflow must be str");
  RB("\x92\x02\x82\xa5proto\x01\xa4\x65\x63ho\x01", TP_EPROTO,
     "CONNECT echo must be bool");
  RB("\x92\x02\x81\xa5proto\xa1\x31", TP_EPROTO,
     "CONNECT proto must be an unsigned integer");
}

Test(malformed, bad_overflow_name) {
  static const char *bad[] = {"", "Block", "drop", "drop_oldest ", "panic"};
  for (size_t i = 0; i < 5; i++) {
    sub_with_opt("overflow");
    pt_pack_str(&pk, bad[i]);
    refuse(TP_EPROTO, "SUB overflow must be one of");
  }
}

Test(malformed, duplicate_known_option) {
  tp_buf_reset(&b);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint8(&pk, TP_PUB);
  pt_pack_str(&pk, "t");
  pt_pack_bin(&pk, "p");
  msgpack_pack_map(&pk, 2);
  pt_pack_str(&pk, "retain");
  msgpack_pack_true(&pk);
  pt_pack_str(&pk, "retain");
  msgpack_pack_false(&pk);
  refuse(TP_EPROTO, "PUB option retain given twice");
}

Test(malformed, unknown_trailing_elements_accepted) {
  tp_buf_reset(&b);
  msgpack_pack_array(&pk, 7);
  msgpack_pack_uint8(&pk, TP_PUB);
  pt_pack_str(&pk, "t");
  pt_pack_bin(&pk, "p");
  msgpack_pack_map(&pk, 0);
  msgpack_pack_nil(&pk);
  pt_pack_str(&pk, "future");
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint8(&pk, 1);
  msgpack_pack_map(&pk, 0);
  accept_ok();
  cr_assert(pt_str_eq(f.u.pub.topic, "t"));
  RB("\x92\x07\xa3xyz", 0, "");
  cr_assert_eq(f.type, TP_PING);
  RB("\x94\x05\x01\x02\x03", 0, "");
  cr_assert_eq(f.u.unsub.max_msgs, 2);
}

Test(malformed, unknown_option_keys_accepted) {
  tp_buf_reset(&b);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint8(&pk, TP_SUB);
  msgpack_pack_uint8(&pk, 9);
  pt_pack_str(&pk, "a.*");
  msgpack_pack_map(&pk, 5);
  pt_pack_str(&pk, "priority");
  msgpack_pack_array(&pk, 1);
  msgpack_pack_uint8(&pk, 1);
  msgpack_pack_uint8(&pk, 17); /* a non-str key */
  pt_pack_str(&pk, "x");
  pt_pack_str(&pk, "queue");
  pt_pack_str(&pk, "g");
  pt_pack_str(&pk, "unknown");
  pt_pack_str(&pk, "\xff"); /* unknown values are not inspected */
  pt_pack_str(&pk, "priority");
  msgpack_pack_nil(&pk); /* unknown keys may repeat */
  accept_ok();
  cr_assert_eq(f.u.sub.sid, 9);
  cr_assert(pt_str_eq(f.u.sub.queue, "g"));
}

Test(malformed, nil_means_absent) {
  /* [3, "t", bin, nil] and {"reply": nil} */
  RB("\x94\x03\xa1t\xc4\x00\xc0", 0, "");
  cr_assert_null(f.u.pub.reply.ptr);
  pub_with_opt("reply");
  msgpack_pack_nil(&pk);
  accept_ok();
  cr_assert_null(f.u.pub.reply.ptr);
  RB("\x93\x05\x01\xc0", 0, "");
  cr_assert(!f.u.unsub.has_max);
  /* CONNECT: echo nil keeps the default true */
  RB("\x92\x02\x82\xa5proto\x01\xa4\x65\x63ho\xc0", 0, "");
  cr_assert(f.u.connect.echo);
}

/* A decoder survives a refusal and decodes the next frame normally. */
Test(malformed, decoder_reusable_after_error) {
  RB("\x91\x63", TP_ETYPE, "unknown");
  RB("\x91\x08", 0, "");
  cr_assert_eq(f.type, TP_PONG);
  cr_assert_str_eq(tp_decoder_errmsg(dec), "");
}

/* Random bytes must never crash or leak; most are refused. */
Test(malformed, random_bodies) {
  srand(12345);
  uint8_t body[64];
  int accepted = 0;
  for (int i = 0; i < 20000; i++) {
    size_t n = 1 + (size_t)(rand() % (int)sizeof(body));
    for (size_t k = 0; k < n; k++)
      body[k] = (uint8_t)rand();
    body[0] = (uint8_t)(0x91 + rand() % 6); /* make it look like a frame */
    body[1] = (uint8_t)(1 + rand() % 13);
    int rc = tp_frame_decode(dec, body, n, &f);
    cr_assert(rc == 0 || rc == TP_EPROTO || rc == TP_ETYPE || rc == TP_EUTF8,
              "unexpected %d", rc);
    accepted += rc == 0;
  }
  cr_assert_lt(accepted, 20000);
}
