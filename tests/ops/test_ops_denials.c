/*
 * Permission denials as an operator sees them: each refused PUB and SUB is
 * counted in /metrics by operation, logged with what was refused, at most
 * one line per connection per second (the others counted in a later line,
 * or when the connection closes), and the ERR 3 message names the frame.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_proc.h"
#include "ops_util.h"
#include "raw_client.h"

#define PUBS 200
#define SUBS 50

TestSuite(ops_denials, .timeout = 60);

/* erin: publish and subscribe orders.> only. */
static void write_conf(char *path) {
  char hash[crypto_pwhash_STRBYTES];
  char text[512];
  cr_assert_geq(sodium_init(), 0);
  cr_assert_eq(crypto_pwhash_str(hash, "pw", 2, crypto_pwhash_OPSLIMIT_MIN,
                                 crypto_pwhash_MEMLIMIT_MIN),
               0);
  snprintf(text, sizeof text,
           "[user erin]\npassword = %s\npublish = orders.>\n"
           "subscribe = orders.>\n",
           hash);
  ops_write_file(path, text);
}

/* The value of the sample line that starts with name (e.g.
 * 'tern_x{op="pub"} '), or -1. */
static long long sample(const char *body, const char *name) {
  const char *p = body;
  size_t n = strlen(name);
  while ((p = strstr(p, name)) != NULL) {
    if (p == body || p[-1] == '\n') {
      return atoll(p + n);
    }
    p += n;
  }
  return -1;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  char *buf;
  size_t n;
  cr_assert_not_null(f, "%s", path);
  buf = calloc(1, 1 << 20);
  cr_assert_not_null(buf);
  n = fread(buf, 1, (1 << 20) - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

Test(ops_denials, counted_by_operation_logged_rate_limited_err_names_topic) {
  char conf[64], logpath[64], cmd[128], body[16384];
  tt_broker_t b;
  tt_raw_t c;
  tp_frame_t f;
  long long more = 0, lines = 0, denied = 0;
  write_conf(conf);
  snprintf(logpath, sizeof logpath, "/tmp/tern-denials-XXXXXX");
  close(mkstemp(logpath));
  snprintf(cmd, sizeof cmd, "exec \"$@\" 2>>%s", logpath);
  /* ternd's stderr (its log) into a file, through a shell that execs it. */
  tt_broker_start_wrapped(
      &b, (const char *[]){"/bin/sh", "-c", cmd, "sh", NULL},
      (const char *[]){"--config", conf, "--http-port", "-1", NULL});
  cr_assert_gt(b.http_port, 0);

  ops_login(&c, b.port, "erin", "pw", NULL);
  tt_raw_pub(&c, "other.x", "p", 1);
  cr_assert_eq(tt_raw_recv(&c, &f, TT_RECV_MS), 1);
  cr_assert_eq(f.type, TP_ERR);
  cr_expect_eq(f.u.err.code, 3);
  cr_expect(tt_str_eq(f.u.err.message, "permission denied: publish to "
                                       "'other.x'"),
            "ERR message: %.*s", (int)f.u.err.message.len, f.u.err.message.ptr);
  tt_raw_sub(&c, 1, "other.>", NULL);
  cr_assert_eq(tt_raw_recv(&c, &f, TT_RECV_MS), 1);
  cr_assert_eq(f.type, TP_ERR);
  cr_expect(tt_str_eq(f.u.err.message, "permission denied: subscribe to "
                                       "'other.>'"),
            "ERR message: %.*s", (int)f.u.err.message.len, f.u.err.message.ptr);
  for (int i = 1; i < PUBS; i++) {
    tt_raw_pub(&c, "other.x", "p", 1);
  }
  for (int i = 1; i < SUBS; i++) {
    tt_raw_sub(&c, (uint64_t)(i + 1), "other.>", NULL);
  }
  for (int i = 2; i < PUBS + SUBS; i++) {
    tt_raw_expect_err(&c, 3, TT_RECV_MS);
  }
  tt_raw_barrier_strict(&c);

  cr_assert_eq(ops_http_get(b.http_port, "/metrics", body, sizeof body), 200);
  cr_expect_eq(sample(body, "tern_permission_denials_total{op=\"pub\"} "), PUBS,
               "%s", body);
  cr_expect_eq(sample(body, "tern_permission_denials_total{op=\"sub\"} "), SUBS,
               "%s", body);
  tt_raw_close(&c);
  cr_assert_eq(tt_broker_stop(&b), 0);

  /* Every denial is in the log, as its own line or in a count, and the
   * lines are far fewer than the denials. */
  char *log = read_file(logpath);
  for (char *line = strtok(log, "\n"); line != NULL;
       line = strtok(NULL, "\n")) {
    char *m;
    if (strstr(line, "permission denied: ") != NULL) {
      cr_expect_not_null(strstr(line, "for user erin"), "%s", line);
      denied++;
      lines++;
    } else if ((m = strstr(line, " more permission denial")) != NULL) {
      while (m > line && m[-1] >= '0' && m[-1] <= '9') {
        m--;
      }
      more += atoll(m);
      lines++;
    }
  }
  cr_expect_geq(lines, 2, "the first denial and the count at close");
  cr_expect_lt(lines, (PUBS + SUBS) / 10, "%lld lines", lines);
  cr_expect_eq(denied + more, PUBS + SUBS, "%lld logged + %lld counted", denied,
               more);
  free(log);
  unlink(logpath);
  unlink(conf);
}
