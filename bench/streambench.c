/*
 * streambench: durable streams side by side (issue 19). One program speaks
 * tern (PROTOCOL.md section 8), NATS JetStream (text protocol, JSON API)
 * and Redis Streams (RESP) on loopback, and measures, against a server
 * already running:
 *
 *   pub     acknowledged publishes: N messages of SIZE bytes, WINDOW acks
 *           outstanding (1 = one at a time); prints msgs/s
 *   replay  one consumer reads the N stored messages from the start
 *   fanout  4 consumers read them at once (total deliveries/s)
 *
 *   streambench tern|nats|redis pub|replay|fanout PORT N SIZE WINDOW STREAM
 *
 * The stream (tern: captures "<STREAM>.>", sync given by $TB_SYNC,
 * default interval; nats: file storage, subject "<STREAM>.>"; redis: the
 * key <STREAM>) is made by `pub` when absent. bench/run-streams.sh drives
 * it. Output: one line "RESULT <msgs/s>".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tern_proto/frame.h"
#include "tern_proto/mp.h"
#include "tern_proto/reader.h"

static void die(const char *m) {
  fprintf(stderr, "streambench: %s (%s)\n", m, strerror(errno));
  exit(1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
    die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      die("write");
    }
    c += w;
    n -= (size_t)w;
  }
}

/* A growable input buffer. */
typedef struct inbuf {
  char *d;
  size_t len, off, cap;
} inbuf_t;

static void in_fill(int fd, inbuf_t *b) {
  if (b->off > 0 && b->off == b->len)
    b->off = b->len = 0;
  if (b->off > b->cap / 2) {
    memmove(b->d, b->d + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
  }
  if (b->cap - b->len < 65536) {
    b->cap = b->cap ? b->cap * 2 : 1 << 20;
    b->d = realloc(b->d, b->cap);
    if (b->d == NULL)
      die("oom");
  }
  ssize_t r = read(fd, b->d + b->len, b->cap - b->len);
  if (r <= 0)
    die("read (server closed?)");
  b->len += (size_t)r;
}

static bool readable(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, ms) > 0;
}

/* ================= tern ================= */

typedef struct tconn {
  int fd;
  tp_reader_t *r;
  tp_buf_t out;
} tconn_t;

static void t_send(tconn_t *c, const tp_frame_t *f) {
  if (tp_frame_encode(&c->out, f) != 0)
    die("encode");
}
static void t_flush(tconn_t *c) {
  send_all(c->fd, c->out.data, c->out.len);
  tp_buf_reset(&c->out);
}
/* Next frame (blocking). */
static void t_next(tconn_t *c, tp_frame_t *f) {
  for (;;) {
    int rc = tp_reader_next(c->r, f);
    if (rc == 1)
      return;
    if (rc < 0)
      die("tern frame");
    uint8_t *p;
    size_t n;
    if (tp_reader_space(c->r, &p, &n) != 0)
      die("reader");
    ssize_t got = read(c->fd, p, n);
    if (got <= 0)
      die("read");
    tp_reader_commit(c->r, (size_t)got);
  }
}
static int t_try(tconn_t *c, tp_frame_t *f) {
  int rc = tp_reader_next(c->r, f);
  if (rc < 0)
    die("tern frame");
  return rc;
}
static void t_read_some(tconn_t *c) {
  uint8_t *p;
  size_t n;
  if (tp_reader_space(c->r, &p, &n) != 0)
    die("reader");
  ssize_t got = read(c->fd, p, n);
  if (got <= 0)
    die("read");
  tp_reader_commit(c->r, (size_t)got);
}

static void t_open(tconn_t *c, int port) {
  c->fd = dial(port);
  if (tp_reader_create(&c->r, 2u << 20, 1u << 20) != 0)
    die("reader");
  tp_buf_init(&c->out);
  tp_frame_t f;
  t_next(c, &f); /* HELLO */
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = 1;
  f.u.connect.echo = true;
  t_send(c, &f);
  t_flush(c);
  t_next(c, &f);
  if (f.type != TP_OK)
    die("CONNECT refused");
}

static void t_sub(tconn_t *c, uint64_t sid, const char *pattern,
                  uint64_t max_msgs) {
  tp_frame_t f;
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = sid;
  f.u.sub.pattern = (tp_str_t){pattern, (uint32_t)strlen(pattern)};
  f.u.sub.max_msgs = max_msgs;
  f.u.sub.overflow = TP_OVERFLOW_BLOCK;
  t_send(c, &f);
}

static void t_pub(tconn_t *c, const char *topic, const void *p, size_t n,
                  const char *reply) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = (tp_str_t){topic, (uint32_t)strlen(topic)};
  f.u.pub.payload = (tp_bytes_t){p, (uint32_t)n};
  if (reply)
    f.u.pub.reply = (tp_str_t){reply, (uint32_t)strlen(reply)};
  t_send(c, &f);
}

/* A request; waits for the MSG on sid 99. */
static void t_request(tconn_t *c, const char *topic, const tp_buf_t *body) {
  t_sub(c, 99, "_bench.api", 0);
  t_pub(c, topic, body ? body->data : NULL, body ? body->len : 0, "_bench.api");
  t_flush(c);
  tp_frame_t f;
  do
    t_next(c, &f);
  while (f.type != TP_MSG || f.u.msg.sid != 99);
  tp_frame_init(&f, TP_UNSUB);
  f.u.unsub.sid = 99;
  t_send(c, &f);
  t_flush(c);
}

static double tern_pub(int port, long n, size_t size, long window,
                       const char *stream) {
  tconn_t c;
  t_open(&c, port);
  tp_buf_t b;
  tp_buf_init(&b);
  char topic[128], api[160];
  const char *sync = getenv("TB_SYNC") ? getenv("TB_SYNC") : "interval";
  tp_mp_map(&b, 3);
  tp_mp_cstr(&b, "topics");
  tp_mp_array(&b, 1);
  snprintf(topic, sizeof topic, "%s.>", stream);
  tp_mp_cstr(&b, topic);
  tp_mp_kv_str(&b, "sync", sync);
  tp_mp_kv_uint(&b, "dedup_window_ms", 0);
  snprintf(api, sizeof api, "$TS.API.STREAM.CREATE.%s", stream);
  t_request(&c, api, &b);
  snprintf(topic, sizeof topic, "%s.x", stream);
  char *payload = calloc(1, size + 1);
  memset(payload, 'x', size);
  t_sub(&c, 1, "_bench.ack", 0);
  t_flush(&c);
  long sent = 0, acked = 0;
  double t0 = now_s();
  while (acked < n) {
    while (sent < n && sent - acked < window) {
      t_pub(&c, topic, payload, size, "_bench.ack");
      sent++;
    }
    if (c.out.len)
      t_flush(&c);
    tp_frame_t f;
    int got = 0;
    while (t_try(&c, &f) == 1) {
      if (f.type == TP_MSG && f.u.msg.sid == 1)
        got++;
      else if (f.type == TP_ERR)
        die("ERR from ternd");
    }
    acked += got;
    if (got == 0)
      t_read_some(&c);
  }
  return (double)n / (now_s() - t0);
}

typedef struct rd_arg {
  int proto; /* 0 tern 1 nats 2 redis */
  int port;
  long n;
  int idx;
  const char *stream;
  double rate;
  pthread_barrier_t *go;
} rd_arg_t;

static void *tern_reader(void *p) {
  rd_arg_t *a = p;
  tconn_t c;
  t_open(&c, a->port);
  char deliver[64], api[192];
  snprintf(deliver, sizeof deliver, "_bench.d%d", a->idx);
  t_sub(&c, 1, deliver, 65536);
  tp_buf_t b;
  tp_buf_init(&b);
  tp_mp_map(&b, 3);
  tp_mp_kv_str(&b, "push", deliver);
  tp_mp_kv_str(&b, "ack", "none");
  tp_mp_kv_str(&b, "deliver", "all");
  pthread_barrier_wait(a->go);
  double t0 = now_s();
  snprintf(api, sizeof api, "$TS.API.CONSUMER.CREATE.%s", a->stream);
  t_sub(&c, 99, "_bench.api", 0);
  t_pub(&c, api, b.data, b.len, "_bench.api");
  t_flush(&c);
  long got = 0;
  while (got < a->n) {
    tp_frame_t f;
    while (got < a->n && t_try(&c, &f) == 1)
      if (f.type == TP_MSG && f.u.msg.sid == 1)
        got++;
    if (got < a->n)
      t_read_some(&c);
  }
  a->rate = (double)a->n / (now_s() - t0);
  close(c.fd);
  return NULL;
}

/* ================= NATS ================= */

/* Waits for and counts MSG lines for sid (or any when sid < 0); answers
 * PING. Returns the number of MSGs consumed from b (parses what is
 * there). Sets *json to the last payload when asked. */
static long n_parse(int fd, inbuf_t *b, char *last, size_t lastcap) {
  long msgs = 0;
  for (;;) {
    char *s = b->d + b->off, *end = b->d + b->len;
    char *nl = memmem(s, (size_t)(end - s), "\r\n", 2);
    if (nl == NULL)
      return msgs;
    if (strncmp(s, "MSG ", 4) == 0) {
      /* MSG subj sid [reply] len */
      char *sp = nl;
      while (sp > s && sp[-1] != ' ')
        sp--;
      long len = strtol(sp, NULL, 10);
      if (end - (nl + 2) < len + 2)
        return msgs;
      if (last) {
        size_t k = (size_t)len < lastcap - 1 ? (size_t)len : lastcap - 1;
        memcpy(last, nl + 2, k);
        last[k] = '\0';
      }
      b->off = (size_t)(nl + 2 + len + 2 - b->d);
      msgs++;
    } else if (strncmp(s, "PING", 4) == 0) {
      send_all(fd, "PONG\r\n", 6);
      b->off = (size_t)(nl + 2 - b->d);
    } else if (strncmp(s, "-ERR", 4) == 0) {
      fprintf(stderr, "nats: %.*s\n", (int)(nl - s), s);
      exit(1);
    } else {
      b->off = (size_t)(nl + 2 - b->d); /* INFO, +OK, PONG */
    }
  }
}

static int n_open(int port, inbuf_t *b) {
  int fd = dial(port);
  const char *c = "CONNECT {\"verbose\":false,\"pedantic\":false,"
                  "\"headers\":true,\"no_responders\":true}\r\nPING\r\n";
  send_all(fd, c, strlen(c));
  memset(b, 0, sizeof *b);
  for (;;) {
    in_fill(fd, b);
    if (memmem(b->d, b->len, "PONG\r\n", 6) != NULL)
      break;
  }
  b->off = b->len = 0;
  return fd;
}

static void n_request(int fd, inbuf_t *b, const char *subj, const char *json,
                      char *out, size_t outcap) {
  char hdr[512];
  int k = snprintf(hdr, sizeof hdr,
                   "SUB _bench.api 99\r\nPUB %s _bench.api %zu\r\n", subj,
                   strlen(json));
  send_all(fd, hdr, (size_t)k);
  send_all(fd, json, strlen(json));
  send_all(fd, "\r\nUNSUB 99 1\r\n", 14);
  while (n_parse(fd, b, out, outcap) == 0)
    in_fill(fd, b);
}

static double nats_pub(int port, long n, size_t size, long window,
                       const char *stream) {
  inbuf_t b;
  int fd = n_open(port, &b);
  char subj[128], json[512], reply[4096];
  snprintf(json, sizeof json,
           "{\"name\":\"%s\",\"subjects\":[\"%s.>\"],\"storage\":\"file\","
           "\"duplicate_window\":0}",
           stream, stream);
  snprintf(subj, sizeof subj, "$JS.API.STREAM.CREATE.%s", stream);
  n_request(fd, &b, subj, json, reply, sizeof reply);
  snprintf(subj, sizeof subj, "%s.x", stream);
  char *payload = calloc(1, size + 1);
  memset(payload, 'x', size);
  send_all(fd, "SUB _bench.ack 1\r\n", 18);
  char head[256];
  int hl = snprintf(head, sizeof head, "PUB %s _bench.ack %zu\r\n", subj, size);
  size_t one = (size_t)hl + size + 2;
  char *frame = malloc(one);
  memcpy(frame, head, (size_t)hl);
  memcpy(frame + hl, payload, size);
  memcpy(frame + hl + size, "\r\n", 2);
  char *out = malloc(one * (size_t)(window > 4096 ? 4096 : window));
  long sent = 0, acked = 0;
  double t0 = now_s();
  while (acked < n) {
    size_t ol = 0;
    while (sent < n && sent - acked < window && ol + one <= one * 4096) {
      memcpy(out + ol, frame, one);
      ol += one;
      sent++;
    }
    if (ol)
      send_all(fd, out, ol);
    long got = n_parse(fd, &b, NULL, 0);
    acked += got;
    if (got == 0)
      in_fill(fd, &b);
  }
  return (double)n / (now_s() - t0);
}

static void *nats_reader(void *p) {
  rd_arg_t *a = p;
  inbuf_t b;
  int fd = n_open(a->port, &b);
  char deliver[64], subj[192], json[512], sub[128];
  snprintf(deliver, sizeof deliver, "_bench.d%d", a->idx);
  int k = snprintf(sub, sizeof sub, "SUB %s 1\r\n", deliver);
  send_all(fd, sub, (size_t)k);
  snprintf(json, sizeof json,
           "{\"stream_name\":\"%s\",\"config\":{\"deliver_subject\":\"%s\","
           "\"ack_policy\":\"none\",\"deliver_policy\":\"all\"}}",
           a->stream, deliver);
  snprintf(subj, sizeof subj, "$JS.API.CONSUMER.CREATE.%s", a->stream);
  pthread_barrier_wait(a->go);
  double t0 = now_s();
  k = snprintf(sub, sizeof sub,
               "SUB _bench.api 99\r\nPUB %s _bench.api %zu\r\n", subj,
               strlen(json));
  send_all(fd, sub, (size_t)k);
  send_all(fd, json, strlen(json));
  send_all(fd, "\r\n", 2);
  long got = -1; /* the API's answer is one MSG too */
  while (got < a->n) {
    long m = n_parse(fd, &b, NULL, 0);
    got += m;
    if (got < a->n)
      in_fill(fd, &b);
  }
  a->rate = (double)a->n / (now_s() - t0);
  close(fd);
  return NULL;
}

/* ================= Redis ================= */

/* Skips one RESP value at p; returns its end or NULL when incomplete. For
 * an XREAD entry id (a bulk string), *id gets it when asked. */
static const char *r_skip(const char *p, const char *end) {
  if (p >= end)
    return NULL;
  const char *nl = memmem(p, (size_t)(end - p), "\r\n", 2);
  if (nl == NULL)
    return NULL;
  long n = strtol(p + 1, NULL, 10);
  switch (*p) {
  case '+':
  case '-':
  case ':':
    return nl + 2;
  case '$':
    if (n < 0)
      return nl + 2;
    return end - (nl + 2) >= n + 2 ? nl + 2 + n + 2 : NULL;
  case '*': {
    const char *q = nl + 2;
    for (long i = 0; i < n; i++) {
      q = r_skip(q, end);
      if (q == NULL)
        return NULL;
    }
    return q;
  }
  default:
    fprintf(stderr, "redis: %.*s\n", (int)(nl - p), p);
    exit(1);
  }
}

static void r_cmd(int fd, int argc, const char **argv, const size_t *lens) {
  char h[64];
  int k = snprintf(h, sizeof h, "*%d\r\n", argc);
  send_all(fd, h, (size_t)k);
  for (int i = 0; i < argc; i++) {
    size_t l = lens ? lens[i] : strlen(argv[i]);
    k = snprintf(h, sizeof h, "$%zu\r\n", l);
    send_all(fd, h, (size_t)k);
    send_all(fd, argv[i], l);
    send_all(fd, "\r\n", 2);
  }
}

static double redis_pub(int port, long n, size_t size, long window,
                        const char *stream) {
  int fd = dial(port);
  inbuf_t b = {0};
  char *payload = calloc(1, size + 1);
  memset(payload, 'x', size);
  char one[128];
  int hl = snprintf(
      one, sizeof one,
      "*5\r\n$4\r\nXADD\r\n$%zu\r\n%s\r\n$1\r\n*\r\n$1\r\nf\r\n$%zu\r\n",
      strlen(stream), stream, size);
  size_t fl = (size_t)hl + size + 2;
  char *frame = malloc(fl);
  memcpy(frame, one, (size_t)hl);
  memcpy(frame + hl, payload, size);
  memcpy(frame + hl + size, "\r\n", 2);
  char *out = malloc(fl * 4096);
  long sent = 0, acked = 0;
  double t0 = now_s();
  while (acked < n) {
    size_t ol = 0;
    while (sent < n && sent - acked < window && ol + fl <= fl * 4096) {
      memcpy(out + ol, frame, fl);
      ol += fl;
      sent++;
    }
    if (ol)
      send_all(fd, out, ol);
    long got = 0;
    for (;;) {
      const char *e = r_skip(b.d + b.off, b.d + b.len);
      if (e == NULL)
        break;
      b.off = (size_t)(e - b.d);
      got++;
    }
    acked += got;
    if (got == 0)
      in_fill(fd, &b);
  }
  return (double)n / (now_s() - t0);
}

/* Reads the whole stream with XREAD COUNT 10000 from "0". */
static void *redis_reader(void *p) {
  rd_arg_t *a = p;
  int fd = dial(a->port);
  inbuf_t b = {0};
  char last[64] = "0";
  long got = 0;
  pthread_barrier_wait(a->go);
  double t0 = now_s();
  while (got < a->n) {
    const char *argv[] = {"XREAD",   "COUNT",   "10000",
                          "STREAMS", a->stream, last};
    r_cmd(fd, 6, argv, NULL);
    const char *e;
    while ((e = r_skip(b.d + b.off, b.d + b.len)) == NULL)
      in_fill(fd, &b);
    /* *1 *2 $name *K ( *2 $id *2 $f $v )... */
    const char *q = b.d + b.off;
    const char *nl;
#define LINE() (nl = memmem(q, (size_t)(e - q), "\r\n", 2), q = nl + 2)
    LINE();           /* *1 */
    LINE();           /* *2 */
    q = r_skip(q, e); /* name */
    long k = strtol(q + 1, NULL, 10);
    LINE(); /* *K */
    for (long i = 0; i < k; i++) {
      LINE(); /* *2 */
      long idl = strtol(q + 1, NULL, 10);
      LINE(); /* $len */
      if (i == k - 1) {
        memcpy(last, q, (size_t)idl);
        last[idl] = '\0';
      }
      q += idl + 2;
      q = r_skip(q, e); /* fields */
    }
    got += k;
    b.off = (size_t)(e - b.d);
  }
  a->rate = (double)a->n / (now_s() - t0);
  close(fd);
  return NULL;
}

/* ================= main ================= */

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: streambench tern|nats|redis pub|replay|fanout "
                    "PORT N SIZE WINDOW STREAM\n");
    return 2;
  }
  const char *proto = argv[1], *what = argv[2];
  int port = atoi(argv[3]);
  long n = atol(argv[4]);
  size_t size = (size_t)atol(argv[5]);
  long window = atol(argv[6]);
  const char *stream = argv[7];
  int p = strcmp(proto, "tern") == 0    ? 0
          : strcmp(proto, "nats") == 0  ? 1
          : strcmp(proto, "redis") == 0 ? 2
                                        : -1;
  if (p < 0)
    return 2;
  double rate = 0;
  if (strcmp(what, "pub") == 0) {
    rate = p == 0   ? tern_pub(port, n, size, window, stream)
           : p == 1 ? nats_pub(port, n, size, window, stream)
                    : redis_pub(port, n, size, window, stream);
  } else {
    int readers = strcmp(what, "fanout") == 0 ? 4 : 1;
    pthread_t th[4];
    rd_arg_t args[4];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)readers);
    double t0 = now_s();
    for (int i = 0; i < readers; i++) {
      args[i] = (rd_arg_t){.proto = p,
                           .port = port,
                           .n = n,
                           .idx = i,
                           .stream = stream,
                           .go = &go};
      static uint64_t salt;
      salt = (uint64_t)getpid();
      args[i].idx = (int)(salt % 100000) * 4 + i;
      pthread_create(&th[i], NULL,
                     p == 0   ? tern_reader
                     : p == 1 ? nats_reader
                              : redis_reader,
                     &args[i]);
    }
    for (int i = 0; i < readers; i++)
      pthread_join(th[i], NULL);
    rate = (double)n * readers / (now_s() - t0);
  }
  printf("RESULT %.0f\n", rate);
  return 0;
}
