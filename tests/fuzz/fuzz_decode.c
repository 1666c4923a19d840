/*
 * Fuzz target: tp_frame_decode on the whole input as one frame body (the L
 * bytes after a length prefix).
 *
 * Properties: an error is one of the documented codes and has a reason; an
 * accepted frame meets the decoder's postconditions and survives the round
 * trip; since msgpack is self-delimiting, the body with its last byte cut
 * off or one byte appended is always refused; and a decoder reused for
 * another frame decodes the first one the same way again; and the fast path
 * for plain PUB and MSG agrees with the general decoder.
 */
#include <stdlib.h>
#include <string.h>

#include "frame_check.h"
#include "proto_internal.h"
#include "tern_proto/errors.h"
#include "tern_proto/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expect_refused(tp_decoder_t *d, const uint8_t *body, size_t len,
                           const char *what) {
  tp_frame_t f;
  int rc = tp_frame_decode(d, body, len, &f);
  if (rc == 0)
    fc_fail("decoder accepted the body %s", what);
  if (!fc_decode_err_ok(rc))
    fc_fail("undocumented error %d for the body %s", rc, what);
}

/*
 * The fast path for plain PUB and MSG (frame_hot.c) may only ever decline:
 * whatever it accepts, the general decoder decodes to the same frame, and
 * every input gets the same result code from both.
 */
static void check_same_as_general(const uint8_t *data, size_t size, int rc,
                                  const tp_frame_t *f) {
  tp_decoder_t *g = NULL;
  if (tp_decoder_create(&g) != 0)
    fc_fail("out of memory creating decoder");
  tp_frame_t gf;
  int grc = tp__frame_decode_general(g, data, size, &gf);
  if (grc != rc)
    fc_fail("tp_frame_decode returned %d, the general decoder %d", rc, grc);
  if (rc == 0) {
    const char *diff = fc_frame_diff(f, &gf, false);
    if (diff != NULL)
      fc_fail("the fast path decoded %s unlike the general decoder", diff);
  }
  tp_decoder_destroy(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tp_decoder_t *d = NULL;
  if (tp_decoder_create(&d) != 0)
    fc_fail("out of memory creating decoder");

  tp_frame_t f;
  int rc = tp_frame_decode(d, data, size, &f);
  check_same_as_general(data, size, rc, &f);
  if (rc != 0) {
    if (!fc_decode_err_ok(rc))
      fc_fail("tp_frame_decode returned undocumented %d", rc);
    if (tp_decoder_errmsg(d)[0] == '\0')
      fc_fail("error %d without a reason", rc);
    tp_decoder_destroy(d);
    return 0;
  }
  fc_check_decoded(&f);
  /* The decoder may vouch for a PUB topic only if it is one. */
  if (f.type == TP_PUB && f.u.pub.topic_checked &&
      tp_topic_validate(f.u.pub.topic.ptr, f.u.pub.topic.len,
                        f.u.pub.topic.len) != 0)
    fc_fail("the decoder marked an invalid PUB topic as checked");
  fc_roundtrip(&f);

  /* Copies, so ASan sees reads past the shortened or lengthened body. */
  uint8_t *copy = malloc(size + 1);
  if (copy == NULL)
    fc_fail("out of memory");
  memcpy(copy, data, size);
  expect_refused(d, copy, size - 1, "with its last byte cut off");
  copy[size] = 0xC0;
  expect_refused(d, copy, size + 1, "with a nil appended");
  free(copy);

  tp_frame_t again;
  if (tp_frame_decode(d, data, size, &again) != 0)
    fc_fail("a reused decoder refused a body it accepted before");
  const char *diff = fc_frame_diff(&f, &again, false);
  if (diff != NULL)
    fc_fail("a reused decoder decoded %s differently", diff);

  tp_decoder_destroy(d);
  return 0;
}
