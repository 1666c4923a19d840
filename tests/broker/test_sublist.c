/*
 * Unit tests of the subject index (broker/data/sublist.c): matching rules,
 * queue-group merging, the match cache and its invalidation, pruning, and
 * randomized churn checked against tp_pattern_match as the reference.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/hashmap.h"
#include "data/sublist.h"
#include "tern_proto/errors.h"
#include "tern_proto/topic.h"

/* Fake subscriptions: the index only compares the pointers. */
#define NSUBS 100000
static char subs[NSUBS];
#define SUB(i) ((void *)&subs[(i)])

static sublist_t *new_index(size_t cache_max) {
  sublist_t *sl = NULL;
  cr_assert_eq(sublist_create(&sl, cache_max), 0);
  cr_assert_not_null(sl);
  return sl;
}

static int ins(sublist_t *sl, const char *pat, const char *q, void *sub) {
  return sublist_insert(sl, pat, strlen(pat), q, q ? strlen(q) : 0, sub);
}

static int rem(sublist_t *sl, const char *pat, const char *q, void *sub) {
  return sublist_remove(sl, pat, strlen(pat), q, q ? strlen(q) : 0, sub);
}

static const sublist_result_t *match(sublist_t *sl, const char *topic) {
  const sublist_result_t *r = NULL;
  cr_assert_eq(sublist_match(sl, topic, strlen(topic), &r), 0);
  cr_assert_not_null(r);
  return r;
}

static size_t occurrences(void *const *v, size_t n, const void *sub) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += v[i] == sub;
  return k;
}

static const sublist_group_t *group(const sublist_result_t *r,
                                    const char *name) {
  for (size_t i = 0; i < r->ngroups; i++)
    if (r->groups[i].name_len == strlen(name) &&
        memcmp(r->groups[i].name, name, r->groups[i].name_len) == 0)
      return &r->groups[i];
  return NULL;
}

static sublist_stats_t stats(const sublist_t *sl) {
  sublist_stats_t st;
  sublist_get_stats(sl, &st);
  return st;
}

static int ptr_cmp(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (void *const *)a;
  uintptr_t y = (uintptr_t) * (void *const *)b;
  return (x > y) - (x < y);
}

/* ---- the matching rules ---- */

typedef struct row {
  const char *pattern;
  const char *topic;
  int match;
} row_t;

static const row_t table[] = {
    /* literals */
    {"a", "a", 1},
    {"a", "b", 0},
    {"ab", "a", 0},
    {"a", "ab", 0},
    {"a.b", "a", 0},
    {"a", "a.b", 0},
    {"a.b.c", "a.b.c", 1},
    {"foo.bar", "foo.baz", 0},
    /* '*' is exactly one token */
    {"*", "a", 1},
    {"*", "a.b", 0},
    {"a.*", "a.b", 1},
    {"a.*", "a", 0},
    {"a.*", "a.b.c", 0},
    {"a.*.c", "a.b.c", 1},
    {"a.*.c", "a.b.d", 0},
    {"*.*", "a.b", 1},
    {"*.b.*", "x.b.y", 1},
    {"*.b.*", "x.c.y", 0},
    /* '>' is one or more tokens */
    {">", "a", 1},
    {">", "a.b.c", 1},
    {"a.>", "a", 0},
    {"a.>", "a.b", 1},
    {"a.>", "a.b.c", 1},
    {"a.>", "b.c", 0},
    {"a.*.>", "a.b", 0},
    {"a.*.>", "a.b.c", 1},
    {"*.>", "a.b", 1},
    {"*.>", "a", 0},
    /* the '$' rule: only a leading wildcard is refused */
    {"*.x", "$SYS.x", 0},
    {">", "$SYS", 0},
    {">", "$SYS.a", 0},
    {"*", "$", 0},
    {"*.>", "$SYS.a", 0},
    {"$SYS.>", "$SYS.a.b", 1},
    {"$SYS.*", "$SYS.a", 1},
    {"$SYS", "$SYS", 1},
    {"a.>", "a.$b", 1},
    {"*.$b", "a.$b", 1},
    {"a.*", "a.$b", 1},
};
#define NROWS (sizeof(table) / sizeof(table[0]))

Test(sublist, table_one_pattern_at_a_time) {
  for (size_t i = 0; i < NROWS; i++) {
    const row_t *t = &table[i];
    /* the table must agree with the protocol library's own matcher */
    cr_assert_eq(tp_pattern_match(t->pattern, strlen(t->pattern), t->topic,
                                  strlen(t->topic)),
                 t->match != 0, "table row %zu (%s ~ %s) disagrees", i,
                 t->pattern, t->topic);
    sublist_t *sl = new_index(0);
    cr_assert_eq(ins(sl, t->pattern, NULL, SUB(i)), 0);
    const sublist_result_t *r = match(sl, t->topic);
    cr_assert_eq(r->nplain, (size_t)t->match, "%s ~ %s: got %zu", t->pattern,
                 t->topic, r->nplain);
    if (t->match)
      cr_assert_eq(r->plain[0], SUB(i));
    cr_assert_eq(r->ngroups, 0);
    sublist_destroy(sl);
  }
}

/* All table patterns in one index: every topic gets exactly the rows whose
 * pattern matches it, whatever else the trie holds. */
Test(sublist, table_all_patterns_together) {
  sublist_t *sl = new_index(0);
  for (size_t i = 0; i < NROWS; i++)
    cr_assert_eq(ins(sl, table[i].pattern, NULL, SUB(i)), 0);
  cr_assert_eq(sublist_count(sl), NROWS);
  for (size_t j = 0; j < NROWS; j++) {
    const char *topic = table[j].topic;
    const sublist_result_t *r = match(sl, topic);
    size_t want = 0;
    for (size_t i = 0; i < NROWS; i++) {
      int m = tp_pattern_match(table[i].pattern, strlen(table[i].pattern),
                               topic, strlen(topic));
      want += (size_t)m;
      cr_assert_eq(occurrences(r->plain, r->nplain, SUB(i)), (size_t)m,
                   "pattern %s on topic %s", table[i].pattern, topic);
    }
    cr_assert_eq(r->nplain, want);
  }
  sublist_destroy(sl);
}

Test(sublist, overlapping_patterns_deliver_once_per_insertion) {
  sublist_t *sl = new_index(0);
  const char *pats[] = {"foo.*", "foo.>", "foo.bar", "*.bar", ">", "foo.bar"};
  for (size_t i = 0; i < 6; i++)
    cr_assert_eq(ins(sl, pats[i], NULL, SUB(1)), 0);
  cr_assert_eq(ins(sl, "foo.baz", NULL, SUB(2)), 0);
  const sublist_result_t *r = match(sl, "foo.bar");
  cr_assert_eq(r->nplain, 6);
  cr_assert_eq(occurrences(r->plain, r->nplain, SUB(1)), 6);
  cr_assert_eq(rem(sl, "foo.bar", NULL, SUB(1)), 0);
  r = match(sl, "foo.bar");
  cr_assert_eq(occurrences(r->plain, r->nplain, SUB(1)), 5);
  r = match(sl, "foo.baz");
  cr_assert_eq(r->nplain, 4); /* foo.*, foo.>, >, and sub 2 */
  cr_assert_eq(occurrences(r->plain, r->nplain, SUB(2)), 1);
  sublist_destroy(sl);
}

/* ---- queue groups ---- */

Test(sublist, queue_groups_merge_across_patterns) {
  sublist_t *sl = new_index(0);
  cr_assert_eq(ins(sl, "orders.*", "workers", SUB(1)), 0);
  cr_assert_eq(ins(sl, "orders.new", "workers", SUB(2)), 0);
  cr_assert_eq(ins(sl, "orders.>", "audit", SUB(3)), 0);
  cr_assert_eq(ins(sl, "orders.new", NULL, SUB(4)), 0);
  cr_assert_eq(ins(sl, "orders.>", "workers", SUB(5)), 0);
  /* an empty queue name is a plain subscription */
  cr_assert_eq(sublist_insert(sl, "orders.new", 10, "", 0, SUB(6)), 0);

  const sublist_result_t *r = match(sl, "orders.new");
  cr_assert_eq(r->nplain, 2);
  cr_assert_eq(occurrences(r->plain, r->nplain, SUB(4)), 1);
  cr_assert_eq(occurrences(r->plain, r->nplain, SUB(6)), 1);
  cr_assert_eq(r->ngroups, 2);
  const sublist_group_t *w = group(r, "workers");
  const sublist_group_t *a = group(r, "audit");
  cr_assert_not_null(w);
  cr_assert_not_null(a);
  cr_assert_eq(w->nmembers, 3);
  cr_assert_eq(occurrences(w->members, w->nmembers, SUB(1)), 1);
  cr_assert_eq(occurrences(w->members, w->nmembers, SUB(2)), 1);
  cr_assert_eq(occurrences(w->members, w->nmembers, SUB(5)), 1);
  cr_assert_eq(a->nmembers, 1);
  cr_assert_eq(a->members[0], SUB(3));
  cr_assert_not_null(w->cursor);
  cr_assert_not_null(a->cursor);
  cr_assert_neq(w->cursor, a->cursor);

  r = match(sl, "orders.old");
  cr_assert_eq(r->nplain, 0);
  cr_assert_eq(r->ngroups, 2);
  cr_assert_eq(group(r, "workers")->nmembers, 2);
  cr_assert_eq(group(r, "audit")->nmembers, 1);

  r = match(sl, "orders.new.eu");
  cr_assert_eq(r->ngroups, 2);
  cr_assert_eq(group(r, "workers")->nmembers, 1);
  cr_assert_eq(group(r, "workers")->members[0], SUB(5));

  /* removing the last member of a group removes the group */
  cr_assert_eq(rem(sl, "orders.>", "audit", SUB(3)), 0);
  r = match(sl, "orders.new");
  cr_assert_eq(r->ngroups, 1);
  cr_assert_null(group(r, "audit"));
  sublist_destroy(sl);
}

Test(sublist, group_cursor_is_stable_while_cached) {
  sublist_t *sl = new_index(0);
  cr_assert_eq(ins(sl, "jobs.*", "q", SUB(1)), 0);
  cr_assert_eq(ins(sl, "jobs.*", "q", SUB(2)), 0);
  const sublist_result_t *r = match(sl, "jobs.a");
  cr_assert_eq(r->ngroups, 1);
  uint32_t *cursor = r->groups[0].cursor;
  uint32_t start = *cursor;
  *cursor += 7;
  uint64_t hits = stats(sl).cache_hits;
  r = match(sl, "jobs.a");
  cr_assert_eq(stats(sl).cache_hits, hits + 1);
  cr_assert_eq(r->groups[0].cursor, cursor);
  cr_assert_eq(*r->groups[0].cursor, start + 7);
  /* a new subscription makes a fresh result, still readable */
  cr_assert_eq(ins(sl, "jobs.*", "q", SUB(3)), 0);
  r = match(sl, "jobs.a");
  cr_assert_eq(r->groups[0].nmembers, 3);
  *r->groups[0].cursor += 1;
  sublist_destroy(sl);
}

/* Under constant churn every publish rebuilds its result; the cursors must
 * not all restart at the same member, or a group would not balance. */
Test(sublist, rebuilt_cursors_do_not_all_start_equal) {
  sublist_t *sl = new_index(0);
  cr_assert_eq(ins(sl, "jobs.*", "q", SUB(1)), 0);
  cr_assert_eq(ins(sl, "jobs.*", "q", SUB(2)), 0);
  size_t picks[2] = {0, 0};
  for (int i = 0; i < 200; i++) {
    /* an unrelated inbox subscription comes and goes */
    cr_assert_eq(ins(sl, "_inbox.x", NULL, SUB(9)), 0);
    cr_assert_eq(rem(sl, "_inbox.x", NULL, SUB(9)), 0);
    const sublist_result_t *r = match(sl, "jobs.a");
    const sublist_group_t *g = &r->groups[0];
    picks[*g->cursor % g->nmembers]++;
  }
  cr_assert_gt(picks[0], 0);
  cr_assert_gt(picks[1], 0);
  sublist_destroy(sl);
}

/* ---- the cache ---- */

Test(sublist, cache_hits_and_invalidation) {
  sublist_t *sl = new_index(0);
  const sublist_result_t *r = match(sl, "a.b");
  cr_assert_eq(r->nplain, 0);
  sublist_stats_t st = stats(sl);
  cr_assert_eq(st.matches, 1);
  cr_assert_eq(st.cache_hits, 0);
  cr_assert_eq(st.cache_entries, 1);

  r = match(sl, "a.b");
  cr_assert_eq(r->nplain, 0);
  cr_assert_eq(stats(sl).cache_hits, 1);

  /* insert: the cached topic sees the new subscription */
  cr_assert_eq(ins(sl, "a.*", NULL, SUB(1)), 0);
  cr_assert_eq(stats(sl).cache_entries, 0);
  r = match(sl, "a.b");
  cr_assert_eq(r->nplain, 1);
  cr_assert_eq(r->plain[0], SUB(1));
  cr_assert_eq(stats(sl).cache_hits, 1);
  r = match(sl, "a.b");
  cr_assert_eq(r->nplain, 1);
  cr_assert_eq(stats(sl).cache_hits, 2);

  /* an unrelated insert invalidates too (the whole cache, in O(1)) */
  cr_assert_eq(ins(sl, "x.y", NULL, SUB(2)), 0);
  r = match(sl, "a.b");
  cr_assert_eq(r->nplain, 1);
  cr_assert_eq(stats(sl).cache_hits, 2);

  /* remove: the cached topic loses it */
  cr_assert_eq(rem(sl, "a.*", NULL, SUB(1)), 0);
  r = match(sl, "a.b");
  cr_assert_eq(r->nplain, 0);
  cr_assert_eq(stats(sl).cache_hits, 2);

  /* a failed remove changes nothing, so the cache stays valid */
  cr_assert_eq(rem(sl, "a.*", NULL, SUB(1)), -1);
  r = match(sl, "a.b");
  cr_assert_eq(stats(sl).cache_hits, 3);
  cr_assert_eq(stats(sl).matches, 7);
  sublist_destroy(sl);
}

Test(sublist, cache_is_bounded) {
  sublist_t *sl = new_index(8);
  cr_assert_eq(ins(sl, "t.*", NULL, SUB(1)), 0);
  char topic[32];
  for (int i = 0; i < 200; i++) {
    snprintf(topic, sizeof(topic), "t.%d", i);
    const sublist_result_t *r = match(sl, topic);
    cr_assert_eq(r->nplain, 1);
    cr_assert_eq(r->plain[0], SUB(1));
    cr_assert_leq(stats(sl).cache_entries, 8);
  }
  cr_assert_eq(stats(sl).cache_entries, 8);
  /* the newest result is always cached */
  match(sl, topic);
  cr_assert_eq(stats(sl).cache_hits, 1);
  sublist_destroy(sl);
}

/* ---- removal ---- */

Test(sublist, remove_prunes_nodes_to_baseline) {
  sublist_t *sl = new_index(0);
  uint64_t base = stats(sl).nodes;
  const char *pats[] = {"a.b.c", "a.b",     "a.*.c", "a.>",
                        ">",     "x.y.z.w", "*.*.*", "a.b.c"};
  for (size_t i = 0; i < 8; i++)
    cr_assert_eq(ins(sl, pats[i], i % 2 ? "q" : NULL, SUB(i)), 0);
  cr_assert_gt(stats(sl).nodes, base);
  match(sl, "a.b.c");

  /* removing a leaf keeps the prefix that still holds a subscription */
  cr_assert_eq(rem(sl, "x.y.z.w", "q", SUB(5)), 0);
  cr_assert_eq(rem(sl, "a.b.c", NULL, SUB(0)), 0);
  cr_assert_eq(rem(sl, "a.b.c", "q", SUB(7)), 0);
  uint64_t with_ab = stats(sl).nodes;
  cr_assert_eq(rem(sl, "a.b", "q", SUB(1)), 0);
  cr_assert_lt(stats(sl).nodes, with_ab);

  cr_assert_eq(rem(sl, "*.*.*", NULL, SUB(6)), 0);
  cr_assert_eq(rem(sl, ">", NULL, SUB(4)), 0);
  cr_assert_eq(rem(sl, "a.>", "q", SUB(3)), 0);
  cr_assert_eq(rem(sl, "a.*.c", NULL, SUB(2)), 0);
  cr_assert_eq(sublist_count(sl), 0);
  cr_assert_eq(stats(sl).nodes, base);
  cr_assert_eq(match(sl, "a.b.c")->nplain, 0);
  sublist_destroy(sl);
}

Test(sublist, remove_unknown_returns_minus_one) {
  sublist_t *sl = new_index(0);
  cr_assert_eq(rem(sl, "a", NULL, SUB(1)), -1);
  cr_assert_eq(ins(sl, "a.b", NULL, SUB(1)), 0);
  cr_assert_eq(ins(sl, "a.c", "q", SUB(1)), 0);
  cr_assert_eq(rem(sl, "a.b", NULL, SUB(2)), -1);    /* other sub */
  cr_assert_eq(rem(sl, "a", NULL, SUB(1)), -1);      /* interior node */
  cr_assert_eq(rem(sl, "a.b", "q", SUB(1)), -1);     /* plain, not queue */
  cr_assert_eq(rem(sl, "a.c", NULL, SUB(1)), -1);    /* queue, not plain */
  cr_assert_eq(rem(sl, "a.c", "other", SUB(1)), -1); /* other queue */
  cr_assert_eq(rem(sl, "a.b.c", NULL, SUB(1)), -1);
  cr_assert_eq(rem(sl, "a.*", NULL, SUB(1)), -1);
  cr_assert_eq(rem(sl, "a.>", NULL, SUB(1)), -1);
  cr_assert_eq(sublist_count(sl), 2);
  cr_assert_eq(rem(sl, "a.b", NULL, SUB(1)), 0);
  cr_assert_eq(rem(sl, "a.b", NULL, SUB(1)), -1);
  cr_assert_eq(rem(sl, "a.c", "q", SUB(1)), 0);
  cr_assert_eq(sublist_count(sl), 0);
  sublist_destroy(sl);
}

/* 20,000 subscribers on one pattern (a fan-out topic), plain and in a
 * group, some twice; removed in random order with checks along the way. */
Test(sublist, many_subscribers_on_one_pattern) {
  enum { N = 20000 };
  sublist_t *sl = new_index(0);
  for (int i = 0; i < N; i++) {
    cr_assert_eq(ins(sl, "fan.out", NULL, SUB(i)), 0);
    cr_assert_eq(ins(sl, "fan.*", "g", SUB(i)), 0);
    if (i % 10 == 0)
      cr_assert_eq(ins(sl, "fan.out", NULL, SUB(i)), 0);
  }
  const sublist_result_t *r = match(sl, "fan.out");
  cr_assert_eq(r->nplain, N + N / 10);
  cr_assert_eq(r->ngroups, 1);
  cr_assert_eq(r->groups[0].nmembers, N);

  int *order = malloc(N * sizeof(int));
  for (int i = 0; i < N; i++)
    order[i] = i;
  srand(7);
  for (int i = N - 1; i > 0; i--) {
    int j = rand() % (i + 1), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  size_t plain_left = N + N / 10, group_left = N;
  for (int k = 0; k < N; k++) {
    int i = order[k];
    cr_assert_eq(rem(sl, "fan.out", NULL, SUB(i)), 0);
    plain_left--;
    if (i % 10 == 0) {
      cr_assert_eq(rem(sl, "fan.out", NULL, SUB(i)), 0);
      plain_left--;
    }
    cr_assert_eq(rem(sl, "fan.out", NULL, SUB(i)), -1);
    cr_assert_eq(rem(sl, "fan.*", "g", SUB(i)), 0);
    group_left--;
    if (k % 1000 == 999) {
      r = match(sl, "fan.out");
      cr_assert_eq(r->nplain, plain_left);
      cr_assert_eq(r->ngroups, group_left ? 1 : 0);
      if (group_left)
        cr_assert_eq(r->groups[0].nmembers, group_left);
      cr_assert_eq(occurrences(r->plain, r->nplain, SUB(i)), 0);
    }
  }
  free(order);
  cr_assert_eq(sublist_count(sl), 0);
  cr_assert_eq(stats(sl).nodes, 1);
  sublist_destroy(sl);
}

/* ---- randomized churn against the reference matcher ---- */

typedef struct ref {
  char pattern[48];
  int queue; /* -1: plain; else index into queues[] */
  int sub;
} ref_t;

static const char *const queues[] = {"q1", "q2", "q3"};
static const char *const toks[] = {"a", "b", "c", "d"};

static uint64_t rng_state = 88172645463325252ULL;
static uint32_t rnd(uint32_t n) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state % n);
}

/* A random valid pattern (wildcard = 1) or topic (wildcard = 0), depth
 * 1..4, sometimes under "$SYS". */
static void random_name(char *out, size_t cap, int wildcard) {
  int depth = 1 + (int)rnd(4);
  size_t len = 0;
  out[0] = '\0';
  for (int d = 0; d < depth; d++) {
    const char *t = toks[rnd(4)];
    if (d == 0 && rnd(8) == 0)
      t = "$SYS";
    else if (wildcard && rnd(4) == 0)
      t = "*";
    else if (wildcard && d == depth - 1 && rnd(4) == 0)
      t = ">";
    len += (size_t)snprintf(out + len, cap - len, "%s%s", d ? "." : "", t);
  }
}

/* Compares the index's answer for topic with a brute-force scan of refs. */
static void check_topic(sublist_t *sl, const ref_t *refs, size_t nrefs,
                        const char *topic) {
  enum { MAXR = 8192 };
  static void *want[MAXR], *got[MAXR];
  const sublist_result_t *r = match(sl, topic);
  size_t ngroups_want = 0;
  for (int q = -1; q < 3; q++) {
    size_t n = 0;
    for (size_t i = 0; i < nrefs; i++)
      if (refs[i].queue == q &&
          tp_pattern_match(refs[i].pattern, strlen(refs[i].pattern), topic,
                           strlen(topic)))
        want[n++] = SUB(refs[i].sub);
    void *const *have;
    size_t nhave;
    if (q < 0) {
      have = r->plain;
      nhave = r->nplain;
    } else {
      const sublist_group_t *g = group(r, queues[q]);
      ngroups_want += n > 0;
      if (n == 0) {
        cr_assert_null(g, "topic %s: group %s should be absent", topic,
                       queues[q]);
        continue;
      }
      cr_assert_not_null(g, "topic %s: group %s missing", topic, queues[q]);
      have = g->members;
      nhave = g->nmembers;
    }
    cr_assert_eq(nhave, n, "topic %s queue %d: %zu != %zu", topic, q, nhave, n);
    memcpy(got, have, n * sizeof(void *));
    qsort(want, n, sizeof(void *), ptr_cmp);
    qsort(got, n, sizeof(void *), ptr_cmp);
    cr_assert_eq(memcmp(want, got, n * sizeof(void *)), 0, "topic %s", topic);
  }
  cr_assert_eq(r->ngroups, ngroups_want);
}

Test(sublist, random_churn_matches_reference, .timeout = 120) {
  enum { OPS = 6000, MAXREFS = 4096 };
  ref_t *refs = calloc(MAXREFS, sizeof(*refs));
  size_t nrefs = 0;
  sublist_t *sl = new_index(64); /* small: exercises eviction too */
  uint64_t base = stats(sl).nodes;
  char topic[48];
  for (int op = 0; op < OPS; op++) {
    ref_t t;
    if (nrefs > 0 && rnd(100) < 45) {
      /* mostly an existing entry, sometimes a random one (maybe absent) */
      if (rnd(10) < 7) {
        t = refs[rnd((uint32_t)nrefs)];
      } else {
        random_name(t.pattern, sizeof(t.pattern), 1);
        t.queue = (int)rnd(4) - 1;
        t.sub = (int)rnd(40);
      }
      size_t at = nrefs;
      for (size_t i = 0; i < nrefs && at == nrefs; i++)
        if (refs[i].queue == t.queue && refs[i].sub == t.sub &&
            strcmp(refs[i].pattern, t.pattern) == 0)
          at = i;
      int rc =
          rem(sl, t.pattern, t.queue < 0 ? NULL : queues[t.queue], SUB(t.sub));
      cr_assert_eq(rc, at < nrefs ? 0 : -1, "remove %s", t.pattern);
      if (at < nrefs)
        refs[at] = refs[--nrefs];
    } else if (nrefs < MAXREFS) {
      random_name(t.pattern, sizeof(t.pattern), 1);
      t.queue = rnd(3) == 0 ? (int)rnd(3) : -1;
      t.sub = (int)rnd(40);
      cr_assert_eq(
          ins(sl, t.pattern, t.queue < 0 ? NULL : queues[t.queue], SUB(t.sub)),
          0);
      refs[nrefs++] = t;
    }
    cr_assert_eq(sublist_count(sl), nrefs);
    for (int k = 0; k < 3; k++) {
      random_name(topic, sizeof(topic), 0);
      check_topic(sl, refs, nrefs, topic);
      check_topic(sl, refs, nrefs, topic); /* the cached answer too */
    }
  }
  cr_assert_gt(stats(sl).cache_hits, 0);
  while (nrefs > 0) {
    ref_t *t = &refs[--nrefs];
    cr_assert_eq(rem(sl, t->pattern, t->queue < 0 ? NULL : queues[t->queue],
                     SUB(t->sub)),
                 0);
  }
  cr_assert_eq(stats(sl).nodes, base);
  free(refs);
  sublist_destroy(sl);
}

/* ---- scale ---- */

/* Pattern i of the 100k set: four shapes over "svc.<id>.<verb>". */
static void big_pattern(char *out, size_t cap, int i) {
  switch (i % 4) {
  case 0:
    snprintf(out, cap, "svc.%d.req", i / 4);
    break;
  case 1:
    snprintf(out, cap, "svc.%d.*", i / 4);
    break;
  case 2:
    snprintf(out, cap, "svc.*.%d", i / 4);
    break;
  default:
    snprintf(out, cap, "svc.%d.>", i / 4);
    break;
  }
}

Test(sublist, hundred_thousand_subscriptions, .timeout = 120) {
  enum { N = NSUBS, PL = 32 };
  char(*pats)[PL] = malloc((size_t)N * PL);
  sublist_t *sl = new_index(0);
  uint64_t base = stats(sl).nodes;
  for (int i = 0; i < N; i++) {
    big_pattern(pats[i], PL, i);
    cr_assert_eq(ins(sl, pats[i], i % 8 == 7 ? "workers" : NULL, SUB(i)), 0);
  }
  cr_assert_eq(sublist_count(sl), N);
  /* nodes grow with distinct patterns, not faster */
  cr_assert_leq(stats(sl).nodes, base + 2 * N);

  const char *topics[] = {
      "svc.0.req",  "svc.1.req", "svc.7.x", "svc.24999.req", "svc.123.456",
      "svc.5.99.z", "svc.x.3",   "svc",     "other.1.req",   "$SYS.1.req"};
  enum { NT = sizeof(topics) / sizeof(topics[0]) };
  size_t total_matched = 0;
  for (int round = 0; round < 2; round++) {
    uint64_t hits = stats(sl).cache_hits;
    for (size_t t = 0; t < NT; t++) {
      const char *topic = topics[t];
      const sublist_result_t *r = match(sl, topic);
      size_t want_plain = 0, want_q = 0;
      for (int i = 0; i < N; i++) {
        if (!tp_pattern_match(pats[i], strlen(pats[i]), topic, strlen(topic)))
          continue;
        if (i % 8 == 7) {
          want_q++;
          const sublist_group_t *g = group(r, "workers");
          cr_assert_not_null(g);
          cr_assert_eq(occurrences(g->members, g->nmembers, SUB(i)), 1);
        } else {
          want_plain++;
          cr_assert_eq(occurrences(r->plain, r->nplain, SUB(i)), 1, "%s on %s",
                       pats[i], topic);
        }
      }
      cr_assert_eq(r->nplain, want_plain, "%s", topic);
      cr_assert_eq(r->ngroups, want_q ? 1 : 0);
      total_matched += want_plain + want_q;
    }
    /* the second round is answered entirely from the cache */
    cr_assert_eq(stats(sl).cache_hits, hits + (round ? NT : 0));
  }
  cr_assert_gt(total_matched, 0);

  for (int i = 0; i < N; i++)
    cr_assert_eq(rem(sl, pats[i], i % 8 == 7 ? "workers" : NULL, SUB(i)), 0);
  cr_assert_eq(sublist_count(sl), 0);
  cr_assert_eq(stats(sl).nodes, base);
  free(pats);
  sublist_destroy(sl);
}

/* ---- the hash map under the index (also meant for the broker) ---- */

/* Random puts and removes over a small key space, checked against a plain
 * array after every step; backward-shift deletion is the risky part. */
Test(sublist, hashmap_churn_matches_reference) {
  enum { KEYS = 600, OPS = 40000 };
  static char keys[KEYS][16];
  static void *ref[KEYS];
  hashmap_t *m = NULL;
  cr_assert_eq(hashmap_create(&m, 0), 0);
  size_t live = 0;
  for (int i = 0; i < KEYS; i++) {
    snprintf(keys[i], sizeof(keys[i]), "k%d", i * 31);
    ref[i] = NULL;
  }
  for (int op = 0; op < OPS; op++) {
    int k = (int)rnd(KEYS);
    size_t len = strlen(keys[k]);
    if (rnd(2)) {
      void *v = SUB(op % NSUBS);
      cr_assert_eq(hashmap_put(m, keys[k], len, v), 0);
      live += ref[k] == NULL;
      ref[k] = v;
    } else {
      cr_assert_eq(hashmap_remove(m, keys[k], len), ref[k]);
      live -= ref[k] != NULL;
      ref[k] = NULL;
    }
    cr_assert_eq(hashmap_size(m), live);
    int probe = (int)rnd(KEYS);
    cr_assert_eq(hashmap_get(m, keys[probe], strlen(keys[probe])), ref[probe]);
  }
  size_t pos = 0, seen = 0;
  const void *key;
  size_t klen;
  void *val;
  while (hashmap_next(m, &pos, &key, &klen, &val)) {
    int k = atoi((const char *)key + 1) / 31;
    cr_assert_eq(klen, strlen(keys[k]));
    cr_assert_eq(val, ref[k]);
    seen++;
  }
  cr_assert_eq(seen, live);
  hashmap_clear(m);
  cr_assert_eq(hashmap_size(m), 0);
  cr_assert_null(hashmap_get(m, keys[0], strlen(keys[0])));
  hashmap_destroy(m);
}
