/*
 * mon_abuse: what abuse of the monitoring port, of descriptors and of the
 * log costs a running ternd.
 *
 *   mon_abuse PID HOST PORT HTTPPORT MODE [N]
 *
 *   idle N    open N idle sockets to the monitoring port, then GET /healthz
 *             (answer or not within 5 s)                       (N = 200)
 *   burst N   N connections each send GET /healthz at once: answered,
 *             closed or reset without an answer                (N = 1000)
 *   subz N    N subscriptions on one connection, then GET
 *             /subz?limit=100000 read at full speed five times while
 *             another connection PINGs: PONG round trips before and
 *             during (p50, max)                               (N = 100000)
 *   unread N  (after subz) N clients ask for that /subz and read nothing:
 *             ternd's VmRSS before and after                   (N = 64)
 *   fd N      open up to N connections until one is refused: what the
 *             refused one read, and whether /healthz answers   (N = 100000)
 *   name N    CONNECT with a name of N bytes, "\n" and a fake log line
 *             in it, then close (read ternd's log for the rest) (N = 1 MiB)
 *
 * Prints one JSON object. Not a test: blocking sockets except where
 * stated, exits on the first unexpected error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"
#include "tern_proto/frame.h"

static struct sockaddr_in broker, http;
static long pid;

static double now_ms(void) { return probe_now_s() * 1000.0; }

static long rss_kib(void) { return probe_status_kib(pid, "VmRSS"); }

static int dial(const struct sockaddr_in *to, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    probe_die("socket");
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (connect(fd, (const struct sockaddr *)to, sizeof *to) != 0)
    probe_die("connect");
  return fd;
}

static void send_frame(int fd, const tp_frame_t *f) {
  static tp_buf_t b;
  probe_send_frame(fd, &b, f);
}

/* Reads frames until a PONG (HELLO/OK skipped); ERR is fatal. */
static void wait_pong(int fd) {
  static uint8_t buf[1 << 16];
  static size_t have;
  for (;;) {
    size_t at = 0, size = 0;
    while (tp_frame_size(buf + at, have - at, sizeof buf, &size) == 1 &&
           size <= have - at) {
      uint8_t type = buf[at + 5];
      at += size;
      if (type == TP_ERR) {
        errno = EPROTO;
        probe_die("broker answered ERR");
      }
      if (type == TP_PONG) {
        memmove(buf, buf + at, have - at);
        have -= at;
        return;
      }
    }
    memmove(buf, buf + at, have - at);
    have -= at;
    ssize_t r = read(fd, buf + have, sizeof buf - have);
    if (r <= 0)
      probe_die("read");
    have += (size_t)r;
  }
}

static int client(void) {
  int fd = dial(&broker, 0);
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = TP_PROTO_VERSION;
  send_frame(fd, &f);
  tp_frame_init(&f, TP_PING);
  send_frame(fd, &f);
  wait_pong(fd);
  return fd;
}

static void ping(int fd) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PING);
  send_frame(fd, &f);
  wait_pong(fd);
}

/* GET path; the status, or 0 when nothing came within timeout_ms (or
 * the connection was closed or reset without an answer). */
static int http_get(const char *path, int timeout_ms, size_t *bytes) {
  int fd = dial(&http, 0);
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  probe_send_all(fd, req, (size_t)n);
  static char buf[1 << 16];
  size_t got = 0;
  int code = 0;
  double end = now_ms() + timeout_ms;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int left = (int)(end - now_ms());
    if (left <= 0 || poll(&p, 1, left) <= 0)
      break;
    ssize_t r = read(fd, buf, sizeof buf - 1);
    if (r <= 0)
      break;
    if (got == 0) {
      buf[r] = '\0';
      sscanf(buf, "HTTP/1.%*d %d", &code);
    }
    got += (size_t)r;
  }
  close(fd);
  if (bytes)
    *bytes = got;
  return code;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void mode_idle(size_t n) {
  int *fds = calloc(n, sizeof *fds);
  for (size_t i = 0; i < n; i++)
    fds[i] = dial(&http, 0);
  double t = now_ms();
  int code = http_get("/healthz", 5000, NULL);
  printf(
      "{\"mode\":\"idle\",\"idle_sockets\":%zu,\"healthz\":%d,\"ms\":%.1f}\n",
      n, code, now_ms() - t);
  for (size_t i = 0; i < n; i++)
    close(fds[i]);
  free(fds);
}

static void mode_burst(size_t n) {
  int *fds = calloc(n, sizeof *fds);
  static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t i = 0; i < n; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (connect(fds[i], (struct sockaddr *)&http, sizeof http) != 0 &&
        errno != EINPROGRESS)
      probe_die("connect");
  }
  size_t answered = 0, reset = 0, closed = 0, silent = 0;
  double end = now_ms() + 30000;
  char buf[512];
  for (size_t i = 0; i < n; i++) {
    struct pollfd p = {.fd = fds[i], .events = POLLOUT};
    poll(&p, 1, 10000);
    if (send(fds[i], req, sizeof req - 1, MSG_NOSIGNAL) < 0) {
      reset++;
      close(fds[i]);
      fds[i] = -1;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (fds[i] < 0)
      continue;
    struct pollfd p = {.fd = fds[i], .events = POLLIN};
    int left = (int)(end - now_ms());
    if (poll(&p, 1, left > 0 ? left : 0) <= 0) {
      silent++;
    } else {
      ssize_t r = read(fds[i], buf, sizeof buf - 1);
      if (r > 0 && strncmp(buf, "HTTP/1.1 200", 12) == 0)
        answered++;
      else if (r < 0)
        reset++;
      else
        closed++;
    }
    close(fds[i]);
  }
  printf("{\"mode\":\"burst\",\"requests\":%zu,\"answered\":%zu,\"reset\":%zu,"
         "\"closed_unanswered\":%zu,\"no_answer_30s\":%zu}\n",
         n, answered, reset, closed, silent);
  free(fds);
}

static void make_subs(size_t n) {
  int fd = client();
  tp_frame_t f;
  tp_frame_init(&f, TP_SUB);
  char pattern[128];
  for (size_t i = 0; i < n; i++) {
    int len = snprintf(pattern, sizeof pattern,
                       "tenant-%07zu.region.service.instance.metric.*", i);
    f.u.sub.sid = i + 1;
    f.u.sub.pattern.ptr = pattern;
    f.u.sub.pattern.len = (uint32_t)len;
    send_frame(fd, &f);
    if (i % 1000 == 999)
      ping(fd);
  }
  ping(fd);
  /* fd stays open: the subscriptions live as long as the tool. */
}

static void report_rtts(const char *name, double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_d);
  printf("\"%s\":{\"n\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}",
         name, n, n ? v[n / 2] : 0.0, n ? v[n * 99 / 100] : 0.0,
         n ? v[n - 1] : 0.0);
}

/* The pinger thread: PING/PONG rounds on its own connection until told
 * to stop, each round trip recorded. */
static volatile int pinging;
static double during[200000];
static size_t nduring;

static void *pinger_main(void *arg) {
  int fd = *(int *)arg;
  while (pinging) {
    double t = now_ms();
    ping(fd);
    if (nduring < sizeof during / sizeof during[0])
      during[nduring++] = now_ms() - t;
  }
  return NULL;
}

static void mode_subz(size_t n) {
  make_subs(n);
  int pinger = client();
  static double before[1000];
  for (size_t i = 0; i < 1000; i++) {
    double t = now_ms();
    ping(pinger);
    before[i] = now_ms() - t;
  }
  size_t bytes = 0;
  pinging = 1;
  pthread_t th;
  if (pthread_create(&th, NULL, pinger_main, &pinger) != 0)
    probe_die("pthread_create");
  double t0 = now_ms();
  for (int round = 0; round < 5; round++) {
    int h = dial(&http, 0);
    static const char req[] =
        "GET /subz?limit=100000 HTTP/1.1\r\nHost: x\r\n\r\n";
    probe_send_all(h, req, sizeof req - 1);
    static char buf[1 << 16];
    ssize_t r;
    while ((r = read(h, buf, sizeof buf)) > 0)
      bytes += (size_t)r;
    close(h);
  }
  double took = now_ms() - t0;
  pinging = 0;
  pthread_join(th, NULL);
  printf("{\"mode\":\"subz\",\"subs\":%zu,\"bytes_per_response\":%zu,"
         "\"ms_per_response\":%.1f,",
         n, bytes / 5, took / 5);
  report_rtts("ping_before", before, 1000);
  printf(",");
  report_rtts("ping_during", during, nduring);
  printf(",\"rss_kib\":%ld}\n", rss_kib());
  close(pinger);
}

static void mode_unread(size_t n) {
  make_subs(100000);
  int pinger = client();
  for (int i = 0; i < 10; i++)
    ping(pinger);
  long rss0 = rss_kib();
  int *fds = calloc(n, sizeof *fds);
  static const char req[] =
      "GET /subz?limit=100000 HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t i = 0; i < n; i++) {
    fds[i] = dial(&http, 4096);
    probe_send_all(fds[i], req, sizeof req - 1);
  }
  double t = now_ms();
  while (now_ms() - t < 3000)
    ping(pinger);
  long rss1 = rss_kib();
  printf("{\"mode\":\"unread\",\"readers\":%zu,\"rss_kib_before\":%ld,"
         "\"rss_kib_after\":%ld}\n",
         n, rss0, rss1);
  for (size_t i = 0; i < n; i++)
    close(fds[i]);
  free(fds);
  close(pinger);
}

static void mode_fd(size_t n) {
  int *fds = calloc(n, sizeof *fds);
  size_t i = 0;
  const char *what = "none";
  for (; i < n; i++) {
    int fd = dial(&broker, 0);
    uint8_t buf[256];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t r = poll(&p, 1, 5000) > 0 ? read(fd, buf, sizeof buf) : -2;
    size_t size = 0;
    if (r > 0 && tp_frame_size(buf, (size_t)r, sizeof buf, &size) == 1 &&
        buf[5] == TP_HELLO) {
      fds[i] = fd;
      continue;
    }
    what = r > 0 && buf[5] == TP_ERR ? "ERR"
           : r == 0                  ? "closed with nothing"
           : r == -2                 ? "no answer in 5 s"
                                     : "reset with nothing";
    close(fd);
    break;
  }
  int code = http_get("/healthz", 5000, NULL);
  printf("{\"mode\":\"fd\",\"accepted\":%zu,\"refused_client_read\":\"%s\","
         "\"healthz\":%d}\n",
         i, what, code);
  for (size_t k = 0; k < i; k++)
    close(fds[k]);
  free(fds);
}

static void mode_name(size_t n) {
  static const char forged[] = "\n2026-12-07T00:00:00Z [info] forged";
  char *name = malloc(n + sizeof forged);
  memset(name, 'N', n);
  memcpy(name + n, forged, sizeof forged);
  int fd = dial(&broker, 0);
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = TP_PROTO_VERSION;
  f.u.connect.name.ptr = name;
  f.u.connect.name.len = (uint32_t)(n + sizeof forged - 1);
  send_frame(fd, &f);
  ping(fd);
  close(fd);
  printf("{\"mode\":\"name\",\"name_bytes\":%zu}\n", n + sizeof forged - 1);
  free(name);
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: mon_abuse PID HOST PORT HTTPPORT "
                    "idle|burst|subz|unread|fd|name [N]\n");
    return 2;
  }
  pid = atol(argv[1]);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  memset(&broker, 0, sizeof broker);
  broker.sin_family = AF_INET;
  broker.sin_port = htons((uint16_t)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &broker.sin_addr) != 1)
    return 2;
  http = broker;
  http.sin_port = htons((uint16_t)atoi(argv[4]));
  const char *mode = argv[5];
  long n = argc > 6 ? atol(argv[6]) : -1;
  if (strcmp(mode, "idle") == 0)
    mode_idle(n > 0 ? (size_t)n : 200);
  else if (strcmp(mode, "burst") == 0)
    mode_burst(n > 0 ? (size_t)n : 1000);
  else if (strcmp(mode, "subz") == 0)
    mode_subz(n > 0 ? (size_t)n : 100000);
  else if (strcmp(mode, "unread") == 0)
    mode_unread(n > 0 ? (size_t)n : 64);
  else if (strcmp(mode, "fd") == 0)
    mode_fd(n > 0 ? (size_t)n : 100000);
  else if (strcmp(mode, "name") == 0)
    mode_name(n > 0 ? (size_t)n : 1048576);
  else
    return 2;
  return 0;
}
