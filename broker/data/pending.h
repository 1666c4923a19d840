/*
 * A pending count: the messages of one subscription that sit in its
 * connection's output queue, as the queue itself keeps them.
 *
 * The output queue (outq.h) holds the frames; each MSG entry, and each run
 * of MSGs in a chunk (outq.h), points at the pending count it is
 * accounted to, and the queue credits that count as it writes, drops or
 * clears them. The count lives in this layer, below the subscriptions that
 * embed it (delivery/sub.h), so that the queue needs nothing above it: a
 * subscription reads its count to apply its limits and policy, and learns
 * that its queue drained through the `drained` callback it set.
 *
 * MSG entries are linked a second time into `pending`, oldest first.
 * Entries go in flight in queue order and leave from the front, so the
 * list is [in flight...][queued...]; first_queued is the first queued one
 * (NULL: none), which drop_oldest evicts without walking past the others
 * (a subscriber that stops reading keeps a whole write of them in
 * flight). Small MSGs copied into chunks are counted in pending_msgs and
 * pending_bytes but are not in the list: they are credited by run.
 */
#ifndef TERND_PENDING_H
#define TERND_PENDING_H

#include <stdbool.h>
#include <stdint.h>

#include "base/list.h"

struct outq_entry;

typedef struct pending {
  list_node_t pending; /* outq entries via sub_link, oldest first */
  struct outq_entry *first_queued;
  uint64_t pending_msgs;
  uint64_t pending_bytes;
  /* Of those, handed to the write: drop_oldest cannot evict them. */
  uint64_t inflight_msgs;
  uint64_t inflight_bytes;
  /* Runs in the connection's chunks that point here (outq_detach_pending
   * detaches them). */
  uint64_t chunk_runs;
  /* drop_oldest: the DROPPED notice queued where the current gap is (just
   * before the oldest queued MSG when it was made) and not sent yet, and
   * its count; later evictions add to it. NULL when none. */
  struct outq_entry *gap_notice;
  uint64_t gap_notice_count;
  /* The low-water mark, and what to call when a release brings the count
   * to it or below in both messages and bytes (NULL: nobody waits). */
  uint64_t low_msgs, low_bytes;
  void (*drained)(struct pending *p);
} pending_t;

/* An empty count whose low-water mark is low_msgs / low_bytes. */
void pending_init(pending_t *p, uint64_t low_msgs, uint64_t low_bytes);

/* Accounts a newly queued entry to p. */
void pending_entry_queued(pending_t *p, struct outq_entry *e);
/* Called by the output queue when an entry of p is written or dropped. */
void pending_entry_released(pending_t *p, struct outq_entry *e);
/* A MSG of `bytes` appended to a chunk run of p; new_run: it opened the
 * run. */
static inline void pending_run_msg_queued(pending_t *p, uint64_t bytes,
                                          bool new_run) {
  p->chunk_runs += new_run;
  p->pending_msgs++;
  p->pending_bytes += bytes;
}
/* Called when a chunk holding a run of p (msgs MSGs, bytes bytes) is
 * released: written, dropped or cleared. */
void pending_run_released(pending_t *p, uint64_t msgs, uint64_t bytes);
/* From the output queue: e went in flight or was released; if it is p's
 * open gap notice, its count is final and the next gap gets a new one. */
static inline void pending_notice_sealed(pending_t *p, struct outq_entry *e) {
  if (p->gap_notice == e) {
    p->gap_notice = NULL;
    p->gap_notice_count = 0;
  }
}
/* The entry after e in p's list, or NULL. */
struct outq_entry *pending_next(const pending_t *p, struct outq_entry *e);
/* Forgets every entry of p (they are still sent, no longer counted). */
void pending_forget(pending_t *p);

#endif
