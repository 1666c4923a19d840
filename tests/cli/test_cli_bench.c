/*
 * tern bench's command line: the flags, the help, and exit status 2 for
 * every bad usage, plus one short run against a real ternd to show that the
 * options reach the load generator (value forms, k suffix, --json).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "broker_proc.h"
#include "cli_proc.h"

TT_BROKER_FIXTURE_DEFAULT(broker)
TestSuite(cli_bench, .init = broker_init, .fini = broker_fini, .timeout = 120);

Test(cli_bench, help_lists_every_flag_and_exits_0) {
  static const char *const flags[] = {
      "-s, --server", "-b, --broker", "-p, --pub", "--sub",     "-n, --msgs",
      "--size",       "--queue",      "--req",     "--rate",    "--subject",
      "--timeout",    "--batch",      "--json",    "-h, --help"};
  static const char *const forms[][3] = {{"bench", "--help", NULL},
                                         {"bench", "-h", NULL},
                                         {"help", "bench", NULL}};
  for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
    tc_proc_t p;
    cr_assert_eq(tc_run(&p, forms[f], NULL), 0, "form %zu: %s", f, p.err.data);
    cr_expect_not_null(strstr(p.out.data, "tern bench [options]"), "%s",
                       p.out.data);
    cr_expect_not_null(strstr(p.out.data, "Exit status: 0 all delivered"), "%s",
                       p.out.data);
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
      cr_expect_not_null(strstr(p.out.data, flags[i]), "no '%s' in: %s",
                         flags[i], p.out.data);
    }
    cr_expect_eq(p.err.len, 0, "stderr: %s", p.err.data);
    tc_free(&p);
  }
}

/* A bad command line: exit 2, the problem and the --help hint on stderr,
 * nothing on stdout (no run was started). */
static void expect_usage(const char *const *argv, const char *needle) {
  tc_proc_t p;
  cr_assert_eq(tc_run(&p, argv, NULL), 2, "%s ...: stderr: %s", argv[1],
               p.err.data);
  cr_expect_not_null(strstr(p.err.data, "tern bench: "), "stderr: %s",
                     p.err.data);
  cr_expect_not_null(strstr(p.err.data, needle), "want '%s' in: %s", needle,
                     p.err.data);
  cr_expect_not_null(strstr(p.err.data, "tern bench --help"), "stderr: %s",
                     p.err.data);
  cr_expect_eq(p.out.len, 0, "stdout: %s", p.out.data);
  tc_free(&p);
}

Test(cli_bench, bad_usage_exits_2) {
  const char *unknown[] = {"bench", "--bogus", NULL};
  const char *no_value[] = {"bench", "--pub", NULL};
  const char *bad_pub[] = {"bench", "--pub", "x", NULL};
  const char *many_pubs[] = {"bench", "-p", "1001", NULL};
  const char *zero_pubs[] = {"bench", "--pub", "0", NULL};
  const char *bad_sub[] = {"bench", "--sub=-1", NULL};
  const char *bad_msgs[] = {"bench", "-n", "1x", NULL};
  const char *big_size[] = {"bench", "--size", "65M", NULL};
  const char *zero_batch[] = {"bench", "--batch", "0", NULL};
  const char *zero_rate[] = {"bench", "--rate", "0", NULL};
  const char *bad_timeout[] = {"bench", "--timeout", "soon", NULL};
  const char *bad_broker[] = {"bench", "-b", "kafka", NULL};
  const char *bad_server[] = {"bench", "-s", "127.0.0.1:0", NULL};
  const char *no_host[] = {"bench", "--server", ":7421", NULL};
  const char *redis_req[] = {"bench", "--broker", "redis", "--req", NULL};
  const char *mqtt_queue[] = {"bench", "-b",      "mqtt", "--sub",
                              "1",     "--queue", "g",    NULL};
  const char *queue_no_sub[] = {"bench", "--queue", "g", NULL};
  const char *rate_small[] = {"bench", "--rate", "10", "--size", "4", NULL};
  const char *rate_req[] = {"bench", "--rate", "10", "--req", NULL};
  const char *flag_value[] = {"bench", "--json=yes", NULL};
  expect_usage(unknown, "--bogus");
  expect_usage(no_value, "--pub");
  expect_usage(bad_pub, "--pub");
  expect_usage(many_pubs, "--pub");
  expect_usage(zero_pubs, "--pub must be at least 1");
  expect_usage(bad_sub, "--sub");
  expect_usage(bad_msgs, "--msgs");
  expect_usage(big_size, "--size");
  expect_usage(zero_batch, "--batch");
  expect_usage(zero_rate, "--rate");
  expect_usage(bad_timeout, "--timeout");
  expect_usage(bad_broker, "unknown broker 'kafka'");
  expect_usage(bad_server, "--server");
  expect_usage(no_host, "--server");
  expect_usage(redis_req, "redis has no request/reply");
  expect_usage(mqtt_queue, "mqtt has no queue groups");
  expect_usage(queue_no_sub, "--queue needs --sub");
  expect_usage(rate_small, "--rate needs --size of at least 8");
  expect_usage(rate_req, "--rate and --req do not combine");
  expect_usage(flag_value, "--json");
}

Test(cli_bench, short_run_against_ternd) {
  tc_proc_t p;
  char server[64];
  snprintf(server, sizeof(server), "127.0.0.1:%d", tt_g_broker.port);
  /* Both value forms, a k suffix, and the JSON report. */
  const char *argv[] = {"bench",     "-s",     server, "--pub=1",   "--sub",
                        "1",         "-n",     "2k",   "--size=16", "--subject",
                        "cli.bench", "--json", NULL};
  cr_assert_eq(tc_run(&p, argv, NULL), 0, "stderr: %s", p.err.data);
  cr_expect_eq(p.out.data[0], '{', "stdout: %s", p.out.data);
  cr_expect_not_null(strstr(p.out.data, "\"broker\":\"tern\""), "%s",
                     p.out.data);
  cr_expect_not_null(strstr(p.out.data, "2048"), "%s", p.out.data);
  tc_free(&p);
}

/* The JSON report stays valid JSON whatever the user's strings hold: the
 * queue group name is written as a JSON string, escaped. */
Test(cli_bench, json_report_escapes_the_queue_name) {
  tc_proc_t p;
  char server[64];
  snprintf(server, sizeof(server), "127.0.0.1:%d", tt_g_broker.port);
  const char *argv[] = {"bench", "-s",      server,   "--sub",  "1", "-n",
                        "100",   "--queue", "g\"\\x", "--json", NULL};
  cr_assert_eq(tc_run(&p, argv, NULL), 0, "stderr: %s", p.err.data);
  cr_expect_not_null(strstr(p.out.data, "\"queue\":\"g\\\"\\\\x\","), "%s",
                     p.out.data);
  tc_free(&p);
}
