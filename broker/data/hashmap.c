/*
 * Open-addressing hash map with borrowed byte-string keys (see hashmap.h).
 */
#include "data/hashmap.h"

#include <pthread.h>
#include <sodium.h>
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

/*
 * The key of every map's hash: random, drawn once per process by the first
 * hashmap_create (pthread_once, so loops on several threads may race to
 * it), never written again, so any thread may read it afterwards.
 */
static uint8_t hash_key[crypto_shorthash_siphash24_KEYBYTES];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void) {
  /* Safe to call more than once and from any thread; ternd's main has
   * called it already (and refuses to start when it fails). */
  if (sodium_init() < 0)
    abort();
  randombytes_buf(hash_key, sizeof hash_key);
}

/*
 * SipHash-2-4 with the process's random key (libsodium's shorthash). The
 * keys are client-chosen (topic tokens, whole topics, subscription ids),
 * so an unkeyed hash lets a client pick thousands of keys with one home
 * slot and turn every lookup into a walk of all of them; with a secret
 * key it cannot tell which keys collide.
 */
static uint64_t hash_keyed(const void *key, size_t len) {
  unsigned char out[crypto_shorthash_siphash24_BYTES];
  crypto_shorthash_siphash24(out, key, len, hash_key);
  uint64_t h;
  memcpy(&h, out, sizeof h);
  return h;
}

uint64_t hashmap_hash(const void *key, size_t len) {
  pthread_once(&hash_key_once, hash_key_init);
  return hash_keyed(key, len);
}

static size_t cap_for(size_t n) {
  size_t cap = MIN_CAP;
  /* keep the load at or below 3/4 */
  while (cap - cap / 4 < n)
    cap *= 2;
  return cap;
}

int hashmap_create(hashmap_t **out, size_t hint) {
  pthread_once(&hash_key_once, hash_key_init);
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
  uint32_t h = (uint32_t)hash_keyed(key, klen);
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
  uint32_t h = (uint32_t)hash_keyed(key, klen);
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
  uint32_t h = (uint32_t)hash_keyed(key, klen);
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

void hashmap_probes_add(const hashmap_t *m, hashmap_probes_t *acc) {
  size_t mask = m->cap - 1;
  for (size_t i = 0; i < m->cap; i++) {
    if (m->slots[i].key == NULL)
      continue;
    size_t d = (i - (m->slots[i].hash & mask)) & mask;
    acc->entries++;
    acc->total += d;
    if (d > acc->longest)
      acc->longest = d;
  }
}
