/*
 * tern_test_tls_proxy: plaintext in, TLS out, for running the raw-frame
 * integration tests against a ternd that speaks TLS only (broker_proc.c
 * starts it when TERN_TEST_TLS names a certificate directory). Each
 * client accepted on 127.0.0.1 gets its own TLS connection to ternd,
 * checked against the test CA; bytes are passed both ways through bounded
 * buffers, so a client that stops reading stops the proxy reading from
 * ternd (backpressure reaches the broker as it would directly), and an EOF
 * or a reset on one side is passed to the other.
 *
 *   tern_test_tls_proxy --connect PORT --ca FILE [--cert F --key F]
 *                       --ready-fd N
 * writes its own port to fd N, then runs until SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tern_tls/tls.h"

#define MAX_PAIRS 1024
#define BUF 16384
#define PROXY_SOCKBUF 8192
#define OUT_MAX (256 * 1024) /* ciphertext waiting for ternd */

typedef struct pair {
  int c, s;
  ttls_conn_t *t;
  char s2c[BUF];
  size_t s2c_off, s2c_len;
  bool c_eof, s_eof, c_shut, s_shut;
} pair_t;

static pair_t *pairs[MAX_PAIRS];
static int npairs;
static ttls_ctx_t *ctx;
static int upstream_port;

static void nonblock(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void reset_close(int fd) {
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

static void drop(int i, bool reset) {
  pair_t *p = pairs[i];
  if (reset) {
    reset_close(p->c);
    reset_close(p->s);
  } else {
    close(p->c);
    close(p->s);
  }
  ttls_conn_destroy(p->t);
  free(p);
  pairs[i] = pairs[--npairs];
}

static void add_pair(int c) {
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)upstream_port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int s = socket(AF_INET, SOCK_STREAM, 0);
  /* Small socket buffers on both of the proxy's sides (set before
   * connect: no autotuning), so what a client that stops reading leaves
   * on the way is little more than it would be without the proxy. */
  int small = PROXY_SOCKBUF;
  if (s >= 0)
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  pair_t *p = calloc(1, sizeof *p);
  if (npairs == MAX_PAIRS || p == NULL || s < 0 ||
      connect(s, (struct sockaddr *)&a, sizeof a) != 0 ||
      ttls_conn_create(&p->t, ctx, "localhost") != 0) {
    if (s >= 0)
      close(s);
    reset_close(c);
    free(p);
    return;
  }
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  nonblock(c);
  nonblock(s);
  p->c = c;
  p->s = s;
  ttls_conn_handshake(p->t); /* the ClientHello */
  pairs[npairs++] = p;
}

/* Sends what the engine has for ternd. -1: the socket broke. */
static int flush_out(pair_t *p) {
  const char *b;
  size_t len;
  ttls_conn_pending_out(p->t, &b, &len);
  while (len > 0) {
    ssize_t n = send(p->s, b, len, MSG_NOSIGNAL);
    if (n < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    ttls_conn_consume_out(p->t, (size_t)n);
    ttls_conn_pending_out(p->t, &b, &len);
  }
  return 0;
}

static size_t out_len(pair_t *p) {
  const char *b;
  size_t len;
  ttls_conn_pending_out(p->t, &b, &len);
  return len;
}

/* Plaintext from the engine into s2c while there is room. */
static int pull(pair_t *p) {
  if (!ttls_conn_handshake_done(p->t)) {
    int rc = ttls_conn_handshake(p->t);
    if (rc == TTLS_EAGAIN)
      return 0;
    if (rc != 0) {
      fprintf(stderr, "tls_proxy: %s\n", ttls_conn_error(p->t));
      return -1;
    }
  }
  if (p->s2c_off > 0) { /* room at the end */
    memmove(p->s2c, p->s2c + p->s2c_off, p->s2c_len - p->s2c_off);
    p->s2c_len -= p->s2c_off;
    p->s2c_off = 0;
  }
  while (p->s2c_len < BUF) {
    int n = ttls_conn_read(p->t, p->s2c + p->s2c_len, BUF - p->s2c_len);
    if (n > 0) {
      p->s2c_len += (size_t)n;
      continue;
    }
    if (n == TTLS_EAGAIN)
      return 0;
    p->s_eof = true; /* close_notify or an alert: the stream ended */
    return 0;
  }
  return 0;
}

/* One pair's turn. -1: drop it (reset); 1: done (closed in order). */
static int step(pair_t *p, short cev, short sev) {
  char buf[BUF];
  if ((cev | sev) & POLLNVAL)
    return -1;
  if ((sev & (POLLIN | POLLHUP | POLLERR)) && !p->s_eof &&
      ttls_conn_pending_in(p->t) < BUF) {
    ssize_t n = recv(p->s, buf, sizeof buf, 0);
    if (n > 0) {
      if (ttls_conn_feed(p->t, buf, (size_t)n) != 0)
        return -1;
    } else if (n == 0) {
      p->s_eof = true;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return -1;
    }
  }
  if (pull(p) != 0)
    return -1;
  if ((cev & (POLLIN | POLLHUP | POLLERR)) && !p->c_eof &&
      ttls_conn_handshake_done(p->t)) {
    ssize_t n = recv(p->c, buf, sizeof buf, 0);
    if (n > 0) {
      uv_buf_t b = uv_buf_init(buf, (unsigned)n);
      if (ttls_conn_writev(p->t, &b, 1) < 0)
        return -1;
    } else if (n == 0) {
      p->c_eof = true;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return -1;
    }
  }
  if (flush_out(p) != 0)
    return -1;
  while (p->s2c_len > p->s2c_off) {
    ssize_t n =
        send(p->c, p->s2c + p->s2c_off, p->s2c_len - p->s2c_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      return -1;
    }
    p->s2c_off += (size_t)n;
  }
  if (p->c_eof && !p->s_shut && out_len(p) == 0) {
    shutdown(p->s, SHUT_WR);
    p->s_shut = true;
  }
  if (p->s_eof && !p->c_shut && p->s2c_off == p->s2c_len) {
    shutdown(p->c, SHUT_WR);
    p->c_shut = true;
  }
  return p->c_shut && p->s_shut ? 1 : 0;
}

static volatile sig_atomic_t stop;
static void on_term(int sig) {
  (void)sig;
  stop = 1;
}

int main(int argc, char **argv) {
  const char *ca = NULL, *cert = NULL, *key = NULL;
  int ready = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--connect") == 0)
      upstream_port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--ca") == 0)
      ca = argv[i + 1];
    else if (strcmp(argv[i], "--cert") == 0)
      cert = argv[i + 1];
    else if (strcmp(argv[i], "--key") == 0)
      key = argv[i + 1];
    else if (strcmp(argv[i], "--ready-fd") == 0)
      ready = atoi(argv[i + 1]);
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_term);
  char why[512];
  ttls_ctx_opts_t o = {.ca_file = ca, .cert_file = cert, .key_file = key};
  if (upstream_port <= 0 || ready < 0 ||
      ttls_ctx_create(&ctx, &o, why, sizeof why) != 0) {
    fprintf(stderr, "tls_proxy: bad arguments or TLS setup: %s\n", why);
    return 2;
  }
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 512) != 0 ||
      getsockname(l, (struct sockaddr *)&a, &alen) != 0)
    return 2;
  dprintf(ready, "%d\n", ntohs(a.sin_port));
  close(ready);
  static struct pollfd fds[1 + 2 * MAX_PAIRS];
  while (!stop) {
    fds[0] = (struct pollfd){.fd = l, .events = POLLIN};
    for (int i = 0; i < npairs; i++) {
      pair_t *p = pairs[i];
      short ce = 0, se = 0;
      bool done = ttls_conn_handshake_done(p->t);
      if (!p->c_eof && done && out_len(p) < OUT_MAX)
        ce |= POLLIN;
      if (p->s2c_len > p->s2c_off)
        ce |= POLLOUT;
      if (!p->s_eof && p->s2c_len - p->s2c_off < BUF / 2 &&
          ttls_conn_pending_in(p->t) < BUF)
        se |= POLLIN;
      if (out_len(p) > 0)
        se |= POLLOUT;
      fds[1 + 2 * i] = (struct pollfd){.fd = p->c, .events = ce};
      fds[2 + 2 * i] = (struct pollfd){.fd = p->s, .events = se};
    }
    int n = poll(fds, (nfds_t)(1 + 2 * npairs), 1000);
    if (n < 0)
      continue;
    if (fds[0].revents & POLLIN) {
      int c = accept(l, NULL, NULL);
      if (c >= 0)
        add_pair(c);
    }
    /* From the last: a dropped pair's place takes one already done. A
     * pair added just now has no poll entry yet (its fd differs). */
    for (int i = npairs - 1; i >= 0; i--) {
      short cev = 0, sev = 0;
      if (fds[1 + 2 * i].fd == pairs[i]->c) {
        cev = fds[1 + 2 * i].revents;
        sev = fds[2 + 2 * i].revents;
      }
      int r = step(pairs[i], cev, sev);
      if (r != 0)
        drop(i, r < 0);
    }
  }
  while (npairs > 0)
    drop(npairs - 1, false);
  ttls_ctx_unref(ctx);
  return 0;
}
