/*
 * A subscription: its identity (connection, sid, pattern, queue group),
 * its bounded pending queue and the policy applied when that is full.
 *
 * The pending queue is not a separate buffer: a subscription's pending
 * messages are entries in its connection's output queue (outq.h), linked a
 * second time into the subscription's own list, oldest first. So the
 * connection writes everything in order while the subscription still knows
 * its own messages (to count them against its limits, and to drop the
 * oldest). "Pending" ends when the bytes reach the kernel.
 *
 * Small MSGs of subscriptions that never evict (every policy but
 * drop_oldest) are copied into the connection's chunks instead
 * (outq.h) and are not in that list: they are counted in the same
 * pending_msgs / pending_bytes, and credited by run when their chunk is
 * released.
 *
 * Blocking: a publisher that fills a `block` subscription is recorded as a
 * waiter; once the queue drains to half its limits (or the subscription
 * goes away) every waiter is released and resumes reading.
 */
#ifndef TERND_SUB_H
#define TERND_SUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/list.h"
#include "data/pending.h"
#include "tern_proto/frame.h"

struct conn;
struct endpoint;
struct msgbuf;
struct outq;
struct outq_entry;
struct sub;
struct worker;

/*
 * What subscriptions need from around them, given once per event loop by
 * the layer that makes them (the session): the loop's clock, the list of
 * subscriptions with blocked publishers (closed after stall_timeout by the
 * server), and how a publisher is told that it waits on a subscription or
 * no longer does. The delivery core calls these; it does not name them.
 */
typedef struct sub_env {
  uv_loop_t *loop;
  list_node_t *stalled;
  /* publisher now waits on s (it stops reading after the frame it is
   * handling). 0 or TP_ENOMEM. */
  int (*block)(struct conn *publisher, struct sub *s);
  /* s no longer holds publisher back (it resumes when nothing does). */
  void (*unblock)(struct conn *publisher, struct sub *s);
  /* Deliver there: called on loop `from` for s, a subscription of this
   * loop, with a message published there (reply: its reply topic, or
   * NULL); true when taken. NULL while the broker runs one loop, which
   * then owns every subscription; with several, every loop sets it (the
   * router tests ownership only then). */
  bool (*hand_over)(struct worker *from, struct sub *s,
                    struct endpoint *publisher, struct msgbuf *body,
                    const tp_str_t *reply);
  /* publisher (of this loop) now waits on s, a subscription of loop wid:
   * 1 when it did not already, 0 when it did, TP_ENOMEM. */
  int (*block_remote)(struct conn *publisher, struct sub *s, int wid);
  /* s no longer holds back publisher conn_id of loop wid (another loop). */
  void (*unblock_remote)(struct sub *s, int wid, uint64_t conn_id);
  struct worker *worker; /* the loop's worker (delivery/worker.h) */
} sub_env_t;

/* A publisher of another loop blocked on a subscription of this one. */
typedef struct remote_waiter {
  uint64_t conn_id;
  int wid;
} remote_waiter_t;

typedef struct sub {
  struct conn *conn;    /* owner */
  struct endpoint *ep;  /* the owner as the router sees it (endpoint.h) */
  struct outq *out;     /* the owner's output queue */
  const sub_env_t *env; /* the owner's event loop */
  uint64_t sid;
  uint8_t sid_key[8]; /* the key in the connection's sid map */
  char *pattern;      /* NUL-terminated, in this struct's block */
  size_t plen;
  char *queue; /* in this struct's block, or NULL for a plain one */
  size_t qlen;
  bool remote; /* a route's: another node's interest (endpoint_t.route) */

  /* Limits and policy. */
  uint64_t max_msgs;
  uint64_t max_bytes;
  int policy; /* tp_overflow, never UNSET */

  /* Its messages in the connection's output queue (data/pending.h);
   * `drained` is set while publishers wait on it. */
  pending_t q;

  /* UNSUB max_msgs: ends once `delivered` reaches it (0: never). */
  uint64_t unsub_at;
  bool ending; /* reached unsub_at; removed after the fan-out */

  /* Publishers blocked on this subscription. */
  struct conn **waiters;
  size_t nwaiters, waiters_cap;
  uint64_t blocked_since;   /* loop time (ms) the first waiter came */
  list_node_t stalled_link; /* in env->stalled while it has waiters */
  /* Publishers of other loops blocked on it (several loops only). */
  remote_waiter_t *rwaiters;
  size_t nrwaiters, rwaiters_cap;
  /* Several loops: out of every index, freed once every queue that could
   * still name it has been drained (delivery/handoff.h). */
  bool dead;
  list_node_t grave_link;
  struct sub *self; /* = this: its key in the worker's live_subs (the map
                       keeps a pointer to the key, not a copy) */
  /* A queue-group member's fullness as other loops see it (they pick
   * members that are not full); in the worker's full_groups while set. */
  atomic_bool x_full;
  list_node_t full_link;
  /* A `block` subscription as publishers of other loops see it: what this
   * loop holds (as of its last turn). A publisher there stops as soon as
   * this and what it handed over and this loop has not taken yet reach a
   * limit, as it would here (delivery/handoff.h). */
  _Atomic uint64_t x_pending_msgs, x_pending_bytes;
  list_node_t xpend_link; /* in the worker's xpend_subs while they move */

  /* Counters. */
  uint64_t delivered; /* queued for the subscriber */
  uint64_t dropped;   /* discarded by drop_oldest / drop_newest */
  uint64_t dropped_unreported;
  uint64_t times_blocked;
} sub_t;

/*
 * A subscription of conn for the decoded SUB, with limits taken from the
 * SUB options and capped by the server's. Not yet in any index.
 * NULL when out of memory.
 */
sub_t *sub_create(struct conn *conn, struct endpoint *ep, struct outq *out,
                  const sub_env_t *env, const tp_sub_t *req,
                  uint64_t max_msgs_cap, uint64_t max_bytes_cap);
/*
 * Frees the subscription. Its pending entries stay in the connection's
 * queue (they are still sent) but stop counting against it; blocked
 * publishers are released. It must already be out of the subject index and
 * the connection's sid map.
 */
void sub_destroy(sub_t *s);

/* True when one more message of `bytes` would exceed a limit. An empty
 * queue always takes a message, however large. */
static inline bool sub_would_overflow(const sub_t *s, uint64_t bytes) {
  if (s->q.pending_msgs == 0)
    return false;
  return s->q.pending_msgs + 1 > s->max_msgs ||
         s->q.pending_bytes + bytes > s->max_bytes;
}
/*
 * drop_oldest's test: the limits apply to the messages it can still evict,
 * those not yet handed to uv_write, so the newest max_msgs always survive.
 * What is in flight on top is bounded by one write per connection
 * (SERVER_WRITE_CAP_PER_TURN plus one frame).
 */
static inline bool sub_would_overflow_queued(const sub_t *s, uint64_t bytes) {
  uint64_t msgs = s->q.pending_msgs - s->q.inflight_msgs;
  if (msgs == 0)
    return false;
  return msgs + 1 > s->max_msgs ||
         s->q.pending_bytes - s->q.inflight_bytes + bytes > s->max_bytes;
}
/* True when the queue is at or above a limit. */
static inline bool sub_is_full(const sub_t *s) {
  return s->q.pending_msgs >= s->max_msgs || s->q.pending_bytes >= s->max_bytes;
}

/*
 * The same three tests under memory pressure (pending_gate.h): the byte
 * limit is also the server's budget for every subscription right now
 * (UINT64_MAX without pressure, so these are then the tests above). One
 * more comparison each rather than a min(): this is the fan-out's path.
 */
static inline bool sub_over_budget(const sub_t *s, uint64_t bytes,
                                   uint64_t budget) {
  if (s->q.pending_msgs == 0)
    return false;
  uint64_t after = s->q.pending_bytes + bytes;
  return s->q.pending_msgs + 1 > s->max_msgs || after > s->max_bytes ||
         after > budget;
}
static inline bool sub_over_budget_queued(const sub_t *s, uint64_t bytes,
                                          uint64_t budget) {
  uint64_t msgs = s->q.pending_msgs - s->q.inflight_msgs;
  if (msgs == 0)
    return false;
  uint64_t after = s->q.pending_bytes - s->q.inflight_bytes + bytes;
  return msgs + 1 > s->max_msgs || after > s->max_bytes || after > budget;
}
static inline bool sub_full_budget(const sub_t *s, uint64_t budget) {
  return s->q.pending_msgs >= s->max_msgs ||
         s->q.pending_bytes >= s->max_bytes || s->q.pending_bytes >= budget;
}

/* Accounts a newly queued entry to s. */
static inline void sub_entry_queued(sub_t *s, struct outq_entry *e) {
  pending_entry_queued(&s->q, e);
}
/* Called by the output queue when an entry of s is written or dropped. */
static inline void sub_entry_released(sub_t *s, struct outq_entry *e) {
  pending_entry_released(&s->q, e);
}
/* The oldest pending entry that is not in flight, or NULL. */
static inline struct outq_entry *sub_oldest_droppable(const sub_t *s) {
  return s->q.first_queued;
}

/* Records publisher as blocked on s (once). 0 or TP_ENOMEM. */
int sub_add_waiter(sub_t *s, struct conn *publisher);
/* Forgets publisher (it is closing). */
void sub_remove_waiter(sub_t *s, struct conn *publisher);
/* Releases every waiter: each resumes once nothing else blocks it. */
void sub_release_waiters(sub_t *s);
/* Records publisher conn_id of loop wid as blocked on s: 1 when it was
 * not already, 0 when it was, TP_ENOMEM. */
int sub_add_remote_waiter(sub_t *s, int wid, uint64_t conn_id);
/* Forgets it (it closed). */
void sub_remove_remote_waiter(sub_t *s, int wid, uint64_t conn_id);
/* Everything sub_destroy does but the free (several loops: the memory
 * stays until no queue can name it). */
void sub_retire(sub_t *s);

#endif
