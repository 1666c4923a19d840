/*
 * A connection's session driven through a stub transport (no socket): the
 * peer's bytes go in through the transport's callbacks (alloc, on_data,
 * on_error), what the session writes is read back from the stub, and the
 * close ends in on_closed. No server: a broker_t and one worker_t, and the
 * before-sleep hook's work done by hand (turn()).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "data/retained.h"
#include "delivery/worker.h"
#include "session/conn.h"
#include "stub_transport.h"
#include "tern_proto/frame.h"
#include "tern_proto/reader.h"

static uv_loop_t loop;
static broker_t broker;
static worker_t wk;
static uv_timer_t retained_timer;
static int nclosed;

static void on_conn_closed(worker_t *w, conn_t *c) {
  (void)w;
  (void)c;
  nclosed++;
}

static void setup(void) {
  cr_assert_eq(uv_loop_init(&loop), 0);
  memset(&broker, 0, sizeof broker);
  worker_init(&wk, &broker, &loop);
  config_defaults(&broker.cfg);
  wk.sub_env.block = conn_block_on;
  wk.sub_env.unblock = conn_unblock;
  wk.conn_events = (conn_events_t){.closed = on_conn_closed};
  nclosed = 0;
  pending_gate_init(&broker.gate, 64u << 20);
  cr_assert_eq(sublist_create(&broker.index, 0), 0);
  cr_assert_eq(msgbuf_pool_create(&wk.bufs, 16, 1 << 20), 0);
  cr_assert_eq(outq_pool_create(&wk.entries, 64), 0);
  cr_assert_eq(rx_shared_init(&wk.rx), 0);
  wk.rx.tail_max = 16u << 20;
  uv_timer_init(&loop, &retained_timer);
  cr_assert_eq(
      retained_create(&broker.retained, &retained_timer, 100, 1u << 20), 0);
  /* HELLO, as the server encodes it. */
  broker.hello = msgbuf_get(wk.bufs);
  cr_assert_not_null(broker.hello);
  tp_frame_t f;
  tp_frame_init(&f, TP_HELLO);
  f.u.hello.proto = TP_PROTO_VERSION;
  f.u.hello.server = (tp_str_t){.ptr = "stub", .len = 4};
  f.u.hello.server_id = (tp_str_t){.ptr = "stub-id", .len = 7};
  cr_assert_eq(tp_frame_encode(&broker.hello->bytes, &f), 0);
}

static void teardown(void) {
  /* Every connection closed by the test: the loop runs their close. */
  uv_close((uv_handle_t *)&retained_timer, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(wk.nconns - (size_t)nclosed, 0, "a connection was left open");
  retained_destroy(broker.retained);
  msgbuf_unref(broker.hello);
  sublist_destroy(broker.index);
  msgbuf_pool_destroy(wk.bufs);
  outq_pool_destroy(wk.entries);
  rx_shared_free(&wk.rx);
  tp_buf_free(&wk.scratch);
  free(wk.ended);
  config_free(&broker.cfg);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

TestSuite(session_transport, .init = setup, .fini = teardown);

/* The server's before-sleep hook: resume, teardown, one flush each. */
static void turn(void) {
  list_node_t local, *n;
  list_move_all(&local, &wk.resume_list);
  while ((n = list_first(&local)) != NULL) {
    list_remove(n);
    conn_resume(LIST_ENTRY(n, conn_t, resume_link));
  }
  while ((n = list_first(&wk.close_list)) != NULL)
    conn_teardown(LIST_ENTRY(n, conn_t, close_link));
  list_move_all(&local, &wk.flush_list);
  while ((n = list_first(&local)) != NULL) {
    list_remove(n);
    conn_flush(LIST_ENTRY(n, conn_t, ep.flush_link));
  }
}

static conn_t *accept_stub(stub_transport_t **st) {
  *st = stub_transport_new(&loop);
  cr_assert_eq(conn_accept(&wk, &(*st)->base), 0);
  conn_t *c = (*st)->base.owner;
  cr_assert_not_null(c);
  return c;
}

static void feed_frame(stub_transport_t *st, const tp_frame_t *f) {
  tp_buf_t b;
  tp_buf_init(&b);
  cr_assert_eq(tp_frame_encode(&b, f), 0);
  stub_transport_feed(st, b.data, b.len);
  tp_buf_free(&b);
}

static void feed_connect(stub_transport_t *st) {
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = TP_PROTO_VERSION;
  f.u.connect.echo = true;
  feed_frame(st, &f);
}

/* What the session wrote, frame by frame: "HELLO OK MSG(1,a.b,hi) ...". */
static void written(stub_transport_t *st, char *out, size_t cap) {
  tp_reader_t *r;
  cr_assert_eq(tp_reader_create(&r, 1 << 20, 4096), 0);
  cr_assert_eq(tp_reader_feed(r, st->out, st->out_len), 0);
  size_t len = 0;
  out[0] = '\0';
  tp_frame_t f;
  int rc;
  while ((rc = tp_reader_next(r, &f)) == 1) {
    const char *sep = len ? " " : "";
    int k;
    switch (f.type) {
    case TP_HELLO:
      k = snprintf(out + len, cap - len, "%sHELLO", sep);
      break;
    case TP_OK:
      k = snprintf(out + len, cap - len, "%sOK", sep);
      break;
    case TP_PONG:
      k = snprintf(out + len, cap - len, "%sPONG", sep);
      break;
    case TP_MSG:
      k = snprintf(out + len, cap - len, "%sMSG(%llu,%.*s,%.*s)", sep,
                   (unsigned long long)f.u.msg.sid, (int)f.u.msg.topic.len,
                   f.u.msg.topic.ptr, (int)f.u.msg.payload.len,
                   (const char *)f.u.msg.payload.ptr);
      break;
    case TP_ERR:
      k = snprintf(out + len, cap - len, "%sERR(%u)", sep,
                   (unsigned)f.u.err.code);
      break;
    default:
      k = snprintf(out + len, cap - len, "%s?%d", sep, f.type);
      break;
    }
    len += (size_t)k;
  }
  cr_assert_eq(rc, 0, "the session wrote a broken frame");
  tp_reader_destroy(r);
}

Test(session_transport, hello_on_accept_then_connect_sub_pub) {
  stub_transport_t *st;
  conn_t *c = accept_stub(&st);
  cr_assert(st->reading, "reads from accept on");
  cr_assert(st->timer_on, "connect timeout armed");
  cr_assert_eq(st->timer_ms, broker.cfg.connect_timeout_ms);
  cr_assert_str_eq(c->addr, "127.0.0.1:4242");
  turn();
  char got[512];
  written(st, got, sizeof got);
  cr_assert_str_eq(got, "HELLO");

  feed_connect(st);
  tp_frame_t f;
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = 7;
  f.u.sub.pattern = (tp_str_t){.ptr = "a.*", .len = 3};
  feed_frame(st, &f);
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = (tp_str_t){.ptr = "a.b", .len = 3};
  f.u.pub.payload = (tp_bytes_t){.ptr = (const uint8_t *)"hi", .len = 2};
  feed_frame(st, &f);
  tp_frame_init(&f, TP_PING);
  feed_frame(st, &f);
  turn();
  written(st, got, sizeof got);
  cr_assert_str_eq(got, "HELLO OK MSG(7,a.b,hi) PONG");
  cr_assert_eq(c->state, CONN_ACTIVE);
  cr_assert(st->timer_on, "heartbeat armed");
  cr_assert_eq(st->timer_ms, broker.cfg.heartbeat_ms);

  /* The peer leaves: teardown, flush, close, then on_closed. */
  stub_transport_eof(st);
  cr_assert(!st->reading);
  turn();
  cr_assert(st->closing, "closed once flushed");
  cr_assert_eq(nclosed, 0, "on_closed comes from the loop, not close");
  uv_run(&loop, UV_RUN_NOWAIT);
  cr_assert_eq(nclosed, 1);
}

Test(session_transport, frames_split_across_reads) {
  stub_transport_t *st;
  accept_stub(&st);
  tp_buf_t b;
  tp_buf_init(&b);
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = TP_PROTO_VERSION;
  f.u.connect.echo = true;
  cr_assert_eq(tp_frame_encode(&b, &f), 0);
  tp_frame_init(&f, TP_PING);
  cr_assert_eq(tp_frame_encode(&b, &f), 0);
  for (size_t i = 0; i < b.len; i++)
    stub_transport_feed(st, b.data + i, 1);
  tp_buf_free(&b);
  turn();
  char got[256];
  written(st, got, sizeof got);
  cr_assert_str_eq(got, "HELLO OK PONG");
  conn_goaway(st->base.owner, "test over");
  turn();
  uv_run(&loop, UV_RUN_NOWAIT);
  cr_assert_eq(nclosed, 1);
}

Test(session_transport, garbage_is_err_then_close) {
  stub_transport_t *st;
  accept_stub(&st);
  feed_connect(st);
  static const uint8_t junk[] = {0, 0, 0, 3, 0xc1, 0xc1, 0xc1};
  stub_transport_feed(st, junk, sizeof junk);
  cr_assert(!st->reading, "a broken frame stops reading");
  turn();
  char got[256];
  written(st, got, sizeof got);
  cr_assert(strncmp(got, "HELLO OK ERR(", 13) == 0, "got: %s", got);
  cr_assert(st->closing, "closed once the ERR is written");
  uv_run(&loop, UV_RUN_NOWAIT);
  cr_assert_eq(nclosed, 1);
}
