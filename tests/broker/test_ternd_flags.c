/*
 * ternd's command line: --help and --version exit 0 and print on stdout,
 * a bad flag or value exits 2, a port already in use exits 1 naming the
 * address. Runs the real binary as a child and captures its output.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker_proc.h"

typedef struct run_result {
  int status; /* exit status, or -1 when killed by a signal */
  char out[8192];
  char err[8192];
} run_result_t;

/* Reads fd to EOF into buf (NUL-terminated, truncated to n - 1 bytes). */
static void slurp(int fd, char *buf, size_t n) {
  size_t len = 0;
  ssize_t r;
  while ((r = read(fd, buf + len, n - 1 - len)) > 0) {
    len += (size_t)r;
    if (len == n - 1)
      break;
  }
  buf[len] = '\0';
}

/* Runs ternd with argv (NULL-terminated, without argv[0]); waits for it.
 * Only for invocations that exit by themselves. Output is small, so reading
 * stdout to EOF before stderr cannot deadlock on a full pipe. */
static void run_ternd(const char *const *args, run_result_t *res) {
  const char *argv[16] = {TERND_PATH};
  int out[2], err[2];
  size_t n = 1;
  for (; args[n - 1] != NULL; n++)
    argv[n] = args[n - 1];
  argv[n] = NULL;
  cr_assert_eq(pipe(out), 0);
  cr_assert_eq(pipe(err), 0);
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(out[0]);
    close(err[0]);
    execv(TERND_PATH, (char *const *)argv);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  slurp(out[0], res->out, sizeof(res->out));
  slurp(err[0], res->err, sizeof(res->err));
  close(out[0]);
  close(err[0]);
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  res->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(ternd_flags, help_lists_the_flags_and_exits_0) {
  run_result_t r;
  run_ternd((const char *[]){"--help", NULL}, &r);
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  cr_expect_not_null(strstr(r.out, "Usage: ternd"));
  cr_expect_not_null(strstr(r.out, "--port"));
  cr_expect_not_null(strstr(r.out, "--max-payload"));
}

Test(ternd_flags, version_prints_the_project_version) {
  run_result_t r;
  run_ternd((const char *[]){"--version", NULL}, &r);
  cr_assert_eq(r.status, 0);
  cr_expect_str_eq(r.out, "ternd " TERN_VERSION "\n");
}

Test(ternd_flags, unknown_flag_exits_2_with_a_message) {
  run_result_t r;
  run_ternd((const char *[]){"--no-such-flag", NULL}, &r);
  cr_assert_eq(r.status, 2);
  cr_expect_not_null(strstr(r.err, "--no-such-flag"), "stderr: %s", r.err);
}

Test(ternd_flags, bad_values_exit_2) {
  const char *bad[][3] = {
      {"--port", "70000", NULL},          {"--port", "http", NULL},
      {"--max-payload", "-1", NULL},      {"--log-level", "loud", NULL},
      {"--host", "not an address", NULL}, {"--port", NULL, NULL},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    run_result_t r;
    run_ternd(bad[i], &r);
    cr_expect_eq(r.status, 2, "%s %s: exit %d, stderr: %s", bad[i][0],
                 bad[i][1] ? bad[i][1] : "", r.status, r.err);
    cr_expect_neq(r.err[0], '\0', "%s: no message", bad[i][0]);
  }
}

Test(ternd_flags, port_in_use_exits_1_naming_the_address) {
  tt_broker_t b;
  run_result_t r;
  char port[16];
  tt_broker_start(&b, NULL);
  snprintf(port, sizeof(port), "%d", b.port);
  run_ternd((const char *[]){"--host", "127.0.0.1", "--port", port, NULL}, &r);
  cr_expect_eq(r.status, 1, "stderr: %s", r.err);
  char want[64];
  snprintf(want, sizeof(want), "127.0.0.1:%s", port);
  cr_expect_not_null(strstr(r.err, want), "stderr: %s", r.err);
  cr_expect_eq(tt_broker_stop(&b), 0);
}
