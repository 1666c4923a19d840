/*
 * allow_responses against a real ternd: a responder allowed
 * to publish only metrics.> answers the requests it receives, as many
 * times as its setting says and only while the allowance lasts, and never
 * into an inbox it did not receive.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker_proc.h"
#include "ops_util.h"
#include "raw_client.h"

TestSuite(ops_responses, .timeout = 60);

static char conf_path[64];

static void hash(char *out, const char *pw) {
  cr_assert_eq(crypto_pwhash_str(out, pw, strlen(pw),
                                 crypto_pwhash_OPSLIMIT_MIN,
                                 crypto_pwhash_MEMLIMIT_MIN),
               0);
}

/* req: everything; once: one reply per request; thrice: three; brief:
 * one, within 1 ms; plain: the same lists, no allow_responses; guarded:
 * once, but denied _INBOX.secret.>. */
static void users_init(void) {
  cr_assert_geq(sodium_init(), 0);
  char h[6][crypto_pwhash_STRBYTES];
  for (int i = 0; i < 6; i++)
    hash(h[i], "pw");
  const char *lists = "publish = metrics.>\nsubscribe = svc.>\n";
  char text[4096];
  snprintf(text, sizeof text,
           "[user req]\npassword = %s\n"
           "\n[user once]\npassword = %s\n%sallow_responses = true\n"
           "\n[user thrice]\npassword = %s\n%sallow_responses = 3\n"
           "\n[user brief]\npassword = %s\n%sallow_responses = 1, 1\n"
           "\n[user plain]\npassword = %s\n%s"
           "\n[user guarded]\npassword = %s\n%sallow_responses = true\n"
           "deny_publish = _INBOX.secret.>\n",
           h[0], h[1], lists, h[2], lists, h[3], lists, h[4], lists, h[5],
           lists);
  ops_write_file(conf_path, text);
  tt_fixture_start((const char *[]){"--config", conf_path, NULL});
}

static void users_fini(void) {
  tt_fixture_stop();
  unlink(conf_path);
}

/* PUB topic with a reply topic. */
static void pub_req(tt_raw_t *c, const char *topic, const char *reply) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = tt_str(topic);
  f.u.pub.payload.ptr = (const uint8_t *)"q";
  f.u.pub.payload.len = 1;
  f.u.pub.reply = tt_str(reply);
  tt_raw_send(c, &f);
}

/* The responder receives the request with its reply topic. */
static void expect_request(tt_raw_t *c, const char *reply) {
  tp_frame_t f;
  tt_raw_expect(c, &f, TP_MSG, TT_RECV_MS);
  cr_assert(tt_str_eq(f.u.msg.topic, "svc.q"));
  cr_assert(tt_str_eq(f.u.msg.reply, reply), "reply %.*s",
            (int)f.u.msg.reply.len, f.u.msg.reply.ptr);
}

/* A reply must get through: the requester sees it. */
static void reply_ok(tt_raw_t *resp, tt_raw_t *req, const char *inbox) {
  tt_raw_pub(resp, inbox, "r", 1);
  tt_raw_barrier_strict(resp); /* no ERR before the PONG */
  tt_raw_expect_msg(req, 1, inbox, "r", 1, TT_RECV_MS);
}

static void reply_denied(tt_raw_t *resp, const char *inbox) {
  tt_raw_pub(resp, inbox, "r", 1);
  tt_raw_expect_err(resp, 3, TT_RECV_MS);
}

/* Sets up req (subscribed to its inbox) and the responder (to svc.q). */
static void pair(tt_raw_t *req, tt_raw_t *resp, const char *who) {
  ops_login(req, tt_g_broker.port, "req", "pw", NULL);
  tt_raw_sub(req, 1, "_INBOX.>", NULL);
  tt_raw_barrier_strict(req);
  ops_login(resp, tt_g_broker.port, who, "pw", NULL);
  tt_raw_sub(resp, 1, "svc.q", NULL);
  tt_raw_barrier_strict(resp);
}

Test(ops_responses, one_reply_per_request, .init = users_init,
     .fini = users_fini) {
  tt_raw_t req, resp;
  pair(&req, &resp, "once");
  pub_req(&req, "svc.q", "_INBOX.a1");
  expect_request(&resp, "_INBOX.a1");
  /* An inbox it never received stays closed. */
  reply_denied(&resp, "_INBOX.zz");
  reply_ok(&resp, &req, "_INBOX.a1");
  reply_denied(&resp, "_INBOX.a1"); /* the second reply */
  /* Its own lists still apply, and a new request opens a new reply. */
  tt_raw_pub(&resp, "metrics.x", "m", 1);
  tt_raw_barrier_strict(&resp);
  pub_req(&req, "svc.q", "_INBOX.a1");
  expect_request(&resp, "_INBOX.a1");
  reply_ok(&resp, &req, "_INBOX.a1");
  tt_raw_close(&req);
  tt_raw_close(&resp);
}

Test(ops_responses, n_replies, .init = users_init, .fini = users_fini) {
  tt_raw_t req, resp;
  pair(&req, &resp, "thrice");
  pub_req(&req, "svc.q", "_INBOX.b");
  expect_request(&resp, "_INBOX.b");
  for (int i = 0; i < 3; i++)
    reply_ok(&resp, &req, "_INBOX.b");
  reply_denied(&resp, "_INBOX.b");
  tt_raw_close(&req);
  tt_raw_close(&resp);
}

Test(ops_responses, the_allowance_expires, .init = users_init,
     .fini = users_fini) {
  tt_raw_t req, resp;
  pair(&req, &resp, "brief");
  pub_req(&req, "svc.q", "_INBOX.c");
  expect_request(&resp, "_INBOX.c");
  /* Let its 1 ms pass (a lower bound on elapsed time, not a measure). */
  struct timespec ts = {0, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
  reply_denied(&resp, "_INBOX.c");
  tt_raw_close(&req);
  tt_raw_close(&resp);
}

Test(ops_responses, without_allow_responses_replies_are_denied,
     .init = users_init, .fini = users_fini) {
  tt_raw_t req, resp;
  pair(&req, &resp, "plain");
  pub_req(&req, "svc.q", "_INBOX.d");
  expect_request(&resp, "_INBOX.d");
  reply_denied(&resp, "_INBOX.d");
  tt_raw_close(&req);
  tt_raw_close(&resp);
}

/* A request delivered to a queue-group member opens its reply too. */
Test(ops_responses, queue_group_member_may_reply, .init = users_init,
     .fini = users_fini) {
  tt_raw_t req, resp;
  ops_login(&req, tt_g_broker.port, "req", "pw", NULL);
  tt_raw_sub(&req, 1, "_INBOX.>", NULL);
  tt_raw_barrier_strict(&req);
  ops_login(&resp, tt_g_broker.port, "once", "pw", NULL);
  tt_raw_sub(&resp, 1, "svc.q", "workers");
  tt_raw_barrier_strict(&resp);
  pub_req(&req, "svc.q", "_INBOX.g");
  expect_request(&resp, "_INBOX.g");
  reply_ok(&resp, &req, "_INBOX.g");
  reply_denied(&resp, "_INBOX.g");
  tt_raw_close(&req);
  tt_raw_close(&resp);
}

/* A deny_publish entry wins over a reply allowance. */
Test(ops_responses, deny_publish_wins, .init = users_init, .fini = users_fini) {
  tt_raw_t req, resp;
  pair(&req, &resp, "guarded");
  pub_req(&req, "svc.q", "_INBOX.secret.1");
  expect_request(&resp, "_INBOX.secret.1");
  reply_denied(&resp, "_INBOX.secret.1");
  pub_req(&req, "svc.q", "_INBOX.open.1");
  expect_request(&resp, "_INBOX.open.1");
  reply_ok(&resp, &req, "_INBOX.open.1");
  tt_raw_close(&req);
  tt_raw_close(&resp);
}

/* The setting is checked and printed by --check-config. */
Test(ops_responses, setting_is_checked) {
  cr_assert_geq(sodium_init(), 0);
  char h[crypto_pwhash_STRBYTES], text[512], path[64];
  hash(h, "pw");
  snprintf(text, sizeof text,
           "[user r]\npassword = %s\nallow_responses = 3, 5000\n", h);
  ops_write_file(path, text);
  ops_run_t r;
  ops_run_ternd(&r, (const char *[]){"--check-config", path, NULL}, NULL, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_not_null(strstr(r.out, "\nallow_responses = 3, 5000\n"), "%s",
                     r.out);
  unlink(path);
  snprintf(text, sizeof text, "[user r]\npassword = %s\nallow_responses = 0\n",
           h);
  ops_write_file(path, text);
  ops_run_ternd(&r, (const char *[]){"--check-config", path, NULL}, NULL, NULL);
  cr_assert_eq(r.status, 2);
  cr_assert_not_null(strstr(r.err, "invalid allow_responses"), "%s", r.err);
  unlink(path);
}
