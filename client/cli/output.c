/*
 * How the tern command prints received messages (see output.h).
 */
#include "output.h"

#include <stdint.h>

/*
 * Length of the UTF-8 sequence starting at p[0] (of at most n bytes) and
 * its code point in *cp, or 0 when the bytes are not a well-formed
 * sequence. Follows the table of well-formed byte sequences in the
 * Unicode standard (section 3.9), which rules out overlong encodings and
 * surrogates by narrowing the range of the second byte.
 */
static size_t utf8_decode(const uint8_t *p, size_t n, uint32_t *cp) {
  uint8_t b = p[0];
  size_t len;
  uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  uint32_t v;
  if (b < 0x80) {
    *cp = b;
    return 1;
  }
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2;
    v = b & 0x1F;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3;
    v = b & 0x0F;
    if (b == 0xE0) {
      lo = 0xA0; /* overlong below U+0800 */
    } else if (b == 0xED) {
      hi = 0x9F; /* surrogates U+D800..U+DFFF */
    }
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4;
    v = b & 0x07;
    if (b == 0xF0) {
      lo = 0x90; /* overlong below U+10000 */
    } else if (b == 0xF4) {
      hi = 0x8F; /* above U+10FFFF */
    }
  } else {
    return 0;
  }
  if (n < len || p[1] < lo || p[1] > hi) {
    return 0;
  }
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) {
      return 0;
    }
    v = (v << 6) | (p[i] & 0x3F);
  }
  *cp = v;
  return len;
}

static bool is_control(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

bool cli_is_text(const void *p, size_t n) {
  const uint8_t *s = p;
  size_t i = 0;
  while (i < n) {
    uint32_t cp;
    size_t len = utf8_decode(s + i, n - i, &cp);
    if (len == 0 || is_control(cp)) {
      return false;
    }
    i += len;
  }
  return true;
}

int cli_print_payload(FILE *out, const void *p, size_t n) {
  if (cli_is_text(p, n)) {
    return fwrite(p, 1, n, out) == n ? 0 : -1;
  }
  return fprintf(out, "<%zu bytes>", n) < 0 ? -1 : 0;
}

static int print_headers(FILE *out, const tern_msg_t *m) {
  size_t count = tern_msg_header_count(m);
  for (size_t i = 0; i < count; i++) {
    tern_header_t h;
    if (tern_msg_header(m, i, &h) != 0) {
      continue;
    }
    if (fputs("  ", out) < 0 || cli_print_payload(out, h.key, h.key_len) ||
        fputs(": ", out) < 0 ||
        cli_print_payload(out, h.value, h.value_len) != 0 ||
        fputc('\n', out) == EOF) {
      return -1;
    }
  }
  return 0;
}

int cli_print_msg(FILE *out, uint64_t seq, const tern_msg_t *m,
                  cli_format_t fmt) {
  const void *data = tern_msg_data(m);
  size_t len = tern_msg_len(m);
  if (fmt == CLI_FORMAT_RAW) {
    if (fwrite(data, 1, len, out) != len || fputc('\n', out) == EOF) {
      return -1;
    }
  } else {
    if (fprintf(out, "[#%llu] %s%s: ", (unsigned long long)seq,
                tern_msg_topic(m),
                tern_msg_retained(m) ? " (retained)" : "") < 0 ||
        cli_print_payload(out, data, len) != 0 || fputc('\n', out) == EOF) {
      return -1;
    }
    if (fmt == CLI_FORMAT_HEADERS && print_headers(out, m) != 0) {
      return -1;
    }
  }
  return fflush(out) == 0 ? 0 : -1;
}
