/*
 * Every frame type encoded and decoded back, with every option set and with
 * none; the broker's split MSG encoding against the whole one; the exact
 * bytes of a few frames.
 */
#include <criterion/criterion.h>

#include "proto_test_util.h"

static tp_decoder_t *dec;
static tp_buf_t out;

static void setup(void) {
  cr_assert_eq(tp_decoder_create(&dec), 0);
  tp_buf_init(&out);
}

static void teardown(void) {
  tp_decoder_destroy(dec);
  tp_buf_free(&out);
}

TestSuite(roundtrip, .init = setup, .fini = teardown);

/* Encodes f into out, checks the prefix, decodes the body into g. */
static void roundtrip(const tp_frame_t *f, tp_frame_t *g) {
  tp_buf_reset(&out);
  cr_assert_eq(tp_frame_encode(&out, f), 0);
  size_t size = 0;
  cr_assert_eq(tp_frame_size(out.data, out.len, 1u << 30, &size), 1);
  cr_assert_eq(size, out.len, "prefix says %zu, encoded %zu", size, out.len);
  int rc = tp_frame_decode(dec, out.data + 4, out.len - 4, g);
  cr_assert_eq(rc, 0, "decode %s: %d %s", tp_frame_type_name(f->type), rc,
               tp_decoder_errmsg(dec));
  cr_assert_eq(g->type, f->type);
}

static void headers(tp_buf_t *hb, tp_headers_t *h) {
  tp_str_t k[2] = {pt_str("content-type"), pt_str("trace")};
  tp_str_t v[2] = {pt_str("text/plain"), pt_str("\xc3\xa9t\xc3\xa9")};
  cr_assert_eq(tp_headers_build(hb, k, v, 2, h), 0);
}

static void check_headers(const tp_headers_t *h) {
  cr_assert_eq(h->count, 2);
  tp_headers_iter_t it;
  tp_str_t k, v;
  tp_headers_iter_init(&it, h);
  cr_assert_eq(tp_headers_next(&it, &k, &v), 1);
  cr_assert(pt_str_eq(k, "content-type") && pt_str_eq(v, "text/plain"));
  cr_assert_eq(tp_headers_next(&it, &k, &v), 1);
  cr_assert(pt_str_eq(k, "trace") && pt_str_eq(v, "\xc3\xa9t\xc3\xa9"));
  cr_assert_eq(tp_headers_next(&it, &k, &v), 0);
}

Test(roundtrip, hello) {
  tp_frame_t f, g;
  tp_frame_init(&f, TP_HELLO);
  f.u.hello.server = pt_str("ternd/0.1.0");
  f.u.hello.server_id = pt_str("abc123");
  f.u.hello.max_payload = 2000000;
  f.u.hello.max_frame = 2065536;
  f.u.hello.auth_required = true;
  f.u.hello.heartbeat_ms = 30000;
  roundtrip(&f, &g);
  cr_assert_eq(g.u.hello.proto, 1);
  cr_assert(pt_str_eq(g.u.hello.server, "ternd/0.1.0"));
  cr_assert(pt_str_eq(g.u.hello.server_id, "abc123"));
  cr_assert_eq(g.u.hello.max_payload, 2000000);
  cr_assert_eq(g.u.hello.max_frame, 2065536);
  cr_assert(g.u.hello.auth_required);
  cr_assert_eq(g.u.hello.heartbeat_ms, 30000);
}

Test(roundtrip, hello_defaults_keep_every_key) {
  tp_frame_t f, g;
  tp_frame_init(&f, TP_HELLO);
  roundtrip(&f, &g);
  cr_assert_eq(g.u.hello.max_payload, TP_DEFAULT_MAX_PAYLOAD);
  cr_assert_eq(g.u.hello.max_frame, TP_DEFAULT_MAX_PAYLOAD + TP_FRAME_OVERHEAD);
  cr_assert(!g.u.hello.auth_required);
  cr_assert_null(g.u.hello.cluster_urls.ptr);
  /* HELLO's info map always has its seven keys: 0x87. */
  cr_assert_eq(out.data[4], 0x92);
  cr_assert_eq(out.data[6], 0x87);
}

/* A node of a cluster adds cluster_urls: an eighth key (0x88). */
Test(roundtrip, hello_cluster_urls) {
  tp_frame_t f, g;
  tp_frame_init(&f, TP_HELLO);
  f.u.hello.cluster_urls = pt_str("tern://a:7421,tern://b:7421");
  roundtrip(&f, &g);
  cr_assert_eq(out.data[6], 0x88);
  cr_assert(pt_str_eq(g.u.hello.cluster_urls, "tern://a:7421,tern://b:7421"));
}

Test(roundtrip, connect_all_options) {
  tp_frame_t f, g;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.name = pt_str("svc");
  f.u.connect.user = pt_str("alice");
  f.u.connect.pass = pt_str("secret");
  f.u.connect.token = pt_str("tok");
  f.u.connect.echo = false;
  f.u.connect.verbose = true;
  roundtrip(&f, &g);
  cr_assert_eq(g.u.connect.proto, 1);
  cr_assert(pt_str_eq(g.u.connect.name, "svc"));
  cr_assert(pt_str_eq(g.u.connect.user, "alice"));
  cr_assert(pt_str_eq(g.u.connect.pass, "secret"));
  cr_assert(pt_str_eq(g.u.connect.token, "tok"));
  cr_assert(!g.u.connect.echo);
  cr_assert(g.u.connect.verbose);
}

Test(roundtrip, connect_defaults) {
  tp_frame_t f, g;
  tp_frame_init(&f, TP_CONNECT);
  roundtrip(&f, &g);
  cr_assert_eq(g.u.connect.proto, 1);
  cr_assert_null(g.u.connect.name.ptr);
  cr_assert_null(g.u.connect.token.ptr);
  cr_assert(g.u.connect.echo);
  cr_assert(!g.u.connect.verbose);
  /* [2, {"proto": 1}] and nothing else. */
  static const uint8_t want[] = {0,    0,   0,   10,  0x92, 0x02, 0x81,
                                 0xa5, 'p', 'r', 'o', 't',  'o',  0x01};
  cr_assert_eq(out.len, sizeof(want));
  cr_assert_arr_eq(out.data, want, sizeof(want));
}

Test(roundtrip, pub_all_options) {
  tp_buf_t hb;
  tp_buf_init(&hb);
  tp_frame_t f, g;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = pt_str("orders.eu.new");
  f.u.pub.payload = pt_bytes("\x00\x01\x02", 3);
  f.u.pub.reply = pt_str("_INBOX.1");
  headers(&hb, &f.u.pub.headers);
  f.u.pub.has_ack = true;
  f.u.pub.ack = 0; /* 0 is a valid ack id: has_ack decides */
  f.u.pub.retain = true;
  f.u.pub.ttl_ms = 60000;
  roundtrip(&f, &g);
  cr_assert(pt_str_eq(g.u.pub.topic, "orders.eu.new"));
  cr_assert_eq(g.u.pub.payload.len, 3);
  cr_assert_arr_eq(g.u.pub.payload.ptr, "\x00\x01\x02", 3);
  cr_assert(pt_str_eq(g.u.pub.reply, "_INBOX.1"));
  check_headers(&g.u.pub.headers);
  cr_assert_eq(g.u.pub.headers.len, f.u.pub.headers.len);
  cr_assert_arr_eq(g.u.pub.headers.raw, f.u.pub.headers.raw,
                   f.u.pub.headers.len);
  /* The raw headers are a view into the encoded frame. */
  cr_assert(g.u.pub.headers.raw > out.data &&
            g.u.pub.headers.raw < out.data + out.len);
  cr_assert(g.u.pub.has_ack);
  cr_assert_eq(g.u.pub.ack, 0);
  cr_assert(g.u.pub.retain);
  cr_assert_eq(g.u.pub.ttl_ms, 60000);
  tp_buf_free(&hb);
}

Test(roundtrip, pub_no_options) {
  tp_frame_t f, g;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = pt_str("a");
  roundtrip(&f, &g);
  cr_assert(pt_str_eq(g.u.pub.topic, "a"));
  cr_assert_eq(g.u.pub.payload.len, 0);
  cr_assert_null(g.u.pub.reply.ptr);
  cr_assert_null(g.u.pub.headers.raw);
  cr_assert(!g.u.pub.has_ack && !g.u.pub.retain);
  cr_assert_eq(g.u.pub.ttl_ms, 0);
  static const uint8_t want[] = {0, 0, 0, 6, 0x93, 0x03, 0xa1, 'a', 0xc4, 0x00};
  cr_assert_eq(out.len, sizeof(want));
  cr_assert_arr_eq(out.data, want, sizeof(want));
}

Test(roundtrip, sub_all_options) {
  tp_frame_t f, g;
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = 0xFFFFFFFFFFFFFFFFull;
  f.u.sub.pattern = pt_str("orders.*.>");
  f.u.sub.queue = pt_str("workers");
  f.u.sub.max_msgs = 1000;
  f.u.sub.max_bytes = 1u << 20;
  for (int ovf = TP_OVERFLOW_BLOCK; ovf <= TP_OVERFLOW_DISCONNECT; ovf++) {
    f.u.sub.overflow = ovf;
    roundtrip(&f, &g);
    cr_assert_eq(g.u.sub.sid, 0xFFFFFFFFFFFFFFFFull);
    cr_assert(pt_str_eq(g.u.sub.pattern, "orders.*.>"));
    cr_assert(pt_str_eq(g.u.sub.queue, "workers"));
    cr_assert_eq(g.u.sub.max_msgs, 1000);
    cr_assert_eq(g.u.sub.max_bytes, 1u << 20);
    cr_assert_eq(g.u.sub.overflow, ovf);
  }
}

Test(roundtrip, sub_no_options) {
  tp_frame_t f, g;
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = 7;
  f.u.sub.pattern = pt_str("x");
  roundtrip(&f, &g);
  cr_assert_eq(g.u.sub.sid, 7);
  cr_assert_null(g.u.sub.queue.ptr);
  cr_assert_eq(g.u.sub.max_msgs, 0);
  cr_assert_eq(g.u.sub.overflow, TP_OVERFLOW_UNSET);
  cr_assert_eq(out.data[4], 0x93);
}

Test(roundtrip, unsub) {
  tp_frame_t f, g;
  tp_frame_init(&f, TP_UNSUB);
  f.u.unsub.sid = 300;
  roundtrip(&f, &g);
  cr_assert_eq(g.u.unsub.sid, 300);
  cr_assert(!g.u.unsub.has_max);
  f.u.unsub.has_max = true;
  f.u.unsub.max_msgs = 5;
  roundtrip(&f, &g);
  cr_assert(g.u.unsub.has_max);
  cr_assert_eq(g.u.unsub.max_msgs, 5);
}

Test(roundtrip, msg_all_and_none) {
  tp_buf_t hb;
  tp_buf_init(&hb);
  tp_frame_t f, g;
  tp_frame_init(&f, TP_MSG);
  f.u.msg.sid = 42;
  f.u.msg.topic = pt_str("t.u");
  f.u.msg.payload = pt_bytes("hello", 5);
  roundtrip(&f, &g);
  cr_assert_eq(g.u.msg.sid, 42);
  cr_assert(pt_str_eq(g.u.msg.topic, "t.u"));
  cr_assert_arr_eq(g.u.msg.payload.ptr, "hello", 5);
  cr_assert_null(g.u.msg.reply.ptr);
  cr_assert_null(g.u.msg.headers.raw);
  cr_assert(!g.u.msg.retained);

  f.u.msg.reply = pt_str("r");
  headers(&hb, &f.u.msg.headers);
  f.u.msg.retained = true;
  roundtrip(&f, &g);
  cr_assert(pt_str_eq(g.u.msg.reply, "r"));
  check_headers(&g.u.msg.headers);
  cr_assert(g.u.msg.retained);
  tp_buf_free(&hb);
}

Test(roundtrip, no_field_frames) {
  static const int types[] = {TP_PING, TP_PONG, TP_OK};
  for (size_t i = 0; i < 3; i++) {
    tp_frame_t f, g;
    tp_frame_init(&f, types[i]);
    roundtrip(&f, &g);
    const uint8_t want[] = {0, 0, 0, 2, 0x91, (uint8_t)types[i]};
    cr_assert_eq(out.len, sizeof(want));
    cr_assert_arr_eq(out.data, want, sizeof(want));
  }
}

Test(roundtrip, err_puback_dropped_goaway) {
  tp_frame_t f, g;
  tp_frame_init(&f, TP_ERR);
  f.u.err.code = TP_WIRE_INVALID_TOPIC;
  f.u.err.message = pt_str("invalid topic");
  roundtrip(&f, &g);
  cr_assert_eq(g.u.err.code, 4);
  cr_assert(pt_str_eq(g.u.err.message, "invalid topic"));

  tp_frame_init(&f, TP_PUBACK);
  f.u.puback.ack_id = 99;
  f.u.puback.receivers = 3;
  roundtrip(&f, &g);
  cr_assert_eq(g.u.puback.ack_id, 99);
  cr_assert_eq(g.u.puback.receivers, 3);

  tp_frame_init(&f, TP_DROPPED);
  f.u.dropped.sid = 1;
  f.u.dropped.count = 1000000;
  roundtrip(&f, &g);
  cr_assert_eq(g.u.dropped.sid, 1);
  cr_assert_eq(g.u.dropped.count, 1000000);

  tp_frame_init(&f, TP_GOAWAY);
  f.u.goaway.reason = pt_str("");
  roundtrip(&f, &g);
  cr_assert_not_null(g.u.goaway.reason.ptr, "empty str is present");
  cr_assert_eq(g.u.goaway.reason.len, 0);
}

Test(roundtrip, encode_refuses_missing_required) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  cr_assert_eq(tp_frame_encode(&out, &f), TP_EINVAL);
  tp_frame_init(&f, TP_SUB);
  cr_assert_eq(tp_frame_encode(&out, &f), TP_EINVAL);
  tp_frame_init(&f, TP_MSG);
  cr_assert_eq(tp_frame_encode(&out, &f), TP_EINVAL);
  tp_frame_init(&f, TP_ERR);
  cr_assert_eq(tp_frame_encode(&out, &f), TP_EINVAL);
  tp_frame_init(&f, 99);
  cr_assert_eq(tp_frame_encode(&out, &f), TP_EINVAL);
  cr_assert_eq(out.len, 0, "a refused encode appends nothing");
}

/* head + body must be byte for byte the whole MSG, for every sid width. */
Test(roundtrip, msg_split_equals_whole) {
  static const uint64_t sids[] = {0,
                                  1,
                                  127,
                                  128,
                                  255,
                                  256,
                                  65535,
                                  65536,
                                  0xFFFFFFFFull,
                                  0x100000000ull,
                                  0xFFFFFFFFFFFFFFFFull};
  tp_buf_t hb, body;
  tp_buf_init(&hb);
  tp_buf_init(&body);
  tp_headers_t h;
  headers(&hb, &h);
  for (int variant = 0; variant < 4; variant++) {
    tp_str_t reply = variant & 1 ? pt_str("reply.to") : (tp_str_t){0};
    tp_headers_t hh = variant & 2 ? h : (tp_headers_t){0};
    tp_buf_reset(&body);
    bool has_opts = !variant;
    cr_assert_eq(tp_msg_body_encode(&body, pt_str("a.b.c"),
                                    pt_bytes("payload", 7), reply, hh,
                                    variant == 3, &has_opts),
                 0);
    cr_assert_eq(has_opts, variant != 0);
    for (size_t i = 0; i < sizeof(sids) / sizeof(sids[0]); i++) {
      tp_frame_t f;
      tp_frame_init(&f, TP_MSG);
      f.u.msg.sid = sids[i];
      f.u.msg.topic = pt_str("a.b.c");
      f.u.msg.payload = pt_bytes("payload", 7);
      f.u.msg.reply = reply;
      f.u.msg.headers = hh;
      f.u.msg.retained = variant == 3;
      tp_buf_reset(&out);
      cr_assert_eq(tp_frame_encode(&out, &f), 0);
      uint8_t head[TP_MSG_HEAD_MAX];
      size_t n = tp_msg_head_encode(head, sids[i], body.len, has_opts);
      cr_assert_leq(n, TP_MSG_HEAD_MAX);
      cr_assert_eq(n + body.len, out.len, "sid %llu variant %d",
                   (unsigned long long)sids[i], variant);
      cr_assert_arr_eq(out.data, head, n);
      cr_assert_arr_eq(out.data + n, body.data, body.len);
    }
  }
  tp_buf_free(&hb);
  tp_buf_free(&body);
}

Test(roundtrip, names_and_codes) {
  cr_assert_str_eq(tp_frame_type_name(TP_DROPPED), "DROPPED");
  cr_assert_str_eq(tp_frame_type_name(0), "?");
  cr_assert_str_eq(tp_frame_type_name(14), "?");
  cr_assert_str_eq(tp_overflow_name(TP_OVERFLOW_DROP_OLDEST), "drop_oldest");
  cr_assert_null(tp_overflow_name(TP_OVERFLOW_UNSET));
  cr_assert_eq(tp_overflow_parse("disconnect", 10), TP_OVERFLOW_DISCONNECT);
  cr_assert_eq(tp_overflow_parse("block!", 6), TP_OVERFLOW_UNSET);
  cr_assert_eq(tp_overflow_parse("bloc", 4), TP_OVERFLOW_UNSET);
  cr_assert(tp_wire_code_is_fatal(TP_WIRE_PROTOCOL));
  cr_assert(!tp_wire_code_is_fatal(TP_WIRE_PAYLOAD_TOO_LARGE));
  cr_assert(!tp_wire_code_is_fatal(TP_WIRE_UNKNOWN_SID));
  cr_assert(tp_wire_code_is_fatal(TP_WIRE_STALE));
  cr_assert_str_eq(tp_wire_code_text(TP_WIRE_SLOW_CONSUMER), "slow consumer");
  cr_assert_eq(tp_err_wire_code(TP_ETOOBIG), TP_WIRE_FRAME_TOO_LARGE);
  cr_assert_eq(tp_err_wire_code(TP_ETOPIC), TP_WIRE_INVALID_TOPIC);
  cr_assert_eq(tp_err_wire_code(TP_EUTF8), TP_WIRE_PROTOCOL);
  cr_assert_str_eq(tp_strerror(TP_EUTF8), "string is not valid UTF-8");
  cr_assert_str_eq(tp_strerror(0), "success");
  cr_assert_str_eq(tp_strerror(-12345), "unknown error");
}

Test(roundtrip, headers_build_refuses_bad_utf8) {
  tp_str_t k = pt_str("k"), v = {"\xff", 1};
  tp_headers_t h;
  cr_assert_eq(tp_headers_build(&out, &k, &v, 1, &h), TP_EINVAL);
  cr_assert_eq(out.len, 0);
  cr_assert_eq(tp_headers_build(&out, NULL, NULL, 0, &h), 0);
  cr_assert_eq(h.count, 0);
  cr_assert_eq(h.len, 1);
  cr_assert_eq(h.raw[0], 0x80);
}
