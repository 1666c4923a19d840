/*
 * Memory pressure as one worker applies it (the gate's rules are in
 * delivery/pending_gate.h): the pressure state once per loop turn, and
 * the last resort that closes the connection holding the most. Here, with
 * the sessions, because it acts on connections.
 */
#ifndef TERND_PRESSURE_H
#define TERND_PRESSURE_H

#include <stdint.h>

#include "delivery/worker.h"

/* The bytes the gate compares with its cap. */
uint64_t pressure_total(const worker_t *w);
/* Before-sleep hook: updates the pressure state (logs its changes) and
 * returns the bytes each connection may write this turn. */
uint64_t pressure_check(worker_t *w);
/* Stall timer: the last resort, closes the largest holder when the total
 * has stayed at the cap for stall_timeout. */
void pressure_stall_check(worker_t *w, uint64_t now);

#endif
