/*
 * Shared fixture of the libtern integration tests: every test runs against
 * its own ternd, started in .init and stopped (exit status 0 asserted) in
 * .fini.
 */
#ifndef TERN_TESTS_CLIENT_FIXTURE_H
#define TERN_TESTS_CLIENT_FIXTURE_H

#include <criterion/criterion.h>
#include <tern/tern.h>

#include "broker_proc.h"

static tt_broker_t broker;

static void broker_up(void) {
  tt_broker_start(&broker, NULL);
}

static void broker_down(void) {
  cr_assert_eq(tt_broker_stop(&broker), 0, "ternd did not exit cleanly");
}

/* Default options pointing at this test's broker. */
static inline tern_options_t test_opts(void) {
  tern_options_t o;
  tern_options_init(&o);
  o.port = broker.port;
  return o;
}

static inline tern_client_t *test_client(const tern_options_t *o) {
  tern_client_t *cl = NULL;
  tern_options_t d = test_opts();
  int rc = tern_client_connect(&cl, o != NULL ? o : &d);
  cr_assert_eq(rc, 0, "connect: %s", tern_strerror(rc));
  return cl;
}

/*
 * For suites on the async API: the test's own uv loop around the broker.
 * loop_down asserts that the test closed every handle it opened.
 */
#define TT_CLIENT_LOOP_FIXTURE                                                 \
  static uv_loop_t loop;                                                       \
  static void loop_up(void) {                                                  \
    broker_up();                                                               \
    cr_assert_eq(uv_loop_init(&loop), 0);                                      \
  }                                                                            \
  static void loop_down(void) {                                                \
    cr_expect_eq(uv_loop_close(&loop), 0, "a handle was left open");           \
    broker_down();                                                             \
  }

#endif
