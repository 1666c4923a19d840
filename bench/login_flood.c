/*
 * login_flood: what a bad-password flood does to good logins, and what a
 * login costs.
 *
 *   login_flood flood  PORT USER GOOD_PASS [RATE [SECONDS [AFTER]]]
 *   login_flood timing PORT USER [N]
 *
 * flood: from 127.0.0.1, RATE connections per second (100) for SECONDS
 * (10) each send CONNECT {user USER, pass "wrong"} and wait for the answer;
 * meanwhile, and for AFTER seconds more (30), a good login (USER,
 * GOOD_PASS) from 127.0.0.2 every 250 ms, one at a time, each timed from
 * connect to OK (or ERR, or nothing within 60 s). Prints every probe and a
 * summary: the flood's answers by kind, and the good logins' latency
 * during and after the flood.
 *
 * timing: N (21) wrong-password logins for USER and N for a user that does
 * not exist, alternating, each from its own source address (127.0.1.x,
 * so that no per-address limit applies); prints each kind's median and
 * maximum time to the ERR.
 *
 * With PID in the environment variable TERND_PID, both modes also print
 * the broker's VmHWM (peak RSS) at the end.
 *
 * Not a test: blocking sockets, two threads, exits on the first error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tern_proto/frame.h"

static int g_port;
static const char *g_user;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "login_flood: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* A connected socket from source address src (port chosen by the kernel). */
static int dial(const char *src) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    die("socket");
  struct sockaddr_in a = {.sin_family = AF_INET};
  inet_pton(AF_INET, src, &a.sin_addr);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
    die("bind");
  struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(g_port)};
  inet_pton(AF_INET, "127.0.0.1", &d.sin_addr);
  if (connect(fd, (struct sockaddr *)&d, sizeof d) != 0)
    die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void send_connect(int fd, const char *user, const char *pass) {
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = 1;
  f.u.connect.user = (tp_str_t){user, strlen(user)};
  f.u.connect.pass = (tp_str_t){pass, strlen(pass)};
  tp_buf_t b;
  tp_buf_init(&b);
  if (tp_frame_encode(&b, &f) != 0)
    die("encode");
  if (write(fd, b.data, b.len) != (ssize_t)b.len)
    die("write");
  tp_buf_free(&b);
}

/* What a login's answer was. */
enum { ANS_NONE = 0, ANS_OK, ANS_ERR, ANS_EOF };
typedef struct answer {
  uint8_t buf[512];
  size_t len;
  int kind;
  unsigned code; /* ERR code */
} answer_t;

/* Reads what is there; sets a->kind once OK, ERR or EOF is seen. Frames
 * are [len32][msgpack array]: byte 1 of the body is the type, byte 2 the
 * ERR code (small codes are one-byte integers). */
static void take(int fd, answer_t *a) {
  ssize_t n = read(fd, a->buf + a->len, sizeof a->buf - a->len);
  if (n <= 0) {
    a->kind = ANS_EOF;
    return;
  }
  a->len += (size_t)n;
  size_t at = 0;
  while (a->len - at >= 4) {
    uint32_t l = (uint32_t)a->buf[at] << 24 | (uint32_t)a->buf[at + 1] << 16 |
                 (uint32_t)a->buf[at + 2] << 8 | a->buf[at + 3];
    if (a->len - at - 4 < l)
      break;
    const uint8_t *body = a->buf + at + 4;
    if (l >= 2 && body[1] == TP_OK) {
      a->kind = ANS_OK;
      return;
    }
    if (l >= 3 && body[1] == TP_ERR) {
      a->kind = ANS_ERR;
      a->code = body[2];
      return;
    }
    at += 4 + l;
  }
  memmove(a->buf, a->buf + at, a->len - at);
  a->len -= at;
}

/* One login, blocking: seconds to the answer (timeout_s if none). */
static double login(const char *src, const char *user, const char *pass,
                    double timeout_s, answer_t *a) {
  memset(a, 0, sizeof *a);
  double t0 = now_s();
  int fd = dial(src);
  send_connect(fd, user, pass);
  while (a->kind == ANS_NONE) {
    double left = timeout_s - (now_s() - t0);
    if (left <= 0)
      break;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)(left * 1000) + 1) > 0)
      take(fd, a);
  }
  double dt = now_s() - t0;
  close(fd);
  return dt;
}

/* ---- flood ------------------------------------------------------------- */

typedef struct flood {
  int rate;
  double seconds, after, t0;
  /* results */
  unsigned sent, ok, eof, unanswered, err[16];
  double last_answer; /* seconds after t0 */
} flood_t;

static void *flood_main(void *arg) {
  flood_t *fl = arg;
  size_t total = (size_t)(fl->rate * fl->seconds);
  struct pollfd *pf = calloc(total, sizeof *pf);
  answer_t *ans = calloc(total, sizeof *ans);
  if (pf == NULL || ans == NULL)
    die("calloc");
  size_t open = 0;
  double end = fl->t0 + fl->seconds + fl->after;
  for (;;) {
    double t = now_s();
    while (fl->sent < total && t >= fl->t0 + fl->sent / (double)fl->rate) {
      int fd = dial("127.0.0.1");
      send_connect(fd, g_user, "wrong");
      pf[fl->sent] = (struct pollfd){.fd = fd, .events = POLLIN};
      fl->sent++;
      open++;
    }
    if ((fl->sent == total && open == 0) || t >= end)
      break;
    double next = fl->sent < total ? fl->t0 + fl->sent / (double)fl->rate : end;
    int ms = (int)((next - t) * 1000);
    if (poll(pf, fl->sent, ms < 1 ? 1 : ms) < 0 && errno != EINTR)
      die("poll");
    for (size_t i = 0; i < fl->sent; i++) {
      if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      take(pf[i].fd, &ans[i]);
      if (ans[i].kind == ANS_NONE)
        continue;
      if (ans[i].kind == ANS_OK)
        fl->ok++;
      else if (ans[i].kind == ANS_ERR)
        fl->err[ans[i].code < 16 ? ans[i].code : 0]++;
      else
        fl->eof++;
      fl->last_answer = now_s() - fl->t0;
      close(pf[i].fd);
      pf[i].fd = -1;
      open--;
    }
  }
  for (size_t i = 0; i < fl->sent; i++)
    if (pf[i].fd >= 0) {
      close(pf[i].fd);
      fl->unanswered++;
    }
  free(pf);
  free(ans);
  return NULL;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void print_hwm(void) {
  const char *pid = getenv("TERND_PID");
  if (pid == NULL)
    return;
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%s/status", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "VmHWM:", 6) == 0 || strncmp(line, "VmRSS:", 6) == 0)
      printf("ternd %s", line);
  fclose(f);
}

static int do_flood(const char *good, int rate, double seconds, double after) {
  flood_t fl = {.rate = rate, .seconds = seconds, .after = after};
  fl.t0 = now_s();
  pthread_t th;
  if (pthread_create(&th, NULL, flood_main, &fl) != 0)
    die("pthread_create");
  double during[4096], later[4096];
  size_t nd = 0, nl = 0;
  unsigned failed_during = 0, failed_after = 0;
  double last_bad = -1;
  while (now_s() - fl.t0 < seconds + after) {
    double start = now_s() - fl.t0;
    answer_t a;
    double dt = login("127.0.0.2", g_user, good, 60, &a);
    bool ok = a.kind == ANS_OK;
    printf("t=%6.2f s  good login %-6s %9.1f ms\n", start,
           ok                  ? "OK"
           : a.kind == ANS_ERR ? "ERR"
                               : "none",
           dt * 1000);
    if (a.kind == ANS_ERR)
      printf("           (ERR %u)\n", a.code);
    if (start < seconds) {
      if (nd < 4096)
        during[nd++] = dt;
      failed_during += !ok;
    } else {
      if (nl < 4096)
        later[nl++] = dt;
      failed_after += !ok;
    }
    if (!ok || dt > 1.0)
      last_bad = start + dt;
    double next = start + 0.25;
    while (now_s() - fl.t0 < next)
      usleep(1000);
  }
  pthread_join(th, NULL);
  qsort(during, nd, sizeof *during, cmp_d);
  qsort(later, nl, sizeof *later, cmp_d);
  printf("\nflood: %u bad CONNECTs in %.0f s from 127.0.0.1: ERR 2 %u, "
         "ERR 7 %u, ERR 11 %u, OK %u, closed %u, unanswered %u; last answer "
         "at %.1f s\n",
         fl.sent, seconds, fl.err[2], fl.err[7], fl.err[11], fl.ok, fl.eof,
         fl.unanswered, fl.last_answer);
  if (nd > 0)
    printf("good logins during the flood: %zu, failed %u, median %.1f ms, "
           "max %.1f ms\n",
           nd, failed_during, during[nd / 2] * 1000, during[nd - 1] * 1000);
  if (nl > 0)
    printf("good logins after the flood:  %zu, failed %u, median %.1f ms, "
           "max %.1f ms\n",
           nl, failed_after, later[nl / 2] * 1000, later[nl - 1] * 1000);
  if (last_bad < 0)
    printf("no good login failed or took over 1 s\n");
  else
    printf("good logins failed or took over 1 s until t=%.1f s\n", last_bad);
  print_hwm();
  return 0;
}

/* ---- timing ------------------------------------------------------------ */

static int do_timing(int n) {
  double known[1024], unknown[1024];
  if (n > 1024)
    n = 1024;
  for (int i = 0; i < 2 * n; i++) {
    char src[32];
    snprintf(src, sizeof src, "127.0.%d.%d", 1 + i / 250, 1 + i % 250);
    answer_t a;
    bool k = i % 2 == 0;
    double dt = login(src, k ? g_user : "no-such-user-x", "wrong", 60, &a);
    if (a.kind != ANS_ERR) {
      fprintf(stderr, "login_flood: expected ERR, got %d\n", a.kind);
      return 1;
    }
    (k ? known : unknown)[i / 2] = dt;
  }
  qsort(known, (size_t)n, sizeof *known, cmp_d);
  qsort(unknown, (size_t)n, sizeof *unknown, cmp_d);
  printf("wrong password, known user:   n=%d median %.2f ms max %.2f ms\n", n,
         known[n / 2] * 1000, known[n - 1] * 1000);
  printf("wrong password, unknown user: n=%d median %.2f ms max %.2f ms\n", n,
         unknown[n / 2] * 1000, unknown[n - 1] * 1000);
  print_hwm();
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[1], "flood") == 0) {
    g_port = atoi(argv[2]);
    g_user = argv[3];
    return do_flood(argv[4], argc > 5 ? atoi(argv[5]) : 100,
                    argc > 6 ? atof(argv[6]) : 10,
                    argc > 7 ? atof(argv[7]) : 30);
  }
  if (argc >= 4 && strcmp(argv[1], "timing") == 0) {
    g_port = atoi(argv[2]);
    g_user = argv[3];
    return do_timing(argc > 4 ? atoi(argv[4]) : 21);
  }
  fprintf(stderr, "usage: login_flood flood PORT USER GOOD_PASS [RATE "
                  "[SECONDS [AFTER]]]\n"
                  "       login_flood timing PORT USER [N]\n");
  return 2;
}
