/*
 * Configuration: the file, the environment and the flags with their
 * precedence, every class of bad configuration (exit 2 and a message
 * naming the file and line), and SIGHUP reload against a real ternd.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker_proc.h"
#include "ops_util.h"
#include "raw_client.h"

TestSuite(ops_config, .timeout = 60);

/* The value of "key = " in --check-config output (must be there). */
static void expect_line(const ops_run_t *r, const char *line) {
  cr_assert_not_null(strstr(r->out, line), "'%s' not in output:\n%s", line,
                     r->out);
}

Test(ops_config, precedence_flags_env_file_defaults) {
  char path[64];
  ops_write_file(path, "# test\nmax_subs = 3\nmax_connections = 11\n"
                       "heartbeat_ms = 1234\n");
  ops_run_t r;
  const char *env[] = {"TERN_MAX_SUBS=5", "TERN_HEARTBEAT_MS=777", NULL};

  /* File over defaults. */
  ops_run_ternd(&r, (const char *[]){"--check-config", path, NULL}, NULL, NULL);
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  expect_line(&r, "\nmax_subs = 3\n");
  expect_line(&r, "\nmax_connections = 11\n");
  expect_line(&r, "\nmax_payload = 1048576\n"); /* a default */

  /* Environment over the file. */
  ops_run_ternd(&r, (const char *[]){"--check-config", path, NULL}, env, NULL);
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  expect_line(&r, "\nmax_subs = 5\n");
  expect_line(&r, "\nheartbeat_ms = 777\n");
  expect_line(&r, "\nmax_connections = 11\n");

  /* Flags over the environment, wherever they sit on the line. */
  ops_run_ternd(
      &r, (const char *[]){"--max-subs", "9", "--check-config", path, NULL},
      env, NULL);
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  expect_line(&r, "\nmax_subs = 9\n");
  expect_line(&r, "\nheartbeat_ms = 777\n");

  /* The file named by the environment. */
  char fenv[128];
  snprintf(fenv, sizeof fenv, "TERN_CONFIG_FILE=%s", path);
  ops_run_ternd(&r, (const char *[]){"--check-config", "", NULL},
                (const char *[]){fenv, NULL}, NULL);
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  expect_line(&r, "\nmax_subs = 3\n");
  unlink(path);
}

/* A file that must be refused: exit 2 and "PATH:LINE: <what>" on stderr. */
static void expect_bad_file(const char *text, int line, const char *what) {
  char path[64];
  ops_write_file(path, text);
  ops_run_t r;
  ops_run_ternd(&r, (const char *[]){"--check-config", path, NULL}, NULL, NULL);
  char where[96];
  if (line > 0)
    snprintf(where, sizeof where, "%s:%d: ", path, line);
  else
    snprintf(where, sizeof where, "%s: ", path);
  cr_assert_eq(r.status, 2, "status %d for:\n%s", r.status, text);
  cr_assert_not_null(strstr(r.err, where), "no '%s' in: %s", where, r.err);
  cr_assert_not_null(strstr(r.err, what), "no '%s' in: %s", what, r.err);
  /* Nothing was started or printed as valid. */
  cr_assert_eq(r.out[0], '\0', "stdout: %s", r.out);
  /* --config refuses to start the same way. */
  ops_run_ternd(&r, (const char *[]){"--config", path, "--port", "0", NULL},
                NULL, NULL);
  cr_assert_eq(r.status, 2, "ternd --config started with a bad file");
  unlink(path);
}

Test(ops_config, every_bad_config_class_names_file_and_line) {
  expect_bad_file("port = 0\nbogus = 1\n", 2, "unknown option 'bogus'");
  expect_bad_file("\n\nmax_payload = 12x\n", 3,
                  "invalid value for max_payload");
  expect_bad_file("port = 70000\n", 1, "invalid value for port");
  expect_bad_file("host = example.org\n", 1, "invalid value for host");
  expect_bad_file("log_level = loud\n", 1, "invalid value for log_level");
  expect_bad_file("log_format = xml\n", 1, "invalid value for log_format");
  expect_bad_file("port = 0\njust words\n", 2, "syntax error");
  expect_bad_file("[cluster]\nx = 1\n", 2, "unknown option 'x' in [cluster]");
  expect_bad_file("[cluster]\nport = many\n", 2, "cluster_port");
  expect_bad_file("ready_fd = 3\n", 1, "unknown option 'ready_fd'");
  expect_bad_file("[user bob]\npassword = hunter2\n", 2, "not a hash");
  expect_bad_file("[user bob]\npublish = a..b\n", 2, "invalid pattern");
  expect_bad_file("[user bob]\ncolour = red\n", 2, "unknown key 'colour'");
  expect_bad_file("[user bob]\nsubscribe = a.>\n", 0, "has no password");
  char longline[400];
  memset(longline, 'x', sizeof longline);
  memcpy(longline, "# ", 2);
  memcpy(longline + sizeof longline - 2, "\n", 2);
  char text[512];
  snprintf(text, sizeof text, "port = 0\n%s", longline);
  expect_bad_file(text, 2, "line too long");
  /* The first error is the one reported. */
  expect_bad_file("port = 0\nnope = 1\nmax_subs = -1\n", 2, "'nope'");
}

Test(ops_config, bad_sources_outside_the_file) {
  ops_run_t r;
  ops_run_ternd(
      &r, (const char *[]){"--check-config", "/nonexistent/ternd.conf", NULL},
      NULL, NULL);
  cr_assert_eq(r.status, 2);
  cr_assert_not_null(strstr(r.err, "/nonexistent/ternd.conf: cannot open"),
                     "%s", r.err);

  ops_run_ternd(&r, (const char *[]){"--port", "0", NULL},
                (const char *[]){"TERN_MAX_SUBS=lots", NULL}, NULL);
  cr_assert_eq(r.status, 2);
  cr_assert_not_null(strstr(r.err, "TERN_MAX_SUBS"), "%s", r.err);

  ops_run_ternd(&r, (const char *[]){"--max_subs", "3", NULL}, NULL, NULL);
  cr_assert_eq(r.status, 2);
  cr_assert_not_null(strstr(r.err, "unknown option"), "%s", r.err);
}

Test(ops_config, secrets_are_not_printed) {
  char path[64];
  ops_write_file(path, "auth_token = s3cr3t-value\n");
  ops_run_t r;
  ops_run_ternd(&r, (const char *[]){"--check-config", path, NULL}, NULL, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_null(strstr(r.out, "s3cr3t"), "token printed:\n%s", r.out);
  expect_line(&r, "\nauth_token = (set)\n");
  unlink(path);
}

Test(ops_config, file_applies_and_sighup_reloads_without_dropping) {
  char path[64];
  ops_write_file(path, "max_subs = 1\n");
  tt_broker_start(&tt_g_broker, (const char *[]){"--config", path, NULL});
  /* A watcher of reloads holds the one subscription it may have. */
  tt_raw_t w;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_sub(&w, 1, "$SYS.server.reload", NULL);
  tt_raw_sub(&w, 2, "more", NULL);
  tt_raw_expect_err(&w, 10, TT_RECV_MS);
  tt_raw_barrier_strict(&w);

  /* A bad file changes nothing and says so. */
  ops_write_over(path, "max_subs = many\n");
  kill(tt_g_broker.pid, SIGHUP);
  cr_assert_not(ops_wait_reload(&w, 1), "a bad file was accepted");
  tt_raw_sub(&w, 3, "more", NULL);
  tt_raw_expect_err(&w, 10, TT_RECV_MS);

  ops_write_over(path, "max_subs = 3\n");
  kill(tt_g_broker.pid, SIGHUP);
  cr_assert(ops_wait_reload(&w, 1));
  /* The same connection is still served, under the new limit. */
  tt_raw_sub(&w, 4, "more", NULL);
  tt_raw_sub(&w, 5, "again", NULL);
  tt_raw_barrier_strict(&w);
  tt_raw_sub(&w, 6, "too.many", NULL);
  tt_raw_expect_err(&w, 10, TT_RECV_MS);
  tt_raw_pub(&w, "more", "x", 1);
  tt_raw_expect_msg(&w, 4, "more", "x", 1, TT_RECV_MS);
  tt_raw_close(&w);
  tt_fixture_stop();
  unlink(path);
}

Test(ops_config, json_logs_carry_connection_fields) {
  /* ternd as a plain child here: its stderr is what is being tested. */
  int ready[2], errp[2];
  cr_assert_eq(pipe(ready), 0);
  cr_assert_eq(pipe(errp), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(errp[1], 2);
    char fd[16];
    snprintf(fd, sizeof fd, "%d", ready[1]);
    execl(tt_ternd_path(), tt_ternd_path(), "--port", "0", "--http-port", "0",
          "--log-format", "json", "--ready-fd", fd, (char *)NULL);
    _exit(127);
  }
  close(ready[1]);
  close(errp[1]);
  char line[64] = "";
  cr_assert_gt(read(ready[0], line, sizeof line - 1), 0);
  close(ready[0]);
  int port = atoi(line);
  tt_raw_t c;
  tt_raw_attach(&c, tt_connect(port));
  tp_frame_t f;
  tt_raw_expect(&c, &f, TP_HELLO, TT_RECV_MS);
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = 1;
  f.u.connect.name = tt_str("json-\"client\"");
  tt_raw_send(&c, &f);
  tt_raw_expect(&c, &f, TP_OK, TT_RECV_MS);
  tt_raw_barrier_strict(&c);
  tt_raw_close(&c);
  kill(pid, SIGTERM);
  static char all[65536];
  size_t used = 0;
  ssize_t k;
  while ((k = read(errp[0], all + used, sizeof all - 1 - used)) > 0)
    used += (size_t)k;
  all[used] = '\0';
  close(errp[0]);
  int status;
  waitpid(pid, &status, 0);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  /* Every line is one JSON object with a level. */
  for (char *l = strtok(all, "\n"); l; l = strtok(NULL, "\n")) {
    cr_assert_eq(l[0], '{', "not JSON: %s", l);
    cr_assert_eq(l[strlen(l) - 1], '}', "not JSON: %s", l);
    cr_assert_not_null(strstr(l, "\"level\":\""), "%s", l);
    if (strstr(l, "connected") != NULL) {
      cr_assert_not_null(strstr(l, "\"cid\":1,"), "%s", l);
      cr_assert_not_null(strstr(l, "\"addr\":\"127.0.0.1:"), "%s", l);
      cr_assert_not_null(strstr(l, "\"name\":\"json-\\\"client\\\"\""), "%s",
                         l);
      return;
    }
  }
  cr_assert_fail("no 'connected' line in the log");
}

Test(ops_config, shipped_example_is_valid_and_complete) {
  ops_run_t r;
  ops_run_ternd(&r, (const char *[]){"--check-config", TERN_EXAMPLE_CONF, NULL},
                NULL, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  /* Every option printed is documented in the example. */
  static char example[65536];
  FILE *fp = fopen(TERN_EXAMPLE_CONF, "r");
  cr_assert_not_null(fp);
  size_t n = fread(example, 1, sizeof example - 1, fp);
  fclose(fp);
  example[n] = '\0';
  for (char *l = strtok(r.out, "\n"); l; l = strtok(NULL, "\n")) {
    if (l[0] == '#')
      continue;
    char key[64];
    cr_assert_eq(sscanf(l, "%63s =", key), 1, "%s", l);
    char want[80];
    snprintf(want, sizeof want, "\n%s =", key);
    char alt[80];
    snprintf(alt, sizeof alt, "\n;%s =", key);
    cr_assert(strstr(example, want) || strstr(example, alt),
              "option %s is not in deploy/ternd.conf", key);
  }
}
