/*
 * Authentication and permissions against a real ternd: a shared token,
 * users with argon2id hashes, ERR 2 and close on a bad CONNECT, ERR 3 and
 * a live connection on a forbidden PUB or SUB, $SYS only for users granted
 * it, advisories, and --hash-password.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker_proc.h"
#include "ops_util.h"
#include "raw_client.h"

TestSuite(ops_auth, .timeout = 60);

TT_BROKER_FIXTURE(tok, "--auth-token", "let-me-in")

static char conf_path[64];

/* A hash made with libsodium's minimum cost: the server verifies any
 * argon2id string, and tests need not spend 64 MiB per login. */
static void quick_hash(char *out, const char *pw) {
  cr_assert_geq(sodium_init(), 0);
  cr_assert_eq(crypto_pwhash_str(out, pw, strlen(pw),
                                 crypto_pwhash_OPSLIMIT_MIN,
                                 crypto_pwhash_MEMLIMIT_MIN),
               0);
}

/* alice: publish orders.>, subscribe orders.> and $SYS.>, never
 * orders.secret; bob: no lists (everything but $ topics). */
static void users_init(void) {
  char ha[crypto_pwhash_STRBYTES], hb[crypto_pwhash_STRBYTES];
  quick_hash(ha, "wonderland");
  quick_hash(hb, "builder");
  char text[1024];
  snprintf(text, sizeof text,
           "[user alice]\npassword = %s\npublish = orders.>\n"
           "subscribe = orders.>, $SYS.>\ndeny_subscribe = orders.secret\n"
           "\n[user bob]\npassword = %s\n",
           ha, hb);
  ops_write_file(conf_path, text);
  tt_fixture_start((const char *[]){"--config", conf_path, NULL});
}

static void users_fini(void) {
  tt_fixture_stop();
  unlink(conf_path);
}

/* The next frame is ERR code and the server closes the connection. */
static void expect_refused(tt_raw_t *c, int code) {
  tt_raw_expect_err(c, code, TT_RECV_MS);
  cr_assert(tt_raw_wait_closed(c, TT_RECV_MS), "connection not closed");
  tt_raw_close(c);
}

Test(ops_auth, token_required_and_checked, .init = tok_init, .fini = tok_fini) {
  tt_raw_t c;
  bool required = false;
  ops_connect_creds(&c, tt_g_broker.port, NULL, NULL, "let-me-in", &required);
  cr_assert(required, "HELLO must say auth_required");
  tp_frame_t f;
  tt_raw_expect(&c, &f, TP_OK, TT_RECV_MS);
  tt_raw_check_pubsub(&c);

  tt_raw_t bad, none;
  ops_connect_creds(&bad, tt_g_broker.port, NULL, NULL, "let-me-i", NULL);
  expect_refused(&bad, 2);
  ops_connect_creds(&none, tt_g_broker.port, NULL, NULL, NULL, NULL);
  expect_refused(&none, 2);
  /* Others are unaffected. */
  tt_raw_check_pubsub(&c);
  tt_raw_close(&c);
}

Test(ops_auth, users_passwords, .init = users_init, .fini = users_fini) {
  tt_raw_t a, wrong, unknown;
  ops_login(&a, tt_g_broker.port, "alice", "wonderland", NULL);
  tt_raw_barrier_strict(&a);
  ops_connect_creds(&wrong, tt_g_broker.port, "alice", "wonderlan", NULL, NULL);
  expect_refused(&wrong, 2);
  ops_connect_creds(&unknown, tt_g_broker.port, "carol", "wonderland", NULL,
                    NULL);
  expect_refused(&unknown, 2);
  tt_raw_close(&a);
}

Test(ops_auth, frames_after_connect_wait_for_the_verdict, .init = users_init,
     .fini = users_fini) {
  /* CONNECT, SUB, PUB and PING in one write: all handled, in order, once
   * the password is verified. */
  tt_raw_t c;
  tt_raw_attach(&c, tt_connect(tt_g_broker.port));
  ops_login_pipelined(&c, "bob", "builder", "b.x");
}

Test(ops_auth, permissions_deny_without_closing, .init = users_init,
     .fini = users_fini) {
  tt_raw_t a;
  ops_login(&a, tt_g_broker.port, "alice", "wonderland", NULL);
  tt_raw_pub(&a, "payments.x", "p", 1);
  tt_raw_expect_err(&a, 3, TT_RECV_MS);
  tt_raw_sub(&a, 1, "payments.>", NULL);
  tt_raw_expect_err(&a, 3, TT_RECV_MS);
  /* A deny entry refuses any subscription that could see its topics. */
  tt_raw_sub(&a, 2, "orders.*", NULL);
  tt_raw_expect_err(&a, 3, TT_RECV_MS);
  tt_raw_sub(&a, 3, "orders.secret", NULL);
  tt_raw_expect_err(&a, 3, TT_RECV_MS);
  /* What is allowed still works on the same connection. */
  tt_raw_sub(&a, 4, "orders.eu.>", NULL);
  tt_raw_barrier_strict(&a);
  tt_raw_pub(&a, "orders.eu.1", "o", 1);
  tt_raw_expect_msg(&a, 4, "orders.eu.1", "o", 1, TT_RECV_MS);
  tt_raw_barrier_strict(&a);
  tt_raw_close(&a);
}

Test(ops_auth, sys_topics_only_for_users_granted_them, .init = users_init,
     .fini = users_fini) {
  tt_raw_t a, b;
  ops_login(&a, tt_g_broker.port, "alice", "wonderland", NULL);
  ops_login(&b, tt_g_broker.port, "bob", "builder", NULL);
  tt_raw_sub(&b, 1, "$SYS.>", NULL);
  tt_raw_expect_err(&b, 3, TT_RECV_MS);
  tt_raw_sub(&b, 2, "$SYS.auth.failure", NULL);
  tt_raw_expect_err(&b, 3, TT_RECV_MS);
  /* bob may see everything else; '>' never matches $ topics. */
  tt_raw_sub(&b, 3, ">", NULL);
  tt_raw_barrier_strict(&b);

  tt_raw_sub(&a, 1, "$SYS.auth.failure", NULL);
  tt_raw_barrier_strict(&a);
  tt_raw_t bad;
  ops_connect_creds(&bad, tt_g_broker.port, "bob", "nope", NULL, NULL);
  expect_refused(&bad, 2);
  tp_frame_t f;
  tt_raw_expect(&a, &f, TP_MSG, TT_RECV_MS);
  cr_assert(tt_str_eq(f.u.msg.topic, "$SYS.auth.failure"));
  char adv[512];
  snprintf(adv, sizeof adv, "%.*s", (int)f.u.msg.payload.len,
           (const char *)f.u.msg.payload.ptr);
  cr_assert_not_null(strstr(adv, "\"user\":\"bob\""),
      "advisory: %.*s", (int)f.u.msg.payload.len, f.u.msg.payload.ptr);
  /* bob's '>' got nothing of it. */
  tt_raw_barrier_strict(&b);
  tt_raw_close(&a);
  tt_raw_close(&b);
}

Test(ops_auth, hash_password_makes_a_usable_hash) {
  ops_run_t r;
  ops_run_ternd(&r, (const char *[]){"--hash-password", NULL}, NULL,
                "correct horse\n");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strncmp(r.out, "$argon2id$", 10) == 0, "%s", r.out);
  r.out[strcspn(r.out, "\n")] = '\0';
  cr_assert_geq(sodium_init(), 0);
  cr_assert_eq(crypto_pwhash_str_verify(r.out, "correct horse", 13), 0);
  cr_assert_neq(crypto_pwhash_str_verify(r.out, "correct horsE", 13), 0);

  char text[512], path[64];
  snprintf(text, sizeof text, "[user dan]\npassword = %.200s\n", r.out);
  ops_write_file(path, text);
  tt_broker_start(&tt_g_broker, (const char *[]){"--config", path, NULL});
  tt_raw_t c;
  ops_login(&c, tt_g_broker.port, "dan", "correct horse", NULL);
  tt_raw_check_pubsub(&c);
  tt_raw_close(&c);
  tt_fixture_stop();
  unlink(path);
}
