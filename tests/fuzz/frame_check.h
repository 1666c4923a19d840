/*
 * Properties shared by the fuzz targets: frame equality, the encode/decode
 * round trip and an independent UTF-8 check. Every check that fails prints
 * what differed and calls abort(), which libFuzzer and ctest both see as a
 * crash.
 */
#ifndef TERN_FUZZ_FRAME_CHECK_H
#define TERN_FUZZ_FRAME_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern_proto/frame.h"

/* Prints "fuzz property failed: <why>" and aborts. */
_Noreturn void fc_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * NULL when a and b are the same frame, else the name of the first field
 * that differs. With hello_loose, an absent HELLO server/server_id equals a
 * present empty one: the encoder always sends all seven HELLO keys, so an
 * absent string legitimately comes back as "".
 */
const char *fc_frame_diff(const tp_frame_t *a, const tp_frame_t *b,
                          bool hello_loose);

/*
 * The decoder's postconditions on a frame it accepted: a known type, strict
 * UTF-8 in every string, headers that iterate to exactly count pairs.
 */
void fc_check_decoded(const tp_frame_t *f);

/*
 * Encodes f, decodes the result, and requires the same frame back; then
 * encodes that frame again and requires the same bytes (the encoding of a
 * decoded frame is canonical).
 */
void fc_roundtrip(const tp_frame_t *f);

/* Strict UTF-8 written independently of the library's table-driven one. */
bool fc_utf8_ok(const uint8_t *s, size_t len);

/* Whether a decode error code is one tp_frame_decode documents. */
bool fc_decode_err_ok(int rc);

#endif
