/*
 * Logins under abuse against a real ternd: a good login
 * gets through a bad-password flood, failed logins are limited per
 * address, an unknown user costs a hash like a known one, a verified login
 * is remembered (and forgotten on reload), a closed connection's queued
 * login is not hashed, and credentials holding a NUL byte are refused.
 * Nothing here measures time: the counters in /metrics say what happened.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "broker_proc.h"
#include "ops_util.h"
#include "raw_client.h"

TestSuite(ops_login, .timeout = 120);

static char conf_path[64];

/*
 * alice's hash costs a few milliseconds (8 MiB, 3 passes), so that a
 * flood of wrong passwords makes a queue; ops may read $SYS.
 */
static void start(const char *const *extra) {
  cr_assert_geq(sodium_init(), 0);
  char ha[crypto_pwhash_STRBYTES], ho[crypto_pwhash_STRBYTES];
  cr_assert_eq(crypto_pwhash_str(ha, "Corr3ct-horse", 13, 3, 32u << 20), 0);
  cr_assert_eq(crypto_pwhash_str(ho, "ops-pw", 6, crypto_pwhash_OPSLIMIT_MIN,
                                 crypto_pwhash_MEMLIMIT_MIN),
               0);
  char text[1024];
  snprintf(text, sizeof text,
           "[user alice]\npassword = %s\n\n[user ops]\npassword = %s\n"
           "subscribe = $SYS.>\n",
           ha, ho);
  ops_write_file(conf_path, text);
  const char *args[32] = {"--config", conf_path, "--http-port", "-1"};
  size_t n = 4;
  for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
    args[n++] = extra[i];
  args[n] = NULL;
  tt_fixture_start(args);
}

static void stop(void) {
  tt_fixture_stop();
  unlink(conf_path);
}

/* A connection from source address src (any 127.x.y.z is loopback). */
static int connect_from(const char *src) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  cr_assert_eq(inet_pton(AF_INET, src, &a.sin_addr), 1);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind %s", src);
  struct sockaddr_in d = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)tt_g_broker.port)};
  inet_pton(AF_INET, "127.0.0.1", &d.sin_addr);
  cr_assert_eq(connect(fd, (struct sockaddr *)&d, sizeof d), 0);
  return fd;
}

/* Opens from src, reads HELLO, sends CONNECT with user and pass (lengths
 * given: they may hold NUL bytes). */
static void send_login(tt_raw_t *c, const char *src, const char *user,
                       size_t ulen, const char *pass, size_t plen) {
  tt_raw_attach(c, connect_from(src));
  tp_frame_t f;
  tt_raw_expect(c, &f, TP_HELLO, TT_RECV_MS);
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = 1;
  f.u.connect.user = (tp_str_t){user, ulen};
  f.u.connect.pass = (tp_str_t){pass, plen};
  tt_raw_send(c, &f);
}

/* CONNECT as alice sent right after connect(), before HELLO is read, so
 * that it is there when the broker accepts (its connect timeout is short
 * in the flood test); then HELLO is read. */
static void send_login_early(tt_raw_t *c, const char *src, const char *pass) {
  tt_raw_attach(c, connect_from(src));
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = 1;
  f.u.connect.user = tt_str("alice");
  f.u.connect.pass = tt_str(pass);
  tt_raw_send(c, &f);
  tt_raw_expect(c, &f, TP_HELLO, TT_RECV_MS);
}

static void login_ok(const char *src, const char *user, const char *pass) {
  tt_raw_t c;
  send_login(&c, src, user, strlen(user), pass, strlen(pass));
  tp_frame_t f;
  tt_raw_expect(&c, &f, TP_OK, TT_RECV_MS);
  tt_raw_close(&c);
}

static void login_refused(const char *src, const char *user, size_t ulen,
                          const char *pass, size_t plen, int code) {
  tt_raw_t c;
  send_login(&c, src, user, ulen, pass, plen);
  tt_raw_expect_err(&c, code, TT_RECV_MS);
  cr_assert(tt_raw_wait_closed(&c, TT_RECV_MS), "connection not closed");
  tt_raw_close(&c);
}

/* The value of a counter or gauge in /metrics (cr_assert when absent). */
static unsigned long long metric(const char *name) {
  static char body[65536];
  cr_assert_eq(
      ops_http_get(tt_g_broker.http_port, "/metrics", body, sizeof body), 200);
  char key[128];
  snprintf(key, sizeof key, "\n%s ", name);
  const char *p = strstr(body, key);
  cr_assert_not_null(p, "no %s in /metrics", name);
  return strtoull(p + strlen(key), NULL, 10);
}

/*
 * 100 wrong passwords ahead of a good one, with a connect timeout far
 * shorter than their hashes take and no per-address limit. Before, the
 * good login (and most bad ones) got ERR 7 while they waited for the
 * thread pool. Now a login is admitted only if its verdict can be expected
 * within the connect timeout, and then waits with its timeout stopped;
 * the others get ERR 11 at once and may retry. So nobody gets ERR 7, and
 * the good login, retried on ERR 11, gets OK.
 */
Test(ops_login, good_login_gets_through_a_flood) {
  /* 250 ms: far shorter than 100 hashes take (alice's, 32 MiB, 25-40 ms
   * each: over a second two at a time, over half a second on libuv's four
   * threads as before), yet long enough that a loaded machine reads every
   * CONNECT in time (100 ms once timed out a bad login's CONNECT). */
  start((const char *[]){"--connect-timeout-ms", "250", "--auth-fail-limit",
                         "0", "--auth-queue", "1000", NULL});
  enum { N = 100 };
  static tt_raw_t bad[N];
  for (int i = 0; i < N; i++)
    send_login_early(&bad[i], "127.0.0.1", "wrong");
  tt_raw_t good;
  tp_frame_t f;
  int busy = 0;
  for (;;) {
    send_login_early(&good, "127.0.0.2", "Corr3ct-horse");
    int r = tt_raw_recv(&good, &f, 60000);
    cr_assert_eq(r, 1, "no answer to the good login");
    if (f.type == TP_OK)
      break;
    cr_assert(f.type == TP_ERR && f.u.err.code == 11 && busy < 6000,
              "good login refused: %s %d (after %d ERR 11)",
              tp_frame_type_name(f.type),
              f.type == TP_ERR ? (int)f.u.err.code : 0, busy);
    busy++;
    tt_raw_close(&good);
    struct timespec ts = {0, 10 * 1000 * 1000}; /* a client's backoff */
    nanosleep(&ts, NULL);
  }
  unsigned long long refused = 0;
  for (int i = 0; i < N; i++) {
    tt_raw_expect(&bad[i], &f, TP_ERR, 60000);
    cr_assert(f.u.err.code == 2 || f.u.err.code == 11, "bad login got ERR %u",
              (unsigned)f.u.err.code);
    refused += f.u.err.code == 2;
    tt_raw_close(&bad[i]);
  }
  tt_raw_check_pubsub(&good);
  tt_raw_close(&good);
  cr_assert_gt(refused, 0);
  cr_assert_eq(metric("tern_auth_hashes_total"), refused + 1);
  stop();
}

/* After 3 failures an address is refused without a hash, even with the
 * right password; another address is not affected. */
Test(ops_login, failures_are_limited_per_address) {
  start((const char *[]){"--auth-fail-limit", "3", "--auth-fail-window-ms",
                         "3600000", NULL});
  for (int i = 0; i < 3; i++)
    login_refused("127.0.0.3", "alice", 5, "wrong", 5, 2);
  login_refused("127.0.0.3", "alice", 5, "Corr3ct-horse", 13, 2);
  login_refused("127.0.0.3", "nobody", 6, "x", 1, 2);
  cr_assert_eq(metric("tern_auth_hashes_total"), 3, "a blocked login hashed");
  cr_assert_eq(metric("tern_auth_blocked_total"), 2);
  login_ok("127.0.0.4", "alice", "Corr3ct-horse");
  cr_assert_eq(metric("tern_auth_failures_total"), 5);
  stop();
}

/* An unknown user's password is hashed too (against a stand-in with the
 * known users' cost), so that its refusal takes as long. */
Test(ops_login, unknown_user_costs_a_hash) {
  start(NULL);
  login_refused("127.0.0.5", "carol", 5, "Corr3ct-horse", 13, 2);
  cr_assert_eq(metric("tern_auth_hashes_total"), 1);
  login_refused("127.0.0.5", "alice", 5, "wrong", 5, 2);
  cr_assert_eq(metric("tern_auth_hashes_total"), 2);
  stop();
}

/* A verified login is remembered: the same credentials again cost no
 * hash; a wrong password for the same user still does; a reload forgets. */
Test(ops_login, verified_logins_are_remembered_until_reload) {
  start(NULL);
  tt_raw_t w; /* reload watcher */
  ops_login(&w, tt_g_broker.port, "ops", "ops-pw", NULL);
  tt_raw_sub(&w, 1, "$SYS.server.reload", NULL);
  tt_raw_barrier_strict(&w);
  login_ok("127.0.0.6", "alice", "Corr3ct-horse");
  cr_assert_eq(metric("tern_auth_hashes_total"), 2);
  login_ok("127.0.0.6", "alice", "Corr3ct-horse");
  login_ok("127.0.0.7", "alice", "Corr3ct-horse");
  cr_assert_eq(metric("tern_auth_hashes_total"), 2,
               "a remembered login hashed");
  cr_assert_eq(metric("tern_auth_cache_hits_total"), 2);
  login_refused("127.0.0.6", "alice", 5, "Corr3ct-horsf", 13, 2);
  cr_assert_eq(metric("tern_auth_hashes_total"), 3);

  /* A remembered login is decided inside the frame loop: the frames sent
   * with CONNECT still come after its OK, in order. */
  tt_raw_t p;
  tt_raw_attach(&p, connect_from("127.0.0.6"));
  ops_login_pipelined(&p, "alice", "Corr3ct-horse", "x.y");
  cr_assert_eq(metric("tern_auth_cache_hits_total"), 3);

  kill(tt_g_broker.pid, SIGHUP);
  tp_frame_t f;
  tt_raw_expect(&w, &f, TP_MSG, TT_RECV_MS);
  cr_assert(tt_str_eq(f.u.msg.topic, "$SYS.server.reload"));
  login_ok("127.0.0.6", "alice", "Corr3ct-horse");
  cr_assert_eq(metric("tern_auth_hashes_total"), 4, "reload kept the cache");
  tt_raw_close(&w);
  stop();
}

/* Logins whose clients left while they waited are dropped unhashed. */
Test(ops_login, a_closed_connection_is_not_hashed) {
  start(
      (const char *[]){"--auth-fail-limit", "0", "--auth-queue", "1000", NULL});
  enum { N = 30 };
  for (int i = 0; i < N; i++) {
    tt_raw_t c;
    send_login(&c, "127.0.0.1", "alice", 5, "wrong", 5);
    tt_raw_close(&c);
  }
  /* Queued behind them (FIFO): its OK means they were all taken. */
  login_ok("127.0.0.2", "alice", "Corr3ct-horse");
  unsigned long long hashes = metric("tern_auth_hashes_total");
  unsigned long long skipped = metric("tern_auth_skipped_total");
  cr_assert_gt(skipped, 0);
  cr_assert_lt(hashes, N + 1, "%llu hashes for %d logins", hashes, N + 1);
  stop();
}

/* A full queue refuses at once with ERR 11 (try later), not ERR 2. */
Test(ops_login, a_full_queue_refuses_with_err_11) {
  start((const char *[]){"--auth-fail-limit", "0", "--auth-queue", "1", NULL});
  enum { N = 20 };
  static tt_raw_t c[N];
  tp_frame_t login;
  tp_frame_init(&login, TP_CONNECT);
  login.u.connect.proto = 1;
  login.u.connect.user = tt_str("alice");
  login.u.connect.pass = tt_str("wrong");
  for (int i = 0; i < N; i++) {
    tt_raw_attach(&c[i], connect_from("127.0.0.1"));
    tp_frame_t f;
    tt_raw_expect(&c[i], &f, TP_HELLO, TT_RECV_MS);
  }
  /* All at once, faster than one hash. */
  for (int i = 0; i < N; i++)
    tt_raw_send(&c[i], &login);
  int busy = 0, refused = 0;
  for (int i = 0; i < N; i++) {
    tp_frame_t f;
    tt_raw_expect(&c[i], &f, TP_ERR, 60000);
    if (f.u.err.code == 11)
      busy++;
    else if (f.u.err.code == 2)
      refused++;
    else
      cr_assert_fail("ERR %u", (unsigned)f.u.err.code);
    tt_raw_close(&c[i]);
  }
  cr_assert_gt(busy, 0);
  cr_assert_eq((unsigned long long)busy, metric("tern_auth_busy_total"));
  cr_assert_eq((unsigned long long)refused, metric("tern_auth_hashes_total"));
  stop();
}

/* 13.7: a NUL byte in a credential refuses the login, where C strings used
 * to cut it ("Corr3ct-horse\0junk" logged in as "Corr3ct-horse"). */
Test(ops_login, nul_in_credentials_is_refused) {
  start(NULL);
  login_refused("127.0.0.8", "alice", 5, "Corr3ct-horse\0junk", 18, 2);
  login_refused("127.0.0.8", "alice\0x", 7, "Corr3ct-horse", 13, 2);
  login_ok("127.0.0.8", "alice", "Corr3ct-horse");
  /* Refused before any hash: only the good login hashed. */
  cr_assert_eq(metric("tern_auth_hashes_total"), 1);
  stop();
}

Test(ops_login, nul_in_token_is_refused) {
  tt_fixture_start((const char *[]){"--auth-token", "let-me-in", NULL});
  tt_raw_t c;
  tt_raw_attach(&c, tt_connect(tt_g_broker.port));
  tp_frame_t f;
  tt_raw_expect(&c, &f, TP_HELLO, TT_RECV_MS);
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = 1;
  f.u.connect.token = (tp_str_t){"let-me-in\0junk", 14};
  tt_raw_send(&c, &f);
  tt_raw_expect_err(&c, 2, TT_RECV_MS);
  tt_raw_close(&c);
  ops_login(&c, tt_g_broker.port, NULL, NULL, "let-me-in");
  tt_raw_close(&c);
  tt_fixture_stop();
}

/* A name with a NUL byte is a malformed CONNECT (ERR 1), auth or not. */
Test(ops_login, nul_in_name_is_a_protocol_error) {
  tt_fixture_start(NULL);
  tt_raw_t c;
  tt_raw_attach(&c, tt_connect(tt_g_broker.port));
  tp_frame_t f;
  tt_raw_expect(&c, &f, TP_HELLO, TT_RECV_MS);
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = 1;
  f.u.connect.name = (tp_str_t){"app\0fake", 8};
  tt_raw_send(&c, &f);
  tt_raw_expect_err(&c, 1, TT_RECV_MS);
  cr_assert(tt_raw_wait_closed(&c, TT_RECV_MS));
  tt_raw_close(&c);
  tt_fixture_stop();
}
