/*
 * Durable streams: registry, API, capture, acks (streams.h).
 */
#include "stream/streams.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/log.h"
#include "delivery/endpoint.h"
#include "delivery/handoff.h"
#include "delivery/router.h"
#include "stream/consumer.h"
#include "stream/emit.h"
#include "stream/stream_internal.h"
#include "tern_proto/errors.h"
#include "tern_proto/mp.h"
#include "tern_proto/topic.h"

#define API_PREFIX "$TS.API."
#define ACK_PREFIX "$TS.ACK."
/* Consumer messages per consumer per loop turn. */
#define PUMP_BUDGET 256
#define TICK_MS 100

/* ---- helpers ---- */

static int mkdirs(const char *path) {
  char tmp[1200];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p == '/') {
      *p = '\0';
      if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
        return -errno;
      *p = '/';
    }
  }
  if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
    return -errno;
  return 0;
}

/* Whether some topic matches both patterns. */
static bool patterns_overlap(const char *a, const char *b) {
  tp_token_iter_t ia, ib;
  tp_token_iter_init(&ia, a, strlen(a));
  tp_token_iter_init(&ib, b, strlen(b));
  for (;;) {
    const char *ta, *tb;
    size_t la, lb;
    int ha = tp_token_next(&ia, &ta, &la), hb = tp_token_next(&ib, &tb, &lb);
    if (!ha || !hb)
      return !ha && !hb;
    if ((la == 1 && ta[0] == '>') || (lb == 1 && tb[0] == '>'))
      return true;
    if ((la == 1 && ta[0] == '*') || (lb == 1 && tb[0] == '*'))
      continue;
    if (la != lb || memcmp(ta, tb, la) != 0)
      return false;
  }
}

static stream_t *find_stream(streams_t *s, const char *name, size_t len) {
  for (size_t i = 0; i < s->n; i++)
    if (strlen(s->v[i]->def.name) == len &&
        memcmp(s->v[i]->def.name, name, len) == 0)
      return s->v[i];
  return NULL;
}

static consumer_t *find_consumer(stream_t *st, const char *name, size_t len) {
  for (size_t i = 0; i < st->ncons; i++)
    if (strlen(st->cons[i]->name) == len &&
        memcmp(st->cons[i]->name, name, len) == 0)
      return st->cons[i];
  return NULL;
}

static void store_cfg(const stream_t *st, store_config_t *cfg);

/* ---- acks to publishers ---- */

static void reply_error(streams_t *s, const char *to, unsigned code,
                        const char *msg, const char *stream) {
  if (to == NULL)
    return;
  tp_buf_t *b = &s->scratch;
  tp_buf_reset(b);
  int rc = tp_mp_map(b, stream ? 2 : 1);
  if (stream)
    rc = rc ? rc : tp_mp_kv_str(b, "stream", stream);
  rc = rc ? rc : tp_mp_cstr(b, "error");
  rc = rc ? rc : tp_mp_map(b, 2);
  rc = rc ? rc : tp_mp_kv_uint(b, "code", code);
  rc = rc ? rc : tp_mp_kv_str(b, "message", msg);
  if (rc == 0)
    emit_reply(s->w, to, b);
}

static void send_puback(streams_t *s, stream_t *st, const ack_wait_t *a,
                        bool dup) {
  tp_buf_t *b = &s->scratch;
  tp_buf_reset(b);
  int rc = tp_mp_map(b, dup ? 3 : 2);
  rc = rc ? rc : tp_mp_kv_str(b, "stream", st->def.name);
  rc = rc ? rc : tp_mp_kv_uint(b, "seq", a->seq);
  if (dup)
    rc = rc ? rc : tp_mp_kv_bool(b, "duplicate", true);
  if (rc == 0)
    emit_reply(s->w, a->reply, b);
}

static int ack_push(stream_t *st, uint64_t seq, const char *reply, size_t rlen,
                    bool dup) {
  if (st->nacks == st->acks_cap) {
    size_t cap = st->acks_cap ? st->acks_cap * 2 : 64;
    ack_wait_t *a = malloc(cap * sizeof *a);
    if (a == NULL)
      return TP_ENOMEM;
    for (size_t i = 0; i < st->nacks; i++)
      a[i] = st->acks[(st->acks_head + i) % st->acks_cap];
    free(st->acks);
    st->acks = a;
    st->acks_cap = cap;
    st->acks_head = 0;
  }
  char *r = malloc(rlen + 2);
  if (r == NULL)
    return TP_ENOMEM;
  memcpy(r, reply, rlen);
  r[rlen] = '\0';
  r[rlen + 1] = dup ? 1 : 0; /* the duplicate flag rides after the NUL */
  st->acks[(st->acks_head + st->nacks) % st->acks_cap] =
      (ack_wait_t){.seq = seq, .reply = r};
  st->nacks++;
  return 0;
}

/* Sends every ack whose record is stored; refuses those a write error
 * dropped. */
static void process_acks(stream_t *st) {
  streams_t *s = st->owner;
  if (st->nacks == 0)
    return;
  uint64_t stored = store_stored_seq(st->log);
  store_info_t info;
  store_info(st->log, &info);
  while (st->nacks > 0) {
    ack_wait_t *a = &st->acks[st->acks_head];
    bool dup = a->reply[strlen(a->reply) + 1] != 0;
    if (a->seq <= stored) {
      send_puback(s, st, a, dup);
    } else if (info.failed || a->seq > info.last_seq) {
      reply_error(s, a->reply, 503, "stream write failed: message not stored",
                  st->def.name);
      st->refused_disk++;
    } else {
      break;
    }
    free(a->reply);
    st->acks_head = (st->acks_head + 1) % st->acks_cap;
    st->nacks--;
  }
}

static void on_stored(void *ctx, store_t *log, uint64_t seq) {
  (void)log, (void)seq;
  streams_t *s = ctx;
  uv_async_send(&s->stored);
}

static void on_store_error(void *ctx, store_t *log, int err) {
  (void)log, (void)err;
  streams_t *s = ctx;
  uv_async_send(&s->stored);
}

static void on_stored_async(uv_async_t *h) {
  streams_t *s = h->data;
  for (size_t i = 0; i < s->n; i++)
    process_acks(s->v[i]);
}

/* ---- dedup ---- */

static void dedup_forget_old(stream_t *st, uint64_t now) {
  while (st->ids_head != NULL &&
         st->ids_head->at_ms + st->def.dedup_window_ms <= now) {
    dedup_ent_t *e = st->ids_head;
    st->ids_head = e->next;
    if (st->ids_head == NULL)
      st->ids_tail = NULL;
    if (hashmap_get(st->ids, e->id, e->len) == e)
      hashmap_remove(st->ids, e->id, e->len);
    free(e);
  }
}

static void dedup_add(stream_t *st, const char *id, size_t len, uint64_t seq,
                      uint64_t at) {
  dedup_ent_t *e = malloc(sizeof *e + len);
  if (e == NULL)
    return;
  e->next = NULL;
  e->seq = seq;
  e->at_ms = at;
  e->len = (uint32_t)len;
  memcpy(e->id, id, len);
  if (hashmap_put(st->ids, e->id, e->len, e) != 0) {
    free(e);
    return;
  }
  if (st->ids_tail)
    st->ids_tail->next = e;
  else
    st->ids_head = e;
  st->ids_tail = e;
}

static void dedup_clear(stream_t *st) {
  while (st->ids_head != NULL) {
    dedup_ent_t *e = st->ids_head;
    st->ids_head = e->next;
    free(e);
  }
  st->ids_tail = NULL;
  hashmap_clear(st->ids);
}

/* The ids of the records inside the window, after a restart. */
static void dedup_rebuild(stream_t *st) {
  if (st->def.dedup_window_ms == 0)
    return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t wall = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  int64_t from = wall - (int64_t)st->def.dedup_window_ms * 1000000;
  uint64_t seq;
  if (store_seq_for_time(st->log, from, &seq) != 0)
    return;
  store_iter_t *it;
  if (store_iter_open(st->log, seq, &it) != 0)
    return;
  uint64_t now = uv_now(st->owner->w->loop);
  store_msg_t m;
  int rc;
  while ((rc = store_iter_next(it, &m)) != 0) {
    if (rc < 0 || m.msgid == NULL)
      continue;
    uint64_t age =
        m.time_ns < wall ? (uint64_t)(wall - m.time_ns) / 1000000 : 0;
    dedup_add(st, m.msgid, m.msgid_len, m.seq, now > age ? now - age : 0);
  }
  store_iter_close(it);
}

/* ---- streams: open, create, delete ---- */

static void store_cfg(const stream_t *st, store_config_t *cfg) {
  store_config_init(cfg);
  cfg->limits.max_msgs = st->def.max_msgs;
  cfg->limits.max_bytes = st->def.max_bytes;
  cfg->limits.max_age_ms = st->def.max_age_ms;
  cfg->limits.max_msgs_per_topic = st->def.max_msgs_per_topic;
  cfg->limits.max_msg_size =
      (uint32_t)(st->owner->w->broker->cfg.max_payload + 64 * 1024);
  cfg->limits.discard = st->def.discard == STREAM_DISCARD_NEW
                            ? STORE_DISCARD_NEW
                            : STORE_DISCARD_OLD;
  cfg->sync = st->def.sync == STREAM_SYNC_ALWAYS     ? STORE_SYNC_ALWAYS
              : st->def.sync == STREAM_SYNC_INTERVAL ? STORE_SYNC_INTERVAL
                                                     : STORE_SYNC_NEVER;
  cfg->sync_interval_ms = (uint32_t)st->def.sync_interval_ms;
  /* With interval and never, a record is stored once store_flush wrote it,
   * on this thread: on_turn sends the acks right after the flush, so the
   * callback (an eventfd write and one more loop turn per flush) is only
   * for `always`, whose sync thread says when. */
  cfg->on_stored = st->def.sync == STREAM_SYNC_ALWAYS ? on_stored : NULL;
  cfg->on_error = on_store_error;
  cfg->ctx = st->owner;
}

static int save_def(stream_t *st) {
  tp_buf_t b;
  tp_buf_init(&b);
  int rc = stream_def_encode(&st->def, &b);
  if (rc == 0)
    rc = store_state_put(st->defstate, b.data, b.len);
  if (rc == 0)
    rc = store_state_flush(st->defstate);
  tp_buf_free(&b);
  return rc;
}

static void stream_free(stream_t *st, bool destroy) {
  for (size_t i = 0; i < st->ncons; i++)
    consumer_free(st->cons[i], destroy);
  free(st->cons);
  for (size_t i = 0; i < st->nacks; i++)
    free(st->acks[(st->acks_head + i) % st->acks_cap].reply);
  free(st->acks);
  if (st->log != NULL) {
    int rc = destroy ? store_destroy(st->log) : store_close(st->log);
    if (rc != 0)
      LOG(LOG_WARN, "stream %s: closing its log: %s", st->def.name,
          ternd_strerror(rc));
  }
  if (st->defstate != NULL) {
    if (destroy)
      store_state_remove(st->defstate);
    else
      store_state_close(st->defstate);
  }
  if (destroy)
    rmdir(st->dir);
  dedup_clear(st);
  hashmap_destroy(st->ids);
  stream_def_free(&st->def);
  free(st);
}

/* Opens (creating if new) the stream of definition d; its consumers too
 * when it existed. 0, or an error with why. */
static int stream_open(streams_t *s, const stream_def_t *d, bool existing,
                       stream_t **out, char *why, size_t whylen) {
  stream_t *st = calloc(1, sizeof *st);
  if (st == NULL || stream_def_copy(&st->def, d) != 0 ||
      hashmap_create(&st->ids, 0) != 0) {
    if (st != NULL) {
      stream_def_free(&st->def);
      free(st);
    }
    snprintf(why, whylen, "out of memory");
    return TP_ENOMEM;
  }
  st->owner = s;
  snprintf(st->dir, sizeof st->dir, "%s/%s", s->dir, d->name);
  char logdir[1200];
  snprintf(logdir, sizeof logdir, "%s/log", st->dir);
  int rc = mkdirs(st->dir);
  store_config_t cfg;
  store_cfg(st, &cfg);
  store_recovery_t rec;
  memset(&rec, 0, sizeof rec);
  if (rc == 0)
    rc = store_open(s->env, logdir, &cfg, &st->log, &rec);
  if (rc == 0)
    rc = store_state_open(s->env, st->dir, "def", &st->defstate);
  if (rc == 0 && !existing)
    rc = save_def(st);
  if (rc != 0) {
    snprintf(why, whylen, "stream %s: cannot open %s: %s", d->name, st->dir,
             ternd_strerror(rc));
    stream_free(st, false);
    return rc;
  }
  if (existing && (rec.torn_bytes || rec.corrupt_spans))
    LOG(LOG_WARN,
        "stream %s: recovered %" PRIu64 " records; cut a torn tail of %" PRIu64
        " bytes, skipped %" PRIu64 " damaged spans (%" PRIu64 " bytes, %" PRIu64
        " sequences)",
        d->name, rec.records, rec.torn_bytes, rec.corrupt_spans,
        rec.corrupt_bytes, rec.lost_seqs);
  dedup_rebuild(st);
  *out = st;
  return 0;
}

static int registry_add(streams_t *s, stream_t *st) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8;
    stream_t **v = realloc(s->v, cap * sizeof *v);
    if (v == NULL)
      return TP_ENOMEM;
    s->v = v;
    s->cap = cap;
  }
  uv_mutex_lock(&s->defs_lock);
  s->v[s->n++] = st;
  atomic_store_explicit(&s->nshared, s->n, memory_order_relaxed);
  uv_mutex_unlock(&s->defs_lock);
  return 0;
}

static void registry_remove(streams_t *s, stream_t *st) {
  uv_mutex_lock(&s->defs_lock);
  for (size_t i = 0; i < s->n; i++)
    if (s->v[i] == st) {
      s->v[i] = s->v[--s->n];
      break;
    }
  atomic_store_explicit(&s->nshared, s->n, memory_order_relaxed);
  uv_mutex_unlock(&s->defs_lock);
}

/* A topic of d that overlaps another stream's. */
static const stream_t *overlapping(streams_t *s, const stream_def_t *d,
                                   const char **which) {
  for (size_t i = 0; i < s->n; i++) {
    const stream_t *o = s->v[i];
    if (strcmp(o->def.name, d->name) == 0)
      continue;
    for (size_t a = 0; a < d->ntopics; a++)
      for (size_t b = 0; b < o->def.ntopics; b++)
        if (patterns_overlap(d->topics[a], o->def.topics[b])) {
          *which = d->topics[a];
          return o;
        }
  }
  return NULL;
}

static int consumer_add(stream_t *st, consumer_t *c) {
  if (st->ncons == st->cons_cap) {
    size_t cap = st->cons_cap ? st->cons_cap * 2 : 4;
    consumer_t **v = realloc(st->cons, cap * sizeof *v);
    if (v == NULL)
      return TP_ENOMEM;
    st->cons = v;
    st->cons_cap = cap;
  }
  st->cons[st->ncons++] = c;
  return 0;
}

static void consumer_remove(stream_t *st, consumer_t *c, bool files) {
  for (size_t i = 0; i < st->ncons; i++)
    if (st->cons[i] == c) {
      st->cons[i] = st->cons[--st->ncons];
      break;
    }
  consumer_free(c, files);
}

/* The durable consumers saved in st's directory. */
static void restore_consumers(stream_t *st) {
  DIR *d = opendir(st->dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n < 7 || strncmp(e->d_name, "c.", 2) != 0 ||
        strcmp(e->d_name + n - 4, ".cfg") != 0)
      continue;
    char name[STREAM_NAME_MAX + 1];
    size_t nl = n - 6;
    if (nl > STREAM_NAME_MAX || !stream_name_valid(e->d_name + 2, nl))
      continue;
    memcpy(name, e->d_name + 2, nl);
    name[nl] = '\0';
    consumer_t *c = consumer_new(st, name, true);
    store_state_t *cs = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    char why[256] = "";
    int rc = c ? store_state_open(st->owner->env, st->dir, e->d_name, &cs)
               : TP_ENOMEM;
    if (rc == 0)
      rc = store_state_get(cs, &data, &len);
    if (cs != NULL)
      store_state_close(cs);
    if (rc == 0 && consumer_config_decode(c, data, len, why, sizeof why) != 0)
      rc = TP_EINVAL;
    free(data);
    if (rc == 0)
      rc = consumer_start(c, true);
    if (rc == 0)
      rc = consumer_add(st, c);
    if (rc != 0) {
      LOG(LOG_WARN, "stream %s: cannot restore consumer %s: %s %s",
          st->def.name, name, ternd_strerror(rc), why);
      consumer_free(c, false);
    }
  }
  closedir(d);
}

/* ---- capture ---- */

static stream_t *stream_for(streams_t *s, const char *topic, size_t len) {
  for (size_t i = 0; i < s->n; i++) {
    stream_t *st = s->v[i];
    for (size_t j = 0; j < st->def.ntopics; j++)
      if (tp_pattern_match(st->def.topics[j], strlen(st->def.topics[j]), topic,
                           len))
        return st;
  }
  return NULL;
}

static void advise_full(stream_t *st) {
  streams_t *s = st->owner;
  if (st->full_advised || s->advise == NULL)
    return;
  st->full_advised = true;
  store_info_t info;
  store_info(st->log, &info);
  char body[512];
  int n = snprintf(body, sizeof body,
                   "{\"stream\":\"%s\",\"msgs\":%" PRIu64 ",\"bytes\":%" PRIu64
                   ",\"discard\":\"%s\"}",
                   st->def.name, info.msgs, info.bytes,
                   st->def.discard == STREAM_DISCARD_NEW ? "new" : "old");
  s->advise(s->advise_ctx, "$SYS.stream.full", body, (size_t)n);
}

/* A refused publish: an error ack when it asked for one, else ERR 13 to
 * the publisher (non-fatal). */
static void refuse(stream_t *st, endpoint_t *publisher, const tp_pub_t *pub,
                   unsigned code, const char *msg) {
  char text[256];
  snprintf(text, sizeof text, "stream %s: %s", st->def.name, msg);
  if (pub->reply.ptr != NULL) {
    char to[1100];
    snprintf(to, sizeof to, "%.*s", (int)pub->reply.len, pub->reply.ptr);
    reply_error(st->owner, to, code, text, st->def.name);
  } else if (publisher != NULL) {
    tp_frame_t f;
    tp_frame_init(&f, TP_ERR);
    f.u.err.code = TP_WIRE_PAYLOAD_TOO_LARGE;
    f.u.err.message.ptr = text;
    f.u.err.message.len = (uint32_t)strlen(text);
    publisher->ops->send_frame(publisher, &f);
  } else if (st->owner->xfrom_conn != 0) {
    /* A publisher of another worker (xpub_take). */
    handoff_err(st->owner->w, st->owner->xfrom_wid, st->owner->xfrom_conn,
                text);
  }
}

/* Appends pub to st. False when it must not be routed (a duplicate). */
static bool capture(stream_t *st, endpoint_t *publisher, const tp_pub_t *pub) {
  streams_t *s = st->owner;
  uint64_t now = uv_now(s->w->loop);
  tp_str_t id = {NULL, 0};
  if (pub->headers.raw != NULL &&
      header_find(&pub->headers, STREAM_MSGID_HEADER, &id) &&
      st->def.dedup_window_ms > 0) {
    dedup_forget_old(st, now);
    dedup_ent_t *e = hashmap_get(st->ids, id.ptr, id.len);
    if (e != NULL) {
      st->duplicates++;
      if (pub->reply.ptr != NULL)
        ack_push(st, e->seq, pub->reply.ptr, pub->reply.len, true);
      process_acks(st);
      return false;
    }
  }
  if (rec_encode(&s->rec, &pub->headers, pub->payload.ptr, pub->payload.len) !=
      0) {
    refuse(st, publisher, pub, 500, "out of memory");
    return true;
  }
  store_rec_t r = {.topic = pub->topic.ptr,
                   .topic_len = pub->topic.len,
                   .msgid = id.ptr,
                   .msgid_len = id.len > STORE_MSGID_MAX ? 0 : id.len,
                   .data = s->rec.data,
                   .len = (uint32_t)s->rec.len};
  if (r.msgid_len == 0)
    r.msgid = NULL;
  uint64_t seq = 0;
  int rc = store_append(st->log, &r, &seq);
  if (rc != 0) {
    if (rc == TERND_ESTORE_FULL) {
      st->refused_full++;
      advise_full(st);
      refuse(st, publisher, pub, 507, "stream full: message not stored");
    } else if (rc == UV_ENOSPC) {
      st->refused_disk++;
      advise_full(st);
      refuse(st, publisher, pub, 507, "disk full: message not stored");
    } else {
      st->refused_other++;
      char why[160];
      snprintf(why, sizeof why, "message not stored: %s", ternd_strerror(rc));
      refuse(st, publisher, pub, 503, why);
    }
    return true;
  }
  st->full_advised = false;
  st->msgs_in++;
  st->bytes_in += pub->payload.len;
  st->dirty = true;
  if (r.msgid != NULL)
    dedup_add(st, r.msgid, r.msgid_len, seq, now);
  if (pub->reply.ptr != NULL &&
      ack_push(st, seq, pub->reply.ptr, pub->reply.len, false) != 0)
    LOG(LOG_WARN, "stream %s: out of memory queueing an ack", st->def.name);
  return true;
}

/* ---- the API ---- */

static void reply_ok(streams_t *s, const char *to) {
  tp_buf_t *b = &s->scratch;
  tp_buf_reset(b);
  if (tp_mp_map(b, 1) == 0 && tp_mp_kv_bool(b, "ok", true) == 0)
    emit_reply(s->w, to, b);
}

static int stream_state_encode(stream_t *st, tp_buf_t *b) {
  store_info_t i;
  store_info(st->log, &i);
  int rc = tp_mp_map(b, 11);
  rc = rc ? rc : tp_mp_kv_uint(b, "msgs", i.msgs);
  rc = rc ? rc : tp_mp_kv_uint(b, "bytes", i.bytes);
  rc = rc ? rc : tp_mp_kv_uint(b, "first_seq", i.first_seq);
  rc = rc ? rc : tp_mp_kv_uint(b, "last_seq", i.last_seq);
  rc = rc ? rc : tp_mp_kv_uint(b, "stored_seq", i.stored_seq);
  rc = rc ? rc : tp_mp_kv_uint(b, "deleted", i.deleted);
  rc = rc ? rc : tp_mp_kv_uint(b, "topics", i.topics);
  rc = rc ? rc : tp_mp_kv_uint(b, "disk_bytes", i.disk_bytes);
  rc = rc ? rc : tp_mp_kv_uint(b, "consumers", st->ncons);
  rc = rc ? rc : tp_mp_kv_uint(b, "duplicates", st->duplicates);
  rc = rc ? rc
          : tp_mp_kv_uint(b, "refused",
                          st->refused_full + st->refused_disk +
                              st->refused_other);
  return rc;
}

static int stream_info_encode(stream_t *st, tp_buf_t *b) {
  int rc = tp_mp_map(b, 2);
  rc = rc ? rc : tp_mp_cstr(b, "config");
  rc = rc ? rc : stream_def_encode(&st->def, b);
  rc = rc ? rc : tp_mp_cstr(b, "state");
  rc = rc ? rc : stream_state_encode(st, b);
  return rc;
}

static void reply_stream(streams_t *s, const char *to, stream_t *st) {
  tp_buf_t *b = &s->scratch;
  tp_buf_reset(b);
  int rc = tp_mp_map(b, 1);
  rc = rc ? rc : tp_mp_cstr(b, "stream");
  rc = rc ? rc : stream_info_encode(st, b);
  if (rc == 0)
    emit_reply(s->w, to, b);
}

static void reply_consumer(streams_t *s, const char *to, consumer_t *c) {
  tp_buf_t *b = &s->scratch;
  tp_buf_reset(b);
  int rc = tp_mp_map(b, 1);
  rc = rc ? rc : tp_mp_cstr(b, "consumer");
  rc = rc ? rc : consumer_info(c, b);
  if (rc == 0)
    emit_reply(s->w, to, b);
}

static void api_stream_create(streams_t *s, const char *to, const char *name,
                              size_t nlen, const tp_pub_t *pub, bool update) {
  char why[400];
  if (!stream_name_valid(name, nlen)) {
    reply_error(s, to, 400, "invalid stream name (1 to 64 of A-Z a-z 0-9 _ -)",
                NULL);
    return;
  }
  char nm[STREAM_NAME_MAX + 1];
  memcpy(nm, name, nlen);
  nm[nlen] = '\0';
  stream_t *old = find_stream(s, name, nlen);
  if (update && old == NULL) {
    reply_error(s, to, 404, "stream not found", NULL);
    return;
  }
  stream_def_t d;
  if (old != NULL && update) {
    if (stream_def_copy(&d, &old->def) != 0) {
      reply_error(s, to, 500, "out of memory", NULL);
      return;
    }
  } else {
    stream_def_init(&d, nm);
  }
  if (stream_def_decode(&d, pub->payload.ptr, pub->payload.len, why,
                        sizeof why) != 0 ||
      stream_def_validate(&d, why, sizeof why) != 0) {
    reply_error(s, to, 400, why, NULL);
    stream_def_free(&d);
    return;
  }
  const char *which = NULL;
  const stream_t *o = overlapping(s, &d, &which);
  if (o != NULL) {
    snprintf(why, sizeof why, "topic %s overlaps stream %s's topics", which,
             o->def.name);
    reply_error(s, to, 409, why, NULL);
    stream_def_free(&d);
    return;
  }
  if (old != NULL && !update) {
    /* Creating what exists with the same definition is not an error. */
    tp_buf_t a, b;
    tp_buf_init(&a);
    tp_buf_init(&b);
    stream_def_encode(&d, &a);
    stream_def_encode(&old->def, &b);
    bool same = a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
    tp_buf_free(&a);
    tp_buf_free(&b);
    stream_def_free(&d);
    if (same)
      reply_stream(s, to, old);
    else
      reply_error(s, to, 409, "stream exists with another definition", NULL);
    return;
  }
  if (old != NULL) {
    stream_def_t prev = old->def;
    uv_mutex_lock(&s->defs_lock); /* other workers read the topics */
    old->def = d;
    uv_mutex_unlock(&s->defs_lock);
    store_config_t cfg;
    store_cfg(old, &cfg);
    int rc = store_reconfigure(old->log, &cfg);
    if (rc == 0)
      rc = save_def(old);
    if (rc != 0) {
      uv_mutex_lock(&s->defs_lock);
      old->def = prev;
      uv_mutex_unlock(&s->defs_lock);
      stream_def_free(&d);
      store_cfg(old, &cfg);
      store_reconfigure(old->log, &cfg);
      snprintf(why, sizeof why, "cannot update: %s", ternd_strerror(rc));
      reply_error(s, to, 500, why, NULL);
      return;
    }
    stream_def_free(&prev);
    LOG(LOG_INFO, "stream %s updated", nm);
    reply_stream(s, to, old);
    return;
  }
  stream_t *st = NULL;
  int rc = stream_open(s, &d, false, &st, why, sizeof why);
  stream_def_free(&d);
  if (rc == 0 && registry_add(s, st) != 0) {
    stream_free(st, true);
    rc = TP_ENOMEM;
    snprintf(why, sizeof why, "out of memory");
  }
  if (rc != 0) {
    reply_error(s, to, rc == UV_ENOSPC ? 507 : 500, why, NULL);
    return;
  }
  LOG(LOG_INFO, "stream %s created", nm);
  reply_stream(s, to, st);
}

static void api_consumer_create(streams_t *s, const char *to, stream_t *st,
                                const char *name, size_t nlen,
                                const tp_pub_t *pub) {
  char why[300];
  char nm[STREAM_NAME_MAX + 1];
  bool durable = nlen > 0;
  if (durable) {
    if (!stream_name_valid(name, nlen)) {
      reply_error(s, to, 400, "invalid consumer name", NULL);
      return;
    }
    memcpy(nm, name, nlen);
    nm[nlen] = '\0';
  } else {
    uint8_t rnd[8];
    uint64_t t = uv_hrtime();
    if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) != 0)
      memcpy(rnd, &t, sizeof rnd);
    snprintf(nm, sizeof nm, "eph-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0],
             rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
  }
  consumer_t *c = consumer_new(st, nm, durable);
  if (c == NULL) {
    reply_error(s, to, 500, "out of memory", NULL);
    return;
  }
  if (consumer_config_decode(c, pub->payload.ptr, pub->payload.len, why,
                             sizeof why) != 0) {
    consumer_free(c, false);
    reply_error(s, to, 400, why, NULL);
    return;
  }
  consumer_t *old = durable ? find_consumer(st, nm, nlen) : NULL;
  if (old != NULL) {
    /* The same durable again (another member of a shared consumer, a
     * restarted client): it is answered with what exists. */
    consumer_free(c, false);
    reply_consumer(s, to, old);
    return;
  }
  int rc = consumer_start(c, false);
  if (rc == 0)
    rc = consumer_add(st, c);
  if (rc != 0) {
    consumer_free(c, durable);
    snprintf(why, sizeof why, "cannot create the consumer: %s",
             ternd_strerror(rc));
    reply_error(s, to, 500, why, NULL);
    return;
  }
  reply_consumer(s, to, c);
}

static void api_next(streams_t *s, const char *to, consumer_t *c,
                     const tp_pub_t *pub) {
  uint64_t batch = 1, expires = 0;
  bool no_wait = false;
  if (pub->payload.len > 0) {
    tp_mp_cur_t cur;
    tp_mp_cur_init(&cur, pub->payload.ptr, pub->payload.len);
    uint32_t n;
    if (tp_mp_read_map(&cur, &n) != 0) {
      reply_error(s, to, 400, "the request body must be a msgpack map", NULL);
      return;
    }
    for (uint32_t i = 0; i < n; i++) {
      tp_str_t k;
      int rc = tp_mp_read_str(&cur, &k);
      if (rc == 0 && tp_str_is(k, "batch"))
        rc = tp_mp_read_uint(&cur, &batch);
      else if (rc == 0 && tp_str_is(k, "expires_ms"))
        rc = tp_mp_read_uint(&cur, &expires);
      else if (rc == 0 && tp_str_is(k, "no_wait"))
        rc = tp_mp_read_bool(&cur, &no_wait);
      else if (rc == 0)
        rc = tp_mp_skip(&cur);
      if (rc != 0) {
        reply_error(s, to, 400, "malformed pull request", NULL);
        return;
      }
    }
  }
  if (c->push != NULL) {
    reply_error(s, to, 409, "a push consumer cannot be pulled", NULL);
    return;
  }
  if (consumer_pull(c, to, strlen(to), batch, expires, no_wait) != 0)
    reply_error(s, to, 500, "out of memory", NULL);
}

/* The next token of it as (p, n); false at the end. */
static bool tok(tp_token_iter_t *it, const char **p, size_t *n) {
  return tp_token_next(it, p, n) == 1;
}

static bool is(const char *p, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

/* $TS.API.<...> with reply topic `to`. */
static void api(streams_t *s, const tp_pub_t *pub, const char *to) {
  s->api_requests++;
  tp_token_iter_t it;
  size_t pl = strlen(API_PREFIX);
  tp_token_iter_init(&it, pub->topic.ptr + pl, pub->topic.len - pl);
  const char *a = NULL, *b = NULL, *c = NULL, *d = NULL;
  size_t an = 0, bn = 0, cn = 0, dn = 0;
  tok(&it, &a, &an);
  tok(&it, &b, &bn);
  bool hc = tok(&it, &c, &cn);
  bool hd = tok(&it, &d, &dn);
  const char *e;
  size_t en;
  if (tok(&it, &e, &en) || a == NULL || b == NULL)
    goto bad;
  if (is(a, an, "STREAM")) {
    if (is(b, bn, "LIST") && !hc) {
      tp_buf_t *buf = &s->scratch;
      tp_buf_reset(buf);
      int rc = tp_mp_map(buf, 1);
      rc = rc ? rc : tp_mp_cstr(buf, "streams");
      rc = rc ? rc : tp_mp_array(buf, (uint32_t)s->n);
      for (size_t i = 0; rc == 0 && i < s->n; i++)
        rc = stream_info_encode(s->v[i], buf);
      if (rc == 0)
        emit_reply(s->w, to, buf);
      return;
    }
    if (!hc || hd)
      goto bad;
    if (is(b, bn, "CREATE") || is(b, bn, "UPDATE")) {
      api_stream_create(s, to, c, cn, pub, is(b, bn, "UPDATE"));
      return;
    }
    if (!is(b, bn, "INFO") && !is(b, bn, "DELETE") && !is(b, bn, "PURGE"))
      goto bad;
    stream_t *st = find_stream(s, c, cn);
    if (st == NULL) {
      reply_error(s, to, 404, "stream not found", NULL);
      s->api_errors++;
      return;
    }
    if (is(b, bn, "INFO")) {
      reply_stream(s, to, st);
    } else if (is(b, bn, "DELETE")) {
      registry_remove(s, st);
      LOG(LOG_INFO, "stream %s deleted", st->def.name);
      stream_free(st, true);
      reply_ok(s, to);
    } else if (is(b, bn, "PURGE")) {
      uint64_t n = 0;
      int rc = store_purge(st->log, NULL, 0, 0, 0, &n);
      if (rc != 0) {
        reply_error(s, to, 500, ternd_strerror(rc), NULL);
        return;
      }
      for (size_t i = 0; i < st->ncons; i++)
        consumer_trim(st->cons[i], store_first_seq(st->log));
      tp_buf_t *buf = &s->scratch;
      tp_buf_reset(buf);
      if (tp_mp_map(buf, 1) == 0 && tp_mp_kv_uint(buf, "purged", n) == 0)
        emit_reply(s->w, to, buf);
    } else {
      goto bad;
    }
    return;
  }
  if (is(a, an, "CONSUMER")) {
    if (!hc || !(is(b, bn, "CREATE") || is(b, bn, "LIST") ||
                 is(b, bn, "INFO") || is(b, bn, "NEXT") || is(b, bn, "DELETE")))
      goto bad;
    stream_t *st = find_stream(s, c, cn);
    if (st == NULL) {
      reply_error(s, to, 404, "stream not found", NULL);
      s->api_errors++;
      return;
    }
    if (is(b, bn, "CREATE")) {
      api_consumer_create(s, to, st, hd ? d : NULL, hd ? dn : 0, pub);
      return;
    }
    if (is(b, bn, "LIST") && !hd) {
      tp_buf_t *buf = &s->scratch;
      tp_buf_reset(buf);
      int rc = tp_mp_map(buf, 1);
      rc = rc ? rc : tp_mp_cstr(buf, "consumers");
      rc = rc ? rc : tp_mp_array(buf, (uint32_t)st->ncons);
      for (size_t i = 0; rc == 0 && i < st->ncons; i++)
        rc = consumer_info(st->cons[i], buf);
      if (rc == 0)
        emit_reply(s->w, to, buf);
      return;
    }
    if (!hd)
      goto bad;
    consumer_t *con = find_consumer(st, d, dn);
    if (con == NULL) {
      reply_error(s, to, 404, "consumer not found", NULL);
      s->api_errors++;
      return;
    }
    if (is(b, bn, "INFO"))
      reply_consumer(s, to, con);
    else if (is(b, bn, "NEXT"))
      api_next(s, to, con, pub);
    else if (is(b, bn, "DELETE")) {
      consumer_remove(st, con, true);
      reply_ok(s, to);
    } else
      goto bad;
    return;
  }
bad:
  s->api_errors++;
  reply_error(s, to, 400, "unknown stream API request", NULL);
}

/* $TS.ACK.<stream>.<consumer>.<deliveries>.<sseq>.<cseq> */
static void ack(streams_t *s, const tp_pub_t *pub) {
  tp_token_iter_t it;
  size_t pl = strlen(ACK_PREFIX);
  tp_token_iter_init(&it, pub->topic.ptr + pl, pub->topic.len - pl);
  const char *t[5];
  size_t n[5];
  for (int i = 0; i < 5; i++)
    if (!tok(&it, &t[i], &n[i]))
      return;
  stream_t *st = find_stream(s, t[0], n[0]);
  consumer_t *c = st ? find_consumer(st, t[1], n[1]) : NULL;
  if (c == NULL)
    return;
  uint64_t sseq = 0;
  for (size_t i = 0; i < n[3]; i++) {
    if (t[3][i] < '0' || t[3][i] > '9')
      return;
    sseq = sseq * 10 + (uint64_t)(t[3][i] - '0');
  }
  const char *p = (const char *)pub->payload.ptr;
  size_t len = pub->payload.len;
  int kind = ACK_ACK;
  uint64_t delay = 0;
  if (len >= 4 && memcmp(p, "-NAK", 4) == 0) {
    kind = ACK_NAK;
    for (size_t i = 4; i < len; i++)
      if (p[i] >= '0' && p[i] <= '9')
        delay = delay * 10 + (uint64_t)(p[i] - '0');
  } else if (len >= 4 && memcmp(p, "+WPI", 4) == 0) {
    kind = ACK_PROGRESS;
  } else if (len >= 5 && memcmp(p, "+TERM", 5) == 0) {
    kind = ACK_TERM;
  }
  consumer_ack(c, sseq, kind, delay);
  if (pub->reply.ptr != NULL) {
    char to[1100];
    snprintf(to, sizeof to, "%.*s", (int)pub->reply.len, pub->reply.ptr);
    reply_ok(s, to);
  }
}

/* ---- retained messages on disk ---- */

/* A retained PUB (or its deletion) to the retained log: [expiry unix ms,
 * u64 LE, 0 = none][reply length u16 LE][reply][record]. */
static void retained_capture(streams_t *s, const tp_pub_t *pub) {
  if (pub->payload.len == 0) {
    int rc =
        store_purge(s->retained, pub->topic.ptr, pub->topic.len, 0, 0, NULL);
    if (rc != 0 && rc != TERND_ESTORE_NOTFOUND)
      LOG(LOG_WARN, "retained: cannot delete on disk: %s", ternd_strerror(rc));
    s->retained_dirty = true;
    return;
  }
  uint64_t expiry = 0;
  if (pub->ttl_ms > 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    expiry = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 +
             pub->ttl_ms;
  }
  tp_buf_t *b = &s->scratch;
  if (rec_encode(&s->rec, &pub->headers, pub->payload.ptr, pub->payload.len) !=
      0)
    return;
  tp_buf_reset(b);
  uint32_t rl = pub->reply.ptr ? pub->reply.len : 0;
  if (tp_buf_reserve(b, 10 + rl + s->rec.len) != 0)
    return;
  for (int i = 0; i < 8; i++)
    b->data[b->len++] = (uint8_t)(expiry >> (8 * i));
  b->data[b->len++] = (uint8_t)rl;
  b->data[b->len++] = (uint8_t)(rl >> 8);
  if (rl > 0)
    memcpy(b->data + b->len, pub->reply.ptr, rl);
  b->len += rl;
  memcpy(b->data + b->len, s->rec.data, s->rec.len);
  b->len += s->rec.len;
  store_rec_t r = {.topic = pub->topic.ptr,
                   .topic_len = pub->topic.len,
                   .data = b->data,
                   .len = (uint32_t)b->len};
  int rc = store_append(s->retained, &r, NULL);
  if (rc != 0)
    LOG(LOG_WARN, "retained: cannot keep %.*s on disk: %s", (int)pub->topic.len,
        pub->topic.ptr, ternd_strerror(rc));
  s->retained_dirty = true;
}

/* Puts every retained message of the log back in the broker's store with
 * what is left of its TTL. */
static void retained_restore(streams_t *s) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  store_iter_t *it;
  if (store_iter_open(s->retained, 0, &it) != 0)
    return;
  store_msg_t m;
  int rc;
  while ((rc = store_iter_next(it, &m)) != 0) {
    if (rc < 0 || m.len < 10)
      continue;
    uint64_t expiry = 0;
    for (int i = 0; i < 8; i++)
      expiry |= (uint64_t)m.data[i] << (8 * i);
    uint32_t rl = (uint32_t)m.data[8] | ((uint32_t)m.data[9] << 8);
    if (rl > m.len - 10)
      continue;
    if (expiry != 0 && expiry <= now)
      continue;
    tp_pub_t pub;
    memset(&pub, 0, sizeof pub);
    const uint8_t *payload;
    size_t plen;
    if (rec_decode(m.data + 10 + rl, m.len - 10 - rl, &pub.headers, &payload,
                   &plen) != 0 ||
        plen == 0)
      continue;
    pub.topic.ptr = m.topic;
    pub.topic.len = m.topic_len;
    pub.payload.ptr = payload;
    pub.payload.len = (uint32_t)plen;
    if (rl > 0) {
      pub.reply.ptr = (const char *)m.data + 10;
      pub.reply.len = rl;
    }
    pub.retain = true;
    pub.ttl_ms = expiry ? expiry - now : 0;
    const char *msg = NULL;
    if (router_retain(s->w, &pub, &msg) == 0)
      s->retained_restored++;
  }
  store_iter_close(it);
}

/* ---- several workers ----
 *
 * Every stream lives on s->w (worker 0). A PUB read by another worker
 * that concerns the streams is copied and handed to it through a locked
 * list and one wake-up (xwake): an API request or an ack whole; a retained
 * PUB for the retained log; a PUB a stream captures for its log, routed on
 * by its own worker at once (order and echo as on one loop) unless it
 * carries a message id under a dedup window, when worker 0 decides, as on
 * one loop, whether it is a duplicate, and routes it itself if not. The
 * hand-over is bounded (XPUB_MAX_BYTES): past it a publish to a stream is
 * refused with ERR 13, an API request or ack is dropped. Worker 0's
 * replies and consumer messages reach other workers' subscribers through
 * the router's own hand-over (delivery/handoff.h).
 */
#define XPUB_MAX_BYTES (64u * 1024u * 1024u)
enum { XPUB_TS = 1, XPUB_RETAIN = 2, XPUB_CAPTURE = 4, XPUB_ROUTE = 8 };

typedef struct xpub {
  struct xpub *next;
  unsigned what;    /* XPUB_* */
  int wid;          /* the publisher's worker ... */
  uint64_t conn_id; /* ... and connection */
  size_t bytes;
  tp_pub_t pub; /* pointing into data */
  uint8_t data[];
} xpub_t;

static size_t xpub_size(const tp_pub_t *pub) {
  return sizeof(xpub_t) + pub->topic.len + pub->reply.len + pub->headers.len +
         pub->payload.len;
}

/* On another worker: a copy of pub for s->w. False when the hand-over is
 * full (or out of memory). */
static bool xpub_push(streams_t *s, worker_t *w, endpoint_t *publisher,
                      const tp_pub_t *pub, unsigned what) {
  size_t size = xpub_size(pub);
  uv_mutex_lock(&s->xlock);
  bool room = s->xbytes + size <= XPUB_MAX_BYTES;
  if (room)
    s->xbytes += size;
  else
    s->xrefused++;
  uv_mutex_unlock(&s->xlock);
  if (!room)
    return false;
  xpub_t *x = malloc(size);
  if (x == NULL) {
    uv_mutex_lock(&s->xlock);
    s->xbytes -= size;
    uv_mutex_unlock(&s->xlock);
    return false;
  }
  x->next = NULL;
  x->what = what;
  x->wid = w->wid;
  x->conn_id = publisher != NULL ? publisher->id : 0;
  x->bytes = size;
  x->pub = *pub;
  uint8_t *p = x->data;
  memcpy(p, pub->topic.ptr, pub->topic.len);
  x->pub.topic.ptr = (const char *)p;
  p += pub->topic.len;
  if (pub->reply.ptr != NULL) {
    memcpy(p, pub->reply.ptr, pub->reply.len);
    x->pub.reply.ptr = (const char *)p;
    p += pub->reply.len;
  }
  if (pub->headers.raw != NULL) {
    memcpy(p, pub->headers.raw, pub->headers.len);
    x->pub.headers.raw = p;
    p += pub->headers.len;
  }
  if (pub->payload.len > 0) {
    memcpy(p, pub->payload.ptr, pub->payload.len);
    x->pub.payload.ptr = p;
  }
  uv_mutex_lock(&s->xlock);
  bool wake = s->xhead == NULL;
  if (s->xtail != NULL)
    s->xtail->next = x;
  else
    s->xhead = x;
  s->xtail = x;
  uv_mutex_unlock(&s->xlock);
  if (wake)
    uv_async_send(&s->xwake);
  return true;
}

static int on_publish_here(streams_t *s, endpoint_t *publisher,
                           const tp_pub_t *pub, bool client);

/* On s->w: what the other workers handed over, in their order. */
static void xpub_take(streams_t *s) {
  uv_mutex_lock(&s->xlock);
  xpub_t *x = s->xhead;
  s->xhead = s->xtail = NULL;
  uv_mutex_unlock(&s->xlock);
  size_t bytes = 0;
  while (x != NULL) {
    xpub_t *next = x->next;
    const tp_pub_t *pub = &x->pub;
    s->xfrom_wid = x->wid;
    s->xfrom_conn = x->conn_id;
    if (x->what & (XPUB_TS | XPUB_ROUTE)) {
      /* Whole, as if read here; the publisher is not this loop's (no
       * ERR 13 to it, and its own subscriptions get its message). */
      if (on_publish_here(s, NULL, pub, true) == PUBLISH_HOOK_KEPT &&
          (x->what & XPUB_ROUTE)) {
        uint64_t n;
        bool full;
        router_publish_as(s->w, pub->topic.ptr, pub->topic.len, pub, &n, &full);
      }
    } else {
      if (x->what & XPUB_RETAIN)
        retained_capture(s, pub);
      if (x->what & XPUB_CAPTURE) {
        stream_t *st = stream_for(s, pub->topic.ptr, pub->topic.len);
        if (st != NULL)
          capture(st, NULL, pub);
      }
    }
    s->xfrom_conn = 0;
    bytes += x->bytes;
    free(x);
    x = next;
  }
  uv_mutex_lock(&s->xlock);
  s->xbytes -= bytes;
  uv_mutex_unlock(&s->xlock);
}

static void on_xwake(uv_async_t *h) {
  xpub_take(h->data);
}

/* The hook on a worker other than s->w (see above). */
static int on_publish_there(streams_t *s, worker_t *w, endpoint_t *publisher,
                            const tp_pub_t *pub) {
  if (pub->topic.len > 4 && pub->topic.ptr[0] == '$' &&
      memcmp(pub->topic.ptr, "$TS.", 4) == 0) {
    if (pub->reply.ptr != NULL ||
        (pub->topic.len > strlen(ACK_PREFIX) &&
         memcmp(pub->topic.ptr, ACK_PREFIX, strlen(ACK_PREFIX)) == 0))
      xpub_push(s, w, publisher, pub, XPUB_TS);
    return PUBLISH_HOOK_TAKEN;
  }
  if (publisher == NULL)
    return PUBLISH_HOOK_NONE;
  unsigned what = pub->retain && s->retained != NULL ? XPUB_RETAIN : 0;
  bool captured = false, dedup = false;
  if (atomic_load_explicit(&s->nshared, memory_order_relaxed) > 0) {
    uv_mutex_lock(&s->defs_lock);
    stream_t *st = stream_for(s, pub->topic.ptr, pub->topic.len);
    tp_str_t id;
    captured = st != NULL;
    dedup = st != NULL && st->def.dedup_window_ms > 0 &&
            pub->headers.raw != NULL &&
            header_find(&pub->headers, STREAM_MSGID_HEADER, &id);
    uv_mutex_unlock(&s->defs_lock);
  }
  if (dedup) {
    /* Worker 0 decides (a duplicate is not routed) and routes; the
     * retained log is written as routing the PUB here would. */
    if (!xpub_push(s, w, publisher, pub, XPUB_ROUTE | what))
      goto busy;
    return PUBLISH_HOOK_TAKEN;
  }
  if (captured)
    what |= XPUB_CAPTURE;
  if (what != 0 && !xpub_push(s, w, publisher, pub, what) && captured)
    goto busy;
  return captured ? PUBLISH_HOOK_KEPT : PUBLISH_HOOK_NONE;
busy:
  if (pub->reply.ptr == NULL) {
    tp_frame_t f;
    tp_frame_init(&f, TP_ERR);
    f.u.err.code = TP_WIRE_PAYLOAD_TOO_LARGE;
    f.u.err.message.ptr = "streams busy: message not stored";
    f.u.err.message.len = (uint32_t)strlen(f.u.err.message.ptr);
    publisher->ops->send_frame(publisher, &f);
  }
  return dedup ? PUBLISH_HOOK_TAKEN : PUBLISH_HOOK_KEPT;
}

/* The router's publish hook (delivery/worker.h), on the worker that read
 * the PUB. */
static int on_publish(void *ctx, worker_t *w, endpoint_t *publisher,
                      const tp_pub_t *pub) {
  streams_t *s = ctx;
  if (w != s->w)
    return on_publish_there(s, w, publisher, pub);
  return on_publish_here(s, publisher, pub, publisher != NULL);
}

/* The hook on s->w itself: client is false for the server's own
 * messages; publisher is NULL for them and for a client's handed over by
 * another worker. */
static int on_publish_here(streams_t *s, endpoint_t *publisher,
                           const tp_pub_t *pub, bool client) {
  if (pub->topic.len > 4 && pub->topic.ptr[0] == '$' &&
      memcmp(pub->topic.ptr, "$TS.", 4) == 0) {
    if (pub->topic.len > strlen(API_PREFIX) &&
        memcmp(pub->topic.ptr, API_PREFIX, strlen(API_PREFIX)) == 0) {
      if (pub->reply.ptr == NULL)
        return PUBLISH_HOOK_TAKEN; /* nobody to answer */
      char to[1100];
      snprintf(to, sizeof to, "%.*s", (int)pub->reply.len, pub->reply.ptr);
      api(s, pub, to);
    } else if (pub->topic.len > strlen(ACK_PREFIX) &&
               memcmp(pub->topic.ptr, ACK_PREFIX, strlen(ACK_PREFIX)) == 0) {
      ack(s, pub);
    }
    return PUBLISH_HOOK_TAKEN;
  }
  if (pub->retain && s->retained != NULL && client)
    retained_capture(s, pub);
  if (s->n == 0 || !client)
    return PUBLISH_HOOK_NONE;
  stream_t *st = stream_for(s, pub->topic.ptr, pub->topic.len);
  if (st == NULL)
    return PUBLISH_HOOK_NONE;
  return capture(st, publisher, pub) ? PUBLISH_HOOK_KEPT : PUBLISH_HOOK_TAKEN;
}

/* ---- the loop ---- */

static void noop_idle(uv_idle_t *h) {
  (void)h;
}

static void on_turn(uv_check_t *h) {
  streams_t *s = h->data;
  bool more = false;
  if (s->retained_dirty) {
    s->retained_dirty = false;
    store_flush(s->retained);
  }
  for (size_t i = 0; i < s->n; i++) {
    stream_t *st = s->v[i];
    if (st->dirty) {
      st->dirty = false;
      int rc = store_flush(st->log);
      if (rc != 0)
        LOG(LOG_WARN, "stream %s: write failed: %s", st->def.name,
            ternd_strerror(rc));
      process_acks(st);
    }
    for (size_t j = 0; j < st->ncons; j++)
      more |= consumer_pump(st->cons[j], PUMP_BUDGET);
  }
  if (more && !uv_is_active((uv_handle_t *)&s->spin))
    uv_idle_start(&s->spin, noop_idle);
  else if (!more && uv_is_active((uv_handle_t *)&s->spin))
    uv_idle_stop(&s->spin);
}

static void on_tick(uv_timer_t *t) {
  streams_t *s = t->data;
  uint64_t now = uv_now(s->w->loop);
  for (size_t i = 0; i < s->n; i++) {
    stream_t *st = s->v[i];
    dedup_forget_old(st, now);
    if (st->def.max_age_ms > 0)
      store_expire(st->log, 0);
    uint64_t first = store_first_seq(st->log);
    for (size_t j = 0; j < st->ncons;) {
      consumer_t *c = st->cons[j];
      consumer_trim(c, first);
      consumer_tick(c, now);
      consumer_save(c);
      if (!c->durable && c->npulls == 0 &&
          c->last_active_ms + c->inactive_ms <= now &&
          (c->push == NULL ||
           !router_has_room(s->w, c->push, strlen(c->push)))) {
        consumer_remove(st, c, false);
        continue;
      }
      if (c->push != NULL)
        c->last_active_ms = now;
      j++;
    }
  }
}

static void on_handle_closed(uv_handle_t *h) {
  streams_t *s = h->data;
  if (--s->handles_open == 0) {
    tp_buf_free(&s->scratch);
    tp_buf_free(&s->rec);
    uv_mutex_destroy(&s->xlock);
    uv_mutex_destroy(&s->defs_lock);
    free(s->v);
    free(s);
  }
}

int streams_open(streams_t **out, worker_t *w, const char *data_dir,
                 const stream_defs_t *defs, streams_advise_cb advise,
                 void *advise_ctx, char *why, size_t whylen) {
  *out = NULL;
  streams_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    snprintf(why, whylen, "out of memory");
    return TP_ENOMEM;
  }
  s->w = w;
  s->advise = advise;
  s->advise_ctx = advise_ctx;
  tp_buf_init(&s->scratch);
  tp_buf_init(&s->rec);
  snprintf(s->dir, sizeof s->dir, "%s/streams", data_dir);
  int rc = mkdirs(s->dir);
  if (rc != 0) {
    snprintf(why, whylen, "cannot create %s: %s", s->dir, uv_strerror(rc));
    free(s);
    return rc;
  }
  rc = store_env_new(&s->env);
  if (rc != 0) {
    snprintf(why, whylen, "cannot start the store: %s", ternd_strerror(rc));
    free(s);
    return rc;
  }
  uv_async_init(w->loop, &s->stored, on_stored_async);
  uv_check_init(w->loop, &s->turn);
  uv_idle_init(w->loop, &s->spin);
  uv_timer_init(w->loop, &s->tick);
  uv_async_init(w->loop, &s->xwake, on_xwake);
  uv_mutex_init(&s->xlock);
  uv_mutex_init(&s->defs_lock);
  s->stored.data = s->turn.data = s->spin.data = s->tick.data = s;
  s->xwake.data = s;
  s->handles_open = 5;
  *out = s;

  /* Retained messages: the last of each topic, synced every second. */
  {
    char rdir[1200];
    snprintf(rdir, sizeof rdir, "%s/retained", data_dir);
    store_config_t rc_cfg;
    store_config_init(&rc_cfg);
    rc_cfg.limits.max_msgs_per_topic = 1;
    rc_cfg.limits.max_msg_size =
        (uint32_t)(w->broker->cfg.max_payload + 128 * 1024);
    rc_cfg.sync = STORE_SYNC_INTERVAL;
    rc_cfg.sync_interval_ms = 1000;
    rc = store_open(s->env, rdir, &rc_cfg, &s->retained, NULL);
    if (rc != 0) {
      snprintf(why, whylen, "cannot open the retained store %s: %s", rdir,
               ternd_strerror(rc));
      streams_close(s);
      *out = NULL;
      return rc;
    }
    retained_restore(s);
    if (s->retained_restored > 0)
      LOG(LOG_INFO, "retained: %" PRIu64 " messages restored from %s",
          s->retained_restored, rdir);
  }

  /* What the data directory holds. */
  DIR *d = opendir(s->dir);
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL) {
    if (!stream_name_valid(e->d_name, strlen(e->d_name)))
      continue;
    char sdir[1400];
    snprintf(sdir, sizeof sdir, "%s/%s", s->dir, e->d_name);
    store_state_t *ds = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    rc = store_state_open(s->env, sdir, "def", &ds);
    if (rc == 0)
      rc = store_state_get(ds, &data, &len);
    if (ds != NULL)
      store_state_close(ds);
    stream_def_t def;
    stream_def_init(&def, e->d_name);
    if (rc == 0 && (stream_def_decode(&def, data, len, why, whylen) != 0 ||
                    stream_def_validate(&def, why, whylen) != 0))
      rc = TP_EINVAL;
    free(data);
    stream_t *st = NULL;
    if (rc == 0)
      rc = stream_open(s, &def, true, &st, why, whylen);
    stream_def_free(&def);
    if (rc == 0 && registry_add(s, st) != 0) {
      stream_free(st, false);
      rc = TP_ENOMEM;
    }
    if (rc != 0) {
      LOG(LOG_ERROR, "stream %s in %s cannot be opened: %s", e->d_name, sdir,
          ternd_strerror(rc));
      continue;
    }
    restore_consumers(st);
    store_info_t si;
    store_info(st->log, &si);
    LOG(LOG_INFO,
        "stream %s: %" PRIu64 " messages, sequences %" PRIu64 "..%" PRIu64
        ", %zu consumers",
        st->def.name, si.msgs, si.first_seq, si.last_seq, st->ncons);
  }
  if (d != NULL)
    closedir(d);

  /* Declared in the configuration file: created, or brought to it. */
  for (size_t i = 0; defs != NULL && i < defs->n; i++) {
    const stream_def_t *def = &defs->v[i];
    const char *which = NULL;
    const stream_t *o = overlapping(s, def, &which);
    if (o != NULL) {
      snprintf(why, whylen, "stream %s: topic %s overlaps stream %s's",
               def->name, which, o->def.name);
      streams_close(s);
      *out = NULL;
      return TP_EINVAL;
    }
    stream_t *st = find_stream(s, def->name, strlen(def->name));
    if (st != NULL) {
      stream_def_t prev = st->def;
      if (stream_def_copy(&st->def, def) != 0) {
        st->def = prev;
        continue;
      }
      stream_def_free(&prev);
      store_config_t cfg;
      store_cfg(st, &cfg);
      store_reconfigure(st->log, &cfg);
      save_def(st);
    } else {
      rc = stream_open(s, def, false, &st, why, whylen);
      if (rc == 0 && registry_add(s, st) != 0) {
        stream_free(st, true);
        rc = TP_ENOMEM;
      }
      if (rc != 0) {
        streams_close(s);
        *out = NULL;
        return rc;
      }
      LOG(LOG_INFO, "stream %s created from the configuration", def->name);
    }
    st->declared = true;
  }
  uv_check_start(&s->turn, on_turn);
  uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
  w->broker->publish_hook = (publish_hook_t){
      .on_publish = on_publish, .prefix = "$TS.", .prefix_len = 4, .ctx = s};
  return 0;
}

void streams_close(streams_t *s) {
  if (s == NULL || s->closing)
    return;
  /* The other workers have stopped (server.c): what they handed over is
   * stored before the logs close. */
  xpub_take(s);
  s->closing = true;
  if (s->w->broker->publish_hook.ctx == s)
    memset(&s->w->broker->publish_hook, 0, sizeof s->w->broker->publish_hook);
  for (size_t i = 0; i < s->n; i++) {
    process_acks(s->v[i]);
    stream_free(s->v[i], false);
  }
  s->n = 0;
  if (s->retained != NULL) {
    store_close(s->retained);
    s->retained = NULL;
  }
  store_env_free(s->env);
  s->env = NULL;
  uv_close((uv_handle_t *)&s->stored, on_handle_closed);
  uv_close((uv_handle_t *)&s->turn, on_handle_closed);
  uv_close((uv_handle_t *)&s->spin, on_handle_closed);
  uv_close((uv_handle_t *)&s->tick, on_handle_closed);
  uv_close((uv_handle_t *)&s->xwake, on_handle_closed);
}

/* ---- figures ---- */

static int appendf(tp_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int appendf(tp_buf_t *b, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0)
    return TP_EINVAL;
  return tp_buf_append(b, line,
                       (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

int streams_metrics(streams_t *s, tp_buf_t *out) {
  int rc = 0;
  static const char *names[][2] = {
      {"tern_stream_messages", "gauge"},
      {"tern_stream_bytes", "gauge"},
      {"tern_stream_first_seq", "gauge"},
      {"tern_stream_last_seq", "gauge"},
      {"tern_stream_disk_bytes", "gauge"},
      {"tern_stream_consumers", "gauge"},
      {"tern_stream_published_total", "counter"},
      {"tern_stream_duplicates_total", "counter"},
      {"tern_stream_refused_total", "counter"},
  };
  rc |= appendf(out,
                "# HELP tern_streams Durable streams.\n# TYPE tern_streams "
                "gauge\ntern_streams %zu\n",
                s->n);
  rc |= appendf(out,
                "# HELP tern_stream_api_requests_total Stream API requests.\n# "
                "TYPE tern_stream_api_requests_total "
                "counter\ntern_stream_api_requests_total %" PRIu64 "\n",
                s->api_requests);
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    rc |= appendf(out, "# TYPE %s %s\n", names[k][0], names[k][1]);
    for (size_t i = 0; i < s->n; i++) {
      stream_t *st = s->v[i];
      store_info_t in;
      store_info(st->log, &in);
      uint64_t v[] = {in.msgs,
                      in.bytes,
                      in.first_seq,
                      in.last_seq,
                      in.disk_bytes,
                      st->ncons,
                      st->msgs_in,
                      st->duplicates,
                      st->refused_full + st->refused_disk + st->refused_other};
      rc |= appendf(out, "%s{stream=\"%s\"} %" PRIu64 "\n", names[k][0],
                    st->def.name, v[k]);
    }
  }
  static const char *cnames[][2] = {
      {"tern_consumer_delivered_total", "counter"},
      {"tern_consumer_redelivered_total", "counter"},
      {"tern_consumer_acked_total", "counter"},
      {"tern_consumer_ack_pending", "gauge"},
      {"tern_consumer_waiting_pulls", "gauge"},
      {"tern_consumer_lag", "gauge"},
      {"tern_consumer_max_deliveries_total", "counter"},
  };
  for (size_t k = 0; k < sizeof cnames / sizeof cnames[0]; k++) {
    rc |= appendf(out, "# TYPE %s %s\n", cnames[k][0], cnames[k][1]);
    for (size_t i = 0; i < s->n; i++) {
      stream_t *st = s->v[i];
      uint64_t last = store_last_seq(st->log);
      for (size_t j = 0; j < st->ncons; j++) {
        consumer_t *c = st->cons[j];
        uint64_t v[] = {c->delivered,
                        c->redelivered,
                        c->acked,
                        c->npend,
                        c->npulls,
                        last >= c->next_seq ? last - c->next_seq + 1 : 0,
                        c->max_deliver_hits};
        rc |= appendf(out, "%s{stream=\"%s\",consumer=\"%s\"} %" PRIu64 "\n",
                      cnames[k][0], st->def.name, c->name, v[k]);
      }
    }
  }
  return rc != 0 ? TP_ENOMEM : 0;
}

int streams_json(streams_t *s, tp_buf_t *out) {
  static const char *discards[] = {"old", "new"};
  static const char *syncs[] = {"always", "interval", "never"};
  int rc = appendf(out, "{\"streams\":[");
  for (size_t i = 0; i < s->n; i++) {
    stream_t *st = s->v[i];
    store_info_t in;
    store_info(st->log, &in);
    rc |= appendf(out, "%s{\"name\":\"%s\",\"topics\":[", i ? "," : "",
                  st->def.name);
    for (size_t t = 0; t < st->def.ntopics; t++) {
      rc |= appendf(out, "%s", t ? "," : "");
      /* Patterns hold no '"' or '\\' worth escaping but may: escape. */
      rc |= tp_buf_append(out, "\"", 1);
      for (const char *p = st->def.topics[t]; *p; p++) {
        if (*p == '"' || *p == '\\')
          rc |= tp_buf_append(out, "\\", 1);
        rc |= tp_buf_append(out, p, 1);
      }
      rc |= tp_buf_append(out, "\"", 1);
    }
    rc |= appendf(out,
                  "],\"max_msgs\":%" PRIu64 ",\"max_bytes\":%" PRIu64
                  ",\"max_age_ms\":%" PRIu64 ",\"max_msgs_per_topic\":%" PRIu64
                  ",\"discard\":\"%s\",\"sync\":\"%s\",\"declared\":%s,"
                  "\"msgs\":%" PRIu64 ",\"bytes\":%" PRIu64
                  ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
                  ",\"stored_seq\":%" PRIu64 ",\"disk_bytes\":%" PRIu64
                  ",\"segments\":%" PRIu64 ",\"published\":%" PRIu64
                  ",\"duplicates\":%" PRIu64 ",\"refused\":%" PRIu64
                  ",\"failed\":%s,\"consumers\":[",
                  st->def.max_msgs, st->def.max_bytes, st->def.max_age_ms,
                  st->def.max_msgs_per_topic, discards[st->def.discard & 1],
                  syncs[st->def.sync % 3], st->declared ? "true" : "false",
                  in.msgs, in.bytes, in.first_seq, in.last_seq, in.stored_seq,
                  in.disk_bytes, in.segments, st->msgs_in, st->duplicates,
                  st->refused_full + st->refused_disk + st->refused_other,
                  in.failed ? "true" : "false");
    for (size_t j = 0; j < st->ncons; j++) {
      consumer_t *c = st->cons[j];
      rc |= appendf(out,
                    "%s{\"name\":\"%s\",\"durable\":%s,\"mode\":\"%s\","
                    "\"next_seq\":%" PRIu64 ",\"ack_floor\":%" PRIu64
                    ",\"ack_pending\":%zu,\"waiting_pulls\":%zu,"
                    "\"delivered\":%" PRIu64 ",\"redelivered\":%" PRIu64
                    ",\"acked\":%" PRIu64 ",\"max_deliveries\":%" PRIu64 "}",
                    j ? "," : "", c->name, c->durable ? "true" : "false",
                    c->push ? "push" : "pull", c->next_seq, c->ack_floor,
                    c->npend, c->npulls, c->delivered, c->redelivered, c->acked,
                    c->max_deliver_hits);
    }
    rc |= appendf(out, "]}");
  }
  rc |= appendf(out, "]}\n");
  return rc != 0 ? TP_ENOMEM : 0;
}
