/*
 * The bench's protocol adapters, without sockets: what each encoder writes
 * is parsed back by hand-written server replies, every reply is fed split at
 * every offset (a partial event must ask for more, never misparse), and the
 * payload offset each encoder reports points at the payload.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <tern_proto/frame.h>

#include "adapter.h"

/* Parses data whole and, before that, every strict prefix of it. */
static long parse_all_prefixes(const bench_adapter_t *ad, const void *data,
                               size_t len, bench_ev_t *ev) {
  void *st = NULL;
  if (ad->state_create != NULL) {
    cr_assert_eq(ad->state_create(&st), 0);
  }
  for (size_t cut = 0; cut < len; cut++) {
    cr_assert_eq(ad->parse(st, data, cut, ev), 0, "%s: prefix %zu of %zu",
                 ad->name, cut, len);
  }
  long n = ad->parse(st, data, len, ev);
  if (st != NULL) {
    ad->state_destroy(st);
  }
  return n;
}

static void check_payload_offset(const bench_adapter_t *ad, const char *reply) {
  tp_buf_t b;
  tp_buf_init(&b);
  tp_buf_append(&b, "junk", 4); /* the offset is from this command's start */
  size_t off = 0;
  const uint8_t payload[] = "0123456789abcdef";
  cr_assert_eq(ad->encode_pub(&b, "bench.t", 7, reply, reply ? strlen(reply) : 0,
                              payload, 16, &off),
               0);
  cr_assert_eq(memcmp(b.data + 4 + off, payload, 16), 0, "%s", ad->name);
  tp_buf_free(&b);
}

Test(adapters, payload_offsets) {
  check_payload_offset(&bench_adapter_tern, NULL);
  check_payload_offset(&bench_adapter_tern, "bench.inbox.1");
  check_payload_offset(&bench_adapter_nats, NULL);
  check_payload_offset(&bench_adapter_nats, "bench.inbox.1");
  check_payload_offset(&bench_adapter_redis, NULL);
  check_payload_offset(&bench_adapter_mqtt, NULL);
}

Test(adapters, find) {
  cr_assert_eq(bench_adapter_find("nats"), &bench_adapter_nats);
  cr_assert_null(bench_adapter_find("kafka"));
}

Test(adapters, nats_msg_with_reply) {
  const char in[] = "MSG bench.t 7 bench.inbox.1 5\r\nhello\r\n";
  bench_ev_t ev;
  long n = parse_all_prefixes(&bench_adapter_nats, in, sizeof(in) - 1, &ev);
  cr_assert_eq(n, (long)sizeof(in) - 1);
  cr_assert_eq(ev.type, BENCH_EV_MSG);
  cr_assert_eq(ev.sid, 7);
  cr_assert_eq(ev.reply_len, 13);
  cr_assert_eq(memcmp(ev.reply, "bench.inbox.1", 13), 0);
  cr_assert_eq(ev.payload_len, 5);
  cr_assert_eq(memcmp(ev.payload, "hello", 5), 0);
}

Test(adapters, nats_control_lines) {
  bench_ev_t ev;
  cr_assert_eq(bench_adapter_nats.parse(NULL, (const uint8_t *)"PONG\r\n", 6, &ev), 6);
  cr_assert_eq(ev.type, BENCH_EV_PONG);
  cr_assert_eq(bench_adapter_nats.parse(NULL, (const uint8_t *)"PING\r\n", 6, &ev), 6);
  cr_assert_eq(ev.type, BENCH_EV_PING);
  cr_assert_eq(bench_adapter_nats.parse(NULL, (const uint8_t *)"-ERR 'x'\r\n", 10, &ev), 10);
  cr_assert_eq(ev.type, BENCH_EV_ERROR);
  cr_assert_eq(bench_adapter_nats.parse(NULL, (const uint8_t *)"INFO {}\r\n", 9, &ev), 9);
  cr_assert_eq(ev.type, BENCH_EV_INFO);
}

Test(adapters, redis_message_and_pong) {
  const char msg[] = "*3\r\n$7\r\nmessage\r\n$7\r\nbench.t\r\n$3\r\nabc\r\n";
  bench_ev_t ev;
  long n = parse_all_prefixes(&bench_adapter_redis, msg, sizeof(msg) - 1, &ev);
  cr_assert_eq(n, (long)sizeof(msg) - 1);
  cr_assert_eq(ev.type, BENCH_EV_MSG);
  cr_assert_eq(ev.payload_len, 3);
  cr_assert_eq(memcmp(ev.subject, "bench.t", 7), 0);
  const char pong[] = "*2\r\n$4\r\npong\r\n$0\r\n\r\n";
  n = parse_all_prefixes(&bench_adapter_redis, pong, sizeof(pong) - 1, &ev);
  cr_assert_eq(n, (long)sizeof(pong) - 1);
  cr_assert_eq(ev.type, BENCH_EV_PONG);
  const char sub[] = "*3\r\n$9\r\nsubscribe\r\n$7\r\nbench.t\r\n:1\r\n";
  n = parse_all_prefixes(&bench_adapter_redis, sub, sizeof(sub) - 1, &ev);
  cr_assert_eq(n, (long)sizeof(sub) - 1);
  cr_assert_eq(ev.type, BENCH_EV_INFO);
  cr_assert_eq(bench_adapter_redis.parse(NULL, (const uint8_t *)"+PONG\r\n", 7, &ev), 7);
  cr_assert_eq(ev.type, BENCH_EV_PONG);
  cr_assert_eq(bench_adapter_redis.parse(NULL, (const uint8_t *)":12\r\n", 5, &ev), 5);
  cr_assert_eq(ev.type, BENCH_EV_INFO);
}

Test(adapters, mqtt_publish_roundtrip) {
  tp_buf_t b;
  tp_buf_init(&b);
  uint8_t payload[200]; /* remaining length needs two varint bytes */
  memset(payload, 'x', sizeof(payload));
  cr_assert_eq(bench_adapter_mqtt.encode_pub(&b, "bench.t", 7, NULL, 0, payload,
                                             sizeof(payload), NULL),
               0);
  bench_ev_t ev;
  long n = parse_all_prefixes(&bench_adapter_mqtt, b.data, b.len, &ev);
  cr_assert_eq(n, (long)b.len);
  cr_assert_eq(ev.type, BENCH_EV_MSG);
  cr_assert_eq(ev.subject_len, 7);
  cr_assert_eq(memcmp(ev.subject, "bench/t", 7), 0, "dots become slashes");
  cr_assert_eq(ev.payload_len, sizeof(payload));
  tp_buf_free(&b);
  const uint8_t pingresp[] = {0xd0, 0x00};
  cr_assert_eq(bench_adapter_mqtt.parse(NULL, pingresp, 2, &ev), 2);
  cr_assert_eq(ev.type, BENCH_EV_PONG);
  const uint8_t refused[] = {0x20, 0x02, 0x00, 0x05};
  cr_assert_eq(bench_adapter_mqtt.parse(NULL, refused, 4, &ev), 4);
  cr_assert_eq(ev.type, BENCH_EV_ERROR);
}

/* A MSG frame as the broker sends it, with and without options. */
static void tern_msg(tp_buf_t *b, const char *reply) {
  tp_frame_t f;
  tp_frame_init(&f, TP_MSG);
  f.u.msg.sid = 300; /* a uint16 on the wire */
  f.u.msg.topic.ptr = "bench.t";
  f.u.msg.topic.len = 7;
  f.u.msg.payload.ptr = (const uint8_t *)"payload";
  f.u.msg.payload.len = 7;
  if (reply != NULL) {
    f.u.msg.reply.ptr = reply;
    f.u.msg.reply.len = (uint32_t)strlen(reply);
  }
  cr_assert_eq(tp_frame_encode(b, &f), 0);
}

Test(adapters, tern_msg_fast_and_decoded_paths_agree) {
  const char *replies[] = {NULL, "bench.inbox.9"};
  for (int i = 0; i < 2; i++) {
    tp_buf_t b;
    tp_buf_init(&b);
    tern_msg(&b, replies[i]);
    bench_ev_t ev;
    long n = parse_all_prefixes(&bench_adapter_tern, b.data, b.len, &ev);
    cr_assert_eq(n, (long)b.len);
    cr_assert_eq(ev.type, BENCH_EV_MSG);
    cr_assert_eq(ev.sid, 300);
    cr_assert_eq(ev.subject_len, 7);
    cr_assert_eq(ev.payload_len, 7);
    cr_assert_eq(memcmp(ev.payload, "payload", 7), 0);
    if (replies[i] != NULL) {
      cr_assert_eq(ev.reply_len, strlen(replies[i]));
    } else {
      cr_assert_null(ev.reply);
    }
    tp_buf_free(&b);
  }
}

Test(adapters, tern_pong_and_err) {
  tp_buf_t b;
  tp_buf_init(&b);
  cr_assert_eq(bench_adapter_tern.encode_ping(&b), 0);
  tp_frame_t f;
  tp_frame_init(&f, TP_ERR);
  f.u.err.code = 4;
  f.u.err.message.ptr = "invalid topic";
  f.u.err.message.len = 13;
  size_t ping_len = b.len;
  cr_assert_eq(tp_frame_encode(&b, &f), 0);
  bench_ev_t ev;
  void *st;
  cr_assert_eq(bench_adapter_tern.state_create(&st), 0);
  /* A PING from the server is an event the conn answers. */
  cr_assert_eq(bench_adapter_tern.parse(st, b.data, b.len, &ev), (long)ping_len);
  cr_assert_eq(ev.type, BENCH_EV_PING);
  cr_assert_eq(bench_adapter_tern.parse(st, b.data + ping_len, b.len - ping_len,
                                        &ev),
               (long)(b.len - ping_len));
  cr_assert_eq(ev.type, BENCH_EV_ERROR);
  cr_assert_eq(ev.text_len, 13);
  bench_adapter_tern.state_destroy(st);
  tp_buf_free(&b);
}
