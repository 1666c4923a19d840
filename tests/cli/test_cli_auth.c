/*
 * tern's credentials against a ternd that requires a token: --token and
 * TERN_TOKEN are sent in CONNECT; without them, or with a wrong one, the
 * command says the authentication failed and exits 1.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "cli_proc.h"

TT_BROKER_FIXTURE(broker, "--auth-token", "s3cret")
TestSuite(cli_auth, .init = broker_init, .fini = broker_fini, .timeout = 60);

/* Runs `tern -s SERVER [--token T] pub --ack auth.t x`; returns the exit. */
static int pub_with(tc_proc_t *p, const char *token) {
  const char *argv[12] = {"-s", tc_server(tt_g_broker.port)};
  size_t n = 2;
  if (token != NULL) {
    argv[n++] = "--token";
    argv[n++] = token;
  }
  argv[n++] = "pub";
  argv[n++] = "--ack";
  argv[n++] = "auth.t";
  argv[n++] = "x";
  argv[n] = NULL;
  return tc_run(p, argv, NULL);
}

Test(cli_auth, token_flag_is_accepted) {
  tc_proc_t p;
  unsetenv("TERN_TOKEN");
  cr_assert_eq(pub_with(&p, "s3cret"), 0, "stderr: %s", p.err.data);
  cr_expect_str_eq(p.out.data, "delivered to 0 subscribers\n");
  tc_free(&p);
}

Test(cli_auth, token_from_the_environment_is_accepted) {
  tc_proc_t p;
  setenv("TERN_TOKEN", "s3cret", 1);
  cr_assert_eq(pub_with(&p, NULL), 0, "stderr: %s", p.err.data);
  tc_free(&p);
}

Test(cli_auth, missing_or_wrong_token_fails_with_exit_1) {
  const char *tokens[] = {NULL, "wrong"};
  unsetenv("TERN_TOKEN");
  for (size_t i = 0; i < 2; i++) {
    tc_proc_t p;
    cr_expect_eq(pub_with(&p, tokens[i]), 1);
    cr_expect_not_null(strstr(p.err.data, "authentication failed"),
                       "stderr: %s", p.err.data);
    tc_free(&p);
  }
}
