/*
 * systemd readiness notification: with NOTIFY_SOCKET set, ternd sends
 * READY=1 once its listeners are bound, RELOADING=1 then READY=1 around a
 * SIGHUP reload, and STOPPING=1 when the drain starts (sd_notify(3)'s
 * datagram protocol). The test plays systemd: it binds the unix datagram
 * socket itself, by path and by abstract name.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker_proc.h"
#include "ops_util.h"
#include "raw_client.h"

TestSuite(ops_notify, .timeout = 60);

/* A bound failure deadline, not a duration under test. */
#define NOTIFY_WAIT_MS 10000

typedef struct notify_sock {
  int fd;
  char env[sizeof(((struct sockaddr_un *)0)->sun_path) + 16];
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* "" if abstract */
} notify_sock_t;

/* Binds a datagram socket and sets NOTIFY_SOCKET to it (Criterion runs each
 * test in its own process, so the variable stays with this test and the
 * broker it forks). */
static void notify_open(notify_sock_t *n, bool abstract) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  char name[64];
  snprintf(name, sizeof name, "/tmp/tern-notify-%ld", (long)getpid());
  socklen_t len;
  if (abstract) {
    /* Abstract: a leading NUL, spelled '@' in NOTIFY_SOCKET. */
    memcpy(sa.sun_path + 1, name, strlen(name));
    len =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
    n->path[0] = '\0';
    snprintf(n->env, sizeof n->env, "@%s", name);
  } else {
    unlink(name);
    memcpy(sa.sun_path, name, strlen(name) + 1);
    len = (socklen_t)sizeof sa;
    snprintf(n->path, sizeof n->path, "%s", name);
    snprintf(n->env, sizeof n->env, "%s", name);
  }
  n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(n->fd, 0, "socket: %s", strerror(errno));
  cr_assert_eq(bind(n->fd, (struct sockaddr *)&sa, len), 0, "bind: %s",
               strerror(errno));
  cr_assert_eq(setenv("NOTIFY_SOCKET", n->env, 1), 0);
}

static void notify_close(notify_sock_t *n) {
  close(n->fd);
  if (n->path[0] != '\0')
    unlink(n->path);
  unsetenv("NOTIFY_SOCKET");
}

/* The next datagram within the failure deadline, NUL-terminated into buf;
 * false if none came. */
static bool notify_recv(notify_sock_t *n, char *buf, size_t cap,
                        int timeout_ms) {
  struct pollfd p = {.fd = n->fd, .events = POLLIN};
  int r;
  do {
    r = poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r <= 0)
    return false;
  ssize_t got = recv(n->fd, buf, cap - 1, 0);
  cr_assert_geq(got, 0, "recv: %s", strerror(errno));
  buf[got] = '\0';
  return true;
}

/* True if the newline-separated assignments in msg include line. */
static bool has_line(const char *msg, const char *line) {
  size_t len = strlen(line);
  for (const char *p = msg; p != NULL && *p; p = strchr(p, '\n')) {
    if (*p == '\n')
      p++;
    if (strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == '\0'))
      return true;
  }
  return false;
}

/* Waits for a datagram holding line. */
static void expect_state(notify_sock_t *n, const char *line) {
  char msg[512];
  cr_assert(notify_recv(n, msg, sizeof msg, NOTIFY_WAIT_MS),
            "no notification (waiting for %s)", line);
  cr_assert(has_line(msg, line), "expected %s, got '%s'", line, msg);
}

/* READY=1 comes once the broker accepts: a client is served right away. */
static void ready_then_served(notify_sock_t *n) {
  tt_broker_start(&tt_g_broker, (const char *[]){"--http-port", "-1", NULL});
  char msg[512];
  cr_assert(notify_recv(n, msg, sizeof msg, NOTIFY_WAIT_MS),
            "ternd sent nothing to NOTIFY_SOCKET");
  cr_assert(has_line(msg, "READY=1"), "first notification: '%s'", msg);
  cr_expect_not_null(strstr(msg, "STATUS="), "no STATUS in '%s'", msg);
  tt_raw_t c;
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  tt_raw_barrier_strict(&c);
  tt_raw_close(&c);
  char body[64];
  cr_expect_eq(
      ops_http_get(tt_g_broker.http_port, "/healthz", body, sizeof body), 200);
}

Test(ops_notify, ready_reloading_stopping_by_path) {
  notify_sock_t n;
  notify_open(&n, false);
  ready_then_served(&n);

  cr_assert_eq(kill(tt_g_broker.pid, SIGHUP), 0);
  char msg[512];
  cr_assert(notify_recv(&n, msg, sizeof msg, NOTIFY_WAIT_MS),
            "nothing after SIGHUP");
  cr_assert(has_line(msg, "RELOADING=1"), "after SIGHUP: '%s'", msg);
  /* Type=notify-reload (systemd 253+) wants the reload's start time. */
  cr_expect_not_null(strstr(msg, "MONOTONIC_USEC="), "'%s'", msg);
  expect_state(&n, "READY=1");

  cr_assert_eq(kill(tt_g_broker.pid, SIGTERM), 0);
  expect_state(&n, "STOPPING=1");
  cr_expect_eq(tt_broker_wait(&tt_g_broker), 0);
  notify_close(&n);
}

Test(ops_notify, ready_by_abstract_name) {
  notify_sock_t n;
  notify_open(&n, true);
  ready_then_served(&n);
  tt_fixture_stop();
  expect_state(&n, "STOPPING=1");
  notify_close(&n);
}

/* A broker that cannot listen never says READY=1. */
Test(ops_notify, no_ready_when_the_port_is_taken) {
  notify_sock_t n;
  notify_open(&n, false);
  tt_broker_t first;
  tt_broker_start(&first, NULL);
  char port[16];
  snprintf(port, sizeof port, "%d", first.port);
  char msg[512];
  cr_assert(notify_recv(&n, msg, sizeof msg, NOTIFY_WAIT_MS));
  cr_assert(has_line(msg, "READY=1"), "'%s'", msg);

  ops_run_t r;
  ops_run_ternd(&r,
                (const char *[]){"--host", "127.0.0.1", "--port", port,
                                 "--http-port", "0", NULL},
                NULL, NULL);
  cr_assert_eq(r.status, 1, "stderr: %s", r.err);
  /* Everything it sent is queued by now: it has exited. */
  while (notify_recv(&n, msg, sizeof msg, 0))
    cr_expect_not(has_line(msg, "READY=1"), "READY=1 from a broker that "
                                            "could not listen");
  cr_expect_eq(tt_broker_stop(&first), 0);
  notify_close(&n);
}

/* No NOTIFY_SOCKET, or one nobody listens on: ternd runs as usual. */
Test(ops_notify, unreachable_socket_is_harmless) {
  cr_assert_eq(setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1), 0);
  tt_fixture_start((const char *[]){"--sys-interval-ms", "0", NULL});
  tt_raw_t c;
  tt_raw_open(&c, tt_g_broker.port, true, true, false);
  tt_raw_barrier_strict(&c);
  kill(tt_g_broker.pid, SIGHUP);
  tt_raw_barrier_strict(&c);
  tt_raw_close(&c);
  tt_fixture_stop();
}
