#define _GNU_SOURCE /* program_invocation_short_name */
#include "probe.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

long probe_status_kib(long pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  long kib = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, field, n) == 0 && line[n] == ':') {
      kib = atol(line + n + 1);
      break;
    }
  fclose(f);
  return kib;
}

double probe_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void probe_die(const char *what) {
  fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what,
          strerror(errno));
  exit(1);
}

void probe_send_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      probe_die("write");
    }
    b += w;
    n -= (size_t)w;
  }
}

void probe_send_frame(int fd, tp_buf_t *b, const tp_frame_t *f) {
  tp_buf_reset(b);
  if (tp_frame_encode(b, f) != 0)
    probe_die("encode");
  probe_send_all(fd, b->data, b->len);
}
