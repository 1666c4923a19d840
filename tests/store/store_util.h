/* Helpers for the stream store's tests: a temporary directory per test, an
 * env, records by number. */
#ifndef TERN_TEST_STORE_UTIL_H
#define TERN_TEST_STORE_UTIL_H

#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "store/store.h"

static char g_dir[256];
static store_env_t *g_env;

static inline void su_setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/tern-store.XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
  cr_assert_eq(store_env_new(&g_env), 0);
}

static inline void su_teardown(void) {
  store_env_free(g_env);
  g_env = NULL;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  cr_assert_eq(system(cmd), 0);
}

/* The log's directory inside the test's. */
static inline const char *su_log_dir(void) {
  static char d[300];
  snprintf(d, sizeof d, "%s/log", g_dir);
  return d;
}

static inline store_t *su_open(const store_config_t *cfg,
                               store_recovery_t *rec) {
  store_config_t def;
  if (!cfg) {
    store_config_init(&def);
    cfg = &def;
  }
  store_t *st = NULL;
  int rc = store_open(g_env, su_log_dir(), cfg, &st, rec);
  cr_assert_eq(rc, 0, "store_open: %s", ternd_strerror(rc));
  return st;
}

/* Appends message i: topic "t.<i % topics>", payload "m<i>" padded to len. */
static inline uint64_t su_put(store_t *st, unsigned i, unsigned topics,
                              size_t len) {
  char topic[32], data[4096];
  int tl = snprintf(topic, sizeof topic, "t.%u", topics ? i % topics : i);
  memset(data, 'x', sizeof data);
  int dl = snprintf(data, sizeof data, "m%u", i);
  data[dl] = 'x';
  if (len < (size_t)dl)
    len = (size_t)dl;
  store_rec_t r = {.topic = topic,
                   .topic_len = (uint32_t)tl,
                   .data = data,
                   .len = (uint32_t)len};
  uint64_t seq = 0;
  int rc = store_append(st, &r, &seq);
  cr_assert_eq(rc, 0, "append %u: %s", i, ternd_strerror(rc));
  return seq;
}

/* True when msg holds message i (as su_put wrote it). */
static inline bool su_is(const store_msg_t *m, unsigned i) {
  char want[32];
  int n = snprintf(want, sizeof want, "m%u", i);
  return m->len >= (uint32_t)n && memcmp(m->data, want, (size_t)n) == 0 &&
         (m->len == (uint32_t)n || m->data[n] == 'x');
}

#endif
