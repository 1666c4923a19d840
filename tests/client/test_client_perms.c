/*
 * Permission denials (ERR 3) reach the call that caused them, with the
 * blocking API and with the async API's existing callbacks (ack, flush):
 * a refused subscribe, publish with ack and request fail with TERN_EPERM at
 * once; a refused plain publish is reported by the next flush, once; and
 * nothing is taken for another frame's refusal.
 */
#include "perms_fixture.h"

TestSuite(client_perms, .init = perms_up, .fini = perms_down, .timeout = 60);

/* Bounds waits that must not happen at all; never reached when it works. */
#define NO_WAIT_MS 5000

static tern_client_t *login(const char *user) {
  tern_options_t o = perms_opts(user);
  return test_client(&o);
}

static void expect_last_error(tern_client_t *cl, const char *want) {
  char text[256];
  tern_client_last_error(cl, text, sizeof(text));
  cr_expect_not_null(strstr(text, want), "last error: %s", text);
}

Test(client_perms, subscribe_denied_returns_eperm) {
  tern_client_t *cl = login("carol");
  tern_sub_t *s = NULL;
  tern_msg_t *m = NULL;
  cr_expect_eq(tern_client_subscribe(cl, &s, "other.>", NULL), TERN_EPERM);
  cr_expect_null(s);
  expect_last_error(cl, "permission denied");
  /* The connection goes on; an allowed subscription works. */
  cr_assert_eq(tern_client_subscribe(cl, &s, "orders.>", NULL), 0);
  cr_assert_eq(tern_client_publish(cl, "orders.1", "o", 1, NULL), 0);
  cr_assert_eq(tern_sub_next(s, NO_WAIT_MS, &m), 0);
  tern_msg_release(m);
  /* The refusal was the subscribe's: no flush reports it again. */
  cr_expect_eq(tern_client_flush(cl, NO_WAIT_MS), 0);
  tern_sub_destroy(s);
  tern_client_close(cl);
}

Test(client_perms, publish_ack_denied_returns_eperm) {
  tern_client_t *cl = login("carol");
  uint64_t receivers = 7;
  cr_expect_eq(tern_client_publish_ack(cl, "other.x", "p", 1, NULL, NO_WAIT_MS,
                                       &receivers),
               TERN_EPERM);
  expect_last_error(cl, "permission denied");
  cr_expect_eq(tern_client_publish_ack(cl, "orders.x", "p", 1, NULL, NO_WAIT_MS,
                                       &receivers),
               0);
  cr_expect_eq(receivers, 0);
  cr_expect_eq(tern_client_flush(cl, NO_WAIT_MS), 0);
  tern_client_close(cl);
}

Test(client_perms, request_denied_returns_eperm) {
  /* dave has an inbox: the request's PUB is refused. */
  tern_client_t *cl = login("dave");
  tern_msg_t *reply = NULL;
  cr_expect_eq(tern_client_request(cl, "other.x", "q", 1, NO_WAIT_MS, &reply),
               TERN_EPERM);
  cr_expect_null(reply);
  tern_client_close(cl);
  /* carol has none: the inbox subscription is refused. */
  cl = login("carol");
  cr_expect_eq(tern_client_request(cl, "orders.x", "q", 1, NO_WAIT_MS, &reply),
               TERN_EPERM);
  expect_last_error(cl, "_INBOX");
  tern_client_close(cl);
}

Test(client_perms, plain_publish_denied_reported_by_the_next_flush_once) {
  tern_client_t *cl = login("carol");
  cr_assert_eq(tern_client_publish(cl, "other.x", "p", 1, NULL), 0);
  cr_expect_eq(tern_client_flush(cl, NO_WAIT_MS), TERN_EPERM);
  expect_last_error(cl, "permission denied");
  cr_expect_eq(tern_client_flush(cl, NO_WAIT_MS), 0);
  tern_client_close(cl);
}

Test(client_perms, another_frames_refusal_is_not_taken) {
  tern_client_t *cl = login("carol");
  tern_sub_t *s = NULL;
  uint64_t receivers = 0;
  /* Refused plain publishes just before allowed calls: those succeed, and
   * the flush reports the refusal. */
  cr_assert_eq(tern_client_publish(cl, "other.x", "p", 1, NULL), 0);
  cr_expect_eq(tern_client_publish_ack(cl, "orders.x", "p", 1, NULL, NO_WAIT_MS,
                                       &receivers),
               0);
  cr_assert_eq(tern_client_publish(cl, "other.y", "p", 1, NULL), 0);
  cr_expect_eq(tern_client_subscribe(cl, &s, "orders.>", NULL), 0);
  cr_expect_eq(tern_client_flush(cl, NO_WAIT_MS), TERN_EPERM);
  cr_expect_eq(tern_client_flush(cl, NO_WAIT_MS), 0);
  tern_sub_destroy(s);
  tern_client_close(cl);
}

/* ---- async: the ack and flush callbacks ---- */

typedef struct astate {
  int connected, acks, flushes, closed;
  int ack_status[4], flush_status[4];
} astate_t;

static void on_connect(tern_conn_t *c, int status, void *d) {
  (void)c;
  cr_assert_eq(status, 0);
  ((astate_t *)d)->connected++;
}

static void on_ack(tern_conn_t *c, int status, uint64_t receivers, void *d) {
  astate_t *st = d;
  (void)c;
  (void)receivers;
  st->ack_status[st->acks++] = status;
}

static void on_flush(tern_conn_t *c, int status, void *d) {
  astate_t *st = d;
  (void)c;
  st->flush_status[st->flushes++] = status;
}

static void on_closed(tern_conn_t *c, void *d) {
  (void)c;
  ((astate_t *)d)->closed++;
}

Test(client_perms, async_ack_and_flush_get_the_refusal) {
  uv_loop_t loop;
  astate_t st = {0};
  tern_options_t o = perms_opts("carol");
  tern_pub_opts_t po;
  tern_conn_t *c;
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(tern_conn_connect(&c, &loop, &o, on_connect, &st), 0);
  while (st.connected == 0) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  tern_pub_opts_init(&po);
  po.ack_cb = on_ack;
  po.ack_cb_data = &st;
  /* plain refused, acked refused, acked allowed, plain refused, flush */
  cr_assert_eq(tern_conn_publish(c, "other.a", "p", 1, NULL), 0);
  cr_assert_eq(tern_conn_publish(c, "other.b", "p", 1, &po), 0);
  cr_assert_eq(tern_conn_publish(c, "orders.c", "p", 1, &po), 0);
  cr_assert_eq(tern_conn_publish(c, "other.d", "p", 1, NULL), 0);
  cr_assert_eq(tern_conn_flush(c, NO_WAIT_MS, on_flush, &st), 0);
  cr_assert_eq(tern_conn_flush(c, NO_WAIT_MS, on_flush, &st), 0);
  while (st.flushes < 2) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  cr_expect_eq(st.acks, 2);
  cr_expect_eq(st.ack_status[0], TERN_EPERM, "%s",
               tern_err_name(st.ack_status[0]));
  cr_expect_eq(st.ack_status[1], 0, "%s", tern_err_name(st.ack_status[1]));
  cr_expect_eq(st.flush_status[0], TERN_EPERM, "%s",
               tern_err_name(st.flush_status[0]));
  cr_expect_eq(st.flush_status[1], 0);
  tern_conn_close(c, on_closed, &st);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(st.closed, 1);
  cr_expect_eq(uv_loop_close(&loop), 0);
}
