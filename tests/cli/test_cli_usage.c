/*
 * The tern command's command line: help, version, bad flags and an
 * unreachable server. No broker needed.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli_proc.h"

TestSuite(cli_usage, .timeout = 60);

Test(cli_usage, help_exits_0_and_lists_commands) {
  tc_proc_t p;
  const char *argv[] = {"--help", NULL};
  cr_assert_eq(tc_run(&p, argv, NULL), 0);
  cr_expect_not_null(strstr(p.out.data, "Usage: tern"));
  cr_expect_not_null(strstr(p.out.data, "  pub "));
  cr_expect_not_null(strstr(p.out.data, "  sub "));
  cr_expect_not_null(strstr(p.out.data, "  req "));
  cr_expect_not_null(strstr(p.out.data, "  reply "));
  cr_expect_eq(p.err.len, 0, "stderr: %s", p.err.data);
  tc_free(&p);
}

Test(cli_usage, every_command_has_help) {
  static const char *const cmds[] = {"pub", "sub", "req", "reply"};
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    tc_proc_t p;
    char usage[64];
    const char *argv[] = {cmds[i], "-h", NULL};
    cr_assert_eq(tc_run(&p, argv, NULL), 0, "tern %s -h", cmds[i]);
    snprintf(usage, sizeof(usage), "Usage: tern %s ", cmds[i]);
    cr_expect_not_null(strstr(p.out.data, usage), "%s", p.out.data);
    cr_expect_not_null(strstr(p.out.data, "--server"));
    tc_free(&p);
  }
}

Test(cli_usage, help_command_equals_dash_h) {
  tc_proc_t a, b;
  const char *argv_a[] = {"help", "sub", NULL};
  const char *argv_b[] = {"sub", "--help", NULL};
  cr_assert_eq(tc_run(&a, argv_a, NULL), 0);
  cr_assert_eq(tc_run(&b, argv_b, NULL), 0);
  cr_expect_str_eq(a.out.data, b.out.data);
  tc_free(&a);
  tc_free(&b);
}

Test(cli_usage, version_exits_0) {
  tc_proc_t p;
  const char *argv[] = {"--version", NULL};
  cr_assert_eq(tc_run(&p, argv, NULL), 0);
  cr_expect_eq(strncmp(p.out.data, "tern ", 5), 0, "%s", p.out.data);
  tc_free(&p);
}

/* Each bad command line: exit 2, a message naming the problem and the
 * usage line on stderr, nothing on stdout. */
static void expect_usage_error(const char *const *argv, const char *needle) {
  tc_proc_t p;
  cr_assert_eq(tc_run(&p, argv, NULL), 2, "stderr: %s", p.err.data);
  cr_expect_not_null(strstr(p.err.data, needle), "stderr: %s", p.err.data);
  cr_expect_not_null(strstr(p.err.data, "Usage: tern"), "stderr: %s",
                     p.err.data);
  cr_expect_eq(p.out.len, 0, "stdout: %s", p.out.data);
  tc_free(&p);
}

Test(cli_usage, bad_flag_exits_2) {
  const char *sub_flag[] = {"sub", "--bogus", "x", NULL};
  const char *global_flag[] = {"-x", "pub", "a", "b", NULL};
  const char *short_flag[] = {"pub", "-Z", "a", "b", NULL};
  expect_usage_error(sub_flag, "unknown option '--bogus'");
  expect_usage_error(global_flag, "unknown option '-x'");
  expect_usage_error(short_flag, "unknown option '-Z'");
}

Test(cli_usage, bad_values_exit_2) {
  const char *count[] = {"sub", "--count", "ten", "x", NULL};
  const char *policy[] = {"sub", "--policy", "maybe", "x", NULL};
  const char *header[] = {"pub", "-H", "novalue", "a", "b", NULL};
  const char *missing_value[] = {"sub", "x", "--queue", NULL};
  const char *server[] = {"-s", "host:notaport", "pub", "a", "b", NULL};
  expect_usage_error(count, "--count expects a number");
  expect_usage_error(policy, "--policy must be");
  expect_usage_error(header, "-H expects KEY=VALUE");
  expect_usage_error(missing_value, "needs a value");
  expect_usage_error(server, "bad server address");
}

Test(cli_usage, wrong_arguments_exit_2) {
  const char *none[] = {NULL};
  const char *unknown[] = {"frobnicate", NULL};
  const char *missing[] = {"req", "only.topic", NULL};
  const char *extra[] = {"sub", "a", "b", NULL};
  expect_usage_error(none, "missing command");
  expect_usage_error(unknown, "unknown command 'frobnicate'");
  expect_usage_error(missing, "missing argument");
  expect_usage_error(extra, "unexpected argument 'b'");
}

/* A TCP port bound on loopback without listen(): connecting to it is
 * refused for as long as the socket stays open, so no other process can
 * take the port meanwhile. */
static int refusing_port(int *fd_out) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  *fd_out = fd;
  return ntohs(a.sin_port);
}

Test(cli_usage, connection_refused_exits_1_naming_the_server) {
  static const char *const cmds[][4] = {
      {"pub", "a.b", "hello", NULL},
      {"sub", "a.>", NULL, NULL},
      {"req", "a.b", "hello", NULL},
      {"reply", "a.b", "hi", NULL},
  };
  int fd;
  int port = refusing_port(&fd);
  char server[32];
  snprintf(server, sizeof(server), "127.0.0.1:%d", port);
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    tc_proc_t p;
    const char *argv[8] = {"-s", server};
    for (size_t j = 0; cmds[i][j] != NULL; j++) {
      argv[2 + j] = cmds[i][j];
    }
    cr_assert_eq(tc_run(&p, argv, NULL), 1, "tern %s: stderr: %s", cmds[i][0],
                 p.err.data);
    cr_expect_not_null(strstr(p.err.data, server), "stderr: %s", p.err.data);
    cr_expect_not_null(strstr(p.err.data, "connection refused"), "stderr: %s",
                       p.err.data);
    cr_expect_eq(p.out.len, 0);
    tc_free(&p);
  }
  close(fd);
}

Test(cli_usage, server_from_environment) {
  int fd;
  int port = refusing_port(&fd);
  char server[32];
  tc_proc_t p;
  const char *argv[] = {"pub", "a.b", "hello", NULL};
  snprintf(server, sizeof(server), "127.0.0.1:%d", port);
  /* The child inherits the environment of this (forked) test process. */
  setenv("TERN_SERVER", server, 1);
  cr_assert_eq(tc_run(&p, argv, NULL), 1);
  cr_expect_not_null(strstr(p.err.data, server), "stderr: %s", p.err.data);
  tc_free(&p);
  close(fd);
}
