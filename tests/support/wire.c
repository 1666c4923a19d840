/*
 * Test harness: assertion-free socket and frame helpers (see wire.h).
 */
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_proc.h"
#include "tern_proto/errors.h"

/* Matches raw_client.c: the client accepts anything a broker may send. */
#define WIRE_MAX_FRAME (64u * 1024u * 1024u)
#define WIRE_INITIAL_CAP (64u * 1024u)

int tt_wire_connect(int port, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  /* A small receive buffer must be set before connect to shrink the
   * advertised window; flow-control tests use it to fill up quickly. */
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int r;
  do {
    r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

void tt_wire_reset(int fd) {
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

int tt_wire_init(tt_wire_t *w, int fd) {
  w->fd = fd;
  w->reader = NULL;
  return tp_reader_create(&w->reader, WIRE_MAX_FRAME, WIRE_INITIAL_CAP);
}

void tt_wire_free(tt_wire_t *w) {
  if (w->fd >= 0)
    close(w->fd);
  w->fd = -1;
  tp_reader_destroy(w->reader);
  w->reader = NULL;
}

int tt_wire_recv(tt_wire_t *w, tp_frame_t *f, int timeout_ms) {
  int64_t deadline = tt_now_ms() + timeout_ms;
  for (;;) {
    int r = tp_reader_next(w->reader, f);
    if (r == 1)
      return 1;
    if (r < 0)
      return r == TP_EPROTO ? TT_WIRE_EPROTO : r;
    int64_t left = deadline - tt_now_ms();
    struct pollfd p = {.fd = w->fd, .events = POLLIN};
    int pr = poll(&p, 1, left < 0 ? 0 : (int)left);
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr < 0)
      return -1;
    if (pr == 0)
      return 0;
    uint8_t *space;
    size_t cap;
    r = tp_reader_space(w->reader, &space, &cap);
    if (r != 0)
      return r == TP_EPROTO ? TT_WIRE_EPROTO : r;
    ssize_t n = recv(w->fd, space, cap, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0)
      return -1;
    tp_reader_commit(w->reader, (size_t)n);
  }
}

int tt_wire_encode(tp_buf_t *out, const tp_frame_t *f) {
  return tp_frame_encode(out, f);
}

int tt_wire_encode_connect(tp_buf_t *out, bool echo) {
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = TP_PROTO_VERSION;
  f.u.connect.echo = echo;
  return tp_frame_encode(out, &f);
}

int tt_wire_encode_sub(tp_buf_t *out, uint64_t sid, const char *pattern,
                       const char *queue, uint64_t max_msgs, int overflow) {
  tp_frame_t f;
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = sid;
  f.u.sub.pattern.ptr = pattern;
  f.u.sub.pattern.len = (uint32_t)strlen(pattern);
  if (queue != NULL) {
    f.u.sub.queue.ptr = queue;
    f.u.sub.queue.len = (uint32_t)strlen(queue);
  }
  f.u.sub.max_msgs = max_msgs;
  f.u.sub.overflow = overflow;
  return tp_frame_encode(out, &f);
}

int tt_wire_encode_pub(tp_buf_t *out, const char *topic, const void *payload,
                       size_t len, uint64_t ack) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic.ptr = topic;
  f.u.pub.topic.len = (uint32_t)strlen(topic);
  f.u.pub.payload.ptr = payload;
  f.u.pub.payload.len = (uint32_t)len;
  if (ack > 0) {
    f.u.pub.has_ack = true;
    f.u.pub.ack = ack;
  }
  return tp_frame_encode(out, &f);
}

int tt_wire_encode_ping(tp_buf_t *out) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PING);
  return tp_frame_encode(out, &f);
}

int tt_wire_wait_pong(tt_wire_t *w, int timeout_ms, int *err_code) {
  static const uint8_t pong[] = {0, 0, 0, 2, 0x91, TP_PONG};
  int64_t deadline = tt_now_ms() + timeout_ms;
  if (err_code != NULL)
    *err_code = 0;
  for (;;) {
    tp_frame_t f;
    int64_t left = deadline - tt_now_ms();
    int r = tt_wire_recv(w, &f, left < 0 ? 0 : (int)left);
    if (r != 1)
      return r;
    if (f.type == TP_PONG)
      return 1;
    if (f.type == TP_PING)
      tt_send_try(w->fd, pong, sizeof pong, timeout_ms);
    if (f.type == TP_ERR && err_code != NULL)
      *err_code = (int)f.u.err.code;
  }
}

void tt_put_seq(uint8_t *p, uint32_t seq) {
  p[0] = (uint8_t)(seq >> 24);
  p[1] = (uint8_t)(seq >> 16);
  p[2] = (uint8_t)(seq >> 8);
  p[3] = (uint8_t)seq;
}

uint32_t tt_get_seq(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}
