/*
 * tern pub and tern sub against a real ternd.
 *
 * Every test starts `tern sub --ready` first and waits for its "ready" line:
 * sub prints it after tern_client_subscribe returned, i.e. after a PING/PONG
 * round trip behind the SUB, so the subscription is live before anything is
 * published and no test depends on timing.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "cli_proc.h"

TT_BROKER_FIXTURE_DEFAULT(broker)
TestSuite(cli_pubsub, .init = broker_init, .fini = broker_fini, .timeout = 90);

/* Starts `tern -s SERVER sub --ready ARGS...` and waits until it is live. */
static void start_sub(tc_proc_t *p, const char *const *args) {
  const char *argv[32] = {"-s", tc_server(tt_g_broker.port), "sub", "--ready"};
  size_t n = 4;
  for (size_t i = 0; args[i] != NULL; i++) {
    cr_assert_lt(n, 31u);
    argv[n++] = args[i];
  }
  tc_spawn(p, argv);
  tc_wait_stderr_line(p, "ready");
}

/* Runs `tern -s SERVER ARGS...` to completion, expecting exit 0. */
static void run_ok(tc_proc_t *p, const char *const *args,
                   const char *stdin_data) {
  const char *argv[32] = {"-s", tc_server(tt_g_broker.port)};
  size_t n = 2;
  for (size_t i = 0; args[i] != NULL; i++) {
    cr_assert_lt(n, 31u);
    argv[n++] = args[i];
  }
  cr_assert_eq(tc_run(p, argv, stdin_data), 0, "tern %s: stderr: %s", args[0],
               p->err.data);
}

Test(cli_pubsub, sub_prints_two_messages_and_exits) {
  tc_proc_t sub, pub1, pub2;
  const char *sub_args[] = {"--count", "2", "orders.>", NULL};
  const char *new_args[] = {"pub", "orders.new", "hello", NULL};
  const char *old_args[] = {"pub", "orders.old", "bye", NULL};
  start_sub(&sub, sub_args);
  run_ok(&pub1, new_args, NULL);
  run_ok(&pub2, old_args, NULL);
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0, "stderr: %s", sub.err.data);
  cr_expect_str_eq(sub.out.data, "[#1] orders.new: hello\n"
                                 "[#2] orders.old: bye\n");
  /* pub prints nothing when all went well. */
  cr_expect_eq(pub1.out.len + pub1.err.len, 0);
  tc_free(&sub);
  tc_free(&pub1);
  tc_free(&pub2);
}

Test(cli_pubsub, pub_reads_lines_from_stdin) {
  tc_proc_t sub, pub;
  const char *sub_args[] = {"--count", "4", "--raw", "lines", NULL};
  const char *pub_args[] = {"pub", "lines", NULL};
  start_sub(&sub, sub_args);
  /* An empty line is an empty message; the last line has no newline. */
  run_ok(&pub, pub_args, "one\ntwo words\n\nlast");
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0, "stderr: %s", sub.err.data);
  cr_expect_str_eq(sub.out.data, "one\ntwo words\n\nlast\n");
  tc_free(&sub);
  tc_free(&pub);
}

Test(cli_pubsub, count_and_size_publish_generated_messages) {
  tc_proc_t sub, pub;
  const char *sub_args[] = {"--count", "500", "--raw", "gen.>", NULL};
  const char *pub_args[] = {"pub",  "--count", "500", "--size",
                            "1000", "gen.x",   NULL};
  start_sub(&sub, sub_args);
  run_ok(&pub, pub_args, NULL);
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0, "stderr: %s", sub.err.data);
  cr_expect_eq(tc_count_lines(sub.out.data), 500);
  /* 500 payloads of 1000 bytes, each followed by a newline. */
  cr_expect_eq(sub.out.len, 500u * 1001u);
  cr_expect_eq(strncmp(sub.out.data, "#1 xxx", 6), 0);
  cr_expect_not_null(strstr(sub.out.data, "\n#500 xxx"));
  cr_expect_not_null(strstr(pub.err.data, "published 500 messages"),
                     "pub stderr: %s", pub.err.data);
  tc_free(&sub);
  tc_free(&pub);
}

Test(cli_pubsub, count_repeats_the_message) {
  tc_proc_t sub, pub;
  const char *sub_args[] = {"--count", "3", "rep", NULL};
  const char *pub_args[] = {"pub", "--count", "3", "rep", "again", NULL};
  start_sub(&sub, sub_args);
  run_ok(&pub, pub_args, NULL);
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0);
  cr_expect_str_eq(sub.out.data, "[#1] rep: again\n[#2] rep: again\n"
                                 "[#3] rep: again\n");
  tc_free(&sub);
  tc_free(&pub);
}

/* A retained message reaches a subscriber that arrives after it, marked;
 * a live one published after the subscription follows it, unmarked. */
Test(cli_pubsub, retained_message_reaches_a_later_subscriber) {
  tc_proc_t sub, pub, live;
  const char *pub_args[] = {"pub",       "--retain", "--ttl", "60000",
                            "cfg.color", "blue",     NULL};
  const char *sub_args[] = {"--count", "2", "cfg.>", NULL};
  const char *live_args[] = {"pub", "cfg.size", "large", NULL};
  run_ok(&pub, pub_args, NULL);
  start_sub(&sub, sub_args);
  run_ok(&live, live_args, NULL);
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0);
  cr_expect_str_eq(sub.out.data, "[#1] cfg.color (retained): blue\n"
                                 "[#2] cfg.size: large\n");
  tc_free(&sub);
  tc_free(&pub);
  tc_free(&live);
}

Test(cli_pubsub, ack_reports_receivers) {
  tc_proc_t sub, pub, lonely;
  const char *sub_args[] = {"--count", "1", "acked", NULL};
  const char *pub_args[] = {"pub", "--ack", "acked", "x", NULL};
  const char *lonely_args[] = {"pub", "--ack", "nobody.here", "x", NULL};
  start_sub(&sub, sub_args);
  run_ok(&pub, pub_args, NULL);
  cr_expect_str_eq(pub.out.data, "delivered to 1 subscriber\n");
  run_ok(&lonely, lonely_args, NULL);
  cr_expect_str_eq(lonely.out.data, "delivered to 0 subscribers\n");
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0);
  tc_free(&sub);
  tc_free(&pub);
  tc_free(&lonely);
}

Test(cli_pubsub, headers_and_binary_payloads) {
  tc_proc_t sub, pub1, pub2;
  const char *sub_args[] = {"--count", "2", "--headers", "h.*", NULL};
  const char *hdr_args[] = {
      "pub", "-H", "kind=greeting", "--header", "lang=en", "h.a", "hi", NULL};
  /* A tab is a control character: the payload is not shown as text. */
  const char *bin_args[] = {"pub", "h.b", "col1\tcol2", NULL};
  start_sub(&sub, sub_args);
  run_ok(&pub1, hdr_args, NULL);
  run_ok(&pub2, bin_args, NULL);
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0);
  cr_expect_str_eq(sub.out.data, "[#1] h.a: hi\n"
                                 "  kind: greeting\n"
                                 "  lang: en\n"
                                 "[#2] h.b: <9 bytes>\n");
  tc_free(&sub);
  tc_free(&pub1);
  tc_free(&pub2);
}

Test(cli_pubsub, utf8_text_is_printed_as_is) {
  tc_proc_t sub, pub;
  const char *sub_args[] = {"--count", "1", "u", NULL};
  const char *pub_args[] = {"pub", "u",
                            "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93", NULL};
  start_sub(&sub, sub_args);
  run_ok(&pub, pub_args, NULL);
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0);
  cr_expect_str_eq(sub.out.data,
                   "[#1] u: h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93\n");
  tc_free(&sub);
  tc_free(&pub);
}

Test(cli_pubsub, sigterm_and_sigint_exit_0) {
  static const int sigs[] = {SIGTERM, SIGINT};
  for (size_t i = 0; i < 2; i++) {
    tc_proc_t sub;
    const char *sub_args[] = {"forever", NULL};
    start_sub(&sub, sub_args);
    tc_signal(&sub, sigs[i]);
    cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0, "signal %d: stderr: %s",
                 sigs[i], sub.err.data);
    cr_expect_eq(sub.out.len, 0);
    tc_free(&sub);
  }
}

Test(cli_pubsub, queue_group_shares_messages) {
  tc_proc_t a, b, pub;
  const char *sub_args[] = {"--queue", "workers", "--raw", "jobs", NULL};
  const char *pub_args[] = {"pub", "--count", "20", "jobs", "job", NULL};
  start_sub(&a, sub_args);
  start_sub(&b, sub_args);
  run_ok(&pub, pub_args, NULL);
  /* Every job went to exactly one member: wait (event-driven, with a
   * deadline against a hang) until their output adds up to 20 lines. */
  tc_proc_t *both[] = {&a, &b};
  long long deadline = tt_now_ms() + TC_WAIT_MS;
  while (tc_count_lines(a.out.data) + tc_count_lines(b.out.data) < 20) {
    long long left = deadline - tt_now_ms();
    cr_assert(left > 0 && tc_pump_many(both, 2, (int)left),
              "the queue group printed %zu of 20 jobs",
              tc_count_lines(a.out.data) + tc_count_lines(b.out.data));
  }
  tc_signal(&a, SIGTERM);
  tc_signal(&b, SIGTERM);
  cr_assert_eq(tc_wait_exit(&a, TC_WAIT_MS), 0);
  cr_assert_eq(tc_wait_exit(&b, TC_WAIT_MS), 0);
  cr_expect_eq(tc_count_lines(a.out.data) + tc_count_lines(b.out.data), 20);
  tc_free(&a);
  tc_free(&b);
  tc_free(&pub);
}

/* Without the fixture: this test stops the broker itself. */
TestSuite(cli_server_close, .timeout = 90);

/* A graceful shutdown (SIGTERM: GOAWAY, then close) is told as such, not
 * as a connection closed like a crash. */
Test(cli_server_close, sub_reports_a_shutdown_as_goaway_and_exits_1) {
  tt_broker_t b;
  tc_proc_t sub;
  char server[32], want[96];
  tt_broker_start(&b, NULL);
  snprintf(server, sizeof(server), "127.0.0.1:%d", b.port);
  const char *argv[] = {"-s", server, "sub", "--ready", "anything", NULL};
  tc_spawn(&sub, argv);
  tc_wait_stderr_line(&sub, "ready");
  cr_assert_eq(tt_broker_stop(&b), 0, "ternd did not exit cleanly");
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 1, "stderr: %s", sub.err.data);
  snprintf(want, sizeof(want),
           "tern sub: the broker at %s is shutting down (GOAWAY: ", server);
  cr_expect_not_null(strstr(sub.err.data, want), "stderr: %s", sub.err.data);
  cr_expect_null(strstr(sub.err.data, "closed by the server"), "stderr: %s",
                 sub.err.data);
  cr_expect_eq(sub.out.len, 0);
  tc_free(&sub);
}

/* The same for a publisher in the middle of a long run. */
Test(cli_server_close, pub_reports_a_shutdown_as_goaway_and_exits_1) {
  tt_broker_t b;
  tc_proc_t sub, pub;
  char server[32], want[96];
  tt_broker_start(&b, NULL);
  snprintf(server, sizeof(server), "127.0.0.1:%d", b.port);
  const char *sub_argv[] = {"-s",      server, "sub", "--ready",
                            "--count", "1",    "run", NULL};
  const char *pub_argv[] = {"-s",     server, "pub", "--count", "1000000000",
                            "--size", "100",  "run", NULL};
  tc_spawn(&sub, sub_argv);
  tc_wait_stderr_line(&sub, "ready");
  tc_spawn(&pub, pub_argv);
  /* The subscriber got a message: the publisher is connected and busy. */
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0, "sub: %s", sub.err.data);
  cr_assert_eq(tt_broker_stop(&b), 0, "ternd did not exit cleanly");
  cr_assert_eq(tc_wait_exit(&pub, TC_WAIT_MS), 1, "stderr: %s", pub.err.data);
  snprintf(want, sizeof(want),
           "tern pub: the broker at %s is shutting down (GOAWAY: ", server);
  cr_expect_not_null(strstr(pub.err.data, want), "stderr: %s", pub.err.data);
  tc_free(&sub);
  tc_free(&pub);
}

Test(cli_server_close, sub_reports_a_crash_as_a_closed_connection) {
  tt_broker_t b;
  tc_proc_t sub;
  char server[32];
  tt_broker_start(&b, NULL);
  snprintf(server, sizeof(server), "127.0.0.1:%d", b.port);
  const char *argv[] = {"-s", server, "sub", "--ready", "anything", NULL};
  tc_spawn(&sub, argv);
  tc_wait_stderr_line(&sub, "ready");
  tt_broker_kill(&b);
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 1, "stderr: %s", sub.err.data);
  cr_expect_not_null(strstr(sub.err.data, "connection to "), "stderr: %s",
                     sub.err.data);
  cr_expect_not_null(strstr(sub.err.data, server), "stderr: %s", sub.err.data);
  cr_expect_null(strstr(sub.err.data, "GOAWAY"), "stderr: %s", sub.err.data);
  tc_free(&sub);
}

/* `tern sub --reconnect` rides out a broker killed with SIGKILL and started
 * again on the same port: it resubscribes by itself. Publishing with --ack
 * until the broker reports a receiver is the barrier (no sleeps). */
Test(cli_server_close, sub_reconnect_rides_out_a_broker_restart) {
  tt_broker_t b;
  tc_proc_t sub;
  char server[32];
  tt_broker_start(&b, NULL);
  int port = b.port;
  snprintf(server, sizeof(server), "127.0.0.1:%d", port);
  const char *argv[] = {"-s",      server, "sub",   "--ready", "--reconnect",
                        "--count", "1",    "again", NULL};
  tc_spawn(&sub, argv);
  tc_wait_stderr_line(&sub, "ready");
  tt_broker_kill(&b);
  tt_broker_start_on(&b, port, NULL);
  const char *pub_argv[] = {"-s",    server, "pub", "--ack",
                            "again", "back", NULL};
  bool delivered = false;
  for (int i = 0; i < 500 && !delivered; i++) {
    tc_proc_t pub;
    cr_assert_eq(tc_run(&pub, pub_argv, NULL), 0, "pub: %s", pub.err.data);
    delivered = strcmp(pub.out.data, "delivered to 1 subscriber\n") == 0;
    tc_free(&pub);
  }
  cr_assert(delivered, "the subscriber never came back");
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0, "stderr: %s", sub.err.data);
  cr_expect_str_eq(sub.out.data, "[#1] again: back\n");
  cr_assert_eq(tt_broker_stop(&b), 0);
  /* The gap is visible: the loss, the reconnect and the time away. */
  char lost[96], back[96];
  snprintf(lost, sizeof(lost), "tern sub: lost the connection to %s: ", server);
  snprintf(back, sizeof(back), "tern sub: reconnected to %s after ", server);
  cr_expect_not_null(strstr(sub.err.data, lost), "stderr: %s", sub.err.data);
  const char *p = strstr(sub.err.data, back);
  cr_expect_not_null(p, "stderr: %s", sub.err.data);
  if (p != NULL) {
    char *end;
    double s = strtod(p + strlen(back), &end);
    cr_expect_gt(s, 0.0, "time away: %s", p);
    cr_expect_eq(strncmp(end,
                         " s away: messages published meanwhile were "
                         "missed\n",
                         strlen(" s away: messages published meanwhile were "
                                "missed\n")),
                 0, "%s", p);
  }
  tc_free(&sub);
}
