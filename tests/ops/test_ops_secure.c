/*
 * Secure by default (issue 16): ternd refuses to listen for clients on a
 * non-loopback address without authentication unless allow_anonymous is
 * set (flag, file, environment, --check-config, reload), says at startup
 * which it is, and the monitoring pages that list clients need the
 * http_token (or a loopback address, or allow_anonymous) while
 * http_open_paths stay open.
 *
 * The tests that start a broker on 0.0.0.0 speak to it over 127.0.0.1
 * only, with an ephemeral port.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_proc.h"
#include "ops_util.h"
#include "raw_client.h"

TestSuite(ops_secure, .timeout = 60);

static void expect_in(const char *text, const char *what) {
  cr_assert_not_null(strstr(text, what), "'%s' not in:\n%s", what, text);
}

/* ---- the client port ---------------------------------------------------- */

Test(ops_secure, anonymous_refused_on_a_non_loopback_host) {
  ops_run_t r;
  /* A start: refused before it listens, with what to do about it. */
  ops_run_ternd(&r,
                (const char *[]){"--host", "0.0.0.0", "--port", "0",
                                 "--http-port", "0", NULL},
                NULL, NULL);
  cr_assert_eq(r.status, 2, "status %d, stderr: %s", r.status, r.err);
  expect_in(r.err, "refusing to listen on 0.0.0.0 without authentication");
  expect_in(r.err, "--allow-anonymous");
  expect_in(r.err, "TERN_AUTH_TOKEN");
  cr_assert_null(strstr(r.err, "listening on"), "it listened: %s", r.err);
  /* IPv6 too, and --check-config says the same. */
  ops_run_ternd(&r,
                (const char *[]){"--host", "::", "--check-config", "", NULL},
                NULL, NULL);
  cr_assert_eq(r.status, 2, "status %d, out: %s", r.status, r.out);
  expect_in(r.err, "refusing to listen on :: without authentication");
  /* From the environment as well. */
  ops_run_ternd(&r, (const char *[]){"--check-config", "", NULL},
                (const char *[]){"TERN_HOST=10.1.2.3", NULL}, NULL);
  cr_assert_eq(r.status, 2, "status %d, out: %s", r.status, r.out);
  expect_in(r.err, "refusing to listen on 10.1.2.3");
}

Test(ops_secure, route_port_off_loopback_needs_route_authentication) {
  ops_run_t r;
  /* allow_anonymous opens the client port, not the route port. */
  ops_run_ternd(&r,
                (const char *[]){"--host", "0.0.0.0", "--allow-anonymous",
                                 "--cluster-port", "7422", "--check-config", "",
                                 NULL},
                NULL, NULL);
  cr_assert_eq(r.status, 2, "status %d, out: %s", r.status, r.out);
  expect_in(r.err, "refusing a route port (7422) on 0.0.0.0");
  expect_in(r.err, "TERN_CLUSTER_TOKEN");
  /* A cluster token makes it fine; loopback needs nothing. */
  ops_run_ternd(&r,
                (const char *[]){"--host", "0.0.0.0", "--allow-anonymous",
                                 "--cluster-port", "7422", "--check-config", "",
                                 NULL},
                (const char *[]){"TERN_CLUSTER_TOKEN=s3cr3t", NULL}, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  ops_run_ternd(&r,
                (const char *[]){"--host", "127.0.0.1", "--cluster-port",
                                 "7422", "--check-config", "", NULL},
                NULL, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
}

Test(ops_secure, loopback_and_authenticated_hosts_need_no_flag) {
  ops_run_t r;
  static const char *const loopbacks[] = {"127.0.0.1", "127.9.8.7", "::1"};
  for (size_t i = 0; i < 3; i++) {
    ops_run_ternd(
        &r,
        (const char *[]){"--host", loopbacks[i], "--check-config", "", NULL},
        NULL, NULL);
    cr_assert_eq(r.status, 0, "%s: %s", loopbacks[i], r.err);
    expect_in(r.out, "\nallow_anonymous = false\n");
  }
  /* A token, or users, make any host fine. */
  ops_run_ternd(
      &r, (const char *[]){"--host", "0.0.0.0", "--check-config", "", NULL},
      (const char *[]){"TERN_AUTH_TOKEN=s3cr3t", NULL}, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  char hash[crypto_pwhash_STRBYTES], text[512], path[64];
  cr_assert_geq(sodium_init(), 0);
  cr_assert_eq(crypto_pwhash_str(hash, "pw", 2, crypto_pwhash_OPSLIMIT_MIN,
                                 crypto_pwhash_MEMLIMIT_MIN),
               0);
  snprintf(text, sizeof text, "host = ::\n[user alice]\npassword = %s\n", hash);
  ops_write_file(path, text);
  ops_run_ternd(&r, (const char *[]){"--check-config", path, NULL}, NULL, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  unlink(path);
}

Test(ops_secure, allow_anonymous_from_flag_file_and_environment) {
  ops_run_t r;
  ops_run_ternd(&r,
                (const char *[]){"--host", "0.0.0.0", "--allow-anonymous",
                                 "--check-config", "", NULL},
                NULL, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  expect_in(r.out, "\nallow_anonymous = true\n");
  ops_run_ternd(
      &r, (const char *[]){"--check-config", "", NULL},
      (const char *[]){"TERN_HOST=0.0.0.0", "TERN_ALLOW_ANONYMOUS=true", NULL},
      NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  expect_in(r.out, "\nallow_anonymous = true\n");
  char path[64];
  ops_write_file(path, "host = 0.0.0.0\nallow_anonymous = yes\n");
  ops_run_ternd(&r, (const char *[]){"--check-config", path, NULL}, NULL, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  /* The flag wins over the file, either way. */
  ops_run_ternd(
      &r,
      (const char *[]){"--allow-anonymous=false", "--check-config", path, NULL},
      NULL, NULL);
  cr_assert_eq(r.status, 2, "%s", r.out);
  unlink(path);
  /* A value that is not a boolean is a configuration error. */
  ops_run_ternd(&r, (const char *[]){"--check-config", "", NULL},
                (const char *[]){"TERN_ALLOW_ANONYMOUS=maybe", NULL}, NULL);
  cr_assert_eq(r.status, 2, "%s", r.out);
  expect_in(r.err, "TERN_ALLOW_ANONYMOUS");
}

/* The directory of the test certificates, made by the project's script
 * (scripts/make-certs.sh, the openssl command) once per test. */
static char certs[64];

static void make_certs(void) {
  snprintf(certs, sizeof certs, "/tmp/tern-secure-certs-XXXXXX");
  cr_assert_not_null(mkdtemp(certs));
  char cmd[512];
  snprintf(cmd, sizeof cmd, "sh %s %s >/dev/null 2>&1", TERN_MAKE_CERTS, certs);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void drop_certs(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", certs);
  cr_assert_eq(system(cmd), 0);
}

static const char *cert_path(const char *name) {
  static char paths[4][128];
  static int next;
  char *p = paths[next++ % 4];
  snprintf(p, 128, "%s/%s", certs, name);
  return p;
}

Test(ops_secure, client_certificates_alone_are_authentication) {
  make_certs();
  const char *cert = cert_path("server.pem"), *key = cert_path("server.key"),
             *ca = cert_path("ca.pem");
  ops_run_t r;
  /* Every client must show a certificate of the CA: that is enough. */
  ops_run_ternd(&r,
                (const char *[]){"--host", "0.0.0.0", "--tls-cert", cert,
                                 "--tls-key", key, "--tls-ca", ca,
                                 "--tls-verify", "--tls-required",
                                 "--check-config", "", NULL},
                NULL, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  /* Plaintext still allowed: anyone gets in without one. */
  ops_run_ternd(&r,
                (const char *[]){"--host", "0.0.0.0", "--tls-cert", cert,
                                 "--tls-key", key, "--tls-ca", ca,
                                 "--tls-verify", "--check-config", "", NULL},
                NULL, NULL);
  cr_assert_eq(r.status, 2, "%s", r.out);
  expect_in(r.err, "refusing to listen on 0.0.0.0 without authentication");
  drop_certs();
}

/* Starts ternd with its stderr in a file; returns the file's path. */
static void start_logged(char *log, const char *const *extra) {
  snprintf(log, 64, "/tmp/tern-secure-log-XXXXXX");
  int fd = mkstemp(log);
  cr_assert_geq(fd, 0);
  tt_broker_opts_t o = {.stderr_fd = fd};
  const char *args[24];
  size_t n = 0;
  args[n++] = "--log-level";
  args[n++] = "info";
  for (size_t i = 0; extra[i]; i++)
    args[n++] = extra[i];
  args[n] = NULL;
  tt_broker_start_opts(&tt_g_broker, &o, args);
  close(fd);
}

static void read_log(const char *log, char *buf, size_t cap) {
  FILE *fp = fopen(log, "r");
  cr_assert_not_null(fp);
  size_t n = fread(buf, 1, cap - 1, fp);
  buf[n] = '\0';
  fclose(fp);
}

Test(ops_secure, startup_log_says_which_it_is) {
  static char text[65536];
  char log[64];
  /* Loopback without authentication. */
  start_logged(log, (const char *[]){NULL});
  cr_assert_eq(tt_broker_stop(&tt_g_broker), 0);
  read_log(log, text, sizeof text);
  expect_in(text, "no authentication: anonymous clients accepted on "
                  "loopback 127.0.0.1 only");
  unlink(log);
  /* With a token. */
  start_logged(log, (const char *[]){"--auth-token", "t0ken", NULL});
  cr_assert_eq(tt_broker_stop(&tt_g_broker), 0);
  read_log(log, text, sizeof text);
  expect_in(text, "authentication required: token");
  unlink(log);
  /* Anonymous on every address, allowed: a warning, and it serves. */
  start_logged(
      log, (const char *[]){"--host", "0.0.0.0", "--allow-anonymous", NULL});
  tt_raw_t c;
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  tt_raw_barrier_strict(&c);
  tt_raw_close(&c);
  cr_assert_eq(tt_broker_stop(&tt_g_broker), 0);
  read_log(log, text, sizeof text);
  expect_in(text, "[warn] no authentication (allow_anonymous): anyone who "
                  "can reach 0.0.0.0 may publish and subscribe");
  unlink(log);
}

Test(ops_secure, reload_cannot_drop_authentication_on_a_public_host) {
  char path[64];
  ops_write_file(path, "auth_token = first\n");
  tt_broker_start(&tt_g_broker, (const char *[]){"--host", "0.0.0.0",
                                                 "--config", path, NULL});
  tt_raw_t w;
  ops_login(&w, tt_g_broker.port, NULL, NULL, "first");
  tt_raw_sub(&w, 1, "$SYS.server.reload", NULL);
  tt_raw_barrier_strict(&w);
  /* Taking the token away on 0.0.0.0 is refused; the token stays. */
  ops_write_over(path, "max_subs = 5\n");
  kill(tt_g_broker.pid, SIGHUP);
  cr_assert_not(ops_wait_reload(&w, 1), "a reload dropped authentication");
  bool auth_req = false;
  tt_raw_t c;
  ops_connect_creds(&c, tt_g_broker.port, NULL, NULL, NULL, &auth_req);
  cr_assert(auth_req, "HELLO no longer asks for authentication");
  tp_frame_t f;
  tt_raw_expect(&c, &f, TP_ERR, TT_RECV_MS);
  cr_assert_eq(f.u.err.code, 2);
  tt_raw_close(&c);
  /* With allow_anonymous the same change is taken. */
  ops_write_over(path, "max_subs = 5\nallow_anonymous = true\n");
  kill(tt_g_broker.pid, SIGHUP);
  cr_assert(ops_wait_reload(&w, 1), "the reload was refused");
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  tt_raw_barrier_strict(&c);
  tt_raw_close(&c);
  tt_raw_close(&w);
  tt_fixture_stop();
  unlink(path);
}

/* ---- the monitoring port ---------------------------------------------- */

/* GET path with an Authorization header (NULL: none): the status. */
static int get(const char *path, const char *authz) {
  static char body[1 << 20];
  char hdr[600] = "";
  if (authz != NULL)
    snprintf(hdr, sizeof hdr, "Authorization: %s\r\n", authz);
  return ops_http_get_with(tt_g_broker.http_port, path, hdr, body, sizeof body);
}

/* The raw response head to GET path without credentials. */
static void head_of(const char *path, char *out, size_t cap) {
  int fd = tt_connect(tt_g_broker.http_port);
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  tt_send_all(fd, req, (size_t)n);
  size_t used = 0;
  ssize_t k;
  while (used + 1 < cap && (k = read(fd, out + used, cap - 1 - used)) > 0)
    used += (size_t)k;
  out[used] = '\0';
  close(fd);
}

static const char *const protected_pages[] = {"/varz", "/connz", "/subz",
                                              "/routez"};
#define NPROTECTED (sizeof protected_pages / sizeof protected_pages[0])

Test(ops_secure, monitoring_token_guards_the_pages_that_list_clients) {
  tt_broker_start(
      &tt_g_broker,
      (const char *[]){"--http-port", "-1", "--http-token", "m0n-t0ken", NULL});
  /* Open pages: no token needed, a wrong one does not matter. */
  cr_assert_eq(get("/healthz", NULL), 200);
  cr_assert_eq(get("/metrics", NULL), 200);
  cr_assert_eq(get("/metrics", "Bearer wrong"), 200);
  for (size_t i = 0; i < NPROTECTED; i++) {
    const char *p = protected_pages[i];
    cr_assert_eq(get(p, NULL), 401, "%s without a token", p);
    cr_assert_eq(get(p, "Bearer wrong"), 401, "%s, wrong token", p);
    cr_assert_eq(get(p, "Bearer m0n-t0ke"), 401, "%s, a prefix", p);
    cr_assert_eq(get(p, "Bearer m0n-t0ken2"), 401, "%s, longer", p);
    cr_assert_eq(get(p, "Basic bTow"), 401, "%s, basic m0", p);
    cr_assert_eq(get(p, "m0n-t0ken"), 401, "%s, no scheme", p);
    cr_assert_eq(get(p, "Bearer m0n-t0ken"), 200, "%s, the token", p);
    cr_assert_eq(get(p, "bearer   m0n-t0ken "), 200, "%s, spaces", p);
    /* Basic, any user: "ops:m0n-t0ken". */
    cr_assert_eq(get(p, "Basic b3BzOm0wbi10MGtlbg=="), 200, "%s, basic", p);
  }
  /* Queries do not get around it. */
  cr_assert_eq(get("/connz?limit=1", NULL), 401);
  /* The 401 says how to authenticate. */
  char head[2048];
  head_of("/connz", head, sizeof head);
  expect_in(head, "HTTP/1.1 401 Unauthorized\r\n");
  expect_in(head, "WWW-Authenticate: Bearer realm=\"ternd\"\r\n");
  expect_in(head, "WWW-Authenticate: Basic realm=\"ternd\"\r\n");
  /* Two Authorization headers: neither is believed. */
  static char body[4096];
  cr_assert_eq(ops_http_get_with(tt_g_broker.http_port, "/varz",
                                 "Authorization: Bearer m0n-t0ken\r\n"
                                 "Authorization: Bearer m0n-t0ken\r\n",
                                 body, sizeof body),
               401);
  tt_fixture_stop();
}

Test(ops_secure, monitoring_open_paths_are_configurable) {
  tt_broker_start(&tt_g_broker,
                  (const char *[]){"--http-port", "-1", "--http-token", "tk",
                                   "--http-open-paths", "/healthz, /connz",
                                   NULL});
  cr_assert_eq(get("/healthz", NULL), 200);
  cr_assert_eq(get("/connz", NULL), 200);
  cr_assert_eq(get("/metrics", NULL), 401);
  cr_assert_eq(get("/metrics", "Bearer tk"), 200);
  cr_assert_eq(get("/subz", NULL), 401);
  tt_fixture_stop();
  /* Nothing open: even /healthz asks. */
  tt_broker_start(&tt_g_broker,
                  (const char *[]){"--http-port", "-1", "--http-token", "tk",
                                   "--http-open-paths", "", NULL});
  cr_assert_eq(get("/healthz", NULL), 401);
  cr_assert_eq(get("/healthz", "Bearer tk"), 200);
  tt_fixture_stop();
  /* An unknown page in the list is a configuration error. */
  ops_run_t r;
  ops_run_ternd(&r,
                (const char *[]){"--http-open-paths", "/healthz,/secret",
                                 "--check-config", "", NULL},
                NULL, NULL);
  cr_assert_eq(r.status, 2, "%s", r.out);
  expect_in(r.err, "invalid value for http_open_paths");
  /* The token is a secret: --check-config says only that it is set. */
  ops_run_ternd(
      &r,
      (const char *[]){"--http-token", "hush-hush", "--check-config", "", NULL},
      NULL, NULL);
  cr_assert_eq(r.status, 0, "%s", r.err);
  expect_in(r.out, "\nhttp_token = (set)\n");
  cr_assert_null(strstr(r.out, "hush-hush"));
}

Test(ops_secure, monitoring_without_token_off_loopback_is_forbidden) {
  /* Clients on loopback, monitoring on every address, no token. */
  tt_broker_start(
      &tt_g_broker,
      (const char *[]){"--http-port", "-1", "--http-host", "0.0.0.0", NULL});
  cr_assert_eq(get("/healthz", NULL), 200);
  cr_assert_eq(get("/metrics", NULL), 200);
  for (size_t i = 0; i < NPROTECTED; i++)
    cr_assert_eq(get(protected_pages[i], NULL), 403, "%s", protected_pages[i]);
  tt_fixture_stop();
  /* allow_anonymous opens them; on loopback they are open already. */
  tt_broker_start(&tt_g_broker,
                  (const char *[]){"--http-port", "-1", "--http-host",
                                   "0.0.0.0", "--allow-anonymous", NULL});
  for (size_t i = 0; i < NPROTECTED; i++)
    cr_assert_eq(get(protected_pages[i], NULL), 200, "%s", protected_pages[i]);
  tt_fixture_stop();
  tt_broker_start(&tt_g_broker, (const char *[]){"--http-port", "-1", NULL});
  for (size_t i = 0; i < NPROTECTED; i++)
    cr_assert_eq(get(protected_pages[i], NULL), 200, "%s", protected_pages[i]);
  tt_fixture_stop();
}

Test(ops_secure, monitoring_token_follows_a_reload) {
  char path[64];
  ops_write_file(path, "http_token = one\n");
  tt_broker_start(&tt_g_broker, (const char *[]){"--http-port", "-1",
                                                 "--config", path, NULL});
  tt_raw_t w;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_sub(&w, 1, "$SYS.server.reload", NULL);
  tt_raw_barrier_strict(&w);
  cr_assert_eq(get("/varz", "Bearer one"), 200);
  ops_write_over(path, "http_token = two\n");
  kill(tt_g_broker.pid, SIGHUP);
  cr_assert(ops_wait_reload(&w, 1));
  cr_assert_eq(get("/varz", "Bearer one"), 401);
  cr_assert_eq(get("/varz", "Bearer two"), 200);
  tt_raw_close(&w);
  tt_fixture_stop();
  unlink(path);
}

/* ---- HTTPS on the monitoring port --------------------------------------- */
/*
 * GET path over HTTPS with `openssl s_client`, which checks the chain
 * against the test CA and the name "localhost" (exit status and all, a
 * failure leaves no status line). The status code, or 0 without one; the
 * whole answer in out.
 */
static int https_get(int port, const char *path, const char *authz, char *out,
                     size_t cap) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "printf 'GET %s HTTP/1.1\\r\\nHost: localhost\\r\\n%s%s%s\\r\\n' | "
           "openssl s_client -connect 127.0.0.1:%d -servername localhost "
           "-verify_hostname localhost -CAfile %s/ca.pem "
           "-verify_return_error -quiet 2>/dev/null",
           path, authz ? "Authorization: " : "", authz ? authz : "",
           authz ? "\\r\\n" : "", port, certs);
  FILE *fp = popen(cmd, "r");
  cr_assert_not_null(fp);
  size_t n = fread(out, 1, cap - 1, fp);
  out[n] = '\0';
  pclose(fp);
  int code = 0;
  if (sscanf(out, "HTTP/1.1 %d", &code) != 1)
    return 0;
  return code;
}

/* The subject of the certificate the port shows. */
static void served_subject(int port, char *out, size_t cap) {
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "openssl s_client -connect 127.0.0.1:%d -servername localhost "
           "</dev/null 2>/dev/null | openssl x509 -noout -subject",
           port);
  FILE *fp = popen(cmd, "r");
  cr_assert_not_null(fp);
  size_t n = fread(out, 1, cap - 1, fp);
  out[n] = '\0';
  pclose(fp);
}

Test(ops_secure, monitoring_over_https_with_the_client_ports_certificate) {
  make_certs();
  tt_broker_start(&tt_g_broker,
                  (const char *[]){"--http-port", "-1", "--http-token", "tk",
                                   "--tls-cert", cert_path("server.pem"),
                                   "--tls-key", cert_path("server.key"), NULL});
  int port = tt_g_broker.http_port;
  static char out[1 << 16];
  cr_assert_eq(https_get(port, "/healthz", NULL, out, sizeof out), 200, "%s",
               out);
  expect_in(out, "\r\n\r\nok\n");
  cr_assert_eq(https_get(port, "/metrics", NULL, out, sizeof out), 200);
  expect_in(out, "tern_connections ");
  /* The token rules hold over HTTPS as over HTTP. */
  cr_assert_eq(https_get(port, "/connz", NULL, out, sizeof out), 401);
  cr_assert_eq(https_get(port, "/connz", "Bearer nope", out, sizeof out), 401);
  cr_assert_eq(https_get(port, "/connz", "Bearer tk", out, sizeof out), 200);
  expect_in(out, "\"connections\":[");
  /* A chunked page, longer than one TLS record. */
  cr_assert_eq(https_get(port, "/subz?limit=10", "Bearer tk", out, sizeof out),
               200);
  /* Plain HTTP still answers on the same port. */
  cr_assert_eq(get("/healthz", NULL), 200);
  cr_assert_eq(get("/varz", "Bearer tk"), 200);
  /* A ClientHello that is garbage after its first byte: closed, and the
   * port goes on serving. */
  int fd = tt_connect(port);
  tt_send_all(fd, "\x16\x03\x01\x00\x05hello", 10);
  char junk[64];
  while (read(fd, junk, sizeof junk) > 0)
    ;
  close(fd);
  cr_assert_eq(https_get(port, "/healthz", NULL, out, sizeof out), 200);
  tt_fixture_stop();
  drop_certs();
}

Test(ops_secure, monitoring_https_required_and_reloaded) {
  make_certs();
  char path[64], text[512];
  snprintf(text, sizeof text,
           "tls_cert = %s/server.pem\ntls_key = %s/server.key\n"
           "http_tls_required = true\n",
           certs, certs);
  ops_write_file(path, text);
  tt_broker_start(&tt_g_broker, (const char *[]){"--http-port", "-1",
                                                 "--config", path, NULL});
  int port = tt_g_broker.http_port;
  static char out[1 << 16];
  cr_assert_eq(get("/healthz", NULL), 400, "plain HTTP was served");
  cr_assert_eq(https_get(port, "/healthz", NULL, out, sizeof out), 200);
  char subject[512];
  served_subject(port, subject, sizeof subject);
  expect_in(subject, "O = tern-test,");
  /* SIGHUP with another certificate: new connections get it. */
  tt_raw_t w;
  tt_raw_open(&w, tt_g_broker.port, true, true, false);
  tt_raw_sub(&w, 1, "$SYS.server.reload", NULL);
  tt_raw_barrier_strict(&w);
  snprintf(text, sizeof text,
           "tls_cert = %s/server2.pem\ntls_key = %s/server2.key\n"
           "http_tls_required = true\n",
           certs, certs);
  ops_write_over(path, text);
  kill(tt_g_broker.pid, SIGHUP);
  cr_assert(ops_wait_reload(&w, 1));
  served_subject(port, subject, sizeof subject);
  expect_in(subject, "O = tern-test-2");
  cr_assert_eq(https_get(port, "/healthz", NULL, out, sizeof out), 200);
  tt_raw_close(&w);
  tt_fixture_stop();
  unlink(path);
  drop_certs();
}
