/*
 * A single-producer single-consumer queue without locks: one thread
 * pushes, one other thread pops, neither ever waits.
 *
 * Unbounded: items sit in segments of SPSC_SEG items linked in order. The
 * producer writes items into its tail segment and makes them visible in
 * batches (spsc_publish, one release store); the consumer reads up to the
 * published tail (one acquire load) and tells how far it got
 * (spsc_consumed, one release store). The producer reclaims what was
 * consumed (spsc_reclaim): it sees each consumed item once more (to drop
 * what it holds for it, e.g. a message body's reference) and frees the
 * segments the consumer has left. So memory is allocated and freed by the
 * producer only, and an item's contents stay valid until the consumer has
 * moved past it.
 *
 * Items are fixed-size (item_size bytes, given at creation).
 */
#ifndef TERND_SPSC_H
#define TERND_SPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPSC_SEG 256u

typedef struct spsc_seg {
  struct spsc_seg *next;
  _Alignas(16) unsigned char items[];
} spsc_seg_t;

typedef struct spsc {
  size_t item_size;
  /* The producer's side. */
  _Alignas(64) spsc_seg_t *tail_seg; /* where the next item goes */
  uint64_t tail;                     /* items written (published or not) */
  spsc_seg_t *reclaim_seg;           /* oldest segment not freed */
  uint64_t reclaimed;                /* items seen by spsc_reclaim */
  /* Shared. */
  _Alignas(64) _Atomic uint64_t published; /* items the consumer may read */
  _Atomic uint64_t written; /* items written (spsc_mark_written): the
                               consumer may not read them yet, but may
                               know they exist */
  _Alignas(64) _Atomic uint64_t consumed;  /* items the consumer is done with */
  /* The consumer's side. */
  _Alignas(64) spsc_seg_t *head_seg;
  uint64_t head;
} spsc_t;

/* 0 or -1 (out of memory). */
int spsc_init(spsc_t *q, size_t item_size);
/* Frees every segment; the caller has reclaimed what it needs. */
void spsc_free(spsc_t *q);

/* A slot for the next item (written by the producer), or NULL when out
 * of memory. Not visible to the consumer until spsc_publish. */
void *spsc_push(spsc_t *q);
/* Makes every item pushed so far visible. True when there was any new. */
static inline bool spsc_publish(spsc_t *q) {
  if (atomic_load_explicit(&q->published, memory_order_relaxed) == q->tail)
    return false;
  atomic_store_explicit(&q->published, q->tail, memory_order_release);
  return true;
}

/* Tells the consumer that every item pushed so far exists (without letting
 * it read them: spsc_publish does). */
static inline void spsc_mark_written(spsc_t *q) {
  atomic_store_explicit(&q->written, q->tail, memory_order_release);
}
/* The consumer: how many items exist (marked written or published). */
static inline uint64_t spsc_written(spsc_t *q) {
  uint64_t w = atomic_load_explicit(&q->written, memory_order_acquire);
  uint64_t p = atomic_load_explicit(&q->published, memory_order_acquire);
  return w > p ? w : p;
}
/* The consumer: items it is done with. */
static inline uint64_t spsc_head(const spsc_t *q) {
  return q->head;
}

/* The consumer: the next published item, or NULL. Valid until
 * spsc_consumed. */
void *spsc_pop(spsc_t *q);
/* The consumer is done with every item popped so far. */
static inline void spsc_consumed(spsc_t *q) {
  atomic_store_explicit(&q->consumed, q->head, memory_order_release);
}

/* The producer: calls fn(item, ud) on each item consumed since the last
 * call and frees the segments left behind. */
void spsc_reclaim(spsc_t *q, void (*fn)(void *item, void *ud), void *ud);
/* Items pushed and not yet reclaimed (the producer's view). */
static inline uint64_t spsc_unreclaimed(const spsc_t *q) {
  return q->tail - q->reclaimed;
}

#endif
