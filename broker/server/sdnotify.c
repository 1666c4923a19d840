/*
 * sd_notify(3)'s protocol: one datagram of newline-separated KEY=VALUE
 * assignments to the AF_UNIX socket named by $NOTIFY_SOCKET, a path or,
 * with a leading '@', an abstract name.
 */
#include "server/sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

int sdnotify(const char *state) {
  const char *name = getenv("NOTIFY_SOCKET");
  if (name == NULL || name[0] == '\0')
    return 0;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t len = strlen(name);
  if ((name[0] != '/' && name[0] != '@') || len >= sizeof sa.sun_path)
    return -EINVAL;
  memcpy(sa.sun_path, name, len);
  if (name[0] == '@')
    sa.sun_path[0] = '\0'; /* abstract: the length bounds the name */
  else
    len++; /* a path: its NUL counts */
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  ssize_t n = sendto(fd, state, strlen(state), MSG_DONTWAIT | MSG_NOSIGNAL,
                     (const struct sockaddr *)&sa,
                     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
  int rc = n < 0 ? -errno : 0;
  close(fd);
  return rc;
}

static void send_logged(const char *state) {
  int rc = sdnotify(state);
  if (rc != 0)
    LOG(LOG_DEBUG, "NOTIFY_SOCKET %s: %s", getenv("NOTIFY_SOCKET"),
        strerror(-rc));
}

void sdnotify_ready(const char *status) {
  char msg[384];
  snprintf(msg, sizeof msg, "READY=1%s%s", status ? "\nSTATUS=" : "",
           status ? status : "");
  send_logged(msg);
}

void sdnotify_reloading(void) {
  /* MONOTONIC_USEC: the reload's start, required by Type=notify-reload. */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  char msg[96];
  snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
           (unsigned long long)ts.tv_sec * 1000000ULL +
               (unsigned long long)ts.tv_nsec / 1000ULL);
  send_logged(msg);
}

void sdnotify_stopping(void) {
  send_logged("STOPPING=1\nSTATUS=draining");
}
