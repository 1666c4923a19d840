/*
 * A small msgpack writer and bounded reader for the bodies of the stream
 * API (PROTOCOL.md section 8): maps of str keys to str, uint, bool, bin
 * and arrays of str. The reader never allocates and checks every declared
 * length against the bytes left, so it is safe on untrusted bodies; it
 * skips values of unknown keys with a nesting limit of 32.
 */
#ifndef TERN_PROTO_MP_H
#define TERN_PROTO_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern_proto/buf.h"
#include "tern_proto/frame.h"

/* Writers: 0 or TP_ENOMEM; each writes the smallest form. */
int tp_mp_map(tp_buf_t *b, uint32_t n);
int tp_mp_array(tp_buf_t *b, uint32_t n);
int tp_mp_str(tp_buf_t *b, const char *s, size_t len);
int tp_mp_cstr(tp_buf_t *b, const char *s); /* NUL-terminated */
int tp_mp_uint(tp_buf_t *b, uint64_t v);
int tp_mp_bool(tp_buf_t *b, bool v);
int tp_mp_nil(tp_buf_t *b);
int tp_mp_bin(tp_buf_t *b, const void *p, size_t len);
/* A key and its value in one call: the common case of a map entry. */
int tp_mp_kv_uint(tp_buf_t *b, const char *key, uint64_t v);
int tp_mp_kv_str(tp_buf_t *b, const char *key, const char *s);
int tp_mp_kv_bool(tp_buf_t *b, const char *key, bool v);

/* Reader: a cursor over [p, end). Each read returns 0 and advances, or -1
 * (wrong type, truncated) and leaves the cursor where it was. */
typedef struct tp_mp_cur {
  const uint8_t *p;
  const uint8_t *end;
} tp_mp_cur_t;

enum {
  TP_MP_T_NONE = 0,
  TP_MP_T_NIL,
  TP_MP_T_BOOL,
  TP_MP_T_UINT,
  TP_MP_T_INT, /* negative */
  TP_MP_T_FLOAT,
  TP_MP_T_STR,
  TP_MP_T_BIN,
  TP_MP_T_ARRAY,
  TP_MP_T_MAP,
  TP_MP_T_EXT
};

static inline void tp_mp_cur_init(tp_mp_cur_t *c, const void *p, size_t len) {
  c->p = p;
  c->end = c->p + len;
}
/* The type of the next value (TP_MP_T_NONE at the end or on a reserved
 * byte). */
int tp_mp_peek(const tp_mp_cur_t *c);
int tp_mp_read_map(tp_mp_cur_t *c, uint32_t *n);
int tp_mp_read_array(tp_mp_cur_t *c, uint32_t *n);
int tp_mp_read_str(tp_mp_cur_t *c, tp_str_t *s);
int tp_mp_read_bin(tp_mp_cur_t *c, tp_bytes_t *b);
int tp_mp_read_uint(tp_mp_cur_t *c, uint64_t *v);
int tp_mp_read_bool(tp_mp_cur_t *c, bool *v);
int tp_mp_read_nil(tp_mp_cur_t *c);
/* Skips one whole value, containers included (at most 32 levels). */
int tp_mp_skip(tp_mp_cur_t *c);
/* True when s equals the NUL-terminated lit. */
static inline bool tp_str_is(tp_str_t s, const char *lit) {
  size_t i = 0;
  for (; i < s.len; i++)
    if (lit[i] == '\0' || lit[i] != s.ptr[i])
      return false;
  return lit[i] == '\0';
}

#endif
