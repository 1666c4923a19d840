/*
 * Flow control through the tern command: a slow `tern sub` with a small
 * broker-side queue and the drop_oldest policy sees the gaps reported as
 * "dropped N messages" on stderr, and every message is either printed or
 * counted as dropped.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "cli_proc.h"

TT_BROKER_FIXTURE_DEFAULT(broker)
TestSuite(cli_flow, .init = broker_init, .fini = broker_fini, .timeout = 120);

/* Big messages, so that the kernel's socket buffers (autotuned up to a few
 * MiB on loopback) hold few of them: what they hold is read at the slow
 * subscriber's pace after the flood, and must fit the test's wait. */
#define FLOOD_MSGS 2000
#define FLOOD_SIZE "10000"

/* Sum of N over the "tern sub: dropped N messages" lines of s. */
static unsigned long long dropped_total(const char *s) {
  static const char prefix[] = "tern sub: dropped ";
  unsigned long long total = 0;
  for (const char *p = strstr(s, prefix); p != NULL;
       p = strstr(p + 1, prefix)) {
    total += strtoull(p + sizeof(prefix) - 1, NULL, 10);
  }
  return total;
}

Test(cli_flow, drop_oldest_reports_every_gap) {
  tc_proc_t sub, flood, last;
  char count[16];
  const char *sub_argv[] = {"-s",          tc_server(tt_g_broker.port),
                            "sub",         "--ready",
                            "--raw",       "--policy",
                            "drop_oldest", "--max-msgs",
                            "10",          "--slow",
                            "2",           "flood",
                            NULL};
  snprintf(count, sizeof(count), "%d", FLOOD_MSGS);
  /* 20 MB against a reader taking 2 ms a message: far more than the
   * socket buffers hold, so the broker's 10-message queue overflows. */
  const char *flood_argv[] = {"-s",       tc_server(tt_g_broker.port),
                              "pub",      "--count",
                              count,      "--size",
                              FLOOD_SIZE, "flood",
                              NULL};
  /* drop_oldest keeps the newest message, so this one always arrives, and
   * the DROPPED notice for the last gap comes before it. */
  const char *last_argv[] = {
      "-s", tc_server(tt_g_broker.port), "pub", "flood", "end", NULL};
  tc_spawn(&sub, sub_argv);
  tc_wait_stderr_line(&sub, "ready");
  cr_assert_eq(tc_run(&flood, flood_argv, NULL), 0, "pub: %s", flood.err.data);
  cr_assert_eq(tc_run(&last, last_argv, NULL), 0, "pub: %s", last.err.data);
  tc_wait_stdout_line(&sub, "end");
  tc_signal(&sub, SIGTERM);
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0, "sub: %s", sub.err.data);

  unsigned long long dropped = dropped_total(sub.err.data);
  size_t printed = tc_count_lines(sub.out.data);
  cr_expect_gt(dropped, 0, "nothing was dropped (stderr: %s)", sub.err.data);
  cr_expect_eq(printed + dropped, FLOOD_MSGS + 1,
               "printed %zu + dropped %llu != %d", printed, dropped,
               FLOOD_MSGS + 1);
  tc_free(&sub);
  tc_free(&flood);
  tc_free(&last);
}

/* The "dropped N messages" line comes when the broker's DROPPED arrives,
 * not after the subscriber has slept through the messages queued before
 * it: here the subscriber sleeps a minute per message, the drops happen
 * during its first sleep, and the line must come long before that sleep
 * ends (TC_WAIT_MS). A stop then ends the sleep at once. */
Test(cli_flow, drops_are_told_when_they_happen) {
  tc_proc_t sub, first, flood;
  const char *sub_argv[] = {"-s",          tc_server(tt_g_broker.port),
                            "sub",         "--ready",
                            "--raw",       "--policy",
                            "drop_oldest", "--max-msgs",
                            "1",           "--slow",
                            "60000",       "burst",
                            NULL};
  const char *first_argv[] = {
      "-s", tc_server(tt_g_broker.port), "pub", "burst", "first", NULL};
  /* One read of the broker holds a dozen of these: all but the newest
   * are dropped from a one-message queue before anything is written. */
  const char *flood_argv[] = {"-s",    tc_server(tt_g_broker.port),
                              "pub",   "--count",
                              "200",   "--size",
                              "10000", "burst",
                              NULL};
  tc_spawn(&sub, sub_argv);
  tc_wait_stderr_line(&sub, "ready");
  cr_assert_eq(tc_run(&first, first_argv, NULL), 0, "pub: %s", first.err.data);
  tc_wait_stdout_line(&sub, "first"); /* now asleep for a minute */
  cr_assert_eq(tc_run(&flood, flood_argv, NULL), 0, "pub: %s", flood.err.data);
  tc_wait_stderr_text(&sub, "tern sub: dropped ");
  tc_signal(&sub, SIGTERM);
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0, "sub: %s", sub.err.data);
  cr_expect_gt(dropped_total(sub.err.data), 0);
  tc_free(&sub);
  tc_free(&first);
  tc_free(&flood);
}
