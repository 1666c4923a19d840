/*
 * Strict UTF-8 validation (RFC 3629): what msgpack `str` must hold.
 */
#include <string.h>

#include "proto_internal.h"

/*
 * Rejects overlong forms, UTF-16 surrogates (U+D800..U+DFFF) and code points
 * above U+10FFFF by narrowing the allowed range of the second byte, the way
 * the table in RFC 3629 section 4 does. NUL (0x00) is valid UTF-8 and is
 * accepted here; topic validation rejects control bytes separately.
 */
bool tp__utf8_valid(const uint8_t *s, size_t len) {
  size_t i = 0;
  /* Topics and keys are mostly ASCII: skip it eight bytes at a time. */
  while (len - i >= 8) {
    uint64_t w;
    memcpy(&w, s + i, sizeof w);
    if (w & 0x8080808080808080u)
      break;
    i += 8;
  }
  while (i < len) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0)
        lo = 0xA0;
      else if (c == 0xED)
        hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0)
        lo = 0x90;
      else if (c == 0xF4)
        hi = 0x8F;
    } else {
      return false;
    }
    if (len - i - 1 < n)
      return false;
    if (s[i + 1] < lo || s[i + 1] > hi)
      return false;
    for (size_t k = 2; k <= n; k++)
      if ((s[i + k] & 0xC0) != 0x80)
        return false;
    i += n + 1;
  }
  return true;
}
