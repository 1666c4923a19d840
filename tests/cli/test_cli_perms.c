/*
 * Permission denials seen from the tern command: a user allowed only
 * orders.> tries other topics. Every command must print the broker's error
 * ("permission denied") and exit 1, at once: not exit 0 (pub), not wait for
 * an acknowledgement that never comes (pub --ack), not hang (sub, reply),
 * not report a missing reply (req).
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_proc.h"
#include "cli_proc.h"

static char conf_path[64];

/* carol: publish and subscribe orders.> only. The hash has libsodium's
 * minimum cost: the broker verifies any argon2id string. */
static void perms_init(void) {
  char hash[crypto_pwhash_STRBYTES];
  char text[512];
  int fd;
  cr_assert_geq(sodium_init(), 0);
  cr_assert_eq(crypto_pwhash_str(hash, "s3cret", 6, crypto_pwhash_OPSLIMIT_MIN,
                                 crypto_pwhash_MEMLIMIT_MIN),
               0);
  snprintf(text, sizeof(text),
           "[user carol]\npassword = %s\npublish = orders.>\n"
           "subscribe = orders.>\n",
           hash);
  snprintf(conf_path, sizeof(conf_path), "/tmp/tern-cli-perms-XXXXXX");
  fd = mkstemp(conf_path);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  tt_fixture_start((const char *[]){"--config", conf_path, NULL});
}

static void perms_fini(void) {
  tt_fixture_stop();
  unlink(conf_path);
}

TestSuite(cli_perms, .init = perms_init, .fini = perms_fini, .timeout = 90);

/* Runs `tern -s SERVER --user carol --password s3cret ARGS...` to its exit
 * (killed, and the test failed, if it hangs). */
static int run(tc_proc_t *p, const char *const *args) {
  const char *argv[32] = {
      "-s", tc_server(tt_g_broker.port), "--user", "carol", "--pass", "s3cret"};
  size_t n = 6;
  for (size_t i = 0; args[i] != NULL; i++) {
    cr_assert_lt(n, 31u);
    argv[n++] = args[i];
  }
  argv[n] = NULL;
  tc_spawn(p, argv);
  tc_close_stdin(p);
  return tc_wait_exit(p, TC_WAIT_MS);
}

static void expect_denied(const char *const *args) {
  tc_proc_t p;
  int status = run(&p, args);
  cr_expect_eq(status, 1, "%s: exit %d, stderr: %s", args[0], status,
               p.err.data);
  cr_expect_not_null(strstr(p.err.data, "permission denied"), "%s: stderr: %s",
                     args[0], p.err.data);
  tc_free(&p);
}

Test(cli_perms, allowed_publish_exits_0) {
  tc_proc_t p;
  int status = run(&p, (const char *[]){"pub", "orders.x", "hi", NULL});
  cr_expect_eq(status, 0, "stderr: %s", p.err.data);
  tc_free(&p);
}

Test(cli_perms, pub_denied_exits_1) {
  expect_denied((const char *[]){"pub", "other.x", "hi", NULL});
}

Test(cli_perms, pub_lines_denied_exits_1) {
  /* Several plain publishes: the flush at the end reports the refusal. */
  expect_denied((const char *[]){"pub", "--count", "3", "other.x", "hi", NULL});
}

Test(cli_perms, pub_ack_denied_exits_1_without_waiting_for_the_ack) {
  tc_proc_t p;
  int status = run(&p, (const char *[]){"pub", "--ack", "other.x", "hi", NULL});
  cr_expect_eq(status, 1, "stderr: %s", p.err.data);
  cr_expect_not_null(strstr(p.err.data, "permission denied"), "stderr: %s",
                     p.err.data);
  cr_expect_null(strstr(p.err.data, "acknowledgement"), "stderr: %s",
                 p.err.data);
  cr_expect_eq(p.out.len, 0, "stdout: %s", p.out.data);
  tc_free(&p);
}

Test(cli_perms, sub_denied_exits_1) {
  expect_denied((const char *[]){"sub", "other.x", NULL});
}

Test(cli_perms, req_denied_exits_1) {
  expect_denied((const char *[]){"req", "other.x", "hi", NULL});
}

Test(cli_perms, reply_denied_exits_1) {
  expect_denied((const char *[]){"reply", "other.x", "answer", NULL});
}
