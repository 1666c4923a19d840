/*
 * Frame properties the fuzz targets assert. See frame_check.h.
 */
#include "frame_check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern_proto/buf.h"
#include "tern_proto/errors.h"

void fc_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fuzz property failed: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

/* Absent (ptr NULL) and present-but-empty are different values. */
static bool str_eq(tp_str_t a, tp_str_t b) {
  if ((a.ptr == NULL) != (b.ptr == NULL) || a.len != b.len)
    return false;
  return a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0;
}

static bool str_eq_loose(tp_str_t a, tp_str_t b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool bytes_eq(tp_bytes_t a, tp_bytes_t b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Headers travel as raw bytes, so equal means byte for byte. */
static bool headers_eq(tp_headers_t a, tp_headers_t b) {
  if ((a.raw == NULL) != (b.raw == NULL))
    return false;
  return a.len == b.len && a.count == b.count &&
         (a.len == 0 || memcmp(a.raw, b.raw, a.len) == 0);
}

#define DIFF(cond, name)                                                       \
  do {                                                                         \
    if (!(cond))                                                               \
      return name;                                                             \
  } while (0)

static const char *hello_diff(const tp_hello_t *a, const tp_hello_t *b,
                              bool loose) {
  bool (*seq)(tp_str_t, tp_str_t) = loose ? str_eq_loose : str_eq;
  DIFF(a->proto == b->proto, "hello.proto");
  DIFF(seq(a->server, b->server), "hello.server");
  DIFF(seq(a->server_id, b->server_id), "hello.server_id");
  DIFF(a->max_payload == b->max_payload, "hello.max_payload");
  DIFF(a->max_frame == b->max_frame, "hello.max_frame");
  DIFF(a->auth_required == b->auth_required, "hello.auth_required");
  DIFF(a->heartbeat_ms == b->heartbeat_ms, "hello.heartbeat_ms");
  return NULL;
}

static const char *connect_diff(const tp_connect_t *a, const tp_connect_t *b) {
  DIFF(a->proto == b->proto, "connect.proto");
  DIFF(str_eq(a->name, b->name), "connect.name");
  DIFF(str_eq(a->user, b->user), "connect.user");
  DIFF(str_eq(a->pass, b->pass), "connect.pass");
  DIFF(str_eq(a->token, b->token), "connect.token");
  DIFF(a->echo == b->echo, "connect.echo");
  DIFF(a->verbose == b->verbose, "connect.verbose");
  return NULL;
}

static const char *pub_diff(const tp_pub_t *a, const tp_pub_t *b) {
  DIFF(str_eq(a->topic, b->topic), "pub.topic");
  DIFF(bytes_eq(a->payload, b->payload), "pub.payload");
  DIFF(str_eq(a->reply, b->reply), "pub.reply");
  DIFF(headers_eq(a->headers, b->headers), "pub.headers");
  DIFF(a->has_ack == b->has_ack, "pub.has_ack");
  DIFF(a->ack == b->ack, "pub.ack");
  DIFF(a->retain == b->retain, "pub.retain");
  DIFF(a->ttl_ms == b->ttl_ms, "pub.ttl_ms");
  return NULL;
}

static const char *sub_diff(const tp_sub_t *a, const tp_sub_t *b) {
  DIFF(a->sid == b->sid, "sub.sid");
  DIFF(str_eq(a->pattern, b->pattern), "sub.pattern");
  DIFF(str_eq(a->queue, b->queue), "sub.queue");
  DIFF(a->max_msgs == b->max_msgs, "sub.max_msgs");
  DIFF(a->max_bytes == b->max_bytes, "sub.max_bytes");
  DIFF(a->overflow == b->overflow, "sub.overflow");
  return NULL;
}

static const char *msg_diff(const tp_msg_t *a, const tp_msg_t *b) {
  DIFF(a->sid == b->sid, "msg.sid");
  DIFF(str_eq(a->topic, b->topic), "msg.topic");
  DIFF(bytes_eq(a->payload, b->payload), "msg.payload");
  DIFF(str_eq(a->reply, b->reply), "msg.reply");
  DIFF(headers_eq(a->headers, b->headers), "msg.headers");
  DIFF(a->retained == b->retained, "msg.retained");
  return NULL;
}

const char *fc_frame_diff(const tp_frame_t *a, const tp_frame_t *b,
                          bool hello_loose) {
  DIFF(a->type == b->type, "type");
  switch (a->type) {
  case TP_HELLO:
    return hello_diff(&a->u.hello, &b->u.hello, hello_loose);
  case TP_CONNECT:
    return connect_diff(&a->u.connect, &b->u.connect);
  case TP_PUB:
    return pub_diff(&a->u.pub, &b->u.pub);
  case TP_SUB:
    return sub_diff(&a->u.sub, &b->u.sub);
  case TP_UNSUB:
    DIFF(a->u.unsub.sid == b->u.unsub.sid, "unsub.sid");
    DIFF(a->u.unsub.has_max == b->u.unsub.has_max, "unsub.has_max");
    DIFF(a->u.unsub.max_msgs == b->u.unsub.max_msgs, "unsub.max_msgs");
    return NULL;
  case TP_MSG:
    return msg_diff(&a->u.msg, &b->u.msg);
  case TP_ERR:
    DIFF(a->u.err.code == b->u.err.code, "err.code");
    DIFF(str_eq(a->u.err.message, b->u.err.message), "err.message");
    return NULL;
  case TP_PUBACK:
    DIFF(a->u.puback.ack_id == b->u.puback.ack_id, "puback.ack_id");
    DIFF(a->u.puback.receivers == b->u.puback.receivers, "puback.receivers");
    return NULL;
  case TP_DROPPED:
    DIFF(a->u.dropped.sid == b->u.dropped.sid, "dropped.sid");
    DIFF(a->u.dropped.count == b->u.dropped.count, "dropped.count");
    return NULL;
  case TP_GOAWAY:
    DIFF(str_eq(a->u.goaway.reason, b->u.goaway.reason), "goaway.reason");
    return NULL;
  default: /* PING, PONG, OK carry nothing else */
    return NULL;
  }
}

/*
 * Decodes code points by their bit layout and checks the ranges afterwards,
 * a different route from the library's RFC 3629 byte-range table, so a slip
 * in either shows up as a disagreement.
 */
bool fc_utf8_ok(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint32_t c = s[i];
    size_t n;
    uint32_t min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, min = 0x80, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, min = 0x800, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, min = 0x10000, c &= 0x07;
    } else {
      return false;
    }
    if (len - i - 1 < n)
      return false;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return false;
      c = (c << 6) | (s[i + k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

bool fc_decode_err_ok(int rc) {
  return rc == TP_EPROTO || rc == TP_ETYPE || rc == TP_EUTF8 || rc == TP_ENOMEM;
}

static void check_str(tp_str_t s, const char *what) {
  if (s.ptr == NULL && s.len != 0)
    fc_fail("%s: absent string with length %u", what, s.len);
  if (s.ptr != NULL && !fc_utf8_ok((const uint8_t *)s.ptr, s.len))
    fc_fail("%s: decoder accepted invalid UTF-8", what);
}

static void check_headers(tp_headers_t h, const char *what) {
  if (h.raw == NULL) {
    if (h.len != 0 || h.count != 0)
      fc_fail("%s: absent headers with len %u count %u", what, h.len, h.count);
    return;
  }
  tp_headers_iter_t it;
  tp_str_t k, v;
  uint32_t n = 0;
  tp_headers_iter_init(&it, &h);
  while (tp_headers_next(&it, &k, &v)) {
    check_str(k, what);
    check_str(v, what);
    n++;
  }
  if (n != h.count)
    fc_fail("%s: iterated %u pairs, count says %u", what, n, h.count);
  if (it.p != h.raw + h.len)
    fc_fail("%s: pairs end %td bytes before the map's end", what,
            (h.raw + h.len) - it.p);
}

void fc_check_decoded(const tp_frame_t *f) {
  switch (f->type) {
  case TP_HELLO:
    check_str(f->u.hello.server, "hello.server");
    check_str(f->u.hello.server_id, "hello.server_id");
    break;
  case TP_CONNECT:
    check_str(f->u.connect.name, "connect.name");
    check_str(f->u.connect.user, "connect.user");
    check_str(f->u.connect.pass, "connect.pass");
    check_str(f->u.connect.token, "connect.token");
    break;
  case TP_PUB:
    check_str(f->u.pub.topic, "pub.topic");
    check_str(f->u.pub.reply, "pub.reply");
    check_headers(f->u.pub.headers, "pub.headers");
    if (f->u.pub.topic.ptr == NULL)
      fc_fail("pub.topic absent in a decoded PUB");
    break;
  case TP_SUB:
    check_str(f->u.sub.pattern, "sub.pattern");
    check_str(f->u.sub.queue, "sub.queue");
    if (f->u.sub.pattern.ptr == NULL)
      fc_fail("sub.pattern absent in a decoded SUB");
    if (f->u.sub.overflow < TP_OVERFLOW_UNSET ||
        f->u.sub.overflow > TP_OVERFLOW_DISCONNECT)
      fc_fail("sub.overflow %d out of range", f->u.sub.overflow);
    break;
  case TP_MSG:
    check_str(f->u.msg.topic, "msg.topic");
    check_str(f->u.msg.reply, "msg.reply");
    check_headers(f->u.msg.headers, "msg.headers");
    if (f->u.msg.topic.ptr == NULL)
      fc_fail("msg.topic absent in a decoded MSG");
    break;
  case TP_ERR:
    check_str(f->u.err.message, "err.message");
    break;
  case TP_GOAWAY:
    check_str(f->u.goaway.reason, "goaway.reason");
    break;
  case TP_UNSUB:
  case TP_PING:
  case TP_PONG:
  case TP_OK:
  case TP_PUBACK:
  case TP_DROPPED:
    break;
  default:
    fc_fail("decoder returned frame type %d", f->type);
  }
}

/* Decodes one whole encoded frame (prefix included) that must be valid. */
static void decode_encoded(tp_decoder_t *d, const tp_buf_t *b, tp_frame_t *f,
                           const char *what) {
  size_t size = 0;
  int rc = tp_frame_size(b->data, b->len, SIZE_MAX, &size);
  if (rc != 1 || size != b->len)
    fc_fail("%s: encoder wrote a bad length prefix (rc %d, %zu vs %zu bytes)",
            what, rc, size, b->len);
  rc = tp_frame_decode(d, b->data + TP_LEN_PREFIX, b->len - TP_LEN_PREFIX, f);
  if (rc != 0)
    fc_fail("%s: decoder refused the encoder's frame: %s (%s)", what,
            tp_strerror(rc), tp_decoder_errmsg(d));
}

/*
 * The broker's fan-out encoding (one shared body, a head per subscriber)
 * must be byte for byte the whole-frame encoding, or subscribers would see
 * frames no encoder test ever produced.
 */
static void check_msg_split(const tp_frame_t *f, const tp_buf_t *whole) {
  const tp_msg_t *m = &f->u.msg;
  tp_buf_t body;
  uint8_t head[TP_MSG_HEAD_MAX];
  bool has_opts = false;
  tp_buf_init(&body);
  int rc = tp_msg_body_encode(&body, m->topic, m->payload, m->reply, m->headers,
                              m->retained, &has_opts);
  if (rc != 0)
    fc_fail("tp_msg_body_encode failed: %s", tp_strerror(rc));
  size_t hn = tp_msg_head_encode(head, m->sid, body.len, has_opts);
  if (hn > TP_MSG_HEAD_MAX || hn + body.len != whole->len ||
      memcmp(head, whole->data, hn) != 0 ||
      memcmp(body.data, whole->data + hn, body.len) != 0)
    fc_fail("MSG head + body differs from tp_frame_encode (sid %llu)",
            (unsigned long long)m->sid);
  tp_buf_free(&body);
}

void fc_roundtrip(const tp_frame_t *f) {
  tp_buf_t b1, b2;
  tp_decoder_t *d = NULL;
  tp_frame_t f2;
  tp_buf_init(&b1);
  tp_buf_init(&b2);
  if (tp_decoder_create(&d) != 0)
    fc_fail("tp_decoder_create");

  int rc = tp_frame_encode(&b1, f);
  if (rc != 0)
    fc_fail("encoding a decoded %s frame failed: %s",
            tp_frame_type_name(f->type), tp_strerror(rc));
  decode_encoded(d, &b1, &f2, "round trip");
  const char *diff = fc_frame_diff(f, &f2, true);
  if (diff != NULL)
    fc_fail("round trip of %s changed %s", tp_frame_type_name(f->type), diff);

  /* A frame that came out of the decoder must encode to the same bytes. */
  rc = tp_frame_encode(&b2, &f2);
  if (rc != 0)
    fc_fail("re-encoding failed: %s", tp_strerror(rc));
  if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
    fc_fail("encoding of %s is not canonical (%zu vs %zu bytes)",
            tp_frame_type_name(f->type), b1.len, b2.len);

  if (f->type == TP_MSG)
    check_msg_split(f, &b1);

  tp_decoder_destroy(d);
  tp_buf_free(&b1);
  tp_buf_free(&b2);
}
