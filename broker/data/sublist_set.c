/*
 * Multiset of subscription pointers with an optional hash index
 * (see sublist_set.h).
 */
#include "data/sublist_set.h"

#include <stdlib.h>
#include <string.h>

#include "tern_proto/errors.h"

/* Up to this many distinct items a linear scan beats hashing. */
#define INDEX_MIN 8

/* The counts follow the items in their block (sublist_set.h). */
static inline uint32_t *counts_of(const sublist_set_t *s) {
  return (uint32_t *)(void *)(s->items + s->cap);
}

static size_t ptr_hash(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x;
}

void sublist_set_init(sublist_set_t *s) {
  memset(s, 0, sizeof(*s));
}

void sublist_set_free(sublist_set_t *s) {
  if (s->cap > 0)
    free(s->items); /* the counts too */
  free(s->index);
  sublist_set_init(s);
}

/* The index slot that holds sub's position, or the empty slot ending its
 * probe run (the index is at most half full, so one exists). */
static size_t index_slot(const sublist_set_t *s, const void *sub) {
  size_t mask = s->index_cap - 1;
  size_t i = ptr_hash(sub) & mask;
  while (s->index[i] != 0 && s->items[s->index[i] - 1] != sub)
    i = (i + 1) & mask;
  return i;
}

/* Position of sub in items[], or -1. */
static long locate(const sublist_set_t *s, const void *sub) {
  if (s->cap == 0)
    return s->n == 1 && s->one == sub ? 0 : -1;
  if (s->index != NULL) {
    uint32_t v = s->index[index_slot(s, sub)];
    return v != 0 ? (long)v - 1 : -1;
  }
  for (size_t i = 0; i < s->n; i++)
    if (s->items[i] == sub)
      return (long)i;
  return -1;
}

/* Builds a fresh index for items[0..n) with room for at least `want`
 * items at load one half. The old index is kept on failure. */
static int index_rebuild(sublist_set_t *s, size_t want) {
  size_t cap = 16;
  while (cap < want * 2)
    cap *= 2;
  uint32_t *idx = calloc(cap, sizeof(uint32_t));
  if (idx == NULL)
    return TP_ENOMEM;
  free(s->index);
  s->index = idx;
  s->index_cap = (uint32_t)cap;
  for (size_t p = 0; p < s->n; p++)
    s->index[index_slot(s, s->items[p])] = (uint32_t)(p + 1);
  return 0;
}

/* Backward-shift deletion of the slot holding sub, as in hashmap.c. */
static void index_del(sublist_set_t *s, const void *sub) {
  size_t mask = s->index_cap - 1;
  size_t i = index_slot(s, sub);
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (s->index[j] == 0)
      break;
    size_t home = ptr_hash(s->items[s->index[j] - 1]) & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      s->index[i] = s->index[j];
      i = j;
    }
  }
  s->index[i] = 0;
}

int sublist_set_add(sublist_set_t *s, void *sub) {
  long pos = locate(s, sub);
  if (pos >= 0) {
    if (s->cap > 0)
      counts_of(s)[pos]++;
    s->total++;
    return 0;
  }
  if (s->n == 0) {
    s->one = sub;
    s->n = 1;
    s->total = 1;
    return 0;
  }
  if (s->cap == 0) {
    /* A second item: the single one moves into an array. */
    void **items = malloc(2 * (sizeof(*items) + sizeof(uint32_t)));
    if (items == NULL)
      return TP_ENOMEM;
    items[0] = s->one;
    ((uint32_t *)(void *)(items + 2))[0] = s->total;
    s->items = items;
    s->cap = 2;
  }
  if (s->n == s->cap) {
    /* items and counts share one block: one allocation per set instead
     * of two. */
    if (s->cap > UINT32_MAX / 2)
      return TP_ENOMEM;
    uint32_t cap = s->cap * 2;
    void **items = malloc(cap * (sizeof(*items) + sizeof(uint32_t)));
    if (items == NULL)
      return TP_ENOMEM;
    memcpy(items, s->items, s->n * sizeof(*items));
    memcpy(items + cap, counts_of(s), s->n * sizeof(uint32_t));
    free(s->items);
    s->items = items;
    s->cap = cap;
  }
  size_t n1 = s->n + 1;
  if (n1 > INDEX_MIN && n1 * 2 > s->index_cap) {
    if (index_rebuild(s, n1 * 2) < 0)
      return TP_ENOMEM;
  }
  s->items[s->n] = sub;
  counts_of(s)[s->n] = 1;
  s->n = (uint32_t)n1;
  s->total++;
  if (s->index != NULL)
    s->index[index_slot(s, sub)] = (uint32_t)n1;
  return 0;
}

/*
 * Drops one insertion; the last insertion of a pointer takes its item out
 * by moving the final item into the hole, so the array stays dense and the
 * moved item's index slot is repointed.
 */
int sublist_set_del(sublist_set_t *s, void *sub) {
  long lpos = locate(s, sub);
  if (lpos < 0)
    return -1;
  size_t pos = (size_t)lpos;
  s->total--;
  if (s->cap == 0) {
    if (s->total == 0)
      sublist_set_init(s);
    return 0;
  }
  if (--counts_of(s)[pos] > 0)
    return 0;
  size_t last = s->n - 1;
  if (s->index != NULL)
    index_del(s, sub);
  if (pos != last) {
    s->items[pos] = s->items[last];
    counts_of(s)[pos] = counts_of(s)[last];
    if (s->index != NULL)
      s->index[index_slot(s, s->items[pos])] = (uint32_t)(pos + 1);
  }
  s->n = last;
  if (s->n == 0)
    sublist_set_free(s);
  return 0;
}

size_t sublist_set_expand(const sublist_set_t *s, void **dst) {
  size_t k = 0;
  if (s->cap == 0) {
    for (; k < s->total; k++)
      dst[k] = s->one;
    return k;
  }
  for (size_t i = 0; i < s->n; i++)
    for (uint32_t c = 0; c < counts_of(s)[i]; c++)
      dst[k++] = s->items[i];
  return k;
}
