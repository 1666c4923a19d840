/*
 * Fuzz target: the incremental reader (tp_reader_t) over a byte stream that
 * arrives in pieces whose sizes the input chooses.
 *
 * Input layout: byte 0 chooses the API and the buffer shape, bytes 1-2 seed
 * the chunk sizes, the rest is the stream. Properties:
 *  - splitting never changes the result: the reader yields exactly the
 *    frames (and then the error, or the pending tail) that decoding the
 *    unsplit stream frame by frame yields;
 *  - every frame survives encode -> decode -> encode (frame_check.c);
 *  - an error is sticky, and with tp_reader_space/commit the buffer never
 *    grows past max(initial_cap, max_frame + 4): hostile prefixes cost
 *    nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame_check.h"
#include "tern_proto/errors.h"
#include "tern_proto/reader.h"

#define MAX_FRAME (64u * 1024u)
#define HEADER 3u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The unsplit reading: frames decoded in place from the input itself. */
typedef struct ref {
  tp_frame_t *frames;
  size_t n;
  int err;     /* 0, or the error the stream ends with */
  size_t tail; /* bytes of an unfinished frame at the end */
} ref_t;

static void read_reference(const uint8_t *s, size_t len, tp_decoder_t *d,
                           ref_t *ref) {
  size_t off = 0;
  memset(ref, 0, sizeof(*ref));
  /* Every frame takes at least 5 bytes, so this many slots are enough. */
  ref->frames = malloc((len / 5 + 1) * sizeof(tp_frame_t));
  if (ref->frames == NULL)
    fc_fail("out of memory");
  for (;;) {
    size_t fs = 0;
    int rc = tp_frame_size(s + off, len - off, MAX_FRAME, &fs);
    if (rc < 0) {
      ref->err = rc;
      return;
    }
    if (rc == 0 || fs > len - off)
      break;
    rc = tp_frame_decode(d, s + off + TP_LEN_PREFIX, fs - TP_LEN_PREFIX,
                         &ref->frames[ref->n]);
    if (rc < 0) {
      if (!fc_decode_err_ok(rc))
        fc_fail("tp_frame_decode returned undocumented %d", rc);
      ref->err = rc;
      return;
    }
    ref->n++;
    off += fs;
  }
  ref->tail = len - off;
}

/* xorshift32: chunk sizes from a seed the input gives. */
static uint32_t next_rand(uint32_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 17;
  *x ^= *x << 5;
  return *x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < HEADER)
    return 0;
  const bool use_space = data[0] & 1;
  /* 1..128 KiB chunk ceiling: from byte-at-a-time to whole frames. */
  const size_t max_chunk = (size_t)1 << (((data[0] >> 1) & 7) * 2 + 1);
  const size_t initial_cap = (size_t)64 << ((data[0] >> 4) & 7);
  uint32_t seed = 0x9E3779B9u ^ ((uint32_t)data[1] << 8 | data[2]);
  const uint8_t *s = data + HEADER;
  const size_t len = size - HEADER;

  tp_decoder_t *d = NULL;
  tp_reader_t *r = NULL;
  if (tp_decoder_create(&d) != 0 ||
      tp_reader_create(&r, MAX_FRAME, initial_cap) != 0)
    fc_fail("out of memory creating reader");
  ref_t ref;
  read_reference(s, len, d, &ref);

  const size_t cap_bound = initial_cap > MAX_FRAME + TP_LEN_PREFIX
                               ? initial_cap
                               : MAX_FRAME + TP_LEN_PREFIX;
  size_t pos = 0, got = 0;
  int err = 0;
  tp_frame_t f;
  while (pos < len && err == 0) {
    size_t n = 1 + next_rand(&seed) % max_chunk;
    if (n > len - pos)
      n = len - pos;
    if (use_space) {
      uint8_t *p;
      size_t room;
      if (tp_reader_space(r, &p, &room) != 0 || room == 0)
        fc_fail("tp_reader_space gave no room");
      if (n > room)
        n = room;
      memcpy(p, s + pos, n);
      tp_reader_commit(r, n);
    } else if (tp_reader_feed(r, s + pos, n) != 0) {
      fc_fail("tp_reader_feed failed before any error");
    }
    pos += n;

    int rc;
    while ((rc = tp_reader_next(r, &f)) == 1) {
      if (got >= ref.n)
        fc_fail("reader yielded frame %zu, unsplit stream has %zu", got, ref.n);
      const char *diff = fc_frame_diff(&f, &ref.frames[got], false);
      if (diff != NULL)
        fc_fail("frame %zu differs when split: %s", got, diff);
      fc_check_decoded(&f);
      fc_roundtrip(&f);
      got++;
    }
    if (rc < 0) {
      err = rc;
      if (tp_reader_next(r, &f) != rc)
        fc_fail("reader error %d is not sticky", rc);
      if (tp_reader_errmsg(r)[0] == '\0')
        fc_fail("reader error %d without a message", rc);
    }
    if (use_space && tp_reader_capacity(r) > cap_bound)
      fc_fail("reader buffer grew to %zu (bound %zu)", tp_reader_capacity(r),
              cap_bound);
  }

  if (got != ref.n || err != ref.err)
    fc_fail("split reading gave %zu frames and error %d, unsplit %zu and %d",
            got, err, ref.n, ref.err);
  if (err == 0 && tp_reader_pending(r) != ref.tail)
    fc_fail("reader holds %zu pending bytes, unsplit tail is %zu",
            tp_reader_pending(r), ref.tail);

  free(ref.frames);
  tp_reader_destroy(r);
  tp_decoder_destroy(d);
  return 0;
}
