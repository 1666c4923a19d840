/*
 * Private helpers shared by the protocol library's source files: the bounded
 * msgpack walker (msgpack_guard.c) and UTF-8 validation (utf8.c). Not
 * installed; the broker and the client never see these names.
 */
#ifndef TERN_PROTO_INTERNAL_H
#define TERN_PROTO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern_proto/frame.h"

/* Deepest container nesting accepted; the frame's own array is level 1. */
#define TP_MP_MAX_DEPTH 32

/* The shape of one msgpack object header. */
typedef struct tp_mp_head {
  uint8_t kind;      /* TP_MP_* below */
  size_t hdr;        /* bytes of the header (type byte, length, ext type) */
  uint64_t payload;  /* bytes that follow the header (str/bin/ext/scalars) */
  uint64_t children; /* objects that follow (array n, map 2n) */
} tp_mp_head_t;

enum {
  TP_MP_SCALAR = 0, /* nil, bool, int, float */
  TP_MP_STR = 1,
  TP_MP_BIN = 2,
  TP_MP_EXT = 3,
  TP_MP_ARRAY = 4,
  TP_MP_MAP = 5
};

/* Parses the header at p. 0, or -1 when truncated or on byte 0xc1. */
int tp__mp_head(const uint8_t *p, size_t avail, tp_mp_head_t *h);

/*
 * Checks that body is exactly one msgpack array whose every declared length
 * fits in the bytes that remain, nested at most TP_MP_MAX_DEPTH deep.
 * 0, or TP_EPROTO with *why set to a static reason.
 */
int tp__mp_guard(const uint8_t *body, size_t len, const char **why);

/* Size of the whole object at p (header, payload, children); 0 if malformed. */
size_t tp__mp_skip(const uint8_t *p, size_t avail);

/*
 * In an already guarded body (one array), finds element elem of the array;
 * when key != NULL that element must be a map and the value of key is
 * located instead. 0 with off and size set, or -1 when not found.
 */
int tp__mp_locate(const uint8_t *body, size_t len, uint32_t elem,
                  const char *key, size_t *off, size_t *size);

/*
 * The hot frames' fast path (frame_hot.c): 1 when body is a plain
 * [3, topic, payload] or [6, sid, topic, payload] and *f holds it exactly as
 * tp__frame_decode_general would decode it (and, for a PUB, sets
 * topic_checked, which the general decoder leaves false); 0 (f may be
 * partly written) when the general decoder must handle it, errors
 * included.
 */
int tp__frame_decode_hot(const uint8_t *body, size_t len, tp_frame_t *f);
/* tp_frame_decode without the fast path (for differential tests). */
int tp__frame_decode_general(tp_decoder_t *d, const uint8_t *body, size_t len,
                             tp_frame_t *f);
/* Appends the MSG body of topic and payload without opts, canonically.
 * 0 or TP_ENOMEM. */
int tp__msg_body_encode_plain(tp_buf_t *out, tp_str_t topic,
                              tp_bytes_t payload);

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
bool tp__utf8_valid(const uint8_t *s, size_t len);

/*
 * A publish topic in printable ASCII, checked in one pass with one table
 * load per byte: the decoder runs it on every PUB topic, so that neither
 * the UTF-8 check nor tp_topic_validate has to walk it again. 1 valid
 * (then it is valid UTF-8 too), 0 invalid, -1 not ASCII (the general
 * checks decide). The length limit is not checked here.
 */
enum { TP__CH_BAD = 0, TP__CH_OK = 1, TP__CH_DOT = 2, TP__CH_HIGH = 3 };
extern const unsigned char tp__topic_class[256];
static inline int tp__topic_ascii_check(const uint8_t *s, size_t len) {
  bool empty_token = true;
  for (size_t i = 0; i < len; i++) {
    unsigned char k = tp__topic_class[s[i]];
    if (k == TP__CH_OK) {
      empty_token = false;
    } else if (k == TP__CH_DOT) {
      if (empty_token)
        return 0;
      empty_token = true;
    } else {
      return k == TP__CH_HIGH ? -1 : 0;
    }
  }
  return !empty_token;
}

#endif
