/*
 * Size-versioned options structs (tern/options.h) against a real ternd:
 * programs built against the first layout ("v0 callers"), against a newer
 * header with fields this library does not know ("future callers"), and
 * structs never initialised. v0 structs are malloc'd at exactly their size,
 * so under ASan a library that copies its own, larger, size over-reads the
 * allocation; a second v0 caller sits in front of poison bytes, so the same
 * bug shows in any build as poisoned fields in the connection's copy, which
 * the tests read through the library's private headers.
 */
#include <stdlib.h>
#include <string.h>

#include "blocking_internal.h"
#include "fixture.h"

/* tern_options_t as its first version laid it out. */
typedef struct v0_options {
  size_t struct_size;
  char host[TERN_HOST_MAX];
  int port;
  const char *name;
  const char *user;
  const char *pass;
  const char *token;
  bool echo;
  bool verbose;
  uint32_t connect_timeout_ms;
  size_t outbound_limit;
  const char *inbox_prefix;
  uint32_t max_inflight;
  uint32_t publish_timeout_ms;
  size_t sub_queue_msgs;
  size_t sub_queue_bytes;
  tern_error_cb error_cb;
  tern_drain_cb drain_cb;
  tern_disconnect_cb disconnect_cb;
  void *cb_data;
} v0_options_t;

_Static_assert(sizeof(v0_options_t) == offsetof(tern_options_t, status_cb),
               "v0_options_t is a prefix of tern_options_t");
_Static_assert(offsetof(v0_options_t, cb_data) ==
                   offsetof(tern_options_t, cb_data),
               "v0_options_t is a prefix of tern_options_t");

/* The first versions of the pub/sub layouts (sub has grown error_cb). */
typedef struct v0_pub_opts {
  size_t struct_size;
  const char *reply;
  const char *const *header_keys;
  const char *const *header_values;
  size_t header_count;
  tern_ack_cb ack_cb;
  void *ack_cb_data;
  bool retain;
  uint64_t ttl_ms;
} v0_pub_opts_t;

typedef struct v0_sub_opts {
  size_t struct_size;
  const char *queue;
  uint64_t max_msgs;
  uint64_t max_bytes;
  tern_overflow_t overflow;
  tern_dropped_cb dropped_cb;
  size_t queue_msgs;
  size_t queue_bytes;
} v0_sub_opts_t;

_Static_assert(sizeof(v0_pub_opts_t) == sizeof(tern_pub_opts_t), "pub v0");
_Static_assert(sizeof(v0_sub_opts_t) == offsetof(tern_sub_opts_t, error_cb),
               "v0_sub_opts_t is a prefix of tern_sub_opts_t");

#define GARBAGE 0xA5
#define FUTURE_EXTRA 64

/* Built against a newer header: fields this library does not know. */
typedef struct future_options {
  tern_options_t cur;
  unsigned char extra[FUTURE_EXTRA];
} future_options_t;

typedef struct future_pub_opts {
  tern_pub_opts_t cur;
  unsigned char extra[FUTURE_EXTRA];
} future_pub_opts_t;

typedef struct future_sub_opts {
  tern_sub_opts_t cur;
  unsigned char extra[FUTURE_EXTRA];
} future_sub_opts_t;

TT_CLIENT_LOOP_FIXTURE

TestSuite(options_abi, .init = loop_up, .fini = loop_down, .timeout = 60);

typedef struct state {
  int connected;
  int connect_status;
  int acks;
  int msgs;
  int closed;
} state_t;

static void on_connect(tern_conn_t *c, int status, void *d) {
  state_t *st = d;
  (void)c;
  st->connect_status = status;
  st->connected++;
}

static void on_closed(tern_conn_t *c, void *d) {
  (void)c;
  ((state_t *)d)->closed++;
}

/* Connects with opts on the test's loop and runs it until the outcome. */
static tern_conn_t *connect_async(state_t *st, const tern_options_t *opts) {
  tern_conn_t *c = NULL;
  int rc = tern_conn_connect(&c, &loop, opts, on_connect, st);
  cr_assert_eq(rc, 0, "connect: %s", tern_strerror(rc));
  while (st->connected == 0) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  cr_assert_eq(st->connect_status, 0, "%s", tern_strerror(st->connect_status));
  return c;
}

static void close_async(state_t *st, tern_conn_t *c) {
  tern_conn_close(c, on_closed, st);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(st->closed, 1);
}

/* Fills a v0 struct the way a v0 program does: init macro, then fields. */
static void v0_fill(v0_options_t *v0, void *cb_data) {
  cr_assert_eq(tern_options_init_sized((tern_options_t *)v0, sizeof(*v0)), 0);
  cr_assert_eq(v0->struct_size, sizeof(*v0));
  cr_assert_str_eq(v0->host, TERN_DEFAULT_HOST);
  cr_assert_eq(v0->port, TERN_DEFAULT_PORT);
  cr_assert(v0->echo);
  v0->port = broker.port;
  v0->name = "v0-caller";
  v0->echo = false;
  v0->cb_data = cb_data;
}

/* The connection's copy: v0's fields as set, every later one a default. */
static void expect_v0_copy(const tern_options_t *o, void *cb_data) {
  tern_options_t d;
  tern_options_init(&d);
  cr_expect_eq(o->struct_size, sizeof(tern_options_t));
  cr_expect_eq(o->port, broker.port);
  cr_expect_str_eq(o->name, "v0-caller");
  cr_expect_not(o->echo);
  cr_expect_eq(o->cb_data, cb_data);
  cr_expect_null(o->status_cb);
  cr_expect_null(o->servers);
  cr_expect_eq(o->reconnect, d.reconnect);
  cr_expect_eq(o->reconnect_initial_ms, d.reconnect_initial_ms);
  cr_expect_eq(o->reconnect_max_ms, d.reconnect_max_ms);
  cr_expect_eq(o->reconnect_max_attempts, d.reconnect_max_attempts);
  cr_expect_eq(o->reconnect_jitter, d.reconnect_jitter);
  cr_expect_eq(o->heartbeat_ms, d.heartbeat_ms);
  cr_expect_eq(o->breaker_threshold, d.breaker_threshold);
  cr_expect_eq(o->breaker_cooldown_ms, d.breaker_cooldown_ms);
  cr_expect_eq(o->breaker_max_topics, d.breaker_max_topics);
}

Test(options_abi, v0_caller_connects_async_with_defaults_for_later_fields) {
  state_t st = {0};
  int marker;
  v0_options_t *v0 = malloc(sizeof(*v0)); /* exactly: ASan sees overreads */
  tern_conn_t *c;
  cr_assert_not_null(v0);
  memset(v0, GARBAGE, sizeof(*v0));
  v0_fill(v0, &marker);
  c = connect_async(&st, (const tern_options_t *)v0);
  free(v0); /* connect copied it */
  expect_v0_copy(&c->opts.o, &marker);
  close_async(&st, c);
}

Test(options_abi, v0_caller_in_front_of_poison_gets_defaults) {
  struct {
    v0_options_t v0;
    unsigned char poison[sizeof(tern_options_t)];
  } buf;
  state_t st = {0};
  int marker;
  tern_conn_t *c;
  memset(&buf, GARBAGE, sizeof(buf));
  v0_fill(&buf.v0, &marker);
  for (size_t i = 0; i < sizeof(buf.poison); i++) {
    cr_assert_eq(buf.poison[i], GARBAGE, "init wrote past the v0 struct");
  }
  c = connect_async(&st, (const tern_options_t *)&buf.v0);
  expect_v0_copy(&c->opts.o, &marker);
  close_async(&st, c);
}

Test(options_abi, v0_caller_connects_blocking) {
  int marker;
  v0_options_t *v0 = malloc(sizeof(*v0));
  tern_client_t *cl = NULL;
  tern_sub_t *sub;
  tern_msg_t *m = NULL;
  int rc;
  cr_assert_not_null(v0);
  v0_fill(v0, &marker);
  v0->echo = true; /* the round trip below needs our own messages */
  rc = tern_client_connect(&cl, (const tern_options_t *)v0);
  free(v0);
  cr_assert_eq(rc, 0, "connect: %s", tern_strerror(rc));
  cr_expect_eq(cl->user.cb_data, &marker);
  cr_expect_null(cl->user.status_cb);
  cr_expect_eq(cl->user.struct_size, sizeof(tern_options_t));
  cr_assert_eq(tern_client_subscribe(cl, &sub, "v0.t", NULL), 0);
  cr_assert_eq(tern_client_publish(cl, "v0.t", "old", 3, NULL), 0);
  cr_assert_eq(tern_sub_next(sub, 5000, &m), 0);
  cr_expect_eq(tern_msg_len(m), 3);
  tern_msg_release(m);
  tern_client_close(cl);
}

Test(options_abi, future_caller_with_garbage_tail_connects) {
  future_options_t *f = malloc(sizeof(*f));
  tern_client_t *cl = NULL;
  state_t st = {0};
  tern_conn_t *c;
  int rc;
  cr_assert_not_null(f);
  memset(f, GARBAGE, sizeof(*f));
  cr_assert_eq(tern_options_init_sized(&f->cur, sizeof(*f)), 0);
  cr_expect_eq(f->cur.struct_size, sizeof(*f));
  for (size_t i = 0; i < FUTURE_EXTRA; i++) {
    cr_assert_eq(f->extra[i], 0, "init left the unknown tail unset");
  }
  cr_expect_eq(f->cur.reconnect_max_attempts, 60);
  memset(f->extra, GARBAGE, sizeof(f->extra)); /* fields we do not know */
  f->cur.port = broker.port;
  rc = tern_client_connect(&cl, &f->cur);
  cr_assert_eq(rc, 0, "connect: %s", tern_strerror(rc));
  cr_expect_eq(cl->user.struct_size, sizeof(tern_options_t));
  cr_expect_eq(cl->user.port, broker.port);
  tern_client_close(cl);
  c = connect_async(&st, &f->cur);
  cr_expect_eq(c->opts.o.struct_size, sizeof(tern_options_t));
  free(f);
  close_async(&st, c);
}

Test(options_abi, uninitialised_options_are_refused) {
  tern_options_t o, small;
  int dummy; /* non-NULL *out values, to see them cleared */
  tern_client_t *cl = (tern_client_t *)&dummy;
  tern_conn_t *c = (tern_conn_t *)&dummy;
  memset(&o, 0, sizeof(o)); /* built without tern_options_init */
  strcpy(o.host, "127.0.0.1");
  o.port = broker.port;
  cr_expect_eq(tern_conn_connect(&c, &loop, &o, on_connect, NULL), TERN_EINVAL);
  cr_expect_null(c);
  cr_expect_eq(tern_client_connect(&cl, &o), TERN_EINVAL);
  cr_expect_null(cl);
  cr_expect_eq(tern_options_set_url(&o, "127.0.0.1:1"), TERN_EINVAL);
  /* Shorter than the first layout: refused the same way. */
  tern_options_init(&small);
  small.port = broker.port;
  small.struct_size = sizeof(v0_options_t) - 1;
  cr_expect_eq(tern_client_connect(&cl, &small), TERN_EINVAL);
  small.struct_size = sizeof(v0_options_t);
  cr_assert_eq(tern_client_connect(&cl, &small), 0);
  tern_client_close(cl);
}

Test(options_abi, init_sized_refuses_sizes_below_the_first_layout) {
  tern_options_t o;
  tern_pub_opts_t po;
  tern_sub_opts_t so;
  size_t poisoned_size;
  int poisoned_int;
  memset(&poisoned_size, GARBAGE, sizeof(poisoned_size));
  memset(&poisoned_int, GARBAGE, sizeof(poisoned_int));
  memset(&o, GARBAGE, sizeof(o));
  cr_expect_eq(tern_options_init_sized(&o, sizeof(v0_options_t) - 1),
               TERN_EINVAL);
  cr_expect_eq(o.struct_size, 0, "a refused struct stays refused");
  cr_expect_eq(o.port, poisoned_int, "nothing but struct_size written");
  cr_expect_eq(tern_options_init_sized(NULL, sizeof(o)), TERN_EINVAL);
  memset(&po, GARBAGE, sizeof(po));
  cr_expect_eq(tern_pub_opts_init_sized(&po, sizeof(po) - 1), TERN_EINVAL);
  cr_expect_eq(po.struct_size, 0);
  memset(&so, GARBAGE, sizeof(so));
  cr_expect_eq(tern_sub_opts_init_sized(&so, 4), TERN_EINVAL);
  cr_expect_eq(so.struct_size, poisoned_size, "a size_t did not fit: no write");
  cr_expect_eq(tern_sub_opts_init(&so), 0);
  cr_expect_eq(so.struct_size, sizeof(so));
}

static void expect_reply(tern_sub_t *sub, const char *reply, const char *hv) {
  tern_msg_t *m = NULL;
  int rc = tern_sub_next(sub, 5000, &m);
  cr_assert_eq(rc, 0, "next: %s", tern_strerror(rc));
  cr_expect_str_eq(tern_msg_reply(m), reply);
  if (hv != NULL) {
    cr_expect_str_eq(tern_msg_header_get(m, "k"), hv);
  }
  tern_msg_release(m);
}

Test(options_abi, pub_opts_v0_future_and_uninitialised_blocking) {
  static const char *const keys[] = {"k"}, *const vals[] = {"v"};
  tern_client_t *cl = test_client(NULL);
  v0_pub_opts_t *v0 = malloc(sizeof(*v0));
  future_pub_opts_t *f = malloc(sizeof(*f));
  tern_pub_opts_t zero;
  tern_sub_t *sub;
  uint64_t receivers = 0;
  cr_assert(v0 != NULL && f != NULL);
  cr_assert_eq(tern_client_subscribe(cl, &sub, "po.t", NULL), 0);

  cr_assert_eq(tern_pub_opts_init_sized((tern_pub_opts_t *)v0, sizeof(*v0)), 0);
  v0->reply = "po.v0";
  cr_assert_eq(
      tern_client_publish(cl, "po.t", "a", 1, (const tern_pub_opts_t *)v0), 0);
  expect_reply(sub, "po.v0", NULL);

  memset(f, GARBAGE, sizeof(*f));
  cr_assert_eq(tern_pub_opts_init_sized(&f->cur, sizeof(*f)), 0);
  memset(f->extra, GARBAGE, sizeof(f->extra));
  f->cur.reply = "po.future";
  f->cur.header_keys = keys;
  f->cur.header_values = vals;
  f->cur.header_count = 1;
  cr_assert_eq(tern_client_publish(cl, "po.t", "b", 1, &f->cur), 0);
  expect_reply(sub, "po.future", "v");
  cr_assert_eq(
      tern_client_publish_ack(cl, "po.t", "c", 1, &f->cur, 5000, &receivers),
      0);
  cr_expect_eq(receivers, 1);
  expect_reply(sub, "po.future", "v");

  memset(&zero, 0, sizeof(zero));
  cr_expect_eq(tern_client_publish(cl, "po.t", "d", 1, &zero), TERN_EINVAL);
  cr_expect_eq(tern_client_publish_ack(cl, "po.t", "d", 1, &zero, 5000, NULL),
               TERN_EINVAL);
  free(v0);
  free(f);
  tern_client_close(cl);
}

Test(options_abi, sub_opts_v0_future_and_uninitialised_blocking) {
  tern_client_t *cl = test_client(NULL);
  v0_sub_opts_t *v0 = malloc(sizeof(*v0));
  future_sub_opts_t *f = malloc(sizeof(*f));
  tern_sub_opts_t zero;
  tern_sub_t *a, *b, *bad = (tern_sub_t *)&zero;
  cr_assert(v0 != NULL && f != NULL);
  cr_assert_eq(tern_sub_opts_init_sized((tern_sub_opts_t *)v0, sizeof(*v0)), 0);
  v0->queue = "grp";
  memset(f, GARBAGE, sizeof(*f));
  cr_assert_eq(tern_sub_opts_init_sized(&f->cur, sizeof(*f)), 0);
  memset(f->extra, GARBAGE, sizeof(f->extra));
  f->cur.queue = "grp";
  cr_assert_eq(
      tern_client_subscribe(cl, &a, "so.t", (const tern_sub_opts_t *)v0), 0);
  cr_assert_eq(tern_client_subscribe(cl, &b, "so.t", &f->cur), 0);
  free(v0);
  free(f);
  /* Both joined the queue group: the message reaches exactly one of them.
   * Its MSG comes before the flush's PONG on this connection. */
  cr_assert_eq(tern_client_publish(cl, "so.t", "x", 1, NULL), 0);
  cr_assert_eq(tern_client_flush(cl, 5000), 0);
  cr_expect_eq(tern_sub_pending(a) + tern_sub_pending(b), 1);

  memset(&zero, 0, sizeof(zero));
  cr_expect_eq(tern_client_subscribe(cl, &bad, "so.t", &zero), TERN_EINVAL);
  cr_expect_null(bad);
  tern_client_close(cl);
}

static void on_ack(tern_conn_t *c, int status, uint64_t receivers, void *d) {
  state_t *st = d;
  (void)c;
  cr_expect_eq(status, 0);
  cr_expect_eq(receivers, 1);
  st->acks++;
}

static void on_msg(tern_asub_t *s, tern_msg_t *m, void *d) {
  (void)s;
  (void)m;
  ((state_t *)d)->msgs++;
}

Test(options_abi, pub_and_sub_opts_async) {
  state_t st = {0};
  tern_options_t o = test_opts();
  v0_pub_opts_t *pv0 = malloc(sizeof(*pv0));
  v0_sub_opts_t *sv0 = malloc(sizeof(*sv0));
  future_pub_opts_t *pf = malloc(sizeof(*pf));
  future_sub_opts_t *sf = malloc(sizeof(*sf));
  tern_pub_opts_t pzero;
  tern_sub_opts_t szero;
  tern_asub_t *s = (tern_asub_t *)&szero;
  tern_conn_t *c;
  cr_assert(pv0 != NULL && sv0 != NULL && pf != NULL && sf != NULL);
  c = connect_async(&st, &o);

  cr_assert_eq(tern_sub_opts_init_sized((tern_sub_opts_t *)sv0, sizeof(*sv0)),
               0);
  cr_assert_eq(tern_conn_subscribe(c, NULL, "pa.t",
                                   (const tern_sub_opts_t *)sv0, on_msg, &st),
               0);
  memset(sf, GARBAGE, sizeof(*sf));
  cr_assert_eq(tern_sub_opts_init_sized(&sf->cur, sizeof(*sf)), 0);
  memset(sf->extra, GARBAGE, sizeof(sf->extra));
  sf->cur.queue = "grp";
  cr_assert_eq(tern_conn_subscribe(c, NULL, "pa.q", &sf->cur, on_msg, &st), 0);

  cr_assert_eq(tern_pub_opts_init_sized((tern_pub_opts_t *)pv0, sizeof(*pv0)),
               0);
  pv0->ack_cb = on_ack;
  pv0->ack_cb_data = &st;
  cr_assert_eq(
      tern_conn_publish(c, "pa.t", "a", 1, (const tern_pub_opts_t *)pv0), 0);
  memset(pf, GARBAGE, sizeof(*pf));
  cr_assert_eq(tern_pub_opts_init_sized(&pf->cur, sizeof(*pf)), 0);
  memset(pf->extra, GARBAGE, sizeof(pf->extra));
  pf->cur.ack_cb = on_ack;
  pf->cur.ack_cb_data = &st;
  cr_assert_eq(tern_conn_publish(c, "pa.q", "b", 1, &pf->cur), 0);
  free(pv0);
  free(sv0);
  free(pf);
  free(sf);

  memset(&pzero, 0, sizeof(pzero));
  memset(&szero, 0, sizeof(szero));
  cr_expect_eq(tern_conn_publish(c, "pa.t", "c", 1, &pzero), TERN_EINVAL);
  cr_expect_eq(tern_conn_subscribe(c, &s, "pa.t", &szero, on_msg, &st),
               TERN_EINVAL);
  cr_expect_null(s);

  while (st.acks < 2 || st.msgs < 2) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  cr_expect_eq(st.acks, 2);
  cr_expect_eq(st.msgs, 2);
  close_async(&st, c);
}
