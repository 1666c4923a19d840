/*
 * ternd's log against hostile clients: whatever a client names itself, each
 * event stays one line, with control characters escaped (plain) or valid
 * JSON (json), every client-supplied field bounded, and a burst of the same
 * line rate-limited with an exact count of what was left out.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_proc.h"
#include "raw_client.h"

TestSuite(ops_logs, .timeout = 120);

static char log_text[1 << 22];

/* Starts ternd with its stderr in a temporary file; returns that file's
 * descriptor (read it after tt_broker_stop). */
static int start_logged(const char *const *extra) {
  char path[] = "/tmp/tern-log-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  unlink(path);
  tt_broker_opts_t o = {.stderr_fd = fd, .nofile = 0};
  tt_broker_start_opts(&tt_g_broker, &o, extra);
  return fd;
}

/* Stops ternd (it must exit cleanly) and reads its whole log. */
static size_t stop_and_read(int fd) {
  cr_assert_eq(tt_broker_stop(&tt_g_broker), 0);
  size_t used = 0;
  ssize_t k;
  lseek(fd, 0, SEEK_SET);
  while (used < sizeof log_text - 1 &&
         (k = read(fd, log_text + used, sizeof log_text - 1 - used)) > 0)
    used += (size_t)k;
  log_text[used] = '\0';
  close(fd);
  return used;
}

/* CONNECT with this name (len bytes), OK, then close. */
static void connect_named(const char *name, size_t len) {
  tt_raw_t c;
  tt_raw_attach(&c, tt_connect(tt_g_broker.port));
  tp_frame_t f;
  tt_raw_expect(&c, &f, TP_HELLO, TT_RECV_MS);
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = 1;
  f.u.connect.name.ptr = name;
  f.u.connect.name.len = (uint32_t)len;
  tt_raw_send(&c, &f);
  tt_raw_expect(&c, &f, TP_OK, TT_RECV_MS);
  tt_raw_barrier_strict(&c);
  tt_raw_close(&c);
}

/* Lines of the log that contain needle. */
static int count_lines(const char *text, const char *needle) {
  int n = 0;
  for (const char *l = text; *l;) {
    const char *end = strchr(l, '\n');
    size_t len = end ? (size_t)(end - l) : strlen(l);
    const char *hit = strstr(l, needle);
    if (hit != NULL && hit < l + len)
      n++;
    l += len + (end ? 1 : 0);
  }
  return n;
}

Test(ops_logs, forged_line_stays_one_line) {
  int fd = start_logged((const char *[]){"--log-level", "info", NULL});
  static const char name[] =
      "evil\n2026-12-07T00:00:00Z [info] forged\r\x1b[31m"
      "red\x1b[0m\x7f\xc2\x9b";
  connect_named(name, sizeof name - 1);
  stop_and_read(fd);
  /* No line starts with the forged timestamp, and no raw control or
   * invalid byte reaches the log. */
  cr_assert_null(strstr(log_text, "\n2026-12-07T00:00:00Z"), "%s", log_text);
  for (const unsigned char *p = (const unsigned char *)log_text; *p; p++) {
    cr_assert(*p == '\n' || (*p >= 0x20 && *p < 0x7f),
              "raw byte 0x%02x in the log:\n%s", *p, log_text);
  }
  int connected = count_lines(log_text, "connected");
  cr_assert_eq(connected, 1, "%s", log_text);
  cr_assert_not_null(
      strstr(log_text,
             "evil\\n2026-12-07T00:00:00Z [info] forged\\r\\x1b[31mred"),
      "%s", log_text);
  cr_assert_eq(count_lines(log_text, "forged"), 2, /* connected, closed */
               "%s", log_text);
}

Test(ops_logs, json_format_escapes_everything) {
  int fd = start_logged(
      (const char *[]){"--log-level", "info", "--log-format", "json", NULL});
  /* ternd refuses names that are not UTF-8; C0 and C1 controls are. */
  static const char name[] = "j\"\\\n\x1b[1m\xc2\x9bok\xc3\xa9";
  connect_named(name, sizeof name - 1);
  stop_and_read(fd);
  const char *l = strstr(log_text, "connected");
  cr_assert_not_null(l, "%s", log_text);
  /* The name as a JSON string: quote, backslash, newline, ESC and the C1
   * control CSI escaped; other UTF-8 (é) kept. */
  cr_assert_not_null(
      strstr(log_text, "\"name\":\"j\\\"\\\\\\n\\u001b[1m\\u009bok\xc3\xa9\""),
      "%s", log_text);
  for (const unsigned char *p = (const unsigned char *)log_text; *p; p++) {
    cr_assert(*p == '\n' || (*p >= 0x20 && *p != 0x7f),
              "raw control byte in:\n%s", log_text);
    cr_assert(!(p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0),
              "raw C1 control in:\n%s", log_text);
  }
}

Test(ops_logs, long_name_is_bounded) {
  int fd = start_logged((const char *[]){"--log-level", "info", NULL});
  /* Large, but below any sensible pre-CONNECT frame limit. */
  static char name[4000];
  memset(name, 'A', sizeof name);
  connect_named(name, sizeof name);
  stop_and_read(fd);
  cr_assert_eq(count_lines(log_text, "connected"), 1, "%s", log_text);
  for (char *l = strtok(log_text, "\n"); l; l = strtok(NULL, "\n")) {
    cr_assert_leq(strlen(l), 240, "a %zu-byte line: %.300s", strlen(l), l);
    if (strstr(l, "AAAA") != NULL)
      cr_assert_not_null(strstr(l, "..."), "no ellipsis marker: %s", l);
  }
}

Test(ops_logs, burst_of_one_warning_is_rate_limited) {
  enum { REFUSED = 300, RATE = 5 };
  char rate[16];
  snprintf(rate, sizeof rate, "%d", RATE);
  int fd = start_logged((const char *[]){"--max-connections", "1",
                                         "--log-rate-limit", rate, NULL});
  tt_raw_t keep;
  tt_raw_open(&keep, tt_g_broker.port, true, true, false);
  int64_t t0 = tt_now_ms();
  for (int i = 0; i < REFUSED; i++) {
    tt_raw_t c;
    tt_raw_attach(&c, tt_connect(tt_g_broker.port));
    tt_raw_expect_err(&c, 11, TT_RECV_MS);
    tt_raw_close(&c);
  }
  int64_t elapsed = tt_now_ms() - t0;
  tt_raw_barrier_strict(&keep);
  tt_raw_close(&keep);
  stop_and_read(fd);
  /* The suppression notes name the line they stand for: not counted. */
  int printed = count_lines(log_text, "refused: too many connections") -
                count_lines(log_text, "similar lines suppressed");
  /* What was left out is counted: printed + suppressed = every event. */
  long suppressed = 0;
  for (const char *p = log_text; (p = strstr(p, "(")) != NULL; p++) {
    long n;
    int end = 0;
    const char *eol = strchr(p, '\n');
    const char *about = strstr(p, "too many connections");
    if (sscanf(p, "(%ld similar lines suppressed: %n", &n, &end) == 1 &&
        end > 0 && about != NULL && (eol == NULL || about < eol))
      suppressed += n;
  }
  /* At most RATE a second, per window of one second. */
  long bound = (long)RATE * (elapsed / 1000 + 2);
  cr_assert_leq(printed, bound, "%d lines in %lld ms:\n%s", printed,
                (long long)elapsed, log_text);
  cr_assert_eq(printed + suppressed, REFUSED,
               "printed %d + suppressed %ld:\n%s", printed, suppressed,
               log_text);
}
