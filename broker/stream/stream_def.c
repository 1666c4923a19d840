/*
 * Stream definitions (stream_def.h).
 */
#include "stream/stream_def.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tern_proto/errors.h"
#include "tern_proto/mp.h"
#include "tern_proto/topic.h"

void stream_def_init(stream_def_t *d, const char *name) {
  memset(d, 0, sizeof *d);
  snprintf(d->name, sizeof d->name, "%s", name);
  d->discard = STREAM_DISCARD_OLD;
  d->sync = STREAM_SYNC_ALWAYS;
  d->sync_interval_ms = 1000;
  d->dedup_window_ms = 120000;
}

void stream_def_free(stream_def_t *d) {
  for (size_t i = 0; i < d->ntopics; i++)
    free(d->topics[i]);
  d->ntopics = 0;
}

int stream_def_copy(stream_def_t *dst, const stream_def_t *src) {
  *dst = *src;
  dst->ntopics = 0;
  for (size_t i = 0; i < src->ntopics; i++) {
    dst->topics[i] = strdup(src->topics[i]);
    if (dst->topics[i] == NULL) {
      stream_def_free(dst);
      return TP_ENOMEM;
    }
    dst->ntopics++;
  }
  return 0;
}

bool stream_name_valid(const char *s, size_t len) {
  if (len == 0 || len > STREAM_NAME_MAX)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

static int add_topic(stream_def_t *d, const char *t, size_t len, char *why,
                     size_t whylen) {
  if (d->ntopics == STREAM_MAX_TOPICS) {
    snprintf(why, whylen, "too many topics (at most %d)", STREAM_MAX_TOPICS);
    return -1;
  }
  if (tp_pattern_validate(t, len, TP_DEFAULT_MAX_TOPIC) != 0 ||
      tp_topic_is_system(t, len)) {
    snprintf(why, whylen, "invalid topic pattern '%.*s'", (int)len, t);
    return -1;
  }
  char *c = malloc(len + 1);
  if (c == NULL) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  memcpy(c, t, len);
  c[len] = '\0';
  d->topics[d->ntopics++] = c;
  return 0;
}

static bool parse_u64(const char *s, uint64_t *out) {
  if (s == NULL || *s < '0' || *s > '9')
    return false;
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0')
    return false;
  *out = v;
  return true;
}

static int set_discard(stream_def_t *d, const char *v, size_t n) {
  if (n == 3 && memcmp(v, "old", 3) == 0)
    d->discard = STREAM_DISCARD_OLD;
  else if (n == 3 && memcmp(v, "new", 3) == 0)
    d->discard = STREAM_DISCARD_NEW;
  else
    return -1;
  return 0;
}

static int set_sync(stream_def_t *d, const char *v, size_t n) {
  if (n == 6 && memcmp(v, "always", 6) == 0)
    d->sync = STREAM_SYNC_ALWAYS;
  else if (n == 5 && memcmp(v, "never", 5) == 0)
    d->sync = STREAM_SYNC_NEVER;
  else if (n == 8 && memcmp(v, "interval", 8) == 0)
    d->sync = STREAM_SYNC_INTERVAL;
  else
    return -1;
  return 0;
}

/* The numeric keys, shared by the file and the API. */
static uint64_t *num_field(stream_def_t *d, const char *key, size_t n) {
#define K(name)                                                                \
  if (n == sizeof #name - 1 && memcmp(key, #name, n) == 0)                     \
    return &d->name;
  K(max_msgs)
  K(max_bytes)
  K(max_age_ms)
  K(max_msgs_per_topic)
  K(sync_interval_ms)
  K(dedup_window_ms)
#undef K
  return NULL;
}

int stream_def_set(stream_def_t *d, const char *key, const char *val, char *why,
                   size_t whylen) {
  uint64_t *f = num_field(d, key, strlen(key));
  if (f != NULL) {
    if (!parse_u64(val, f)) {
      snprintf(why, whylen, "invalid value for %s: '%s' (expected an integer)",
               key, val);
      return -1;
    }
    return 0;
  }
  if (strcmp(key, "topics") == 0) {
    /* Comma- or space-separated patterns; the key may repeat. */
    const char *p = val;
    while (*p) {
      while (*p == ',' || *p == ' ')
        p++;
      const char *e = p;
      while (*e && *e != ',' && *e != ' ')
        e++;
      if (e > p && add_topic(d, p, (size_t)(e - p), why, whylen) != 0)
        return -1;
      p = e;
    }
    return 0;
  }
  if (strcmp(key, "discard") == 0) {
    if (set_discard(d, val, strlen(val)) != 0) {
      snprintf(why, whylen,
               "invalid value for discard: '%s' (expected old or new)", val);
      return -1;
    }
    return 0;
  }
  if (strcmp(key, "sync") == 0) {
    if (set_sync(d, val, strlen(val)) != 0) {
      snprintf(why, whylen,
               "invalid value for sync: '%s' (expected always, interval or "
               "never)",
               val);
      return -1;
    }
    return 0;
  }
  snprintf(why, whylen, "unknown stream option '%s'", key);
  return -1;
}

int stream_def_validate(const stream_def_t *d, char *why, size_t whylen) {
  if (!stream_name_valid(d->name, strlen(d->name))) {
    snprintf(why, whylen,
             "invalid stream name '%s' (1 to 64 of A-Z a-z 0-9 _ -)", d->name);
    return -1;
  }
  if (d->ntopics == 0) {
    snprintf(why, whylen, "stream %s: no topics", d->name);
    return -1;
  }
  if (d->sync == STREAM_SYNC_INTERVAL && d->sync_interval_ms == 0) {
    snprintf(why, whylen, "stream %s: sync_interval_ms must be above 0",
             d->name);
    return -1;
  }
  return 0;
}

int stream_def_decode(stream_def_t *d, const uint8_t *p, size_t len, char *why,
                      size_t whylen) {
  tp_mp_cur_t c;
  tp_mp_cur_init(&c, p, len);
  uint32_t n;
  if (len == 0)
    return 0;
  if (tp_mp_read_map(&c, &n) != 0) {
    snprintf(why, whylen, "the request body must be a msgpack map");
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    tp_str_t k, v;
    if (tp_mp_read_str(&c, &k) != 0) {
      snprintf(why, whylen, "map keys must be strings");
      return -1;
    }
    uint64_t *f = num_field(d, k.ptr, k.len);
    if (f != NULL) {
      if (tp_mp_read_uint(&c, f) != 0) {
        snprintf(why, whylen, "%.*s must be an unsigned integer", (int)k.len,
                 k.ptr);
        return -1;
      }
    } else if (tp_str_is(k, "topics")) {
      uint32_t m;
      if (tp_mp_read_array(&c, &m) != 0) {
        snprintf(why, whylen, "topics must be an array of strings");
        return -1;
      }
      stream_def_free(d);
      for (uint32_t j = 0; j < m; j++) {
        if (tp_mp_read_str(&c, &v) != 0) {
          snprintf(why, whylen, "topics must be an array of strings");
          return -1;
        }
        if (add_topic(d, v.ptr, v.len, why, whylen) != 0)
          return -1;
      }
    } else if (tp_str_is(k, "discard")) {
      if (tp_mp_read_str(&c, &v) != 0 || set_discard(d, v.ptr, v.len) != 0) {
        snprintf(why, whylen, "discard must be \"old\" or \"new\"");
        return -1;
      }
    } else if (tp_str_is(k, "sync")) {
      if (tp_mp_read_str(&c, &v) != 0 || set_sync(d, v.ptr, v.len) != 0) {
        snprintf(why, whylen,
                 "sync must be \"always\", \"interval\" or \"never\"");
        return -1;
      }
    } else if (tp_mp_skip(&c) != 0) {
      snprintf(why, whylen, "malformed request body");
      return -1;
    }
  }
  return 0;
}

int stream_def_encode(const stream_def_t *d, tp_buf_t *b) {
  static const char *discards[] = {"old", "new"};
  static const char *syncs[] = {"always", "interval", "never"};
  int rc = tp_mp_map(b, 10);
  rc = rc ? rc : tp_mp_kv_str(b, "name", d->name);
  rc = rc ? rc : tp_mp_cstr(b, "topics");
  rc = rc ? rc : tp_mp_array(b, (uint32_t)d->ntopics);
  for (size_t i = 0; rc == 0 && i < d->ntopics; i++)
    rc = tp_mp_cstr(b, d->topics[i]);
  rc = rc ? rc : tp_mp_kv_uint(b, "max_msgs", d->max_msgs);
  rc = rc ? rc : tp_mp_kv_uint(b, "max_bytes", d->max_bytes);
  rc = rc ? rc : tp_mp_kv_uint(b, "max_age_ms", d->max_age_ms);
  rc = rc ? rc : tp_mp_kv_uint(b, "max_msgs_per_topic", d->max_msgs_per_topic);
  rc = rc ? rc : tp_mp_kv_str(b, "discard", discards[d->discard & 1]);
  rc = rc ? rc : tp_mp_kv_str(b, "sync", syncs[d->sync % 3]);
  rc = rc ? rc : tp_mp_kv_uint(b, "sync_interval_ms", d->sync_interval_ms);
  rc = rc ? rc : tp_mp_kv_uint(b, "dedup_window_ms", d->dedup_window_ms);
  return rc;
}

void stream_def_print(const stream_def_t *d, FILE *out) {
  static const char *discards[] = {"old", "new"};
  static const char *syncs[] = {"always", "interval", "never"};
  fprintf(out, "\n[stream %s]\ntopics = ", d->name);
  for (size_t i = 0; i < d->ntopics; i++)
    fprintf(out, "%s%s", i ? ", " : "", d->topics[i]);
  fprintf(out,
          "\nmax_msgs = %llu\nmax_bytes = %llu\nmax_age_ms = %llu\n"
          "max_msgs_per_topic = %llu\ndiscard = %s\nsync = %s\n"
          "sync_interval_ms = %llu\ndedup_window_ms = %llu\n",
          (unsigned long long)d->max_msgs, (unsigned long long)d->max_bytes,
          (unsigned long long)d->max_age_ms,
          (unsigned long long)d->max_msgs_per_topic, discards[d->discard & 1],
          syncs[d->sync % 3], (unsigned long long)d->sync_interval_ms,
          (unsigned long long)d->dedup_window_ms);
}

stream_def_t *stream_defs_get(stream_defs_t **defs, const char *name) {
  if (*defs == NULL) {
    *defs = calloc(1, sizeof **defs);
    if (*defs == NULL)
      return NULL;
  }
  stream_defs_t *s = *defs;
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i].name, name) == 0)
      return &s->v[i];
  stream_def_t *v = realloc(s->v, (s->n + 1) * sizeof *v);
  if (v == NULL)
    return NULL;
  s->v = v;
  stream_def_init(&s->v[s->n], name);
  return &s->v[s->n++];
}

void stream_defs_free(stream_defs_t *defs) {
  if (defs == NULL)
    return;
  for (size_t i = 0; i < defs->n; i++)
    stream_def_free(&defs->v[i]);
  free(defs->v);
  free(defs);
}

int stream_defs_copy(stream_defs_t **dst, const stream_defs_t *src) {
  *dst = NULL;
  if (src == NULL)
    return 0;
  stream_defs_t *d = calloc(1, sizeof *d);
  if (d == NULL)
    return TP_ENOMEM;
  d->v = calloc(src->n ? src->n : 1, sizeof *d->v);
  if (d->v == NULL) {
    free(d);
    return TP_ENOMEM;
  }
  for (size_t i = 0; i < src->n; i++) {
    if (stream_def_copy(&d->v[i], &src->v[i]) != 0) {
      stream_defs_free(d);
      return TP_ENOMEM;
    }
    d->n++;
  }
  *dst = d;
  return 0;
}
