/*
 * Test harness: ternd as a child process.
 *
 * The child gets the write end of a pipe as --ready-fd; ternd writes its
 * bound port there once it listens, so the harness never guesses a port and
 * never sleeps. Waiting for the child to exit uses a pidfd, so stop has a
 * real deadline instead of a polling loop.
 */
#include "broker_proc.h"
#include "wire.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TERND_PATH
#define TERND_PATH "ternd"
#endif

/* Generous: a sanitizer build of ternd (or ternd under valgrind) starts
 * and drains slowly. */
#define READY_TIMEOUT_MS 30000
#define STOP_TIMEOUT_MS 30000
#define SEND_TIMEOUT_MS 20000
#define MAX_ARGS 64

tt_broker_t tt_g_broker;

void tt_ignore_sigpipe(void) {
  signal(SIGPIPE, SIG_IGN);
}

const char *tt_ternd_path(void) {
  const char *env = getenv("TERND");
  return env && *env ? env : TERND_PATH;
}

int64_t tt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Remaining milliseconds until deadline, never negative. */
static int remaining_ms(int64_t deadline) {
  int64_t left = deadline - tt_now_ms();
  return left < 0 ? 0 : (int)left;
}

/*
 * Runs in the forked child: only async-signal-safe calls until exec. The
 * child dies with the test process (PDEATHSIG), so a crashed or timed-out
 * test never leaves a broker behind. SIGPIPE goes back to its default so
 * ternd is tested as a shell would start it, not with the test's SIG_IGN.
 */
static void exec_child(int ready_fd, char *const argv[],
                       const tt_broker_opts_t *o) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (o != NULL && o->stderr_fd >= 0)
    dup2(o->stderr_fd, 2);
  if (o != NULL && o->nofile > 0) {
    struct rlimit rl = {.rlim_cur = (rlim_t)o->nofile,
                        .rlim_max = (rlim_t)o->nofile};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      _exit(126);
  }
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* Criterion's own descriptors must not leak into the broker. */
  long maxfd = sysconf(_SC_OPEN_MAX);
  if (maxfd < 0 || maxfd > 65536)
    maxfd = 65536;
  for (int fd = 3; fd < maxfd; fd++) {
    if (fd != ready_fd)
      close(fd);
  }
  execv(argv[0], argv);
  _exit(127);
}

/* Reads "PORT\n" or "PORT HTTPPORT\n" from fd within the deadline. The
 * port, or -1; *http_port gets the second number or 0. */
static int read_port(int fd, int64_t deadline, int *http_port) {
  char buf[32];
  size_t used = 0;
  while (used < sizeof buf - 1) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    ssize_t n = read(fd, buf + used, sizeof buf - 1 - used);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    used += (size_t)n;
    if (memchr(buf, '\n', used))
      break;
  }
  buf[used] = '\0';
  char *end = NULL;
  long port = strtol(buf, &end, 10);
  *http_port = 0;
  if (end != buf && *end == ' ') {
    char *p = end + 1;
    long hp = strtol(p, &end, 10);
    if (end == p || hp <= 0 || hp > 65535)
      return -1;
    *http_port = (int)hp;
  }
  if (end == buf || *end != '\n' || port <= 0 || port > 65535)
    return -1;
  return (int)port;
}

/*
 * Waits for the child within timeout_ms. Returns true and the raw wait
 * status once it has exited; false on timeout (the child still runs).
 */
static bool wait_child(pid_t pid, int timeout_ms, int *status) {
  int pfd = pidfd_open(pid, 0);
  if (pfd >= 0) {
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    int64_t deadline = tt_now_ms() + timeout_ms;
    int r;
    do {
      r = poll(&p, 1, remaining_ms(deadline));
    } while (r < 0 && errno == EINTR);
    close(pfd);
    if (r == 0)
      return false;
  }
  /* Either the pidfd said it exited, or there is no pidfd: block. */
  pid_t w;
  do {
    w = waitpid(pid, status, 0);
  } while (w < 0 && errno == EINTR);
  return w == pid;
}

int tt_broker_start(tt_broker_t *b, const char *const *extra) {
  return tt_broker_start_wrapped(b, NULL, extra);
}

static int start_child(tt_broker_t *b, const char *const *wrapper,
                       const tt_broker_opts_t *o, const char *const *extra);

int tt_broker_start_wrapped(tt_broker_t *b, const char *const *wrapper,
                            const char *const *extra) {
  return start_child(b, wrapper, NULL, extra);
}

int tt_broker_start_opts(tt_broker_t *b, const tt_broker_opts_t *o,
                         const char *const *extra) {
  return start_child(b, NULL, o, extra);
}

const char *tt_cert_path(const char *name) {
  static char bufs[8][1024];
  static int next;
  const char *dir = getenv("TERN_TEST_CERTS");
  cr_assert(dir != NULL, "TERN_TEST_CERTS is not set (ctest sets it)");
  char *b = bufs[next++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
  return b;
}

const char *tt_tls_dir(void) {
  const char *d = getenv("TERN_TEST_TLS");
  return d != NULL && *d ? d : NULL;
}

#ifndef TERN_TLS_PROXY_PATH
#define TERN_TLS_PROXY_PATH "tern_test_tls_proxy"
#endif

/* TLS mode: the proxy in front of ternd's port; its own port, or -1. */
static int start_proxy(tt_broker_t *b, int ternd_port) {
  static char ca[1024];
  char portstr[16], fdstr[16];
  int fds[2];
  snprintf(ca, sizeof ca, "%s/ca.pem", tt_tls_dir());
  snprintf(portstr, sizeof portstr, "%d", ternd_port);
  cr_assert_eq(pipe(fds), 0, "pipe: %s", strerror(errno));
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  snprintf(fdstr, sizeof fdstr, "%d", fds[1]);
  const char *argv[] = {TERN_TLS_PROXY_PATH, "--connect", portstr, "--ca", ca,
                        "--ready-fd",        fdstr,       NULL};
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (pid == 0)
    exec_child(fds[1], (char *const *)argv, NULL);
  close(fds[1]);
  int unused = 0;
  int port = read_port(fds[0], tt_now_ms() + READY_TIMEOUT_MS, &unused);
  close(fds[0]);
  b->proxy_pid = pid;
  return port;
}

static void stop_proxy(tt_broker_t *b) {
  if (b->proxy_pid <= 0)
    return;
  int status;
  kill(b->proxy_pid, SIGTERM);
  if (!wait_child(b->proxy_pid, STOP_TIMEOUT_MS, &status)) {
    kill(b->proxy_pid, SIGKILL);
    wait_child(b->proxy_pid, STOP_TIMEOUT_MS, &status);
  }
  b->proxy_pid = 0;
}

static int start_child(tt_broker_t *b, const char *const *wrapper,
                       const tt_broker_opts_t *o, const char *const *extra) {
  tt_ignore_sigpipe();
  b->pid = 0;
  b->port = 0;
  b->http_port = 0;
  b->ternd_port = 0;
  b->proxy_pid = 0;

  int fds[2];
  cr_assert_eq(pipe(fds), 0, "pipe: %s", strerror(errno));
  /* Only the write end is meant for the child. */
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);

  char fdstr[16];
  snprintf(fdstr, sizeof fdstr, "%d", fds[1]);
  const char *argv[MAX_ARGS];
  size_t argc = 0;
  for (size_t i = 0; wrapper && wrapper[i]; i++) {
    cr_assert_lt(argc, (size_t)MAX_ARGS / 2, "wrapper command too long");
    argv[argc++] = wrapper[i];
  }
  argv[argc++] = tt_ternd_path();
  argv[argc++] = "--host";
  argv[argc++] = "127.0.0.1";
  argv[argc++] = "--port";
  argv[argc++] = "0";
  argv[argc++] = "--ready-fd";
  argv[argc++] = fdstr;
  /* Monitoring off: parallel brokers would fight over its default port. */
  argv[argc++] = "--http-port";
  argv[argc++] = "0";
  /* Quiet by default so failures stand out; TERND_LOG_LEVEL=debug to dig. */
  const char *level = getenv("TERND_LOG_LEVEL");
  argv[argc++] = "--log-level";
  argv[argc++] = level && *level ? level : "warn";
  /* One event loop unless the run asks for more (TERND_TEST_WORKERS: the
   * suite's second registration runs every test with 4); a test's own
   * --workers comes later and wins. */
  const char *workers = getenv("TERND_TEST_WORKERS");
  argv[argc++] = "--workers";
  argv[argc++] = workers && *workers ? workers : "1";
  static char cert[1024], key[1024];
  if (tt_tls_dir() != NULL) {
    snprintf(cert, sizeof cert, "%s/server.pem", tt_tls_dir());
    snprintf(key, sizeof key, "%s/server.key", tt_tls_dir());
    argv[argc++] = "--tls-cert";
    argv[argc++] = cert;
    argv[argc++] = "--tls-key";
    argv[argc++] = key;
    argv[argc++] = "--tls-required";
  }
  for (size_t i = 0; extra && extra[i]; i++) {
    cr_assert_lt(argc, (size_t)MAX_ARGS - 1, "too many ternd arguments");
    argv[argc++] = extra[i];
  }
  argv[argc] = NULL;

  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (pid == 0)
    exec_child(fds[1], (char *const *)argv, o);
  close(fds[1]);

  int http_port = 0;
  int port = read_port(fds[0], tt_now_ms() + READY_TIMEOUT_MS, &http_port);
  close(fds[0]);
  if (port < 0) {
    int status = 0;
    kill(pid, SIGKILL);
    wait_child(pid, STOP_TIMEOUT_MS, &status);
    cr_assert_fail("ternd (%s) did not report a port on --ready-fd "
                   "(exit status 0x%x)",
                   argv[0], status);
  }
  b->pid = pid;
  b->port = port;
  b->ternd_port = port;
  b->http_port = http_port;
  if (tt_tls_dir() != NULL) {
    b->port = start_proxy(b, port);
    cr_assert_gt(b->port, 0, "the TLS proxy did not report a port");
  }
  return 0;
}

int tt_broker_start_on(tt_broker_t *b, int port, const char *const *extra) {
  const char *argv[MAX_ARGS];
  char portstr[16];
  size_t n = 0;
  snprintf(portstr, sizeof portstr, "%d", port);
  /* ternd takes the last --port, so this overrides the harness's "0". */
  argv[n++] = "--port";
  argv[n++] = portstr;
  for (size_t i = 0; extra && extra[i]; i++) {
    cr_assert_lt(n, (size_t)MAX_ARGS - 1, "too many ternd arguments");
    argv[n++] = extra[i];
  }
  argv[n] = NULL;
  tt_broker_start(b, argv);
  cr_assert_eq(b->port, port, "ternd bound %d, not %d", b->port, port);
  return 0;
}

int tt_broker_stop(tt_broker_t *b) {
  if (b->pid <= 0)
    return -1;
  kill(b->pid, SIGTERM);
  return tt_broker_wait(b);
}

int tt_broker_wait(tt_broker_t *b) {
  stop_proxy(b);
  if (b->pid <= 0)
    return -1;
  pid_t pid = b->pid;
  b->pid = 0;
  int status = 0;
  if (!wait_child(pid, STOP_TIMEOUT_MS, &status)) {
    cr_log_error("ternd pid %d did not exit within %d ms: killing it", (int)pid,
                 STOP_TIMEOUT_MS);
    kill(pid, SIGKILL);
    wait_child(pid, STOP_TIMEOUT_MS, &status);
    return -1;
  }
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  cr_log_error("ternd pid %d died of signal %d", (int)pid,
               WIFSIGNALED(status) ? WTERMSIG(status) : -1);
  return -1;
}

void tt_broker_kill(tt_broker_t *b) {
  stop_proxy(b);
  if (b->pid <= 0)
    return;
  int status;
  kill(b->pid, SIGKILL);
  wait_child(b->pid, STOP_TIMEOUT_MS, &status);
  b->pid = 0;
}

bool tt_broker_alive(const tt_broker_t *b) {
  if (b->pid <= 0)
    return false;
  int status;
  return waitpid(b->pid, &status, WNOHANG) == 0;
}

void tt_fixture_start(const char *const *extra) {
  tt_broker_start(&tt_g_broker, extra);
}

void tt_fixture_stop(void) {
  if (tt_g_broker.pid <= 0)
    return;
  int status = tt_broker_stop(&tt_g_broker);
  cr_assert_eq(status, 0, "ternd did not shut down cleanly (status %d)",
               status);
}

int tt_connect_opts(int port, int rcvbuf) {
  tt_ignore_sigpipe();
  int fd = tt_wire_connect(port, rcvbuf);
  cr_assert_geq(fd, 0, "connect to 127.0.0.1:%d: %s", port, strerror(-fd));
  return fd;
}

int tt_connect(int port) {
  return tt_connect_opts(port, 0);
}

int tt_send_try(int fd, const void *buf, size_t len, int timeout_ms) {
  const uint8_t *p = buf;
  int64_t deadline = tt_now_ms() + timeout_ms;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pf = {.fd = fd, .events = POLLOUT};
      int r = poll(&pf, 1, remaining_ms(deadline));
      if (r == 0)
        return -ETIMEDOUT;
      continue;
    }
    return n < 0 ? -errno : -EPIPE;
  }
  return 0;
}

void tt_send_all(int fd, const void *buf, size_t len) {
  int r = tt_send_try(fd, buf, len, SEND_TIMEOUT_MS);
  cr_assert_eq(r, 0, "send of %zu bytes failed: %s", len, strerror(-r));
}
