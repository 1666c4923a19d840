/*
 * The loop-wide read buffer and each connection's leftover bytes (see
 * readbuf.h for why).
 */
#include "data/readbuf.h"

#include <stdlib.h>
#include <string.h>

#include "tern_proto/errors.h"

/* A leftover buffer above this size is given back once it holds less
 * than half of it: one large frame does not pin memory. */
#define TAIL_KEEP_MAX 4096u
/* Smallest leftover buffer: the prefix and a small frame's start. */
#define TAIL_MIN 64u

int rx_shared_init(rx_shared_t *sh) {
  memset(sh, 0, sizeof *sh);
  sh->buf = malloc(READBUF_SHARED_SIZE);
  if (sh->buf == NULL || tp_decoder_create(&sh->dec) != 0) {
    free(sh->buf);
    sh->buf = NULL;
    return TP_ENOMEM;
  }
  sh->cap = READBUF_SHARED_SIZE;
  return 0;
}

void rx_shared_free(rx_shared_t *sh) {
  tp_decoder_destroy(sh->dec);
  free(sh->buf);
  memset(sh, 0, sizeof *sh);
}

void rx_tail_free(rx_shared_t *sh, rx_tail_t *t) {
  sh->tail_bytes -= t->cap;
  if (sh->all_tails != NULL)
    atomic_fetch_sub_explicit(sh->all_tails, t->cap, memory_order_relaxed);
  free(t->buf);
  memset(t, 0, sizeof *t);
}

/* Gives t exactly cap bytes (cap >= t->len). false when out of memory. */
static bool tail_resize(rx_shared_t *sh, rx_tail_t *t, size_t cap) {
  uint8_t *p = realloc(t->buf, cap);
  if (p == NULL)
    return false;
  sh->tail_bytes += cap - t->cap;
  if (sh->all_tails != NULL)
    atomic_fetch_add_explicit(sh->all_tails, cap - t->cap,
                              memory_order_relaxed);
  t->buf = p;
  t->cap = cap;
  return true;
}

void rx_alloc(rx_shared_t *sh, rx_tail_t *t, size_t max_frame, uv_buf_t *out) {
  size_t need = 0;
  if (tp_frame_size(t->buf, t->len, max_frame, &need) != 1)
    need = 0; /* prefix not in yet (a bad one has closed the connection) */
  if (need <= sh->cap / 2 && t->len < sh->cap / 2) {
    t->into_tail = false;
    *out = uv_buf_init((char *)sh->buf + t->len, (unsigned)(sh->cap - t->len));
    return;
  }
  /* A large frame: read its rest where it will be decoded. */
  if (need < t->len + 1)
    need = t->len + 1;
  size_t held = sh->all_tails != NULL
                    ? atomic_load_explicit(sh->all_tails, memory_order_relaxed)
                    : sh->tail_bytes;
  if (t->cap < need && sh->tail_max > 0 &&
      held - t->cap + need > sh->tail_max) {
    t->over_cap = true;
    *out = uv_buf_init(NULL, 0);
    return;
  }
  if (t->cap < need && !tail_resize(sh, t, need)) {
    *out = uv_buf_init(NULL, 0);
    return;
  }
  t->into_tail = true;
  *out = uv_buf_init((char *)t->buf + t->len, (unsigned)(t->cap - t->len));
}

void rx_received(rx_shared_t *sh, rx_tail_t *t, size_t nread,
                 const uint8_t **bytes, size_t *len) {
  if (t->into_tail) {
    t->len += nread;
    *bytes = t->buf;
    *len = t->len;
    return;
  }
  /* The read landed after the room rx_alloc left for the leftover. */
  if (t->len > 0)
    memcpy(sh->buf, t->buf, t->len);
  *bytes = sh->buf;
  *len = t->len + nread;
  t->len = 0;
}

void rx_take(rx_tail_t *t, const uint8_t **bytes, size_t *len) {
  *bytes = t->buf;
  *len = t->len;
}

int rx_keep(rx_shared_t *sh, rx_tail_t *t, const uint8_t *bytes, size_t len,
            size_t used) {
  size_t rest = len - used;
  t->into_tail = false;
  if (rest == 0) {
    rx_tail_free(sh, t);
    return 0;
  }
  if (bytes == t->buf) {
    if (used > 0)
      memmove(t->buf, t->buf + used, rest);
    t->len = rest;
    /* Only once a frame is handled: while a large one is still arriving
     * its buffer must keep the size rx_alloc gave it. */
    if (used > 0 && t->cap > TAIL_KEEP_MAX && rest < t->cap / 2)
      tail_resize(sh, t, rest); /* failing to shrink is harmless */
    return 0;
  }
  size_t want = rest < TAIL_MIN ? TAIL_MIN : rest;
  if (t->cap < rest) {
    if (!tail_resize(sh, t, want))
      return TP_ENOMEM;
  } else if (t->cap > TAIL_KEEP_MAX && want < t->cap / 2) {
    tail_resize(sh, t, want); /* failing to shrink is harmless */
  }
  memcpy(t->buf, bytes + used, rest);
  t->len = rest;
  return 0;
}
