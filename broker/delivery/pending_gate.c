/*
 * The server-wide cap on pending bytes and memory pressure (see
 * pending_gate.h).
 */
#include "delivery/pending_gate.h"

#include <string.h>
#include <uv.h>

#include "base/log.h"
#include "base/memlimit.h"
#include "data/outq.h"
#include "server/server.h"
#include "session/conn.h"
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
  memset(g, 0, sizeof *g);
  g->high = cap;
  g->soft = cap / 2;
}

uint64_t pending_gate_total(const server_t *srv) {
  return outq_pool_pending_bytes(srv->worker.entries);
}

uint64_t pending_gate_check(server_t *srv) {
  pending_gate_t *g = &srv->broker.gate;
  uint64_t total = pending_gate_total(srv);
  int state = total >= g->high   ? PRESSURE_OVER
              : total >= g->soft ? PRESSURE_SQUEEZE
                                 : PRESSURE_NONE;
  if (state != g->state) {
    if (g->state == PRESSURE_NONE) {
      g->episodes++;
      LOG(LOG_INFO,
          "pending bytes %llu above half of max_pending_total %llu: the "
          "largest holders lose, disconnect or pause their publishers",
          (unsigned long long)total, (unsigned long long)g->high);
    } else if (state == PRESSURE_NONE) {
      LOG(LOG_INFO, "pending bytes %llu below %llu again: pressure over",
          (unsigned long long)total, (unsigned long long)g->soft);
    }
    if (state == PRESSURE_OVER)
      g->over_since = uv_now(srv->worker.loop);
    g->state = state;
  }
  return state == PRESSURE_NONE ? SERVER_WRITE_CAP_PER_TURN
                                : PENDING_GATE_WRITE_CAP;
}

/*
 * The total has stayed at the cap for stall_timeout: what is held cannot
 * be given back by any policy (writes in flight, drop_newest queues that
 * no longer grow, block queues nobody reads are closed by their own stall
 * check). Closing the connection that holds the most frees the most; one
 * per stall_timeout, so one that was merely slow for a moment gets a
 * chance once its neighbour is gone.
 */
void pending_gate_stall_check(server_t *srv, uint64_t now) {
  pending_gate_t *g = &srv->broker.gate;
  if (g->state != PRESSURE_OVER || pending_gate_total(srv) < g->high ||
      now - g->over_since < srv->broker.cfg.stall_timeout_ms ||
      now - g->evicted_at < srv->broker.cfg.stall_timeout_ms)
    return;
  conn_t *worst = NULL;
  for (list_node_t *n = srv->worker.conns.next; n != &srv->worker.conns;
       n = n->next) {
    conn_t *c = LIST_ENTRY(n, conn_t, all_link);
    if (c->state == CONN_ACTIVE &&
        (worst == NULL || c->out.bytes > worst->out.bytes))
      worst = c;
  }
  g->evicted_at = now;
  if (worst == NULL || worst->out.bytes == 0)
    return;
  g->evictions++;
  g->disconnects++;
  srv->worker.stats.slow_consumers++;
  LOG(LOG_INFO,
      "conn %llu (%s): holds %llu pending bytes while the total has stayed "
      "at max_pending_total for %llu ms, closing as a slow consumer",
      (unsigned long long)worst->id, worst->addr,
      (unsigned long long)worst->out.bytes,
      (unsigned long long)srv->broker.cfg.stall_timeout_ms);
  conn_fail(worst, TP_WIRE_SLOW_CONSUMER,
            "slow consumer (server pending limit)");
}
