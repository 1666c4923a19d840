/*
 * A worker's side of the pending gate (delivery/pending_gate.h).
 */
#include "session/pressure.h"

#include <uv.h>

#include "base/log.h"
#include "data/outq.h"
#include "delivery/pending_gate.h"
#include "session/conn.h"
#include "tern_proto/errors.h"

uint64_t pressure_total(const worker_t *w) {
  return broker_multi(w->broker) ? worker_pending_total(w)
                                 : outq_pool_pending_bytes(w->entries);
}

uint64_t pressure_check(worker_t *w) {
  pending_gate_t *g = w->gate;
  uint64_t total = pressure_total(w);
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
      g->over_since = uv_now(w->loop);
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
void pressure_stall_check(worker_t *w, uint64_t now) {
  pending_gate_t *g = w->gate;
  if (g->state != PRESSURE_OVER || pressure_total(w) < g->high ||
      now - g->over_since < w->broker->cfg.stall_timeout_ms ||
      now - g->evicted_at < w->broker->cfg.stall_timeout_ms)
    return;
  conn_t *worst = NULL;
  for (list_node_t *n = w->conns.next; n != &w->conns; n = n->next) {
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
  w->stats.slow_consumers++;
  LOG(LOG_INFO,
      "conn %llu (%s): holds %llu pending bytes while the total has stayed "
      "at max_pending_total for %llu ms, closing as a slow consumer",
      (unsigned long long)worst->id, worst->addr,
      (unsigned long long)worst->out.bytes,
      (unsigned long long)w->broker->cfg.stall_timeout_ms);
  conn_fail(worst, TP_WIRE_SLOW_CONSUMER,
            "slow consumer (server pending limit)");
}
