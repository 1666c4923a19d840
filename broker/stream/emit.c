/*
 * The streams' output and their record envelope (emit.h).
 */
#include "stream/emit.h"

#include <string.h>

#include "delivery/router.h"
#include "tern_proto/errors.h"

int emit_msg(worker_t *w, const char *to, const char *topic, size_t tlen,
             const uint8_t *payload, size_t plen, const tp_headers_t *hdrs,
             const char *reply, bool *full) {
  tp_pub_t pub;
  memset(&pub, 0, sizeof pub);
  pub.topic.ptr = topic;
  pub.topic.len = (uint32_t)tlen;
  pub.payload.ptr = payload;
  pub.payload.len = (uint32_t)plen;
  if (hdrs != NULL)
    pub.headers = *hdrs;
  if (reply != NULL) {
    pub.reply.ptr = reply;
    pub.reply.len = (uint32_t)strlen(reply);
  }
  uint64_t n = 0;
  bool f = false;
  int rc = router_publish_as(w, to, strlen(to), &pub, &n, &f);
  if (full != NULL)
    *full = f;
  return rc;
}

int emit_reply(worker_t *w, const char *to, const tp_buf_t *body) {
  return emit_msg(w, to, to, strlen(to), body->data, body->len, NULL, NULL,
                  NULL);
}

int emit_status(worker_t *w, const char *to, const char *status) {
  tp_str_t k = {STREAM_STATUS_HEADER, (uint32_t)strlen(STREAM_STATUS_HEADER)};
  tp_str_t v = {status, (uint32_t)strlen(status)};
  tp_buf_t b;
  tp_buf_init(&b);
  tp_headers_t h;
  int rc = tp_headers_build(&b, &k, &v, 1, &h);
  if (rc == 0)
    rc = emit_msg(w, to, to, strlen(to), NULL, 0, &h, NULL, NULL);
  tp_buf_free(&b);
  return rc;
}

int rec_encode(tp_buf_t *b, const tp_headers_t *h, const uint8_t *payload,
               size_t plen) {
  tp_buf_reset(b);
  bool hh = h != NULL && h->raw != NULL;
  int rc = tp_buf_reserve(b, 5 + (hh ? h->len : 0) + plen);
  if (rc != 0)
    return rc;
  b->data[b->len++] = hh ? 1 : 0;
  if (hh) {
    for (int i = 0; i < 4; i++)
      b->data[b->len++] = (uint8_t)(h->len >> (8 * i));
    memcpy(b->data + b->len, h->raw, h->len);
    b->len += h->len;
  }
  if (plen > 0)
    memcpy(b->data + b->len, payload, plen);
  b->len += plen;
  return 0;
}

/* The number of pairs of a msgpack map header, or -1. */
static int64_t map_count(const uint8_t *p, size_t len) {
  if (len < 1)
    return -1;
  if ((p[0] & 0xf0) == 0x80)
    return p[0] & 0x0f;
  if (p[0] == 0xde && len >= 3)
    return (p[1] << 8) | p[2];
  if (p[0] == 0xdf && len >= 5)
    return ((int64_t)p[1] << 24) | (p[2] << 16) | (p[3] << 8) | p[4];
  return -1;
}

int rec_decode(const uint8_t *data, size_t len, tp_headers_t *h,
               const uint8_t **payload, size_t *plen) {
  memset(h, 0, sizeof *h);
  if (len < 1)
    return -1;
  size_t at = 1;
  if (data[0] & 1) {
    if (len < 5)
      return -1;
    uint32_t hl = (uint32_t)data[1] | ((uint32_t)data[2] << 8) |
                  ((uint32_t)data[3] << 16) | ((uint32_t)data[4] << 24);
    if (hl > len - 5)
      return -1;
    int64_t n = map_count(data + 5, hl);
    if (n < 0)
      return -1;
    h->raw = data + 5;
    h->len = hl;
    h->count = (uint32_t)n;
    at = 5 + hl;
  }
  *payload = data + at;
  *plen = len - at;
  return 0;
}

bool header_find(const tp_headers_t *h, const char *key, tp_str_t *val) {
  if (h->raw == NULL)
    return false;
  tp_headers_iter_t it;
  tp_headers_iter_init(&it, h);
  tp_str_t k, v;
  size_t kl = strlen(key);
  while (tp_headers_next(&it, &k, &v) == 1) {
    if (k.len == kl && memcmp(k.ptr, key, kl) == 0) {
      *val = v;
      return true;
    }
  }
  return false;
}
