/*
 * A stream's definition: its name, the topic patterns it captures, its
 * limits, what happens when it is full, and when it syncs to disk. Read
 * from the configuration file ([stream NAME] sections), from the stream
 * API's msgpack bodies (PROTOCOL.md section 8) and written back in both.
 */
#ifndef TERND_STREAM_DEF_H
#define TERND_STREAM_DEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tern_proto/buf.h"

#define STREAM_NAME_MAX 64
#define STREAM_MAX_TOPICS 64

typedef enum {
  STREAM_DISCARD_OLD = 0,
  STREAM_DISCARD_NEW = 1
} stream_discard_t;
typedef enum {
  STREAM_SYNC_ALWAYS = 0, /* fsync before the ack */
  STREAM_SYNC_INTERVAL = 1,
  STREAM_SYNC_NEVER = 2
} stream_sync_t;

typedef struct stream_def {
  char name[STREAM_NAME_MAX + 1];
  char *topics[STREAM_MAX_TOPICS]; /* patterns, owned */
  size_t ntopics;
  uint64_t max_msgs;           /* 0: no limit */
  uint64_t max_bytes;          /* 0: no limit */
  uint64_t max_age_ms;         /* 0: no limit */
  uint64_t max_msgs_per_topic; /* 0: no limit; 1: a last-value store */
  int discard;                 /* stream_discard_t */
  int sync;                    /* stream_sync_t */
  uint64_t sync_interval_ms;   /* for STREAM_SYNC_INTERVAL */
  uint64_t dedup_window_ms;    /* message ids remembered this long */
} stream_def_t;

/* The defaults: no limits, discard old, sync always, 2 min dedup. */
void stream_def_init(stream_def_t *d, const char *name);
void stream_def_free(stream_def_t *d);
/* A deep copy. 0 or TP_ENOMEM. */
int stream_def_copy(stream_def_t *dst, const stream_def_t *src);

/* A valid stream or consumer name: 1..64 of [A-Za-z0-9_-]. */
bool stream_name_valid(const char *s, size_t len);

/* One `key = value` of a [stream NAME] section. 0, or -1 with why. */
int stream_def_set(stream_def_t *d, const char *key, const char *val, char *why,
                   size_t whylen);
/* Whole-definition checks (a topic at least, valid patterns). */
int stream_def_validate(const stream_def_t *d, char *why, size_t whylen);
/* Fills d (already init'ed with its name) from a msgpack map. 0, or -1
 * with why. */
int stream_def_decode(stream_def_t *d, const uint8_t *p, size_t len, char *why,
                      size_t whylen);
/* Appends the definition as a msgpack map. 0 or TP_ENOMEM. */
int stream_def_encode(const stream_def_t *d, tp_buf_t *b);
/* As `[stream NAME]` and its keys, for --check-config. */
void stream_def_print(const stream_def_t *d, FILE *out);

/* The streams of the configuration file. */
typedef struct stream_defs {
  stream_def_t *v;
  size_t n;
} stream_defs_t;
/* The definition named name, added (with defaults) if new; NULL when out
 * of memory. *defs may be NULL: it is made. */
stream_def_t *stream_defs_get(stream_defs_t **defs, const char *name);
void stream_defs_free(stream_defs_t *defs);
/* A deep copy (NULL stays NULL). 0 or TP_ENOMEM. */
int stream_defs_copy(stream_defs_t **dst, const stream_defs_t *src);

#endif
