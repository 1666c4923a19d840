/*
 * Leveled logging to stderr. One fprintf per line so that lines from a
 * sanitizer or a test harness sharing stderr do not interleave mid-line.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

log_level_t log_g_level = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *name) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(name, level_names[i]) == 0)
      return i;
  }
  return -1;
}

void log_write(log_level_t level, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(stderr, "%s.%03ldZ [%s] %s\n", when, ts.tv_nsec / 1000000,
          level_names[level], msg);
}
