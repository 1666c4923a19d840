/*
 * Fixture of the permission tests: a ternd whose users have argon2id
 * hashes of libsodium's minimum cost (the broker verifies any argon2id
 * string, and tests need not spend 64 MiB per login):
 *  - carol may publish and subscribe orders.> only (so not even a request
 *    inbox);
 *  - dave may publish orders.> and subscribe orders.> and _INBOX.>.
 */
#ifndef TERN_TESTS_CLIENT_PERMS_FIXTURE_H
#define TERN_TESTS_CLIENT_PERMS_FIXTURE_H

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

static char perms_conf[64];

static void perms_up(void) {
  char hc[crypto_pwhash_STRBYTES], hd[crypto_pwhash_STRBYTES];
  char text[1024];
  int fd;
  cr_assert_geq(sodium_init(), 0);
  cr_assert_eq(crypto_pwhash_str(hc, "pc", 2, crypto_pwhash_OPSLIMIT_MIN,
                                 crypto_pwhash_MEMLIMIT_MIN),
               0);
  cr_assert_eq(crypto_pwhash_str(hd, "pd", 2, crypto_pwhash_OPSLIMIT_MIN,
                                 crypto_pwhash_MEMLIMIT_MIN),
               0);
  snprintf(text, sizeof(text),
           "[user carol]\npassword = %s\npublish = orders.>\n"
           "subscribe = orders.>\n\n[user dave]\npassword = %s\n"
           "publish = orders.>\nsubscribe = orders.>, _INBOX.>\n",
           hc, hd);
  snprintf(perms_conf, sizeof(perms_conf), "/tmp/tern-perms-XXXXXX");
  fd = mkstemp(perms_conf);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  tt_broker_start(&broker, (const char *[]){"--config", perms_conf, NULL});
}

static inline void perms_unused(void) {
  (void)broker_up; /* the suites here start their broker with users */
}

static void perms_down(void) {
  broker_down();
  unlink(perms_conf);
}

/* Options for user (password "p" + its first letter). */
static inline tern_options_t perms_opts(const char *user) {
  static char pass[3];
  tern_options_t o = test_opts();
  pass[0] = 'p';
  pass[1] = user[0];
  o.user = user;
  o.pass = pass;
  return o;
}

#endif
