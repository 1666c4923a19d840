/*
 * A refused subscribe with the async API: the subscription's error_cb fires
 * with TERN_EPERM before the PONG of a flush made after it, tern_asub_error
 * says so, the flush itself reports nothing, and an allowed subscription
 * made around it is unaffected.
 */
#include "perms_fixture.h"

TestSuite(client_perms_async, .init = perms_up, .fini = perms_down,
          .timeout = 60);

typedef struct sstate {
  int connected, errors, err, flushes, flush_status, msgs, closed;
  bool error_before_flush;
  tern_asub_t *refused;
} sstate_t;

static void on_connect(tern_conn_t *c, int status, void *d) {
  (void)c;
  cr_assert_eq(status, 0);
  ((sstate_t *)d)->connected++;
}

static void on_sub_error(tern_asub_t *s, int err, const char *text, void *d) {
  sstate_t *st = d;
  st->errors++;
  st->err = err;
  st->refused = s;
  st->error_before_flush = st->flushes == 0;
  cr_expect_not_null(strstr(text, "permission denied"), "%s", text);
}

static void on_msg(tern_asub_t *s, tern_msg_t *m, void *d) {
  (void)s;
  (void)m;
  ((sstate_t *)d)->msgs++;
}

static void on_flush(tern_conn_t *c, int status, void *d) {
  sstate_t *st = d;
  (void)c;
  st->flush_status = status;
  st->flushes++;
}

static void on_closed(tern_conn_t *c, void *d) {
  (void)c;
  ((sstate_t *)d)->closed++;
}

Test(client_perms_async, refused_subscribe_fires_its_error_cb) {
  uv_loop_t loop;
  sstate_t st = {0};
  tern_options_t o = perms_opts("carol");
  tern_sub_opts_t so;
  tern_asub_t *ok = NULL, *bad = NULL;
  tern_conn_t *c;
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(tern_conn_connect(&c, &loop, &o, on_connect, &st), 0);
  while (st.connected == 0) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  tern_sub_opts_init(&so);
  so.error_cb = on_sub_error;
  /* A refused plain publish before it must not be taken for the SUB's. */
  cr_assert_eq(tern_conn_publish(c, "other.x", "p", 1, NULL), 0);
  cr_assert_eq(tern_conn_subscribe(c, &bad, "other.>", &so, on_msg, &st), 0);
  cr_assert_eq(tern_conn_subscribe(c, &ok, "orders.>", &so, on_msg, &st), 0);
  cr_assert_eq(tern_conn_publish(c, "orders.1", "o", 1, NULL), 0);
  cr_assert_eq(tern_conn_flush(c, 5000, on_flush, &st), 0);
  while (st.flushes == 0) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  cr_expect_eq(st.errors, 1);
  cr_expect_eq(st.err, TERN_EPERM, "%s", tern_err_name(st.err));
  cr_expect(st.error_before_flush);
  cr_expect_eq(st.refused, bad);
  cr_expect_eq(tern_asub_error(bad), TERN_EPERM);
  cr_expect_eq(tern_asub_error(ok), 0);
  cr_expect_eq(st.msgs, 1, "the allowed subscription got its message");
  /* The flush reports the plain publish's refusal, not the SUB's. */
  cr_expect_eq(st.flush_status, TERN_EPERM);
  cr_expect_eq(tern_asub_unsubscribe(bad, 0), 0);
  st.flushes = 0;
  cr_assert_eq(tern_conn_flush(c, 5000, on_flush, &st), 0);
  while (st.flushes == 0) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  cr_expect_eq(st.flush_status, 0, "no UNSUB was sent for the refused sid: %s",
               tern_err_name(st.flush_status));
  tern_conn_close(c, on_closed, &st);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(st.closed, 1);
  cr_expect_eq(uv_loop_close(&loop), 0);
}
