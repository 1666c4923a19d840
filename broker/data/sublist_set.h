/*
 * A multiset of subscription pointers, private to the subject index.
 *
 * Each trie node keeps its plain subscriptions, and each queue group its
 * members, in one of these. Matching walks the dense items[] array, so it
 * stays a tight loop; add and remove are O(1) even when 100,000 connections
 * subscribe to the same pattern, because past a few items a small hash index
 * (pointer -> position) replaces the linear scan. The same pointer added
 * twice is kept once with a count of 2, and is reported twice.
 *
 * The set never dereferences or frees the pointers it holds.
 */
#ifndef TERND_SUBLIST_SET_H
#define TERND_SUBLIST_SET_H

#include <stddef.h>
#include <stdint.h>

typedef struct sublist_set {
  /* Most sets (a literal subject's subscribers) hold one subscription:
   * with cap == 0 and n == 1 it is `one` itself, inserted `total` times,
   * and the set allocates nothing. */
  union {
    void **items; /* distinct pointers, dense; then cap uint32_t counts
                     (insertions of items[i]) in the same block */
    void *one;
  };
  uint32_t *index; /* open addressing: position + 1, 0 = empty; or NULL */
  uint32_t n;      /* distinct items */
  uint32_t cap;
  uint32_t total;     /* sum of counts: what a match reports */
  uint32_t index_cap; /* power of two, or 0 */
} sublist_set_t;

/* An empty set holds no memory; a zeroed struct is an empty set too. */
void sublist_set_init(sublist_set_t *s);
/* Frees the set's arrays (not the pointers in it). */
void sublist_set_free(sublist_set_t *s);
/* 0 or TP_ENOMEM (the set is unchanged on failure). */
int sublist_set_add(sublist_set_t *s, void *sub);
/* Removes one insertion of sub: 0, or -1 when sub is not in the set. The
 * set releases its memory when it becomes empty. */
int sublist_set_del(sublist_set_t *s, void *sub);
/* Writes every insertion (s->total pointers) to dst; returns s->total. */
size_t sublist_set_expand(const sublist_set_t *s, void **dst);

#endif
