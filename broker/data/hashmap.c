/*
 * Open-addressing hash map with borrowed byte-string keys (see hashmap.h).
 */
#include "data/hashmap.h"

#include <stdlib.h>
#include <string.h>

#include "tern_proto/errors.h"

/* 24 bytes a slot: the key pointer doubles as the "occupied" mark. */
typedef struct slot {
  const void *key; /* NULL: empty slot */
  void *val;
  uint32_t hash; /* low 32 bits of the full hash, to skip most memcmps */
  uint32_t klen;
} slot_t;

struct hashmap {
  slot_t *slots;
  size_t cap; /* power of two */
  size_t size;
};

#define MIN_CAP 8

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/*
 * Eight bytes per step with a multiply-rotate round, then a strong
 * finaliser. Topics are short and hashed on every uncached publish, so this
 * favours speed; it is not meant to resist chosen-key flooding (the caches
 * that use it are bounded, which caps the damage).
 */
uint64_t hashmap_hash(const void *key, size_t len) {
  const unsigned char *p = key;
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)len * 0xff51afd7ed558ccdULL);
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h ^= w * 0x87c37b91114253d5ULL;
    h = (h << 31) | (h >> 33);
    h *= 0x4cf5ad432745937fULL;
    p += 8;
    len -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, p, len);
  h ^= w * 0x87c37b91114253d5ULL;
  return mix64(h);
}

static size_t cap_for(size_t n) {
  size_t cap = MIN_CAP;
  /* keep the load at or below 3/4 */
  while (cap - cap / 4 < n)
    cap *= 2;
  return cap;
}

int hashmap_create(hashmap_t **out, size_t hint) {
  hashmap_t *m = malloc(sizeof(*m));
  if (m == NULL)
    return TP_ENOMEM;
  m->cap = cap_for(hint);
  m->size = 0;
  m->slots = calloc(m->cap, sizeof(slot_t));
  if (m->slots == NULL) {
    free(m);
    return TP_ENOMEM;
  }
  *out = m;
  return 0;
}

void hashmap_destroy(hashmap_t *m) {
  if (m == NULL)
    return;
  free(m->slots);
  free(m);
}

static int key_eq(const slot_t *s, uint32_t h, const void *key, size_t klen) {
  return s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0;
}

/* Index of the slot holding key, or of the empty slot that ends its probe
 * run. The table always has an empty slot, so this terminates. */
static size_t find_slot(const hashmap_t *m, uint32_t h, const void *key,
                        size_t klen) {
  size_t mask = m->cap - 1;
  size_t i = h & mask;
  while (m->slots[i].key != NULL && !key_eq(&m->slots[i], h, key, klen))
    i = (i + 1) & mask;
  return i;
}

void *hashmap_get(const hashmap_t *m, const void *key, size_t klen) {
  uint32_t h = (uint32_t)hashmap_hash(key, klen);
  size_t i = find_slot(m, h, key, klen);
  return m->slots[i].key != NULL ? m->slots[i].val : NULL;
}

/* Rehashes into a table of new_cap slots; the old table is kept on failure. */
static int grow(hashmap_t *m, size_t new_cap) {
  slot_t *old = m->slots;
  size_t old_cap = m->cap;
  slot_t *slots = calloc(new_cap, sizeof(slot_t));
  if (slots == NULL)
    return TP_ENOMEM;
  m->slots = slots;
  m->cap = new_cap;
  for (size_t j = 0; j < old_cap; j++) {
    if (old[j].key == NULL)
      continue;
    size_t i = old[j].hash & (new_cap - 1);
    while (slots[i].key != NULL)
      i = (i + 1) & (new_cap - 1);
    slots[i] = old[j];
  }
  free(old);
  return 0;
}

int hashmap_put(hashmap_t *m, const void *key, size_t klen, void *val) {
  uint32_t h = (uint32_t)hashmap_hash(key, klen);
  size_t i = find_slot(m, h, key, klen);
  if (m->slots[i].key != NULL) {
    m->slots[i].key = key;
    m->slots[i].val = val;
    return 0;
  }
  if (m->size + 1 > m->cap - m->cap / 4) {
    int rc = grow(m, m->cap * 2);
    if (rc < 0)
      return rc;
    i = find_slot(m, h, key, klen);
  }
  m->slots[i] = (slot_t){key, val, h, (uint32_t)klen};
  m->size++;
  return 0;
}

/*
 * Backward-shift deletion: after emptying slot i, later members of the
 * probe run are moved back into the hole whenever their home slot does not
 * lie cyclically in (i, j], so every key stays reachable without tombstones.
 */
void *hashmap_remove(hashmap_t *m, const void *key, size_t klen) {
  uint32_t h = (uint32_t)hashmap_hash(key, klen);
  size_t mask = m->cap - 1;
  size_t i = find_slot(m, h, key, klen);
  if (m->slots[i].key == NULL)
    return NULL;
  void *val = m->slots[i].val;
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (m->slots[j].key == NULL)
      break;
    size_t home = m->slots[j].hash & mask;
    /* distance from home to j versus from i to j, both cyclic */
    if (((j - home) & mask) >= ((j - i) & mask)) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i].key = NULL;
  m->size--;
  return val;
}

void hashmap_clear(hashmap_t *m) {
  memset(m->slots, 0, m->cap * sizeof(slot_t));
  m->size = 0;
}

size_t hashmap_size(const hashmap_t *m) {
  return m->size;
}

size_t hashmap_capacity(const hashmap_t *m) {
  return m->cap;
}

int hashmap_next(const hashmap_t *m, size_t *pos, const void **key,
                 size_t *klen, void **val) {
  for (size_t i = *pos; i < m->cap; i++) {
    if (m->slots[i].key == NULL)
      continue;
    if (key != NULL)
      *key = m->slots[i].key;
    if (klen != NULL)
      *klen = m->slots[i].klen;
    if (val != NULL)
      *val = m->slots[i].val;
    *pos = i + 1;
    return 1;
  }
  *pos = m->cap;
  return 0;
}
