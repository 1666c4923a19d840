/*
 * Message headers, kept as their raw msgpack map so the broker forwards
 * them from PUB to MSG without decoding or re-encoding.
 */
#include <string.h>

#include "proto_internal.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"

void tp_headers_iter_init(tp_headers_iter_t *it, const tp_headers_t *h) {
  memset(it, 0, sizeof(*it));
  if (h->raw == NULL)
    return;
  tp_mp_head_t mh;
  if (tp__mp_head(h->raw, h->len, &mh) != 0 || mh.kind != TP_MP_MAP)
    return;
  it->p = h->raw + mh.hdr;
  it->end = h->raw + h->len;
  it->left = (uint32_t)(mh.children / 2);
}

/* Reads one str at it->p; -1 if the bytes are not a whole str. */
static int next_str(tp_headers_iter_t *it, tp_str_t *s) {
  tp_mp_head_t h;
  size_t avail = (size_t)(it->end - it->p);
  if (tp__mp_head(it->p, avail, &h) != 0 || h.kind != TP_MP_STR ||
      h.payload > avail - h.hdr)
    return -1;
  s->ptr = (const char *)it->p + h.hdr;
  s->len = (uint32_t)h.payload;
  it->p += h.hdr + h.payload;
  return 0;
}

/*
 * The iterator trusts only what it can check cheaply: it stops (returns 0)
 * rather than read past the map if the bytes are not what the decoder or
 * tp_headers_build produced.
 */
int tp_headers_next(tp_headers_iter_t *it, tp_str_t *key, tp_str_t *val) {
  if (it->left == 0 || it->p == NULL)
    return 0;
  if (next_str(it, key) != 0 || next_str(it, val) != 0) {
    it->left = 0;
    return 0;
  }
  it->left--;
  return 1;
}

static int put_str(tp_buf_t *out, tp_str_t s) {
  uint8_t h[5];
  size_t n;
  if (s.len < 32) {
    h[0] = (uint8_t)(0xA0 | s.len);
    n = 1;
  } else if (s.len <= 0xFF) {
    h[0] = 0xD9, h[1] = (uint8_t)s.len;
    n = 2;
  } else if (s.len <= 0xFFFF) {
    h[0] = 0xDA, h[1] = (uint8_t)(s.len >> 8), h[2] = (uint8_t)s.len;
    n = 3;
  } else {
    h[0] = 0xDB, h[1] = (uint8_t)(s.len >> 24), h[2] = (uint8_t)(s.len >> 16);
    h[3] = (uint8_t)(s.len >> 8), h[4] = (uint8_t)s.len;
    n = 5;
  }
  int rc = tp_buf_append(out, h, n);
  return rc != 0 ? rc : tp_buf_append(out, s.ptr, s.len);
}

static bool str_ok(tp_str_t s) {
  if (s.ptr == NULL)
    return s.len == 0;
  return tp__utf8_valid((const uint8_t *)s.ptr, s.len);
}

/*
 * Uses the same smallest encodings as msgpack-c's packer, so headers built
 * here and headers packed by another msgpack library look alike to peers.
 * A NULL string counts as empty.
 */
int tp_headers_build(tp_buf_t *out, const tp_str_t *keys, const tp_str_t *vals,
                     uint32_t n, tp_headers_t *h) {
  if (n > 0 && (keys == NULL || vals == NULL))
    return TP_EINVAL;
  for (uint32_t i = 0; i < n; i++)
    if (!str_ok(keys[i]) || !str_ok(vals[i]))
      return TP_EINVAL;
  size_t start = out->len;
  uint8_t mh[5];
  size_t mn;
  if (n < 16) {
    mh[0] = (uint8_t)(0x80 | n);
    mn = 1;
  } else if (n <= 0xFFFF) {
    mh[0] = 0xDE, mh[1] = (uint8_t)(n >> 8), mh[2] = (uint8_t)n;
    mn = 3;
  } else {
    mh[0] = 0xDF, mh[1] = (uint8_t)(n >> 24), mh[2] = (uint8_t)(n >> 16);
    mh[3] = (uint8_t)(n >> 8), mh[4] = (uint8_t)n;
    mn = 5;
  }
  int rc = tp_buf_append(out, mh, mn);
  for (uint32_t i = 0; rc == 0 && i < n; i++) {
    rc = put_str(out, keys[i]);
    if (rc == 0)
      rc = put_str(out, vals[i]);
  }
  if (rc != 0) {
    out->len = start;
    return rc;
  }
  if (out->len - start > UINT32_MAX) {
    out->len = start;
    return TP_EINVAL;
  }
  h->raw = out->data + start;
  h->len = (uint32_t)(out->len - start);
  h->count = n;
  return 0;
}
