/*
 * The stream API's msgpack writer and bounded reader (tern_proto/mp.h).
 */
#include "tern_proto/mp.h"

#include <string.h>

#include "tern_proto/errors.h"

static int put(tp_buf_t *b, const uint8_t *p, size_t n) {
  return tp_buf_append(b, p, n);
}

static int put_head(tp_buf_t *b, uint8_t tag, uint64_t v, int bytes) {
  uint8_t h[9];
  h[0] = tag;
  for (int i = 0; i < bytes; i++)
    h[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
  return put(b, h, (size_t)bytes + 1);
}

static int container(tp_buf_t *b, uint32_t n, uint8_t fix, uint8_t t16,
                     uint8_t t32) {
  if (n < 16) {
    uint8_t h = (uint8_t)(fix | n);
    return put(b, &h, 1);
  }
  if (n <= 0xffff)
    return put_head(b, t16, n, 2);
  return put_head(b, t32, n, 4);
}

int tp_mp_map(tp_buf_t *b, uint32_t n) {
  return container(b, n, 0x80, 0xde, 0xdf);
}
int tp_mp_array(tp_buf_t *b, uint32_t n) {
  return container(b, n, 0x90, 0xdc, 0xdd);
}

int tp_mp_str(tp_buf_t *b, const char *s, size_t len) {
  int rc;
  if (len > UINT32_MAX)
    return TP_EINVAL;
  if (len < 32) {
    uint8_t h = (uint8_t)(0xa0 | len);
    rc = put(b, &h, 1);
  } else if (len <= 0xff) {
    rc = put_head(b, 0xd9, len, 1);
  } else if (len <= 0xffff) {
    rc = put_head(b, 0xda, len, 2);
  } else {
    rc = put_head(b, 0xdb, len, 4);
  }
  return rc != 0 ? rc : put(b, (const uint8_t *)s, len);
}

int tp_mp_cstr(tp_buf_t *b, const char *s) {
  return tp_mp_str(b, s, strlen(s));
}

int tp_mp_uint(tp_buf_t *b, uint64_t v) {
  if (v < 128) {
    uint8_t h = (uint8_t)v;
    return put(b, &h, 1);
  }
  if (v <= 0xff)
    return put_head(b, 0xcc, v, 1);
  if (v <= 0xffff)
    return put_head(b, 0xcd, v, 2);
  if (v <= 0xffffffffu)
    return put_head(b, 0xce, v, 4);
  return put_head(b, 0xcf, v, 8);
}

int tp_mp_bool(tp_buf_t *b, bool v) {
  uint8_t h = v ? 0xc3 : 0xc2;
  return put(b, &h, 1);
}

int tp_mp_nil(tp_buf_t *b) {
  uint8_t h = 0xc0;
  return put(b, &h, 1);
}

int tp_mp_bin(tp_buf_t *b, const void *p, size_t len) {
  int rc;
  if (len > UINT32_MAX)
    return TP_EINVAL;
  if (len <= 0xff)
    rc = put_head(b, 0xc4, len, 1);
  else if (len <= 0xffff)
    rc = put_head(b, 0xc5, len, 2);
  else
    rc = put_head(b, 0xc6, len, 4);
  return rc != 0 ? rc : put(b, p, len);
}

int tp_mp_kv_uint(tp_buf_t *b, const char *key, uint64_t v) {
  int rc = tp_mp_cstr(b, key);
  return rc != 0 ? rc : tp_mp_uint(b, v);
}
int tp_mp_kv_str(tp_buf_t *b, const char *key, const char *s) {
  int rc = tp_mp_cstr(b, key);
  return rc != 0 ? rc : tp_mp_cstr(b, s);
}
int tp_mp_kv_bool(tp_buf_t *b, const char *key, bool v) {
  int rc = tp_mp_cstr(b, key);
  return rc != 0 ? rc : tp_mp_bool(b, v);
}

/* Reader. */

static uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

int tp_mp_peek(const tp_mp_cur_t *c) {
  if (c->p >= c->end)
    return TP_MP_T_NONE;
  uint8_t t = *c->p;
  if (t <= 0x7f || (t >= 0xcc && t <= 0xcf))
    return TP_MP_T_UINT;
  if (t >= 0xe0 || (t >= 0xd0 && t <= 0xd3))
    return TP_MP_T_INT;
  if ((t & 0xf0) == 0x80 || t == 0xde || t == 0xdf)
    return TP_MP_T_MAP;
  if ((t & 0xf0) == 0x90 || t == 0xdc || t == 0xdd)
    return TP_MP_T_ARRAY;
  if ((t & 0xe0) == 0xa0 || (t >= 0xd9 && t <= 0xdb))
    return TP_MP_T_STR;
  if (t >= 0xc4 && t <= 0xc6)
    return TP_MP_T_BIN;
  if (t == 0xc0)
    return TP_MP_T_NIL;
  if (t == 0xc2 || t == 0xc3)
    return TP_MP_T_BOOL;
  if (t == 0xca || t == 0xcb)
    return TP_MP_T_FLOAT;
  if ((t >= 0xc7 && t <= 0xc9) || (t >= 0xd4 && t <= 0xd8))
    return TP_MP_T_EXT;
  return TP_MP_T_NONE;
}

static size_t left(const tp_mp_cur_t *c) {
  return (size_t)(c->end - c->p);
}

/* Reads a length-prefixed header: tag plus n length bytes. */
static int read_len(tp_mp_cur_t *c, int n, uint64_t *v) {
  if (left(c) < (size_t)n + 1)
    return -1;
  *v = be(c->p + 1, n);
  return 0;
}

static int read_container(tp_mp_cur_t *c, uint32_t *n, uint8_t fix, uint8_t t16,
                          uint8_t t32, uint64_t per) {
  if (left(c) < 1)
    return -1;
  uint8_t t = *c->p;
  uint64_t v;
  int hdr;
  if ((t & 0xf0) == fix) {
    v = t & 0x0f;
    hdr = 1;
  } else if (t == t16 || t == t32) {
    int lb = t == t16 ? 2 : 4;
    if (read_len(c, lb, &v) != 0)
      return -1;
    hdr = 1 + lb;
  } else {
    return -1;
  }
  /* Every element takes at least one byte. */
  if (v * per > left(c) - (size_t)hdr)
    return -1;
  c->p += hdr;
  *n = (uint32_t)v;
  return 0;
}

int tp_mp_read_map(tp_mp_cur_t *c, uint32_t *n) {
  return read_container(c, n, 0x80, 0xde, 0xdf, 2);
}
int tp_mp_read_array(tp_mp_cur_t *c, uint32_t *n) {
  return read_container(c, n, 0x90, 0xdc, 0xdd, 1);
}

static int read_blob(tp_mp_cur_t *c, bool str, const uint8_t **p,
                     uint32_t *len) {
  if (left(c) < 1)
    return -1;
  uint8_t t = *c->p;
  uint64_t v;
  int hdr;
  if (str && (t & 0xe0) == 0xa0) {
    v = t & 0x1f;
    hdr = 1;
  } else {
    int lb;
    if (str ? t == 0xd9 : t == 0xc4)
      lb = 1;
    else if (str ? t == 0xda : t == 0xc5)
      lb = 2;
    else if (str ? t == 0xdb : t == 0xc6)
      lb = 4;
    else
      return -1;
    if (read_len(c, lb, &v) != 0)
      return -1;
    hdr = 1 + lb;
  }
  if (v > left(c) - (size_t)hdr)
    return -1;
  *p = c->p + hdr;
  *len = (uint32_t)v;
  c->p += hdr + v;
  return 0;
}

int tp_mp_read_str(tp_mp_cur_t *c, tp_str_t *s) {
  const uint8_t *p;
  uint32_t len;
  if (read_blob(c, true, &p, &len) != 0)
    return -1;
  s->ptr = (const char *)p;
  s->len = len;
  return 0;
}

int tp_mp_read_bin(tp_mp_cur_t *c, tp_bytes_t *b) {
  const uint8_t *p;
  uint32_t len;
  if (read_blob(c, false, &p, &len) != 0)
    return -1;
  b->ptr = p;
  b->len = len;
  return 0;
}

int tp_mp_read_uint(tp_mp_cur_t *c, uint64_t *v) {
  if (left(c) < 1)
    return -1;
  uint8_t t = *c->p;
  if (t <= 0x7f) {
    *v = t;
    c->p++;
    return 0;
  }
  if (t < 0xcc || t > 0xcf)
    return -1;
  int n = 1 << (t - 0xcc);
  if (read_len(c, n, v) != 0)
    return -1;
  c->p += 1 + n;
  return 0;
}

int tp_mp_read_bool(tp_mp_cur_t *c, bool *v) {
  if (left(c) < 1 || (*c->p != 0xc2 && *c->p != 0xc3))
    return -1;
  *v = *c->p == 0xc3;
  c->p++;
  return 0;
}

int tp_mp_read_nil(tp_mp_cur_t *c) {
  if (left(c) < 1 || *c->p != 0xc0)
    return -1;
  c->p++;
  return 0;
}

static int skip_depth(tp_mp_cur_t *c, int depth) {
  if (depth > 32)
    return -1;
  const uint8_t *start = c->p;
  uint32_t n;
  tp_str_t s;
  tp_bytes_t b;
  uint64_t v;
  switch (tp_mp_peek(c)) {
  case TP_MP_T_NIL:
  case TP_MP_T_BOOL:
    c->p++;
    return 0;
  case TP_MP_T_UINT:
    return tp_mp_read_uint(c, &v);
  case TP_MP_T_STR:
    return tp_mp_read_str(c, &s);
  case TP_MP_T_BIN:
    return tp_mp_read_bin(c, &b);
  case TP_MP_T_INT: {
    uint8_t t = *c->p;
    size_t sz = t >= 0xe0 ? 1 : 1 + ((size_t)1 << (t - 0xd0));
    if (left(c) < sz)
      return -1;
    c->p += sz;
    return 0;
  }
  case TP_MP_T_FLOAT: {
    size_t sz = *c->p == 0xca ? 5 : 9;
    if (left(c) < sz)
      return -1;
    c->p += sz;
    return 0;
  }
  case TP_MP_T_EXT: {
    uint8_t t = *c->p;
    size_t sz;
    if (t >= 0xd4 && t <= 0xd8) {
      sz = 2 + ((size_t)1 << (t - 0xd4));
    } else {
      int lb = 1 << (t - 0xc7);
      if (read_len(c, lb, &v) != 0)
        return -1;
      sz = 2 + (size_t)lb + v;
    }
    if (left(c) < sz)
      return -1;
    c->p += sz;
    return 0;
  }
  case TP_MP_T_ARRAY:
  case TP_MP_T_MAP: {
    bool map = tp_mp_peek(c) == TP_MP_T_MAP;
    if ((map ? tp_mp_read_map(c, &n) : tp_mp_read_array(c, &n)) != 0)
      return -1;
    uint64_t items = map ? 2ull * n : n;
    for (uint64_t i = 0; i < items; i++) {
      if (skip_depth(c, depth + 1) != 0) {
        c->p = start;
        return -1;
      }
    }
    return 0;
  }
  default:
    return -1;
  }
}

int tp_mp_skip(tp_mp_cur_t *c) {
  return skip_depth(c, 1);
}
