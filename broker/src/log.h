/*
 * ternd's one logging macro. The level is tested before any argument is
 * formatted, so a debug line on a hot path costs one comparison when debug
 * logging is off. Lines go to stderr with a timestamp and the level.
 */
#ifndef TERND_LOG_H
#define TERND_LOG_H

typedef enum log_level {
  LOG_ERROR = 0,
  LOG_WARN = 1,
  LOG_INFO = 2,
  LOG_DEBUG = 3
} log_level_t;

extern log_level_t log_g_level;

/* "error", "warn", "info", "debug" -> level; -1 for anything else. */
int log_level_parse(const char *name);
void log_write(log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define LOG(level, ...)                                                        \
  do {                                                                         \
    if ((level) <= log_g_level)                                                \
      log_write((level), __VA_ARGS__);                                         \
  } while (0)

#endif
