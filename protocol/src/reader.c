/*
 * Incremental frame reader over one owned buffer.
 *
 * Layout: [0, start) consumed, [start, end) received but not yet returned,
 * [end, cap) free. Frames are decoded where they lie; the unfinished tail is
 * moved to the front only when the free space runs short, at most once per
 * read. The buffer grows only to hold a frame whose prefix has passed the
 * max_frame check, and goes back to initial_cap once it is empty again, so
 * one large message does not pin memory for the life of a connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern_proto/errors.h"
#include "tern_proto/reader.h"

/* Below this much free tail, tp_reader_space compacts first. */
#define TP_READER_MIN_SPACE 4096u
/* Smallest buffer: a prefix and a handful of small frames. */
#define TP_READER_MIN_CAP 64u

struct tp_reader {
  uint8_t *buf;
  size_t cap, initial_cap, max_frame;
  size_t start, end;
  tp_decoder_t *dec;
  int err; /* sticky: once set, every call returns it */
  char errmsg[160];
};

int tp_reader_create(tp_reader_t **out, size_t max_frame, size_t initial_cap) {
  if (max_frame == 0)
    return TP_EINVAL;
  if (initial_cap < TP_READER_MIN_CAP)
    initial_cap = TP_READER_MIN_CAP;
  tp_reader_t *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return TP_ENOMEM;
  r->buf = malloc(initial_cap);
  if (r->buf == NULL || tp_decoder_create(&r->dec) != 0) {
    free(r->buf);
    free(r);
    return TP_ENOMEM;
  }
  r->cap = r->initial_cap = initial_cap;
  r->max_frame = max_frame;
  *out = r;
  return 0;
}

void tp_reader_destroy(tp_reader_t *r) {
  if (r == NULL)
    return;
  tp_decoder_destroy(r->dec);
  free(r->buf);
  free(r);
}

static int set_error(tp_reader_t *r, int err, const char *msg) {
  r->err = err;
  snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg);
  return err;
}

/* Moves the unread bytes to the front of the buffer. */
static void compact(tp_reader_t *r) {
  if (r->start == 0)
    return;
  size_t n = r->end - r->start;
  if (n > 0)
    memmove(r->buf, r->buf + r->start, n);
  r->start = 0;
  r->end = n;
}

/*
 * Replaces the buffer by one of exactly cap bytes holding the unread bytes
 * at its front (cap >= unread). Used both to grow and to shrink.
 */
static int resize(tp_reader_t *r, size_t cap) {
  compact(r);
  uint8_t *p = realloc(r->buf, cap);
  if (p == NULL)
    return set_error(r, TP_ENOMEM, "out of memory growing the read buffer");
  r->buf = p;
  r->cap = cap;
  return 0;
}

int tp_reader_space(tp_reader_t *r, uint8_t **ptr, size_t *len) {
  if (r->err != 0)
    return r->err;
  if (r->start == r->end)
    r->start = r->end = 0;
  size_t low =
      r->cap / 8 < TP_READER_MIN_SPACE ? r->cap / 8 : TP_READER_MIN_SPACE;
  if (r->cap - r->end <= low)
    compact(r);
  /* Full of bytes the caller has not asked for yet: make room anyway. */
  if (r->end == r->cap) {
    int rc = resize(r, r->cap * 2);
    if (rc != 0)
      return rc;
  }
  *ptr = r->buf + r->end;
  *len = r->cap - r->end;
  return 0;
}

void tp_reader_commit(tp_reader_t *r, size_t n) {
  if (n > r->cap - r->end)
    n = r->cap - r->end;
  r->end += n;
}

/*
 * For callers that hold the bytes elsewhere: all n bytes are taken in, so
 * the buffer may have to hold more than one frame until next drains it.
 */
int tp_reader_feed(tp_reader_t *r, const void *data, size_t n) {
  if (r->err != 0)
    return r->err;
  if (n == 0)
    return 0;
  if (n > r->cap - r->end) {
    compact(r);
    if (n > r->cap - r->end) {
      size_t need = r->end + n, cap = r->cap;
      while (cap < need)
        cap *= 2;
      int rc = resize(r, cap);
      if (rc != 0)
        return rc;
    }
  }
  memcpy(r->buf + r->end, data, n);
  r->end += n;
  return 0;
}

/*
 * Called when no whole frame is buffered: gives back memory after a large
 * frame, and makes sure the frame being received (need bytes, or just its
 * prefix when need == 0) will fit, moving the tail at most once.
 */
static int prepare_tail(tp_reader_t *r, size_t need) {
  size_t unread = r->end - r->start;
  if (unread == 0) {
    r->start = r->end = 0;
    if (r->cap > r->initial_cap)
      return resize(r, r->initial_cap);
    return 0;
  }
  if (need < TP_LEN_PREFIX)
    need = TP_LEN_PREFIX;
  if (need > r->cap)
    return resize(r, need > r->initial_cap ? need : r->initial_cap);
  if (r->start + need > r->cap)
    compact(r);
  return 0;
}

int tp_reader_next(tp_reader_t *r, tp_frame_t *f) {
  if (r->err != 0)
    return r->err;
  size_t size = 0;
  int rc = tp_frame_next(r->dec, r->buf + r->start, r->end - r->start,
                         r->max_frame, f, &size);
  if (rc < 0)
    return set_error(r, rc, tp_decoder_errmsg(r->dec));
  if (rc == 0) {
    rc = prepare_tail(r, size);
    return rc < 0 ? rc : 0;
  }
  r->start += size;
  return 1;
}

const char *tp_reader_errmsg(const tp_reader_t *r) {
  return r->errmsg;
}

size_t tp_reader_pending(const tp_reader_t *r) {
  return r->end - r->start;
}

size_t tp_reader_capacity(const tp_reader_t *r) {
  return r->cap;
}
