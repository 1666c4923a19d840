#include "delivery/worker.h"

#include <string.h>

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
  w->sub_env.loop = loop;
  w->sub_env.stalled = &w->stalled_subs;
  tp_buf_init(&w->scratch);
  w->write_cap = SERVER_WRITE_CAP_PER_TURN;
}
