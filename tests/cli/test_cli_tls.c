/*
 * tern pub and tern sub over TLS (issue 16): --tls-ca, tls:// addresses,
 * --tls-cert/--tls-key against a broker that asks for client certificates,
 * and the reason printed when a certificate is not accepted.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "cli_proc.h"

static const char *cert(const char *name) {
  return tt_cert_path(name);
}

static void mtls_init(void) {
  static const char *args[10];
  args[0] = "--tls-cert";
  args[1] = cert("server.pem");
  args[2] = "--tls-key";
  args[3] = cert("server.key");
  args[4] = "--tls-required";
  args[5] = "--tls-verify";
  args[6] = "--tls-ca";
  args[7] = cert("ca.pem");
  args[8] = NULL;
  tt_fixture_start(args);
}

static void mtls_fini(void) {
  tt_fixture_stop();
}

TestSuite(cli_tls, .init = mtls_init, .fini = mtls_fini, .timeout = 90);

static const char *tls_server(void) {
  static char s[64];
  snprintf(s, sizeof s, "tls://localhost:%d", tt_g_broker.port);
  return s;
}

Test(cli_tls, pub_and_sub_with_client_certificates) {
  tc_proc_t sub, pub;
  const char *sub_argv[] = {"-s",         tls_server(),
                            "--tls-ca",   cert("ca.pem"),
                            "--tls-cert", cert("client.pem"),
                            "--tls-key",  cert("client.key"),
                            "sub",        "--ready",
                            "--count",    "1",
                            "secure.>",   NULL};
  tc_spawn(&sub, sub_argv);
  tc_wait_stderr_line(&sub, "ready");
  const char *pub_argv[] = {"pub",
                            "-s",
                            tls_server(),
                            "--tls-ca",
                            cert("ca.pem"),
                            "--tls-cert",
                            cert("client.pem"),
                            "--tls-key",
                            cert("client.key"),
                            "secure.x",
                            "over tls",
                            NULL};
  cr_assert_eq(tc_run(&pub, pub_argv, NULL), 0, "pub: %s", pub.err.data);
  cr_assert_eq(tc_wait_exit(&sub, TC_WAIT_MS), 0, "sub: %s", sub.err.data);
  cr_expect_str_eq(sub.out.data, "[#1] secure.x: over tls\n");
  tc_free(&sub);
  tc_free(&pub);
}

Test(cli_tls, refused_certificate_says_why) {
  tc_proc_t pub;
  const char *argv[] = {"pub",
                        "-s",
                        tls_server(),
                        "--tls-ca",
                        cert("ca.pem"),
                        "--tls-cert",
                        cert("client-expired.pem"),
                        "--tls-key",
                        cert("client-expired.key"),
                        "secure.x",
                        "no",
                        NULL};
  cr_assert_eq(tc_run(&pub, argv, NULL), 1);
  cr_expect(strstr(pub.err.data, "TLS failed") != NULL, "%s", pub.err.data);
  cr_expect(strstr(pub.err.data, "expired") != NULL, "%s", pub.err.data);
  tc_free(&pub);
}

Test(cli_tls, plaintext_address_refused_with_the_reason) {
  tc_proc_t pub;
  const char *argv[] = {"pub",      "-s", tc_server(tt_g_broker.port),
                        "secure.x", "no", NULL};
  cr_assert_eq(tc_run(&pub, argv, NULL), 1);
  cr_expect(strstr(pub.err.data, "TLS required") != NULL, "%s", pub.err.data);
  tc_free(&pub);
}
