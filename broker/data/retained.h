/*
 * The retained store: the last message published with `retain` on each
 * topic (protocol/PROTOCOL.md "Delivery").
 *
 * Index: a token trie, one node per topic token, children in a hash map,
 * so a pattern is matched by walking only the branches it can match: a
 * literal token is one lookup, `*` visits the children of one node, `>` a
 * subtree. Each walk reports the nodes it visited (tests and metrics).
 *
 * Expiry: messages with a ttl sit in one min-heap by deadline, and one
 * uv_timer is armed for the earliest; nothing scans the store per publish
 * or per tick.
 *
 * Caps: retained topics and retained bytes (the encoded MSG bodies:
 * topic, payload, opts). A put that would pass a cap is refused and the
 * store is left as it was.
 *
 * A message is kept as a ready MSG body (encoded with `retained: true`) in
 * a msgbuf: delivering it queues a reference, like any live message.
 */
#ifndef TERND_RETAINED_H
#define TERND_RETAINED_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/errors.h"
#include "data/msgbuf.h"

typedef struct retained retained_t;

/*
 * A store whose expiry timer is `timer` (initialised by the caller, which
 * closes it; the store only starts and stops it). Caps of 0 mean none.
 * 0 or TP_ENOMEM.
 */
int retained_create(retained_t **out, uv_timer_t *timer, uint64_t max_topics,
                    uint64_t max_bytes);
/*
 * Several loops share the store: from now on it never touches its timer;
 * its clock is the process's (uv_hrtime), expired messages are removed
 * before each match and by retained_expire. Every call is then made under
 * the caller's lock.
 */
void retained_share(retained_t *r);
/* Removes the messages whose ttl has passed. */
void retained_expire(retained_t *r);
/* Frees every node and releases every body. */
void retained_destroy(retained_t *r);

/*
 * Sets topic's retained message to body (takes the caller's reference
 * whatever the result), expiring after ttl_ms (0: never). body NULL deletes
 * it. 0, TERND_ERETAINED_TOPICS, TERND_ERETAINED_BYTES or TP_ENOMEM.
 */
int retained_put(retained_t *r, const char *topic, size_t tlen, msgbuf_t *body,
                 uint64_t ttl_ms);

/* Calls visit for each retained message whose topic matches the (valid)
 * pattern. Returns the number of trie nodes visited. */
typedef void (*retained_visit_fn)(void *ud, msgbuf_t *body);
/* Every retained message with the ms it has left (0: no expiry), for a
 * cluster's snapshot. */
typedef void (*retained_each_fn)(void *ud, msgbuf_t *body, uint64_t ttl_left);
void retained_each(retained_t *r, retained_each_fn fn, void *ud);
uint64_t retained_match(retained_t *r, const char *pattern, size_t plen,
                        retained_visit_fn visit, void *ud);

typedef struct retained_stats {
  uint64_t topics, bytes; /* retained now */
  uint64_t nodes;         /* trie nodes alive (the root included) */
  uint64_t expired;       /* removed by their ttl so far */
} retained_stats_t;
void retained_get_stats(const retained_t *r, retained_stats_t *st);

/* What the trie's hash lookups cost, added to *acc: see hashmap_probes_add.
 * Walks the whole store, for tests and diagnostics. */
struct hashmap_probes;
void retained_probes(const retained_t *r, struct hashmap_probes *acc);

#endif
