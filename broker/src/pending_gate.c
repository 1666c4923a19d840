/*
 * The server-wide cap on pending bytes (see pending_gate.h).
 */
#include "pending_gate.h"

#include <uv.h>

#include "conn.h"
#include "log.h"
#include "memlimit.h"
#include "server.h"
#include "tern_proto/errors.h"

#define DEFAULT_CAP_MAX (1024ull * 1024ull * 1024ull)

void pending_gate_init(pending_gate_t *g, uint64_t cap) {
  if (cap == 0) {
    /* A quarter of memory leaves room for the kernel's socket buffers, the
     * read buffers and everything else on a small machine; in a container
     * the memory is its cgroup's limit, not the host's RAM. */
    memlimit_t m;
    memlimit_read(&m);
    uint64_t mem = memlimit_effective(&m);
    uint64_t quarter = mem / 4;
    cap = quarter > 0 && quarter < DEFAULT_CAP_MAX ? quarter : DEFAULT_CAP_MAX;
    LOG(LOG_INFO,
        "max_pending_total %llu MiB: min(1 GiB, a quarter of %llu MiB, the "
        "%s)",
        (unsigned long long)(cap >> 20), (unsigned long long)(mem >> 20),
        mem == m.physical ? "physical memory" : "cgroup's memory limit");
  }
  g->high = cap;
  g->low = cap - cap / 10;
  list_init(&g->paused);
  g->closed_at = 0;
  g->times_shut = 0;
  g->evictions = 0;
}

uint64_t pending_gate_total(const server_t *srv) {
  return outq_pool_pending_bytes(srv->entries);
}

void pending_gate_after_pub(server_t *srv, conn_t *c) {
  pending_gate_t *g = &srv->gate;
  if (c->paused_total || c->state != CONN_ACTIVE ||
      pending_gate_total(srv) < g->high)
    return;
  if (list_empty(&g->paused)) {
    g->times_shut++;
    g->closed_at = uv_now(srv->loop);
    LOG(LOG_INFO,
        "pending bytes %llu reached max_pending_total %llu: pausing "
        "publishers",
        (unsigned long long)pending_gate_total(srv),
        (unsigned long long)g->high);
  }
  c->paused_total = true;
  list_insert_tail(&g->paused, &c->gate_link);
  /* process_frames stops reading once this frame is done. */
}

void pending_gate_forget(conn_t *c) {
  list_remove(&c->gate_link);
  c->paused_total = false;
}

void pending_gate_check(server_t *srv) {
  pending_gate_t *g = &srv->gate;
  if (list_empty(&g->paused) || pending_gate_total(srv) > g->low)
    return;
  LOG(LOG_INFO, "pending bytes %llu below %llu: resuming publishers",
      (unsigned long long)pending_gate_total(srv), (unsigned long long)g->low);
  list_node_t *n;
  while ((n = list_first(&g->paused)) != NULL) {
    conn_t *c = LIST_ENTRY(n, conn_t, gate_link);
    list_remove(n);
    c->paused_total = false;
    /* Still blocked by a full `block` queue: that one resumes it. */
    if (c->nblocked == 0 && c->state == CONN_ACTIVE &&
        !list_linked(&c->resume_link))
      list_insert_tail(&srv->resume_list, &c->resume_link);
  }
}

/*
 * The gate has been shut for stall_timeout: some consumers hold the bytes
 * and do not read. Closing the one that holds the most frees the most and
 * punishes the likeliest culprit; one per stall_timeout, so a consumer that
 * was merely slow for a moment gets a chance once its neighbour is gone.
 */
void pending_gate_stall_check(server_t *srv, uint64_t now) {
  pending_gate_t *g = &srv->gate;
  if (list_empty(&g->paused) || now - g->closed_at < srv->cfg.stall_timeout_ms)
    return;
  conn_t *worst = NULL;
  for (list_node_t *n = srv->conns.next; n != &srv->conns; n = n->next) {
    conn_t *c = LIST_ENTRY(n, conn_t, all_link);
    if (c->state == CONN_ACTIVE &&
        (worst == NULL || c->out.bytes > worst->out.bytes))
      worst = c;
  }
  g->closed_at = now;
  if (worst == NULL || worst->out.bytes == 0)
    return;
  g->evictions++;
  srv->stats.slow_consumers++;
  LOG(LOG_INFO,
      "conn %llu (%s): holds %llu pending bytes while max_pending_total "
      "has paused publishers for %llu ms, closing as a slow consumer",
      (unsigned long long)worst->id, worst->addr,
      (unsigned long long)worst->out.bytes,
      (unsigned long long)srv->cfg.stall_timeout_ms);
  conn_fail(worst, TP_WIRE_SLOW_CONSUMER,
            "slow consumer (server pending limit)");
}
