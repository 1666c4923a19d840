/*
 * tern wire protocol v1 through tern_protocol's encoder and decoder, with no
 * client library in between: the generator costs what the bytes cost.
 *
 * Delivered messages take a short path: a MSG frame without options is
 * [6, sid, topic, payload] and its bytes are checked and sliced here without
 * msgpack-c. Anything else (HELLO, OK, PONG, ERR, a MSG with options) goes
 * through tp_frame_decode, so the fast path only skips work, never decides
 * what a valid frame is.
 */
#include <stdlib.h>
#include <string.h>

#include <tern_proto/errors.h>
#include <tern_proto/frame.h>

#include "adapter.h"

static int tern_state_create(void **state) {
  tp_decoder_t *d;
  int rc = tp_decoder_create(&d);
  *state = rc == 0 ? d : NULL;
  return rc;
}

static void tern_state_destroy(void *state) {
  tp_decoder_destroy(state);
}

static tp_str_t str_of(const char *s, size_t n) {
  tp_str_t t = {s, (uint32_t)n};
  return t;
}

static int tern_connect(tp_buf_t *out, const char *client_id) {
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = TP_PROTO_VERSION;
  f.u.connect.name = str_of(client_id, strlen(client_id));
  return tp_frame_encode(out, &f);
}

static int tern_pub(tp_buf_t *out, const char *subject, size_t subject_len,
                    const char *reply, size_t reply_len, const uint8_t *payload,
                    size_t len, size_t *payload_off) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = str_of(subject, subject_len);
  f.u.pub.payload.ptr = payload;
  f.u.pub.payload.len = (uint32_t)len;
  size_t start = out->len;
  int rc;
  if (payload_off != NULL) {
    /* Without options the payload ends the frame; the opts map only adds
     * bytes after it (the array header stays one byte), so the offset found
     * here holds for the frame with a reply too. */
    if ((rc = tp_frame_encode(out, &f)) != 0) {
      return rc;
    }
    *payload_off = out->len - start - len;
    if (reply == NULL) {
      return 0;
    }
    out->len = start;
  }
  if (reply != NULL) {
    f.u.pub.reply = str_of(reply, reply_len);
  }
  return tp_frame_encode(out, &f);
}

static int tern_sub(tp_buf_t *out, const char *subject, uint64_t sid,
                    const char *queue) {
  tp_frame_t f;
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = sid;
  f.u.sub.pattern = str_of(subject, strlen(subject));
  if (queue != NULL) {
    f.u.sub.queue = str_of(queue, strlen(queue));
  }
  return tp_frame_encode(out, &f);
}

static int encode_bare(tp_buf_t *out, int type) {
  tp_frame_t f;
  tp_frame_init(&f, type);
  return tp_frame_encode(out, &f);
}

static int tern_ping(tp_buf_t *out) {
  return encode_bare(out, TP_PING);
}
static int tern_pong(tp_buf_t *out) {
  return encode_bare(out, TP_PONG);
}

/* Reads a msgpack uint at *p (positive fixint or uint8..64). */
static int read_uint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  const uint8_t *q = *p;
  if (q >= end) {
    return -1;
  }
  uint8_t t = *q++;
  size_t n;
  if (t <= 0x7f) {
    *v = t;
    *p = q;
    return 0;
  }
  switch (t) {
  case 0xcc:
    n = 1;
    break;
  case 0xcd:
    n = 2;
    break;
  case 0xce:
    n = 4;
    break;
  case 0xcf:
    n = 8;
    break;
  default:
    return -1;
  }
  if ((size_t)(end - q) < n) {
    return -1;
  }
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    x = (x << 8) | q[i];
  }
  *v = x;
  *p = q + n;
  return 0;
}

/* Reads a str (want_bin 0) or bin (1) header and slices its bytes. */
static int read_raw(const uint8_t **p, const uint8_t *end, int want_bin,
                    const uint8_t **ptr, size_t *len) {
  const uint8_t *q = *p;
  if (q >= end) {
    return -1;
  }
  uint8_t t = *q++;
  size_t hn;
  size_t n = 0;
  if (!want_bin && t >= 0xa0 && t <= 0xbf) {
    n = t & 0x1f;
    hn = 0;
  } else if (t == (want_bin ? 0xc4 : 0xd9)) {
    hn = 1;
  } else if (t == (want_bin ? 0xc5 : 0xda)) {
    hn = 2;
  } else if (t == (want_bin ? 0xc6 : 0xdb)) {
    hn = 4;
  } else {
    return -1;
  }
  if ((size_t)(end - q) < hn) {
    return -1;
  }
  for (size_t i = 0; i < hn; i++) {
    n = (n << 8) | q[i];
  }
  q += hn;
  if ((size_t)(end - q) < n) {
    return -1;
  }
  *ptr = q;
  *len = n;
  *p = q + n;
  return 0;
}

/* 1 when body is a plain [6, sid, topic, payload] and ev was filled. */
static int fast_msg(const uint8_t *body, size_t len, bench_ev_t *ev) {
  const uint8_t *p = body;
  const uint8_t *end = body + len;
  const uint8_t *topic;
  size_t topic_len;
  if (len < 2 || p[0] != 0x94 || p[1] != TP_MSG) {
    return 0;
  }
  p += 2;
  if (read_uint(&p, end, &ev->sid) != 0 ||
      read_raw(&p, end, 0, &topic, &topic_len) != 0 ||
      read_raw(&p, end, 1, &ev->payload, &ev->payload_len) != 0 || p != end) {
    return 0;
  }
  ev->type = BENCH_EV_MSG;
  ev->subject = (const char *)topic;
  ev->subject_len = topic_len;
  return 1;
}

static long tern_parse(void *state, const uint8_t *data, size_t len,
                       bench_ev_t *ev) {
  size_t fsize;
  memset(ev, 0, sizeof(*ev));
  int rc = tp_frame_size(data, len, TP_DEFAULT_MAX_PAYLOAD * 64u, &fsize);
  if (rc <= 0) {
    if (rc < 0) {
      ev->text = tp_strerror(rc);
      ev->text_len = strlen(ev->text);
    }
    return rc;
  }
  if (len < fsize) {
    return 0;
  }
  const uint8_t *body = data + TP_LEN_PREFIX;
  size_t blen = fsize - TP_LEN_PREFIX;
  if (fast_msg(body, blen, ev)) {
    return (long)fsize;
  }
  tp_frame_t f;
  rc = tp_frame_decode(state, body, blen, &f);
  if (rc != 0) {
    ev->text = tp_decoder_errmsg(state);
    ev->text_len = strlen(ev->text);
    return rc;
  }
  switch (f.type) {
  case TP_MSG:
    ev->type = BENCH_EV_MSG;
    ev->sid = f.u.msg.sid;
    ev->subject = f.u.msg.topic.ptr;
    ev->subject_len = f.u.msg.topic.len;
    ev->reply = f.u.msg.reply.ptr;
    ev->reply_len = f.u.msg.reply.len;
    ev->payload = f.u.msg.payload.ptr;
    ev->payload_len = f.u.msg.payload.len;
    break;
  case TP_PING:
    ev->type = BENCH_EV_PING;
    break;
  case TP_PONG:
    ev->type = BENCH_EV_PONG;
    break;
  case TP_ERR:
    ev->type = BENCH_EV_ERROR;
    ev->text = f.u.err.message.ptr;
    ev->text_len = f.u.err.message.len;
    break;
  case TP_GOAWAY:
    ev->type = BENCH_EV_ERROR;
    ev->text = "GOAWAY: the server is shutting down";
    ev->text_len = strlen(ev->text);
    break;
  default:
    ev->type = BENCH_EV_INFO; /* HELLO, OK, PUBACK, DROPPED */
    break;
  }
  return (long)fsize;
}

const bench_adapter_t bench_adapter_tern = {
    .name = "tern",
    .default_port = TP_DEFAULT_PORT,
    .has_queue = true,
    .has_reply = true,
    .state_create = tern_state_create,
    .state_destroy = tern_state_destroy,
    .encode_connect = tern_connect,
    .encode_pub = tern_pub,
    .encode_sub = tern_sub,
    .encode_ping = tern_ping,
    .encode_pong = tern_pong,
    .parse = tern_parse,
};

const bench_adapter_t *bench_adapter_find(const char *name) {
  static const bench_adapter_t *const all[] = {
      &bench_adapter_tern, &bench_adapter_nats, &bench_adapter_redis,
      &bench_adapter_mqtt};
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
    if (strcmp(all[i]->name, name) == 0) {
      return all[i];
    }
  }
  return NULL;
}
