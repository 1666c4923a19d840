/*
 * Session acceptance tests (PROTOCOL.md "Session"): HELLO, CONNECT, the
 * connect timeout and heartbeats, spoken in raw frames to a real ternd.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "broker_proc.h"
#include "raw_client.h"

TT_BROKER_FIXTURE_DEFAULT(plain)
TT_BROKER_FIXTURE(small, "--max-payload", "1024", "--heartbeat-ms", "1500")
TT_BROKER_FIXTURE(ctimeout, "--connect-timeout-ms", "200")
TT_BROKER_FIXTURE(heartbeat, "--heartbeat-ms", "100")

TestSuite(session, .timeout = 60);

/* Opens a socket and returns with the HELLO frame in *f. */
static void read_hello(tt_raw_t *c, tp_frame_t *f) {
  tt_raw_attach(c, tt_connect(tt_g_broker.port));
  tt_raw_expect(c, f, TP_HELLO, TT_RECV_MS);
}

static void assert_server_name(tp_str_t server) {
  cr_assert_geq(server.len, strlen("ternd/") + 1, "server '%.*s'",
                (int)server.len, server.ptr);
  cr_assert(memcmp(server.ptr, "ternd/", 6) == 0, "server '%.*s'",
            (int)server.len, server.ptr);
}

Test(session, hello_defaults, .init = plain_init, .fini = plain_fini) {
  tt_raw_t c;
  tp_frame_t f;
  read_hello(&c, &f);
  tp_hello_t *h = &f.u.hello;
  cr_assert_eq(h->proto, 1);
  assert_server_name(h->server);
  cr_assert_gt(h->server_id.len, 0, "server_id is empty");
  cr_assert_eq(h->max_payload, 1024u * 1024u);
  cr_assert_eq(h->max_frame, 1024u * 1024u + 65536u);
  cr_assert_not(h->auth_required, "no auth is configured");
  tt_raw_close(&c);
}

Test(session, hello_announces_configured_limits, .init = small_init,
     .fini = small_fini) {
  tt_raw_t c;
  tp_frame_t f;
  read_hello(&c, &f);
  tp_hello_t *h = &f.u.hello;
  cr_assert_eq(h->proto, 1);
  assert_server_name(h->server);
  cr_assert_eq(h->max_payload, 1024u);
  cr_assert_eq(h->max_frame, 1024u + 65536u);
  cr_assert_eq(h->heartbeat_ms, 1500u);
  tt_raw_close(&c);
}

Test(session, connect_gets_ok_and_session_works, .init = plain_init,
     .fini = plain_fini) {
  tt_raw_t c;
  tt_raw_open(&c, tt_g_broker.port, false, true, false);
  tt_raw_connect(&c, true, false);
  /* Nothing but the OK answered CONNECT. */
  tt_raw_barrier_strict(&c);
  tt_raw_check_pubsub(&c);
  tt_raw_close(&c);
}

Test(session, ping_before_connect_gets_pong, .init = plain_init,
     .fini = plain_fini) {
  tt_raw_t c;
  tt_raw_open(&c, tt_g_broker.port, false, true, false);
  tt_raw_barrier_strict(&c);
  tt_raw_connect(&c, true, false);
  tt_raw_check_pubsub(&c);
  tt_raw_close(&c);
}

Test(session, pub_before_connect_is_fatal, .init = plain_init,
     .fini = plain_fini) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, false, true, false);
  tt_raw_pub(&c, "early.bird", "x", 1);
  tt_raw_expect_err(&c, 1, TT_RECV_MS);
  cr_assert(tt_raw_wait_closed(&c, TT_RECV_MS), "connection not closed");
  tt_raw_check_pubsub(&w);
  tt_raw_close(&c);
  tt_raw_close(&w);
}

Test(session, connect_with_unknown_proto_is_fatal, .init = plain_init,
     .fini = plain_fini) {
  tt_raw_t c;
  tt_raw_open(&c, tt_g_broker.port, false, true, false);
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = 2;
  tt_raw_send(&c, &f);
  tt_raw_expect_err(&c, 1, TT_RECV_MS);
  cr_assert(tt_raw_wait_closed(&c, TT_RECV_MS), "connection not closed");
  tt_raw_close(&c);
}

Test(session, connect_timeout, .init = ctimeout_init, .fini = ctimeout_fini) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, false, true, false);
  /* The receive timeout is 50x the connect timeout: no timing assumption. */
  tt_raw_expect_err(&c, 7, TT_RECV_MS);
  cr_assert(tt_raw_wait_closed(&c, TT_RECV_MS), "connection not closed");
  /* The connection that did CONNECT in time outlived the timeout. */
  tt_raw_check_pubsub(&w);
  tt_raw_close(&c);
  tt_raw_close(&w);
}

Test(session, hello_announces_heartbeat, .init = heartbeat_init,
     .fini = heartbeat_fini) {
  tt_raw_t c;
  tp_frame_t f;
  read_hello(&c, &f);
  cr_assert_eq(f.u.hello.heartbeat_ms, 100u);
  tt_raw_close(&c);
}

/*
 * A client that answers every PING survives many heartbeat periods. Counted
 * in PINGs, not in time: five answered PINGs cover more than the two
 * missed ones after which the broker would close a silent client.
 */
Test(session, heartbeat_answered_keeps_connection, .init = heartbeat_init,
     .fini = heartbeat_fini) {
  tt_raw_t c;
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  int pings = 0;
  while (pings < 5) {
    tp_frame_t f;
    int r = tt_raw_recv(&c, &f, TT_RECV_MS);
    cr_assert_eq(r, 1, "no heartbeat PING (%s)",
                 r == 0 ? "timeout" : "connection closed");
    if (f.type == TP_ERR)
      cr_assert_fail("ERR %u after %d answered PINGs", f.u.err.code, pings);
    cr_assert_eq(f.type, TP_PING, "unexpected %s", tp_frame_type_name(f.type));
    pings++;
    tp_frame_init(&f, TP_PONG);
    tt_raw_send(&c, &f);
  }
  tt_raw_check_pubsub(&c);
  tt_raw_close(&c);
}

/* Answers the heartbeat PINGs already sent to c, without waiting. */
static void answer_pings(tt_raw_t *c) {
  tp_frame_t f;
  while (tt_raw_recv(c, &f, 0) == 1) {
    cr_assert_eq(f.type, TP_PING, "unexpected %s", tp_frame_type_name(f.type));
    tp_frame_init(&f, TP_PONG);
    tt_raw_send(c, &f);
  }
}

Test(session, heartbeat_missed_closes_stale_client, .init = heartbeat_init,
     .fini = heartbeat_fini) {
  tt_raw_t w, c;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  int pings = 0;
  tp_frame_t f;
  int64_t deadline = tt_now_ms() + TT_RECV_MS;
  for (;;) {
    /* Short waits on the silent client so the good one keeps answering. */
    int r = tt_raw_recv(&c, &f, 20);
    answer_pings(&w);
    cr_assert_neq(r, -1, "closed without ERR 12");
    if (r == 0) {
      cr_assert_lt(tt_now_ms(), deadline, "no ERR 12");
      continue;
    }
    if (f.type != TP_PING)
      break;
    pings++;
  }
  cr_assert_eq(f.type, TP_ERR, "unexpected %s", tp_frame_type_name(f.type));
  cr_assert_eq(f.u.err.code, 12u, "ERR %u", f.u.err.code);
  cr_assert_geq(pings, 2, "closed after %d PINGs, not two missed", pings);
  cr_assert(tt_raw_wait_closed(&c, TT_RECV_MS), "connection not closed");
  tt_raw_check_pubsub(&w);
  tt_raw_close(&c);
  tt_raw_close(&w);
}
