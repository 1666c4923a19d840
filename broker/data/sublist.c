/*
 * The subject index: a token trie of subscription patterns with a bounded
 * per-topic match cache (interface and contract in sublist.h).
 *
 * Shape. Each trie node stands for one pattern prefix. Its children are a
 * hash map of literal tokens plus at most one '*' child and one '>' child;
 * the subscriptions whose pattern ends at the node sit in it, plain ones in
 * one multiset and queue ones in one multiset per queue name. Matching a
 * topic follows, at every level, the literal child for the topic's token,
 * the '*' child and the '>' child, so its cost depends on the topic's depth
 * and on how many wildcard patterns overlap it, never on the number of
 * subscriptions. Each pattern matches a topic in at most one way, so every
 * node is reached at most once and a subscription appears once per
 * insertion without any de-duplication.
 *
 * Cache. A result is one malloc'd block (header, arrays, copied names and
 * topic) kept in a hash map keyed by the topic. Every insert or remove bumps
 * a generation counter, which makes all cached results stale at once; a
 * stale entry is dropped when it is next looked up or chosen for eviction.
 * When the map holds cache_max entries, a random one is evicted.
 */
#include "data/sublist.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "data/hashmap.h"
#include "data/sublist_set.h"
#include "tern_proto/errors.h"
#include "tern_proto/topic.h"

#define DEFAULT_CACHE_MAX 4096

typedef struct qgroup {
  char *name; /* owned copy */
  size_t len;
  sublist_set_t members;
} qgroup_t;

typedef struct node node_t;
struct node {
  node_t *parent;
  hashmap_t
      *literals; /* token -> node_t *, keyed by the child's tok; or NULL */
  node_t *star;
  node_t *rest;
  sublist_set_t plain;
  qgroup_t *groups;
  uint32_t ngroups;
  uint32_t tok_len; /* a token fits in a frame (32-bit length) */
  char tok[];       /* the token this node hangs under in its parent */
};

/* A cached match result; the arrays and strings follow it in one block. */
typedef struct centry {
  sublist_result_t res;
  uint64_t gen;
  const char *topic; /* inside the block: the cache map's key */
  size_t tlen;
} centry_t;

/* Scratch for merging queue groups by name across the matched nodes. */
typedef struct gmerge {
  const char *name;
  size_t len;
  size_t nmembers;
  void **fill; /* next free member slot in the result being built */
} gmerge_t;

struct sublist {
  node_t *root;
  size_t count;
  uint64_t nodes;
  uint64_t matches;
  uint64_t cache_hits;

  hashmap_t *cache; /* topic -> centry_t * */
  size_t cache_max;
  size_t cache_live; /* entries of the current generation */
  uint64_t gen;
  uint64_t rng; /* xorshift state for random eviction */
  /* The last entry returned: a publisher usually repeats its topic, and
   * comparing against it is cheaper than hashing. Cleared when dropped. */
  centry_t *last;

  /* Scratch reused by every uncached match, so it allocates only to grow. */
  node_t **hits;
  size_t nhits;
  size_t hits_cap;
  gmerge_t *gm;
  size_t ngm;
  size_t gm_cap;
};

/* ---- trie nodes ---- */

static node_t *node_new(sublist_t *sl, node_t *parent, const char *tok,
                        size_t len) {
  node_t *n = calloc(1, sizeof(*n) + len);
  if (n == NULL)
    return NULL;
  n->parent = parent;
  n->tok_len = (uint32_t)len;
  memcpy(n->tok, tok, len);
  sl->nodes++;
  return n;
}

static bool is_wild(const char *tok, size_t len, char c) {
  return len == 1 && tok[0] == c;
}

static node_t *child_get(const node_t *n, const char *tok, size_t len) {
  if (is_wild(tok, len, '*'))
    return n->star;
  if (is_wild(tok, len, '>'))
    return n->rest;
  return n->literals != NULL ? hashmap_get(n->literals, tok, len) : NULL;
}

/* Creates the child for tok under n, or returns the existing one. NULL on
 * allocation failure (n is then unchanged). */
static node_t *child_make(sublist_t *sl, node_t *n, const char *tok,
                          size_t len) {
  node_t *c = child_get(n, tok, len);
  if (c != NULL)
    return c;
  c = node_new(sl, n, tok, len);
  if (c == NULL)
    return NULL;
  if (is_wild(tok, len, '*')) {
    n->star = c;
  } else if (is_wild(tok, len, '>')) {
    n->rest = c;
  } else {
    if (n->literals == NULL && hashmap_create(&n->literals, 0) < 0)
      goto fail;
    /* the key is the child's own copy of the token */
    if (hashmap_put(n->literals, c->tok, len, c) < 0)
      goto fail;
  }
  return c;
fail:
  if (n->literals != NULL && hashmap_size(n->literals) == 0) {
    hashmap_destroy(n->literals);
    n->literals = NULL;
  }
  free(c);
  sl->nodes--;
  return NULL;
}

static bool node_empty(const node_t *n) {
  return n->plain.n == 0 && n->ngroups == 0 && n->star == NULL &&
         n->rest == NULL && n->literals == NULL;
}

/* Frees n (which must hold nothing) after unhooking it from its parent. */
static void node_unlink_free(sublist_t *sl, node_t *n) {
  node_t *p = n->parent;
  if (p->star == n) {
    p->star = NULL;
  } else if (p->rest == n) {
    p->rest = NULL;
  } else {
    hashmap_remove(p->literals, n->tok, n->tok_len);
    if (hashmap_size(p->literals) == 0) {
      hashmap_destroy(p->literals);
      p->literals = NULL;
    }
  }
  free(n);
  sl->nodes--;
}

/* Frees empty nodes from n up towards the root (which always stays). */
static void prune(sublist_t *sl, node_t *n) {
  while (n != sl->root && node_empty(n)) {
    node_t *p = n->parent;
    node_unlink_free(sl, n);
    n = p;
  }
}

/* Frees a whole subtree, subscriptions' bookkeeping included. */
static void node_free_tree(node_t *n) {
  if (n->literals != NULL) {
    size_t pos = 0;
    void *v;
    while (hashmap_next(n->literals, &pos, NULL, NULL, &v))
      node_free_tree(v);
    hashmap_destroy(n->literals);
  }
  if (n->star != NULL)
    node_free_tree(n->star);
  if (n->rest != NULL)
    node_free_tree(n->rest);
  sublist_set_free(&n->plain);
  for (size_t i = 0; i < n->ngroups; i++) {
    free(n->groups[i].name);
    sublist_set_free(&n->groups[i].members);
  }
  free(n->groups);
  free(n);
}

static qgroup_t *group_find(node_t *n, const char *q, size_t qlen) {
  for (size_t i = 0; i < n->ngroups; i++)
    if (n->groups[i].len == qlen && memcmp(n->groups[i].name, q, qlen) == 0)
      return &n->groups[i];
  return NULL;
}

static qgroup_t *group_make(node_t *n, const char *q, size_t qlen) {
  qgroup_t *g = group_find(n, q, qlen);
  if (g != NULL)
    return g;
  char *name = malloc(qlen);
  if (name == NULL)
    return NULL;
  qgroup_t *groups = realloc(n->groups, (n->ngroups + 1) * sizeof(*groups));
  if (groups == NULL) {
    free(name);
    return NULL;
  }
  n->groups = groups;
  memcpy(name, q, qlen);
  g = &n->groups[n->ngroups++];
  g->name = name;
  g->len = qlen;
  sublist_set_init(&g->members);
  return g;
}

/* Drops group g from n if it has no members left. */
static void group_drop_if_empty(node_t *n, qgroup_t *g) {
  if (g->members.total != 0)
    return;
  free(g->name);
  sublist_set_free(&g->members);
  *g = n->groups[--n->ngroups];
  if (n->ngroups == 0) {
    free(n->groups);
    n->groups = NULL;
  }
}

/* ---- cache ---- */

static void cache_invalidate(sublist_t *sl) {
  sl->gen++;
  sl->cache_live = 0;
}

static uint64_t rng_next(sublist_t *sl) {
  uint64_t x = sl->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  sl->rng = x;
  return x;
}

static void cache_drop(sublist_t *sl, centry_t *e) {
  if (sl->last == e)
    sl->last = NULL;
  hashmap_remove(sl->cache, e->topic, e->tlen);
  if (e->gen == sl->gen)
    sl->cache_live--;
  free(e);
}

/* Evicts one entry: the first at or after a random slot. */
static void cache_evict_one(sublist_t *sl) {
  size_t pos = (size_t)(rng_next(sl) % hashmap_capacity(sl->cache));
  void *v;
  if (!hashmap_next(sl->cache, &pos, NULL, NULL, &v)) {
    pos = 0;
    if (!hashmap_next(sl->cache, &pos, NULL, NULL, &v))
      return;
  }
  cache_drop(sl, v);
}

/* ---- public: lifetime ---- */

int sublist_create(sublist_t **out, size_t cache_max) {
  sublist_t *sl = calloc(1, sizeof(*sl));
  if (sl == NULL)
    return TP_ENOMEM;
  sl->cache_max = cache_max ? cache_max : DEFAULT_CACHE_MAX;
  sl->rng = 0x2545F4914F6CDD1DULL;
  sl->root = node_new(sl, NULL, "", 0);
  /* the map grows towards cache_max; do not reserve a huge table up front */
  size_t hint = sl->cache_max < 1024 ? sl->cache_max : 1024;
  if (sl->root == NULL || hashmap_create(&sl->cache, hint) < 0) {
    free(sl->root);
    free(sl);
    return TP_ENOMEM;
  }
  *out = sl;
  return 0;
}

void sublist_destroy(sublist_t *sl) {
  if (sl == NULL)
    return;
  size_t pos = 0;
  void *v;
  while (hashmap_next(sl->cache, &pos, NULL, NULL, &v))
    free(v);
  hashmap_destroy(sl->cache);
  node_free_tree(sl->root);
  free(sl->hits);
  free(sl->gm);
  free(sl);
}

/* ---- public: insert and remove ---- */

int sublist_insert(sublist_t *sl, const char *pattern, size_t plen,
                   const char *queue, size_t qlen, void *sub) {
  tp_token_iter_t it;
  const char *tok;
  size_t len;
  node_t *n = sl->root;
  tp_token_iter_init(&it, pattern, plen);
  while (tp_token_next(&it, &tok, &len)) {
    node_t *c = child_make(sl, n, tok, len);
    if (c == NULL)
      goto fail;
    n = c;
  }
  if (queue != NULL && qlen > 0) {
    qgroup_t *g = group_make(n, queue, qlen);
    if (g == NULL)
      goto fail;
    if (sublist_set_add(&g->members, sub) < 0) {
      group_drop_if_empty(n, g);
      goto fail;
    }
  } else if (sublist_set_add(&n->plain, sub) < 0) {
    goto fail;
  }
  sl->count++;
  cache_invalidate(sl);
  return 0;
fail:
  /* nodes created for this pattern hold nothing yet: free them again */
  prune(sl, n);
  return TP_ENOMEM;
}

int sublist_remove(sublist_t *sl, const char *pattern, size_t plen,
                   const char *queue, size_t qlen, void *sub) {
  tp_token_iter_t it;
  const char *tok;
  size_t len;
  node_t *n = sl->root;
  tp_token_iter_init(&it, pattern, plen);
  while (tp_token_next(&it, &tok, &len)) {
    n = child_get(n, tok, len);
    if (n == NULL)
      return -1;
  }
  if (queue != NULL && qlen > 0) {
    qgroup_t *g = group_find(n, queue, qlen);
    if (g == NULL || sublist_set_del(&g->members, sub) < 0)
      return -1;
    group_drop_if_empty(n, g);
  } else if (sublist_set_del(&n->plain, sub) < 0) {
    return -1;
  }
  prune(sl, n);
  sl->count--;
  cache_invalidate(sl);
  return 0;
}

/* ---- public: match ---- */

static int hit_push(sublist_t *sl, node_t *n) {
  if (n->plain.n == 0 && n->ngroups == 0)
    return 0;
  if (sl->nhits == sl->hits_cap) {
    size_t cap = sl->hits_cap ? sl->hits_cap * 2 : 16;
    node_t **h = realloc(sl->hits, cap * sizeof(*h));
    if (h == NULL)
      return TP_ENOMEM;
    sl->hits = h;
    sl->hits_cap = cap;
  }
  sl->hits[sl->nhits++] = n;
  return 0;
}

/*
 * Collects into sl->hits every node under n whose pattern matches the rest
 * of the topic in `it` (passed by value: each branch consumes its own copy).
 * At the root, wildcards are skipped for '$' topics. Recursion depth is the
 * topic's token count, bounded by the topic length limit.
 */
static int walk(sublist_t *sl, const node_t *n, tp_token_iter_t it,
                bool system) {
  const char *tok;
  size_t len;
  if (!tp_token_next(&it, &tok, &len))
    return hit_push(sl, (node_t *)n);
  bool wild_ok = !(system && n == sl->root);
  int rc;
  if (n->literals != NULL) {
    node_t *c = hashmap_get(n->literals, tok, len);
    if (c != NULL && (rc = walk(sl, c, it, system)) < 0)
      return rc;
  }
  if (n->star != NULL && wild_ok && (rc = walk(sl, n->star, it, system)) < 0)
    return rc;
  /* '>' takes this token and all that follow */
  if (n->rest != NULL && wild_ok && (rc = hit_push(sl, n->rest)) < 0)
    return rc;
  return 0;
}

static gmerge_t *gm_find(sublist_t *sl, const char *name, size_t len) {
  for (size_t i = 0; i < sl->ngm; i++)
    if (sl->gm[i].len == len && memcmp(sl->gm[i].name, name, len) == 0)
      return &sl->gm[i];
  return NULL;
}

/* Sums plain subscriptions and merges queue groups by name over sl->hits,
 * in sl->gm. Returns the number of group members, or TP_ENOMEM. */
static long merge_groups(sublist_t *sl, size_t *nplain, size_t *names) {
  size_t nmem = 0;
  *nplain = 0;
  *names = 0;
  sl->ngm = 0;
  for (size_t h = 0; h < sl->nhits; h++) {
    const node_t *n = sl->hits[h];
    *nplain += n->plain.total;
    for (size_t i = 0; i < n->ngroups; i++) {
      const qgroup_t *g = &n->groups[i];
      gmerge_t *m = gm_find(sl, g->name, g->len);
      if (m == NULL) {
        if (sl->ngm == sl->gm_cap) {
          size_t cap = sl->gm_cap ? sl->gm_cap * 2 : 8;
          gmerge_t *gm = realloc(sl->gm, cap * sizeof(*gm));
          if (gm == NULL)
            return TP_ENOMEM;
          sl->gm = gm;
          sl->gm_cap = cap;
        }
        m = &sl->gm[sl->ngm++];
        *m = (gmerge_t){g->name, g->len, 0, NULL};
        *names += g->len;
      }
      m->nmembers += g->members.total;
      nmem += g->members.total;
    }
  }
  return (long)nmem;
}

/*
 * Builds the result for topic as one block:
 *   centry_t | groups[] | plain[] and members[] (void *) | cursors[] | names
 *   and topic bytes.
 * Everything before the cursors is pointer-aligned because every piece
 * there is a multiple of the pointer size.
 */
static int build_entry(sublist_t *sl, const char *topic, size_t tlen,
                       centry_t **out) {
  tp_token_iter_t it;
  tp_token_iter_init(&it, topic, tlen);
  sl->nhits = 0;
  int rc = walk(sl, sl->root, it, tp_topic_is_system(topic, tlen));
  if (rc < 0)
    return rc;
  size_t nplain, names;
  long nmem = merge_groups(sl, &nplain, &names);
  if (nmem < 0)
    return (int)nmem;
  size_t ng = sl->ngm;
  size_t size = sizeof(centry_t) + ng * sizeof(sublist_group_t) +
                (nplain + (size_t)nmem) * sizeof(void *) +
                ng * sizeof(uint32_t) + names + tlen;
  char *blk = malloc(size);
  if (blk == NULL)
    return TP_ENOMEM;
  centry_t *e = (centry_t *)blk;
  sublist_group_t *groups = (sublist_group_t *)(blk + sizeof(centry_t));
  void **plain = (void **)(groups + ng);
  void **members = plain + nplain;
  uint32_t *cursors = (uint32_t *)(members + nmem);
  char *chars = (char *)(cursors + ng);

  size_t k = 0;
  for (size_t h = 0; h < sl->nhits; h++)
    k += sublist_set_expand(&sl->hits[h]->plain, plain + k);

  for (size_t i = 0; i < ng; i++) {
    gmerge_t *m = &sl->gm[i];
    memcpy(chars, m->name, m->len);
    groups[i] =
        (sublist_group_t){chars, m->len, members, m->nmembers, &cursors[i]};
    /* random start: see sublist.h on churn and balance */
    cursors[i] = (uint32_t)(rng_next(sl) >> 32);
    m->fill = members;
    members += m->nmembers;
    chars += m->len;
  }
  for (size_t h = 0; h < sl->nhits; h++) {
    const node_t *n = sl->hits[h];
    for (size_t i = 0; i < n->ngroups; i++) {
      gmerge_t *m = gm_find(sl, n->groups[i].name, n->groups[i].len);
      m->fill += sublist_set_expand(&n->groups[i].members, m->fill);
    }
  }
  memcpy(chars, topic, tlen);
  e->res = (sublist_result_t){plain, nplain, groups, ng};
  e->gen = sl->gen;
  e->topic = chars;
  e->tlen = tlen;
  *out = e;
  return 0;
}

int sublist_match(sublist_t *sl, const char *topic, size_t tlen,
                  const sublist_result_t **out) {
  sl->matches++;
  centry_t *e = sl->last;
  if (e != NULL && e->gen == sl->gen && e->tlen == tlen &&
      memcmp(e->topic, topic, tlen) == 0) {
    sl->cache_hits++;
    *out = &e->res;
    return 0;
  }
  e = hashmap_get(sl->cache, topic, tlen);
  if (e != NULL) {
    if (e->gen == sl->gen) {
      sl->cache_hits++;
      sl->last = e;
      *out = &e->res;
      return 0;
    }
    cache_drop(sl, e);
  }
  int rc = build_entry(sl, topic, tlen, &e);
  if (rc < 0)
    return rc;
  if (hashmap_size(sl->cache) >= sl->cache_max)
    cache_evict_one(sl);
  if (hashmap_put(sl->cache, e->topic, tlen, e) < 0) {
    free(e);
    return TP_ENOMEM;
  }
  sl->cache_live++;
  sl->last = e;
  *out = &e->res;
  return 0;
}

size_t sublist_count(const sublist_t *sl) {
  return sl->count;
}

void sublist_get_stats(const sublist_t *sl, sublist_stats_t *st) {
  st->matches = sl->matches;
  st->cache_hits = sl->cache_hits;
  st->nodes = sl->nodes;
  st->cache_entries = sl->cache_live;
}

static void node_probes(const node_t *n, hashmap_probes_t *acc) {
  if (n->literals != NULL) {
    hashmap_probes_add(n->literals, acc);
    size_t pos = 0;
    void *v;
    while (hashmap_next(n->literals, &pos, NULL, NULL, &v))
      node_probes(v, acc);
  }
  if (n->star != NULL)
    node_probes(n->star, acc);
  if (n->rest != NULL)
    node_probes(n->rest, acc);
}

void sublist_probes(const sublist_t *sl, hashmap_probes_t *acc) {
  hashmap_probes_add(sl->cache, acc);
  node_probes(sl->root, acc);
}
