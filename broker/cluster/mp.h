/*
 * The few msgpack shapes the route protocol's own frames use
 * (protocol/PROTOCOL.md, "Routes"): writing them into a tp_buf_t, and a
 * bounded reader over one frame's bytes. The reader never reads past the
 * end it is given and never allocates, so a hostile frame costs nothing
 * but its own bytes; any shape it does not expect is an error.
 */
#ifndef TERND_CLUSTER_MP_H
#define TERND_CLUSTER_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tern_proto/buf.h"

/* ---- writing ----------------------------------------------------------- */

static inline int mp_put_raw(tp_buf_t *b, const void *p, size_t n) {
  return tp_buf_append(b, p, n);
}

static inline int mp_put_head(tp_buf_t *b, uint8_t fix, uint8_t m16,
                              uint8_t m32, uint32_t n, uint32_t fixmax) {
  uint8_t h[5];
  if (n <= fixmax) {
    h[0] = (uint8_t)(fix | n);
    return mp_put_raw(b, h, 1);
  }
  if (n <= 0xffff) {
    h[0] = m16;
    h[1] = (uint8_t)(n >> 8);
    h[2] = (uint8_t)n;
    return mp_put_raw(b, h, 3);
  }
  h[0] = m32;
  h[1] = (uint8_t)(n >> 24);
  h[2] = (uint8_t)(n >> 16);
  h[3] = (uint8_t)(n >> 8);
  h[4] = (uint8_t)n;
  return mp_put_raw(b, h, 5);
}

static inline int mp_put_array(tp_buf_t *b, uint32_t n) {
  return mp_put_head(b, 0x90, 0xdc, 0xdd, n, 15);
}

static inline int mp_put_map(tp_buf_t *b, uint32_t n) {
  return mp_put_head(b, 0x80, 0xde, 0xdf, n, 15);
}

static inline int mp_put_uint(tp_buf_t *b, uint64_t v) {
  uint8_t h[9];
  size_t n;
  if (v < 128) {
    h[0] = (uint8_t)v;
    n = 1;
  } else if (v <= 0xff) {
    h[0] = 0xcc;
    h[1] = (uint8_t)v;
    n = 2;
  } else if (v <= 0xffff) {
    h[0] = 0xcd;
    h[1] = (uint8_t)(v >> 8);
    h[2] = (uint8_t)v;
    n = 3;
  } else if (v <= 0xffffffffu) {
    h[0] = 0xce;
    for (int i = 0; i < 4; i++)
      h[1 + i] = (uint8_t)(v >> (24 - 8 * i));
    n = 5;
  } else {
    h[0] = 0xcf;
    for (int i = 0; i < 8; i++)
      h[1 + i] = (uint8_t)(v >> (56 - 8 * i));
    n = 9;
  }
  return mp_put_raw(b, h, n);
}

static inline int mp_put_str(tp_buf_t *b, const char *s, size_t n) {
  uint8_t h[5];
  size_t hl;
  if (n < 32) {
    h[0] = (uint8_t)(0xa0 | n);
    hl = 1;
  } else if (n <= 0xff) {
    h[0] = 0xd9;
    h[1] = (uint8_t)n;
    hl = 2;
  } else if (n <= 0xffff) {
    h[0] = 0xda;
    h[1] = (uint8_t)(n >> 8);
    h[2] = (uint8_t)n;
    hl = 3;
  } else {
    h[0] = 0xdb;
    for (int i = 0; i < 4; i++)
      h[1 + i] = (uint8_t)(n >> (24 - 8 * i));
    hl = 5;
  }
  if (mp_put_raw(b, h, hl) != 0)
    return -1;
  return mp_put_raw(b, s, n);
}

static inline int mp_put_cstr(tp_buf_t *b, const char *s) {
  return mp_put_str(b, s, strlen(s));
}

static inline int mp_put_nil(tp_buf_t *b) {
  uint8_t h = 0xc0;
  return mp_put_raw(b, &h, 1);
}

/* Reserves the 4-byte length prefix of a frame; mp_end_frame fills it. */
static inline size_t mp_begin_frame(tp_buf_t *b) {
  size_t at = b->len;
  uint8_t z[4] = {0, 0, 0, 0};
  mp_put_raw(b, z, 4);
  return at;
}

static inline void mp_end_frame(tp_buf_t *b, size_t at) {
  uint32_t n = (uint32_t)(b->len - at - 4);
  b->data[at] = (uint8_t)(n >> 24);
  b->data[at + 1] = (uint8_t)(n >> 16);
  b->data[at + 2] = (uint8_t)(n >> 8);
  b->data[at + 3] = (uint8_t)n;
}

/* ---- reading ----------------------------------------------------------- */

typedef struct mp_rd {
  const uint8_t *p, *end;
  bool bad; /* a read failed: every later read fails too */
} mp_rd_t;

static inline void mp_rd_init(mp_rd_t *r, const uint8_t *p, size_t n) {
  r->p = p;
  r->end = p + n;
  r->bad = false;
}

static inline bool mp_need(mp_rd_t *r, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = true;
    return false;
  }
  return true;
}

static inline uint64_t mp_be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

/* The next element's container or string length by its marker. */
static inline bool mp_head(mp_rd_t *r, uint8_t fix, uint8_t fixmask,
                           uint8_t m16, uint8_t m32, uint32_t *n) {
  if (!mp_need(r, 1))
    return false;
  uint8_t m = *r->p;
  if ((m & fixmask) == fix) {
    *n = m & (uint8_t)~fixmask;
    r->p++;
    return true;
  }
  int w = m == m16 ? 2 : m == m32 ? 4 : 0;
  if (w == 0 || !mp_need(r, 1 + (size_t)w)) {
    r->bad = true;
    return false;
  }
  *n = (uint32_t)mp_be(r->p + 1, w);
  r->p += 1 + w;
  return true;
}

static inline bool mp_get_array(mp_rd_t *r, uint32_t *n) {
  /* Each element takes at least one byte. */
  return mp_head(r, 0x90, 0xf0, 0xdc, 0xdd, n) && mp_need(r, *n);
}

static inline bool mp_get_map(mp_rd_t *r, uint32_t *n) {
  return mp_head(r, 0x80, 0xf0, 0xde, 0xdf, n) && mp_need(r, (size_t)*n * 2);
}

static inline bool mp_get_uint(mp_rd_t *r, uint64_t *v) {
  if (!mp_need(r, 1))
    return false;
  uint8_t m = *r->p;
  if (m < 0x80) {
    *v = m;
    r->p++;
    return true;
  }
  int w = m == 0xcc ? 1 : m == 0xcd ? 2 : m == 0xce ? 4 : m == 0xcf ? 8 : 0;
  if (w == 0 || !mp_need(r, 1 + (size_t)w)) {
    r->bad = true;
    return false;
  }
  *v = mp_be(r->p + 1, w);
  r->p += 1 + w;
  return true;
}

/* A str (nil gives ptr NULL when nil_ok). */
static inline bool mp_get_str(mp_rd_t *r, const char **s, uint32_t *n,
                              bool nil_ok) {
  if (!mp_need(r, 1))
    return false;
  if (*r->p == 0xc0 && nil_ok) {
    r->p++;
    *s = NULL;
    *n = 0;
    return true;
  }
  uint8_t m = *r->p;
  uint32_t len;
  if ((m & 0xe0) == 0xa0) {
    len = m & 0x1f;
    r->p++;
  } else {
    int w = m == 0xd9 ? 1 : m == 0xda ? 2 : m == 0xdb ? 4 : 0;
    if (w == 0 || !mp_need(r, 1 + (size_t)w)) {
      r->bad = true;
      return false;
    }
    len = (uint32_t)mp_be(r->p + 1, w);
    r->p += 1 + w;
  }
  if (!mp_need(r, len))
    return false;
  *s = (const char *)r->p;
  *n = len;
  r->p += len;
  return true;
}

static inline bool mp_get_bool(mp_rd_t *r, bool *v) {
  if (!mp_need(r, 1))
    return false;
  if (*r->p != 0xc2 && *r->p != 0xc3) {
    r->bad = true;
    return false;
  }
  *v = *r->p == 0xc3;
  r->p++;
  return true;
}

/* Skips one element of any type, nesting at most depth deep. */
static inline bool mp_skip(mp_rd_t *r, int depth) {
  if (!mp_need(r, 1) || depth <= 0) {
    r->bad = true;
    return false;
  }
  uint8_t m = *r->p;
  uint32_t n;
  if (m < 0x80 || m >= 0xe0 || m == 0xc0 || m == 0xc2 || m == 0xc3) {
    r->p++;
    return true;
  }
  if ((m & 0xf0) == 0x90 || m == 0xdc || m == 0xdd) {
    if (!mp_get_array(r, &n))
      return false;
    for (uint32_t i = 0; i < n; i++)
      if (!mp_skip(r, depth - 1))
        return false;
    return true;
  }
  if ((m & 0xf0) == 0x80 || m == 0xde || m == 0xdf) {
    if (!mp_get_map(r, &n))
      return false;
    for (uint32_t i = 0; i < 2 * n; i++)
      if (!mp_skip(r, depth - 1))
        return false;
    return true;
  }
  if ((m & 0xe0) == 0xa0 || m == 0xd9 || m == 0xda || m == 0xdb) {
    const char *s;
    return mp_get_str(r, &s, &n, false);
  }
  if (m == 0xc4 || m == 0xc5 || m == 0xc6) {
    int w = m == 0xc4 ? 1 : m == 0xc5 ? 2 : 4;
    if (!mp_need(r, 1 + (size_t)w))
      return false;
    uint64_t len = mp_be(r->p + 1, w);
    r->p += 1 + w;
    if (!mp_need(r, len))
      return false;
    r->p += len;
    return true;
  }
  static const uint8_t fixed[][2] = {{0xcc, 1}, {0xcd, 2}, {0xce, 4}, {0xcf, 8},
                                     {0xd0, 1}, {0xd1, 2}, {0xd2, 4}, {0xd3, 8},
                                     {0xca, 4}, {0xcb, 8}};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    if (m == fixed[i][0]) {
      if (!mp_need(r, 1 + (size_t)fixed[i][1]))
        return false;
      r->p += 1 + fixed[i][1];
      return true;
    }
  }
  r->bad = true; /* ext types: not in the route protocol */
  return false;
}

static inline bool mp_key_is(const char *k, uint32_t n, const char *want) {
  return strlen(want) == n && memcmp(k, want, n) == 0;
}

#endif
