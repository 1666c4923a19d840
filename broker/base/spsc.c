/*
 * The single-producer single-consumer queue (see spsc.h).
 */
#include "base/spsc.h"

#include <stdlib.h>

static spsc_seg_t *seg_new(size_t item_size) {
  spsc_seg_t *s = malloc(sizeof *s + SPSC_SEG * item_size);
  if (s != NULL)
    s->next = NULL;
  return s;
}

int spsc_init(spsc_t *q, size_t item_size) {
  q->item_size = item_size;
  spsc_seg_t *s = seg_new(item_size);
  if (s == NULL)
    return -1;
  q->tail_seg = q->reclaim_seg = q->head_seg = s;
  q->tail = q->reclaimed = q->head = 0;
  atomic_init(&q->published, 0);
  atomic_init(&q->written, 0);
  atomic_init(&q->consumed, 0);
  return 0;
}

void spsc_free(spsc_t *q) {
  spsc_seg_t *s = q->reclaim_seg;
  while (s != NULL) {
    spsc_seg_t *next = s->next;
    free(s);
    s = next;
  }
  q->tail_seg = q->reclaim_seg = q->head_seg = NULL;
}

void *spsc_push(spsc_t *q) {
  uint64_t at = q->tail % SPSC_SEG;
  if (at == 0 && q->tail != 0) {
    /* The tail segment is full: link a new one. The consumer reads `next`
     * only after the release store that publishes an item in it. */
    spsc_seg_t *s = seg_new(q->item_size);
    if (s == NULL)
      return NULL;
    q->tail_seg->next = s;
    q->tail_seg = s;
  }
  q->tail++;
  return q->tail_seg->items + at * q->item_size;
}

void *spsc_pop(spsc_t *q) {
  if (q->head == atomic_load_explicit(&q->published, memory_order_acquire))
    return NULL;
  uint64_t at = q->head % SPSC_SEG;
  if (at == 0 && q->head != 0)
    q->head_seg = q->head_seg->next;
  q->head++;
  return q->head_seg->items + at * q->item_size;
}

void spsc_reclaim(spsc_t *q, void (*fn)(void *item, void *ud), void *ud) {
  uint64_t done = atomic_load_explicit(&q->consumed, memory_order_acquire);
  while (q->reclaimed < done) {
    uint64_t at = q->reclaimed % SPSC_SEG;
    if (at == 0 && q->reclaimed != 0) {
      /* The consumer popped an item past this segment, so it has moved
       * to the next one: this one is nobody's now. */
      spsc_seg_t *old = q->reclaim_seg;
      q->reclaim_seg = old->next;
      free(old);
    }
    if (fn != NULL)
      fn(q->reclaim_seg->items + at * q->item_size, ud);
    q->reclaimed++;
  }
}
