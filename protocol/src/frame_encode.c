/*
 * Frame encoders: tp_frame_t -> length-prefixed msgpack, and the broker's
 * split MSG encoding (one shared body, a small head per subscriber).
 */
#include <msgpack.h>
#include <string.h>

#include "proto_internal.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"

/* msgpack-c's write callback: append to the tp_buf_t in data. */
static int buf_write(void *data, const char *p, size_t n) {
  return tp_buf_append((tp_buf_t *)data, p, n) == 0 ? 0 : -1;
}

/*
 * One encoding in progress. Every pack call's result is OR-ed into rc so the
 * encoders read as straight-line code; the caller rolls back on failure.
 */
typedef struct enc {
  msgpack_packer pk;
  tp_buf_t *out;
  int rc;
} enc_t;

static void enc_init(enc_t *e, tp_buf_t *out) {
  msgpack_packer_init(&e->pk, out, buf_write);
  e->out = out;
  e->rc = 0;
}

static void put_str(enc_t *e, tp_str_t s) {
  e->rc |= msgpack_pack_str(&e->pk, s.len);
  if (s.len > 0)
    e->rc |= msgpack_pack_str_body(&e->pk, s.ptr, s.len);
}

static void put_key(enc_t *e, const char *k) {
  tp_str_t s = {k, (uint32_t)strlen(k)};
  put_str(e, s);
}

static void put_bin(enc_t *e, tp_bytes_t b) {
  e->rc |= msgpack_pack_bin(&e->pk, b.len);
  if (b.len > 0)
    e->rc |= msgpack_pack_bin_body(&e->pk, b.ptr, b.len);
}

static void put_uint(enc_t *e, uint64_t v) {
  e->rc |= msgpack_pack_uint64(&e->pk, v);
}

static void put_bool(enc_t *e, bool v) {
  e->rc |= v ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk);
}

static void put_raw(enc_t *e, const uint8_t *p, size_t n) {
  if (tp_buf_append(e->out, p, n) != 0)
    e->rc |= -1;
}

static bool str_given(tp_str_t s) {
  return s.ptr != NULL;
}

static void put_hello(enc_t *e, const tp_hello_t *h) {
  e->rc |= msgpack_pack_map(&e->pk, str_given(h->cluster_urls) ? 8 : 7);
  put_key(e, "proto");
  put_uint(e, h->proto);
  put_key(e, "server");
  put_str(e, h->server);
  put_key(e, "server_id");
  put_str(e, h->server_id);
  put_key(e, "max_payload");
  put_uint(e, h->max_payload);
  put_key(e, "max_frame");
  put_uint(e, h->max_frame);
  put_key(e, "auth_required");
  put_bool(e, h->auth_required);
  put_key(e, "heartbeat_ms");
  put_uint(e, h->heartbeat_ms);
  if (str_given(h->cluster_urls)) {
    put_key(e, "cluster_urls");
    put_str(e, h->cluster_urls);
  }
}

/* CONNECT always carries proto; echo and verbose only when not default. */
static void put_connect(enc_t *e, const tp_connect_t *c) {
  const tp_str_t *strs[] = {&c->name, &c->user, &c->pass, &c->token};
  const char *names[] = {"name", "user", "pass", "token"};
  size_t n = 1 + (c->echo ? 0 : 1) + (c->verbose ? 1 : 0);
  for (size_t i = 0; i < 4; i++)
    n += str_given(*strs[i]);
  e->rc |= msgpack_pack_map(&e->pk, n);
  put_key(e, "proto");
  put_uint(e, c->proto);
  for (size_t i = 0; i < 4; i++) {
    if (str_given(*strs[i])) {
      put_key(e, names[i]);
      put_str(e, *strs[i]);
    }
  }
  if (!c->echo) {
    put_key(e, "echo");
    put_bool(e, false);
  }
  if (c->verbose) {
    put_key(e, "verbose");
    put_bool(e, true);
  }
}

static size_t pub_opt_count(const tp_pub_t *p) {
  return str_given(p->reply) + (p->headers.raw != NULL) + p->has_ack +
         p->retain + (p->ttl_ms != 0);
}

static void put_pub(enc_t *e, const tp_pub_t *p) {
  size_t n = pub_opt_count(p);
  e->rc |= msgpack_pack_array(&e->pk, n ? 4 : 3);
  put_uint(e, TP_PUB);
  put_str(e, p->topic);
  put_bin(e, p->payload);
  if (n == 0)
    return;
  e->rc |= msgpack_pack_map(&e->pk, n);
  if (str_given(p->reply)) {
    put_key(e, "reply");
    put_str(e, p->reply);
  }
  if (p->headers.raw != NULL) {
    put_key(e, "headers");
    put_raw(e, p->headers.raw, p->headers.len);
  }
  if (p->has_ack) {
    put_key(e, "ack");
    put_uint(e, p->ack);
  }
  if (p->retain) {
    put_key(e, "retain");
    put_bool(e, true);
  }
  if (p->ttl_ms != 0) {
    put_key(e, "ttl_ms");
    put_uint(e, p->ttl_ms);
  }
}

static void put_sub(enc_t *e, const tp_sub_t *s) {
  const char *ovf = tp_overflow_name(s->overflow);
  size_t n = str_given(s->queue) + (s->max_msgs != 0) + (s->max_bytes != 0) +
             (ovf != NULL);
  e->rc |= msgpack_pack_array(&e->pk, n ? 4 : 3);
  put_uint(e, TP_SUB);
  put_uint(e, s->sid);
  put_str(e, s->pattern);
  if (n == 0)
    return;
  e->rc |= msgpack_pack_map(&e->pk, n);
  if (str_given(s->queue)) {
    put_key(e, "queue");
    put_str(e, s->queue);
  }
  if (s->max_msgs != 0) {
    put_key(e, "max_msgs");
    put_uint(e, s->max_msgs);
  }
  if (s->max_bytes != 0) {
    put_key(e, "max_bytes");
    put_uint(e, s->max_bytes);
  }
  if (ovf != NULL) {
    put_key(e, "overflow");
    put_key(e, ovf);
  }
}

/* topic, payload and the opts map: the part of MSG shared by subscribers. */
static bool put_msg_body(enc_t *e, tp_str_t topic, tp_bytes_t payload,
                         tp_str_t reply, tp_headers_t headers, bool retained) {
  size_t n = str_given(reply) + (headers.raw != NULL) + retained;
  put_str(e, topic);
  put_bin(e, payload);
  if (n == 0)
    return false;
  e->rc |= msgpack_pack_map(&e->pk, n);
  if (str_given(reply)) {
    put_key(e, "reply");
    put_str(e, reply);
  }
  if (headers.raw != NULL) {
    put_key(e, "headers");
    put_raw(e, headers.raw, headers.len);
  }
  if (retained) {
    put_key(e, "retained");
    put_bool(e, true);
  }
  return true;
}

static int check_required(const tp_frame_t *f) {
  switch (f->type) {
  case TP_PUB:
    if (f->u.pub.topic.ptr == NULL ||
        (f->u.pub.payload.ptr == NULL && f->u.pub.payload.len != 0))
      return TP_EINVAL;
    return 0;
  case TP_SUB:
    return f->u.sub.pattern.ptr == NULL ? TP_EINVAL : 0;
  case TP_MSG:
    if (f->u.msg.topic.ptr == NULL ||
        (f->u.msg.payload.ptr == NULL && f->u.msg.payload.len != 0))
      return TP_EINVAL;
    return 0;
  case TP_ERR:
    return f->u.err.message.ptr == NULL ? TP_EINVAL : 0;
  case TP_GOAWAY:
    return f->u.goaway.reason.ptr == NULL ? TP_EINVAL : 0;
  case TP_HELLO:
  case TP_CONNECT:
  case TP_UNSUB:
  case TP_PING:
  case TP_PONG:
  case TP_OK:
  case TP_PUBACK:
  case TP_DROPPED:
    return 0;
  default:
    return TP_EINVAL;
  }
}

static void put_body(enc_t *e, const tp_frame_t *f) {
  switch (f->type) {
  case TP_HELLO:
  case TP_CONNECT:
    e->rc |= msgpack_pack_array(&e->pk, 2);
    put_uint(e, (uint64_t)f->type);
    if (f->type == TP_HELLO)
      put_hello(e, &f->u.hello);
    else
      put_connect(e, &f->u.connect);
    break;
  case TP_PUB:
    put_pub(e, &f->u.pub);
    break;
  case TP_SUB:
    put_sub(e, &f->u.sub);
    break;
  case TP_UNSUB:
    e->rc |= msgpack_pack_array(&e->pk, f->u.unsub.has_max ? 3 : 2);
    put_uint(e, TP_UNSUB);
    put_uint(e, f->u.unsub.sid);
    if (f->u.unsub.has_max)
      put_uint(e, f->u.unsub.max_msgs);
    break;
  case TP_MSG: {
    const tp_msg_t *m = &f->u.msg;
    bool opts = m->reply.ptr != NULL || m->headers.raw != NULL || m->retained;
    e->rc |= msgpack_pack_array(&e->pk, opts ? 5 : 4);
    put_uint(e, TP_MSG);
    put_uint(e, m->sid);
    put_msg_body(e, m->topic, m->payload, m->reply, m->headers, m->retained);
    break;
  }
  case TP_ERR:
    e->rc |= msgpack_pack_array(&e->pk, 3);
    put_uint(e, TP_ERR);
    put_uint(e, f->u.err.code);
    put_str(e, f->u.err.message);
    break;
  case TP_PUBACK:
    e->rc |= msgpack_pack_array(&e->pk, 3);
    put_uint(e, TP_PUBACK);
    put_uint(e, f->u.puback.ack_id);
    put_uint(e, f->u.puback.receivers);
    break;
  case TP_DROPPED:
    e->rc |= msgpack_pack_array(&e->pk, 3);
    put_uint(e, TP_DROPPED);
    put_uint(e, f->u.dropped.sid);
    put_uint(e, f->u.dropped.count);
    break;
  case TP_GOAWAY:
    e->rc |= msgpack_pack_array(&e->pk, 2);
    put_uint(e, TP_GOAWAY);
    put_str(e, f->u.goaway.reason);
    break;
  default: /* PING, PONG, OK */
    e->rc |= msgpack_pack_array(&e->pk, 1);
    put_uint(e, (uint64_t)f->type);
    break;
  }
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/*
 * Packs the body after a zeroed prefix, then patches the prefix with the
 * body's length: one pass, no size pre-computation. On failure out is left
 * as it was.
 */
int tp_frame_encode(tp_buf_t *out, const tp_frame_t *f) {
  int rc = check_required(f);
  if (rc != 0)
    return rc;
  size_t start = out->len;
  static const uint8_t zero[TP_LEN_PREFIX];
  if (tp_buf_append(out, zero, sizeof(zero)) != 0)
    return TP_ENOMEM;
  enc_t e;
  enc_init(&e, out);
  put_body(&e, f);
  size_t body = out->len - start - TP_LEN_PREFIX;
  if (e.rc != 0 || body > UINT32_MAX) {
    out->len = start;
    return e.rc != 0 ? TP_ENOMEM : TP_EINVAL;
  }
  put_be32(out->data + start, (uint32_t)body);
  return 0;
}

int tp_msg_body_encode(tp_buf_t *out, tp_str_t topic, tp_bytes_t payload,
                       tp_str_t reply, tp_headers_t headers, bool retained,
                       bool *has_opts) {
  if (topic.ptr == NULL || (payload.ptr == NULL && payload.len != 0))
    return TP_EINVAL;
  if (reply.ptr == NULL && headers.raw == NULL && !retained) {
    if (has_opts != NULL)
      *has_opts = false;
    return tp__msg_body_encode_plain(out, topic, payload);
  }
  size_t start = out->len;
  enc_t e;
  enc_init(&e, out);
  bool opts = put_msg_body(&e, topic, payload, reply, headers, retained);
  if (e.rc != 0) {
    out->len = start;
    return TP_ENOMEM;
  }
  if (has_opts != NULL)
    *has_opts = opts;
  return 0;
}

/*
 * Writes the sid in the smallest msgpack uint form, exactly as msgpack-c's
 * msgpack_pack_uint64 does, so head + body equals tp_frame_encode's MSG.
 */
size_t tp_msg_head_encode(uint8_t out[TP_MSG_HEAD_MAX], uint64_t sid,
                          size_t body_len, bool has_opts) {
  uint8_t *p = out + TP_LEN_PREFIX;
  *p++ = has_opts ? 0x95 : 0x94;
  *p++ = TP_MSG;
  if (sid < 0x80) {
    *p++ = (uint8_t)sid;
  } else if (sid <= 0xFF) {
    *p++ = 0xCC;
    *p++ = (uint8_t)sid;
  } else if (sid <= 0xFFFF) {
    *p++ = 0xCD;
    *p++ = (uint8_t)(sid >> 8);
    *p++ = (uint8_t)sid;
  } else if (sid <= 0xFFFFFFFFu) {
    *p++ = 0xCE;
    put_be32(p, (uint32_t)sid);
    p += 4;
  } else {
    *p++ = 0xCF;
    put_be32(p, (uint32_t)(sid >> 32));
    put_be32(p + 4, (uint32_t)sid);
    p += 8;
  }
  size_t head = (size_t)(p - out);
  put_be32(out, (uint32_t)(head - TP_LEN_PREFIX + body_len));
  return head;
}
