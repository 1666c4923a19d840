/*
 * The hot frames' direct codec: a plain PUB (the broker's input) and a
 * plain MSG (the client's input) decoded in one bounded walk over the
 * bytes, and a plain MSG body encoded with direct writes.
 *
 * Why: the general decoder walks every body three times (the guard, then
 * msgpack_unpack into a zone, then the mapping), and the general encoder
 * goes through msgpack_packer's callback per element. For a 16-byte message
 * those steps cost more than routing it. The shapes handled here are the
 * common ones: [3, topic, payload] and [6, sid, topic, payload] with
 * nothing after them. Anything else, every error included, goes to the
 * general path, so the fast path never has to reproduce an error message:
 * it either decodes a frame exactly as the general decoder would, or it
 * declines.
 */
#include <string.h>

#include "proto_internal.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"

static uint32_t be16(const uint8_t *p) {
  return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

/*
 * Reads a length header at *pp: f8, f8 + 1, f8 + 2 are the 8/16/32-bit
 * forms (str8/16/32 or bin8/16/32), plus fixstr when fixstr is set. Moves
 * *pp past the header and returns true when the whole payload of *n bytes
 * is within end.
 */
static inline bool take_len(const uint8_t **pp, const uint8_t *end, uint8_t f8,
                     bool fixstr, uint32_t *n) {
  const uint8_t *p = *pp;
  size_t avail = (size_t)(end - p);
  if (avail == 0)
    return false;
  uint8_t c = p[0];
  if (fixstr && (c & 0xE0) == 0xA0) {
    *n = c & 0x1F;
    p += 1;
  } else if (c == f8 && avail >= 2) {
    *n = p[1];
    p += 2;
  } else if (c == f8 + 1 && avail >= 3) {
    *n = be16(p + 1);
    p += 3;
  } else if (c == f8 + 2 && avail >= 5) {
    *n = be32(p + 1);
    p += 5;
  } else {
    return false;
  }
  if ((size_t)(end - p) < *n)
    return false;
  *pp = p;
  return true;
}

/* A str: valid UTF-8 only (the general path words the refusal). */
static bool take_str(const uint8_t **pp, const uint8_t *end, tp_str_t *s) {
  uint32_t n = 0;
  if (!take_len(pp, end, 0xD9, true, &n))
    return false;
  const uint8_t *p = *pp;
  if (!tp__utf8_valid(p, n))
    return false;
  /* As the general decoder: a present empty str is "", not NULL. */
  s->ptr = n ? (const char *)p : "";
  s->len = n;
  *pp = p + n;
  return true;
}

/*
 * A PUB topic: the str header, then one pass that checks both UTF-8 and
 * the topic rules when the topic is ASCII (the usual case); other topics
 * get the UTF-8 check here and the topic rules from the receiver.
 */
static bool take_topic(const uint8_t **pp, const uint8_t *end, tp_str_t *s,
                       bool *checked) {
  uint32_t n = 0;
  if (!take_len(pp, end, 0xD9, true, &n))
    return false;
  const uint8_t *p = *pp;
  /* An invalid topic may still hold bytes past the bad one: only a valid
   * one is known to be all ASCII. */
  *checked = tp__topic_ascii_check(p, n) == 1;
  if (!*checked && !tp__utf8_valid(p, n))
    return false;
  s->ptr = n ? (const char *)p : "";
  s->len = n;
  *pp = p + n;
  return true;
}

static bool take_bin(const uint8_t **pp, const uint8_t *end, tp_bytes_t *b) {
  uint32_t n = 0;
  if (!take_len(pp, end, 0xC4, false, &n))
    return false;
  b->ptr = *pp;
  b->len = n;
  *pp += n;
  return true;
}

/* An unsigned integer in one of msgpack's unsigned forms. */
static bool take_uint(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
  const uint8_t *p = *pp;
  size_t avail = (size_t)(end - p);
  if (avail == 0)
    return false;
  uint8_t c = p[0];
  if (c <= 0x7F) {
    *v = c;
    *pp = p + 1;
  } else if (c == 0xCC && avail >= 2) {
    *v = p[1];
    *pp = p + 2;
  } else if (c == 0xCD && avail >= 3) {
    *v = be16(p + 1);
    *pp = p + 3;
  } else if (c == 0xCE && avail >= 5) {
    *v = be32(p + 1);
    *pp = p + 5;
  } else if (c == 0xCF && avail >= 9) {
    *v = (uint64_t)be32(p + 1) << 32 | be32(p + 5);
    *pp = p + 9;
  } else {
    return false;
  }
  return true;
}

int tp__frame_decode_hot(const uint8_t *body, size_t len, tp_frame_t *f) {
  if (len < 2)
    return 0;
  const uint8_t *p = body + 2, *end = body + len;
  if (body[0] == 0x93 && body[1] == TP_PUB) {
    tp_pub_t *pub = &f->u.pub;
    memset(pub, 0, sizeof *pub);
    if (!take_topic(&p, end, &pub->topic, &pub->topic_checked) ||
        !take_bin(&p, end, &pub->payload) || p != end)
      return 0;
    f->type = TP_PUB;
    return 1;
  }
  if (body[0] == 0x94 && body[1] == TP_MSG) {
    tp_msg_t msg;
    memset(&msg, 0, sizeof msg);
    if (!take_uint(&p, end, &msg.sid) || !take_str(&p, end, &msg.topic) ||
        !take_bin(&p, end, &msg.payload) || p != end)
      return 0;
    f->type = TP_MSG;
    f->u.msg = msg;
    return 1;
  }
  return 0;
}

/* The smallest header msgpack-c writes, so the bytes stay canonical. */
static uint8_t *put_len(uint8_t *p, uint8_t f8, bool fixstr, uint32_t n) {
  if (fixstr && n < 32) {
    *p++ = (uint8_t)(0xA0 | n);
  } else if (n < 256) {
    *p++ = f8;
    *p++ = (uint8_t)n;
  } else if (n < 65536) {
    *p++ = (uint8_t)(f8 + 1);
    *p++ = (uint8_t)(n >> 8);
    *p++ = (uint8_t)n;
  } else {
    *p++ = (uint8_t)(f8 + 2);
    *p++ = (uint8_t)(n >> 24);
    *p++ = (uint8_t)(n >> 16);
    *p++ = (uint8_t)(n >> 8);
    *p++ = (uint8_t)n;
  }
  return p;
}

int tp__msg_body_encode_plain(tp_buf_t *out, tp_str_t topic,
                              tp_bytes_t payload) {
  /* Two headers of at most 5 bytes each. */
  size_t need = (size_t)topic.len + payload.len + 10;
  int rc = tp_buf_reserve(out, need);
  if (rc != 0)
    return rc;
  uint8_t *p = out->data + out->len;
  p = put_len(p, 0xD9, true, topic.len);
  if (topic.len > 0)
    memcpy(p, topic.ptr, topic.len);
  p += topic.len;
  p = put_len(p, 0xC4, false, payload.len);
  if (payload.len > 0)
    memcpy(p, payload.ptr, payload.len);
  p += payload.len;
  out->len = (size_t)(p - out->data);
  return 0;
}
