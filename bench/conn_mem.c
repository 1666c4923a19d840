/*
 * conn_mem: what idle connections and subscriptions cost ternd in memory.
 *
 *   conn_mem PID HOST PORT [CONNS [SUBS]]   (defaults 10000 and 100000)
 *
 * Opens CONNS connections to the ternd whose pid is PID (each sends
 * CONNECT and waits for the answer to a PING), then spreads SUBS
 * subscriptions over them (one distinct literal subject each, confirmed by
 * a PING per connection), and reads the broker's VmRSS from /proc before
 * and after each step. Kernel socket buffers are not in VmRSS, so the
 * deltas are the broker's own memory. Prints one JSON object.
 *
 * Not a test: blocking sockets, one thread, exits on the first error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe.h"
#include "tern_proto/frame.h"

/* Reads frames until a PONG; any ERR is fatal. The PONG is the last
 * frame the broker sends here, so nothing is left unread. */
static void wait_pong(int fd) {
  static uint8_t buf[1 << 16];
  size_t have = 0;
  for (;;) {
    ssize_t r = read(fd, buf + have, sizeof buf - have);
    if (r <= 0)
      probe_die("read");
    have += (size_t)r;
    size_t at = 0, size = 0;
    while (tp_frame_size(buf + at, have - at, sizeof buf, &size) == 1 &&
           size <= have - at) {
      uint8_t type = buf[at + 5];
      if (type == TP_ERR) {
        errno = EPROTO;
        probe_die("broker answered ERR");
      }
      if (type == TP_PONG)
        return;
      at += size;
    }
    memmove(buf, buf + at, have - at);
    have -= at;
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: conn_mem PID HOST PORT [CONNS [SUBS]]\n");
    return 2;
  }
  long pid = atol(argv[1]);
  size_t nconns = argc > 4 ? (size_t)atol(argv[4]) : 10000;
  size_t nsubs = argc > 5 ? (size_t)atol(argv[5]) : 100000;
  if (nconns == 0)
    return 2;

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1)
    return 2;

  int *fds = calloc(nconns, sizeof *fds);
  if (fds == NULL)
    probe_die("calloc");
  tp_buf_t b;
  tp_buf_init(&b);
  tp_frame_t hello_connect, ping, sub;
  tp_frame_init(&hello_connect, TP_CONNECT);
  hello_connect.u.connect.proto = TP_PROTO_VERSION;
  tp_frame_init(&ping, TP_PING);
  tp_frame_init(&sub, TP_SUB);

  long rss0 = probe_status_kib(pid, "VmRSS");
  for (size_t i = 0; i < nconns; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (fds[i] < 0)
      probe_die("socket");
    if (connect(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0)
      probe_die("connect");
    probe_send_frame(fds[i], &b, &hello_connect);
    probe_send_frame(fds[i], &b, &ping);
    wait_pong(fds[i]);
  }
  long rss1 = probe_status_kib(pid, "VmRSS");

  char subject[64];
  for (size_t i = 0; i < nsubs; i++) {
    int fd = fds[i % nconns];
    int n = snprintf(subject, sizeof subject, "mem.c%zu.s%zu", i % nconns, i);
    sub.u.sub.sid = i + 1;
    sub.u.sub.pattern.ptr = subject;
    sub.u.sub.pattern.len = (uint32_t)n;
    probe_send_frame(fd, &b, &sub);
  }
  for (size_t i = 0; i < nconns && i < nsubs; i++) {
    probe_send_frame(fds[i], &b, &ping);
    wait_pong(fds[i]);
  }
  long rss2 = probe_status_kib(pid, "VmRSS");

  printf("{\"conns\":%zu,\"subs\":%zu,\"rss_kib\":[%ld,%ld,%ld],"
         "\"bytes_per_conn\":%.0f,\"bytes_per_sub\":%.0f}\n",
         nconns, nsubs, rss0, rss1, rss2,
         (double)(rss1 - rss0) * 1024.0 / (double)nconns,
         nsubs ? (double)(rss2 - rss1) * 1024.0 / (double)nsubs : 0.0);
  for (size_t i = 0; i < nconns; i++)
    close(fds[i]);
  free(fds);
  tp_buf_free(&b);
  return 0;
}
