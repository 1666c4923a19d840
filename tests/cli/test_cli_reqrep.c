/*
 * tern req and tern reply against a real ternd.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

#include "broker_proc.h"
#include "cli_proc.h"

TT_BROKER_FIXTURE_DEFAULT(broker)
TestSuite(cli_reqrep, .init = broker_init, .fini = broker_fini, .timeout = 90);

/* Spawns `tern -s SERVER ARGS...`. */
static void spawn(tc_proc_t *p, const char *const *args) {
  const char *argv[32] = {"-s", tc_server(tt_g_broker.port)};
  size_t n = 2;
  for (size_t i = 0; args[i] != NULL; i++) {
    cr_assert_lt(n, 31u);
    argv[n++] = args[i];
  }
  tc_spawn(p, argv);
}

static int run(tc_proc_t *p, const char *const *args) {
  spawn(p, args);
  tc_close_stdin(p);
  return tc_wait_exit(p, TC_WAIT_MS);
}

Test(cli_reqrep, request_gets_the_reply) {
  tc_proc_t rep, req;
  const char *rep_args[] = {"reply",    "--ready", "--count", "1",
                            "time.now", "noon",    NULL};
  const char *req_args[] = {"req", "time.now", "what time is it?", NULL};
  spawn(&rep, rep_args);
  tc_wait_stderr_line(&rep, "ready");
  cr_assert_eq(run(&req, req_args), 0, "req stderr: %s", req.err.data);
  cr_expect_str_eq(req.out.data, "noon\n");
  cr_assert_eq(tc_wait_exit(&rep, TC_WAIT_MS), 0, "reply stderr: %s",
               rep.err.data);
  cr_expect_str_eq(rep.out.data, "[#1] time.now: what time is it?\n");
  tc_free(&rep);
  tc_free(&req);
}

Test(cli_reqrep, queue_group_of_responders_answers_each_request_once) {
  tc_proc_t r1, r2, req;
  const char *rep_args[] = {"reply",    "--ready", "--queue", "svc",
                            "svc.echo", "pong",    NULL};
  const char *req_args[] = {"req", "svc.echo", "ping", NULL};
  spawn(&r1, rep_args);
  spawn(&r2, rep_args);
  tc_wait_stderr_line(&r1, "ready");
  tc_wait_stderr_line(&r2, "ready");
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(run(&req, req_args), 0, "req stderr: %s", req.err.data);
    cr_expect_str_eq(req.out.data, "pong\n");
    tc_free(&req);
  }
  tc_signal(&r1, SIGTERM);
  tc_signal(&r2, SIGTERM);
  cr_assert_eq(tc_wait_exit(&r1, TC_WAIT_MS), 0);
  cr_assert_eq(tc_wait_exit(&r2, TC_WAIT_MS), 0);
  /* Each request was printed (and answered) by exactly one responder. */
  cr_expect_eq(tc_count_lines(r1.out.data) + tc_count_lines(r2.out.data), 3);
  tc_free(&r1);
  tc_free(&r2);
}

Test(cli_reqrep, no_responders_exits_1) {
  tc_proc_t req;
  const char *req_args[] = {"req", "nobody.listens", "hello?", NULL};
  cr_assert_eq(run(&req, req_args), 1);
  cr_expect_not_null(strstr(req.err.data, "no responders on 'nobody.listens'"),
                     "stderr: %s", req.err.data);
  cr_expect_eq(req.out.len, 0);
  tc_free(&req);
}

Test(cli_reqrep, silent_subscriber_times_out) {
  tc_proc_t sub, req;
  /* A subscriber that never answers: the request is delivered (so it is
   * not "no responders") but no reply comes. */
  const char *sub_args[] = {"sub", "--ready", "mute", NULL};
  const char *req_args[] = {"req", "--timeout", "200", "mute", "hi", NULL};
  spawn(&sub, sub_args);
  tc_wait_stderr_line(&sub, "ready");
  cr_assert_eq(run(&req, req_args), 1);
  cr_expect_not_null(strstr(req.err.data, "no reply on 'mute' within 200 ms"),
                     "stderr: %s", req.err.data);
  tc_signal(&sub, SIGTERM);
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0);
  tc_free(&sub);
  tc_free(&req);
}
