/*
 * libtern under broker faults: kill -9 and restart on the same port, GOAWAY,
 * a frozen broker (heartbeat), a server list, giving up. Every test runs a
 * real ternd and restarts it on the port the client knows; clients find it
 * again by themselves. Waits are on conditions with generous bounds,
 * never on sleeps.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fixture.h"

#define WAIT_MS 20000
#define MAX_EVENTS 256

TestSuite(reconnect, .init = broker_up, .fini = broker_down, .timeout = 120);

/* Status transitions seen by one client, from its loop thread. */
typedef struct rec {
  uv_mutex_t mu;
  uv_cond_t cv;
  int ev[MAX_EVENTS];
  int reason[MAX_EVENTS];
  int n;
} rec_t;

static void rec_init(rec_t *r) {
  memset(r, 0, sizeof(*r));
  uv_mutex_init(&r->mu);
  uv_cond_init(&r->cv);
}

static void rec_destroy(rec_t *r) {
  uv_cond_destroy(&r->cv);
  uv_mutex_destroy(&r->mu);
}

static void on_status(tern_conn_t *c, tern_status_t st, int reason, void *d) {
  rec_t *r = d;
  (void)c;
  uv_mutex_lock(&r->mu);
  if (r->n < MAX_EVENTS) {
    r->ev[r->n] = (int)st;
    r->reason[r->n] = reason;
    r->n++;
  }
  uv_cond_broadcast(&r->cv);
  uv_mutex_unlock(&r->mu);
}

static int rec_count_locked(const rec_t *r, int st) {
  int k = 0;
  for (int i = 0; i < r->n; i++) {
    k += r->ev[i] == st;
  }
  return k;
}

/* Waits until status st has been seen `count` times. */
static void rec_wait(rec_t *r, int st, int count) {
  int64_t deadline = tt_now_ms() + WAIT_MS;
  uv_mutex_lock(&r->mu);
  while (rec_count_locked(r, st) < count && tt_now_ms() < deadline) {
    uv_cond_timedwait(&r->cv, &r->mu, 50u * 1000u * 1000u);
  }
  int seen = rec_count_locked(r, st);
  uv_mutex_unlock(&r->mu);
  cr_assert_geq(seen, count, "status %d seen %d times, wanted %d", st, seen,
                count);
}

/* The reason that came with the first occurrence of st. */
static int rec_reason(rec_t *r, int st) {
  int reason = 1;
  uv_mutex_lock(&r->mu);
  for (int i = 0; i < r->n; i++) {
    if (r->ev[i] == st) {
      reason = r->reason[i];
      break;
    }
  }
  uv_mutex_unlock(&r->mu);
  return reason;
}

/* CONNECTED, then for each loss DISCONNECTED, RECONNECTING+, CONNECTED. */
static void rec_expect_cycles(rec_t *r, int losses) {
  int i = 0;
  uv_mutex_lock(&r->mu);
  cr_expect_eq(r->ev[i++], TERN_STATUS_CONNECTED);
  for (int k = 0; k < losses; k++) {
    cr_expect_eq(r->ev[i++], TERN_STATUS_DISCONNECTED, "loss %d", k);
    cr_expect_eq(r->ev[i++], TERN_STATUS_RECONNECTING, "loss %d", k);
    while (i < r->n && r->ev[i] == TERN_STATUS_RECONNECTING) {
      i++;
    }
    cr_expect_eq(r->ev[i++], TERN_STATUS_CONNECTED, "loss %d", k);
  }
  uv_mutex_unlock(&r->mu);
}

static tern_options_t fast_opts(rec_t *r) {
  tern_options_t o = test_opts();
  o.status_cb = on_status;
  o.cb_data = r;
  o.reconnect_initial_ms = 10;
  o.reconnect_max_ms = 200;
  o.reconnect_max_attempts = -1;
  o.connect_timeout_ms = 2000;
  return o;
}

static void restart_broker(const char *const *extra) {
  int port = broker.port;
  tt_broker_start_on(&broker, port, extra);
}

static void expect_msg(tern_sub_t *sub, const char *data) {
  tern_msg_t *m = NULL;
  int rc = tern_sub_next(sub, WAIT_MS, &m);
  cr_assert_eq(rc, 0, "next: %s", tern_strerror(rc));
  cr_expect_eq(tern_msg_len(m), strlen(data));
  cr_expect_eq(memcmp(tern_msg_data(m), data, strlen(data)), 0);
  tern_msg_release(m);
}

/* ---- kill -9 while a blocking subscriber iterates and an async publisher
 * publishes ---- */

typedef struct pubctx {
  rec_t rec;
  uv_thread_t thread;
  uv_loop_t loop;
  uv_timer_t tick;
  uv_async_t stop;
  tern_conn_t *conn;
  _Atomic uint64_t next; /* the next sequence number to publish */
} pubctx_t;

static void pub_tick(uv_timer_t *t) {
  pubctx_t *p = t->data;
  uint64_t seq = atomic_load(&p->next);
  for (int i = 0; i < 4; i++) {
    /* ENOTCONN before the first connect, EWOULDBLOCK with a full buffer:
     * this number is simply tried again. */
    if (tern_conn_publish(p->conn, "rk.t", &seq, sizeof(seq), NULL) != 0) {
      break;
    }
    atomic_store(&p->next, ++seq);
  }
}

static void pub_stop(uv_async_t *a) {
  pubctx_t *p = a->data;
  uv_close((uv_handle_t *)&p->tick, NULL);
  uv_close((uv_handle_t *)&p->stop, NULL);
  tern_conn_close(p->conn, NULL, NULL);
}

static void pub_thread(void *arg) {
  pubctx_t *p = arg;
  uv_run(&p->loop, UV_RUN_DEFAULT);
}

static void pub_start(pubctx_t *p) {
  tern_options_t o = fast_opts(&p->rec);
  rec_init(&p->rec);
  o.cb_data = &p->rec;
  o.outbound_limit = 64 * 1024;
  atomic_store(&p->next, 1);
  cr_assert_eq(uv_loop_init(&p->loop), 0);
  cr_assert_eq(tern_conn_connect(&p->conn, &p->loop, &o, NULL, NULL), 0);
  uv_timer_init(&p->loop, &p->tick);
  p->tick.data = p;
  uv_timer_start(&p->tick, pub_tick, 1, 1);
  uv_async_init(&p->loop, &p->stop, pub_stop);
  p->stop.data = p;
  cr_assert_eq(uv_thread_create(&p->thread, pub_thread, p), 0);
}

static void pub_finish(pubctx_t *p) {
  uv_async_send(&p->stop);
  uv_thread_join(&p->thread);
  cr_expect_eq(uv_loop_close(&p->loop), 0);
  rec_destroy(&p->rec);
}

typedef struct subctx {
  tern_sub_t *sub;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  uint64_t count, last_seq;
  int error; /* first error other than TERN_ETIMEOUT */
  bool out_of_order;
  _Atomic bool stop;
} subctx_t;

/* The blocking subscriber: iterates until told to stop. */
static void sub_thread(void *arg) {
  subctx_t *s = arg;
  while (!atomic_load(&s->stop)) {
    tern_msg_t *m = NULL;
    uint64_t seq;
    int rc = tern_sub_next(s->sub, 50, &m);
    if (rc == TERN_ETIMEOUT) {
      continue;
    }
    uv_mutex_lock(&s->mu);
    if (rc != 0) {
      s->error = rc;
      uv_cond_broadcast(&s->cv);
      uv_mutex_unlock(&s->mu);
      return;
    }
    memcpy(&seq, tern_msg_data(m), sizeof(seq));
    if (seq <= s->last_seq) {
      s->out_of_order = true;
    }
    s->last_seq = seq;
    s->count++;
    uv_cond_broadcast(&s->cv);
    uv_mutex_unlock(&s->mu);
    tern_msg_release(m);
  }
}

/* Waits until the subscriber has a message numbered above seq. */
static void sub_wait_past(subctx_t *s, uint64_t seq) {
  int64_t deadline = tt_now_ms() + WAIT_MS;
  uv_mutex_lock(&s->mu);
  while (s->last_seq <= seq && s->error == 0 && tt_now_ms() < deadline) {
    uv_cond_timedwait(&s->cv, &s->mu, 50u * 1000u * 1000u);
  }
  uint64_t last = s->last_seq;
  int err = s->error;
  uv_mutex_unlock(&s->mu);
  cr_assert_eq(err, 0, "subscriber ended: %s", tern_strerror(err));
  cr_assert_gt(last, seq, "subscriber stuck at %llu, wanted > %llu",
               (unsigned long long)last, (unsigned long long)seq);
}

Test(reconnect, kill9_restart_subscriber_and_publisher_recover) {
  rec_t srec;
  tern_options_t so;
  tern_client_t *cl;
  subctx_t s = {0};
  pubctx_t p = {0};
  rec_init(&srec);
  so = fast_opts(&srec);
  cl = test_client(&so);
  cr_assert_eq(tern_client_subscribe(cl, &s.sub, "rk.t", NULL), 0);
  uv_mutex_init(&s.mu);
  uv_cond_init(&s.cv);
  cr_assert_eq(uv_thread_create(&s.thread, sub_thread, &s), 0);
  pub_start(&p);

  sub_wait_past(&s, 20); /* traffic flows before the fault */
  tt_broker_kill(&broker);
  rec_wait(&srec, TERN_STATUS_DISCONNECTED, 1);
  rec_wait(&p.rec, TERN_STATUS_DISCONNECTED, 1);
  restart_broker(NULL);
  rec_wait(&srec, TERN_STATUS_CONNECTED, 2);
  rec_wait(&p.rec, TERN_STATUS_CONNECTED, 2);
  /* Published after both came back: must reach the resubscribed sid. */
  sub_wait_past(&s, atomic_load(&p.next));

  pub_finish(&p);
  atomic_store(&s.stop, true);
  uv_thread_join(&s.thread);
  cr_expect_eq(s.error, 0, "tern_sub_next failed: %s", tern_strerror(s.error));
  cr_expect_not(s.out_of_order, "messages arrived out of order");
  rec_expect_cycles(&srec, 1);
  cr_expect_eq(rec_reason(&srec, TERN_STATUS_DISCONNECTED), TERN_ECLOSED, "%s",
               tern_err_name(rec_reason(&srec, TERN_STATUS_DISCONNECTED)));
  tern_client_close(cl);
  rec_wait(&srec, TERN_STATUS_CLOSED, 1);
  uv_mutex_lock(&srec.mu);
  cr_expect_eq(srec.ev[srec.n - 1], TERN_STATUS_CLOSED, "CLOSED comes last");
  uv_mutex_unlock(&srec.mu);
  uv_cond_destroy(&s.cv);
  uv_mutex_destroy(&s.mu);
  rec_destroy(&srec);
}

/* ---- publishes while disconnected: held up to the limit, then
 * TERN_EWOULDBLOCK; delivered after the re-sent subscription ---- */

typedef struct heldctx {
  uv_loop_t loop;
  tern_conn_t *conn;
  rec_t rec;
  int connected;
  uint64_t got, next_expected;
  bool out_of_order;
  int drains;
  int ack_status;
  uint64_t ack_receivers;
  int acks;
} heldctx_t;

static void held_connected(tern_conn_t *c, int status, void *d) {
  heldctx_t *h = d;
  (void)c;
  cr_assert_eq(status, 0, "%s", tern_strerror(status));
  h->connected++;
}

static void held_msg(tern_asub_t *s, tern_msg_t *m, void *d) {
  heldctx_t *h = d;
  uint32_t seq;
  (void)s;
  memcpy(&seq, tern_msg_data(m), sizeof(seq));
  if (seq != h->next_expected) {
    h->out_of_order = true;
  }
  h->next_expected = seq + 1;
  h->got++;
}

/* Connection callbacks get the status recorder (fast_opts's cb_data). */
static heldctx_t *held_of(void *rec) {
  return (heldctx_t *)((char *)rec - offsetof(heldctx_t, rec));
}

static void held_drain(tern_conn_t *c, void *d) {
  (void)c;
  held_of(d)->drains++;
}

static void held_ack(tern_conn_t *c, int status, uint64_t receivers, void *d) {
  heldctx_t *h = d;
  (void)c;
  h->ack_status = status;
  h->ack_receivers = receivers;
  h->acks++;
}

static void held_flushed(tern_conn_t *c, int status, void *d) {
  (void)c;
  cr_assert_eq(status, 0, "%s", tern_strerror(status));
  ((heldctx_t *)d)->connected++;
}

static int held_count(heldctx_t *h, int st) {
  int k;
  uv_mutex_lock(&h->rec.mu);
  k = rec_count_locked(&h->rec, st);
  uv_mutex_unlock(&h->rec.mu);
  return k;
}

Test(reconnect, publishes_while_disconnected_are_held_then_delivered) {
  heldctx_t h = {0};
  tern_options_t o;
  tern_pub_opts_t po;
  uint8_t payload[200] = {0};
  uint32_t held = 0;
  int rc;
  rec_init(&h.rec);
  o = fast_opts(&h.rec);
  o.outbound_limit = 4096;
  o.drain_cb = held_drain;
  cr_assert_eq(uv_loop_init(&h.loop), 0);
  cr_assert_eq(tern_conn_connect(&h.conn, &h.loop, &o, held_connected, &h), 0);
  while (h.connected == 0) {
    uv_run(&h.loop, UV_RUN_ONCE);
  }
  /* Echo is on: this connection's own subscription receives what it held. */
  cr_assert_eq(tern_conn_subscribe(h.conn, NULL, "held.t", NULL, held_msg, &h),
               0);
  cr_assert_eq(tern_conn_flush(h.conn, WAIT_MS, held_flushed, &h), 0);
  while (h.connected == 1) {
    uv_run(&h.loop, UV_RUN_ONCE);
  }

  tt_broker_kill(&broker);
  while (held_count(&h, TERN_STATUS_DISCONNECTED) == 0) {
    uv_run(&h.loop, UV_RUN_ONCE);
  }
  cr_expect_not(tern_conn_is_connected(h.conn));
  /* One with an ack: it must be answered by the new broker. */
  tern_pub_opts_init(&po);
  po.ack_cb = held_ack;
  po.ack_cb_data = &h;
  memcpy(payload, &held, sizeof(held));
  cr_assert_eq(
      tern_conn_publish(h.conn, "held.t", payload, sizeof(payload), &po), 0);
  held++;
  for (;;) {
    memcpy(payload, &held, sizeof(held));
    rc = tern_conn_publish(h.conn, "held.t", payload, sizeof(payload), NULL);
    if (rc != 0) {
      break;
    }
    held++;
  }
  cr_expect_eq(rc, TERN_EWOULDBLOCK, "%s", tern_err_name(rc));
  cr_expect_geq(held, 10, "the buffer holds %u frames of 200 bytes", held);
  cr_expect_leq(held * sizeof(payload), o.outbound_limit);
  cr_expect_leq(tern_conn_outbound_bytes(h.conn), o.outbound_limit);

  restart_broker(NULL);
  while (h.got < held || h.acks == 0) {
    uv_run(&h.loop, UV_RUN_ONCE);
  }
  cr_expect_eq(h.got, held);
  cr_expect_not(h.out_of_order);
  cr_expect_eq(h.ack_status, 0);
  cr_expect_eq(h.ack_receivers, 1);
  cr_expect_geq(h.drains, 1, "the drain callback announced room again");
  cr_expect(tern_conn_is_connected(h.conn));
  cr_expect_eq(held_count(&h, TERN_STATUS_CONNECTED), 2);
  tern_conn_close(h.conn, NULL, NULL);
  uv_run(&h.loop, UV_RUN_DEFAULT);
  cr_expect_eq(uv_loop_close(&h.loop), 0);
  cr_expect_eq(held_count(&h, TERN_STATUS_CLOSED), 1);
  rec_expect_cycles(&h.rec, 1);
  rec_destroy(&h.rec);
}

/* ---- a request in flight at the kill ---- */

typedef struct reqctx {
  tern_client_t *cl;
  int rc;
} reqctx_t;

static void req_thread(void *arg) {
  reqctx_t *r = arg;
  tern_msg_t *reply = NULL;
  /* The timeout is far beyond the test's: only the loss can end it. */
  r->rc = tern_client_request(r->cl, "svc.slow", "q", 1, 600000, &reply);
  tern_msg_release(reply);
}

Test(reconnect, request_in_flight_fails_with_edisconnected) {
  rec_t rrec, qrec;
  tern_options_t ro, qo;
  tern_client_t *responder, *requester;
  tern_sub_t *svc;
  tern_msg_t *m = NULL;
  uv_thread_t t;
  reqctx_t r = {0};
  rec_init(&rrec);
  rec_init(&qrec);
  ro = fast_opts(&rrec);
  qo = fast_opts(&qrec);
  responder = test_client(&ro);
  requester = test_client(&qo);
  /* A responder that receives the request and never answers. */
  cr_assert_eq(tern_client_subscribe(responder, &svc, "svc.slow", NULL), 0);
  r.cl = requester;
  cr_assert_eq(uv_thread_create(&t, req_thread, &r), 0);
  cr_assert_eq(tern_sub_next(svc, WAIT_MS, &m), 0, "the request never came");
  tern_msg_release(m);
  tt_broker_kill(&broker);
  uv_thread_join(&t);
  cr_expect_eq(r.rc, TERN_EDISCONNECTED, "%s", tern_err_name(r.rc));

  restart_broker(NULL);
  rec_wait(&qrec, TERN_STATUS_CONNECTED, 2);
  rec_wait(&rrec, TERN_STATUS_CONNECTED, 2);
  cr_expect_eq(tern_client_flush(requester, WAIT_MS), 0);
  tern_client_close(requester);
  tern_client_close(responder);
  rec_destroy(&rrec);
  rec_destroy(&qrec);
}

/* ---- GOAWAY: graceful shutdown, a new broker on the same port ---- */

Test(reconnect, goaway_then_new_broker_keeps_subscriptions) {
  rec_t rec;
  tern_options_t o;
  tern_client_t *cl, *pub;
  tern_sub_t *plain, *grouped;
  tern_sub_opts_t qo;
  rec_init(&rec);
  o = fast_opts(&rec);
  cl = test_client(&o);
  tern_sub_opts_init(&qo);
  qo.queue = "g1";
  qo.max_msgs = 100;
  qo.overflow = TERN_OVERFLOW_DROP_NEWEST;
  cr_assert_eq(tern_client_subscribe(cl, &plain, "ga.t", NULL), 0);
  cr_assert_eq(tern_client_subscribe(cl, &grouped, "ga.q", &qo), 0);

  cr_assert_eq(tt_broker_stop(&broker), 0, "ternd did not exit cleanly");
  rec_wait(&rec, TERN_STATUS_DISCONNECTED, 1);
  cr_expect_eq(rec_reason(&rec, TERN_STATUS_DISCONNECTED), TERN_EGOAWAY, "%s",
               tern_err_name(rec_reason(&rec, TERN_STATUS_DISCONNECTED)));
  restart_broker(NULL);
  rec_wait(&rec, TERN_STATUS_CONNECTED, 2);
  /* PONG after the re-sent SUBs: the new broker has them. */
  cr_assert_eq(tern_client_flush(cl, WAIT_MS), 0);

  pub = test_client(NULL);
  cr_assert_eq(tern_client_publish(pub, "ga.t", "after", 5, NULL), 0);
  cr_assert_eq(tern_client_publish(pub, "ga.q", "work", 4, NULL), 0);
  cr_assert_eq(tern_client_flush(pub, WAIT_MS), 0);
  expect_msg(plain, "after");
  expect_msg(grouped, "work");
  rec_expect_cycles(&rec, 1);
  tern_client_close(pub);
  tern_client_close(cl);
  rec_destroy(&rec);
}

/* ---- an UNSUB with max_msgs carries over: only the rest is asked for ---- */

Test(reconnect, unsub_max_msgs_remaining_survives_reconnect) {
  rec_t rec;
  tern_options_t o;
  tern_client_t *cl, *pub;
  tern_sub_t *sub;
  tern_msg_t *m = NULL;
  rec_init(&rec);
  o = fast_opts(&rec);
  cl = test_client(&o);
  cr_assert_eq(tern_client_subscribe(cl, &sub, "um.t", NULL), 0);
  cr_assert_eq(tern_client_publish(cl, "um.t", "1", 1, NULL), 0);
  cr_assert_eq(tern_client_publish(cl, "um.t", "2", 1, NULL), 0);
  expect_msg(sub, "1");
  expect_msg(sub, "2");
  cr_assert_eq(tern_sub_unsubscribe(sub, 5), 0);

  tt_broker_kill(&broker);
  rec_wait(&rec, TERN_STATUS_DISCONNECTED, 1);
  restart_broker(NULL);
  rec_wait(&rec, TERN_STATUS_CONNECTED, 2);
  cr_assert_eq(tern_client_flush(cl, WAIT_MS), 0);

  pub = test_client(NULL);
  for (int i = 0; i < 10; i++) {
    cr_assert_eq(tern_client_publish(pub, "um.t", "x", 1, NULL), 0);
  }
  cr_assert_eq(tern_client_flush(pub, WAIT_MS), 0);
  cr_assert_eq(tern_client_flush(cl, WAIT_MS), 0);
  for (int i = 0; i < 3; i++) {
    expect_msg(sub, "x");
  }
  cr_expect_eq(tern_sub_next(sub, 1000, &m), TERN_ECLOSED,
               "5 in total, then the subscription ends");
  tern_client_close(pub);
  tern_client_close(cl);
  rec_destroy(&rec);
}

/* ---- giving up: the end is reported, blocking calls stop waiting ---- */

Test(reconnect, gives_up_after_max_attempts) {
  rec_t rec;
  tern_options_t o;
  tern_client_t *cl;
  tern_sub_t *sub;
  tern_msg_t *m = NULL;
  rec_init(&rec);
  o = fast_opts(&rec);
  o.reconnect_max_attempts = 3;
  cl = test_client(&o);
  cr_assert_eq(tern_client_subscribe(cl, &sub, "gu.t", NULL), 0);
  tt_broker_kill(&broker);
  rec_wait(&rec, TERN_STATUS_CLOSED, 1);
  cr_expect_eq(tern_sub_next(sub, WAIT_MS, &m), TERN_ECLOSED);
  cr_expect_eq(tern_client_publish(cl, "gu.t", "x", 1, NULL), TERN_ECLOSED);
  uv_mutex_lock(&rec.mu);
  cr_expect_eq(rec_count_locked(&rec, TERN_STATUS_RECONNECTING), 3);
  cr_expect_eq(rec.reason[rec.n - 1], UV_ECONNREFUSED, "%s",
               tern_err_name(rec.reason[rec.n - 1]));
  uv_mutex_unlock(&rec.mu);
  tern_client_close(cl);
  restart_broker(NULL); /* for the fixture's clean stop */
  rec_destroy(&rec);
}

/* ---- a server list: a dead first entry is skipped, rotation on loss ---- */

Test(reconnect, server_list_skips_dead_and_rotates) {
  rec_t rec;
  tern_options_t o;
  tern_client_t *cl;
  tern_sub_t *sub;
  tt_broker_t dead;
  char list[128];
  rec_init(&rec);
  tt_broker_start(&dead, NULL);
  int dead_port = dead.port;
  cr_assert_eq(tt_broker_stop(&dead), 0);
  snprintf(list, sizeof(list), "127.0.0.1:%d, 127.0.0.1:%d", dead_port,
           broker.port);
  o = fast_opts(&rec);
  o.port = 1; /* unused: the list replaces host and port */
  o.servers = list;
  cl = test_client(&o);
  cr_assert_eq(tern_client_subscribe(cl, &sub, "sl.t", NULL), 0);
  cr_assert_eq(tern_client_publish(cl, "sl.t", "a", 1, NULL), 0);
  expect_msg(sub, "a");

  tt_broker_kill(&broker);
  rec_wait(&rec, TERN_STATUS_DISCONNECTED, 1);
  restart_broker(NULL);
  rec_wait(&rec, TERN_STATUS_CONNECTED, 2);
  uv_mutex_lock(&rec.mu);
  /* The first attempt goes to the next server (the dead one). */
  cr_expect_geq(rec_count_locked(&rec, TERN_STATUS_RECONNECTING), 2);
  uv_mutex_unlock(&rec.mu);
  cr_assert_eq(tern_client_flush(cl, WAIT_MS), 0);
  cr_assert_eq(tern_client_publish(cl, "sl.t", "b", 1, NULL), 0);
  expect_msg(sub, "b");
  tern_client_close(cl);
  rec_destroy(&rec);
}

Test(reconnect, malformed_server_list_is_refused) {
  tern_options_t o = test_opts();
  tern_client_t *cl = NULL;
  o.servers = "127.0.0.1:1,,127.0.0.1:2";
  cr_expect_eq(tern_client_connect(&cl, &o), TERN_EBADURL);
  cr_expect_null(cl);
}

/* ---- a frozen broker: silence for two heartbeats means dead ---- */

static void hb_up(void) {
  static const char *const args[] = {"--heartbeat-ms", "100", NULL};
  tt_broker_start(&broker, args);
}

TestSuite(reconnect_heartbeat, .init = hb_up, .fini = broker_down,
          .timeout = 120);

Test(reconnect_heartbeat, silent_broker_is_declared_stale) {
  static const char *const args[] = {"--heartbeat-ms", "100", NULL};
  rec_t rec;
  tern_options_t o;
  tern_client_t *cl;
  tern_sub_t *sub;
  rec_init(&rec);
  o = fast_opts(&rec);
  o.connect_timeout_ms = 500; /* a frozen broker accepts but never speaks */
  cl = test_client(&o);
  cr_assert_eq(tern_client_subscribe(cl, &sub, "hb.t", NULL), 0);
  cr_assert_eq(kill(broker.pid, SIGSTOP), 0);
  rec_wait(&rec, TERN_STATUS_DISCONNECTED, 1);
  cr_expect_eq(rec_reason(&rec, TERN_STATUS_DISCONNECTED), TERN_ESTALE, "%s",
               tern_err_name(rec_reason(&rec, TERN_STATUS_DISCONNECTED)));
  tt_broker_kill(&broker); /* SIGKILL ends a stopped process too */
  restart_broker(args);
  rec_wait(&rec, TERN_STATUS_CONNECTED, 2);
  cr_assert_eq(tern_client_flush(cl, WAIT_MS), 0);
  cr_assert_eq(tern_client_publish(cl, "hb.t", "alive", 5, NULL), 0);
  expect_msg(sub, "alive");
  tern_client_close(cl);
  rec_destroy(&rec);
}
