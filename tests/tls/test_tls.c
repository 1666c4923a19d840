/*
 * TLS end to end (issue 16): a real ternd with certificates made by
 * scripts/make-certs.sh (the tls_certs fixture, TERN_TEST_CERTS), spoken
 * to through libtern (blocking and async), raw sockets and `openssl
 * s_client`.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tern/tern.h>

#include "broker_proc.h"
#include "raw_client.h"

#define WAIT_MS 10000

static const char *cert(const char *name) {
  return tt_cert_path(name);
}

static tt_broker_t broker;

/* ternd with TLS from server.pem and the extra arguments. */
static void start_tls(const char *server, const char *const *extra) {
  const char *args[32];
  size_t n = 0;
  char pem[64], key[64];
  snprintf(pem, sizeof pem, "%s.pem", server);
  snprintf(key, sizeof key, "%s.key", server);
  args[n++] = "--tls-cert";
  args[n++] = cert(pem);
  args[n++] = "--tls-key";
  args[n++] = cert(key);
  for (size_t i = 0; extra && extra[i]; i++)
    args[n++] = extra[i];
  args[n] = NULL;
  tt_broker_start(&broker, args);
}

static void stop(void) {
  cr_assert_eq(tt_broker_stop(&broker), 0, "ternd did not exit cleanly");
}

static tern_options_t tls_opts(const char *host) {
  tern_options_t o;
  tern_options_init(&o);
  char url[128];
  snprintf(url, sizeof url, "tls://%s:%d", host, broker.port);
  cr_assert_eq(tern_options_set_url(&o, url), 0);
  cr_assert(o.tls);
  o.tls_ca_file = cert("ca.pem");
  o.connect_timeout_ms = WAIT_MS;
  o.reconnect = false;
  return o;
}

/* Connects, expecting rc; the reason is returned (static). */
static const char *connect_expect(const tern_options_t *o, int want,
                                  tern_client_t **out) {
  static char why[256];
  tern_client_t *cl = NULL;
  why[0] = '\0';
  int rc = tern_client_connect_why(&cl, o, why, sizeof why);
  cr_assert_eq(rc, want, "connect: %s (%s), wanted %s", tern_strerror(rc), why,
               tern_strerror(want));
  if (out != NULL)
    *out = cl;
  else if (cl != NULL)
    tern_client_close(cl);
  return why;
}

static void pubsub_roundtrip(tern_client_t *cl, const char *topic) {
  tern_sub_t *sub;
  tern_msg_t *m = NULL;
  cr_assert_eq(tern_client_subscribe(cl, &sub, topic, NULL), 0);
  cr_assert_eq(tern_client_publish(cl, topic, "hello", 5, NULL), 0);
  int rc = tern_sub_next(sub, WAIT_MS, &m);
  cr_assert_eq(rc, 0, "next: %s", tern_strerror(rc));
  cr_expect_eq(tern_msg_len(m), 5);
  cr_expect(memcmp(tern_msg_data(m), "hello", 5) == 0);
  tern_msg_release(m);
  tern_sub_destroy(sub);
}

TestSuite(tls, .timeout = 60);

Test(tls, pubsub_through_libtern_by_name_and_by_address) {
  start_tls("server", (const char *[]){"--tls-required", NULL});
  tern_options_t o = tls_opts("localhost");
  tern_client_t *cl;
  connect_expect(&o, 0, &cl);
  pubsub_roundtrip(cl, "tls.name");
  tern_client_close(cl);
  o = tls_opts("127.0.0.1"); /* the certificate's IP SAN */
  connect_expect(&o, 0, &cl);
  pubsub_roundtrip(cl, "tls.ip");
  tern_client_close(cl);
  stop();
}

Test(tls, openssl_s_client_gets_hello_and_pong) {
  start_tls("server", (const char *[]){"--tls-required", NULL});
  /* PING, then a zero-length frame (ERR 1, fatal) so that the broker
   * closes and s_client ends. */
  char in[] = "/tmp/tern-tls-in-XXXXXX";
  int fd = mkstemp(in);
  cr_assert_geq(fd, 0);
  static const unsigned char frames[] = {0, 0, 0, 2, 0x91, 0x07, 0, 0, 0, 0};
  cr_assert_eq(write(fd, frames, sizeof frames), (ssize_t)sizeof frames);
  close(fd);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "openssl s_client -quiet -ign_eof -verify_return_error "
           "-connect 127.0.0.1:%d -servername localhost -CAfile %s < %s "
           "2>/dev/null",
           broker.port, cert("ca.pem"), in);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  unsigned char out[4096];
  size_t n = fread(out, 1, sizeof out, p);
  pclose(p);
  unlink(in);
  static const unsigned char pong[] = {0, 0, 0, 2, 0x91, 0x08};
  cr_assert_gt(n, 10u, "s_client read %zu bytes", n);
  cr_expect_eq(out[4], 0x92, "the first frame is not HELLO");
  cr_expect_eq(out[5], 0x01, "the first frame is not HELLO");
  bool found = false;
  for (size_t i = 0; i + sizeof pong <= n; i++)
    found = found || memcmp(out + i, pong, sizeof pong) == 0;
  cr_expect(found, "no PONG in what s_client read");
  stop();
}

Test(tls, mutual_tls_good_expired_wrong_ca_and_none) {
  start_tls("server", (const char *[]){"--tls-required", "--tls-verify",
                                       "--tls-ca", cert("ca.pem"), NULL});
  tern_options_t o = tls_opts("localhost");
  tern_client_t *cl;
  o.tls_cert_file = cert("client.pem");
  o.tls_key_file = cert("client.key");
  connect_expect(&o, 0, &cl);
  pubsub_roundtrip(cl, "mtls.good");
  tern_client_close(cl);

  o.tls_cert_file = cert("client-expired.pem");
  o.tls_key_file = cert("client-expired.key");
  const char *why = connect_expect(&o, TERN_ETLS, NULL);
  cr_expect(strstr(why, "expired") != NULL, "reason: %s", why);

  o.tls_cert_file = cert("client-wrongca.pem");
  o.tls_key_file = cert("client-wrongca.key");
  why = connect_expect(&o, TERN_ETLS, NULL);
  cr_expect(strstr(why, "unknown ca") != NULL, "reason: %s", why);

  o.tls_cert_file = NULL;
  o.tls_key_file = NULL;
  why = connect_expect(&o, TERN_ETLS, NULL);
  cr_expect(strstr(why, "certificate required") != NULL, "reason: %s", why);
  stop();
}

Test(tls, server_name_mismatch_refused_unless_told) {
  start_tls("server-wrongname", NULL);
  tern_options_t o = tls_opts("localhost");
  const char *why = connect_expect(&o, TERN_ETLS, NULL);
  cr_expect(strstr(why, "certificate verify failed") != NULL, "reason: %s",
            why);
  /* The name the certificate does carry. */
  o.tls_server_name = "wrong.example";
  connect_expect(&o, 0, NULL);
  /* Or no check at all, named for what it is. */
  o.tls_server_name = NULL;
  o.tls_insecure_skip_verify = true;
  connect_expect(&o, 0, NULL);
  stop();
}

Test(tls, wrong_ca_on_the_client_side_refused) {
  start_tls("server", NULL);
  tern_options_t o = tls_opts("localhost");
  o.tls_ca_file = cert("wrongca.pem");
  const char *why = connect_expect(&o, TERN_ETLS, NULL);
  cr_expect(strstr(why, "certificate verify failed") != NULL, "reason: %s",
            why);
  stop();
}

Test(tls, handshake_that_never_completes_is_closed_by_connect_timeout) {
  start_tls("server", (const char *[]){"--connect-timeout-ms", "300", NULL});
  tt_raw_t c;
  tt_raw_attach(&c, tt_connect(broker.port));
  /* The start of a ClientHello, and nothing more. */
  static const unsigned char part[] = {0x16, 0x03, 0x01, 0x00, 0x80, 0x01};
  tt_send_all(c.fd, part, sizeof part);
  cr_expect(tt_raw_wait_closed(&c, WAIT_MS), "still open");
  tt_raw_close(&c);
  stop();
}

Test(tls, plaintext_client_on_tls_only_port_gets_err) {
  start_tls("server", (const char *[]){"--tls-required", NULL});
  tt_raw_t c;
  tt_raw_attach(&c, tt_connect(broker.port));
  tp_frame_t f;
  /* Nothing sent: the broker waits for a ClientHello, then says why. */
  int r = tt_raw_recv(&c, &f, WAIT_MS);
  cr_assert_eq(r, 1, "no frame (%d)", r);
  cr_assert_eq(f.type, TP_ERR, "got %s", tp_frame_type_name(f.type));
  cr_expect_eq(f.u.err.code, 1);
  cr_expect(memmem(f.u.err.message.ptr, f.u.err.message.len, "TLS required",
                   12) != NULL);
  cr_expect(tt_raw_wait_closed(&c, WAIT_MS));
  tt_raw_close(&c);
  /* libtern with a plaintext URL: refused, with the broker's words. */
  tern_options_t o;
  tern_options_init(&o);
  o.port = broker.port;
  o.reconnect = false;
  const char *why = connect_expect(&o, TERN_EPROTO, NULL);
  cr_expect(strstr(why, "TLS required") != NULL, "reason: %s", why);
  stop();
}

Test(tls, plaintext_still_served_when_tls_is_not_required) {
  start_tls("server", (const char *[]){"--tls-detect-ms", "50", NULL});
  tern_options_t o;
  tern_options_init(&o);
  o.port = broker.port;
  tern_client_t *cl;
  connect_expect(&o, 0, &cl);
  pubsub_roundtrip(cl, "plain.too");
  tern_client_close(cl);
  o = tls_opts("localhost");
  connect_expect(&o, 0, &cl);
  pubsub_roundtrip(cl, "tls.too");
  tern_client_close(cl);
  stop();
}

/* Reads a whole file (static buffer). */
static const char *slurp(const char *path) {
  static char buf[65536];
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f, "%s: %s", path, strerror(errno));
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
    n++;
  return n;
}

Test(tls, tls_client_on_plaintext_port_fails_fast_and_broker_logs_once) {
  char log[] = "/tmp/tern-tls-log-XXXXXX";
  int lfd = mkstemp(log);
  cr_assert_geq(lfd, 0);
  tt_broker_opts_t bo = {.stderr_fd = lfd};
  tt_broker_start_opts(&broker, &bo, NULL); /* no TLS at all */
  tern_options_t o = tls_opts("localhost");
  const char *why = connect_expect(&o, TERN_ETLS, NULL);
  cr_expect(strstr(why, "did not answer in TLS") != NULL, "reason: %s", why);
  stop();
  close(lfd);
  const char *text = slurp(log);
  unlink(log);
  cr_expect_eq(count(text, "TLS handshake on a port without TLS"), 1, "log: %s",
               text);
}

/* ---- reload ---------------------------------------------------------- */

static void write_conf(const char *path, const char *server) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fprintf(f, "tls_cert = %s/%s.pem\ntls_key = %s/%s.key\n",
          getenv("TERN_TEST_CERTS"), server, getenv("TERN_TEST_CERTS"), server);
  fclose(f);
}

/* Waits (bounded) until the log holds n lines with text. */
static void wait_log(const char *path, const char *text, size_t n) {
  int64_t end = tt_now_ms() + WAIT_MS;
  while (count(slurp(path), text) < n) {
    cr_assert_lt(tt_now_ms(), end, "no '%s' in the log: %s", text, slurp(path));
    usleep(10000);
  }
}

/* The subject's O= of the certificate a new connection is shown. */
static bool new_conn_sees(const char *org) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "openssl s_client -connect 127.0.0.1:%d -CAfile %s "
           "-verify_return_error </dev/null 2>/dev/null | "
           "openssl x509 -noout -subject 2>/dev/null",
           broker.port, cert("ca.pem"));
  FILE *p = popen(cmd, "r");
  char line[512] = "";
  size_t n = fread(line, 1, sizeof line - 1, p);
  line[n] = '\0';
  pclose(p);
  char want[64];
  snprintf(want, sizeof want, "O = %s,", org);
  return strstr(line, want) != NULL;
}

Test(tls, sighup_reloads_the_certificate_and_keeps_clients) {
  char conf[] = "/tmp/tern-tls-conf-XXXXXX";
  char log[] = "/tmp/tern-tls-log-XXXXXX";
  int cfd = mkstemp(conf), lfd = mkstemp(log);
  cr_assert(cfd >= 0 && lfd >= 0);
  close(cfd);
  write_conf(conf, "server");
  tt_broker_opts_t bo = {.stderr_fd = lfd};
  tt_broker_start_opts(
      &broker, &bo,
      (const char *[]){"--config", conf, "--log-level", "info", NULL});
  tern_options_t o = tls_opts("localhost");
  tern_client_t *old;
  connect_expect(&o, 0, &old);
  cr_expect(new_conn_sees("tern-test"));

  write_conf(conf, "server2");
  kill(broker.pid, SIGHUP);
  wait_log(log, "reload: TLS certificate", 1);
  cr_expect(new_conn_sees("tern-test-2"), "a new connection still sees the "
                                          "old certificate");
  /* The client of before the reload is still there and works. */
  pubsub_roundtrip(old, "reload.old");
  tern_client_t *fresh;
  connect_expect(&o, 0, &fresh);
  pubsub_roundtrip(fresh, "reload.new");
  tern_client_close(fresh);

  /* A certificate that does not load: the one in place stays. */
  FILE *f = fopen(conf, "w");
  fprintf(f, "tls_cert = /nonexistent/cert.pem\ntls_key = %s\n",
          cert("server.key"));
  fclose(f);
  kill(broker.pid, SIGHUP);
  wait_log(log, "the old certificate stays", 1);
  cr_expect(new_conn_sees("tern-test-2"));
  pubsub_roundtrip(old, "reload.still");
  tern_client_close(old);
  stop();
  close(lfd);
  unlink(conf);
  unlink(log);
}

/* ---- certificate identity -------------------------------------------- */

static void start_with_users(const char *users) {
  static char conf[] = "/tmp/tern-tls-users-XXXXXX";
  strcpy(conf, "/tmp/tern-tls-users-XXXXXX");
  int fd = mkstemp(conf);
  cr_assert_geq(fd, 0);
  FILE *f = fdopen(fd, "w");
  fputs(users, f);
  fclose(f);
  start_tls("server",
            (const char *[]){"--tls-required", "--tls-verify", "--tls-ca",
                             cert("ca.pem"), "--config", conf, NULL});
  unlink(conf); /* read at start (a reload would need it again) */
}

/* With tls_verify and tls_required every client proves who it is with a
 * certificate: HELLO must say authentication is required, as it does for
 * users or a token (clients decide from it whether to send credentials). */
Test(tls, hello_says_auth_required_when_certificates_alone_authenticate) {
  start_tls("server", (const char *[]){"--tls-ca", cert("ca.pem"),
                                       "--tls-verify", "--tls-required", NULL});
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "openssl s_client -quiet -verify_return_error -connect 127.0.0.1:%d "
           "-servername localhost -CAfile %s -cert %s -key %s </dev/null "
           "2>/dev/null",
           broker.port, cert("ca.pem"), cert("client.pem"), cert("client.key"));
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  unsigned char out[4096];
  size_t n = fread(out, 1, sizeof out, p);
  pclose(p);
  /* The key as a msgpack fixstr, then its value: 0xc3 true, 0xc2 false. */
  static const char key[] = "\xad"
                            "auth_required";
  const size_t klen = sizeof key - 1;
  int value = -1;
  for (size_t i = 0; i + klen < n; i++)
    if (memcmp(out + i, key, klen) == 0)
      value = out[i + klen];
  cr_assert_neq(value, -1, "no auth_required in HELLO (%zu bytes read)", n);
  cr_expect_eq(value, 0xc3, "HELLO says auth_required false (0x%02x)", value);
  stop();
}

Test(tls, client_certificate_logs_in_as_its_user) {
  start_with_users("[user orders-service]\n"
                   "cert_subject = CN=orders-service,O=tern-test\n"
                   "publish = orders.>\n"
                   "subscribe = orders.>\n");
  tern_options_t o = tls_opts("localhost");
  o.tls_cert_file = cert("client.pem");
  o.tls_key_file = cert("client.key");
  tern_client_t *cl;
  connect_expect(&o, 0, &cl); /* no user, no password, no token */
  pubsub_roundtrip(cl, "orders.created");
  /* With that user's permissions. */
  tern_client_publish(cl, "billing.x", "no", 2, NULL);
  int rc = tern_client_flush(cl, WAIT_MS);
  cr_expect_eq(rc, TERN_EPERM, "flush: %s", tern_strerror(rc));
  tern_client_close(cl);
  stop();
}

Test(tls, san_binding_and_an_unbound_certificate) {
  /* Bound by SAN: the client certificate carries this URI. */
  start_with_users("[user by-san]\n"
                   "cert_san = URI:spiffe://tern.test/orders-service\n");
  tern_options_t o = tls_opts("localhost");
  o.tls_cert_file = cert("client.pem");
  o.tls_key_file = cert("client.key");
  connect_expect(&o, 0, NULL);
  stop();
  /* A verified certificate bound to nobody still needs credentials. */
  start_with_users("[user other]\n"
                   "cert_san = URI:spiffe://tern.test/other\n");
  o = tls_opts("localhost");
  o.tls_cert_file = cert("client.pem");
  o.tls_key_file = cert("client.key");
  connect_expect(&o, TERN_EAUTH, NULL);
  stop();
}

/* ---- the async API --------------------------------------------------- */

typedef struct {
  int status;
  bool done;
  int ticks;
} async_state_t;

static void on_tick(uv_timer_t *t) {
  async_state_t *st = t->data;
  st->ticks++;
}

static void on_connect(tern_conn_t *c, int status, void *data) {
  (void)c;
  async_state_t *st = data;
  st->status = status;
  st->done = true;
}

static void on_closed(tern_conn_t *c, void *data) {
  (void)c;
  (void)data;
}

/* A peer that accepts TCP (the kernel does) and never answers: the
 * handshake hangs, the loop keeps turning, the connect times out. */
Test(tls, async_handshake_never_blocks_the_loop) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(l, 4), 0);
  cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  async_state_t st = {0};
  uv_timer_t tick;
  uv_timer_init(&loop, &tick);
  tick.data = &st;
  uv_timer_start(&tick, on_tick, 5, 5);
  tern_options_t o;
  tern_options_init(&o);
  char url[64];
  snprintf(url, sizeof url, "tls://127.0.0.1:%d", ntohs(a.sin_port));
  cr_assert_eq(tern_options_set_url(&o, url), 0);
  o.tls_ca_file = cert("ca.pem");
  o.connect_timeout_ms = 300;
  o.reconnect = false;
  tern_conn_t *c = NULL;
  cr_assert_eq(tern_conn_connect(&c, &loop, &o, on_connect, &st), 0);
  cr_expect(!st.done, "connect answered before the loop ran");
  while (!st.done)
    uv_run(&loop, UV_RUN_ONCE);
  cr_expect_eq(st.status, TERN_ETIMEOUT, "%s", tern_strerror(st.status));
  cr_expect_gt(st.ticks, 0, "the loop did not turn during the handshake");
  tern_conn_close(c, on_closed, NULL);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(uv_loop_close(&loop), 0);
  close(l);
}

Test(tls, pubsub_again_after_a_reconnect_over_tls) {
  start_tls("server", (const char *[]){"--tls-required", NULL});
  int port = broker.port;
  tern_options_t o = tls_opts("localhost");
  o.reconnect = true;
  o.reconnect_initial_ms = 20;
  o.reconnect_max_ms = 100;
  tern_client_t *cl;
  connect_expect(&o, 0, &cl);
  pubsub_roundtrip(cl, "before.restart");
  /* The broker goes and comes back on the same port: the client makes a
   * new TLS handshake and its subscription works again. */
  tern_sub_t *sub;
  cr_assert_eq(tern_client_subscribe(cl, &sub, "after.restart", NULL), 0);
  tt_broker_kill(&broker);
  char pem[1024], key[1024];
  snprintf(pem, sizeof pem, "%s", cert("server.pem"));
  snprintf(key, sizeof key, "%s", cert("server.key"));
  tt_broker_start_on(&broker, port,
                     (const char *[]){"--tls-cert", pem, "--tls-key", key,
                                      "--tls-required", NULL});
  tern_msg_t *m = NULL;
  int rc = TERN_ETIMEOUT;
  int64_t end = tt_now_ms() + WAIT_MS;
  while (rc != 0 && tt_now_ms() < end) {
    tern_client_publish(cl, "after.restart", "x", 1, NULL);
    rc = tern_sub_next(sub, 100, &m);
  }
  cr_assert_eq(rc, 0, "no message after the restart: %s", tern_strerror(rc));
  tern_msg_release(m);
  tern_sub_destroy(sub);
  tern_client_close(cl);
  stop();
}

/* ---- configuration --------------------------------------------------- */

/* Runs a shell command line; its exit status and first output bytes. */
static int run(const char *cmd, char *out, size_t cap) {
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(tls, check_config_loads_the_files) {
  char conf[] = "/tmp/tern-tls-check-XXXXXX";
  int fd = mkstemp(conf);
  cr_assert_geq(fd, 0);
  FILE *f = fdopen(fd, "w");
  fprintf(f, "tls_cert = %s\ntls_key = %s\ntls_verify = true\ntls_ca = %s\n",
          cert("server.pem"), cert("server.key"), cert("ca.pem"));
  fclose(f);
  char cmd[2048], out[8192];
  snprintf(cmd, sizeof cmd, "%s --check-config %s 2>&1", tt_ternd_path(), conf);
  cr_expect_eq(run(cmd, out, sizeof out), 0, "%s", out);
  cr_expect(strstr(out, "tls_verify = true") != NULL, "%s", out);
  /* A key that is not the certificate's: refused, with the reason. */
  f = fopen(conf, "w");
  fprintf(f, "tls_cert = %s\ntls_key = %s\n", cert("server.pem"),
          cert("client.key"));
  fclose(f);
  cr_expect_eq(run(cmd, out, sizeof out), 2, "%s", out);
  cr_expect(strstr(out, "mismatch") != NULL, "%s", out);
  /* tls_verify without a CA to check with. */
  f = fopen(conf, "w");
  fprintf(f, "tls_cert = %s\ntls_key = %s\ntls_verify = yes\n",
          cert("server.pem"), cert("server.key"));
  fclose(f);
  cr_expect_eq(run(cmd, out, sizeof out), 2, "%s", out);
  cr_expect(strstr(out, "tls_verify needs tls_ca") != NULL, "%s", out);
  unlink(conf);
}

Test(tls, options_from_the_environment) {
  setenv("TERN_TLS_CERT", cert("server.pem"), 1);
  setenv("TERN_TLS_KEY", cert("server.key"), 1);
  setenv("TERN_TLS_REQUIRED", "true", 1);
  tt_broker_start(&broker, NULL);
  unsetenv("TERN_TLS_CERT");
  unsetenv("TERN_TLS_KEY");
  unsetenv("TERN_TLS_REQUIRED");
  tt_raw_t c;
  tt_raw_attach(&c, tt_connect(broker.port));
  tt_raw_expect_err(&c, 1, WAIT_MS);
  tt_raw_close(&c);
  tern_options_t o = tls_opts("localhost");
  connect_expect(&o, 0, NULL);
  stop();
}

/* ---- resumption --------------------------------------------------------- */

/* `tern bench --connects N --tls-resume` against the broker: the count of
 * connections that resumed the TLS session of the one before. */
static long bench_resumed(int n, const char *extra) {
  char cli[1024], cmd[4096], out[8192];
  snprintf(cli, sizeof cli, "%s", tt_ternd_path());
  size_t len = strlen(cli);
  cr_assert(len > 1 && cli[len - 1] == 'd', "%s", cli);
  cli[len - 1] = '\0'; /* bin/ternd -> bin/tern */
  snprintf(cmd, sizeof cmd,
           "%s bench -s localhost:%d --tls-ca %s %s --pub 1 --connects %d "
           "--tls-resume --json 2>&1",
           cli, broker.port, cert("ca.pem"), extra, n);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  const char *r = strstr(out, "\"resumed\":");
  cr_assert_not_null(r, "%s", out);
  return strtol(r + strlen("\"resumed\":"), NULL, 10);
}

Test(tls, sessions_resume_with_tickets) {
  start_tls("server", (const char *[]){"--tls-required", NULL});
  /* The first connection makes a full handshake, every later one offers
   * the ticket of the one before and resumes. */
  cr_expect_eq(bench_resumed(5, ""), 4);
  stop();
}

Test(tls, a_resumed_session_keeps_its_client_certificate_user) {
  /* Mutual TLS alone logs in (no credentials in CONNECT): a resumed
   * session must still carry the certificate, or the login fails. */
  start_with_users("[user orders-service]\n"
                   "cert_subject = CN=orders-service,O=tern-test\n");
  char extra[2048];
  snprintf(extra, sizeof extra, "--tls-cert %s --tls-key %s",
           cert("client.pem"), cert("client.key"));
  cr_expect_eq(bench_resumed(4, extra), 3);
  stop();
}

/* ---- /connz and close_notify -------------------------------------------- */

Test(tls, connz_shows_each_connections_tls) {
  start_tls("server",
            (const char *[]){"--tls-verify", "--tls-ca", cert("ca.pem"),
                             "--http-port", "-1", NULL});
  cr_assert_gt(broker.http_port, 0);
  tern_options_t o = tls_opts("localhost");
  o.tls_cert_file = cert("client.pem");
  o.tls_key_file = cert("client.key");
  tern_client_t *cl;
  connect_expect(&o, 0, &cl);
  cr_assert_eq(tern_client_flush(cl, WAIT_MS), 0);
  char cmd[512], out[16384];
  snprintf(cmd, sizeof cmd, "curl -s http://127.0.0.1:%d/connz",
           broker.http_port);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  cr_expect(strstr(out, "\"tls\":{\"version\":\"TLSv1.3\",\"cipher\":\"TLS_"
                        "AES_128_GCM_SHA256\",\"resumed\":false,"
                        "\"client_subject\":\"CN=orders-service,O=tern-"
                        "test\"}") != NULL,
            "%s", out);
  tern_client_close(cl);
  /* A plaintext connection: tls null. */
  tt_raw_t c;
  tt_raw_open(&c, broker.port, true, false, false);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  cr_expect(strstr(out, "\"tls\":null") != NULL, "%s", out);
  tt_raw_close(&c);
  stop();
}

Test(tls, libtern_sends_close_notify_on_close) {
  char log[] = "/tmp/tern-tls-log-XXXXXX";
  int lfd = mkstemp(log);
  cr_assert_geq(lfd, 0);
  tt_broker_opts_t bo = {.stderr_fd = lfd};
  char pem[1024], key[1024];
  snprintf(pem, sizeof pem, "%s", cert("server.pem"));
  snprintf(key, sizeof key, "%s", cert("server.key"));
  tt_broker_start_opts(&broker, &bo,
                       (const char *[]){"--tls-cert", pem, "--tls-key", key,
                                        "--tls-required", "--log-level",
                                        "debug", NULL});
  tern_options_t o = tls_opts("localhost");
  tern_client_t *cl;
  connect_expect(&o, 0, &cl);
  cr_assert_eq(tern_client_flush(cl, WAIT_MS), 0);
  tern_client_close(cl);
  wait_log(log, "TLS close_notify from the peer", 1);
  stop();
  close(lfd);
  unlink(log);
}

/* ---- libtern resumes across a reconnect ------------------------------------
 */

static atomic_int g_disconnects, g_connects;

static void count_status(tern_conn_t *c, tern_status_t s, int reason,
                         void *data) {
  (void)c;
  (void)reason;
  (void)data;
  if (s == TERN_STATUS_DISCONNECTED)
    atomic_fetch_add(&g_disconnects, 1);
  if (s == TERN_STATUS_CONNECTED)
    atomic_fetch_add(&g_connects, 1);
}

static void wait_count(atomic_int *n, int want) {
  int64_t end = tt_now_ms() + WAIT_MS;
  while (atomic_load(n) < want) {
    cr_assert_lt(tt_now_ms(), end, "count %d, wanted %d", atomic_load(n), want);
    usleep(10000);
  }
}

Test(tls, libtern_resumes_its_session_after_a_reconnect) {
  char log[] = "/tmp/tern-tls-log-XXXXXX";
  int lfd = mkstemp(log);
  cr_assert_geq(lfd, 0);
  tt_broker_opts_t bo = {.stderr_fd = lfd};
  char pem[1024], key[1024];
  snprintf(pem, sizeof pem, "%s", cert("server.pem"));
  snprintf(key, sizeof key, "%s", cert("server.key"));
  tt_broker_start_opts(&broker, &bo,
                       (const char *[]){"--tls-cert", pem, "--tls-key", key,
                                        "--tls-required", "--log-level",
                                        "debug", NULL});
  atomic_store(&g_disconnects, 0);
  atomic_store(&g_connects, 0);
  tern_options_t o = tls_opts("localhost");
  o.reconnect = true;
  o.reconnect_initial_ms = 20;
  o.reconnect_max_ms = 100;
  o.heartbeat_ms = 100; /* a stopped broker is dead after 200 ms */
  o.status_cb = count_status;
  tern_client_t *cl;
  connect_expect(&o, 0, &cl);
  cr_assert_eq(tern_client_flush(cl, WAIT_MS), 0); /* the ticket came */
  /* The same broker (same ticket keys) goes silent and comes back: the
   * client gives the connection up and reconnects, offering its ticket. */
  kill(broker.pid, SIGSTOP);
  wait_count(&g_disconnects, 1);
  kill(broker.pid, SIGCONT);
  wait_count(&g_connects, 2);
  wait_log(log, "TLS handshake done: TLSv1.3 TLS_AES_128_GCM_SHA256 (resumed)",
           1);
  pubsub_roundtrip(cl, "after.resume");
  tern_client_close(cl);
  stop();
  close(lfd);
  unlink(log);
}

/* ---- cipher policy ----------------------------------------------------------
 */

Test(tls, cipher_suites_from_the_configuration) {
  /* --check-config loads them: a list OpenSSL knows nothing of is refused. */
  char cmd[4096], out[8192];
  snprintf(cmd, sizeof cmd,
           "%s --check-config /dev/null --tls-cert %s --tls-key %s "
           "--tls-ciphersuites TLS_NO_SUCH_SUITE 2>&1",
           tt_ternd_path(), cert("server.pem"), cert("server.key"));
  cr_expect_eq(run(cmd, out, sizeof out), 2, "%s", out);
  cr_expect(strstr(out, "TLS 1.3 cipher suites") != NULL, "%s", out);
  /* Served: the only suite the broker allows is the one agreed. */
  start_tls("server", (const char *[]){"--tls-required", "--tls-ciphersuites",
                                       "TLS_CHACHA20_POLY1305_SHA256",
                                       "--http-port", "-1", NULL});
  tern_options_t o = tls_opts("localhost");
  tern_client_t *cl;
  connect_expect(&o, 0, &cl);
  cr_assert_eq(tern_client_flush(cl, WAIT_MS), 0);
  snprintf(cmd, sizeof cmd, "curl -s http://127.0.0.1:%d/connz",
           broker.http_port);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  cr_expect(strstr(out, "\"cipher\":\"TLS_CHACHA20_POLY1305_SHA256\"") != NULL,
            "%s", out);
  tern_client_close(cl);
  stop();
}
