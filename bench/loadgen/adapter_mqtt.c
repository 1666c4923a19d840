/*
 * MQTT 3.1.1 at QoS 0: CONNECT/CONNACK, PUBLISH, SUBSCRIBE/SUBACK and
 * PINGREQ/PINGRESP. A broker handles one client's packets in order, so
 * PINGRESP after SUBACK is the barrier. tern's dotted subjects become
 * '/'-separated topics. QoS 0 has no queue groups (shared subscriptions are
 * MQTT 5) and no reply topic: those scenarios are refused.
 */
#include <string.h>

#include "adapter.h"

enum {
  MQTT_CONNECT = 1,
  MQTT_CONNACK = 2,
  MQTT_PUBLISH = 3,
  MQTT_SUBSCRIBE = 8,
  MQTT_SUBACK = 9,
  MQTT_PINGREQ = 12,
  MQTT_PINGRESP = 13
};

/* The "remaining length" varint: 1 to 4 bytes, 7 bits each. */
static int append_varint(tp_buf_t *out, size_t n) {
  uint8_t b[4];
  size_t k = 0;
  if (n > 268435455u) {
    return -1;
  }
  do {
    uint8_t byte = n % 128;
    n /= 128;
    if (n > 0) {
      byte |= 0x80;
    }
    b[k++] = byte;
  } while (n > 0);
  return tp_buf_append(out, b, k);
}

/* A 2-byte length then the topic, with '.' turned into '/'. */
static int append_topic(tp_buf_t *out, const char *s, size_t n) {
  uint8_t len[2] = {(uint8_t)(n >> 8), (uint8_t)n};
  int rc = tp_buf_append(out, len, 2);
  if (rc != 0 || (rc = tp_buf_reserve(out, n)) != 0) {
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    out->data[out->len + i] = s[i] == '.' ? '/' : (uint8_t)s[i];
  }
  out->len += n;
  return 0;
}

static int mqtt_connect(tp_buf_t *out, const char *client_id) {
  static const uint8_t var_head[] = {0, 4, 'M', 'Q', 'T', 'T',
                                     4,    /* protocol level 3.1.1 */
                                     0x02, /* clean session */
                                     /* keep alive off: a subscriber only
                                      * reads, and must not be cut off */
                                     0, 0};
  size_t id_len = strlen(client_id);
  uint8_t type = MQTT_CONNECT << 4;
  int rc = tp_buf_append(out, &type, 1);
  rc = rc ? rc : append_varint(out, sizeof(var_head) + 2 + id_len);
  rc = rc ? rc : tp_buf_append(out, var_head, sizeof(var_head));
  return rc ? rc : append_topic(out, client_id, id_len);
}

static int mqtt_pub(tp_buf_t *out, const char *subject, size_t subject_len,
                    const char *reply, size_t reply_len, const uint8_t *payload,
                    size_t len, size_t *payload_off) {
  (void)reply_len;
  if (reply != NULL || subject_len > 65535) {
    return -1;
  }
  size_t start = out->len;
  uint8_t type = MQTT_PUBLISH << 4; /* QoS 0, no DUP, no RETAIN */
  int rc = tp_buf_append(out, &type, 1);
  rc = rc ? rc : append_varint(out, 2 + subject_len + len);
  rc = rc ? rc : append_topic(out, subject, subject_len);
  if (payload_off != NULL) {
    *payload_off = out->len - start;
  }
  return rc ? rc : tp_buf_append(out, payload, len);
}

static int mqtt_sub(tp_buf_t *out, const char *subject, uint64_t sid,
                    const char *queue) {
  if (queue != NULL) {
    return -1;
  }
  size_t n = strlen(subject);
  uint8_t type = (MQTT_SUBSCRIBE << 4) | 0x02; /* reserved bits 0010 */
  uint32_t id = (uint32_t)(sid % 65535u) + 1u; /* packet ids are never 0 */
  uint8_t packet_id[2] = {(uint8_t)(id >> 8), (uint8_t)id};
  uint8_t qos = 0;
  int rc = tp_buf_append(out, &type, 1);
  rc = rc ? rc : append_varint(out, 2 + 2 + n + 1);
  rc = rc ? rc : tp_buf_append(out, packet_id, 2);
  rc = rc ? rc : append_topic(out, subject, n);
  return rc ? rc : tp_buf_append(out, &qos, 1);
}

static int mqtt_ping(tp_buf_t *out) {
  static const uint8_t pingreq[2] = {MQTT_PINGREQ << 4, 0};
  return tp_buf_append(out, pingreq, 2);
}

static int mqtt_pong(tp_buf_t *out) {
  static const uint8_t pingresp[2] = {MQTT_PINGRESP << 4, 0};
  return tp_buf_append(out, pingresp, 2);
}

static long mqtt_parse(void *state, const uint8_t *data, size_t len,
                       bench_ev_t *ev) {
  (void)state;
  memset(ev, 0, sizeof(*ev));
  if (len < 2) {
    return 0;
  }
  size_t rem = 0;
  size_t i = 1;
  unsigned shift = 0;
  for (;;) {
    if (i >= len) {
      return 0;
    }
    if (i > 4) {
      return -1;
    }
    rem |= (size_t)(data[i] & 0x7f) << shift;
    shift += 7;
    if ((data[i++] & 0x80) == 0) {
      break;
    }
  }
  if (len < i + rem) {
    return 0;
  }
  const uint8_t *body = data + i;
  ev->type = BENCH_EV_INFO;
  switch (data[0] >> 4) {
  case MQTT_CONNACK:
    if (rem < 2 || body[1] != 0) {
      ev->type = BENCH_EV_ERROR;
      ev->text = "CONNACK refused the connection";
      ev->text_len = strlen(ev->text);
    }
    break;
  case MQTT_SUBACK:
    if (rem < 3 || body[2] == 0x80) {
      ev->type = BENCH_EV_ERROR;
      ev->text = "SUBACK refused the subscription";
      ev->text_len = strlen(ev->text);
    }
    break;
  case MQTT_PUBLISH: {
    if (rem < 2) {
      return -1;
    }
    size_t tlen = ((size_t)body[0] << 8) | body[1];
    size_t qos = (data[0] >> 1) & 3;
    size_t head = 2 + tlen + (qos ? 2 : 0);
    if (head > rem) {
      return -1;
    }
    ev->type = BENCH_EV_MSG;
    ev->subject = (const char *)body + 2;
    ev->subject_len = tlen;
    ev->payload = body + head;
    ev->payload_len = rem - head;
    break;
  }
  case MQTT_PINGRESP:
    ev->type = BENCH_EV_PONG;
    break;
  case MQTT_PINGREQ:
    ev->type = BENCH_EV_PING;
    break;
  default:
    break;
  }
  return (long)(i + rem);
}

const bench_adapter_t bench_adapter_mqtt = {
    .name = "mqtt",
    .default_port = 1883,
    .has_queue = false,
    .has_reply = false,
    .encode_connect = mqtt_connect,
    .encode_pub = mqtt_pub,
    .encode_sub = mqtt_sub,
    .encode_ping = mqtt_ping,
    .encode_pong = mqtt_pong,
    .parse = mqtt_parse,
};
