/*
 * Leveled logging to stderr. One fprintf per line so that lines from a
 * sanitizer or a test harness sharing stderr do not interleave mid-line.
 * What a client sent can reach a line (its name, user, topics), so every
 * line is escaped and bounded here, and each call site is rate-limited.
 */
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

log_level_t log_g_level = LOG_INFO;
int log_g_format = LOG_FORMAT_PLAIN;
uint64_t log_g_rate_limit = LOG_DEFAULT_RATE_LIMIT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"plain", "json"};

/* The index of name in names[n], or -1. */
static int name_index(const char *const *names, int n, const char *name) {
  for (int i = 0; i < n; i++) {
    if (strcmp(name, names[i]) == 0)
      return i;
  }
  return -1;
}

int log_level_parse(const char *name) {
  return name_index(level_names, 4, name);
}

const char *log_level_name(int level) {
  return level >= 0 && level < 4 ? level_names[level] : "?";
}

int log_format_parse(const char *name) {
  return name_index(format_names, 2, name);
}

const char *log_format_name(int format) {
  return format >= 0 && format < 2 ? format_names[format] : "?";
}

/* Length of the valid UTF-8 sequence at s (at most len bytes) and its
 * code point, or 0 when the bytes there are not valid UTF-8 (overlong
 * forms, surrogates and values past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp) {
  size_t n;
  uint32_t v, min;
  if (s[0] >= 0xc2 && s[0] <= 0xdf) {
    n = 2, v = s[0] & 0x1fu, min = 0x80;
  } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
    n = 3, v = s[0] & 0x0fu, min = 0x800;
  } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
    n = 4, v = s[0] & 0x07u, min = 0x10000;
  } else {
    return 0;
  }
  if (len < n)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    v = (v << 6) | (s[i] & 0x3fu);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
    return 0;
  *cp = v;
  return n;
}

/* Code points that move a terminal's cursor or reorder text: C1 controls,
 * the line and paragraph separators, bidirectional overrides. */
static bool unsafe_cp(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
         (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

size_t log_escape(char *out, size_t cap, const char *s, size_t len, bool json,
                  size_t *consumed) {
  const unsigned char *u = (const unsigned char *)s;
  size_t n = 0, i = 0;
  while (i < len) {
    char esc[16];
    size_t elen = 0, step = 1;
    unsigned char ch = u[i];
    if (ch == '\\') {
      elen = (size_t)snprintf(esc, sizeof esc, "\\\\");
    } else if (ch == '"' && json) {
      elen = (size_t)snprintf(esc, sizeof esc, "\\\"");
    } else if (ch == '\n' || ch == '\r' || ch == '\t') {
      elen = (size_t)snprintf(esc, sizeof esc, "\\%c",
                              ch == '\n'   ? 'n'
                              : ch == '\r' ? 'r'
                                           : 't');
    } else if (ch < 0x20 || ch == 0x7f) {
      elen =
          (size_t)snprintf(esc, sizeof esc, json ? "\\u%04x" : "\\x%02x", ch);
    } else if (ch >= 0x80) {
      uint32_t cp = 0;
      size_t sl = utf8_seq(u + i, len - i, &cp);
      if (sl == 0) /* not UTF-8: the byte's value, as text */
        elen = (size_t)snprintf(esc, sizeof esc, json ? "\\\\x%02x" : "\\x%02x",
                                ch);
      else if (unsafe_cp(cp))
        elen = (size_t)snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
      else
        memcpy(esc, u + i, sl), elen = sl;
      step = sl == 0 ? 1 : sl;
    } else {
      esc[0] = (char)ch;
      elen = 1;
    }
    if (n + elen + 1 > cap)
      break;
    memcpy(out + n, esc, elen);
    n += elen;
    i += step;
  }
  if (cap > 0)
    out[n] = '\0';
  if (consumed != NULL)
    *consumed = i;
  return n;
}

/*
 * Escapes s into out, at most LOG_FIELD_MAX bytes of it; what did not fit
 * is replaced by "...(+N B)". Always terminates out (cap >= LOG_FIELD_BUF).
 */
static void escape_field(char *out, size_t cap, const char *s, bool json) {
  size_t len = strlen(s), used;
  size_t limit = cap < LOG_FIELD_MAX + 1 ? cap : LOG_FIELD_MAX + 1;
  size_t n = log_escape(out, limit, s, len, json, &used);
  if (used < len)
    snprintf(out + n, cap - n, "...(+%zu B)", len - used);
}

const char *log_field(const char *s) {
  static char ring[4][LOG_FIELD_MAX + 32];
  static unsigned next;
  if (s == NULL)
    return "";
  size_t len = strlen(s);
  if (len <= LOG_FIELD_MAX)
    return s;
  char *b = ring[next++ % 4];
  size_t keep = LOG_FIELD_MAX;
  /* Do not cut a UTF-8 sequence in two. */
  while (keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80)
    keep--;
  snprintf(b, sizeof ring[0], "%.*s...(+%zu B)", (int)keep, s, len - keep);
  return b;
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
 * log_conn_write (has_conn false otherwise). Every field, the message
 * included, is escaped here: the message may carry what a client sent.
 */
static void emit(log_level_t level, int has_conn, uint64_t cid,
                 const char *addr, const char *name, const char *msg) {
  char when[48];
  timestamp(when, sizeof when);
  bool json = log_g_format == LOG_FORMAT_JSON;
  char emsg[LOG_MSG_MAX + 1], eaddr[LOG_FIELD_BUF], ename[LOG_FIELD_BUF];
  size_t used, mlen = strlen(msg);
  size_t n = log_escape(emsg, sizeof emsg - 16, msg, mlen, json, &used);
  if (used < mlen)
    snprintf(emsg + n, sizeof emsg - n, "...(+%zu B)", mlen - used);
  if (has_conn) {
    escape_field(eaddr, sizeof eaddr, addr ? addr : "", json);
    if (name != NULL)
      escape_field(ename, sizeof ename, name, json);
  }
  if (!json) {
    if (has_conn)
      fprintf(stderr, "%s [%s] conn %llu (%s%s%s) %s\n", when,
              level_names[level], (unsigned long long)cid, eaddr,
              name ? " " : "", name ? ename : "", emsg);
    else
      fprintf(stderr, "%s [%s] %s\n", when, level_names[level], emsg);
    return;
  }
  if (!has_conn) {
    fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", when,
            level_names[level], emsg);
    return;
  }
  if (name != NULL) {
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

/* ---- rate limit per call site ------------------------------------------ */

/* A call site is its format string; sites share a small table, so two
 * that collide take turns (each flushes the other's count first). */
#define SITES 128
#define WINDOW_MS 1000

typedef struct site {
  const char *fmt;
  int64_t window_start;
  uint64_t lines, suppressed;
  log_level_t level;
} site_t;

static site_t sites[SITES];
static pthread_mutex_t sites_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes the site's "(N similar lines suppressed)" note, if any. */
static void flush_site(site_t *s) {
  if (s->suppressed == 0)
    return;
  char note[LOG_MSG_MAX];
  snprintf(note, sizeof note, "(%llu similar lines suppressed: \"%s\")",
           (unsigned long long)s->suppressed, s->fmt);
  s->suppressed = 0;
  emit(s->level, 0, 0, NULL, NULL, note);
}

/* True when a line from this site may be written now. */
static bool admit(log_level_t level, const char *fmt) {
  uint64_t rate = log_g_rate_limit;
  if (rate == 0)
    return true;
  int64_t now = mono_ms();
  bool ok;
  pthread_mutex_lock(&sites_lock);
  site_t *s = &sites[((uintptr_t)fmt >> 3) % SITES];
  if (s->fmt != fmt || now - s->window_start >= WINDOW_MS) {
    if (s->fmt != NULL)
      flush_site(s);
    s->fmt = fmt;
    s->level = level;
    s->window_start = now;
    s->lines = 0;
  }
  ok = s->lines < rate;
  if (ok)
    s->lines++;
  else
    s->suppressed++;
  pthread_mutex_unlock(&sites_lock);
  return ok;
}

void log_flush_suppressed(bool all) {
  int64_t now = mono_ms();
  pthread_mutex_lock(&sites_lock);
  for (size_t i = 0; i < SITES; i++) {
    if (sites[i].suppressed > 0 &&
        (all || now - sites[i].window_start >= WINDOW_MS))
      flush_site(&sites[i]);
  }
  pthread_mutex_unlock(&sites_lock);
}

void log_write(log_level_t level, const char *fmt, ...) {
  if (!admit(level, fmt))
    return;
  char msg[LOG_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(level, 0, 0, NULL, NULL, msg);
}

void log_conn_write(log_level_t level, uint64_t cid, const char *addr,
                    const char *name, const char *fmt, ...) {
  if (!admit(level, fmt))
    return;
  char msg[LOG_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(level, 1, cid, addr, name, msg);
}
