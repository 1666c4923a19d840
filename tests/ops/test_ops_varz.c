/*
 * /varz shows every configured limit: besides the per-subscription and
 * per-connection ones, max_pending_total (as in effect), max_topic,
 * max_frame, the retained store's caps and the timeouts.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "ops_util.h"

TestSuite(ops_varz, .timeout = 60);

/* The number after "key": in a flat JSON document, or -1 if absent. */
static long long field(const char *body, const char *key) {
  char pat[64];
  const char *p;
  snprintf(pat, sizeof pat, "\"%s\":", key);
  p = strstr(body, pat);
  return p != NULL ? atoll(p + strlen(pat)) : -1;
}

Test(ops_varz, shows_every_limit) {
  char body[8192];
  tt_broker_start(
      &tt_g_broker,
      (const char *[]){"--http-port", "-1", "--max-pending-total", "123456789",
                       "--max-topic", "200", "--max-retained-topics", "77",
                       "--max-retained-bytes", "88888", "--connect-timeout-ms",
                       "4321", "--drain-timeout-ms", "1234", "--max-payload",
                       "65536", NULL});
  cr_assert_eq(ops_http_get(tt_g_broker.http_port, "/varz", body, sizeof body),
               200);
  cr_expect_eq(field(body, "max_pending_total"), 123456789, "%s", body);
  cr_expect_eq(field(body, "max_topic"), 200, "%s", body);
  cr_expect_eq(field(body, "max_retained_topics"), 77, "%s", body);
  cr_expect_eq(field(body, "max_retained_bytes"), 88888, "%s", body);
  cr_expect_eq(field(body, "connect_timeout_ms"), 4321, "%s", body);
  cr_expect_eq(field(body, "drain_timeout_ms"), 1234, "%s", body);
  cr_expect_eq(field(body, "max_frame"), 65536 + 65536, "%s", body);
  cr_expect_eq(field(body, "max_payload"), 65536, "%s", body);
  tt_fixture_stop();
}

Test(ops_varz, max_pending_total_default_is_the_value_in_effect) {
  char body[8192];
  tt_broker_start(&tt_g_broker, (const char *[]){"--http-port", "-1", NULL});
  cr_assert_eq(ops_http_get(tt_g_broker.http_port, "/varz", body, sizeof body),
               200);
  cr_expect_gt(field(body, "max_pending_total"), 0, "%s", body);
  tt_fixture_stop();
}
