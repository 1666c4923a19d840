/*
 * The request circuit breaker on a real ternd: requests to a topic nobody
 * serves fail (TERN_ENORESPONDERS) until the breaker opens, then fail fast
 * with TERN_EBREAKER; after the cool-down one probe goes through, and its
 * outcome re-opens or closes the breaker. The cool-down is waited for with
 * a loop timer, whose clock is the breaker's own (uv_now).
 */
#include <string.h>

#include "fixture.h"

#define COOLDOWN_MS 50

TestSuite(breaker, .init = broker_up, .fini = broker_down, .timeout = 60);

typedef struct ctx {
  uv_loop_t loop;
  tern_conn_t *conn;
  int connected;
  int replies; /* request callbacks */
  int last_status;
  int flushed;
  bool timer_fired;
} ctx_t;

static void on_connect(tern_conn_t *c, int status, void *d) {
  (void)c;
  cr_assert_eq(status, 0, "%s", tern_strerror(status));
  ((ctx_t *)d)->connected = 1;
}

static void on_reply(tern_conn_t *c, int status, tern_msg_t *reply, void *d) {
  ctx_t *x = d;
  (void)c;
  (void)reply;
  x->last_status = status;
  x->replies++;
}

static void on_flushed(tern_conn_t *c, int status, void *d) {
  (void)c;
  cr_assert_eq(status, 0);
  ((ctx_t *)d)->flushed++;
}

static void on_timer(uv_timer_t *t) {
  ((ctx_t *)t->data)->timer_fired = true;
}

/* The service: answers every request. */
static void serve(tern_asub_t *s, tern_msg_t *m, void *d) {
  (void)d;
  cr_assert_eq(
      tern_conn_publish(tern_asub_conn(s), tern_msg_reply(m), "ok", 2, NULL),
      0);
}

static void start(ctx_t *x, uint32_t threshold) {
  tern_options_t o = test_opts();
  o.breaker_threshold = threshold;
  o.breaker_cooldown_ms = COOLDOWN_MS;
  memset(x, 0, sizeof(*x));
  cr_assert_eq(uv_loop_init(&x->loop), 0);
  cr_assert_eq(tern_conn_connect(&x->conn, &x->loop, &o, on_connect, x), 0);
  while (!x->connected) {
    uv_run(&x->loop, UV_RUN_ONCE);
  }
}

static void finish(ctx_t *x) {
  tern_conn_close(x->conn, NULL, NULL);
  uv_run(&x->loop, UV_RUN_DEFAULT);
  cr_expect_eq(uv_loop_close(&x->loop), 0);
}

/* One request, run to its outcome. */
static int request(ctx_t *x, const char *topic) {
  int before = x->replies;
  int rc = tern_conn_request(x->conn, topic, "q", 1, 10000, on_reply, x);
  if (rc != 0) {
    return rc;
  }
  while (x->replies == before) {
    uv_run(&x->loop, UV_RUN_ONCE);
  }
  return x->last_status;
}

/* Runs the loop until the cool-down (and a little more) has passed. */
static void wait_cooldown(ctx_t *x) {
  uv_timer_t t;
  x->timer_fired = false;
  uv_timer_init(&x->loop, &t);
  t.data = x;
  uv_timer_start(&t, on_timer, COOLDOWN_MS + 1, 0);
  while (!x->timer_fired) {
    uv_run(&x->loop, UV_RUN_ONCE);
  }
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&x->loop, UV_RUN_NOWAIT);
}

static void flush(ctx_t *x) {
  int before = x->flushed;
  cr_assert_eq(tern_conn_flush(x->conn, 10000, on_flushed, x), 0);
  while (x->flushed == before) {
    uv_run(&x->loop, UV_RUN_ONCE);
  }
}

Test(breaker, opens_half_opens_and_closes) {
  ctx_t x;
  int rc;
  start(&x, 3);
  for (int i = 0; i < 3; i++) {
    cr_expect_eq(tern_conn_breaker_state(x.conn, "svc.a"), TERN_BREAKER_CLOSED);
    rc = request(&x, "svc.a");
    cr_assert_eq(rc, TERN_ENORESPONDERS, "%s", tern_err_name(rc));
  }
  cr_expect_eq(tern_conn_breaker_state(x.conn, "svc.a"), TERN_BREAKER_OPEN);
  cr_expect_eq(tern_conn_request(x.conn, "svc.a", "q", 1, 1000, on_reply, &x),
               TERN_EBREAKER, "open: fail fast, no callback");
  /* Another topic is not affected. */
  cr_expect_eq(tern_conn_breaker_state(x.conn, "svc.b"), TERN_BREAKER_CLOSED);
  cr_expect_eq(request(&x, "svc.b"), TERN_ENORESPONDERS);

  /* Cool-down over: one probe, which fails and re-opens the breaker. */
  wait_cooldown(&x);
  cr_expect_eq(tern_conn_breaker_state(x.conn, "svc.a"),
               TERN_BREAKER_HALF_OPEN);
  rc = tern_conn_request(x.conn, "svc.a", "q", 1, 10000, on_reply, &x);
  cr_assert_eq(rc, 0, "the probe goes through: %s", tern_err_name(rc));
  cr_expect_eq(tern_conn_request(x.conn, "svc.a", "q", 1, 1000, on_reply, &x),
               TERN_EBREAKER, "only one probe at a time");
  while (x.replies < 5) { /* 3 on svc.a, 1 on svc.b, then the probe */
    uv_run(&x.loop, UV_RUN_ONCE);
  }
  cr_expect_eq(x.last_status, TERN_ENORESPONDERS);
  cr_expect_eq(tern_conn_breaker_state(x.conn, "svc.a"), TERN_BREAKER_OPEN);

  /* The service comes up; after the next cool-down the probe succeeds. */
  cr_assert_eq(tern_conn_subscribe(x.conn, NULL, "svc.a", NULL, serve, NULL),
               0);
  flush(&x);
  cr_expect_eq(tern_conn_request(x.conn, "svc.a", "q", 1, 1000, on_reply, &x),
               TERN_EBREAKER);
  wait_cooldown(&x);
  cr_expect_eq(request(&x, "svc.a"), 0);
  cr_expect_eq(tern_conn_breaker_state(x.conn, "svc.a"), TERN_BREAKER_CLOSED);
  cr_expect_eq(request(&x, "svc.a"), 0);
  finish(&x);
}

Test(breaker, a_reply_resets_the_failure_count) {
  ctx_t x;
  start(&x, 2);
  tern_asub_t *svc;
  cr_expect_eq(request(&x, "svc.r"), TERN_ENORESPONDERS);
  cr_assert_eq(tern_conn_subscribe(x.conn, &svc, "svc.r", NULL, serve, NULL),
               0);
  flush(&x);
  cr_expect_eq(request(&x, "svc.r"), 0);
  cr_assert_eq(tern_asub_unsubscribe(svc, 0), 0);
  flush(&x);
  /* One failure, one reply, one failure: never two in a row. */
  cr_expect_eq(request(&x, "svc.r"), TERN_ENORESPONDERS);
  cr_expect_eq(tern_conn_breaker_state(x.conn, "svc.r"), TERN_BREAKER_CLOSED);
  finish(&x);
}

Test(breaker, off_by_default) {
  ctx_t x;
  start(&x, 0);
  for (int i = 0; i < 10; i++) {
    cr_expect_eq(request(&x, "svc.none"), TERN_ENORESPONDERS);
  }
  cr_expect_eq(tern_conn_breaker_state(x.conn, "svc.none"),
               TERN_BREAKER_CLOSED);
  finish(&x);
}
