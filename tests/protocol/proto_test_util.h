/*
 * Helpers shared by the protocol unit tests: building msgpack bodies by hand
 * (so tests can craft frames the encoder would never produce) and comparing
 * decoded views with C strings.
 */
#ifndef TERN_TESTS_PROTO_TEST_UTIL_H
#define TERN_TESTS_PROTO_TEST_UTIL_H

#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

#include "tern_proto/buf.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"

static inline tp_str_t pt_str(const char *s) {
  tp_str_t r = {s, (uint32_t)strlen(s)};
  return r;
}

static inline tp_bytes_t pt_bytes(const void *p, size_t n) {
  tp_bytes_t b = {(const uint8_t *)p, (uint32_t)n};
  return b;
}

static inline bool pt_str_eq(tp_str_t a, const char *s) {
  size_t n = strlen(s);
  return a.ptr != NULL && a.len == n && memcmp(a.ptr, s, n) == 0;
}

static inline int pt_write(void *data, const char *p, size_t n) {
  return tp_buf_append((tp_buf_t *)data, p, n);
}

/* A packer appending to b: tests pack bodies element by element. */
static inline void pt_packer(msgpack_packer *pk, tp_buf_t *b) {
  msgpack_packer_init(pk, b, pt_write);
}

static inline void pt_pack_str(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

static inline void pt_pack_bin(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_bin(pk, n);
  msgpack_pack_bin_body(pk, s, n);
}

#endif
