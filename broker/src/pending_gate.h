/*
 * The server-wide cap on pending bytes (max_pending_total).
 *
 * Per-subscription limits bound each queue, but not their sum: many
 * subscribers that stop reading could still hold limits x subscriptions.
 * The gate bounds the sum. Once the bytes pending in every output queue
 * (outq_pool_pending_bytes: shared bodies once, plus each entry) reach the
 * cap, every connection that publishes is paused after the PUB it is
 * handling: its socket is no longer read, so TCP pushes back on the
 * producer, and nothing is dropped. When the total falls to the low-water
 * mark (90% of the cap) every paused publisher resumes, in the order it
 * was paused.
 *
 * Liveness: like a full `block` queue, a gate that stays closed for
 * stall_timeout means consumers that do not read. Then the connection
 * holding the most pending bytes is closed as a slow consumer (ERR 6),
 * one per stall_timeout, until the total falls below the low-water mark.
 */
#ifndef TERND_PENDING_GATE_H
#define TERND_PENDING_GATE_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"

struct conn;
struct server;

typedef struct pending_gate {
  uint64_t high;       /* the cap: publishers pause at or above it */
  uint64_t low;        /* they resume at or below this */
  list_node_t paused;  /* connections paused by the gate, oldest first */
  uint64_t closed_at;  /* loop time the gate last closed or evicted */
  uint64_t times_shut; /* counter: times the gate closed */
  uint64_t evictions;  /* counter: connections closed for stalling it */
} pending_gate_t;

/* cap 0 picks the default: min(1 GiB, a quarter of physical memory). */
void pending_gate_init(pending_gate_t *g, uint64_t cap);

/* The bytes the gate compares with its cap. */
uint64_t pending_gate_total(const struct server *srv);

/* After c handled a PUB: pauses c when the total is at the cap. */
void pending_gate_after_pub(struct server *srv, struct conn *c);
/* c is closing: it leaves the paused list. */
void pending_gate_forget(struct conn *c);
/* Before-sleep hook: resumes every paused publisher once the total is at
 * or below the low-water mark. */
void pending_gate_check(struct server *srv);
/* Stall timer: closes the largest consumer when the gate has been shut
 * for stall_timeout. */
void pending_gate_stall_check(struct server *srv, uint64_t now);

#endif
