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
int log_g_format = LOG_FORMAT_PLAIN;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"plain", "json"};

int log_level_parse(const char *name) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(name, level_names[i]) == 0)
      return i;
  }
  return -1;
}

const char *log_level_name(int level) {
  return level >= 0 && level < 4 ? level_names[level] : "?";
}

int log_format_parse(const char *name) {
  for (int i = 0; i < 2; i++) {
    if (strcmp(name, format_names[i]) == 0)
      return i;
  }
  return -1;
}

const char *log_format_name(int format) {
  return format >= 0 && format < 2 ? format_names[format] : "?";
}

/* Appends s to out as the inside of a JSON string; always terminates. */
static size_t json_escape(char *out, size_t cap, const char *s) {
  size_t n = 0;
  for (; *s && n + 7 < cap; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      out[n++] = '\\';
      out[n++] = (char)ch;
    } else if (ch < 0x20) {
      n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
    } else {
      out[n++] = (char)ch;
    }
  }
  out[n] = '\0';
  return n;
}

static void timestamp(char *when, size_t cap) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char sec[24];
  strftime(sec, sizeof sec, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when, cap, "%.20s.%03dZ", sec, (int)(ts.tv_nsec / 1000000));
}

/*
 * The one place a line is written. conn is the connection's fields for
 * log_conn_write (has_conn false otherwise).
 */
static void emit(log_level_t level, int has_conn, uint64_t cid,
                 const char *addr, const char *name, const char *msg) {
  char when[48];
  timestamp(when, sizeof when);
  if (log_g_format != LOG_FORMAT_JSON) {
    if (has_conn)
      fprintf(stderr, "%s [%s] conn %llu (%s%s%s) %s\n", when,
              level_names[level], (unsigned long long)cid, addr,
              name ? " " : "", name ? name : "", msg);
    else
      fprintf(stderr, "%s [%s] %s\n", when, level_names[level], msg);
    return;
  }
  char emsg[2048], eaddr[160], ename[512];
  json_escape(emsg, sizeof emsg, msg);
  if (!has_conn) {
    fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", when,
            level_names[level], emsg);
    return;
  }
  json_escape(eaddr, sizeof eaddr, addr);
  if (name != NULL) {
    json_escape(ename, sizeof ename, name);
    fprintf(stderr,
            "{\"ts\":\"%s\",\"level\":\"%s\",\"cid\":%llu,\"addr\":\"%s\","
            "\"name\":\"%s\",\"msg\":\"%s\"}\n",
            when, level_names[level], (unsigned long long)cid, eaddr, ename,
            emsg);
  } else {
    fprintf(stderr,
            "{\"ts\":\"%s\",\"level\":\"%s\",\"cid\":%llu,\"addr\":\"%s\","
            "\"msg\":\"%s\"}\n",
            when, level_names[level], (unsigned long long)cid, eaddr, emsg);
  }
}

void log_write(log_level_t level, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(level, 0, 0, NULL, NULL, msg);
}

void log_conn_write(log_level_t level, uint64_t cid, const char *addr,
                    const char *name, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(level, 1, cid, addr, name, msg);
}
