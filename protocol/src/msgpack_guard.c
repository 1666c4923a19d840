/*
 * A bounded walk over untrusted msgpack, run before msgpack-c sees a body.
 *
 * msgpack-c reserves memory for a container's declared element count before
 * the elements arrive, so 7 bytes (`dd 93 85 85 85 85 85`) can make it ask
 * for tens of gigabytes. This walker reads only headers, never allocates,
 * and checks every declared length and count against the bytes that remain,
 * so whatever passes it costs msgpack-c memory proportional to the frame.
 */
#include <string.h>

#include "proto_internal.h"
#include "tern_proto/errors.h"

static uint64_t be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* Sets h for a header of hdr bytes; the length field (if any) is at p[1]. */
static int head_len(const uint8_t *p, size_t avail, tp_mp_head_t *h,
                    uint8_t kind, size_t lenbytes, size_t extra) {
  h->kind = kind;
  h->hdr = 1 + lenbytes + extra;
  if (avail < h->hdr)
    return -1;
  uint64_t n = be(p + 1, lenbytes);
  if (kind == TP_MP_ARRAY)
    h->children = n;
  else if (kind == TP_MP_MAP)
    h->children = 2 * n;
  else
    h->payload = n;
  return 0;
}

static int head_fixed(tp_mp_head_t *h, size_t avail, size_t hdr,
                      uint64_t payload) {
  h->kind = TP_MP_SCALAR;
  h->hdr = hdr;
  h->payload = payload;
  return avail < hdr ? -1 : 0;
}

/*
 * Decodes one header. Only the header itself has to be available; payload
 * and children are reported for the caller to bound.
 */
int tp__mp_head(const uint8_t *p, size_t avail, tp_mp_head_t *h) {
  memset(h, 0, sizeof(*h));
  if (avail == 0)
    return -1;
  uint8_t c = p[0];
  if (c <= 0x7F || c >= 0xE0)
    return head_fixed(h, avail, 1, 0);
  if (c <= 0x8F) {
    h->kind = TP_MP_MAP, h->hdr = 1, h->children = 2u * (c & 0x0F);
    return 0;
  }
  if (c <= 0x9F) {
    h->kind = TP_MP_ARRAY, h->hdr = 1, h->children = c & 0x0F;
    return 0;
  }
  if (c <= 0xBF) {
    h->kind = TP_MP_STR, h->hdr = 1, h->payload = c & 0x1F;
    return 0;
  }
  switch (c) {
  case 0xC0: /* nil */
  case 0xC2: /* false */
  case 0xC3: /* true */
    return head_fixed(h, avail, 1, 0);
  case 0xC4:
    return head_len(p, avail, h, TP_MP_BIN, 1, 0);
  case 0xC5:
    return head_len(p, avail, h, TP_MP_BIN, 2, 0);
  case 0xC6:
    return head_len(p, avail, h, TP_MP_BIN, 4, 0);
  case 0xC7:
    return head_len(p, avail, h, TP_MP_EXT, 1, 1);
  case 0xC8:
    return head_len(p, avail, h, TP_MP_EXT, 2, 1);
  case 0xC9:
    return head_len(p, avail, h, TP_MP_EXT, 4, 1);
  case 0xCA:
    return head_fixed(h, avail, 1, 4);
  case 0xCB:
    return head_fixed(h, avail, 1, 8);
  case 0xCC:
  case 0xD0:
    return head_fixed(h, avail, 1, 1);
  case 0xCD:
  case 0xD1:
    return head_fixed(h, avail, 1, 2);
  case 0xCE:
  case 0xD2:
    return head_fixed(h, avail, 1, 4);
  case 0xCF:
  case 0xD3:
    return head_fixed(h, avail, 1, 8);
  case 0xD4:
  case 0xD5:
  case 0xD6:
  case 0xD7:
  case 0xD8: /* fixext 1/2/4/8/16: type byte, then 2^(c-0xD4) bytes */
    h->kind = TP_MP_EXT, h->hdr = 2, h->payload = 1u << (c - 0xD4);
    return avail < 2 ? -1 : 0;
  case 0xD9:
    return head_len(p, avail, h, TP_MP_STR, 1, 0);
  case 0xDA:
    return head_len(p, avail, h, TP_MP_STR, 2, 0);
  case 0xDB:
    return head_len(p, avail, h, TP_MP_STR, 4, 0);
  case 0xDC:
    return head_len(p, avail, h, TP_MP_ARRAY, 2, 0);
  case 0xDD:
    return head_len(p, avail, h, TP_MP_ARRAY, 4, 0);
  case 0xDE:
    return head_len(p, avail, h, TP_MP_MAP, 2, 0);
  case 0xDF:
    return head_len(p, avail, h, TP_MP_MAP, 4, 0);
  default: /* 0xC1 is never used */
    return -1;
  }
}

/*
 * Walks the whole body with an explicit stack of "children left" counts, so
 * hostile nesting costs neither C stack nor heap. A container's declared
 * child count must not exceed the bytes left, since every child takes at
 * least one byte.
 */
int tp__mp_guard(const uint8_t *body, size_t len, const char **why) {
  uint64_t left[TP_MP_MAX_DEPTH];
  size_t depth = 0, pos = 0;
  tp_mp_head_t h;

  if (len == 0 || tp__mp_head(body, len, &h) != 0 || h.kind != TP_MP_ARRAY) {
    *why = "frame body is not a msgpack array";
    return TP_EPROTO;
  }
  do {
    if (tp__mp_head(body + pos, len - pos, &h) != 0) {
      *why = pos < len && body[pos] == 0xC1 ? "invalid msgpack byte 0xc1"
                                            : "truncated msgpack";
      return TP_EPROTO;
    }
    pos += h.hdr;
    if (h.payload > len - pos) {
      *why = "declared length exceeds the frame";
      return TP_EPROTO;
    }
    pos += (size_t)h.payload;
    if (depth > 0)
      left[depth - 1]--;
    if (h.kind == TP_MP_ARRAY || h.kind == TP_MP_MAP) {
      if (depth + 1 > TP_MP_MAX_DEPTH) {
        *why = "msgpack nesting deeper than 32 levels";
        return TP_EPROTO;
      }
      if (h.children > len - pos) {
        *why = "declared element count exceeds the frame";
        return TP_EPROTO;
      }
      if (h.children > 0)
        left[depth++] = h.children;
    }
    while (depth > 0 && left[depth - 1] == 0)
      depth--;
  } while (depth > 0);
  if (pos != len) {
    *why = "bytes after the frame's array";
    return TP_EPROTO;
  }
  return 0;
}

/*
 * Skipping needs no stack: one counter of objects still to pass over, to
 * which each container adds its children.
 */
size_t tp__mp_skip(const uint8_t *p, size_t avail) {
  uint64_t left = 1;
  size_t pos = 0;
  tp_mp_head_t h;
  while (left > 0) {
    if (tp__mp_head(p + pos, avail - pos, &h) != 0)
      return 0;
    pos += h.hdr;
    if (h.payload > avail - pos || h.children > avail - pos)
      return 0;
    pos += (size_t)h.payload;
    left += h.children - 1;
  }
  return pos;
}

static bool str_equals(const uint8_t *p, size_t avail, const tp_mp_head_t *h,
                       const char *s) {
  size_t n = strlen(s);
  return h->kind == TP_MP_STR && h->payload == n && avail >= h->hdr + n &&
         memcmp(p + h->hdr, s, n) == 0;
}

int tp__mp_locate(const uint8_t *body, size_t len, uint32_t elem,
                  const char *key, size_t *off, size_t *size) {
  tp_mp_head_t h;
  if (tp__mp_head(body, len, &h) != 0 || h.kind != TP_MP_ARRAY ||
      h.children <= elem)
    return -1;
  size_t pos = h.hdr;
  for (uint32_t i = 0; i < elem; i++) {
    size_t n = tp__mp_skip(body + pos, len - pos);
    if (n == 0)
      return -1;
    pos += n;
  }
  if (key == NULL) {
    *off = pos;
    *size = tp__mp_skip(body + pos, len - pos);
    return *size == 0 ? -1 : 0;
  }
  if (tp__mp_head(body + pos, len - pos, &h) != 0 || h.kind != TP_MP_MAP)
    return -1;
  pos += h.hdr;
  for (uint64_t i = 0; i < h.children / 2; i++) {
    tp_mp_head_t kh;
    if (tp__mp_head(body + pos, len - pos, &kh) != 0)
      return -1;
    bool match = str_equals(body + pos, len - pos, &kh, key);
    size_t n = tp__mp_skip(body + pos, len - pos);
    if (n == 0)
      return -1;
    pos += n;
    n = tp__mp_skip(body + pos, len - pos);
    if (n == 0)
      return -1;
    if (match) {
      *off = pos;
      *size = n;
      return 0;
    }
    pos += n;
  }
  return -1;
}
