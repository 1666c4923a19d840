/*
 * The retained store: token trie, expiry heap, caps (see retained.h).
 */
#include "data/retained.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "data/hashmap.h"
#include "tern_proto/errors.h"

typedef struct rnode {
  struct rnode *parent;
  char *tok; /* owned; the key in the parent's map points here */
  size_t toklen;
  hashmap_t *children; /* token -> rnode_t *, NULL while there are none */
  msgbuf_t *body;      /* the retained MSG body, or NULL */
  uint64_t deadline;   /* loop time it expires; meaningful while in heap */
  size_t heap_at;      /* 1 + index in the heap, 0 when not there */
} rnode_t;

struct retained {
  uv_timer_t *timer;
  bool shared; /* several loops: no timer, the callers lock (retained.h) */
  rnode_t root;
  uint64_t max_topics, max_bytes;
  uint64_t topics, bytes, nodes, expired;
  rnode_t **heap; /* min-heap by deadline */
  size_t nheap, heap_cap;
};

/* ---- the expiry heap ---------------------------------------------------- */

static void heap_set(retained_t *r, size_t i, rnode_t *n) {
  r->heap[i] = n;
  n->heap_at = i + 1;
}

static void sift_up(retained_t *r, size_t i) {
  rnode_t *n = r->heap[i];
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (r->heap[up]->deadline <= n->deadline)
      break;
    heap_set(r, i, r->heap[up]);
    i = up;
  }
  heap_set(r, i, n);
}

static void sift_down(retained_t *r, size_t i) {
  rnode_t *n = r->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= r->nheap)
      break;
    if (c + 1 < r->nheap && r->heap[c + 1]->deadline < r->heap[c]->deadline)
      c++;
    if (n->deadline <= r->heap[c]->deadline)
      break;
    heap_set(r, i, r->heap[c]);
    i = c;
  }
  heap_set(r, i, n);
}

static void heap_remove(retained_t *r, rnode_t *n) {
  if (n->heap_at == 0)
    return;
  size_t i = n->heap_at - 1;
  n->heap_at = 0;
  rnode_t *last = r->heap[--r->nheap];
  if (i == r->nheap)
    return;
  heap_set(r, i, last);
  sift_up(r, i);
  sift_down(r, last->heap_at - 1);
}

/* Inserts n or moves it to its new deadline. 0 or TP_ENOMEM. */
static int heap_update(retained_t *r, rnode_t *n) {
  if (n->heap_at != 0) {
    sift_up(r, n->heap_at - 1);
    sift_down(r, n->heap_at - 1);
    return 0;
  }
  if (r->nheap == r->heap_cap) {
    size_t cap = r->heap_cap ? r->heap_cap * 2 : 64;
    rnode_t **h = realloc(r->heap, cap * sizeof *h);
    if (h == NULL)
      return TP_ENOMEM;
    r->heap = h;
    r->heap_cap = cap;
  }
  heap_set(r, r->nheap++, n);
  sift_up(r, r->nheap - 1);
  return 0;
}

static void on_expiry(uv_timer_t *t);

/* One timer for the whole store, armed for the earliest deadline. */
static void rearm(retained_t *r) {
  if (r->shared)
    return; /* expired by retained_expire and before each match */
  if (r->nheap == 0) {
    uv_timer_stop(r->timer);
    return;
  }
  uint64_t now = uv_now(r->timer->loop);
  uint64_t at = r->heap[0]->deadline;
  uv_timer_start(r->timer, on_expiry, at > now ? at - now : 0, 0);
}

/* ---- the trie ----------------------------------------------------------- */

static rnode_t *child_get(const rnode_t *n, const char *tok, size_t len) {
  return n->children ? hashmap_get(n->children, tok, len) : NULL;
}

static rnode_t *child_add(retained_t *r, rnode_t *n, const char *tok,
                          size_t len) {
  if (n->children == NULL && hashmap_create(&n->children, 0) != 0)
    return NULL;
  rnode_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->tok = malloc(len);
  if (c->tok != NULL)
    memcpy(c->tok, tok, len);
  if (c->tok == NULL || hashmap_put(n->children, c->tok, len, c) != 0) {
    free(c->tok);
    free(c);
    return NULL;
  }
  c->toklen = len;
  c->parent = n;
  r->nodes++;
  return c;
}

/* Frees n and its ancestors while they hold nothing. */
static void prune(retained_t *r, rnode_t *n) {
  while (n != &r->root && n->body == NULL &&
         (n->children == NULL || hashmap_size(n->children) == 0)) {
    rnode_t *parent = n->parent;
    hashmap_remove(parent->children, n->tok, n->toklen);
    hashmap_destroy(n->children);
    free(n->tok);
    free(n);
    r->nodes--;
    n = parent;
  }
}

/* The length of the token at p (up to '.' or end). */
static size_t token_len(const char *p, size_t len) {
  const char *dot = memchr(p, '.', len);
  return dot ? (size_t)(dot - p) : len;
}

/* The node for topic, created when create is set. NULL: absent / ENOMEM. */
static rnode_t *find(retained_t *r, const char *topic, size_t tlen,
                     bool create) {
  rnode_t *n = &r->root;
  size_t at = 0;
  while (at < tlen) {
    size_t k = token_len(topic + at, tlen - at);
    rnode_t *c = child_get(n, topic + at, k);
    if (c == NULL && create)
      c = child_add(r, n, topic + at, k);
    if (c == NULL) {
      if (create)
        prune(r, n);
      return NULL;
    }
    n = c;
    at += k + 1;
  }
  return n;
}

/* Forgets n's message (the node stays until pruned). */
static void drop_message(retained_t *r, rnode_t *n) {
  if (n->body == NULL)
    return;
  heap_remove(r, n);
  r->topics--;
  r->bytes -= n->body->bytes.len;
  msgbuf_unref(n->body);
  n->body = NULL;
}

static void expire_due(retained_t *r, uint64_t now) {
  while (r->nheap > 0 && r->heap[0]->deadline <= now) {
    rnode_t *n = r->heap[0];
    drop_message(r, n);
    r->expired++;
    prune(r, n);
  }
}

static void on_expiry(uv_timer_t *t) {
  retained_t *r = t->data;
  expire_due(r, uv_now(t->loop));
  rearm(r);
}

/* The store's clock: its loop's, or with several loops the process's. */
static uint64_t now_ms(const retained_t *r) {
  return r->shared ? uv_hrtime() / 1000000u : uv_now(r->timer->loop);
}

void retained_share(retained_t *r) {
  r->shared = true;
}

void retained_expire(retained_t *r) {
  expire_due(r, now_ms(r));
}

/* ---- the API ------------------------------------------------------------ */

int retained_create(retained_t **out, uv_timer_t *timer, uint64_t max_topics,
                    uint64_t max_bytes) {
  retained_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    return TP_ENOMEM;
  r->timer = timer;
  timer->data = r;
  r->max_topics = max_topics;
  r->max_bytes = max_bytes;
  r->nodes = 1;
  *out = r;
  return 0;
}

static void free_subtree(rnode_t *n) {
  if (n->children != NULL) {
    size_t pos = 0;
    const void *key;
    size_t klen;
    void *val;
    while (hashmap_next(n->children, &pos, &key, &klen, &val) == 1) {
      free_subtree(val);
      free(val);
    }
    hashmap_destroy(n->children);
  }
  if (n->body != NULL)
    msgbuf_unref(n->body);
  free(n->tok);
}

void retained_destroy(retained_t *r) {
  if (r == NULL)
    return;
  if (r->root.children != NULL) {
    size_t pos = 0;
    const void *key;
    size_t klen;
    void *val;
    while (hashmap_next(r->root.children, &pos, &key, &klen, &val) == 1) {
      free_subtree(val);
      free(val);
    }
    hashmap_destroy(r->root.children);
  }
  free(r->heap);
  free(r);
}

int retained_put(retained_t *r, const char *topic, size_t tlen, msgbuf_t *body,
                 uint64_t ttl_ms) {
  rnode_t *n = find(r, topic, tlen, false);
  if (body == NULL) {
    if (n != NULL) {
      drop_message(r, n);
      prune(r, n);
    }
    return 0;
  }
  uint64_t old = n && n->body ? n->body->bytes.len : 0;
  int rc = 0;
  if (old == 0 && r->max_topics > 0 && r->topics >= r->max_topics)
    rc = TERND_ERETAINED_TOPICS;
  else if (r->max_bytes > 0 && r->bytes - old + body->bytes.len > r->max_bytes)
    rc = TERND_ERETAINED_BYTES;
  else if (n == NULL && (n = find(r, topic, tlen, true)) == NULL)
    rc = TP_ENOMEM;
  if (rc != 0) {
    msgbuf_unref(body);
    return rc;
  }
  if (ttl_ms > 0) {
    n->deadline = now_ms(r) + ttl_ms;
    if (heap_update(r, n) != 0) {
      /* Without a heap slot it could never expire: refuse it. */
      msgbuf_unref(body);
      prune(r, n);
      return TP_ENOMEM;
    }
  } else {
    heap_remove(r, n);
  }
  if (n->body != NULL) {
    r->bytes -= n->body->bytes.len;
    msgbuf_unref(n->body);
  } else {
    r->topics++;
  }
  n->body = body;
  r->bytes += body->bytes.len;
  rearm(r);
  return 0;
}

typedef struct walk {
  retained_visit_fn visit;
  void *ud;
  uint64_t visited;
} walk_t;

/* Every message below n (not n's own): what '>' matches. */
static void walk_subtree(walk_t *w, const rnode_t *n) {
  if (n->children == NULL)
    return;
  size_t pos = 0;
  const void *key;
  size_t klen;
  void *val;
  while (hashmap_next(n->children, &pos, &key, &klen, &val) == 1) {
    const rnode_t *c = val;
    w->visited++;
    if (c->body != NULL)
      w->visit(w->ud, c->body);
    walk_subtree(w, c);
  }
}

static void walk(walk_t *w, const rnode_t *n, const char *p, size_t len);

/* Child c matched one token: visit its message when that was the pattern's
 * last token, else match the rest (next[0..rest)) below it. */
static void walk_child(walk_t *w, const rnode_t *c, bool last, const char *next,
                       size_t rest) {
  w->visited++;
  if (last) {
    if (c->body != NULL)
      w->visit(w->ud, c->body);
  } else {
    walk(w, c, next, rest);
  }
}

/* Matches the pattern p[0..len) against the children of n. */
static void walk(walk_t *w, const rnode_t *n, const char *p, size_t len) {
  size_t k = token_len(p, len);
  size_t rest = k < len ? len - k - 1 : 0;
  const char *next = p + k + (k < len);
  if (k == 1 && p[0] == '>') {
    walk_subtree(w, n);
    return;
  }
  if (k == 1 && p[0] == '*') {
    if (n->children == NULL)
      return;
    size_t pos = 0;
    const void *key;
    size_t klen;
    void *val;
    while (hashmap_next(n->children, &pos, &key, &klen, &val) == 1)
      walk_child(w, val, k == len, next, rest);
    return;
  }
  const rnode_t *c = child_get(n, p, k);
  if (c != NULL)
    walk_child(w, c, k == len, next, rest);
}

uint64_t retained_match(retained_t *r, const char *pattern, size_t plen,
                        retained_visit_fn visit, void *ud) {
  if (r->shared)
    retained_expire(r);
  walk_t w = {visit, ud, 1};
  if (plen > 0 && r->topics > 0)
    walk(&w, &r->root, pattern, plen);
  return w.visited;
}

typedef struct each {
  retained_each_fn fn;
  void *ud;
  uint64_t now;
} each_t;

static void each_below(const each_t *e, const rnode_t *n) {
  if (n->children == NULL)
    return;
  size_t pos = 0;
  const void *key;
  size_t klen;
  void *val;
  while (hashmap_next(n->children, &pos, &key, &klen, &val) == 1) {
    const rnode_t *c = val;
    if (c->body != NULL) {
      uint64_t left = 0;
      if (c->heap_at != 0)
        left = c->deadline > e->now ? c->deadline - e->now : 1;
      e->fn(e->ud, c->body, left);
    }
    each_below(e, c);
  }
}

void retained_each(retained_t *r, retained_each_fn fn, void *ud) {
  if (r->shared)
    retained_expire(r);
  each_t e = {fn, ud, now_ms(r)};
  each_below(&e, &r->root);
}

void retained_get_stats(const retained_t *r, retained_stats_t *st) {
  st->topics = r->topics;
  st->bytes = r->bytes;
  st->nodes = r->nodes;
  st->expired = r->expired;
}

static void node_probes(const rnode_t *n, hashmap_probes_t *acc) {
  if (n->children == NULL)
    return;
  hashmap_probes_add(n->children, acc);
  size_t pos = 0;
  void *val;
  while (hashmap_next(n->children, &pos, NULL, NULL, &val) == 1)
    node_probes(val, acc);
}

void retained_probes(const retained_t *r, hashmap_probes_t *acc) {
  node_probes(&r->root, acc);
}
