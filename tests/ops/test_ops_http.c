/*
 * Monitoring over HTTP against a real ternd: /healthz (and 503 while
 * draining), /metrics checked line by line against the Prometheus text
 * exposition format (and by promtool when it is installed), /varz, /connz
 * and /subz.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_proc.h"
#include "ops_util.h"
#include "raw_client.h"

TT_BROKER_FIXTURE(mon, "--http-port", "-1")

TestSuite(ops_http, .timeout = 60);

static char body[1 << 20];

Test(ops_http, healthz_and_unknown_paths, .init = mon_init, .fini = mon_fini) {
  cr_assert_gt(tt_g_broker.http_port, 0, "no monitoring port reported");
  cr_assert_eq(
      ops_http_get(tt_g_broker.http_port, "/healthz", body, sizeof body), 200);
  cr_assert_str_eq(body, "ok\n");
  cr_assert_eq(ops_http_get(tt_g_broker.http_port, "/nope", body, sizeof body),
               404);
}

/* A metric name: [a-zA-Z_:][a-zA-Z0-9_:]* ; returns its length. */
static size_t name_len(const char *s) {
  size_t n = 0;
  if (!(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
    return 0;
  while (isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == ':')
    n++;
  return n;
}

/*
 * Checks the exposition format: HELP/TYPE comments, then samples
 * "name{label="value",...} number" of a declared family. Returns the
 * number of samples.
 */
static int check_exposition(char *text) {
  char family[128] = "";
  int samples = 0;
  for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
    if (strncmp(l, "# HELP ", 7) == 0) {
      size_t n = name_len(l + 7);
      cr_assert_gt(n, 0, "bad HELP: %s", l);
      cr_assert_eq(l[7 + n], ' ', "bad HELP: %s", l);
      continue;
    }
    if (strncmp(l, "# TYPE ", 7) == 0) {
      size_t n = name_len(l + 7);
      cr_assert_gt(n, 0, "bad TYPE: %s", l);
      const char *type = l + 7 + n + 1;
      cr_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0,
                "bad TYPE: %s", l);
      snprintf(family, sizeof family, "%.*s", (int)n, l + 7);
      continue;
    }
    cr_assert_neq(l[0], '#', "unknown comment: %s", l);
    size_t n = name_len(l);
    cr_assert_gt(n, 0, "bad sample: %s", l);
    cr_assert(strlen(family) == n && strncmp(l, family, n) == 0,
              "sample %s outside its family (%s)", l, family);
    const char *p = l + n;
    if (*p == '{') {
      p++;
      while (*p != '}') {
        size_t k = name_len(p);
        cr_assert_gt(k, 0, "bad label: %s", l);
        p += k;
        cr_assert(p[0] == '=' && p[1] == '"', "bad label: %s", l);
        p += 2;
        while (*p && *p != '"')
          p += *p == '\\' ? 2 : 1;
        cr_assert_eq(*p, '"', "unterminated label: %s", l);
        p++;
        if (*p == ',')
          p++;
      }
      p++;
    }
    cr_assert_eq(*p, ' ', "no value: %s", l);
    char *end = NULL;
    strtod(p + 1, &end);
    cr_assert(end != p + 1 && *end == '\0', "bad value: %s", l);
    samples++;
  }
  return samples;
}

/* The value of an unlabelled sample. */
static double sample(const char *text, const char *name) {
  char key[128];
  snprintf(key, sizeof key, "\n%s ", name);
  const char *p = strstr(text, key);
  cr_assert_not_null(p, "no sample %s", name);
  return strtod(p + strlen(key), NULL);
}

Test(ops_http, metrics_follow_the_exposition_format, .init = mon_init,
     .fini = mon_fini) {
  tt_raw_t a;
  tt_raw_open(&a, tt_g_broker.port, true, true, false);
  tt_raw_sub(&a, 1, "m.>", NULL);
  tt_raw_sub(&a, 2, "m.x", NULL);
  tt_raw_pub(&a, "m.x", "hello", 5);
  /* One MSG per subscription, in no promised order. */
  unsigned seen = 0;
  for (int i = 0; i < 2; i++) {
    tp_frame_t m;
    tt_raw_expect(&a, &m, TP_MSG, TT_RECV_MS);
    seen |= 1u << m.u.msg.sid;
  }
  cr_assert_eq(seen, 6u);
  tt_raw_barrier_strict(&a);

  cr_assert_eq(
      ops_http_get(tt_g_broker.http_port, "/metrics", body, sizeof body), 200);
  static char copy[(1 << 20) + 2];
  snprintf(copy, sizeof copy, "\n%s", body);
  cr_assert_eq(sample(copy, "tern_connections"), 1.0);
  cr_assert_eq(sample(copy, "tern_subscriptions"), 2.0);
  cr_assert_eq(sample(copy, "tern_messages_in_total"), 1.0);
  cr_assert_eq(sample(copy, "tern_messages_out_total"), 2.0);
  cr_assert_eq(sample(copy, "tern_bytes_in_total"), 5.0);
  cr_assert_eq(sample(copy, "tern_fanout_ratio"), 2.0);
  cr_assert_not_null(
      strstr(copy, "\ntern_dropped_messages_total{policy=\"drop_oldest\"} 0"));
  cr_assert_geq(check_exposition(body), 20);

  /* promtool, when installed, is the reference parser. */
  const char *promtool = getenv("PROMTOOL");
  if (promtool == NULL || access(promtool, X_OK) != 0)
    promtool =
        access("/usr/bin/promtool", X_OK) == 0 ? "/usr/bin/promtool" : NULL;
  if (promtool != NULL) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s check metrics >/dev/null 2>&1", promtool);
    FILE *p = popen(cmd, "w");
    cr_assert_not_null(p);
    fputs(copy + 1, p);
    int rc = pclose(p);
    cr_assert_eq(rc, 0, "promtool check metrics failed (%d)", rc);
  }
  tt_raw_close(&a);
}

/* Retained messages are visible in /metrics: topics and bytes held. */
Test(ops_http, metrics_count_retained_messages, .init = mon_init,
     .fini = mon_fini) {
  tt_raw_t a;
  tp_frame_t f;
  tt_raw_open(&a, tt_g_broker.port, true, true, false);
  const char *topics[] = {"cfg.a", "cfg.b"};
  for (int i = 0; i < 2; i++) {
    tp_frame_init(&f, TP_PUB);
    f.u.pub.topic = (tp_str_t){topics[i], 5};
    f.u.pub.payload = (tp_bytes_t){(const uint8_t *)"value", 5};
    f.u.pub.retain = true;
    tt_raw_send(&a, &f);
  }
  tt_raw_barrier_strict(&a);
  cr_assert_eq(
      ops_http_get(tt_g_broker.http_port, "/metrics", body, sizeof body), 200);
  static char copy[(1 << 20) + 2];
  snprintf(copy, sizeof copy, "\n%s", body);
  cr_assert_eq(sample(copy, "tern_retained_topics"), 2.0);
  /* At least the two payloads; the broker counts its stored encoding. */
  cr_assert_geq(sample(copy, "tern_retained_bytes"), 10.0);
  cr_assert_eq(sample(copy, "tern_retained_expired_total"), 0.0);
  tt_raw_close(&a);
}

Test(ops_http, varz_connz_subz, .init = mon_init, .fini = mon_fini) {
  tt_raw_t a;
  tt_raw_attach(&a, tt_connect(tt_g_broker.port));
  tp_frame_t f;
  tt_raw_expect(&a, &f, TP_HELLO, TT_RECV_MS);
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = 1;
  f.u.connect.name = tt_str("watcher");
  tt_raw_send(&a, &f);
  tt_raw_expect(&a, &f, TP_OK, TT_RECV_MS);
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = 7;
  f.u.sub.pattern = tt_str("orders.*");
  f.u.sub.overflow = TP_OVERFLOW_DROP_OLDEST;
  tt_raw_send(&a, &f);
  tt_raw_barrier_strict(&a);

  cr_assert_eq(ops_http_get(tt_g_broker.http_port, "/varz", body, sizeof body),
               200);
  cr_assert_not_null(strstr(body, "\"connections\":1,"), "%s", body);
  cr_assert_not_null(strstr(body, "\"draining\":false"), "%s", body);
  cr_assert_eq(ops_http_get(tt_g_broker.http_port, "/connz", body, sizeof body),
               200);
  cr_assert_not_null(strstr(body, "\"name\":\"watcher\""), "%s", body);
  cr_assert_not_null(strstr(body, "\"blocked\":false"), "%s", body);
  cr_assert_not_null(strstr(body, "\"pending_bytes\":"), "%s", body);
  cr_assert_eq(ops_http_get(tt_g_broker.http_port, "/subz", body, sizeof body),
               200);
  cr_assert_not_null(strstr(body, "\"sid\":7,\"pattern\":\"orders.*\""), "%s",
                     body);
  cr_assert_not_null(strstr(body, "\"policy\":\"drop_oldest\""), "%s", body);
  tt_raw_close(&a);
}

Test(ops_http, healthz_is_503_while_draining) {
  tt_broker_start(&tt_g_broker,
                  (const char *[]){"--http-port", "-1", "--drain-timeout-ms",
                                   "60000", NULL});
  /* A subscriber that never reads keeps the drain going. */
  tt_raw_t slow, pub, idle;
  tt_raw_open_ex(&slow, tt_g_broker.port, 4096, true, true, false);
  tt_raw_sub(&slow, 1, "bulk", NULL);
  tt_raw_barrier(&slow);
  tt_raw_open(&pub, tt_g_broker.port, true, true, false);
  static char payload[64 * 1024];
  for (int i = 0; i < 64; i++)
    tt_raw_pub(&pub, "bulk", payload, sizeof payload);
  tt_raw_barrier(&pub);
  tt_raw_open(&idle, tt_g_broker.port, true, true, false);

  kill(tt_g_broker.pid, SIGTERM);
  /* GOAWAY proves the shutdown has begun. */
  tp_frame_t f;
  tt_raw_expect(&idle, &f, TP_GOAWAY, TT_RECV_MS);
  cr_assert_eq(
      ops_http_get(tt_g_broker.http_port, "/healthz", body, sizeof body), 503);
  cr_assert_str_eq(body, "draining\n");
  tt_raw_close(&slow); /* the drain can end */
  tt_raw_close(&pub);
  tt_raw_close(&idle);
  cr_assert_eq(tt_broker_wait(&tt_g_broker), 0);
}
