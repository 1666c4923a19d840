/*
 * ternd's one logging macro. The level is tested before any argument is
 * formatted, so a debug line on a hot path costs one comparison when debug
 * logging is off. Lines go to stderr with a timestamp and the level, as
 * plain text or, with --log-format json, as one JSON object per line.
 */
#ifndef TERND_LOG_H
#define TERND_LOG_H

#include <stdbool.h>
#include <stddef.h>
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
/* Lines per second from one call site (format string) before the rest
 * are counted, not written, and reported as "(N similar lines
 * suppressed: ...)"; 0 = no limit. */
extern uint64_t log_g_rate_limit;
#define LOG_DEFAULT_RATE_LIMIT 20

/* A client-supplied field keeps at most this many bytes in a line. */
#define LOG_FIELD_MAX 128
#define LOG_FIELD_BUF (LOG_FIELD_MAX + 32)
/* A message keeps at most this many bytes once escaped. */
#define LOG_MSG_MAX 1024

/* "error", "warn", "info", "debug" -> level; -1 for anything else. */
int log_level_parse(const char *name);
const char *log_level_name(int level);
/* "plain", "json" -> LOG_FORMAT_*; -1 for anything else. */
int log_format_parse(const char *name);
const char *log_format_name(int format);

/*
 * Escapes len bytes of s into out (cap bytes, NUL-terminated): backslash,
 * C0 controls and DEL always, '"' in JSON; C1 controls, the line
 * separators and bidirectional overrides as \uXXXX; bytes that are not
 * UTF-8 as the text \xHH. Stops before an escape that would not fit;
 * *consumed (may be NULL) gets the input bytes done. Returns the length.
 * json: the result is the inside of a valid JSON string.
 */
size_t log_escape(char *out, size_t cap, const char *s, size_t len, bool json,
                  size_t *consumed);
/* s cut to LOG_FIELD_MAX bytes with "...(+N B)" when longer, for a
 * client-supplied string inside a message (escaping happens when the line
 * is written). Returns s itself when short, else one of four rotating
 * static buffers: use it within the LOG call. NULL gives "". */
const char *log_field(const char *s);
/* Writes the suppression notes of call sites whose second is over (all:
 * every pending note, e.g. at exit). Called from a periodic timer. */
void log_flush_suppressed(bool all);

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
