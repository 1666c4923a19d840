/*
 * pressure_probe: what subscribers that stop reading do to everyone else.
 *
 *   pressure_probe PID HOST PORT [NSUBS [COUNT [SIZE [POLICY [SECONDS]]]]]
 *       defaults 100, 100000, 200, drop_newest, 0
 *
 * Against the ternd whose pid is PID: NSUBS subscribers with a 4 KiB
 * receive buffer subscribe to probe.flood with POLICY and never read; an
 * unrelated pair (a publisher and a subscriber on probe.pair) exchanges
 * one message at a time, each sent once the previous one arrived; a
 * flooding publisher sends COUNT messages of SIZE bytes to probe.flood
 * from a thread, then a PING. Measured: how long the flood takes to be
 * taken (its PONG), the longest time the pair waited for one of its
 * messages (a stall), the pair's round trips, and ternd's VmRSS at the end
 * and its peak (VmHWM). The run ends one second after the flood's PONG
 * and at least SECONDS after the start (the subscribers that do not read
 * keep holding what they hold meanwhile: scripts/soak.sh runs its load
 * beside them), or when the pair has waited 300 s for one message. Prints
 * one JSON object; exit 1 on that timeout.
 *
 * Not a test: blocking sockets, exits on the first error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"
#include "tern_proto/frame.h"

/* A reader of whole frames off a blocking socket. */
typedef struct rd {
  int fd;
  uint8_t buf[1 << 16];
  size_t have, at;
} rd_t;

/* The type of the next frame, waiting at most timeout_ms (-1: forever):
 * 0 on timeout. Any ERR is fatal. */
static int next_type(rd_t *r, int timeout_ms) {
  for (;;) {
    size_t size = 0;
    if (tp_frame_size(r->buf + r->at, r->have - r->at, sizeof r->buf, &size) ==
            1 &&
        size <= r->have - r->at) {
      uint8_t type = r->buf[r->at + 5];
      r->at += size;
      if (type == TP_ERR) {
        errno = EPROTO;
        probe_die("broker answered ERR");
      }
      return type;
    }
    memmove(r->buf, r->buf + r->at, r->have - r->at);
    r->have -= r->at;
    r->at = 0;
    struct pollfd pfd = {r->fd, POLLIN, 0};
    int pr = poll(&pfd, 1, timeout_ms);
    if (pr == 0)
      return 0;
    ssize_t n = read(r->fd, r->buf + r->have, sizeof r->buf - r->have);
    if (n <= 0)
      probe_die("read");
    r->have += (size_t)n;
  }
}

static void wait_for(rd_t *r, int type) {
  while (next_type(r, -1) != type) {
  }
}

static struct sockaddr_in g_sa;

static int open_conn(rd_t *r, int rcvbuf, tp_buf_t *b) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    probe_die("socket");
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (connect(fd, (struct sockaddr *)&g_sa, sizeof g_sa) != 0)
    probe_die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = TP_PROTO_VERSION;
  probe_send_frame(fd, b, &f);
  tp_frame_init(&f, TP_PING);
  probe_send_frame(fd, b, &f);
  memset(r, 0, sizeof *r);
  r->fd = fd;
  wait_for(r, TP_PONG);
  return fd;
}

static void sub_to(rd_t *r, tp_buf_t *b, const char *pattern, int policy) {
  tp_frame_t f;
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = 1;
  f.u.sub.pattern.ptr = pattern;
  f.u.sub.pattern.len = (uint32_t)strlen(pattern);
  f.u.sub.overflow = policy;
  probe_send_frame(r->fd, b, &f);
  tp_frame_init(&f, TP_PING);
  probe_send_frame(r->fd, b, &f);
  wait_for(r, TP_PONG);
}

typedef struct flood {
  rd_t r;
  uint32_t count;
  size_t size;
  double started, done;
  atomic_int finished;
} flood_t;

static void *flood_main(void *arg) {
  flood_t *fl = arg;
  tp_buf_t b;
  tp_buf_init(&b);
  uint8_t *payload = calloc(1, fl->size);
  if (payload == NULL)
    probe_die("calloc");
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic.ptr = "probe.flood";
  f.u.pub.topic.len = 11;
  f.u.pub.payload.ptr = payload;
  f.u.pub.payload.len = (uint32_t)fl->size;
  fl->started = probe_now_s();
  for (uint32_t i = 0; i < fl->count; i++) {
    memcpy(payload, &i, sizeof i < fl->size ? sizeof i : fl->size);
    if (tp_frame_encode(&b, &f) != 0)
      probe_die("encode");
    if (b.len >= 64 * 1024) {
      probe_send_all(fl->r.fd, b.data, b.len);
      tp_buf_reset(&b);
    }
  }
  tp_frame_t ping;
  tp_frame_init(&ping, TP_PING);
  if (tp_frame_encode(&b, &ping) != 0)
    probe_die("encode");
  probe_send_all(fl->r.fd, b.data, b.len);
  wait_for(&fl->r, TP_PONG);
  fl->done = probe_now_s();
  atomic_store(&fl->finished, 1);
  free(payload);
  tp_buf_free(&b);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: pressure_probe PID HOST PORT [NSUBS [COUNT "
                    "[SIZE [POLICY [SECONDS]]]]]\n");
    return 2;
  }
  long pid = atol(argv[1]);
  size_t nsubs = argc > 4 ? (size_t)atol(argv[4]) : 100;
  flood_t fl;
  memset(&fl, 0, sizeof fl);
  fl.count = argc > 5 ? (uint32_t)atol(argv[5]) : 100000;
  fl.size = argc > 6 ? (size_t)atol(argv[6]) : 200;
  const char *pname = argc > 7 ? argv[7] : "drop_newest";
  double seconds = argc > 8 ? atof(argv[8]) : 0;
  int policy = strcmp(pname, "drop_oldest") == 0  ? TP_OVERFLOW_DROP_OLDEST
               : strcmp(pname, "block") == 0      ? TP_OVERFLOW_BLOCK
               : strcmp(pname, "disconnect") == 0 ? TP_OVERFLOW_DISCONNECT
                                                  : TP_OVERFLOW_DROP_NEWEST;

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  g_sa.sin_family = AF_INET;
  g_sa.sin_port = htons((uint16_t)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &g_sa.sin_addr) != 1)
    return 2;

  tp_buf_t b;
  tp_buf_init(&b);
  rd_t *subs = calloc(nsubs ? nsubs : 1, sizeof *subs);
  rd_t *pp = calloc(1, sizeof *pp), *ps = calloc(1, sizeof *ps);
  if (subs == NULL || pp == NULL || ps == NULL)
    probe_die("calloc");
  for (size_t i = 0; i < nsubs; i++) {
    open_conn(&subs[i], 4096, &b);
    sub_to(&subs[i], &b, "probe.flood", policy);
  }
  open_conn(pp, 0, &b);
  open_conn(ps, 0, &b);
  sub_to(ps, &b, "probe.pair", TP_OVERFLOW_UNSET);
  open_conn(&fl.r, 0, &b);
  long rss0 = probe_status_kib(pid, "VmRSS");

  pthread_t t;
  if (pthread_create(&t, NULL, flood_main, &fl) != 0)
    probe_die("pthread_create");
  double t0 = probe_now_s(), max_wait = 0, end_at = 0;
  uint64_t rounds = 0;
  tp_frame_t pub;
  tp_frame_init(&pub, TP_PUB);
  pub.u.pub.topic.ptr = "probe.pair";
  pub.u.pub.topic.len = 10;
  pub.u.pub.payload.ptr = (const uint8_t *)"x";
  pub.u.pub.payload.len = 1;
  bool timed_out = false;
  for (;;) {
    if (seconds > 0)
      usleep(1000); /* a steady trickle, not a spin, over a long run */
    double sent = probe_now_s();
    probe_send_frame(pp->fd, &b, &pub);
    for (;;) {
      int type = next_type(ps, 1000);
      if (type == TP_MSG)
        break;
      if (type == TP_PING) {
        tp_frame_t pong;
        tp_frame_init(&pong, TP_PONG);
        probe_send_frame(ps->fd, &b, &pong);
      }
      if (probe_now_s() - sent > 300) {
        timed_out = true;
        break;
      }
    }
    double w = probe_now_s() - sent;
    if (w > max_wait)
      max_wait = w;
    rounds++;
    if (timed_out)
      break;
    if (atomic_load(&fl.finished) && probe_now_s() - t0 >= seconds) {
      if (end_at == 0)
        end_at = probe_now_s() + 1.0;
      else if (probe_now_s() >= end_at)
        break;
    }
  }
  long rss_end = probe_status_kib(pid, "VmRSS"), hwm = probe_status_kib(pid, "VmHWM");
  if (!timed_out)
    pthread_join(t, NULL);
  printf("{\"subs\":%zu,\"policy\":\"%s\",\"count\":%u,\"size\":%zu,"
         "\"flood_s\":%.3f,\"pair_longest_wait_s\":%.3f,\"pair_rounds\":%llu,"
         "\"timed_out\":%s,\"rss_kib\":[%ld,%ld],\"rss_peak_kib\":%ld}\n",
         nsubs, pname, fl.count, fl.size,
         timed_out ? -1.0 : fl.done - fl.started, max_wait,
         (unsigned long long)rounds, timed_out ? "true" : "false", rss0,
         rss_end, hwm);
  return timed_out ? 1 : 0;
}
