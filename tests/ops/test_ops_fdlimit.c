/*
 * ternd at its open-file limit: the client that does not fit reads ERR 11
 * (not a reset), the refusal is counted in /metrics, /healthz still
 * answers, and the clients already in keep working. ternd runs under a
 * small RLIMIT_NOFILE set in the child before exec (soft = hard, so it
 * cannot raise it).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker_proc.h"
#include "ops_util.h"
#include "proc_stats.h"
#include "raw_client.h"

TestSuite(ops_fdlimit, .timeout = 120);

#define MAX_CLIENTS 400

static tt_raw_t clients[MAX_CLIENTS];
static char body[1 << 16];

/* The value of a labelled sample in /metrics text, or -1. */
static long metric_value(const char *text, const char *sample) {
  const char *at = strstr(text, sample);
  if (at == NULL)
    return -1;
  return strtol(at + strlen(sample), NULL, 10);
}

/*
 * Opens CONNECTed clients until one is refused; that one must read ERR 11
 * (a reset or close with nothing fails the test). Returns how many were
 * accepted (all still open in clients[]).
 */
static int fill_until_refused(int port, int first) {
  for (int i = first; i < MAX_CLIENTS; i++) {
    tt_raw_t *c = &clients[i];
    tt_raw_attach(c, tt_connect(port));
    tp_frame_t f;
    int r = tt_raw_recv(c, &f, TT_RECV_MS);
    cr_assert_eq(r, 1, "client %d: %s with nothing said", i,
                 r == 0 ? "no frame" : "connection closed or reset");
    if (f.type == TP_ERR) {
      cr_assert_eq(f.u.err.code, 11, "client %d: ERR %d", i, (int)f.u.err.code);
      cr_assert(tt_raw_wait_closed(c, TT_RECV_MS));
      tt_raw_close(c);
      return i;
    }
    cr_assert_eq(f.type, TP_HELLO);
    tt_raw_connect(c, true, false);
  }
  cr_assert_fail("no refusal after %d clients", MAX_CLIENTS);
  return -1;
}

static void close_all(int n) {
  for (int i = 0; i < n; i++)
    tt_raw_close(&clients[i]);
}

Test(ops_fdlimit, refused_client_reads_err11_and_monitoring_works) {
  tt_broker_opts_t o = {.stderr_fd = -1, .nofile = 64};
  tt_broker_start_opts(&tt_g_broker, &o,
                       (const char *[]){"--http-port", "-1", NULL});
  int n = fill_until_refused(tt_g_broker.port, 0);
  cr_assert_gt(n, 8, "only %d clients under 64 descriptors", n);
  /* The monitoring port still answers, and counts the refusal. */
  cr_assert_eq(
      ops_http_get(tt_g_broker.http_port, "/healthz", body, sizeof body), 200);
  cr_assert_eq(
      ops_http_get(tt_g_broker.http_port, "/metrics", body, sizeof body), 200);
  long fd_refused =
      metric_value(body, "tern_connections_refused_total{reason=\"fd\"} ");
  cr_assert_eq(fd_refused, 1, "%s", body);
  /* Again: the reserve is back in place after each refusal. */
  tt_raw_t again;
  tt_raw_attach(&again, tt_connect(tt_g_broker.port));
  tt_raw_expect_err(&again, 11, TT_RECV_MS);
  tt_raw_close(&again);
  /* Those already in are served. */
  tt_raw_check_pubsub(&clients[0]);
  tt_raw_check_pubsub(&clients[n - 1]);
  /* Room again once some leave. */
  tt_raw_close(&clients[n - 1]);
  tt_raw_close(&clients[n - 2]);
  /* Their descriptors are free once ternd has seen the closes: a few
   * more refusals are fine meanwhile, each followed by a loop turn. */
  tt_raw_t back;
  int tries = 0;
  for (;; tries++) {
    cr_assert_lt(tries, 1000, "no room after two clients left");
    tt_raw_barrier_strict(&clients[0]);
    tt_raw_attach(&back, tt_connect(tt_g_broker.port));
    tp_frame_t f;
    cr_assert_eq(tt_raw_recv(&back, &f, TT_RECV_MS), 1);
    if (f.type == TP_HELLO)
      break;
    cr_assert(f.type == TP_ERR && f.u.err.code == 11);
    tt_raw_close(&back);
  }
  tt_raw_connect(&back, true, false);
  tt_raw_check_pubsub(&back);
  tt_raw_close(&back);
  close_all(n - 2);
  cr_assert_eq(tt_broker_stop(&tt_g_broker), 0);
}

/*
 * The descriptors run out below ternd's own budget (the limit lowered
 * under it with prlimit, as another process or a leak would): accept fails
 * with EMFILE and the spare descriptor kept for this still gets ERR 11 to
 * the client.
 */
Test(ops_fdlimit, emfile_below_the_budget_still_answers_err11) {
  tt_broker_opts_t o = {.stderr_fd = -1, .nofile = 256};
  tt_broker_start_opts(&tt_g_broker, &o, NULL);
  tt_raw_open(&clients[0], tt_g_broker.port, true, true, false);
  int open_now = tt_proc_fd_count(tt_g_broker.pid);
  cr_assert_gt(open_now, 0);
  struct rlimit rl = {.rlim_cur = (rlim_t)open_now + 4,
                      .rlim_max = (rlim_t)open_now + 4};
  cr_assert_eq(prlimit(tt_g_broker.pid, RLIMIT_NOFILE, &rl, NULL), 0);
  int n = fill_until_refused(tt_g_broker.port, 1);
  cr_assert_geq(n, 2);
  tt_raw_t again;
  tt_raw_attach(&again, tt_connect(tt_g_broker.port));
  tt_raw_expect_err(&again, 11, TT_RECV_MS);
  tt_raw_close(&again);
  tt_raw_check_pubsub(&clients[0]);
  close_all(n);
  cr_assert_eq(tt_broker_stop(&tt_g_broker), 0);
}
