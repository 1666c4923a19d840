/*
 * tern_soak_abuse: the abuse phase of scripts/soak.sh (issue 13). Slow,
 * idle and hostile clients beside one good publisher/subscriber pair, for
 * a bounded time, then checks that the good clients were not hurt.
 *
 *   tern_soak_abuse PORT HTTP_PORT TERND_PID SECONDS [name=value ...]
 *
 * ternd must run with users (a config file) for pair_user and noisy_user.
 * Every client is on loopback; each kind comes from its own source
 * address, so a broker that limits per address can tell them apart:
 *
 *   127.0.0.1  the good pair, the good logins, the /healthz probe
 *   127.0.0.2  the login flood
 *   127.0.0.3  the non-reading subscribers and their firehose publisher
 *   127.0.0.4  the monitoring-port abuse
 *
 * Load, all at once for SECONDS:
 *  - the good pair: a publisher on pair.t at pair_rate msgs/s (sequence
 *    number and send time in each payload), a block subscriber that reads
 *    everything and records the largest gap between two receipts;
 *  - nonreaders subscribers on abuse.fire that never read (7 in 10
 *    drop_newest, 1 drop_oldest, 1 disconnect, 1 block; small receive
 *    buffers; nonreader_subs idle subscriptions each), reopened when the
 *    broker is seen to close them and replaced every nonreader_life_ms
 *    (before the heartbeat would drop them), and a firehose of fire_rate
 *    msgs/s of fire_size bytes on abuse.fire;
 *  - a login flood: flood_rate connections a second, each a CONNECT with a
 *    bad password for pair_user, abandoned after 3 s unanswered; and a
 *    good login for pair_user every second whose latency is recorded;
 *  - the monitoring port: http_idle idle sockets (half of them stopped in
 *    the middle of a request line), http_unread connections that ask for
 *    /subz or /connz and never read the answer (each replaced after
 *    10 s), and a /healthz probe every second.
 *
 * Checks (each bound is a name=value argument):
 *  - the pair lost nothing: every message arrived once, in order, with no
 *    DROPPED and no ERR; it never stalled: its largest gap between two
 *    receipts (or, while publishing, since the last receipt) and its
 *    largest delay from publish to receipt stayed under max_stall_ms;
 *  - every good login was answered (PONG) within login_ms;
 *  - every /healthz probe got 200 within probe_ms;
 *  - ternd's RSS stayed under rss_mb;
 *  - (term=1) sent SIGTERM with the abusers still connected and still not
 *    reading, ternd is gone within 60 s (scripts/soak.sh checks that its
 *    exit status is 0).
 * Exit 0 when every check holds, 1 otherwise, 2 on usage. Each kind of
 * load can be switched off with its count or rate at 0.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "broker_proc.h"
#include "proc_stats.h"
#include "wire.h"

/* ---- parameters -------------------------------------------------------- */

typedef struct params {
  long max_stall_ms;      /* largest gap between two receipts of the pair */
  long login_ms;          /* a good login is answered within this */
  long probe_ms;          /* a /healthz probe is answered within this */
  long rss_mb;            /* ternd's VmRSS bound */
  long drain_ms;          /* the pair drains within this after the run */
  long pair_rate;         /* good messages a second */
  long fire_rate;         /* firehose messages a second */
  long fire_size;         /* firehose payload bytes */
  long nonreaders;        /* subscribers that never read */
  long nonreader_subs;    /* idle subscriptions per non-reader */
  long nonreader_life_ms; /* each non-reader is replaced this often */
  long flood_rate;        /* bad-password CONNECTs a second */
  long http_idle;         /* idle sockets on the monitoring port */
  long http_unread;       /* /subz and /connz requests never read */
  long term;              /* 1: SIGTERM ternd at the end */
  const char *pair_user, *pair_pass, *noisy_user, *noisy_pass;
} params_t;

static params_t P = {
    .max_stall_ms = 2000,
    .login_ms = 5000,
    .probe_ms = 2000,
    .rss_mb = 384,
    .drain_ms = 60000,
    .pair_rate = 2000,
    .fire_rate = 20000,
    .fire_size = 200,
    .nonreaders = 100,
    .nonreader_subs = 100,
    .nonreader_life_ms = 50000,
    .flood_rate = 100,
    .http_idle = 100,
    .http_unread = 32,
    .term = 1,
    .pair_user = "pair",
    .pair_pass = "pair-Corr3ct-horse",
    .noisy_user = "noisy",
    .noisy_pass = "noisy-Battery-staple",
};

static const struct {
  const char *name;
  long *value;
  long min, max;
} LONGS[] = {
    {"max_stall_ms", &P.max_stall_ms, 1, 3600000},
    {"login_ms", &P.login_ms, 1, 3600000},
    {"probe_ms", &P.probe_ms, 1, 3600000},
    {"rss_mb", &P.rss_mb, 1, 1 << 20},
    {"drain_ms", &P.drain_ms, 1000, 3600000},
    {"pair_rate", &P.pair_rate, 1, 100000},
    {"fire_rate", &P.fire_rate, 0, 1000000},
    {"fire_size", &P.fire_size, 16, 65536},
    {"nonreaders", &P.nonreaders, 0, 2000},
    {"nonreader_subs", &P.nonreader_subs, 0, 10000},
    {"nonreader_life_ms", &P.nonreader_life_ms, 0, 3600000},
    {"flood_rate", &P.flood_rate, 0, 1000},
    {"http_idle", &P.http_idle, 0, 2000},
    {"http_unread", &P.http_unread, 0, 1000},
    {"term", &P.term, 0, 1},
};

static int parse_param(const char *arg) {
  const char *eq = strchr(arg, '=');
  if (eq == NULL)
    return -1;
  size_t n = (size_t)(eq - arg);
  const char *v = eq + 1;
  static const struct {
    const char *name;
    const char **value;
  } STRS[] = {{"pair_user", &P.pair_user},
              {"pair_pass", &P.pair_pass},
              {"noisy_user", &P.noisy_user},
              {"noisy_pass", &P.noisy_pass}};
  for (size_t i = 0; i < sizeof STRS / sizeof STRS[0]; i++) {
    if (strlen(STRS[i].name) == n && strncmp(arg, STRS[i].name, n) == 0) {
      *STRS[i].value = v;
      return 0;
    }
  }
  for (size_t i = 0; i < sizeof LONGS / sizeof LONGS[0]; i++) {
    if (strlen(LONGS[i].name) != n || strncmp(arg, LONGS[i].name, n) != 0)
      continue;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < LONGS[i].min ||
        x > LONGS[i].max)
      return -1;
    *LONGS[i].value = x;
    return 0;
  }
  return -1;
}

/* ---- shared state and small helpers ------------------------------------ */
/* Threads update their own counters; the main thread reads them for the
 * progress lines while they run (a soak report, not a test: a count off
 * by one there is harmless) and for the checks only after joining. */

enum { IO_MS = 10000 };

#define SRC_GOOD "127.0.0.1"
#define SRC_FLOOD "127.0.0.2"
#define SRC_NOISY "127.0.0.3"
#define SRC_HTTP "127.0.0.4"
#define FIRE_TOPIC "abuse.fire"
#define PAIR_TOPIC "pair.t"

static int g_port, g_http_port;
static atomic_int g_stop;      /* 1: the run is over, abusers stop */
static atomic_int g_go;        /* 1: set-up done, load starts */
static int64_t g_start_ms;     /* when the load started */
static atomic_llong g_stop_ms; /* when g_stop was set */

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static bool stopping(void) {
  return atomic_load(&g_stop) != 0;
}

/* Once a second: sleeps until *next + 1 s (from now if that is past, so a
 * slow round does not cause a burst), or until the run stops. */
static void wait_next_second(int64_t *next) {
  *next += 1000;
  int64_t now = tt_now_ms();
  if (*next < now)
    *next = now;
  while (!stopping() && tt_now_ms() < *next)
    sleep_ms(20);
}

/* A TCP socket from src to 127.0.0.1:port, connected within timeout_ms
 * (rcvbuf > 0: SO_RCVBUF before connect). Left non-blocking: the wire
 * helpers poll. The fd, or -errno. */
static int dial(const char *src, int port, int rcvbuf, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, src, &sa.sin_addr);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
    return fd;
  if (errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    return -e;
  }
  if (timeout_ms == 0)
    return fd; /* the caller polls for POLLOUT itself */
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  int r;
  do {
    r = poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  int err = 0;
  socklen_t len = sizeof err;
  if (r == 0)
    err = ETIMEDOUT;
  else if (r < 0)
    err = errno;
  else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  if (err != 0) {
    close(fd);
    return -err;
  }
  return fd;
}

/* The peer closed or reset fd (data still unread is no closure). */
static bool peer_closed(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLRDHUP};
  return poll(&p, 1, 0) == 1 &&
         (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void encode_login(tp_buf_t *out, const char *user, const char *pass) {
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = TP_PROTO_VERSION;
  f.u.connect.user.ptr = user;
  f.u.connect.user.len = (uint32_t)strlen(user);
  f.u.connect.pass.ptr = pass;
  f.u.connect.pass.len = (uint32_t)strlen(pass);
  tt_wire_encode(out, &f);
}

/* Answers the broker's PINGs on a connection that otherwise only writes;
 * -1 once the broker closed it. */
static int answer_pings(tt_wire_t *w) {
  static const uint8_t pong[] = {0, 0, 0, 2, 0x91, TP_PONG};
  for (;;) {
    tp_frame_t f;
    int r = tt_wire_recv(w, &f, 0);
    if (r == 0)
      return 0;
    if (r != 1)
      return -1;
    if (f.type == TP_PING)
      tt_send_try(w->fd, pong, sizeof pong, 1000);
  }
}

/* Sends all of buf, however long the broker takes to read it, until
 * grace_ms after the end of the run: 0, -ETIMEDOUT then, or -errno. */
static int send_paced(int fd, const void *buf, size_t len, long grace_ms) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      return -errno;
    if (n == 0)
      return -EPIPE;
    int64_t stop_ms = atomic_load(&g_stop_ms);
    if (stop_ms > 0 && tt_now_ms() > stop_ms + grace_ms)
      return -ETIMEDOUT;
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    poll(&pf, 1, 100);
  }
  return 0;
}

typedef struct maxstat {
  long count, max;
  double sum;
} maxstat_t;

static void maxstat_add(maxstat_t *m, long v) {
  m->count++;
  m->sum += (double)v;
  if (v > m->max)
    m->max = v;
}

static long rounded_avg(const maxstat_t *m) {
  return m->count > 0 ? (long)(m->sum / (double)m->count + 0.5) : 0;
}

/* ---- the good pair ----------------------------------------------------- */

static struct {
  atomic_int sub_ready;
  atomic_llong first_pub_ms; /* when the first PUB went out, 0 before */
  atomic_uint sent;          /* published so far */
  atomic_int pub_done;       /* 1: sent is final (publisher returned) */
  int pub_ok;                /* its final PING was answered */
  char pub_failure[160];
  /* subscriber */
  atomic_uint got;
  atomic_long max_gap_ms;
  long max_latency_ms;
  int64_t max_gap_at_ms; /* run time (ms) when the largest gap ended */
  int drained;
  char sub_failure[160];
} pair;

static void *pair_sub_main(void *arg) {
  (void)arg;
  tt_wire_t w = {.fd = -1};
  tp_buf_t out;
  tp_buf_init(&out);
  encode_login(&out, P.pair_user, P.pair_pass);
  tt_wire_encode_sub(&out, 1, PAIR_TOPIC, NULL, 0, TP_OVERFLOW_BLOCK);
  tt_wire_encode_ping(&out);
  int fd = dial(SRC_GOOD, g_port, 0, IO_MS);
  int err = 0;
  if (fd < 0 || tt_wire_init(&w, fd) != 0 ||
      tt_send_try(fd, out.data, out.len, IO_MS) != 0 ||
      tt_wire_wait_pong(&w, IO_MS, &err) != 1 || err != 0) {
    snprintf(pair.sub_failure, sizeof pair.sub_failure,
             "subscriber could not log in and subscribe (ERR %d)", err);
    atomic_store(&pair.sub_ready, -1);
    tt_wire_free(&w);
    tp_buf_free(&out);
    return NULL;
  }
  tp_buf_free(&out);
  atomic_store(&pair.sub_ready, 1);
  static const uint8_t pong[] = {0, 0, 0, 2, 0x91, TP_PONG};
  int64_t last_rx = 0; /* 0: nothing published yet */
  int64_t drain_deadline = 0;
  for (;;) {
    tp_frame_t f;
    int r = tt_wire_recv(&w, &f, 50);
    int64_t now = tt_now_ms();
    if (last_rx == 0)
      last_rx = atomic_load(&pair.first_pub_ms);
    int64_t stop_ms = atomic_load(&g_stop_ms);
    /* Gaps count while the publisher publishes: up to g_stop. */
    int64_t upto = stop_ms > 0 && now > stop_ms ? stop_ms : now;
    if (last_rx > 0 && upto - last_rx > atomic_load(&pair.max_gap_ms)) {
      atomic_store(&pair.max_gap_ms, (long)(upto - last_rx));
      pair.max_gap_at_ms = upto - g_start_ms;
    }
    if (r < 0) {
      snprintf(pair.sub_failure, sizeof pair.sub_failure,
               "subscriber's connection lost (%d) after %u messages", r,
               atomic_load(&pair.got));
      break;
    }
    if (r == 1) {
      if (f.type == TP_PING) {
        tt_send_try(w.fd, pong, sizeof pong, IO_MS);
      } else if (f.type == TP_MSG && f.u.msg.payload.len >= 12) {
        uint32_t seq = tt_get_seq(f.u.msg.payload.ptr);
        uint32_t want = atomic_load(&pair.got);
        if (seq != want) {
          snprintf(pair.sub_failure, sizeof pair.sub_failure,
                   "message %u where %u was due", seq, want);
          break;
        }
        int64_t sent_ms;
        memcpy(&sent_ms, f.u.msg.payload.ptr + 4, sizeof sent_ms);
        if (now - sent_ms > pair.max_latency_ms)
          pair.max_latency_ms = (long)(now - sent_ms);
        atomic_store(&pair.got, want + 1);
        last_rx = now;
      } else if (f.type == TP_DROPPED) {
        snprintf(pair.sub_failure, sizeof pair.sub_failure,
                 "DROPPED %llu on the block subscription",
                 (unsigned long long)f.u.dropped.count);
        break;
      } else if (f.type == TP_ERR) {
        snprintf(pair.sub_failure, sizeof pair.sub_failure,
                 "ERR %u on the subscriber", (unsigned)f.u.err.code);
        break;
      }
    }
    if (atomic_load(&pair.pub_done) &&
        atomic_load(&pair.got) == atomic_load(&pair.sent)) {
      pair.drained = 1;
      break;
    }
    if (stop_ms > 0) {
      /* The publisher's PING gets drain_ms, the last MSG a second more. */
      if (drain_deadline == 0)
        drain_deadline = stop_ms + P.drain_ms + 1000;
      if (now > drain_deadline) {
        /* The next message, published just after the last one received,
         * has waited at least this long. */
        if (last_rx > 0 && now - last_rx > pair.max_latency_ms)
          pair.max_latency_ms = (long)(now - last_rx);
        snprintf(pair.sub_failure, sizeof pair.sub_failure,
                 "not drained %ld ms after the publisher stopped: %u "
                 "messages never arrived",
                 P.drain_ms, atomic_load(&pair.sent) - atomic_load(&pair.got));
        break;
      }
    }
  }
  tt_wire_free(&w);
  return NULL;
}

static void *pair_pub_main(void *arg) {
  (void)arg;
  tt_wire_t w = {.fd = -1};
  tp_buf_t out;
  tp_buf_init(&out);
  encode_login(&out, P.pair_user, P.pair_pass);
  tt_wire_encode_ping(&out);
  int fd = dial(SRC_GOOD, g_port, 0, IO_MS);
  int err = 0;
  if (fd < 0 || tt_wire_init(&w, fd) != 0 ||
      tt_send_try(fd, out.data, out.len, IO_MS) != 0 ||
      tt_wire_wait_pong(&w, IO_MS, &err) != 1 || err != 0) {
    snprintf(pair.pub_failure, sizeof pair.pub_failure,
             "publisher could not log in (ERR %d)", err);
    atomic_store(&pair.pub_done, 1);
    tt_wire_free(&w);
    tp_buf_free(&out);
    return NULL;
  }
  while (!atomic_load(&g_go) && answer_pings(&w) == 0)
    sleep_ms(5);
  uint8_t payload[16] = {0};
  uint32_t sent = 0;
  int64_t base = tt_now_ms(); /* the pace restarts after a stall */
  uint32_t base_sent = 0;
  while (!stopping()) {
    int64_t now = tt_now_ms();
    int64_t due = (now - base) * P.pair_rate / 1000 - (sent - base_sent);
    if (due > P.pair_rate / 10) { /* more than 100 ms behind: no burst */
      base = now;
      base_sent = sent;
      due = 1;
    }
    if (due > 0) {
      tp_buf_reset(&out);
      for (int64_t i = 0; i < due; i++) {
        tt_put_seq(payload, sent + (uint32_t)i);
        memcpy(payload + 4, &now, sizeof now);
        tt_wire_encode_pub(&out, PAIR_TOPIC, payload, sizeof payload, 0);
      }
      long long expected = 0; /* atomic_llong's own type (clang) */
      atomic_compare_exchange_strong(&pair.first_pub_ms, &expected, now);
      /* A paused publisher waits here, until drain_ms after the run. */
      int rc = send_paced(w.fd, out.data, out.len, P.drain_ms);
      if (rc != 0) {
        snprintf(pair.pub_failure, sizeof pair.pub_failure,
                 "publisher's send failed: %s", strerror(-rc));
        break;
      }
      sent += (uint32_t)due;
      atomic_store(&pair.sent, sent);
    }
    if (answer_pings(&w) != 0) {
      snprintf(pair.pub_failure, sizeof pair.pub_failure,
               "publisher's connection closed by the broker");
      break;
    }
    sleep_ms(5);
  }
  if (pair.pub_failure[0] == '\0') {
    /* Everything sent is handled within drain_ms after the run. */
    int left = (int)(atomic_load(&g_stop_ms) + P.drain_ms - tt_now_ms());
    if (left < 1000)
      left = 1000;
    tp_buf_reset(&out);
    tt_wire_encode_ping(&out);
    pair.pub_ok = tt_send_try(w.fd, out.data, out.len, left) == 0 &&
                  tt_wire_wait_pong(&w, left, &err) == 1 && err == 0;
    if (!pair.pub_ok && err != 0)
      snprintf(pair.pub_failure, sizeof pair.pub_failure,
               "ERR %d on the publisher", err);
  }
  atomic_store(&pair.pub_done, 1);
  tt_wire_free(&w);
  tp_buf_free(&out);
  return NULL;
}

/* ---- non-readers and the firehose -------------------------------------- */

typedef struct nonreader {
  int fd;
  int policy;
  int64_t expires_ms; /* replaced then (0: never) */
} nonreader_t;

static nonreader_t *g_nr;
static atomic_int g_nr_ready; /* 1: the non-readers' set-up is done */
static struct {
  long reopened, replaced, closed_by_broker[5], fire_sent, fire_reconnects;
  int initial_ok;
} noisy;

static int nr_policy(long i) {
  switch (i % 10) {
  case 0:
    return TP_OVERFLOW_BLOCK;
  case 1:
    return TP_OVERFLOW_DISCONNECT;
  case 2:
    return TP_OVERFLOW_DROP_OLDEST;
  default:
    return TP_OVERFLOW_DROP_NEWEST;
  }
}

/* Opens non-reader i: login, its subscriptions, and a PING when wait_pong
 * (then waited for). The fd stays in g_nr[i].fd (-1 on failure). */
static int nr_open(long i, bool wait_pong) {
  g_nr[i].policy = nr_policy(i);
  g_nr[i].fd = -1;
  tp_buf_t out;
  tp_buf_init(&out);
  encode_login(&out, P.noisy_user, P.noisy_pass);
  tt_wire_encode_sub(&out, 1, FIRE_TOPIC, NULL, 0, g_nr[i].policy);
  for (long j = 0; j < P.nonreader_subs; j++) {
    char pat[64];
    snprintf(pat, sizeof pat, "abuse.idle.%ld.%ld.*", i, j);
    tt_wire_encode_sub(&out, (uint64_t)(2 + j), pat, NULL, 0,
                       TP_OVERFLOW_UNSET);
  }
  if (wait_pong)
    tt_wire_encode_ping(&out);
  int fd = dial(SRC_NOISY, g_port, 4096, IO_MS);
  int rc = -1;
  if (fd >= 0 && tt_send_try(fd, out.data, out.len, IO_MS) == 0) {
    g_nr[i].fd = fd;
    rc = 0;
  } else if (fd >= 0) {
    close(fd);
  }
  tp_buf_free(&out);
  return rc;
}

static void *nonreaders_main(void *arg) {
  (void)arg;
  /* Set-up, a few logins at a time: the point is the load they make once
   * subscribed, not a login storm (the flood is that). A failed one is
   * tried again once. */
  enum { BATCH = 4 };
  bool *fresh = calloc((size_t)P.nonreaders + 1, sizeof *fresh);
  for (int attempt = 0; attempt < 2 && fresh != NULL; attempt++) {
    for (long b = 0; b < P.nonreaders; b += BATCH) {
      long e = b + BATCH < P.nonreaders ? b + BATCH : P.nonreaders;
      for (long i = b; i < e; i++) {
        fresh[i] = attempt == 0 || g_nr[i].fd < 0;
        if (fresh[i])
          nr_open(i, true);
      }
      for (long i = b; i < e; i++) {
        if (!fresh[i] || g_nr[i].fd < 0)
          continue;
        tt_wire_t w;
        int err = 0;
        if (tt_wire_init(&w, g_nr[i].fd) == 0 &&
            tt_wire_wait_pong(&w, 30000, &err) == 1 && err == 0) {
          noisy.initial_ok++;
          w.fd = -1; /* the socket stays open; only the reader goes */
        } else {
          g_nr[i].fd = -1; /* tt_wire_free closes it */
        }
        tt_wire_free(&w);
      }
    }
  }
  free(fresh);
  atomic_store(&g_nr_ready, 1);
  while (!atomic_load(&g_go))
    sleep_ms(5);
  /* Reopen those the broker closed, 4 a second at most. A socket closed
   * with unread data behind it shows no FIN, so the heartbeat's closing
   * of a stale non-reader (~60-90 s) is not seen here: each is replaced
   * after nonreader_life_ms instead (the first time after 1 to 2 times
   * that, staggered), to keep the pressure on for the whole run. */
  int64_t go = tt_now_ms();
  for (long i = 0; i < P.nonreaders; i++)
    g_nr[i].expires_ms =
        P.nonreader_life_ms > 0
            ? go + P.nonreader_life_ms + P.nonreader_life_ms * i / P.nonreaders
            : 0;
  while (!stopping()) {
    int budget = 2;
    int64_t now = tt_now_ms();
    for (long i = 0; i < P.nonreaders; i++) {
      if (g_nr[i].fd >= 0 && peer_closed(g_nr[i].fd)) {
        close(g_nr[i].fd);
        g_nr[i].fd = -1;
        noisy.closed_by_broker[g_nr[i].policy]++;
      }
      bool old = g_nr[i].expires_ms > 0 && now >= g_nr[i].expires_ms;
      if ((g_nr[i].fd < 0 || old) && budget > 0) {
        budget--;
        if (g_nr[i].fd >= 0) {
          tt_wire_reset(g_nr[i].fd);
          g_nr[i].fd = -1;
          noisy.replaced++;
        }
        if (nr_open(i, false) == 0)
          noisy.reopened++;
        g_nr[i].expires_ms =
            P.nonreader_life_ms > 0 ? now + P.nonreader_life_ms : 0;
      }
    }
    sleep_ms(500);
  }
  return NULL;
}

static void *firehose_main(void *arg) {
  (void)arg;
  uint8_t *payload = calloc(1, (size_t)P.fire_size);
  tp_buf_t out;
  tp_buf_init(&out);
  while (!atomic_load(&g_go))
    sleep_ms(5);
  while (!stopping()) {
    tt_wire_t w = {.fd = -1};
    tp_buf_reset(&out);
    encode_login(&out, P.noisy_user, P.noisy_pass);
    int fd = dial(SRC_NOISY, g_port, 0, IO_MS);
    if (fd < 0 || tt_wire_init(&w, fd) != 0 ||
        tt_send_try(fd, out.data, out.len, IO_MS) != 0) {
      tt_wire_free(&w);
      noisy.fire_reconnects++;
      sleep_ms(1000);
      continue;
    }
    int64_t base = tt_now_ms();
    long base_sent = noisy.fire_sent;
    while (!stopping()) {
      int64_t now = tt_now_ms();
      int64_t due =
          (now - base) * P.fire_rate / 1000 - (noisy.fire_sent - base_sent);
      if (due > P.fire_rate / 10 + 1) {
        base = now;
        base_sent = noisy.fire_sent;
        due = P.fire_rate / 200 + 1;
      }
      if (due > 0) {
        tp_buf_reset(&out);
        for (int64_t i = 0; i < due; i++) {
          tt_put_seq(payload, (uint32_t)(noisy.fire_sent + i));
          tt_wire_encode_pub(&out, FIRE_TOPIC, payload, (size_t)P.fire_size, 0);
        }
        /* A paused firehose waits, but gives up at the end of the run. */
        if (send_paced(w.fd, out.data, out.len, 0) != 0)
          break;
        noisy.fire_sent += due;
      }
      if (answer_pings(&w) != 0)
        break;
      sleep_ms(5);
    }
    tt_wire_reset(w.fd);
    w.fd = -1;
    tt_wire_free(&w);
    if (!stopping()) {
      noisy.fire_reconnects++;
      sleep_ms(200);
    }
  }
  tp_buf_free(&out);
  free(payload);
  return NULL;
}

/* ---- login flood and good logins --------------------------------------- */

static struct {
  long attempts, connect_failed, refused, abandoned, open_max;
} flood;

enum { FLOOD_SLOTS = 1024, FLOOD_PATIENCE_MS = 3000 };

static void *flood_main(void *arg) {
  (void)arg;
  struct {
    int fd;
    int64_t t0;
    bool sent;
  } slot[FLOOD_SLOTS];
  struct pollfd pfd[FLOOD_SLOTS];
  int n = 0;
  tp_buf_t bad;
  tp_buf_init(&bad);
  char badpass[64];
  snprintf(badpass, sizeof badpass, "%s-wrong", P.pair_pass);
  encode_login(&bad, P.pair_user, badpass);
  while (!atomic_load(&g_go))
    sleep_ms(5);
  int64_t base = tt_now_ms();
  long opened = 0;
  while (!stopping()) {
    int64_t now = tt_now_ms();
    long due = (long)((now - base) * P.flood_rate / 1000) - opened;
    for (; due > 0 && n < FLOOD_SLOTS; due--) {
      opened++;
      flood.attempts++;
      int fd = dial(SRC_FLOOD, g_port, 0, 0);
      if (fd < 0) {
        flood.connect_failed++;
        continue;
      }
      slot[n].fd = fd;
      slot[n].t0 = now;
      slot[n].sent = false;
      n++;
    }
    if (due > 0) /* every slot busy: skip, do not pile up */
      opened += due;
    if (n > flood.open_max)
      flood.open_max = n;
    for (int i = 0; i < n; i++) {
      pfd[i].fd = slot[i].fd;
      pfd[i].events = slot[i].sent ? POLLIN : POLLOUT;
      pfd[i].revents = 0;
    }
    poll(pfd, (nfds_t)n, 10);
    now = tt_now_ms();
    for (int i = 0; i < n; i++) {
      bool done = false;
      if (!slot[i].sent && (pfd[i].revents & POLLOUT)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(slot[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || send(slot[i].fd, bad.data, bad.len,
                             MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)bad.len) {
          flood.connect_failed++;
          done = true;
        } else {
          slot[i].sent = true;
        }
      } else if (slot[i].sent &&
                 (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        char sink[4096];
        ssize_t r = recv(slot[i].fd, sink, sizeof sink, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
          flood.refused++; /* HELLO, ERR 2 (or 7), close */
          done = true;
        }
      } else if (!slot[i].sent && (pfd[i].revents & (POLLHUP | POLLERR))) {
        flood.connect_failed++;
        done = true;
      }
      if (!done && now - slot[i].t0 > FLOOD_PATIENCE_MS) {
        flood.abandoned++;
        done = true;
      }
      if (done) {
        close(slot[i].fd);
        slot[i] = slot[n - 1];
        pfd[i] = pfd[n - 1];
        n--;
        i--;
      }
    }
  }
  for (int i = 0; i < n; i++)
    close(slot[i].fd);
  tp_buf_free(&bad);
  return NULL;
}

static struct {
  long ok, late, refused, timed_out, failed;
  maxstat_t ms;
  int errs[16];
  long first_bad_at_ms; /* run time of the first failure, -1 none */
} logins = {.first_bad_at_ms = -1};

static void *logins_main(void *arg) {
  (void)arg;
  tp_buf_t out;
  tp_buf_init(&out);
  encode_login(&out, P.pair_user, P.pair_pass);
  tt_wire_encode_ping(&out);
  while (!atomic_load(&g_go))
    sleep_ms(5);
  int64_t next = tt_now_ms();
  while (!stopping()) {
    int64_t t0 = tt_now_ms();
    /* Waits past the bound to say by how much a login was late. */
    int wait_ms = (int)(P.login_ms + 5000);
    tt_wire_t w = {.fd = -1};
    int fd = dial(SRC_GOOD, g_port, 0, wait_ms);
    int err = 0, r = -1;
    if (fd >= 0 && tt_wire_init(&w, fd) == 0 &&
        tt_send_try(fd, out.data, out.len, wait_ms) == 0)
      r = tt_wire_wait_pong(&w, wait_ms - (int)(tt_now_ms() - t0), &err);
    long ms = (long)(tt_now_ms() - t0);
    tt_wire_free(&w);
    bool bad = true;
    if (r == 1 && err == 0) {
      maxstat_add(&logins.ms, ms);
      if (ms <= P.login_ms) {
        logins.ok++;
        bad = false;
      } else {
        logins.late++;
      }
    } else if (err != 0) {
      logins.refused++;
      logins.errs[err & 15]++;
    } else if (r == 0) {
      logins.timed_out++;
    } else {
      logins.failed++;
    }
    if (bad && logins.first_bad_at_ms < 0)
      logins.first_bad_at_ms = (long)(t0 - g_start_ms);
    wait_next_second(&next);
  }
  tp_buf_free(&out);
  return NULL;
}

/* ---- monitoring port --------------------------------------------------- */

static int *g_idle, *g_unread;
static int64_t *g_unread_t0;
static struct {
  long idle_opened, idle_closed_by_broker, unread_sent, unread_closed_by_broker,
      open_failed;
} mon;

enum { UNREAD_HOLD_MS = 10000 };

static int idle_open(long i) {
  int fd = dial(SRC_HTTP, g_http_port, 0, 1000);
  if (fd < 0) {
    mon.open_failed++;
    return -1;
  }
  if (i % 2) { /* a request line that never ends */
    static const char part[] = "GET /healthz HTTP/1.1\r\n";
    send(fd, part, sizeof part - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  mon.idle_opened++;
  return fd;
}

static int unread_open(long i) {
  int fd = dial(SRC_HTTP, g_http_port, 4096, 1000);
  if (fd < 0) {
    mon.open_failed++;
    return -1;
  }
  char req[128];
  int n = snprintf(req, sizeof req, "GET /%s HTTP/1.1\r\nHost: soak\r\n\r\n",
                   i % 2 ? "connz" : "subz");
  send(fd, req, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
  mon.unread_sent++;
  return fd;
}

static void *monitor_abuse_main(void *arg) {
  (void)arg;
  for (long i = 0; i < P.http_idle; i++)
    g_idle[i] = idle_open(i);
  while (!atomic_load(&g_go))
    sleep_ms(5);
  for (long i = 0; i < P.http_unread; i++) {
    g_unread[i] = unread_open(i);
    g_unread_t0[i] = tt_now_ms();
  }
  long k = P.http_unread;
  while (!stopping()) {
    int budget = 10; /* reopened per 500 ms at most */
    int64_t now = tt_now_ms();
    for (long i = 0; i < P.http_idle; i++) {
      if (g_idle[i] >= 0 && peer_closed(g_idle[i])) {
        tt_wire_reset(g_idle[i]);
        g_idle[i] = -1;
        mon.idle_closed_by_broker++;
      }
      if (g_idle[i] < 0 && budget > 0) {
        budget--;
        g_idle[i] = idle_open(i);
      }
    }
    for (long i = 0; i < P.http_unread; i++) {
      bool old = now - g_unread_t0[i] > UNREAD_HOLD_MS;
      if (g_unread[i] >= 0 && (old || peer_closed(g_unread[i]))) {
        if (!old)
          mon.unread_closed_by_broker++;
        tt_wire_reset(g_unread[i]);
        g_unread[i] = -1;
      }
      if (g_unread[i] < 0 && budget > 0) {
        budget--;
        g_unread[i] = unread_open(k++);
        g_unread_t0[i] = now;
      }
    }
    sleep_ms(500);
  }
  return NULL;
}

/* GET path on the monitoring port from SRC_GOOD within timeout_ms: the
 * status code, -1 connect failed, -2 closed before an answer, -3 timed out.
 * The body (up to cap - 1 bytes) goes to body when not NULL. */
static int http_get(const char *path, int timeout_ms, char *body, size_t cap) {
  int64_t deadline = tt_now_ms() + timeout_ms;
  int fd = dial(SRC_GOOD, g_http_port, 0, timeout_ms);
  if (fd < 0)
    return fd == -ETIMEDOUT ? -3 : -1;
  char req[128];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n",
                   path);
  if (tt_send_try(fd, req, (size_t)n, timeout_ms) != 0) {
    close(fd);
    return -2;
  }
  char head[512];
  size_t hlen = 0, blen = 0;
  int status = -3;
  bool in_body = false;
  for (;;) {
    int64_t left = deadline - tt_now_ms();
    if (left <= 0)
      break;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)left) <= 0)
      continue;
    char buf[16384];
    ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
      continue;
    if (r <= 0) {
      if (status == -3)
        status = -2;
      break;
    }
    size_t off = 0;
    if (!in_body) {
      size_t take = (size_t)r < sizeof head - 1 - hlen ? (size_t)r
                                                       : sizeof head - 1 - hlen;
      memcpy(head + hlen, buf, take);
      hlen += take;
      head[hlen] = '\0';
      char *end = strstr(head, "\r\n\r\n");
      int code;
      if (sscanf(head, "HTTP/1.%*d %d", &code) == 1)
        status = code;
      if (end != NULL) {
        in_body = true;
        off = (size_t)(end + 4 - head) - (hlen - take);
        if (body == NULL)
          break;
      } else if (hlen == sizeof head - 1) {
        break;
      }
    }
    if (in_body && body != NULL && off < (size_t)r) {
      size_t take = (size_t)r - off;
      if (take > cap - 1 - blen)
        take = cap - 1 - blen;
      memcpy(body + blen, buf + off, take);
      blen += take;
    }
  }
  if (body != NULL)
    body[blen] = '\0';
  close(fd);
  return status;
}

static struct {
  long ok, slow, refused, closed, timed_out, other;
  maxstat_t ms;
  long first_bad_at_ms;
} probes = {.first_bad_at_ms = -1};

static void *probe_main(void *arg) {
  (void)arg;
  while (!atomic_load(&g_go))
    sleep_ms(5);
  int64_t next = tt_now_ms();
  while (!stopping()) {
    int64_t t0 = tt_now_ms();
    int st = http_get("/healthz", (int)P.probe_ms, NULL, 0);
    long ms = (long)(tt_now_ms() - t0);
    bool bad = true;
    if (st == 200) {
      maxstat_add(&probes.ms, ms);
      if (ms <= P.probe_ms) {
        probes.ok++;
        bad = false;
      } else {
        probes.slow++;
      }
    } else if (st == -1) {
      probes.refused++;
    } else if (st == -2) {
      probes.closed++;
    } else if (st == -3) {
      probes.timed_out++;
    } else {
      probes.other++;
    }
    if (bad && probes.first_bad_at_ms < 0)
      probes.first_bad_at_ms = (long)(t0 - g_start_ms);
    wait_next_second(&next);
  }
  return NULL;
}

/* Prints the /metrics lines that say what the broker did (informational:
 * metric names are not checked). */
static void print_metrics(void) {
  static char body[1 << 20];
  int st = http_get("/metrics", 5000, body, sizeof body);
  if (st != 200) {
    printf("  /metrics: no answer (%d)\n", st);
    return;
  }
  static const char *const keys[] = {"blocked", "pending", "drop",
                                     "slow",    "auth",    "connections",
                                     "reject",  "refused"};
  for (char *line = strtok(body, "\n"); line != NULL;
       line = strtok(NULL, "\n")) {
    if (line[0] == '#')
      continue;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
      if (strstr(line, keys[i]) != NULL) {
        printf("  metric %s\n", line);
        break;
      }
    }
  }
}

/* ---- main -------------------------------------------------------------- */

/* pid has exited: no /proc entry, or a zombie its parent has not reaped. */
static bool proc_gone(pid_t pid) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return true;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *rp = strrchr(buf, ')'); /* "pid (comm) S ..." */
  return rp == NULL || rp[1] == '\0' || rp[2] == 'Z' || rp[2] == 'X';
}

static int check(bool ok, const char *what) {
  printf("  %-4s %s\n", ok ? "ok" : "FAIL", what);
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: tern_soak_abuse PORT HTTP_PORT TERND_PID SECONDS "
                    "[name=value ...]\n");
    return 2;
  }
  for (int i = 5; i < argc; i++) {
    if (parse_param(argv[i]) != 0) {
      fprintf(stderr, "tern_soak_abuse: bad parameter '%s'\n", argv[i]);
      return 2;
    }
  }
  tt_ignore_sigpipe();
  g_port = atoi(argv[1]);
  g_http_port = atoi(argv[2]);
  pid_t pid = (pid_t)atoi(argv[3]);
  int seconds = atoi(argv[4]);
  if (g_port <= 0 || g_http_port <= 0 || pid <= 0 || seconds <= 0) {
    fprintf(stderr, "tern_soak_abuse: bad PORT, HTTP_PORT, PID or SECONDS\n");
    return 2;
  }
  g_nr = calloc((size_t)P.nonreaders + 1, sizeof *g_nr);
  g_idle = calloc((size_t)P.http_idle + 1, sizeof *g_idle);
  g_unread = calloc((size_t)P.http_unread + 1, sizeof *g_unread);
  g_unread_t0 = calloc((size_t)P.http_unread + 1, sizeof *g_unread_t0);
  if (!g_nr || !g_idle || !g_unread || !g_unread_t0)
    return 2;
  printf("abuse: %d s; bounds: stall %ld ms, login %ld ms, /healthz %ld ms, "
         "RSS %ld MiB\n"
         "abuse: pair %ld msgs/s; %ld non-readers (%ld subs each), firehose "
         "%ld msgs/s of %ld B; flood %ld bad logins/s; %ld idle + %ld unread "
         "HTTP sockets\n",
         seconds, P.max_stall_ms, P.login_ms, P.probe_ms, P.rss_mb, P.pair_rate,
         P.nonreaders, P.nonreader_subs, P.fire_rate, P.fire_size, P.flood_rate,
         P.http_idle, P.http_unread);
  fflush(stdout);

  /* Set-up before any abuse: the pair, the non-readers, the idle HTTP
   * sockets. */
  pthread_t th_sub, th_pub, th_nr, th_fire, th_flood, th_logins, th_mon,
      th_probe;
  pthread_create(&th_sub, NULL, pair_sub_main, NULL);
  while (atomic_load(&pair.sub_ready) == 0)
    sleep_ms(5);
  pthread_create(&th_pub, NULL, pair_pub_main, NULL);
  pthread_create(&th_nr, NULL, nonreaders_main, NULL);
  pthread_create(&th_mon, NULL, monitor_abuse_main, NULL);
  while (!atomic_load(&g_nr_ready))
    sleep_ms(10);
  printf("abuse: set-up: %d of %ld non-readers subscribed, pair %s\n",
         noisy.initial_ok, P.nonreaders,
         atomic_load(&pair.sub_ready) == 1 ? "subscribed" : "FAILED");
  fflush(stdout);
  pthread_create(&th_fire, NULL, firehose_main, NULL);
  pthread_create(&th_flood, NULL, flood_main, NULL);
  pthread_create(&th_logins, NULL, logins_main, NULL);
  pthread_create(&th_probe, NULL, probe_main, NULL);
  g_start_ms = tt_now_ms();
  atomic_store(&g_go, 1);

  long rss_max = 0;
  for (int s = 1; s <= seconds; s++) {
    int64_t until = g_start_ms + (int64_t)s * 1000;
    while (tt_now_ms() < until)
      sleep_ms(20);
    long rss = tt_proc_rss_kb(pid);
    if (rss > rss_max)
      rss_max = rss;
    if (s % 10 == 0 || s == seconds) {
      printf("abuse: %3ds pair sent %u got %u max gap %ld ms; logins ok %ld "
             "bad %ld; /healthz ok %ld bad %ld; flood %ld; fire %ld; RSS %ld "
             "MiB\n",
             s, atomic_load(&pair.sent), atomic_load(&pair.got),
             atomic_load(&pair.max_gap_ms), logins.ok,
             logins.late + logins.refused + logins.timed_out + logins.failed,
             probes.ok,
             probes.slow + probes.refused + probes.closed + probes.timed_out +
                 probes.other,
             flood.attempts, noisy.fire_sent, rss / 1024);
      fflush(stdout);
    }
  }
  atomic_store(&g_stop_ms, tt_now_ms());
  atomic_store(&g_stop, 1);
  pthread_join(th_logins, NULL);
  pthread_join(th_probe, NULL);
  pthread_join(th_flood, NULL);
  pthread_join(th_fire, NULL);
  pthread_join(th_pub, NULL);
  pthread_join(th_sub, NULL);
  pthread_join(th_nr, NULL);
  pthread_join(th_mon, NULL);
  long rss = tt_proc_rss_kb(pid);
  if (rss > rss_max)
    rss_max = rss;

  printf("abuse: results after %d s (non-readers and idle sockets still "
         "connected)\n",
         seconds);
  printf("  pair: sent %u, received %u in order; largest gap %ld ms (ending "
         "at %.1f s), largest delay (publish to receipt) %ld ms\n",
         atomic_load(&pair.sent), atomic_load(&pair.got),
         atomic_load(&pair.max_gap_ms), (double)pair.max_gap_at_ms / 1000.0,
         pair.max_latency_ms);
  if (pair.pub_failure[0])
    printf("  pair: publisher: %s\n", pair.pub_failure);
  if (pair.sub_failure[0])
    printf("  pair: subscriber: %s\n", pair.sub_failure);
  printf("  good logins: %ld within %ld ms, %ld late, %ld refused, %ld "
         "unanswered after %ld ms, %ld failed; latency avg %ld ms max %ld "
         "ms",
         logins.ok, P.login_ms, logins.late, logins.refused, logins.timed_out,
         P.login_ms + 5000, logins.failed, rounded_avg(&logins.ms),
         logins.ms.max);
  for (int e = 1; e < 16; e++)
    if (logins.errs[e])
      printf(", ERR %d x%d", e, logins.errs[e]);
  if (logins.first_bad_at_ms >= 0)
    printf("; first failure at %.1f s", (double)logins.first_bad_at_ms / 1000);
  printf("\n");
  printf("  /healthz: %ld answered 200 within %ld ms, %ld slower, %ld "
         "connect failed, %ld closed unanswered, %ld timed out, %ld other; "
         "latency avg %ld ms max %ld ms",
         probes.ok, P.probe_ms, probes.slow, probes.refused, probes.closed,
         probes.timed_out, probes.other, rounded_avg(&probes.ms),
         probes.ms.max);
  if (probes.first_bad_at_ms >= 0)
    printf("; first failure at %.1f s", (double)probes.first_bad_at_ms / 1000);
  printf("\n");
  printf("  flood: %ld bad logins tried, %ld refused by the broker, %ld "
         "abandoned unanswered after %d ms, %ld could not connect; %ld open "
         "at most\n",
         flood.attempts, flood.refused, flood.abandoned, FLOOD_PATIENCE_MS,
         flood.connect_failed, flood.open_max);
  printf(
      "  non-readers: %d of %ld subscribed at set-up; closed by the "
      "broker: block %ld, drop_oldest %ld, drop_newest %ld, disconnect "
      "%ld; %ld replaced after nonreader_life_ms; %ld reopened; firehose sent "
      "%ld (%ld reconnects)\n",
      noisy.initial_ok, P.nonreaders, noisy.closed_by_broker[1],
      noisy.closed_by_broker[2], noisy.closed_by_broker[3],
      noisy.closed_by_broker[4], noisy.replaced, noisy.reopened,
      noisy.fire_sent, noisy.fire_reconnects);
  printf("  monitoring abuse: %ld idle sockets opened, %ld closed by the "
         "broker; %ld unread /subz|/connz requests, %ld closed by the broker "
         "first; %ld could not connect\n",
         mon.idle_opened, mon.idle_closed_by_broker, mon.unread_sent,
         mon.unread_closed_by_broker, mon.open_failed);
  printf("  ternd RSS max %ld MiB (bound %ld MiB), VmHWM %ld MiB\n",
         rss_max / 1024, P.rss_mb, tt_proc_hwm_kb(pid) / 1024);
  print_metrics();

  int bad = 0;
  char what[256];
  bad += check(atomic_load(&pair.sub_ready) == 1 && pair.drained &&
                   pair.pub_failure[0] == '\0' && pair.sub_failure[0] == '\0' &&
                   atomic_load(&pair.sent) > 0,
               "the pair lost nothing: every message once, in order, no "
               "DROPPED, no ERR");
  snprintf(what, sizeof what,
           "the pair never stalled: largest gap %ld ms and largest delay %ld "
           "ms <= %ld ms%s",
           atomic_load(&pair.max_gap_ms), pair.max_latency_ms, P.max_stall_ms,
           pair.pub_ok || pair.pub_failure[0] != '\0'
               ? ""
               : "; the publisher's last PING unanswered");
  bad += check(atomic_load(&pair.max_gap_ms) <= P.max_stall_ms &&
                   pair.max_latency_ms <= P.max_stall_ms &&
                   (pair.pub_ok || pair.pub_failure[0] != '\0'),
               what);
  long lbad = logins.late + logins.refused + logins.timed_out + logins.failed;
  snprintf(what, sizeof what,
           "every good login answered within %ld ms: %ld of %ld", P.login_ms,
           logins.ok, logins.ok + lbad);
  bad += check(lbad == 0 && logins.ok > 0, what);
  long pbad = probes.slow + probes.refused + probes.closed + probes.timed_out +
              probes.other;
  snprintf(what, sizeof what,
           "every /healthz probe answered 200 within %ld ms: %ld of %ld",
           P.probe_ms, probes.ok, probes.ok + pbad);
  bad += check(pbad == 0 && probes.ok > 0, what);
  snprintf(what, sizeof what, "ternd RSS max %ld MiB <= %ld MiB",
           rss_max / 1024, P.rss_mb);
  bad += check(rss_max > 0 && rss_max <= P.rss_mb * 1024, what);
  fflush(stdout);

  if (P.term) {
    /* Shutdown with the abusers still connected and still not reading:
     * ternd must give up on them by its drain deadline and exit (the
     * script checks its exit status). */
    int64_t t0 = tt_now_ms();
    kill(pid, SIGTERM);
    while (!proc_gone(pid) && tt_now_ms() - t0 < 60000)
      sleep_ms(50);
    double took = (double)(tt_now_ms() - t0) / 1000.0;
    snprintf(what, sizeof what,
             "ternd exited %.1f s after SIGTERM with the abusers connected",
             took);
    if (!proc_gone(pid))
      snprintf(what, sizeof what,
               "ternd still running 60 s after SIGTERM with the abusers "
               "connected");
    bad += check(proc_gone(pid), what);
  }
  printf("abuse: %s\n", bad == 0 ? "PASS" : "FAIL");
  return bad == 0 ? 0 : 1;
}
