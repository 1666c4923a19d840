/*
 * The open-file limit and the acceptor (see fdlimit.h).
 */
#define _GNU_SOURCE /* accept4 */
#include "server/fdlimit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"

/* Clients accepted per wakeup, so one busy listener cannot hold the loop. */
#define ACCEPTS_PER_TURN 128

long fdlimit_raise(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -1;
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      LOG(LOG_WARN, "cannot raise the open-file limit from %llu",
          (unsigned long long)was);
      rl.rlim_cur = was;
    }
  }
  if (rl.rlim_cur == RLIM_INFINITY)
    return -1;
  return (long)rl.rlim_cur;
}

long fdlimit_current(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return -1;
  return (long)rl.rlim_cur;
}

int fdlimit_open_count(void) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] != '.')
      n++;
  }
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

static int open_spare(void) {
  return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* EMFILE/ENFILE: one waiting client is accepted on the spare descriptor
 * and refused. False when there was none to accept (or no spare). */
static bool refuse_one(fd_acceptor_t *a) {
  if (a->spare < 0)
    a->spare = open_spare();
  if (a->spare < 0)
    return false;
  close(a->spare);
  a->spare = -1;
  int fd;
  do
    fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd >= 0) {
    a->on_refuse(a, fd);
    close(fd);
  }
  a->spare = open_spare();
  return fd >= 0;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  fd_acceptor_t *a = h->data;
  if (status < 0)
    return;
  for (int i = 0; i < ACCEPTS_PER_TURN && !a->paused && a->fd >= 0; i++) {
    int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      a->on_accept(a, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED)
      continue;
    if ((errno == EMFILE || errno == ENFILE) && refuse_one(a))
      continue;
    return; /* EAGAIN, or nothing more can be done this turn */
  }
}

int fd_acceptor_listen(fd_acceptor_t *a, uv_loop_t *loop, const char *host,
                       int port, int backlog, int *bound_port) {
  a->fd = -1;
  a->spare = -1;
  a->paused = false;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
  if (rc != 0)
    rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
  if (rc != 0)
    return rc;
  socklen_t slen = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      bind(fd, (struct sockaddr *)&ss, slen) != 0 || listen(fd, backlog) != 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  slen = sizeof ss;
  *bound_port = port;
  if (getsockname(fd, (struct sockaddr *)&ss, &slen) == 0)
    *bound_port = ss.ss_family == AF_INET6
                      ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                      : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  rc = uv_poll_init_socket(loop, &a->poll, fd);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  a->fd = fd;
  a->poll.data = a;
  a->spare = open_spare();
  uv_poll_start(&a->poll, UV_READABLE, on_readable);
  return 0;
}

void fd_acceptor_pause(fd_acceptor_t *a) {
  if (a->fd >= 0 && !a->paused) {
    a->paused = true;
    uv_poll_stop(&a->poll);
  }
}

void fd_acceptor_resume(fd_acceptor_t *a) {
  if (a->fd >= 0 && a->paused) {
    a->paused = false;
    uv_poll_start(&a->poll, UV_READABLE, on_readable);
  }
}

void fd_acceptor_close(fd_acceptor_t *a, void *data, uv_close_cb close_cb) {
  if (a->fd < 0)
    return;
  a->poll.data = data;
  uv_close((uv_handle_t *)&a->poll, close_cb); /* stops polling at once */
  close(a->fd);
  a->fd = -1;
  if (a->spare >= 0)
    close(a->spare);
  a->spare = -1;
}
