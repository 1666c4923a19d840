/*
 * ternd's one logging macro. The level is tested before any argument is
 * formatted, so a debug line on a hot path costs one comparison when debug
 * logging is off. Lines go to stderr with a timestamp and the level, as
 * plain text or, with --log-format json, as one JSON object per line.
 */
#ifndef TERND_LOG_H
#define TERND_LOG_H

#include <stdint.h>

typedef enum log_level {
  LOG_ERROR = 0,
  LOG_WARN = 1,
  LOG_INFO = 2,
  LOG_DEBUG = 3
} log_level_t;

enum { LOG_FORMAT_PLAIN = 0, LOG_FORMAT_JSON = 1 };

extern log_level_t log_g_level;
extern int log_g_format;

/* "error", "warn", "info", "debug" -> level; -1 for anything else. */
int log_level_parse(const char *name);
const char *log_level_name(int level);
/* "plain", "json" -> LOG_FORMAT_*; -1 for anything else. */
int log_format_parse(const char *name);
const char *log_format_name(int format);

void log_write(log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A line about one connection: in JSON its id, address and name are
 * fields of their own (cid, addr, name); name may be NULL. */
void log_conn_write(log_level_t level, uint64_t cid, const char *addr,
                    const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define LOG(level, ...)                                                        \
  do {                                                                         \
    if ((level) <= log_g_level)                                                \
      log_write((level), __VA_ARGS__);                                         \
  } while (0)

#define LOG_CONN(level, cid, addr, name, ...)                                  \
  do {                                                                         \
    if ((level) <= log_g_level)                                                \
      log_conn_write((level), (cid), (addr), (name), __VA_ARGS__);             \
  } while (0)

#endif
