/*
 * Pending counts, credited by the output queue.
 */
#include "data/pending.h"

#include <stddef.h>

#include "data/outq_entry.h"

void pending_init(pending_t *p, uint64_t low_msgs, uint64_t low_bytes) {
  *p = (pending_t){.low_msgs = low_msgs, .low_bytes = low_bytes};
  list_init(&p->pending);
}

void pending_entry_queued(pending_t *p, outq_entry_t *e) {
  e->pend = p;
  list_insert_tail(&p->pending, &e->sub_link);
  if (p->first_queued == NULL)
    p->first_queued = e; /* all before it are in flight */
  p->pending_msgs++;
  p->pending_bytes += e->bytes;
}

/*
 * The low-water mark: blocked publishers resume once the queue is at most
 * half full in both messages and bytes, so they do not flap on and off
 * with every message written.
 */
static void check_drained(pending_t *p) {
  if (p->drained != NULL && p->pending_msgs <= p->low_msgs &&
      p->pending_bytes <= p->low_bytes)
    p->drained(p);
}

void pending_entry_released(pending_t *p, outq_entry_t *e) {
  if (p->first_queued == e)
    p->first_queued = pending_next(p, e);
  list_remove(&e->sub_link);
  e->pend = NULL;
  p->pending_msgs--;
  p->pending_bytes -= e->bytes;
  check_drained(p);
}

void pending_run_released(pending_t *p, uint64_t msgs, uint64_t bytes) {
  p->chunk_runs--;
  p->pending_msgs -= msgs;
  p->pending_bytes -= bytes;
  check_drained(p);
}

outq_entry_t *pending_next(const pending_t *p, outq_entry_t *e) {
  list_node_t *n = e->sub_link.next;
  return n == &p->pending ? NULL : LIST_ENTRY(n, outq_entry_t, sub_link);
}

void pending_forget(pending_t *p) {
  list_node_t *n;
  while ((n = list_first(&p->pending)) != NULL) {
    outq_entry_t *e = LIST_ENTRY(n, outq_entry_t, sub_link);
    e->pend = NULL;
    list_remove(n);
  }
  if (p->gap_notice != NULL) /* still sent, as a plain control frame */
    p->gap_notice->pend = NULL;
}
