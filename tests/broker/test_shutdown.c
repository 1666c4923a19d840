/*
 * Graceful shutdown acceptance tests (PROTOCOL.md "Session" 6): on SIGTERM or
 * SIGINT every client gets GOAWAY, what was queued for it is flushed, its
 * connection is closed, and ternd exits 0.
 */
#include <criterion/criterion.h>

#include <signal.h>

#include "broker_proc.h"
#include "raw_client.h"

TT_BROKER_FIXTURE_DEFAULT(plain)

TestSuite(shutdown, .init = plain_init, .fini = plain_fini, .timeout = 60);

/* Reads c until it closes: how many MSGs came, and whether a GOAWAY did
 * (after which no MSG may follow: the broker stopped routing). */
static void drain_until_closed(tt_raw_t *c, int *msgs, bool *goaway) {
  *msgs = 0;
  *goaway = false;
  for (;;) {
    tp_frame_t f;
    int r = tt_raw_recv(c, &f, TT_RECV_MS);
    cr_assert_neq(r, 0, "connection still open after shutdown");
    if (r < 0)
      return;
    if (f.type == TP_GOAWAY) {
      cr_assert_not(*goaway, "two GOAWAYs");
      *goaway = true;
    } else if (f.type == TP_MSG) {
      (*msgs)++;
    }
  }
}

/* Sends sig to the fixture's broker, checks each client, then its exit. */
static void shutdown_with(int sig) {
  enum { QUEUED = 200 };
  tt_raw_t hello_only, connected, sub, p;
  tt_raw_open(&hello_only, tt_g_broker.port, false, true, false);
  tt_raw_open(&connected, tt_g_broker.port, true, true, false);
  tt_raw_open(&sub, tt_g_broker.port, true, true, false);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_sub(&sub, 1, "down.t", NULL);
  tt_raw_barrier(&sub);
  /* Messages routed before the signal and not yet read must be flushed. */
  for (int i = 0; i < QUEUED; i++)
    tt_raw_pub(&p, "down.t", "queued", 6);
  tt_raw_barrier(&p);

  cr_assert_eq(kill(tt_g_broker.pid, sig), 0);
  tt_raw_t *all[] = {&hello_only, &connected, &sub, &p};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    int msgs;
    bool goaway;
    drain_until_closed(all[i], &msgs, &goaway);
    cr_assert(goaway, "client %zu got no GOAWAY", i);
    cr_assert_eq(msgs, all[i] == &sub ? QUEUED : 0, "client %zu: %d MSGs", i,
                 msgs);
  }
  int status = tt_broker_wait(&tt_g_broker);
  cr_assert_eq(status, 0, "ternd exit status %d after signal %d", status, sig);
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    tt_raw_close(all[i]);
}

Test(shutdown, sigterm_sends_goaway_and_exits_0) {
  shutdown_with(SIGTERM);
}

Test(shutdown, sigint_sends_goaway_and_exits_0) {
  shutdown_with(SIGINT);
}

Test(shutdown, idle_broker_exits_0) {
  int status = tt_broker_stop(&tt_g_broker);
  cr_assert_eq(status, 0, "ternd exit status %d", status);
}
