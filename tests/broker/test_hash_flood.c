/*
 * Hash flooding (issue 16): keys chosen to collide under the broker's old,
 * unkeyed table hash must not turn lookups into list walks.
 *
 * The keys are computed here from a copy of that old function (the
 * broker's hashmap_hash up to 15989df). Two kinds:
 *   - 8-byte keys made by inverting it, all with the same low 32 bits of
 *     hash, so under it every one of them shares one home slot in any
 *     table size and even the stored 32-bit hashes tie (every probe a
 *     memcmp): what a client could do with subscription ids, which are
 *     8 bytes of its choosing;
 *   - printable topic tokens found by search whose old hashes agree in
 *     the low 13 bits: the home slot in every table of up to 8192 slots,
 *     so thousands of them pile up in the subject index's and the
 *     retained store's child tables.
 *
 * The cost is measured, never timed: hashmap_probes_add sums how far each
 * entry sits past its home slot (a lookup visits that many + 1 slots).
 * Under the old hash N colliding keys cost N(N-1)/2 in all; with a keyed
 * hash the mean stays below one slot and the longest run short, whatever
 * N is. The key is random per process, so the bounds are loose enough
 * that a random key passes them with overwhelming probability.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "data/hashmap.h"
#include "data/msgbuf.h"
#include "data/retained.h"
#include "data/sublist.h"

#define NKEYS 4096
/* Mean displacement and longest run a random hash stays far below at the
 * tables' load (at most 3/4; 1/2 here): the mean is about 0.5 at load 1/2
 * and the longest some tens at most. The old hash gives ~2048 and ~4095. */
#define MEAN_BOUND 3
#define LONGEST_BOUND 200

/* ---- the old hash, and its inverse for 8-byte keys ---- */

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

static uint64_t old_hash(const void *key, size_t len) {
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

/* The inverse of an odd number mod 2^64 (Newton's iteration). */
static uint64_t inv64(uint64_t a) {
  uint64_t x = a;
  for (int i = 0; i < 6; i++)
    x *= 2 - a * x;
  return x;
}

/* x ^= x >> s undone. */
static uint64_t unxorshift(uint64_t x, int s) {
  uint64_t y = x;
  for (int i = s; i < 64; i += s)
    y = x ^ (y >> s);
  return y;
}

static uint64_t unmix64(uint64_t x) {
  x = unxorshift(x, 31);
  x *= inv64(0x94d049bb133111ebULL);
  x = unxorshift(x, 27);
  x *= inv64(0xbf58476d1ce4e5b9ULL);
  x = unxorshift(x, 30);
  return x;
}

/* The 8-byte key whose old hash is h. */
static void old_preimage8(uint64_t h, unsigned char key[8]) {
  uint64_t x = unmix64(h); /* the tail added w = 0 */
  x *= inv64(0x4cf5ad432745937fULL);
  x = (x >> 31) | (x << 33); /* undo the rotate by 31 */
  x ^= 0x9E3779B97F4A7C15ULL ^ (8 * 0xff51afd7ed558ccdULL);
  uint64_t w = x * inv64(0x87c37b91114253d5ULL);
  memcpy(key, &w, 8);
}

static unsigned char (*colliding_ids(void))[8] {
  unsigned char(*keys)[8] = malloc(NKEYS * sizeof *keys);
  cr_assert_not_null(keys);
  for (uint64_t i = 0; i < NKEYS; i++) {
    uint64_t h = ((i + 1) << 32) | 0x7e57c0deu;
    old_preimage8(h, keys[i]);
    cr_assert_eq(old_hash(keys[i], 8), h, "the inverse is wrong");
  }
  return keys;
}

/* NKEYS printable tokens (no '.', '*', '>') of 7 characters whose old
 * hashes agree in the low 13 bits: a search of ~NKEYS * 8192 candidates. */
#define TOKLEN 7
static char (*colliding_tokens(void))[TOKLEN + 1] {
  static const char alpha[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
  char(*toks)[TOKLEN + 1] = calloc(NKEYS, sizeof *toks);
  cr_assert_not_null(toks);
  unsigned digit[TOKLEN] = {0};
  char cand[TOKLEN + 1] = {0};
  size_t n = 0;
  while (n < NKEYS) {
    for (int i = 0; i < TOKLEN; i++)
      cand[i] = alpha[digit[i]];
    if ((old_hash(cand, TOKLEN) & 0x1fff) == 0x0abc)
      memcpy(toks[n++], cand, TOKLEN + 1);
    for (int i = 0; i < TOKLEN && ++digit[i] == 64; i++)
      digit[i] = 0;
  }
  return toks;
}

static void check_flat(const hashmap_probes_t *p, size_t want_entries,
                       const char *what) {
  cr_assert_geq(p->entries, want_entries, "%s: %zu entries", what, p->entries);
  cr_log_info("%s: %zu entries, %zu displacement in all, longest %zu", what,
              p->entries, p->total, p->longest);
  cr_expect_leq(p->total, MEAN_BOUND * p->entries,
                "%s: lookups cost %zu slot steps for %zu entries (colliding "
                "keys pile up on one slot)",
                what, p->total, p->entries);
  cr_expect_leq(p->longest, LONGEST_BOUND, "%s: a probe run of %zu slots", what,
                p->longest);
}

Test(hash_flood, hashmap_with_colliding_8_byte_keys) {
  unsigned char(*keys)[8] = colliding_ids();
  hashmap_t *m = NULL;
  cr_assert_eq(hashmap_create(&m, 0), 0);
  for (size_t i = 0; i < NKEYS; i++)
    cr_assert_eq(hashmap_put(m, keys[i], 8, keys[i]), 0);
  for (size_t i = 0; i < NKEYS; i++)
    cr_assert_eq(hashmap_get(m, keys[i], 8), keys[i]);
  hashmap_probes_t p = {0};
  hashmap_probes_add(m, &p);
  cr_assert_eq(p.entries, NKEYS);
  check_flat(&p, NKEYS, "hashmap");
  /* Flat: a quarter of the keys cost no more per key than all of them. */
  for (size_t i = NKEYS / 4; i < NKEYS; i++)
    cr_assert_eq(hashmap_remove(m, keys[i], 8), keys[i]);
  hashmap_probes_t q = {0};
  hashmap_probes_add(m, &q);
  check_flat(&q, NKEYS / 4, "hashmap, a quarter left");
  hashmap_destroy(m);
  free(keys);
}

Test(hash_flood, subject_index_with_colliding_tokens) {
  char(*toks)[TOKLEN + 1] = colliding_tokens();
  sublist_t *sl = NULL;
  cr_assert_eq(sublist_create(&sl, 0), 0);
  static char sub;
  char pat[32];
  for (size_t i = 0; i < NKEYS; i++) {
    int n = snprintf(pat, sizeof pat, "flood.%s", toks[i]);
    cr_assert_eq(sublist_insert(sl, pat, (size_t)n, NULL, 0, &sub), 0);
  }
  for (size_t i = 0; i < NKEYS; i += 97) {
    const sublist_result_t *r = NULL;
    int n = snprintf(pat, sizeof pat, "flood.%s", toks[i]);
    cr_assert_eq(sublist_match(sl, pat, (size_t)n, &r), 0);
    cr_assert_eq(r->nplain, 1);
  }
  hashmap_probes_t p = {0};
  sublist_probes(sl, &p);
  check_flat(&p, NKEYS, "subject index");
  sublist_destroy(sl);
  free(toks);
}

Test(hash_flood, retained_store_with_colliding_tokens) {
  char(*toks)[TOKLEN + 1] = colliding_tokens();
  uv_loop_t loop;
  uv_timer_t timer;
  msgbuf_pool_t *pool = NULL;
  retained_t *store = NULL;
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(uv_timer_init(&loop, &timer), 0);
  cr_assert_eq(msgbuf_pool_create(&pool, 16, 1 << 20), 0);
  cr_assert_eq(retained_create(&store, &timer, 0, 0), 0);
  char topic[32];
  for (size_t i = 0; i < NKEYS; i++) {
    int n = snprintf(topic, sizeof topic, "flood.%s", toks[i]);
    msgbuf_t *b = msgbuf_get(pool);
    cr_assert_not_null(b);
    cr_assert_eq(tp_buf_append(&b->bytes, "x", 1), 0);
    cr_assert_eq(retained_put(store, topic, (size_t)n, b, 0), 0);
  }
  hashmap_probes_t p = {0};
  retained_probes(store, &p);
  check_flat(&p, NKEYS, "retained store");
  retained_destroy(store);
  msgbuf_pool_destroy(pool);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
  free(toks);
}
