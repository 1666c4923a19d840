/*
 * The server-wide cap on pending bytes (max_pending_total), and who pays
 * when the sum of pending bytes nears it.
 *
 * Per-subscription limits bound each queue, but not their sum: many
 * subscribers that stop reading could still hold limits x subscriptions.
 * The cap bounds the sum, and the pressure near it falls on those who hold
 * the bytes: pausing every publisher at the cap would let a few
 * subscribers that stop reading freeze publishers of unrelated topics,
 * though those subscribers often asked to lose messages rather than slow
 * anyone.
 *
 * Pressure. Below half the cap (the soft mark) nothing changes. From the
 * soft mark on, every subscription gets a byte budget that shrinks as the
 * total rises: twice the room left below the cap, never less than
 * PENDING_GATE_FLOOR, and 0 at the cap. A subscription holding more than
 * its budget is treated exactly as if it were over its own max_bytes, so
 * its own policy applies early:
 *   - drop_newest drops the new message, drop_oldest evicts its oldest
 *     queued ones (DROPPED is sent as for any other drop, at the gap);
 *   - disconnect closes the connection with ERR 6;
 *   - block queues the message and pauses the publisher that sent it
 *     (the per-subscription waiter mechanism of sub.h), until the queue
 *     drains; after stall_timeout that subscriber is closed (ERR 6).
 * The budget is the same for everyone, so the largest holders reach it
 * first; a subscriber that keeps up holds (almost) nothing and is never
 * touched below the cap, nor is its publisher. A budget that halves the
 * distance to the cap makes N identical non-readers settle at
 * 2N/(2N+1) of the cap instead of at it. The floor keeps a subscriber
 * with a small backlog (a burst, a write in flight) out of it; at the cap
 * the budget is 0, so only empty queues take a message (one each): the
 * total cannot run away however many subscriptions hold a floor.
 *
 * Only when the total stays at or above the cap for stall_timeout (bytes
 * nobody can give back: writes in flight, drop_newest queues that no
 * longer grow) is the connection holding the most closed with ERR 6, one
 * per stall_timeout: the last resort, kept for bytes no policy can free.
 *
 * Writes: under pressure a connection hands at most PENDING_GATE_WRITE_CAP
 * bytes per turn to the kernel (SERVER_WRITE_CAP_PER_TURN otherwise), so a
 * subscriber that stops reading pins at most that much in flight (bytes
 * given to uv_write, which no policy can take back).
 */
#ifndef TERND_PENDING_GATE_H
#define TERND_PENDING_GATE_H

#include <stdbool.h>
#include <stdint.h>

/* A subscription's budget under pressure is never below this (until the
 * total reaches the cap). */
#define PENDING_GATE_FLOOR (64u * 1024u)
/* Bytes one connection may write per turn under pressure. */
#define PENDING_GATE_WRITE_CAP (64u * 1024u)

enum {
  PRESSURE_NONE = 0,    /* below the soft mark */
  PRESSURE_SQUEEZE = 1, /* between the soft mark and the cap */
  PRESSURE_OVER = 2     /* at or above the cap */
};

typedef struct pending_gate {
  uint64_t high;       /* the cap */
  uint64_t soft;       /* pressure starts here: high / 2 */
  int state;           /* PRESSURE_*, as of the last before-sleep check */
  uint64_t over_since; /* loop time the total last reached the cap */
  uint64_t evicted_at; /* loop time of the last last-resort close */
  /* Counters. */
  uint64_t episodes;    /* times the total crossed the soft mark */
  uint64_t drops[8];    /* drops by policy caused by pressure */
  uint64_t disconnects; /* ERR 6 caused by pressure */
  uint64_t evictions;   /* of those, last-resort closes */
  uint64_t pauses;      /* publishers paused by pressure */
} pending_gate_t;

/* cap 0 picks the default: min(1 GiB, a quarter of physical memory). */
void pending_gate_init(pending_gate_t *g, uint64_t cap);

/*
 * The byte budget of every subscription when `total` bytes are pending
 * (see the file comment): UINT64_MAX below the soft mark. Called once per
 * PUB, so it is inline and cheap.
 */
static inline uint64_t pending_gate_budget(const pending_gate_t *g,
                                           uint64_t total) {
  if (total < g->soft)
    return UINT64_MAX;
  if (total >= g->high)
    return 0;
  uint64_t b = 2 * (g->high - total);
  return b < PENDING_GATE_FLOOR ? PENDING_GATE_FLOOR : b;
}

/* A worker applies the gate each turn and at its stall timer:
 * session/pressure.h. */

#endif
