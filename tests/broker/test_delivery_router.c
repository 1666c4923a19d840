/*
 * The delivery core's fan-out without a socket: router_publish over a
 * server whose connections are stubs (no descriptor, never read or
 * written), checked by reading back what each connection's output queue
 * would send. No server: a broker_t and one worker_t. Policies, where DROPPED
 * goes, the pending gate's budget and queue-group choice.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "data/outq.h"
#include "delivery/interest.h"
#include "delivery/pending_gate.h"
#include "delivery/router.h"
#include "delivery/worker.h"
#include "session/conn.h"
#include "stub_transport.h"
#include "tern_proto/errors.h"
#include "tern_proto/reader.h"

static uv_loop_t loop;
static broker_t broker;
static worker_t wk;
static conn_t *conns[8];
static int nconns;

static void setup(void) {
  cr_assert_eq(uv_loop_init(&loop), 0);
  memset(&broker, 0, sizeof broker);
  worker_init(&wk, &broker, &loop);
  config_defaults(&broker.cfg);
  wk.sub_env.block = conn_block_on;
  wk.sub_env.unblock = conn_unblock;
  /* conn_events stay NULL: no $SYS here. */
  pending_gate_init(&broker.gate, 64u << 20);
  cr_assert_eq(sublist_create(&broker.index, 0), 0);
  cr_assert_eq(msgbuf_pool_create(&wk.bufs, 16, 1 << 20), 0);
  cr_assert_eq(outq_pool_create(&wk.entries, 64), 0);
  nconns = 0;
}

/* An ACTIVE connection with no socket: its queue and a stub transport. */
static conn_t *stub_conn(void) {
  conn_t *c = calloc(1, sizeof *c);
  cr_assert_not_null(c);
  c->w = &wk;
  c->id = (uint64_t)nconns + 1;
  c->state = CONN_ACTIVE;
  conn_init_endpoint(c);
  list_init(&c->all_link);
  list_init(&c->close_link);
  list_init(&c->resume_link);
  list_init(&c->partial_link);
  outq_init(&c->out, wk.entries);
  c->tr = &stub_transport_new(&loop)->base;
  cr_assert_eq(hashmap_create(&c->subs, 0), 0);
  list_insert_tail(&wk.conns, &c->all_link);
  conns[nconns++] = c;
  return c;
}

static sub_t *subscribe(conn_t *c, uint64_t sid, const char *pattern,
                        const char *queue, int overflow, uint64_t max_msgs) {
  tp_sub_t req;
  memset(&req, 0, sizeof req);
  req.sid = sid;
  req.pattern = (tp_str_t){.ptr = pattern, .len = (uint32_t)strlen(pattern)};
  if (queue != NULL)
    req.queue = (tp_str_t){.ptr = queue, .len = (uint32_t)strlen(queue)};
  req.overflow = overflow;
  req.max_msgs = max_msgs;
  sub_t *s =
      sub_create(c, &c->ep, &c->out, &wk.sub_env, &req, 1u << 20, 1u << 30);
  cr_assert_not_null(s);
  cr_assert_eq(hashmap_put(c->subs, s->sid_key, sizeof s->sid_key, s), 0);
  cr_assert_eq(interest_add(&broker, s), 0);
  return s;
}

static uint64_t publish(conn_t *from, const char *topic, const char *payload) {
  tp_pub_t pub;
  memset(&pub, 0, sizeof pub);
  pub.topic = (tp_str_t){.ptr = topic, .len = (uint32_t)strlen(topic)};
  pub.payload = (tp_bytes_t){.ptr = (const uint8_t *)payload,
                             .len = (uint32_t)strlen(payload)};
  uint64_t n = 0;
  cr_assert_eq(router_publish(&wk, from != NULL ? &from->ep : NULL, &pub, &n),
               0);
  return n;
}

/* What c would send, in order: "M<payload>" per MSG, "D<count>" per
 * DROPPED, "E<code>" per ERR, separated by spaces. */
static void sent(conn_t *c, char *out, size_t cap) {
  tp_reader_t *r;
  cr_assert_eq(tp_reader_create(&r, 1 << 20, 4096), 0);
  for (list_node_t *n = c->out.entries.next; n != &c->out.entries;
       n = n->next) {
    outq_entry_t *e = LIST_ENTRY(n, outq_entry_t, link);
    if (e->is_chunk) {
      cr_assert_eq(tp_reader_feed(r, outq_chunk_of(e)->data, e->bytes), 0);
      continue;
    }
    cr_assert_eq(tp_reader_feed(r, e->head, e->head_len), 0);
    if (e->body != NULL)
      cr_assert_eq(tp_reader_feed(r, e->body->bytes.data, e->body->bytes.len),
                   0);
  }
  size_t len = 0;
  out[0] = '\0';
  tp_frame_t f;
  while (tp_reader_next(r, &f) == 1) {
    int k = 0;
    if (f.type == TP_MSG)
      k = snprintf(out + len, cap - len, "%sM%.*s", len ? " " : "",
                   (int)f.u.msg.payload.len, (const char *)f.u.msg.payload.ptr);
    else if (f.type == TP_DROPPED)
      k = snprintf(out + len, cap - len, "%sD%llu", len ? " " : "",
                   (unsigned long long)f.u.dropped.count);
    else if (f.type == TP_ERR)
      k = snprintf(out + len, cap - len, "%sE%u", len ? " " : "",
                   (unsigned)f.u.err.code);
    len += (size_t)k;
  }
  tp_reader_destroy(r);
}

static void teardown(void) {
  for (int i = 0; i < nconns; i++) {
    conn_t *c = conns[i];
    conn_teardown(c);
    outq_clear(&c->out);
    hashmap_destroy(c->subs);
    free(c->blocked_on);
    stub_transport_drop(stub_of(c->tr));
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  for (int i = 0; i < nconns; i++)
    free(conns[i]);
  sublist_destroy(broker.index);
  msgbuf_pool_destroy(wk.bufs);
  outq_pool_destroy(wk.entries);
  tp_buf_free(&wk.scratch);
  free(wk.ended);
  config_free(&broker.cfg);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

TestSuite(delivery_router, .init = setup, .fini = teardown);

Test(delivery_router, each_matching_subscription_gets_one_copy) {
  conn_t *a = stub_conn(), *b = stub_conn(), *p = stub_conn();
  subscribe(a, 1, "t.>", NULL, TP_OVERFLOW_BLOCK, 0);
  subscribe(b, 2, "t.x", NULL, TP_OVERFLOW_BLOCK, 0);
  subscribe(b, 3, "u", NULL, TP_OVERFLOW_BLOCK, 0);
  cr_expect_eq(publish(p, "t.x", "hi"), 2);
  cr_expect_eq(publish(p, "t.y", "yo"), 1);
  char buf[256];
  sent(a, buf, sizeof buf);
  cr_expect_str_eq(buf, "Mhi Myo");
  sent(b, buf, sizeof buf);
  cr_expect_str_eq(buf, "Mhi");
  sent(p, buf, sizeof buf);
  cr_expect_str_eq(buf, "");
  cr_expect(list_linked(&a->ep.flush_link)); /* the worker will write it */
}

Test(delivery_router, drop_newest_keeps_the_first_and_reports_before_the_next) {
  conn_t *a = stub_conn(), *p = stub_conn();
  sub_t *s = subscribe(a, 1, "t", NULL, TP_OVERFLOW_DROP_NEWEST, 2);
  const char *m[] = {"1", "2", "3", "4"};
  for (int i = 0; i < 4; i++)
    publish(p, "t", m[i]);
  char buf[256];
  sent(a, buf, sizeof buf);
  cr_expect_str_eq(buf, "M1 M2");
  cr_expect_eq(s->dropped, 2);
  cr_expect_eq(wk.stats.msgs_dropped, 2);
  /* Room again (as if written): DROPPED goes just before the next MSG. */
  outq_clear(&a->out);
  publish(p, "t", "5");
  sent(a, buf, sizeof buf);
  cr_expect_str_eq(buf, "D2 M5");
}

Test(delivery_router, drop_oldest_keeps_the_newest_with_the_gap_in_front) {
  conn_t *a = stub_conn(), *p = stub_conn();
  sub_t *s = subscribe(a, 1, "t", NULL, TP_OVERFLOW_DROP_OLDEST, 2);
  const char *m[] = {"1", "2", "3", "4", "5"};
  for (int i = 0; i < 5; i++)
    publish(p, "t", m[i]);
  char buf[256];
  sent(a, buf, sizeof buf);
  /* One notice where the gap is, grown as the gap grew. */
  cr_expect_str_eq(buf, "D3 M4 M5");
  cr_expect_eq(s->dropped, 3);
  cr_expect_eq(s->q.pending_msgs, 2);
}

Test(delivery_router, disconnect_closes_the_slow_consumer_with_err_6) {
  conn_t *a = stub_conn(), *b = stub_conn(), *p = stub_conn();
  subscribe(a, 1, "t", NULL, TP_OVERFLOW_DISCONNECT, 1);
  subscribe(b, 1, "t", NULL, TP_OVERFLOW_BLOCK, 0);
  publish(p, "t", "1");
  publish(p, "t", "2");
  char buf[256];
  sent(a, buf, sizeof buf);
  cr_expect_str_eq(buf, "E6"); /* its unsent MSGs go, only the ERR is left */
  cr_expect_eq(a->state, CONN_CLOSING);
  cr_expect_eq(wk.stats.slow_consumers, 1);
  sent(b, buf, sizeof buf);
  cr_expect_str_eq(buf, "M1 M2"); /* the others are not touched */
}

Test(delivery_router, block_pauses_the_publisher_at_the_limit) {
  conn_t *a = stub_conn(), *p = stub_conn();
  sub_t *s = subscribe(a, 1, "t", NULL, TP_OVERFLOW_BLOCK, 2);
  publish(p, "t", "1");
  cr_expect_eq(p->nblocked, 0);
  publish(p, "t", "2");
  cr_expect_eq(p->nblocked, 1); /* full: stops after this frame */
  cr_expect_eq(s->nwaiters, 1);
  cr_expect_eq(wk.stats.publisher_blocks, 1);
  outq_clear(&a->out); /* written: the queue drains, p may go on */
  cr_expect_eq(p->nblocked, 0);
  cr_expect(list_linked(&p->resume_link));
}

Test(delivery_router, a_queue_group_takes_turns_and_skips_a_full_member) {
  conn_t *m[3], *p = stub_conn();
  for (int i = 0; i < 3; i++) {
    m[i] = stub_conn();
    subscribe(m[i], 1, "t", "g", TP_OVERFLOW_DROP_NEWEST, i == 1 ? 1 : 100);
  }
  const char *msgs[] = {"a", "b", "c", "d", "e", "f"};
  for (int i = 0; i < 6; i++)
    cr_expect_eq(publish(p, "t", msgs[i]), 1);
  /* Member 1 holds one message; once full, its turns go to the next. */
  size_t total = 0;
  char buf[256];
  for (int i = 0; i < 3; i++) {
    sent(m[i], buf, sizeof buf);
    size_t k = 0;
    for (char *q = buf; *q; q++)
      k += *q == 'M';
    total += k;
    if (i == 1)
      cr_expect_eq(k, 1, "full member got %s", buf);
    else
      cr_expect_geq(k, 2, "member %d got %s", i, buf);
  }
  cr_expect_eq(total, 6); /* every message to exactly one member */
  cr_expect_eq(wk.stats.msgs_dropped, 0);
}

Test(delivery_router, the_gate_squeezes_budgets_between_half_and_the_cap) {
  pending_gate_t g;
  pending_gate_init(&g, 1u << 20);
  cr_expect_eq(pending_gate_budget(&g, 0), UINT64_MAX);
  cr_expect_eq(pending_gate_budget(&g, (1u << 19) - 1), UINT64_MAX);
  cr_expect_eq(pending_gate_budget(&g, 1u << 19), 1u << 20); /* 2 x room */
  cr_expect_eq(pending_gate_budget(&g, (1u << 20) - 100), PENDING_GATE_FLOOR);
  cr_expect_eq(pending_gate_budget(&g, 1u << 20), 0);
}

Test(delivery_router, under_pressure_the_largest_holder_pays_first) {
  conn_t *big = stub_conn(), *small = stub_conn(), *p = stub_conn();
  sub_t *b = subscribe(big, 1, "big", NULL, TP_OVERFLOW_DROP_NEWEST, 0);
  sub_t *s = subscribe(small, 1, "small", NULL, TP_OVERFLOW_DROP_NEWEST, 0);
  char payload[1025];
  memset(payload, 'x', 1024);
  payload[1024] = '\0';
  /* A cap that 4 KiB of queues squeezes. */
  pending_gate_init(&broker.gate, 4096);
  for (int i = 0; i < 200; i++)
    publish(p, "big", payload);
  publish(p, "small", "1");
  cr_expect_gt(b->dropped, 0); /* over its budget */
  cr_expect_gt(broker.gate.drops[TP_OVERFLOW_DROP_NEWEST], 0);
  cr_expect_eq(s->dropped, 0); /* holds nothing: takes its message */
  cr_expect_eq(s->q.pending_msgs, 1);
}

/* Another loop's subscriptions, as that loop registered them. */
static sub_t *handed[4];
static int nhanded;
static bool stub_hand_over(struct worker *from, struct sub *s,
                           struct endpoint *publisher, struct msgbuf *body,
                           const tp_str_t *reply) {
  (void)from;
  (void)publisher;
  (void)body;
  (void)reply;
  handed[nhanded++] = s;
  return true;
}

Test(delivery_router, a_subscription_of_another_owner_is_handed_over) {
  conn_t *here = stub_conn(), *there = stub_conn(), *p = stub_conn();
  list_node_t stalled;
  list_init(&stalled);
  sub_env_t other = wk.sub_env;
  other.stalled = &stalled;
  other.hand_over = stub_hand_over;
  wk.sub_env.hand_over = stub_hand_over; /* two loops: both register it */
  nhanded = 0;
  subscribe(here, 1, "t", NULL, TP_OVERFLOW_BLOCK, 0);
  tp_sub_t req;
  memset(&req, 0, sizeof req);
  req.sid = 9;
  req.pattern = (tp_str_t){.ptr = "t", .len = 1};
  sub_t *s =
      sub_create(there, &there->ep, &there->out, &other, &req, 100, 1 << 20);
  cr_assert_eq(hashmap_put(there->subs, s->sid_key, sizeof s->sid_key, s), 0);
  cr_assert_eq(interest_add(&broker, s), 0);
  cr_expect_eq(publish(p, "t", "x"), 2);
  cr_expect_eq(nhanded, 1);
  cr_expect_eq(handed[0], s);
  char buf[64];
  sent(there, buf, sizeof buf);
  cr_expect_str_eq(buf, ""); /* not queued by this loop */
  sent(here, buf, sizeof buf);
  cr_expect_str_eq(buf, "Mx");
}
