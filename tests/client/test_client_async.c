/*
 * The asynchronous API on a caller's uv loop: every test runs the loop to
 * completion, asserts callback counters afterwards, and ends with every
 * handle closed (uv_loop_close == 0).
 */
#include <string.h>

#include "fixture.h"

TT_CLIENT_LOOP_FIXTURE

TestSuite(client_async, .init = loop_up, .fini = loop_down, .timeout = 60);

typedef struct state {
  tern_conn_t *conn;
  tern_conn_t *conn2;
  int connected;
  int connect_status;
  int msgs;
  int flushed;
  int closed;
  int acks;
  int drains;
  uint64_t receivers[4];
  int want;
} state_t;

static void on_closed(tern_conn_t *c, void *d) {
  state_t *st = d;
  (void)c;
  st->closed++;
}

static void on_connect(tern_conn_t *c, int status, void *d) {
  state_t *st = d;
  (void)c;
  st->connect_status = status;
  st->connected++;
}

/* Runs the loop until both connections (conn2 optional) are up. */
static void connect_all(state_t *st, const tern_options_t *o, int n) {
  tern_options_t d = test_opts();
  if (o == NULL) {
    o = &d;
  }
  cr_assert_eq(tern_conn_connect(&st->conn, &loop, o, on_connect, st), 0);
  if (n == 2) {
    cr_assert_eq(tern_conn_connect(&st->conn2, &loop, o, on_connect, st), 0);
  }
  while (st->connected < n) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  cr_assert_eq(st->connect_status, 0, "%s", tern_strerror(st->connect_status));
  cr_assert(tern_conn_is_connected(st->conn));
}

static void close_all(state_t *st) {
  tern_conn_close(st->conn, on_closed, st);
  if (st->conn2 != NULL) {
    tern_conn_close(st->conn2, on_closed, st);
  }
}

static void count_msg(tern_asub_t *s, tern_msg_t *m, void *d) {
  state_t *st = d;
  (void)s;
  cr_expect_str_eq(tern_msg_topic(m), "a.b");
  cr_expect_eq(tern_msg_len(m), 5);
  cr_expect_eq(memcmp(tern_msg_data(m), "hello", 5), 0);
  if (++st->msgs == st->want) {
    close_all(st);
  }
}

static void publish_after_flush(tern_conn_t *c, int status, void *d) {
  state_t *st = d;
  (void)c;
  cr_assert_eq(status, 0);
  st->flushed++;
  for (int i = 0; i < st->want; i++) {
    cr_assert_eq(tern_conn_publish(st->conn2, "a.b", "hello", 5, NULL), 0);
  }
}

Test(client_async, pubsub_on_a_loop) {
  state_t st = {.want = 100};
  connect_all(&st, NULL, 2);
  cr_assert_eq(tern_conn_subscribe(st.conn, NULL, "a.*", NULL, count_msg, &st),
               0);
  cr_assert_eq(tern_conn_flush(st.conn, 5000, publish_after_flush, &st), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(st.flushed, 1);
  cr_expect_eq(st.msgs, 100);
  cr_expect_eq(st.closed, 2);
}

static void on_ack(tern_conn_t *c, int status, uint64_t receivers, void *d) {
  state_t *st = d;
  (void)c;
  cr_expect_eq(status, 0);
  st->receivers[st->acks++] = receivers;
  if (st->acks == 2) {
    close_all(st);
  }
}

static void ignore_msg(tern_asub_t *s, tern_msg_t *m, void *d) {
  (void)s;
  (void)m;
  ((state_t *)d)->msgs++;
}

static void ack_after_flush(tern_conn_t *c, int status, void *d) {
  state_t *st = d;
  tern_pub_opts_t po;
  cr_assert_eq(status, 0);
  tern_pub_opts_init(&po);
  po.ack_cb = on_ack;
  po.ack_cb_data = st;
  cr_assert_eq(tern_conn_publish(c, "ack.t", "x", 1, &po), 0);
  cr_assert_eq(tern_conn_publish(c, "ack.nobody", "x", 1, &po), 0);
}

Test(client_async, publish_with_ack_counts_receivers) {
  state_t st = {0};
  connect_all(&st, NULL, 1);
  cr_assert_eq(
      tern_conn_subscribe(st.conn, NULL, "ack.t", NULL, ignore_msg, &st), 0);
  cr_assert_eq(
      tern_conn_subscribe(st.conn, NULL, "ack.*", NULL, ignore_msg, &st), 0);
  cr_assert_eq(tern_conn_flush(st.conn, 5000, ack_after_flush, &st), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(st.acks, 2);
  cr_expect_eq(st.receivers[0], 2);
  cr_expect_eq(st.receivers[1], 1);
  cr_expect_eq(st.closed, 1);
}

static void on_drain(tern_conn_t *c, void *d) {
  state_t *st = d;
  (void)c;
  st->drains++;
  close_all(st);
}

Test(client_async, would_block_when_outbound_limit_is_reached) {
  state_t st = {0};
  tern_options_t o = test_opts();
  char payload[100] = {0};
  int rc;
  o.outbound_limit = 256;
  o.drain_cb = on_drain;
  o.cb_data = &st;
  connect_all(&st, &o, 1);
  /* The loop does not run: nothing leaves the buffer. */
  cr_assert_eq(tern_conn_publish(st.conn, "wb.t", payload, 100, NULL), 0);
  cr_assert_eq(tern_conn_publish(st.conn, "wb.t", payload, 100, NULL), 0);
  rc = tern_conn_publish(st.conn, "wb.t", payload, 100, NULL);
  cr_assert_eq(rc, TERN_EWOULDBLOCK, "got %s", tern_err_name(rc));
  cr_expect_leq(tern_conn_outbound_bytes(st.conn), 256);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(st.drains, 1);
  cr_expect_eq(st.closed, 1);
}

Test(client_async, invalid_topics_are_caught_before_sending) {
  state_t st = {0};
  tern_pub_opts_t po;
  connect_all(&st, NULL, 1);
  cr_expect_eq(tern_conn_publish(st.conn, "a..b", "x", 1, NULL), TERN_ETOPIC);
  cr_expect_eq(tern_conn_publish(st.conn, "a.*", "x", 1, NULL), TERN_ETOPIC);
  cr_expect_eq(tern_conn_publish(st.conn, "", "x", 1, NULL), TERN_ETOPIC);
  cr_expect_eq(tern_conn_publish(st.conn, "a b", "x", 1, NULL), TERN_ETOPIC);
  cr_expect_eq(
      tern_conn_subscribe(st.conn, NULL, "a.>.b", NULL, ignore_msg, &st),
      TERN_ETOPIC);
  cr_expect_eq(
      tern_conn_subscribe(st.conn, NULL, "a.b*", NULL, ignore_msg, &st),
      TERN_ETOPIC);
  tern_pub_opts_init(&po);
  po.reply = "bad..reply";
  cr_expect_eq(tern_conn_publish(st.conn, "a.b", "x", 1, &po), TERN_ETOPIC);
  cr_expect_eq(tern_conn_outbound_bytes(st.conn), 0, "nothing was queued");
  close_all(&st);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(st.closed, 1);
}

static void verbose_flushed(tern_conn_t *c, int status, void *d) {
  state_t *st = d;
  tern_conn_stats_t s;
  cr_assert_eq(status, 0);
  tern_conn_get_stats(c, &s);
  cr_expect_eq(s.oks, 4, "one OK per SUB and PUB, got %llu",
               (unsigned long long)s.oks);
  cr_expect_eq(s.errs, 0);
  st->flushed++;
  close_all(st);
}

Test(client_async, verbose_mode_acknowledges_each_frame) {
  state_t st = {0};
  tern_options_t o = test_opts();
  o.verbose = true;
  connect_all(&st, &o, 1);
  cr_assert_eq(tern_conn_subscribe(st.conn, NULL, "v.t", NULL, ignore_msg, &st),
               0);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(tern_conn_publish(st.conn, "v.x", "x", 1, NULL), 0);
  }
  cr_assert_eq(tern_conn_flush(st.conn, 5000, verbose_flushed, &st), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(st.flushed, 1);
  cr_expect_eq(st.closed, 1);
}

/* 1,000 subscriptions over two connections, one publish, 1,000 deliveries.
 * The PUBACK and the last delivery may come in either order: the second of
 * the two closes. */
static void fan_msg(tern_asub_t *s, tern_msg_t *m, void *d) {
  state_t *st = d;
  (void)s;
  (void)m;
  if (++st->msgs == st->want && st->acks == 1) {
    close_all(st);
  }
}

static void fan_ack(tern_conn_t *c, int status, uint64_t receivers, void *d) {
  state_t *st = d;
  (void)c;
  cr_expect_eq(status, 0);
  st->receivers[0] = receivers;
  if (++st->acks == 1 && st->msgs == st->want) {
    close_all(st);
  }
}

static void fan_flushed(tern_conn_t *c, int status, void *d) {
  state_t *st = d;
  tern_pub_opts_t po;
  (void)c;
  cr_assert_eq(status, 0);
  if (++st->flushed < 2) {
    return;
  }
  tern_pub_opts_init(&po);
  po.ack_cb = fan_ack;
  po.ack_cb_data = st;
  cr_assert_eq(tern_conn_publish(st->conn, "fan.out", "x", 1, &po), 0);
}

Test(client_async, fan_out_to_1000_subscriptions) {
  state_t st = {.want = 1000};
  connect_all(&st, NULL, 2);
  for (int i = 0; i < 1000; i++) {
    tern_conn_t *c = i % 2 ? st.conn : st.conn2;
    cr_assert_eq(tern_conn_subscribe(c, NULL, i % 3 ? "fan.*" : "fan.out", NULL,
                                     fan_msg, &st),
                 0);
  }
  cr_assert_eq(tern_conn_flush(st.conn, 10000, fan_flushed, &st), 0);
  cr_assert_eq(tern_conn_flush(st.conn2, 10000, fan_flushed, &st), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(st.acks, 1);
  cr_expect_eq(st.receivers[0], 1000);
  cr_expect_eq(st.msgs, 1000);
  cr_expect_eq(st.closed, 2);
}

/*
 * Unsubscribing inside the callback, then closing inside another. The
 * callback's own publishes follow its UNSUB, so the broker sends it nothing
 * more; "cb.end" comes last and closes the connection.
 */
static void unsub_in_cb(tern_asub_t *s, tern_msg_t *m, void *d) {
  state_t *st = d;
  tern_conn_t *c = tern_asub_conn(s);
  (void)m;
  st->msgs++;
  cr_expect_eq(tern_asub_unsubscribe(s, 0), 0);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(tern_conn_publish(c, "cb.t", "x", 1, NULL), 0);
  }
  cr_assert_eq(tern_conn_publish(c, "cb.end", "x", 1, NULL), 0);
}

static void close_in_cb(tern_asub_t *s, tern_msg_t *m, void *d) {
  state_t *st = d;
  (void)s;
  st->acks++;
  tern_msg_retain(m); /* kept past the close, released below */
  close_all(st);
  cr_expect_str_eq(tern_msg_topic(m), "cb.end");
  tern_msg_release(m);
}

static void cb_flushed(tern_conn_t *c, int status, void *d) {
  (void)d;
  cr_assert_eq(status, 0);
  cr_assert_eq(tern_conn_publish(c, "cb.t", "x", 1, NULL), 0);
}

Test(client_async, unsubscribe_and_close_inside_callbacks) {
  state_t st = {0};
  connect_all(&st, NULL, 1);
  cr_assert_eq(
      tern_conn_subscribe(st.conn, NULL, "cb.t", NULL, unsub_in_cb, &st), 0);
  cr_assert_eq(
      tern_conn_subscribe(st.conn, NULL, "cb.end", NULL, close_in_cb, &st), 0);
  cr_assert_eq(tern_conn_flush(st.conn, 5000, cb_flushed, &st), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(st.msgs, 1, "the unsubscribed callback ran once");
  cr_expect_eq(st.acks, 1);
  cr_expect_eq(st.closed, 1);
}

Test(client_async, connect_refused_reports_and_closes) {
  state_t st = {0};
  tern_options_t o = test_opts();
  tt_broker_t other;
  tt_broker_start(&other, NULL);
  o.port = other.port;
  cr_assert_eq(tt_broker_stop(&other), 0);
  cr_assert_eq(tern_conn_connect(&st.conn, &loop, &o, on_connect, &st), 0);
  while (st.connected == 0) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  cr_expect_eq(st.connect_status, UV_ECONNREFUSED, "%s",
               tern_err_name(st.connect_status));
  cr_expect_eq(tern_conn_publish(st.conn, "a", "x", 1, NULL), TERN_ENOTCONN);
  close_all(&st);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(st.closed, 1);
}
