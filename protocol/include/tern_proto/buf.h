/*
 * A growable byte buffer that owns its bytes. Encoders append to it.
 */
#ifndef TERN_PROTO_BUF_H
#define TERN_PROTO_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct tp_buf {
  uint8_t *data; /* owned; NULL when cap == 0 */
  size_t len;
  size_t cap;
} tp_buf_t;

/* A zeroed tp_buf_t is a valid empty buffer; init just zeroes it. */
void tp_buf_init(tp_buf_t *b);
/* Frees the bytes; the buffer is empty and reusable afterwards. */
void tp_buf_free(tp_buf_t *b);
/* Empties the buffer without freeing its capacity. */
static inline void tp_buf_reset(tp_buf_t *b) { b->len = 0; }
/* Makes room for extra more bytes. 0 or TP_ENOMEM. */
int tp_buf_reserve(tp_buf_t *b, size_t extra);
/* Appends n bytes. 0 or TP_ENOMEM. */
int tp_buf_append(tp_buf_t *b, const void *p, size_t n);

#endif
