/*
 * Non-blocking socket plumbing shared by every adapter (see conn.h).
 *
 * The input buffer is parsed in place: bench_conn_next hands out events that
 * point into it, and bench_conn_read moves the unparsed tail to the front
 * only when reading needs the room, so a burst of small messages costs one
 * read() and no copy. The buffer doubles when one event does not fit.
 */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tern_tls/tls.h"

#define IN_INITIAL (256u * 1024u)

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int fail(bench_conn_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof(c->err), fmt, ap);
  va_end(ap);
  return -1;
}

static int connect_tcp(bench_conn_t *c, const char *host, int port,
                       int timeout_ms) {
  char service[16];
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(service, sizeof(service), "%d", port);
  int rc = getaddrinfo(host, service, &hints, &res);
  if (rc != 0) {
    return fail(c, "%s: %s", host, gai_strerror(rc));
  }
  int err = ECONNREFUSED;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      err = errno;
      close(fd);
      continue;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    socklen_t len = sizeof(err);
    if (poll(&pfd, 1, timeout_ms) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      if (err == 0) {
        err = ETIMEDOUT;
      }
      close(fd);
      continue;
    }
    /* Batching is ours to do: never let Nagle delay a barrier ping. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    freeaddrinfo(res);
    return 0;
  }
  freeaddrinfo(res);
  return fail(c, "connect %s:%d: %s", host, port, strerror(err));
}

/* Milliseconds left until deadline (ns), at least 0. */
static int ms_left(uint64_t deadline);

/* Writes the engine's ciphertext while the socket takes it. 0 or -1. */
static int tls_send(bench_conn_t *c) {
  const char *p;
  size_t len;
  ttls_conn_pending_out(c->tls, &p, &len);
  while (len > 0) {
    ssize_t n = write(c->fd, p, len);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      }
      return fail(c, "write: %s", strerror(errno));
    }
    ttls_conn_consume_out(c->tls, (size_t)n);
    ttls_conn_pending_out(c->tls, &p, &len);
  }
  c->tls_pending = len;
  return 0;
}

/* nats-server 2.9 speaks first in plaintext (INFO) and then expects the
 * handshake: the INFO line is read and dropped. */
static int skip_info_line(bench_conn_t *c, uint64_t deadline) {
  char ch;
  for (;;) {
    ssize_t n = read(c->fd, &ch, 1);
    if (n == 1) {
      if (ch == '\n') {
        return 0;
      }
      continue;
    }
    if (n == 0) {
      return fail(c, "connection closed before INFO");
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return fail(c, "read: %s", strerror(errno));
    }
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (poll(&pfd, 1, ms_left(deadline)) == 0) {
      return fail(c, "no INFO from the server");
    }
  }
}

static int tls_handshake(bench_conn_t *c, struct ttls_ctx *ctx,
                         const char *host, int timeout_ms) {
  uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
  if (strcmp(c->ad->name, "nats") == 0 && skip_info_line(c, deadline) != 0) {
    return -1;
  }
  if (ttls_conn_create(&c->tls, ctx, host) != 0) {
    return fail(c, "cannot start TLS");
  }
  for (;;) {
    int rc = ttls_conn_handshake(c->tls);
    if (tls_send(c) != 0) {
      return -1;
    }
    if (rc == 0 && c->tls_pending == 0) {
      return 0;
    }
    if (rc != 0 && rc != TTLS_EAGAIN) {
      return fail(c, "%s", ttls_conn_error(c->tls));
    }
    struct pollfd pfd = {.fd = c->fd,
                         .events = POLLIN | (c->tls_pending ? POLLOUT : 0)};
    if (poll(&pfd, 1, ms_left(deadline)) == 0) {
      return fail(c, "TLS handshake timed out");
    }
    char buf[16384];
    ssize_t n = read(c->fd, buf, sizeof(buf));
    if (n > 0 && ttls_conn_feed(c->tls, buf, (size_t)n) != 0) {
      return fail(c, "out of memory");
    }
    if (n == 0) {
      return fail(c, "connection closed during the TLS handshake");
    }
  }
}

int bench_conn_open(bench_conn_t *c, const bench_adapter_t *ad,
                    const char *host, int port, const char *client_id,
                    int timeout_ms, struct ttls_ctx *tls) {
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  c->ad = ad;
  c->in_cap = IN_INITIAL;
  c->in = malloc(c->in_cap);
  if (c->in == NULL) {
    return fail(c, "out of memory");
  }
  if (ad->state_create != NULL && ad->state_create(&c->state) != 0) {
    return fail(c, "out of memory");
  }
  if (connect_tcp(c, host, port, timeout_ms) != 0) {
    return -1;
  }
  if (tls != NULL && tls_handshake(c, tls, host, timeout_ms) != 0) {
    return -1;
  }
  if (ad->encode_connect(&c->out, client_id) != 0) {
    return fail(c, "cannot encode CONNECT");
  }
  return bench_conn_barrier(c, timeout_ms, NULL);
}

void bench_conn_close(bench_conn_t *c) {
  ttls_conn_destroy(c->tls);
  c->tls = NULL;
  c->tls_pending = 0;
  if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
  if (c->state != NULL && c->ad->state_destroy != NULL) {
    c->ad->state_destroy(c->state);
  }
  c->state = NULL;
  free(c->in);
  c->in = NULL;
  tp_buf_free(&c->out);
}

int bench_conn_flush(bench_conn_t *c) {
  if (c->tls != NULL) {
    /* Everything queued becomes records now (16 KiB each); the socket
     * takes what it can, the rest waits as ciphertext. */
    if (c->out.len > c->out_off) {
      uv_buf_t b = uv_buf_init((char *)c->out.data + c->out_off,
                               (unsigned int)(c->out.len - c->out_off));
      if (ttls_conn_writev(c->tls, &b, 1) < 0) {
        return fail(c, "TLS: %s", ttls_conn_error(c->tls));
      }
      c->out.len = 0;
      c->out_off = 0;
    }
    return tls_send(c);
  }
  while (c->out_off < c->out.len) {
    ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return 0;
      }
      return fail(c, "write: %s", strerror(errno));
    }
    c->out_off += (size_t)n;
  }
  /* Everything written: reuse the buffer from its start. */
  c->out.len = 0;
  c->out_off = 0;
  return 0;
}

/* Plaintext out of the engine, reading the socket when it has none. */
static long tls_read(bench_conn_t *c) {
  long total = 0;
  char buf[65536];
  while (c->in_end < c->in_cap) {
    int n = ttls_conn_read(c->tls, c->in + c->in_end, c->in_cap - c->in_end);
    if (n > 0) {
      c->in_end += (size_t)n;
      total += n;
      continue;
    }
    if (n != TTLS_EAGAIN) {
      return fail(c, n == TTLS_ECLOSED ? "connection closed by the server"
                                       : ttls_conn_error(c->tls));
    }
    ssize_t r = read(c->fd, buf, sizeof(buf));
    if (r > 0) {
      if (ttls_conn_feed(c->tls, buf, (size_t)r) != 0) {
        return fail(c, "out of memory");
      }
      continue;
    }
    if (r == 0) {
      return total > 0 ? total : fail(c, "connection closed by the server");
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    }
    return fail(c, "read: %s", strerror(errno));
  }
  if (tls_send(c) != 0) { /* what reading had to answer */
    return -1;
  }
  return total;
}

long bench_conn_read(bench_conn_t *c) {
  if (c->in_start == c->in_end) {
    c->in_start = c->in_end = 0;
  } else if (c->in_cap - c->in_end < c->in_cap / 4) {
    size_t tail = c->in_end - c->in_start;
    if (c->in_start > 0) {
      memmove(c->in, c->in + c->in_start, tail);
      c->in_start = 0;
      c->in_end = tail;
    } else if (c->in_end == c->in_cap) {
      /* One event larger than the whole buffer: grow. */
      uint8_t *bigger = realloc(c->in, c->in_cap * 2);
      if (bigger == NULL) {
        return fail(c, "out of memory");
      }
      c->in = bigger;
      c->in_cap *= 2;
    }
  }
  if (c->tls != NULL) {
    return tls_read(c);
  }
  for (;;) {
    ssize_t n = read(c->fd, c->in + c->in_end, c->in_cap - c->in_end);
    if (n > 0) {
      c->in_end += (size_t)n;
      return n;
    }
    if (n == 0) {
      return fail(c, "connection closed by the server");
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return 0;
    }
    return fail(c, "read: %s", strerror(errno));
  }
}

int bench_conn_next(bench_conn_t *c, bench_ev_t *ev) {
  for (;;) {
    if (c->in_start == c->in_end) {
      return 0;
    }
    long n = c->ad->parse(c->state, c->in + c->in_start,
                          c->in_end - c->in_start, ev);
    if (n == 0) {
      return 0;
    }
    if (n < 0) {
      return fail(c, "%s protocol error: %.*s", c->ad->name,
                  (int)(ev->text ? ev->text_len : 0), ev->text ? ev->text : "");
    }
    c->in_start += (size_t)n;
    if (ev->type == BENCH_EV_ERROR) {
      return fail(c, "server error: %.*s", (int)ev->text_len, ev->text);
    }
    if (ev->type == BENCH_EV_PING) {
      if (c->ad->encode_pong != NULL && c->ad->encode_pong(&c->out) != 0) {
        return fail(c, "out of memory");
      }
      continue;
    }
    if (ev->type == BENCH_EV_INFO) {
      continue;
    }
    return 1;
  }
}

int bench_conn_poll(bench_conn_t *c, int timeout_ms) {
  struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
  if (bench_conn_pending(c) > 0) {
    pfd.events |= POLLOUT;
  }
  if (c->tls != NULL && ttls_conn_pending_in(c->tls) > 0) {
    timeout_ms = 0; /* records already here need no wait */
    pfd.revents = POLLIN;
  }
  int rc = poll(&pfd, 1, timeout_ms);
  if (c->tls != NULL && ttls_conn_pending_in(c->tls) > 0) {
    rc = 1;
    pfd.revents |= POLLIN;
  }
  if (rc < 0 && errno != EINTR) {
    return fail(c, "poll: %s", strerror(errno));
  }
  if (rc <= 0) {
    return 0;
  }
  if ((pfd.revents & POLLOUT) && bench_conn_flush(c) != 0) {
    return -1;
  }
  if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
    if (bench_conn_read(c) < 0) {
      return -1;
    }
  }
  return 0;
}

static int ms_left(uint64_t deadline) {
  uint64_t now = bench_now_ns();
  return now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
}

int bench_conn_barrier(bench_conn_t *c, int timeout_ms, uint64_t *skipped) {
  uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
  if (c->ad->encode_ping(&c->out) != 0) {
    return fail(c, "out of memory");
  }
  if (bench_conn_flush(c) != 0) {
    return -1;
  }
  for (;;) {
    bench_ev_t ev;
    int rc;
    while ((rc = bench_conn_next(c, &ev)) == 1) {
      if (ev.type == BENCH_EV_PONG) {
        return bench_conn_flush(c);
      }
      if (ev.type == BENCH_EV_MSG && skipped != NULL) {
        (*skipped)++;
      }
    }
    if (rc < 0) {
      return -1;
    }
    int left = ms_left(deadline);
    if (left == 0) {
      return fail(c, "no answer to %s ping within %d ms", c->ad->name,
                  timeout_ms);
    }
    if (bench_conn_poll(c, left) != 0) {
      return -1;
    }
  }
}

int bench_conn_wait_msg(bench_conn_t *c, bench_ev_t *ev, int timeout_ms) {
  uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
  for (;;) {
    int rc;
    while ((rc = bench_conn_next(c, ev)) == 1) {
      if (ev->type == BENCH_EV_MSG) {
        return 1;
      }
    }
    if (rc < 0) {
      return -1;
    }
    int left = ms_left(deadline);
    if (left == 0) {
      return 0;
    }
    if (bench_conn_poll(c, left) != 0) {
      return -1;
    }
  }
}
