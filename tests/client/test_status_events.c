/*
 * tern_status_event_t: what a loss cost, as libtern reports it. A broker
 * killed under a connection and started again on the same port; the event
 * of the reconnect carries a nonzero time away and the exact number of
 * publishes refused while the held buffer was full (async API) or timed
 * out in the blocking API's queue; a graceful shutdown without reconnect
 * is reported as TERN_EGOAWAY with the broker's reason, not as a plain
 * close.
 */
#include <string.h>

#include "fixture.h"

#define WAIT_MS 20000
#define MAX_EV 64

TestSuite(status_events, .init = broker_up, .fini = broker_down,
          .timeout = 120);

typedef struct evrec {
  uv_mutex_t mu;
  uv_cond_t cv;
  tern_status_event_t ev[MAX_EV];
  int n;
  int connected; /* connect callbacks */
} evrec_t;

static void evrec_init(evrec_t *r) {
  memset(r, 0, sizeof(*r));
  uv_mutex_init(&r->mu);
  uv_cond_init(&r->cv);
}

static void evrec_destroy(evrec_t *r) {
  uv_cond_destroy(&r->cv);
  uv_mutex_destroy(&r->mu);
}

static void on_event(tern_conn_t *c, const tern_status_event_t *ev, void *d) {
  evrec_t *r = d;
  (void)c;
  uv_mutex_lock(&r->mu);
  if (r->n < MAX_EV) {
    r->ev[r->n++] = *ev;
  }
  uv_cond_broadcast(&r->cv);
  uv_mutex_unlock(&r->mu);
}

/* The k-th (1-based) event with status st, or NULL. */
static const tern_status_event_t *nth(evrec_t *r, tern_status_t st, int k) {
  for (int i = 0; i < r->n; i++) {
    if (r->ev[i].status == st && --k == 0) {
      return &r->ev[i];
    }
  }
  return NULL;
}

/* Blocking API: waits (bounded) for the k-th event st. */
static const tern_status_event_t *wait_ev(evrec_t *r, tern_status_t st, int k) {
  int64_t deadline = tt_now_ms() + WAIT_MS;
  const tern_status_event_t *e;
  uv_mutex_lock(&r->mu);
  while ((e = nth(r, st, k)) == NULL && tt_now_ms() < deadline) {
    uv_cond_timedwait(&r->cv, &r->mu, 50u * 1000u * 1000u);
  }
  uv_mutex_unlock(&r->mu);
  cr_assert_not_null(e, "status %d #%d never came", st, k);
  return e;
}

static tern_options_t event_opts(evrec_t *r) {
  tern_options_t o = test_opts();
  o.status_event_cb = on_event;
  o.cb_data = r;
  o.reconnect_initial_ms = 10;
  o.reconnect_max_ms = 200;
  o.reconnect_max_attempts = -1;
  o.connect_timeout_ms = 2000;
  return o;
}

static void restart_broker(void) {
  tt_broker_start_on(&broker, broker.port, NULL);
}

static void on_connect(tern_conn_t *c, int status, void *d) {
  (void)c;
  cr_assert_eq(status, 0);
  ((evrec_t *)d)->connected++;
}

Test(status_events, async_reconnect_reports_time_away_and_refused_publishes) {
  evrec_t r;
  uv_loop_t loop;
  tern_conn_t *c;
  tern_options_t o;
  uint8_t payload[200] = {0};
  int refused = 0, rc;
  const tern_status_event_t *e;
  evrec_init(&r);
  o = event_opts(&r);
  o.outbound_limit = 4096;
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(tern_conn_connect(&c, &loop, &o, on_connect, &r), 0);
  while (r.connected == 0) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  e = nth(&r, TERN_STATUS_CONNECTED, 1);
  cr_assert_not_null(e);
  cr_expect_eq(e->struct_size, sizeof(tern_status_event_t));
  cr_expect_eq(e->down_ms, 0);
  cr_expect_eq(e->attempts, 0);

  tt_broker_kill(&broker);
  while (nth(&r, TERN_STATUS_DISCONNECTED, 1) == 0) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  e = nth(&r, TERN_STATUS_DISCONNECTED, 1);
  cr_expect_eq(e->pubs_discarded, 0, "nothing was waiting to be written");
  /* Fill the held buffer, then be refused exactly 25 times. The loop does
   * not run meanwhile, so no reconnect can happen in between. */
  while ((rc = tern_conn_publish(c, "ev.t", payload, sizeof(payload), NULL)) ==
         0) {
  }
  cr_assert_eq(rc, TERN_EWOULDBLOCK, "%s", tern_err_name(rc));
  refused = 1;
  while (refused < 25) {
    cr_assert_eq(tern_conn_publish(c, "ev.t", payload, sizeof(payload), NULL),
                 TERN_EWOULDBLOCK);
    refused++;
  }

  restart_broker();
  while (nth(&r, TERN_STATUS_CONNECTED, 2) == NULL) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  e = nth(&r, TERN_STATUS_CONNECTED, 2);
  cr_expect_eq(e->struct_size, sizeof(tern_status_event_t));
  cr_expect_eq(e->pubs_refused, (uint64_t)refused, "%llu",
               (unsigned long long)e->pubs_refused);
  cr_expect_eq(e->pubs_discarded, 0);
  cr_expect_gt(e->down_ms, 0, "time away");
  cr_expect_geq(e->attempts, 1);
  /* RECONNECTING events count their attempt. */
  cr_expect_geq(nth(&r, TERN_STATUS_RECONNECTING, 1)->attempts, 1);
  tern_conn_close(c, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(uv_loop_close(&loop), 0);
  /* The close after the reconnect carries no loss. */
  e = nth(&r, TERN_STATUS_CLOSED, 1);
  cr_assert_not_null(e);
  cr_expect_eq(e->pubs_refused, 0);
  cr_expect_eq(e->down_ms, 0);
  evrec_destroy(&r);
}

Test(status_events, blocking_reconnect_counts_publishes_that_timed_out) {
  evrec_t r;
  tern_options_t o;
  tern_client_t *cl;
  uint8_t payload[200] = {0};
  int refused = 0, rc;
  const tern_status_event_t *e;
  evrec_init(&r);
  o = event_opts(&r);
  o.outbound_limit = 4096;
  o.publish_timeout_ms = 0; /* full: TERN_EWOULDBLOCK at once */
  cl = test_client(&o);
  tt_broker_kill(&broker);
  wait_ev(&r, TERN_STATUS_DISCONNECTED, 1);
  /* The connection's held buffer and the command queue fill up (the
   * background thread moves what fits); then every publish is refused. */
  for (int i = 0; i < 2000 && refused < 40; i++) {
    rc = tern_client_publish(cl, "ev.b", payload, sizeof(payload), NULL);
    if (rc == TERN_EWOULDBLOCK) {
      refused++;
    } else {
      cr_assert_eq(rc, 0, "%s", tern_err_name(rc));
    }
  }
  cr_assert_eq(refused, 40);
  restart_broker();
  e = wait_ev(&r, TERN_STATUS_CONNECTED, 2);
  cr_expect_eq(e->pubs_refused, (uint64_t)refused, "%llu",
               (unsigned long long)e->pubs_refused);
  cr_expect_gt(e->down_ms, 0);
  tern_client_close(cl);
  evrec_destroy(&r);
}

/* Status transitions through the plain status_cb (older API). */
typedef struct plain {
  int ev[16], reason[16], n, connected;
} plain_t;

static void on_plain_status(tern_conn_t *c, tern_status_t st, int reason,
                            void *d) {
  plain_t *p = d;
  (void)c;
  if (p->n < 16) {
    p->ev[p->n] = (int)st;
    p->reason[p->n++] = reason;
  }
}

static void on_plain_connect(tern_conn_t *c, int status, void *d) {
  (void)c;
  cr_assert_eq(status, 0);
  ((plain_t *)d)->connected++;
}

Test(status_events, goaway_without_reconnect_is_the_loss_reason) {
  plain_t p = {0};
  uv_loop_t loop;
  tern_conn_t *c;
  tern_options_t o = test_opts();
  o.status_cb = on_plain_status;
  o.cb_data = &p;
  o.reconnect = false;
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(tern_conn_connect(&c, &loop, &o, on_plain_connect, &p), 0);
  while (p.connected == 0) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  cr_assert_eq(tt_broker_stop(&broker), 0); /* SIGTERM: GOAWAY, close */
  while (p.n < 3) { /* CONNECTED, DISCONNECTED, CLOSED */
    uv_run(&loop, UV_RUN_ONCE);
  }
  cr_expect_eq(p.ev[1], TERN_STATUS_DISCONNECTED);
  cr_expect_eq(p.reason[1], TERN_EGOAWAY, "%s", tern_err_name(p.reason[1]));
  cr_expect_eq(p.ev[2], TERN_STATUS_CLOSED);
  cr_expect_eq(p.reason[2], TERN_EGOAWAY, "%s", tern_err_name(p.reason[2]));
  /* The broker's reason stays the last error, not "closed by the server". */
  cr_expect_null(strstr(tern_conn_last_error(c), "closed by the server"), "%s",
                 tern_conn_last_error(c));
  cr_expect_neq(tern_conn_last_error(c)[0], '\0');
  tern_conn_close(c, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(uv_loop_close(&loop), 0);
  tt_broker_start(&broker, NULL); /* for the fixture's stop */
}
