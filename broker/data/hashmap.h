/*
 * A hash map from byte-string keys to pointers, for the broker's indexes.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), so lookups stay short however much the map churns.
 *
 * Ownership: the map owns only its slot array. Keys are BORROWED: the bytes
 * a key points to must stay valid and unchanged while the entry is in the
 * map (store the key inside the value, as the subject index does). Values
 * are never freed by the map, and must be non-NULL (NULL means "absent").
 *
 * Keys may be chosen by clients: the hash is keyed with a random key per
 * process (see hashmap_hash), so nobody can choose keys that collide.
 *
 * Not thread-safe; one loop owns each map. The hash's key is set once, by
 * the first hashmap_create, and only read after that, from any thread.
 */
#ifndef TERND_HASHMAP_H
#define TERND_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hashmap hashmap_t;

/* An empty map with room for `hint` entries before it grows (0: small).
 * 0 or TP_ENOMEM. */
int hashmap_create(hashmap_t **out, size_t hint);
/* Frees the slot array only: neither keys nor values. NULL is a no-op. */
void hashmap_destroy(hashmap_t *m);

/* The value stored under key, or NULL. */
void *hashmap_get(const hashmap_t *m, const void *key, size_t klen);
/* Inserts or replaces (key and value both replaced). key must be non-NULL
 * and outlive the entry; val must be non-NULL. 0 or TP_ENOMEM (the map is
 * unchanged on failure). */
int hashmap_put(hashmap_t *m, const void *key, size_t klen, void *val);
/* Removes key; returns its value, or NULL when absent. */
void *hashmap_remove(hashmap_t *m, const void *key, size_t klen);
/* Removes every entry (keeps the slot array). */
void hashmap_clear(hashmap_t *m);
size_t hashmap_size(const hashmap_t *m);

/*
 * Iteration: set *pos to 0, then call until it returns 0. Each call returns
 * 1 with the first entry in a slot at or after *pos and advances *pos past
 * it; iteration ends at the table's end and does not wrap, so starting at an
 * arbitrary *pos (random eviction does) visits only the tail of the table.
 * The map must not be modified during an iteration.
 */
int hashmap_next(const hashmap_t *m, size_t *pos, const void **key,
                 size_t *klen, void **val);
/* Slot count, for choosing a random starting *pos. */
size_t hashmap_capacity(const hashmap_t *m);

/*
 * What lookups cost, for tests and diagnostics (a walk of the whole table,
 * never done on a hot path). An entry's displacement is how far it sits
 * past its home slot; finding it visits displacement + 1 slots. Adds this
 * map's entries and displacements to *acc and raises acc->longest.
 */
typedef struct hashmap_probes {
  size_t entries; /* entries seen */
  size_t total;   /* sum of their displacements */
  size_t longest; /* the largest displacement */
} hashmap_probes_t;
void hashmap_probes_add(const hashmap_t *m, hashmap_probes_t *acc);

/* The hash the map uses (exposed for other tables that want the same):
 * SipHash-2-4 keyed with a random key drawn once per process. */
uint64_t hashmap_hash(const void *key, size_t len);

#endif
