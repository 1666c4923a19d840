/*
 * Plain TCP as a transport (tcp.h).
 */
#include "transport/tcp.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "base/log.h"

typedef struct tcp_transport {
  transport_t base;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t req; /* one write at a time (the output queue's) */
  int handles_open;
  bool heard;    /* a first byte arrived */
  uv_buf_t rbuf; /* where the last read went */
} tcp_transport_t;

static tcp_transport_t *tcp_of(transport_t *t) {
  return (tcp_transport_t *)t;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  transport_t *t = h->data;
  t->cbs->alloc(t->owner, buf);
  ((tcp_transport_t *)t)->rbuf = *buf;
}

/* A TLS client on a port without TLS: its ClientHello (0x16) reads as a
 * frame far over the limit, which the session refuses; say why once. */
static void first_bytes(tcp_transport_t *tt, size_t n) {
  tt->heard = true;
  if (n > 0 && (unsigned char)tt->rbuf.base[0] == 0x16) {
    struct sockaddr_storage ss;
    char who[64] = "?";
    int len = sizeof ss;
    if (uv_tcp_getpeername(&tt->tcp, (struct sockaddr *)&ss, &len) == 0)
      transport_addr_name(&ss, who, sizeof who);
    LOG(LOG_WARN,
        "%s: a TLS handshake on a port without TLS (ternd has no "
        "--tls-cert): refused",
        who);
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  transport_t *t = s->data;
  if (nread > 0 && !((tcp_transport_t *)t)->heard)
    first_bytes((tcp_transport_t *)t, (size_t)nread);
  if (nread > 0)
    t->cbs->on_data(t->owner, (size_t)nread);
  else if (nread < 0)
    t->cbs->on_error(t->owner, (int)nread);
}

static int tcp_start_read(transport_t *t) {
  return uv_read_start((uv_stream_t *)&tcp_of(t)->tcp, on_alloc, on_read);
}

static void tcp_stop_read(transport_t *t) {
  uv_read_stop((uv_stream_t *)&tcp_of(t)->tcp);
}

static int tcp_try_write(transport_t *t, const uv_buf_t *bufs, unsigned n) {
  int rc = uv_try_write((uv_stream_t *)&tcp_of(t)->tcp, bufs, n);
  return rc == UV_EAGAIN || rc == UV_ENOSYS ? 0 : rc;
}

static void on_written(uv_write_t *req, int status) {
  transport_t *t = req->data;
  t->cbs->on_write_done(t->owner, status);
}

static int tcp_write(transport_t *t, const uv_buf_t *bufs, unsigned n) {
  tcp_transport_t *tt = tcp_of(t);
  tt->req.data = t;
  return uv_write(&tt->req, (uv_stream_t *)&tt->tcp, bufs, n, on_written);
}

static void on_timer(uv_timer_t *h) {
  transport_t *t = h->data;
  t->cbs->on_timer(t->owner);
}

static void tcp_timer_start(transport_t *t, uint64_t ms, uint64_t repeat) {
  uv_timer_t *h = &tcp_of(t)->timer;
  uv_timer_stop(h);
  uv_timer_start(h, on_timer, ms, repeat);
}

static void tcp_timer_stop(transport_t *t) {
  uv_timer_stop(&tcp_of(t)->timer);
}

static void on_handle_closed(uv_handle_t *h) {
  tcp_transport_t *tt = h->data;
  if (--tt->handles_open > 0)
    return;
  /* Cancelled writes have called back by now: nothing is in flight. */
  if (tt->base.cbs != NULL)
    tt->base.cbs->on_closed(tt->base.owner);
  free(tt);
}

static void tcp_close(transport_t *t) {
  tcp_transport_t *tt = tcp_of(t);
  uv_close((uv_handle_t *)&tt->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&tt->timer, on_handle_closed);
}

static int tcp_peer(transport_t *t, struct sockaddr_storage *ss) {
  int len = sizeof *ss;
  return uv_tcp_getpeername(&tcp_of(t)->tcp, (struct sockaddr *)ss, &len);
}

static size_t tcp_unacked(transport_t *t) {
#if defined(TCP_INFO) && defined(TIOCOUTQ)
  uv_os_fd_t fd;
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  int n = 0;
  if (uv_fileno((uv_handle_t *)&tcp_of(t)->tcp, &fd) != 0 ||
      getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
    return 0;
  /* After a reset TIOCOUTQ's sequence arithmetic is stale: only a
   * connection that can still deliver is worth waiting for. */
  if (ti.tcpi_state != TCP_ESTABLISHED && ti.tcpi_state != TCP_CLOSE_WAIT)
    return 0;
  if (ioctl(fd, TIOCOUTQ, &n) == 0 && n > 0)
    return (size_t)n;
#else
  (void)t;
#endif
  return 0;
}

/* Anything but ESTABLISHED (CLOSE_WAIT after the peer's FIN, CLOSE after
 * a reset) means nobody will read what is sent. */
static bool tcp_connected(transport_t *t) {
  uv_os_fd_t fd;
  if (uv_fileno((const uv_handle_t *)&tcp_of(t)->tcp, &fd) != 0)
    return false;
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
    return true; /* cannot tell */
  return ti.tcpi_state == TCP_ESTABLISHED;
}

static const transport_ops_t tcp_ops = {
    .start_read = tcp_start_read,
    .stop_read = tcp_stop_read,
    .try_write = tcp_try_write,
    .write = tcp_write,
    .timer_start = tcp_timer_start,
    .timer_stop = tcp_timer_stop,
    .close = tcp_close,
    .peer = tcp_peer,
    .unacked = tcp_unacked,
    .connected = tcp_connected,
};

int tcp_transport_open(uv_loop_t *loop, int fd, transport_t **out) {
  tcp_transport_t *tt = calloc(1, sizeof *tt);
  if (tt == NULL) {
    close(fd);
    return UV_ENOMEM;
  }
  tt->base.ops = &tcp_ops;
  int rc = uv_tcp_init(loop, &tt->tcp);
  if (rc != 0) {
    free(tt);
    close(fd);
    return rc;
  }
  uv_timer_init(loop, &tt->timer);
  tt->tcp.data = tt;
  tt->timer.data = tt;
  tt->handles_open = 2;
  rc = uv_tcp_open(&tt->tcp, fd);
  if (rc != 0) {
    close(fd);            /* not the handle's */
    tcp_close(&tt->base); /* no owner yet: freed quietly */
    return rc;
  }
  uv_tcp_nodelay(&tt->tcp, 1);
  *out = &tt->base;
  return 0;
}

void tcp_transport_carries_tls(transport_t *t) {
  tcp_of(t)->heard = true;
}
