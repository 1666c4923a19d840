/*
 * The subject index: which subscriptions match a topic.
 *
 * A token trie over patterns ('*' and '>' children per node) with a per-topic
 * match cache, so the common case of a repeated topic is one hash lookup.
 * Any insert or remove invalidates the cache (a generation counter, so
 * invalidation is O(1)); the cache is bounded in entries.
 *
 * Subscriptions are opaque `void *` to the index: it never dereferences or
 * frees them. The same pointer may be inserted under several patterns only
 * if the caller removes each insertion separately.
 */
#ifndef TERND_SUBLIST_H
#define TERND_SUBLIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct sublist sublist_t;

/* A queue group within one match result: all matching members that share a
 * queue name, across connections and patterns. */
typedef struct sublist_group {
  const char *name; /* borrowed from the index, not NUL-terminated */
  size_t name_len;
  void *const *members;
  size_t nmembers;
  uint32_t *cursor; /* round-robin position, owned by the result; the router
                       advances it to balance members */
} sublist_group_t;

typedef struct sublist_result {
  void *const *plain; /* plain (non-queue) subscriptions, each once */
  size_t nplain;
  const sublist_group_t *groups;
  size_t ngroups;
} sublist_result_t;

/* cache_max: match results kept (0 picks a default, e.g. 4096). */
int sublist_create(sublist_t **out, size_t cache_max);
/* Frees the index (not the subscriptions). */
void sublist_destroy(sublist_t *sl);

/* pattern must be valid (tp_pattern_validate). queue may be NULL / 0 length
 * for a plain subscription. The index copies pattern and queue.
 * 0 or TP_ENOMEM. */
int sublist_insert(sublist_t *sl, const char *pattern, size_t plen,
                   const char *queue, size_t qlen, void *sub);
/* 0, or -1 when (pattern, queue, sub) was not inserted. Frees trie nodes
 * that become empty. */
int sublist_remove(sublist_t *sl, const char *pattern, size_t plen,
                   const char *queue, size_t qlen, void *sub);

/* Matches a valid topic (no wildcards). *out is owned by the index and valid
 * until the next insert/remove/match call on sl. 0 or TP_ENOMEM. */
/* (sublist.c) In fact insert and remove only mark cached results stale and
 * never free them, so *out (and its arrays, names and cursors) stays
 * readable until the next sublist_match or sublist_destroy: a router may
 * remove a subscription (UNSUB max_msgs reached) while it walks *out, which
 * may then still list it. A rebuilt result's cursors start at a
 * pseudo-random value, so constant churn elsewhere in the index (request
 * inboxes come and go) does not pin every message to a group's first member. */
int sublist_match(sublist_t *sl, const char *topic, size_t tlen,
                  const sublist_result_t **out);

/* Number of insertions currently held. */
size_t sublist_count(const sublist_t *sl);

/* Statistics for tests and metrics. */
typedef struct sublist_stats {
  uint64_t matches;     /* sublist_match calls */
  uint64_t cache_hits;  /* answered from the cache */
  uint64_t nodes;       /* trie nodes alive */
  size_t cache_entries; /* results cached now */
} sublist_stats_t;
void sublist_get_stats(const sublist_t *sl, sublist_stats_t *st);

/* What the index's hash lookups cost (every node's children and the match
 * cache), added to *acc: see hashmap_probes_add. Walks the whole trie, for
 * tests and diagnostics. */
struct hashmap_probes;
void sublist_probes(const sublist_t *sl, struct hashmap_probes *acc);

#endif
