#include "delivery/worker.h"

#include <string.h>

#include "data/outq.h"

void worker_init(worker_t *w, broker_t *b, uv_loop_t *loop) {
  memset(w, 0, sizeof *w);
  w->broker = b;
  w->loop = loop;
  list_init(&w->conns);
  list_init(&w->flush_list);
  list_init(&w->close_list);
  list_init(&w->resume_list);
  list_init(&w->stalled_subs);
  list_init(&w->partial_list);
  list_init(&w->graveyard);
  list_init(&w->grave_closing);
  list_init(&w->full_groups);
  list_init(&w->xpend_subs);
  w->sub_env.loop = loop;
  w->sub_env.stalled = &w->stalled_subs;
  w->sub_env.worker = w;
  tp_buf_init(&w->scratch);
  w->write_cap = SERVER_WRITE_CAP_PER_TURN;
  w->gate = &b->gate;
}

uint64_t worker_pending_total(const worker_t *w) {
  uint64_t total = outq_pool_pending_bytes(w->entries);
  const broker_t *b = w->broker;
  for (int i = 0; i < b->nworkers; i++) {
    if (i != w->wid)
      total += atomic_load_explicit(&b->workers[i]->pending_shared,
                                    memory_order_relaxed);
  }
  return total;
}
