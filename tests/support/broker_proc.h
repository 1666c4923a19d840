/*
 * Test harness: runs a real ternd as a child process on an ephemeral port.
 *
 * tt_broker_start forks build/bin/ternd with --port 0 --ready-fd N
 * --http-port 0 plus any extra arguments; ternd writes the port it bound to
 * fd N as "PORT\n" once it listens ("PORT HTTPPORT\n" when the extra
 * arguments turn monitoring on, e.g. --http-port -1 for an ephemeral port),
 * so no test polls or sleeps to wait for it.
 */
#ifndef TERN_TESTS_BROKER_PROC_H
#define TERN_TESTS_BROKER_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct tt_broker {
  pid_t pid;
  int port;
  int http_port; /* monitoring port, 0 when off (the default) */
  /* TLS mode (TERN_TEST_TLS=DIR of scripts/make-certs.sh certificates):
   * ternd speaks TLS only (--tls-required) on ternd_port and port is a
   * plaintext-to-TLS proxy's (tern_test_tls_proxy, pid proxy_pid), so the
   * raw-frame tests run unchanged over the broker's TLS transport. */
  int ternd_port;
  pid_t proxy_pid;
} tt_broker_t;

/* extra: NULL-terminated list of extra ternd arguments, or NULL.
 * 0 on success; on failure the test is failed with cr_assert. */
int tt_broker_start(tt_broker_t *b, const char *const *extra);
/* tt_broker_start with ternd run under a wrapper command: wrapper is a
 * NULL-terminated argv whose first element is an absolute path (e.g.
 * {"/usr/bin/valgrind", "--error-exitcode=99", NULL}); ternd's own path
 * and arguments follow it. wrapper NULL: plain tt_broker_start. */
int tt_broker_start_wrapped(tt_broker_t *b, const char *const *wrapper,
                            const char *const *extra);
/* SIGTERM, wait; returns ternd's exit status (0 = clean), or -1 if it was
 * killed by a signal. */
int tt_broker_stop(tt_broker_t *b);
/* SIGKILL, wait. */
void tt_broker_kill(tt_broker_t *b);

/* A blocking TCP socket connected to 127.0.0.1:port (cr_assert on failure). */
int tt_connect(int port);
/* Writes all bytes (cr_assert on failure). */
void tt_send_all(int fd, const void *buf, size_t len);

/* Additions beyond the agreed interface. */

/* The broker of the current Criterion test, for .init/.fini fixtures. */
extern tt_broker_t tt_g_broker;
/* .init helper: starts tt_g_broker with the extra arguments. */
void tt_fixture_start(const char *const *extra);
/* .fini helper: stops tt_g_broker (if still running) and asserts that
 * ternd exited with status 0. */
void tt_fixture_stop(void);
/* Waits (bounded) for ternd to exit without signalling it, e.g. after the
 * test sent SIGTERM itself. Exit status as tt_broker_stop. */
int tt_broker_wait(tt_broker_t *b);
/* True while the child has not exited (does not reap a live child). */
bool tt_broker_alive(const tt_broker_t *b);
/* DIR/name in the test certificates (TERN_TEST_CERTS, made by the
 * tls_certs fixture); cr_assert when the variable is not set. One of 8
 * rotating static buffers. */
const char *tt_cert_path(const char *name);
/* The TLS certificate directory of TLS mode, or NULL (plaintext). */
const char *tt_tls_dir(void);
/* ternd's path: $TERND if set, else the build tree's ternd. */
const char *tt_ternd_path(void);
/* The test process ignores SIGPIPE; a broker that closes is seen as EPIPE. */
void tt_ignore_sigpipe(void);
/* tt_connect with SO_RCVBUF set before connect (rcvbuf <= 0: default). */
int tt_connect_opts(int port, int rcvbuf);
/* Sends all bytes within timeout_ms: 0, or -errno (-ETIMEDOUT, -EPIPE,
 * -ECONNRESET...). For tests where the peer may close first. */
int tt_send_try(int fd, const void *buf, size_t len, int timeout_ms);
/* Monotonic clock in milliseconds, for receive deadlines. */
int64_t tt_now_ms(void);

/* tt_broker_start on a given port (e.g. the port of a broker that was
 * killed, so clients reconnect to the same address); extra as for
 * tt_broker_start. The listener uses SO_REUSEADDR (libuv's default), so the
 * old connections' TIME_WAIT does not block the bind. */
int tt_broker_start_on(tt_broker_t *b, int port, const char *const *extra);

/* How the child is started, beyond its arguments. */
typedef struct tt_broker_opts {
  int stderr_fd; /* >= 0: ternd's stderr (e.g. a file to read its log) */
  long nofile;   /* > 0: RLIMIT_NOFILE (soft and hard) set before exec */
} tt_broker_opts_t;
/* tt_broker_start with these options (o may be NULL). */
int tt_broker_start_opts(tt_broker_t *b, const tt_broker_opts_t *o,
                         const char *const *extra);

/* Defines name_init / name_fini for a Criterion TestSuite whose tests all
 * run against one broker started with the given extra arguments (at least
 * one). Use TT_BROKER_FIXTURE_DEFAULT for a broker without extra flags. */
#define TT_BROKER_FIXTURE(name, ...)                                           \
  static void name##_init(void) {                                              \
    static const char *const args[] = {__VA_ARGS__, NULL};                     \
    tt_fixture_start(args);                                                    \
  }                                                                            \
  static void name##_fini(void) {                                              \
    tt_fixture_stop();                                                         \
  }
#define TT_BROKER_FIXTURE_DEFAULT(name)                                        \
  static void name##_init(void) {                                              \
    tt_fixture_start(NULL);                                                    \
  }                                                                            \
  static void name##_fini(void) {                                              \
    tt_fixture_stop();                                                         \
  }

#endif
