/*
 * The incremental reader: byte by byte, in bulk, every frame split at every
 * offset, the max_frame check before the body, buffer growth and shrink,
 * and the sticky error.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto_test_util.h"
#include "tern_proto/reader.h"

#define MAX_FRAME (1024u * 1024u)
#define INITIAL_CAP 256u

static tp_reader_t *r;
static tp_buf_t stream;

static void setup(void) {
  cr_assert_eq(tp_reader_create(&r, MAX_FRAME, INITIAL_CAP), 0);
  tp_buf_init(&stream);
}

static void teardown(void) {
  tp_reader_destroy(r);
  tp_buf_free(&stream);
}

TestSuite(reader, .init = setup, .fini = teardown);

/* Appends PUB i (topic "t.<i>", payload of i bytes) to stream. */
static void add_pub(int i) {
  char topic[32];
  snprintf(topic, sizeof(topic), "t.%d", i);
  uint8_t *payload = malloc((size_t)i + 1);
  memset(payload, 'a' + i % 26, (size_t)i + 1);
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = pt_str(topic);
  f.u.pub.payload = pt_bytes(payload, (size_t)i);
  f.u.pub.has_ack = i % 2;
  f.u.pub.ack = (uint64_t)i;
  cr_assert_eq(tp_frame_encode(&stream, &f), 0);
  free(payload);
}

static void check_pub(const tp_frame_t *f, int i) {
  char topic[32];
  snprintf(topic, sizeof(topic), "t.%d", i);
  cr_assert_eq(f->type, TP_PUB);
  cr_assert(pt_str_eq(f->u.pub.topic, topic), "frame %d", i);
  cr_assert_eq(f->u.pub.payload.len, (uint32_t)i);
  for (int k = 0; k < i; k++)
    cr_assert_eq(f->u.pub.payload.ptr[k], 'a' + i % 26);
  cr_assert_eq(f->u.pub.has_ack, (bool)(i % 2));
}

/* Drains every complete frame; *next is the index expected next. */
static void drain(int *next) {
  tp_frame_t f;
  int rc;
  while ((rc = tp_reader_next(r, &f)) == 1)
    check_pub(&f, (*next)++);
  cr_assert_eq(rc, 0, "reader error %d: %s", rc, tp_reader_errmsg(r));
}

/* Feeds through the space/commit interface, n bytes at a time at most. */
static void feed_via_space(const uint8_t *p, size_t len, size_t chunk,
                           int *next) {
  size_t off = 0;
  while (off < len) {
    uint8_t *dst;
    size_t room;
    cr_assert_eq(tp_reader_space(r, &dst, &room), 0);
    cr_assert_gt(room, 0);
    size_t n = len - off;
    if (n > room)
      n = room;
    if (n > chunk)
      n = chunk;
    memcpy(dst, p + off, n);
    tp_reader_commit(r, n);
    off += n;
    drain(next);
  }
}

Test(reader, byte_by_byte) {
  for (int i = 0; i < 50; i++)
    add_pub(i);
  int next = 0;
  feed_via_space(stream.data, stream.len, 1, &next);
  cr_assert_eq(next, 50);
  cr_assert_eq(tp_reader_pending(r), 0);
}

Test(reader, bulk_many_frames_in_one_feed) {
  for (int i = 0; i < 300; i++)
    add_pub(i);
  cr_assert_eq(tp_reader_feed(r, stream.data, stream.len), 0);
  int next = 0;
  drain(&next);
  cr_assert_eq(next, 300);
  cr_assert_eq(tp_reader_pending(r), 0);
  /* The bulk feed needed a big buffer; empty again, it is given back. */
  tp_frame_t f;
  cr_assert_eq(tp_reader_next(r, &f), 0);
  cr_assert_eq(tp_reader_capacity(r), INITIAL_CAP);
}

Test(reader, odd_chunks_through_space) {
  for (int i = 0; i < 200; i++)
    add_pub(i * 7 % 500);
  int next = 0;
  size_t off = 0, chunk = 1;
  tp_frame_t f;
  int rc;
  while (off < stream.len) {
    uint8_t *dst;
    size_t room;
    cr_assert_eq(tp_reader_space(r, &dst, &room), 0);
    size_t n = stream.len - off;
    n = n < room ? n : room;
    n = n < chunk ? n : chunk;
    memcpy(dst, stream.data + off, n);
    tp_reader_commit(r, n);
    off += n;
    chunk = chunk * 3 % 1001 + 1;
    while ((rc = tp_reader_next(r, &f)) == 1)
      check_pub(&f, next++ * 7 % 500);
    cr_assert_eq(rc, 0);
  }
  cr_assert_eq(next, 200);
}

/* Two frames; the stream is cut at every offset and fed in two parts. */
Test(reader, every_split_offset) {
  add_pub(3);
  add_pub(300); /* larger than INITIAL_CAP: forces growth mid-frame */
  add_pub(0);
  for (size_t cut = 0; cut <= stream.len; cut++) {
    tp_reader_t *rr = r;
    cr_assert_eq(tp_reader_create(&r, MAX_FRAME, INITIAL_CAP), 0);
    int want[] = {3, 300, 0};
    tp_frame_t f;
    int rc, got = 0;
    cr_assert_eq(tp_reader_feed(r, stream.data, cut), 0);
    while ((rc = tp_reader_next(r, &f)) == 1)
      check_pub(&f, want[got++]);
    cr_assert_eq(rc, 0);
    cr_assert_eq(tp_reader_feed(r, stream.data + cut, stream.len - cut), 0);
    while ((rc = tp_reader_next(r, &f)) == 1)
      check_pub(&f, want[got++]);
    cr_assert_eq(rc, 0);
    cr_assert_eq(got, 3, "cut %zu", cut);
    tp_reader_destroy(r);
    r = rr;
  }
}

Test(reader, big_frame_grows_then_shrinks) {
  add_pub(5);
  add_pub(200000);
  add_pub(6);
  int next = 0;
  /* through space(), so growth is the reader's own decision */
  uint8_t *dst;
  size_t room, off = 0;
  size_t max_cap = 0;
  static const int want[] = {5, 200000, 6};
  tp_frame_t f;
  int rc;
  while (off < stream.len) {
    cr_assert_eq(tp_reader_space(r, &dst, &room), 0);
    size_t n = stream.len - off < room ? stream.len - off : room;
    memcpy(dst, stream.data + off, n);
    tp_reader_commit(r, n);
    off += n;
    while ((rc = tp_reader_next(r, &f)) == 1)
      check_pub(&f, want[next++]);
    cr_assert_eq(rc, 0);
    if (tp_reader_capacity(r) > max_cap)
      max_cap = tp_reader_capacity(r);
  }
  cr_assert_eq(next, 3);
  cr_assert_geq(max_cap, 200000);
  cr_assert_lt(max_cap, 200000 + 64, "grown to fit the frame, not more");
  cr_assert_eq(tp_reader_capacity(r), INITIAL_CAP);
}

Test(reader, too_big_rejected_on_prefix_alone) {
  /* Only the 4-byte prefix arrives: L = max_frame + 1. */
  uint32_t l = MAX_FRAME + 1;
  uint8_t prefix[4] = {(uint8_t)(l >> 24), (uint8_t)(l >> 16),
                       (uint8_t)(l >> 8), (uint8_t)l};
  tp_frame_t f;
  cr_assert_eq(tp_reader_feed(r, prefix, 3), 0);
  cr_assert_eq(tp_reader_next(r, &f), 0);
  cr_assert_eq(tp_reader_feed(r, prefix + 3, 1), 0);
  cr_assert_eq(tp_reader_next(r, &f), TP_ETOOBIG);
  cr_assert(strstr(tp_reader_errmsg(r), "exceeds max_frame") != NULL);
  cr_assert_eq(tp_reader_capacity(r), INITIAL_CAP, "nothing was allocated");
  /* sticky */
  cr_assert_eq(tp_reader_next(r, &f), TP_ETOOBIG);
  uint8_t *dst;
  size_t room;
  cr_assert_eq(tp_reader_space(r, &dst, &room), TP_ETOOBIG);
  cr_assert_eq(tp_reader_feed(r, "x", 1), TP_ETOOBIG);
}

Test(reader, max_frame_exactly_is_accepted) {
  tp_reader_t *rr = r;
  add_pub(50);
  size_t body = stream.len - 4;
  cr_assert_eq(tp_reader_create(&r, body, 64), 0);
  cr_assert_eq(tp_reader_feed(r, stream.data, stream.len), 0);
  tp_frame_t f;
  cr_assert_eq(tp_reader_next(r, &f), 1);
  check_pub(&f, 50);
  tp_reader_destroy(r);
  cr_assert_eq(tp_reader_create(&r, body - 1, 64), 0);
  cr_assert_eq(tp_reader_feed(r, stream.data, stream.len), 0);
  cr_assert_eq(tp_reader_next(r, &f), TP_ETOOBIG);
  tp_reader_destroy(r);
  r = rr;
}

Test(reader, zero_length_is_fatal) {
  tp_frame_t f;
  cr_assert_eq(tp_reader_feed(r, "\0\0\0\0\0\0\0\x02\x91\x07", 10), 0);
  cr_assert_eq(tp_reader_next(r, &f), TP_EPROTO);
  cr_assert_str_eq(tp_reader_errmsg(r), "zero-length frame");
  cr_assert_eq(tp_reader_next(r, &f), TP_EPROTO);
}

Test(reader, decode_error_is_sticky_after_good_frames) {
  add_pub(1);
  cr_assert_eq(tp_buf_append(&stream, "\0\0\0\x02\x91\x63", 6), 0);
  add_pub(2);
  cr_assert_eq(tp_reader_feed(r, stream.data, stream.len), 0);
  tp_frame_t f;
  cr_assert_eq(tp_reader_next(r, &f), 1);
  check_pub(&f, 1);
  cr_assert_eq(tp_reader_next(r, &f), TP_ETYPE);
  cr_assert_str_eq(tp_reader_errmsg(r), "unknown frame type 99");
  cr_assert_eq(tp_reader_next(r, &f), TP_ETYPE);
}

Test(reader, hostile_body_through_reader) {
  cr_assert_eq(tp_reader_feed(r, "\0\0\0\x07\xdd\x93\x85\x85\x85\x85\x85", 11),
               0);
  tp_frame_t f;
  cr_assert_eq(tp_reader_next(r, &f), TP_EPROTO);
  cr_assert(strstr(tp_reader_errmsg(r), "exceeds the frame") != NULL);
}

/* Space is never zero, even when the caller commits without draining. */
Test(reader, space_never_zero) {
  for (int i = 0; i < 40; i++)
    add_pub(i);
  size_t off = 0;
  while (off < stream.len) {
    uint8_t *dst;
    size_t room;
    cr_assert_eq(tp_reader_space(r, &dst, &room), 0);
    cr_assert_gt(room, 0);
    size_t n = stream.len - off < room ? stream.len - off : room;
    memcpy(dst, stream.data + off, n);
    tp_reader_commit(r, n);
    off += n;
  }
  cr_assert_eq(tp_reader_pending(r), stream.len);
  int next = 0;
  drain(&next);
  cr_assert_eq(next, 40);
}

Test(reader, create_rejects_zero_max_frame) {
  tp_reader_t *x = NULL;
  cr_assert_eq(tp_reader_create(&x, 0, 1024), TP_EINVAL);
  cr_assert_null(x);
}
