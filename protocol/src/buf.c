/*
 * tp_buf_t: a growable byte buffer that owns its bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "tern_proto/buf.h"
#include "tern_proto/errors.h"

void tp_buf_init(tp_buf_t *b) {
  memset(b, 0, sizeof(*b));
}

void tp_buf_free(tp_buf_t *b) {
  free(b->data);
  memset(b, 0, sizeof(*b));
}

/*
 * Grows by doubling (from 64 bytes) so that a run of small appends costs
 * amortised O(1); a single large request is met exactly.
 */
int tp_buf_reserve(tp_buf_t *b, size_t extra) {
  if (extra <= b->cap - b->len)
    return 0;
  if (extra > SIZE_MAX - b->len)
    return TP_ENOMEM;
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  uint8_t *p = realloc(b->data, cap);
  if (p == NULL)
    return TP_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int tp_buf_append(tp_buf_t *b, const void *p, size_t n) {
  if (n == 0)
    return 0;
  int rc = tp_buf_reserve(b, n);
  if (rc != 0)
    return rc;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}
