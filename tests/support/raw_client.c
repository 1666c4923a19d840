/*
 * Test harness: a raw-frame client.
 *
 * One blocking socket, poll() for every deadline, tp_reader for framing. The
 * client is deliberately dumb: it never answers anything by itself except in
 * the tt_raw_expect* helpers, which answer the server's heartbeat PINGs so a
 * slow (sanitizer) run is not mistaken for a stale client.
 */
#include "raw_client.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_proc.h"

/* The client accepts any frame a broker configured for large payloads may
 * send; the broker's own limit is what the tests exercise. */
#define CLIENT_MAX_FRAME (64u * 1024u * 1024u)
#define CLIENT_INITIAL_CAP (64u * 1024u)

bool tt_str_eq(tp_str_t a, const char *s) {
  size_t n = strlen(s);
  return a.len == n && (n == 0 || memcmp(a.ptr, s, n) == 0);
}

void tt_raw_attach(tt_raw_t *c, int fd) {
  memset(c, 0, sizeof *c);
  c->fd = fd;
  tp_buf_init(&c->out);
  int r = tp_reader_create(&c->reader, CLIENT_MAX_FRAME, CLIENT_INITIAL_CAP);
  cr_assert_eq(r, 0, "tp_reader_create: error %d", r);
}

void tt_raw_connect(tt_raw_t *c, bool echo, bool verbose) {
  tp_frame_t f;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = TP_PROTO_VERSION;
  f.u.connect.name = tt_str("tern-itest");
  f.u.connect.echo = echo;
  f.u.connect.verbose = verbose;
  tt_raw_send(c, &f);
  tt_raw_expect(c, &f, TP_OK, TT_RECV_MS);
}

void tt_raw_open_ex(tt_raw_t *c, int port, int rcvbuf, bool do_connect,
                    bool echo, bool verbose) {
  tt_raw_attach(c, tt_connect_opts(port, rcvbuf));
  tp_frame_t f;
  tt_raw_expect(c, &f, TP_HELLO, TT_RECV_MS);
  if (do_connect)
    tt_raw_connect(c, echo, verbose);
}

void tt_raw_open(tt_raw_t *c, int port, bool do_connect, bool echo,
                 bool verbose) {
  tt_raw_open_ex(c, port, 0, do_connect, echo, verbose);
}

void tt_raw_close(tt_raw_t *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  tp_reader_destroy(c->reader);
  c->reader = NULL;
  tp_buf_free(&c->out);
}

void tt_raw_queue(tt_raw_t *c, const tp_frame_t *f) {
  int r = tp_frame_encode(&c->out, f);
  cr_assert_eq(r, 0, "tp_frame_encode(%s): error %d",
               tp_frame_type_name(f->type), r);
}

void tt_raw_flush(tt_raw_t *c) {
  if (c->out.len > 0)
    tt_send_all(c->fd, c->out.data, c->out.len);
  tp_buf_reset(&c->out);
}

void tt_raw_send(tt_raw_t *c, const tp_frame_t *f) {
  tp_buf_reset(&c->out);
  tt_raw_queue(c, f);
  tt_raw_flush(c);
}

void tt_raw_send_bytes(tt_raw_t *c, const void *p, size_t n) {
  tt_send_all(c->fd, p, n);
}

/*
 * Frames already buffered come first, so an ERR the broker wrote just
 * before closing is returned before the EOF. A reset counts as a close:
 * the test process cannot tell them apart in every kernel path.
 */
int tt_raw_recv(tt_raw_t *c, tp_frame_t *f, int timeout_ms) {
  int64_t deadline = tt_now_ms() + timeout_ms;
  for (;;) {
    int r = tp_reader_next(c->reader, f);
    if (r == 1)
      return 1;
    cr_assert_geq(r, 0, "undecodable frame from the broker: error %d (%s)", r,
                  tp_reader_errmsg(c->reader));
    int64_t left = deadline - tt_now_ms();
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int pr = poll(&p, 1, left < 0 ? 0 : (int)left);
    if (pr < 0 && errno == EINTR)
      continue;
    cr_assert_geq(pr, 0, "poll: %s", strerror(errno));
    if (pr == 0)
      return 0;
    uint8_t *space;
    size_t cap;
    r = tp_reader_space(c->reader, &space, &cap);
    cr_assert_eq(r, 0, "tp_reader_space: error %d", r);
    ssize_t n = recv(c->fd, space, cap, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0)
      return -1;
    tp_reader_commit(c->reader, (size_t)n);
  }
}

/* Describes a frame for failure messages. */
static void describe(const tp_frame_t *f, char *buf, size_t cap) {
  if (f->type == TP_ERR)
    snprintf(buf, cap, "ERR %u '%.*s'", f->u.err.code,
             (int)f->u.err.message.len,
             f->u.err.message.ptr ? f->u.err.message.ptr : "");
  else if (f->type == TP_MSG)
    snprintf(buf, cap, "MSG sid %llu topic '%.*s'",
             (unsigned long long)f->u.msg.sid, (int)f->u.msg.topic.len,
             f->u.msg.topic.ptr ? f->u.msg.topic.ptr : "");
  else
    snprintf(buf, cap, "%s (%d)", tp_frame_type_name(f->type), f->type);
}

void tt_raw_expect(tt_raw_t *c, tp_frame_t *f, int type, int timeout_ms) {
  int64_t deadline = tt_now_ms() + timeout_ms;
  for (;;) {
    int64_t left = deadline - tt_now_ms();
    int r = tt_raw_recv(c, f, left < 0 ? 0 : (int)left);
    cr_assert_neq(r, 0, "timed out waiting for %s", tp_frame_type_name(type));
    cr_assert_neq(r, -1, "connection closed while waiting for %s",
                  tp_frame_type_name(type));
    if (f->type == TP_PING && type != TP_PING) {
      /* Heartbeat from the server: answer and keep waiting. */
      tp_frame_t pong;
      tp_frame_init(&pong, TP_PONG);
      tt_raw_send(c, &pong);
      continue;
    }
    char got[160];
    describe(f, got, sizeof got);
    cr_assert_eq(f->type, type, "expected %s, got %s", tp_frame_type_name(type),
                 got);
    return;
  }
}

void tt_raw_barrier(tt_raw_t *c) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PING);
  tt_raw_send(c, &f);
  int64_t deadline = tt_now_ms() + TT_RECV_MS;
  for (;;) {
    int64_t left = deadline - tt_now_ms();
    int r = tt_raw_recv(c, &f, left < 0 ? 0 : (int)left);
    cr_assert_eq(r, 1, "barrier: no PONG (%s)", r == 0 ? "timeout" : "closed");
    if (f.type == TP_PONG)
      return;
    if (f.type == TP_PING) {
      tp_frame_init(&f, TP_PONG);
      tt_raw_send(c, &f);
    }
  }
}

void tt_raw_barrier_strict(tt_raw_t *c) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PING);
  tt_raw_send(c, &f);
  tt_raw_expect(c, &f, TP_PONG, TT_RECV_MS);
}

bool tt_raw_wait_closed(tt_raw_t *c, int timeout_ms) {
  int64_t deadline = tt_now_ms() + timeout_ms;
  for (;;) {
    tp_frame_t f;
    int64_t left = deadline - tt_now_ms();
    int r = tt_raw_recv(c, &f, left < 0 ? 0 : (int)left);
    if (r == -1)
      return true;
    if (r == 0)
      return false;
  }
}

void tt_raw_pub(tt_raw_t *c, const char *topic, const void *payload,
                size_t len) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = tt_str(topic);
  f.u.pub.payload.ptr = payload;
  f.u.pub.payload.len = (uint32_t)len;
  tt_raw_send(c, &f);
}

void tt_raw_sub(tt_raw_t *c, uint64_t sid, const char *pattern,
                const char *queue) {
  tp_frame_t f;
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = sid;
  f.u.sub.pattern = tt_str(pattern);
  if (queue)
    f.u.sub.queue = tt_str(queue);
  tt_raw_send(c, &f);
}

void tt_raw_sub_policy(tt_raw_t *c, uint64_t sid, const char *pattern,
                       const char *queue, uint64_t max_msgs, int policy) {
  tp_frame_t f;
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = sid;
  f.u.sub.pattern = tt_str(pattern);
  if (queue != NULL)
    f.u.sub.queue = tt_str(queue);
  f.u.sub.max_msgs = max_msgs;
  f.u.sub.overflow = policy;
  tt_raw_send(c, &f);
  tt_raw_barrier_strict(c);
}

void tt_raw_unsub(tt_raw_t *c, uint64_t sid, uint64_t max_msgs) {
  tp_frame_t f;
  tp_frame_init(&f, TP_UNSUB);
  f.u.unsub.sid = sid;
  f.u.unsub.has_max = max_msgs > 0;
  f.u.unsub.max_msgs = max_msgs;
  tt_raw_send(c, &f);
}

void tt_raw_expect_err(tt_raw_t *c, int code, int timeout_ms) {
  tp_frame_t f;
  tt_raw_expect(c, &f, TP_ERR, timeout_ms);
  cr_assert_eq((int)f.u.err.code, code, "expected ERR %d, got ERR %u '%.*s'",
               code, f.u.err.code, (int)f.u.err.message.len,
               f.u.err.message.ptr ? f.u.err.message.ptr : "");
}

void tt_raw_expect_msg(tt_raw_t *c, uint64_t sid, const char *topic,
                       const void *payload, size_t len, int timeout_ms) {
  tp_frame_t f;
  tt_raw_expect(c, &f, TP_MSG, timeout_ms);
  cr_assert_eq(f.u.msg.sid, sid, "MSG sid %llu, expected %llu",
               (unsigned long long)f.u.msg.sid, (unsigned long long)sid);
  cr_assert(tt_str_eq(f.u.msg.topic, topic), "MSG topic '%.*s', expected '%s'",
            (int)f.u.msg.topic.len, f.u.msg.topic.ptr, topic);
  cr_assert_eq(f.u.msg.payload.len, len, "MSG payload %u bytes, expected %zu",
               f.u.msg.payload.len, len);
  cr_assert(len == 0 || memcmp(f.u.msg.payload.ptr, payload, len) == 0,
            "MSG payload differs");
}

/* Sids and topics that no test uses, so probes never collide. */
static uint64_t probe_seq;

void tt_raw_check_pubsub(tt_raw_t *c) {
  uint64_t sid = 900000000u + ++probe_seq;
  char topic[64];
  snprintf(topic, sizeof topic, "tt.probe.%llu", (unsigned long long)sid);
  tt_raw_sub(c, sid, topic, NULL);
  tt_raw_barrier(c);
  tt_raw_pub(c, topic, "probe", 5);
  tt_raw_expect_msg(c, sid, topic, "probe", 5, TT_RECV_MS);
  tt_raw_unsub(c, sid, 0);
  tt_raw_barrier_strict(c);
}
