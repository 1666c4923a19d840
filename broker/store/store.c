/*
 * The stream store (store.h): one stream's log of segment files
 * (format.h), its index in memory, its limits, and its part in the sync
 * thread's work (env.h). broker/store/README.md describes the design.
 *
 * In memory, per segment, one entry per sequence it holds (24 bytes:
 * offset, length, topic id, time): the sequence index (sequence -> file
 * offset), the time index (times never go back, so a binary search) and
 * the deleted set (length 0) in one array. Per topic: its live count, its
 * first and last live sequence. All rebuilt by scanning the segments at
 * open (no index files: a scan of 1 M records takes well under a second,
 * see the README's figures).
 */
#define _GNU_SOURCE /* fallocate, FALLOC_FL_KEEP_SIZE */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/errors.h"
#include "data/hashmap.h"
#include "store/env.h"
#include "store/format.h"

#define WBUF_FLUSH (256u << 10) /* store_append writes past this */
#define ALLOC_CHUNK (4u << 20)  /* fallocate ahead by this much */
/* Room kept beyond a message for tombstones and purge records, so that
 * deletes still work on a full disk. */
#define ALLOC_RESERVE (64u << 10)
#define ITER_BLOCK (128u << 10)
#define SEGMENT_MAX (1ull << 30) /* offsets are 32-bit */

typedef struct ent {
  uint32_t off; /* in the segment file */
  uint32_t len; /* record bytes; 0: not live (deleted, lost) */
  uint32_t topic;
  uint32_t pad;
  int64_t time_ns;
} ent_t;

typedef struct seg {
  uint64_t first_seq; /* from its header and name */
  int fd;             /* O_RDWR, kept open for reads */
  uint64_t size;      /* bytes in the file (header included) */
  ent_t *ents;        /* ents[i] is sequence first_seq + i */
  size_t nents, cap;
  uint64_t live;
  uint64_t live_bytes;
  uint64_t max_target; /* highest sequence a tombstone in it removes */
} seg_t;

typedef struct topic {
  uint64_t count, first_seq, last_seq;
  uint32_t id, len;
  char name[];
} topic_t;

struct store {
  store_env_t *env;
  char *dir;
  int dirfd, lockfd;
  store_config_t cfg;
  uint64_t seg_bytes;
  uint32_t max_msg;

  seg_t **segs; /* by first_seq; the last one is active */
  size_t nsegs, segcap;

  uint8_t *wbuf; /* the active segment's bytes not yet written */
  size_t wlen, wcap;
  uint64_t alloc_end; /* reserved in the active segment up to here */
  bool falloc_ok;

  uint64_t first_seq, last_seq, msgs, bytes;
  int64_t last_time;
  bool reap;         /* a segment may have emptied */
  uint64_t mark_seq; /* the newest purge record's sequence */

  hashmap_t *topics;
  topic_t **tby; /* by id */
  uint32_t ntopic_ids, tcap;
  uint32_t *tfree;
  uint32_t nfree, freecap;

  uint64_t epoch;   /* +1 at each compaction: iterators drop their block */
  uint8_t *scratch; /* store_get */
  size_t scap;
  size_t iters;

  /* Shared with the sync thread (env->mu guards the plain fields). */
  store_work_t work;
  int sync_fd; /* dup of the active segment's fd, the thread's */
  int *retire; /* sealed segments' dups: fdatasync then close */
  size_t nretire, cretire;
  bool dir_dirty;
  uint64_t req_gen, done_gen, target;
  int sync_err;
  _Atomic uint64_t written, stored, synced;
  _Atomic bool failed;
};

int store_env_new(store_env_t **out) {
  return store__env_new(out);
}

void store_env_free(store_env_t *env) {
  store__env_free(env);
}

void store_config_init(store_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->limits.discard = STORE_DISCARD_OLD;
  cfg->sync = STORE_SYNC_ALWAYS;
}

/* ---- small helpers ---- */

static seg_t *active(const store_t *st) {
  return st->segs[st->nsegs - 1];
}

static void seg_path(const store_t *st, uint64_t first, const char *suffix,
                     char *out, size_t n) {
  snprintf(out, n, "%s/%020" PRIu64 ".seg%s", st->dir, first, suffix);
}

/* The segment that would hold seq (its index), or -1 below the first. */
static ssize_t seg_find(const store_t *st, uint64_t seq) {
  size_t lo = 0, hi = st->nsegs;
  if (hi && seq >= st->segs[hi - 1]->first_seq)
    return (ssize_t)hi - 1;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (st->segs[mid]->first_seq <= seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return (ssize_t)lo - 1;
}

/* The entry of seq, live or not, or NULL when no segment holds it. */
static ent_t *ent_of(const store_t *st, uint64_t seq, seg_t **segp) {
  ssize_t i = seg_find(st, seq);
  if (i < 0)
    return NULL;
  seg_t *s = st->segs[i];
  uint64_t k = seq - s->first_seq;
  if (k >= s->nents)
    return NULL;
  if (segp)
    *segp = s;
  return &s->ents[k];
}

static int ent_push(seg_t *s, uint64_t seq, const ent_t *e) {
  size_t k = (size_t)(seq - s->first_seq);
  if (k + 1 > s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 1024;
    while (nc < k + 1)
      nc *= 2;
    ent_t *n = realloc(s->ents, nc * sizeof *n);
    if (!n)
      return UV_ENOMEM;
    s->ents = n;
    s->cap = nc;
  }
  /* Sequences skipped (lost in a damaged span) are gaps: not live, with the
   * previous time so times stay sorted. */
  int64_t t = s->nents ? s->ents[s->nents - 1].time_ns : e->time_ns;
  while (s->nents < k) {
    s->ents[s->nents++] = (ent_t){.time_ns = t};
  }
  s->ents[s->nents++] = *e;
  return 0;
}

/* ---- topics ---- */

static topic_t *topic_get(store_t *st, const char *name, uint32_t len,
                          bool create) {
  topic_t *t = hashmap_get(st->topics, name, len);
  if (t || !create)
    return t;
  t = malloc(sizeof *t + len);
  if (!t)
    return NULL;
  memcpy(t->name, name, len);
  t->len = len;
  t->count = t->first_seq = t->last_seq = 0;
  bool reused = st->nfree > 0;
  if (reused) {
    t->id = st->tfree[--st->nfree];
  } else {
    if (st->ntopic_ids == st->tcap) {
      uint32_t nc = st->tcap ? st->tcap * 2 : 64;
      topic_t **n = realloc(st->tby, nc * sizeof *n);
      if (!n) {
        free(t);
        return NULL;
      }
      st->tby = n;
      st->tcap = nc;
    }
    t->id = st->ntopic_ids++;
  }
  if (hashmap_put(st->topics, t->name, len, t) != 0) {
    if (reused)
      st->nfree++; /* the id is still in its slot */
    else
      st->ntopic_ids--;
    free(t);
    return NULL;
  }
  st->tby[t->id] = t;
  return t;
}

static void topic_drop(store_t *st, topic_t *t) {
  hashmap_remove(st->topics, t->name, t->len);
  st->tby[t->id] = NULL;
  if (st->nfree == st->freecap) {
    uint32_t nc = st->freecap ? st->freecap * 2 : 64;
    uint32_t *n = realloc(st->tfree, nc * sizeof *n);
    if (!n) { /* the id is not reused: a leak of four bytes' worth */
      free(t);
      return;
    }
    st->tfree = n;
    st->freecap = nc;
  }
  st->tfree[st->nfree++] = t->id;
  free(t);
}

/* The next (dir 1) or previous (dir -1) live sequence of topic id from
 * seq, exclusive, within [lo, hi]; 0 when none. */
static uint64_t topic_walk(const store_t *st, uint32_t id, uint64_t seq,
                           int dir, uint64_t lo, uint64_t hi) {
  for (;;) {
    if (dir > 0 ? seq >= hi : seq <= lo)
      return 0;
    seq = dir > 0 ? seq + 1 : seq - 1;
    const ent_t *e = ent_of(st, seq, NULL);
    if (e && e->len && e->topic == id)
      return seq;
  }
}

/* ---- removal ---- */

static void advance_first(store_t *st) {
  if (st->msgs == 0 || st->first_seq > st->last_seq) {
    st->first_seq = st->last_seq + 1;
    return;
  }
  for (;;) {
    seg_t *s;
    const ent_t *e = ent_of(st, st->first_seq, &s);
    if (e && e->len)
      return;
    if (!e) { /* past a segment's end: the next segment's first */
      ssize_t i = seg_find(st, st->first_seq);
      if (i + 1 < (ssize_t)st->nsegs &&
          st->segs[i + 1]->first_seq > st->first_seq) {
        st->first_seq = st->segs[i + 1]->first_seq;
        continue;
      }
    }
    if (++st->first_seq > st->last_seq)
      return;
  }
}

/* Removes the live record seq from the index and the counts. The caller
 * writes a tombstone if the removal must outlive a restart. */
static bool del_seq(store_t *st, uint64_t seq) {
  seg_t *s;
  ent_t *e = ent_of(st, seq, &s);
  if (!e || !e->len)
    return false;
  topic_t *t = st->tby[e->topic];
  st->msgs--;
  st->bytes -= e->len;
  s->live_bytes -= e->len;
  e->len = 0;
  if (--s->live == 0)
    st->reap = true;
  if (--t->count == 0) {
    topic_drop(st, t);
  } else if (t->count == 1) {
    if (seq == t->first_seq)
      t->first_seq = t->last_seq;
    else
      t->last_seq = t->first_seq;
  } else if (seq == t->first_seq) {
    t->first_seq = topic_walk(st, t->id, seq, 1, 0, t->last_seq);
  } else if (seq == t->last_seq) {
    t->last_seq = topic_walk(st, t->id, seq, -1, t->first_seq, 0);
  }
  if (seq == st->first_seq)
    advance_first(st);
  return true;
}

/* Unlinks the sealed segments with no live record left whose tombstones
 * remove nothing still on disk. */
static void reap(store_t *st) {
  if (!st->reap)
    return;
  st->reap = false;
  size_t j = 0;
  for (size_t i = 0; i < st->nsegs; i++) {
    seg_t *s = st->segs[i];
    /* The head (nothing kept before it) may go: its tombstones remove
     * records in it or before it. */
    if (i + 1 < st->nsegs && s->live == 0 &&
        (j == 0 || s->max_target < st->first_seq)) {
      char path[4096];
      seg_path(st, s->first_seq, "", path, sizeof path);
      close(s->fd);
      unlink(path);
      free(s->ents);
      free(s);
      continue;
    }
    st->segs[j++] = s;
  }
  st->nsegs = j;
}

/* Limits after an append (or a record read at open). */
static void enforce(store_t *st, topic_t *t) {
  const store_limits_t *l = &st->cfg.limits;
  /* count > max >= 1: the topic keeps a record, so t stays valid. */
  if (t && l->max_msgs_per_topic)
    while (t->count > l->max_msgs_per_topic)
      del_seq(st, t->first_seq);
  if (l->discard == STORE_DISCARD_OLD) {
    while (l->max_msgs && st->msgs > l->max_msgs)
      del_seq(st, st->first_seq);
    while (l->max_bytes && st->bytes > l->max_bytes && st->msgs > 1)
      del_seq(st, st->first_seq);
  }
}

/* ---- the write side ---- */

/* The callbacks as the owner last configured them (any thread). */
static void callbacks(store_t *st, store_stored_cb *stored,
                      store_error_cb *error, void **ctx) {
  uv_mutex_lock(&st->env->mu);
  *stored = st->cfg.on_stored;
  *error = st->cfg.on_error;
  *ctx = st->cfg.ctx;
  uv_mutex_unlock(&st->env->mu);
}

static void set_failed(store_t *st, int err) {
  if (atomic_exchange(&st->failed, true))
    return;
  store_stored_cb stored;
  store_error_cb error;
  void *ctx;
  callbacks(st, &stored, &error, &ctx);
  if (error)
    error(ctx, st, err);
}

int store_flush(store_t *st) {
  if (st->wlen == 0)
    return 0;
  if (atomic_load(&st->failed))
    return TERND_ESTORE_FAILED;
  seg_t *a = active(st);
  int rc = store__write_all(a->fd, st->wbuf, st->wlen, a->size);
  if (rc != 0) {
    set_failed(st, rc);
    return rc;
  }
  a->size += st->wlen;
  st->wlen = 0;
  atomic_store(&st->written, st->last_seq);
  if (st->cfg.sync == STORE_SYNC_ALWAYS) {
    uv_mutex_lock(&st->env->mu);
    st->target = st->last_seq;
    st->req_gen++;
    store__work_queue(st->env, &st->work);
    uv_mutex_unlock(&st->env->mu);
  } else if (atomic_load(&st->stored) < st->last_seq) {
    atomic_store(&st->stored, st->last_seq);
    if (st->cfg.on_stored)
      st->cfg.on_stored(st->cfg.ctx, st, st->last_seq);
  }
  return 0;
}

static int seg_create(store_t *st, uint64_t first, seg_t **out) {
  char path[4096];
  seg_path(st, first, "", path, sizeof path);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -errno;
  uint8_t hdr[FMT_SEG_HDR];
  fmt_seg_header_encode(hdr, first, store__wall_ns());
  int rc = store__write_all(fd, hdr, sizeof hdr, 0);
  seg_t *s = rc == 0 ? calloc(1, sizeof *s) : NULL;
  if (rc == 0 && !s)
    rc = UV_ENOMEM;
  if (rc != 0) {
    close(fd);
    unlink(path);
    return rc;
  }
  s->first_seq = first;
  s->fd = fd;
  s->size = FMT_SEG_HDR;
  *out = s;
  return 0;
}

static int segs_push(store_t *st, seg_t *s) {
  if (st->nsegs == st->segcap) {
    size_t nc = st->segcap ? st->segcap * 2 : 16;
    seg_t **n = realloc(st->segs, nc * sizeof *n);
    if (!n)
      return UV_ENOMEM;
    st->segs = n;
    st->segcap = nc;
  }
  st->segs[st->nsegs++] = s;
  return 0;
}

static int wbuf_room(store_t *st, size_t n) {
  if (st->wlen + n <= st->wcap)
    return 0;
  size_t nc = st->wcap ? st->wcap : 64 << 10;
  while (nc < st->wlen + n)
    nc *= 2;
  uint8_t *b = realloc(st->wbuf, nc);
  if (!b)
    return UV_ENOMEM;
  st->wbuf = b;
  st->wcap = nc;
  return 0;
}

/* Makes `sync_fd` follow a new active segment (env->mu not held). */
static int sync_fd_switch(store_t *st, int fd) {
  int d = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
  if (fd >= 0 && d < 0)
    return -errno;
  uv_mutex_lock(&st->env->mu);
  int old = st->sync_fd;
  st->sync_fd = d;
  int rc = 0;
  if (old >= 0) {
    if (st->nretire == st->cretire) {
      size_t nc = st->cretire ? st->cretire * 2 : 8;
      int *n = realloc(st->retire, nc * sizeof *n);
      if (!n) {
        rc = UV_ENOMEM;
        st->sync_fd = old;
        uv_mutex_unlock(&st->env->mu);
        if (d >= 0)
          close(d);
        return rc;
      }
      st->retire = n;
      st->cretire = nc;
    }
    st->retire[st->nretire++] = old;
  }
  st->dir_dirty = true;
  store__work_queue(st->env, &st->work);
  uv_mutex_unlock(&st->env->mu);
  return 0;
}

static int append_purge_mark(store_t *st);

/* Seals the active segment and opens the next one. */
static int rotate(store_t *st) {
  int rc = store_flush(st);
  if (rc != 0)
    return rc;
  seg_t *s;
  if ((rc = seg_create(st, st->last_seq + 1, &s)) != 0)
    return rc;
  if ((rc = segs_push(st, s)) != 0 || (rc = sync_fd_switch(st, s->fd)) != 0) {
    if (st->segs[st->nsegs - 1] == s)
      st->nsegs--;
    char path[4096];
    seg_path(st, s->first_seq, "", path, sizeof path);
    close(s->fd);
    unlink(path);
    free(s);
    return rc;
  }
  /* The old segment's spare reservation goes back to the disk. */
  seg_t *old = st->segs[st->nsegs - 2];
  if (st->falloc_ok && st->alloc_end > old->size)
    (void)ftruncate(old->fd, (off_t)old->size);
  st->alloc_end = s->size;
  st->reap = true;
  reap(st);
  return append_purge_mark(st);
}

/* Space for a record of n bytes at the end of the active segment: a new
 * segment past segment_bytes, reserved disk space, buffer room. */
static int room(store_t *st, size_t n, bool msg) {
  seg_t *a = active(st);
  uint64_t end = a->size + st->wlen;
  if (msg && end > FMT_SEG_HDR && end + n > st->seg_bytes) {
    int rc = rotate(st);
    if (rc != 0)
      return rc;
    a = active(st);
    end = a->size + st->wlen;
  }
  uint64_t need = end + n + (msg ? ALLOC_RESERVE : 0);
  if (st->falloc_ok && need > st->alloc_end) {
    uint64_t want = need + ALLOC_CHUNK;
    if (want > st->seg_bytes + ALLOC_RESERVE && need <= st->seg_bytes)
      want = st->seg_bytes + ALLOC_RESERVE;
    int r = fallocate(a->fd, FALLOC_FL_KEEP_SIZE, (off_t)st->alloc_end,
                      (off_t)(want - st->alloc_end));
    if (r != 0 && errno == ENOSPC) {
      want = need;
      r = fallocate(a->fd, FALLOC_FL_KEEP_SIZE, (off_t)st->alloc_end,
                    (off_t)(want - st->alloc_end));
    }
    if (r == 0) {
      st->alloc_end = want;
    } else if (errno == EOPNOTSUPP || errno == ENOSYS) {
      st->falloc_ok = false;
    } else {
      return -errno;
    }
  }
  return wbuf_room(st, n);
}

static int append_mark(store_t *st, unsigned kind, uint64_t seq) {
  int rc = room(st, FMT_REC_HDR, false);
  if (rc != 0)
    return rc;
  fmt_rec_encode(st->wbuf + st->wlen, kind, seq, st->last_time, NULL, 0, NULL,
                 0, NULL, 0);
  st->wlen += FMT_REC_HDR;
  seg_t *a = active(st);
  uint64_t target = kind == FMT_PURGE ? seq - 1 : seq;
  if (target > a->max_target)
    a->max_target = target;
  return 0;
}

/* Records that everything below first_seq is gone, so that raised limits
 * do not bring back records of a partly emptied segment. */
static int append_purge_mark(store_t *st) {
  uint64_t first = store_first_seq(st);
  if (first <= st->mark_seq || first <= st->segs[0]->first_seq)
    return 0;
  int rc = append_mark(st, FMT_PURGE, first);
  if (rc == 0)
    st->mark_seq = first;
  return rc;
}

int store_append(store_t *st, const store_rec_t *rec, uint64_t *seqp) {
  if (seqp)
    *seqp = 0;
  if (atomic_load(&st->failed))
    return TERND_ESTORE_FAILED;
  const store_limits_t *l = &st->cfg.limits;
  if (rec->topic_len == 0 || rec->topic_len > STORE_TOPIC_MAX ||
      rec->msgid_len > STORE_MSGID_MAX || rec->len > st->max_msg)
    return TERND_ESTORE_TOOBIG;
  size_t n = fmt_rec_size(rec->topic_len, rec->msgid_len, rec->len);
  if (l->max_bytes && n > l->max_bytes)
    return TERND_ESTORE_TOOBIG;
  if (l->discard == STORE_DISCARD_NEW &&
      ((l->max_msgs && st->msgs + 1 > l->max_msgs) ||
       (l->max_bytes && st->bytes + n > l->max_bytes)))
    return TERND_ESTORE_FULL;
  int rc = room(st, n, true);
  if (rc != 0)
    return rc;
  topic_t *t = topic_get(st, rec->topic, rec->topic_len, true);
  if (!t)
    return UV_ENOMEM;
  seg_t *a = active(st);
  uint64_t seq = st->last_seq + 1;
  int64_t now = rec->time_ns ? rec->time_ns : store__wall_ns();
  if (now < st->last_time)
    now = st->last_time;
  ent_t e = {.off = (uint32_t)(a->size + st->wlen),
             .len = (uint32_t)n,
             .topic = t->id,
             .time_ns = now};
  if ((rc = ent_push(a, seq, &e)) != 0) {
    if (t->count == 0)
      topic_drop(st, t);
    return rc;
  }
  fmt_rec_encode(st->wbuf + st->wlen, FMT_MSG, seq, now, rec->topic,
                 rec->topic_len, rec->msgid, rec->msgid_len, rec->data,
                 rec->len);
  st->wlen += n;
  st->last_seq = seq;
  st->last_time = now;
  if (st->msgs++ == 0)
    st->first_seq = seq;
  st->bytes += n;
  a->live++;
  a->live_bytes += n;
  if (t->count++ == 0)
    t->first_seq = seq;
  t->last_seq = seq;
  enforce(st, t);
  reap(st);
  if (seqp)
    *seqp = seq;
  if (st->wlen >= WBUF_FLUSH)
    return store_flush(st);
  return 0;
}

/* ---- the sync thread's side ---- */

static void log_run(store_work_t *w) {
  store_t *st = LIST_ENTRY(w, store_t, work);
  store_env_t *env = st->env;
  uv_mutex_lock(&env->mu);
  int *retire = st->retire;
  size_t nretire = st->nretire;
  st->retire = NULL;
  st->nretire = st->cretire = 0;
  bool dir = st->dir_dirty;
  st->dir_dirty = false;
  uint64_t gen = st->req_gen, target = st->target;
  int fd = st->sync_fd;
  bool interval = st->cfg.sync == STORE_SYNC_INTERVAL;
  bool always = st->cfg.sync == STORE_SYNC_ALWAYS;
  if (interval) {
    uint64_t ms = st->cfg.sync_interval_ms ? st->cfg.sync_interval_ms : 1000;
    int64_t now = store__mono_ns();
    if (w->due_ns <= now) {
      w->due_ns = now + (int64_t)ms * 1000000;
      uint64_t wr = atomic_load(&st->written);
      if (wr > atomic_load(&st->synced) && wr > target)
        target = wr;
    }
  }
  uv_mutex_unlock(&env->mu);

  int err = 0;
  for (size_t i = 0; i < nretire; i++) {
    if (fdatasync(retire[i]) != 0 && !err)
      err = -errno;
    close(retire[i]);
  }
  free(retire);
  if (dir && !err)
    err = store__fsync_dir(st->dirfd);
  bool advance = target > atomic_load(&st->synced);
  if (!err && fd >= 0 && (advance || gen != st->done_gen) && fdatasync(fd) != 0)
    err = -errno;

  if (err) {
    uv_mutex_lock(&env->mu);
    st->sync_err = err;
    st->done_gen = gen;
    uv_mutex_unlock(&env->mu);
    set_failed(st, err);
    return;
  }
  if (advance) {
    atomic_store(&st->synced, target);
    if (always && target > atomic_load(&st->stored)) {
      atomic_store(&st->stored, target);
      store_stored_cb stored;
      store_error_cb error;
      void *ctx;
      callbacks(st, &stored, &error, &ctx);
      if (stored)
        stored(ctx, st, target);
    }
  }
  uv_mutex_lock(&env->mu);
  st->done_gen = gen;
  uv_mutex_unlock(&env->mu);
}

int store_sync(store_t *st) {
  int rc = store_flush(st);
  if (rc != 0)
    return rc;
  uv_mutex_lock(&st->env->mu);
  if (st->target < atomic_load(&st->written))
    st->target = atomic_load(&st->written);
  uint64_t gen = ++st->req_gen;
  store__work_queue(st->env, &st->work);
  while (st->done_gen < gen && !atomic_load(&st->failed))
    uv_cond_wait(&st->env->done, &st->env->mu);
  rc = st->sync_err;
  uv_mutex_unlock(&st->env->mu);
  if (atomic_load(&st->failed))
    return rc ? rc : TERND_ESTORE_FAILED;
  return 0;
}

uint64_t store_stored_seq(const store_t *st) {
  return atomic_load(&((store_t *)st)->stored);
}

uint64_t store_synced_seq(const store_t *st) {
  return atomic_load(&((store_t *)st)->synced);
}

/* ---- open, recovery ---- */

typedef struct scan_ctx {
  store_t *st;
  seg_t *seg;
  const uint8_t *base; /* the segment's bytes after its header */
  store_recovery_t *rec;
  int err;
  uint64_t prev_seq; /* the last message before a damaged span */
  uint64_t seq_now;
} scan_ctx_t;

static void copy_aside(store_t *st, uint64_t first, uint64_t off,
                       const uint8_t *p, size_t n) {
  char path[4096];
  char suffix[48];
  snprintf(suffix, sizeof suffix, ".corrupt-%" PRIu64, off);
  seg_path(st, first, suffix, path, sizeof path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return; /* already there from an earlier open */
  (void)store__write_all(fd, p, n, 0);
  (void)fsync(fd);
  close(fd);
}

static void apply_purge(store_t *st, uint64_t below) {
  if (below > st->mark_seq)
    st->mark_seq = below;
  while (st->msgs && st->first_seq < below)
    del_seq(st, st->first_seq);
  if (st->last_seq + 1 < below)
    st->last_seq = below - 1;
  if (st->msgs == 0)
    st->first_seq = st->last_seq + 1;
}

static int scan_record(void *ctx, const fmt_rec_t *r, size_t off) {
  scan_ctx_t *c = ctx;
  store_t *st = c->st;
  seg_t *s = c->seg;
  if (r->kind == FMT_MSG) {
    topic_t *t = topic_get(st, (const char *)r->topic, r->topic_len, true);
    if (!t) {
      c->err = UV_ENOMEM;
      return 1;
    }
    int64_t tm = r->time_ns < st->last_time ? st->last_time : r->time_ns;
    ent_t e = {.off = (uint32_t)(off + FMT_SEG_HDR),
               .len = r->len,
               .topic = t->id,
               .time_ns = tm};
    if (r->seq < s->first_seq || ent_push(s, r->seq, &e) != 0) {
      if (t->count == 0)
        topic_drop(st, t);
      c->err = r->seq < s->first_seq ? 0 : UV_ENOMEM;
      return c->err != 0;
    }
    if (c->prev_seq + 1 < r->seq && c->rec && c->seq_now)
      c->rec->lost_seqs += r->seq - c->prev_seq - 1;
    c->seq_now = 0;
    c->prev_seq = r->seq;
    st->last_seq = r->seq;
    st->last_time = tm;
    if (st->msgs++ == 0)
      st->first_seq = r->seq;
    st->bytes += r->len;
    s->live++;
    s->live_bytes += r->len;
    if (t->count++ == 0)
      t->first_seq = r->seq;
    t->last_seq = r->seq;
    if (c->rec)
      c->rec->records++;
    enforce(st, t);
  } else if (r->kind == FMT_DELETE) {
    uint64_t target = r->seq;
    if (target > s->max_target)
      s->max_target = target;
    del_seq(st, target);
  } else {
    if (r->seq - 1 > s->max_target)
      s->max_target = r->seq - 1;
    apply_purge(st, r->seq);
  }
  return 0;
}

static void scan_corrupt(void *ctx, size_t off, size_t len) {
  scan_ctx_t *c = ctx;
  if (c->rec) {
    c->rec->corrupt_spans++;
    c->rec->corrupt_bytes += len;
  }
  c->seq_now = 1; /* the next message's gap counts as lost */
  copy_aside(c->st, c->seg->first_seq, off + FMT_SEG_HDR, c->base + off, len);
}

/* Reads one segment file into the index; a file that holds nothing usable
 * is removed (its bytes moved aside when damaged). */
static int load_segment(store_t *st, uint64_t first, bool last,
                        store_recovery_t *rec) {
  char path[4096];
  seg_path(st, first, "", path, sizeof path);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  size_t size = (size_t)sb.st_size;
  const uint8_t *map = NULL;
  if (size > 0) {
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      int rc = -errno;
      close(fd);
      return rc;
    }
  }
  uint64_t hfirst = 0;
  int h = fmt_seg_header_decode(map, size, &hfirst);
  int rc = 0;
  if (h == FMT_NEWER) {
    rc = TERND_ESTORE_FORMAT;
    goto out;
  }
  if (h != 0 || hfirst != first || first <= st->last_seq) {
    /* A torn creation (the last segment, short): nothing was in it. A bad
     * header elsewhere: the whole file goes aside. */
    if (last && size < FMT_SEG_HDR) {
      if (rec)
        rec->torn_bytes += size;
    } else {
      copy_aside(st, first, 0, map, size);
      if (rec) {
        rec->corrupt_spans++;
        rec->corrupt_bytes += size;
      }
    }
    unlink(path);
    goto out;
  }
  seg_t *s = calloc(1, sizeof *s);
  if (!s || segs_push(st, s) != 0) {
    free(s);
    rc = UV_ENOMEM;
    goto out;
  }
  s->first_seq = first;
  s->fd = fd;
  if (st->last_seq + 1 < first) {
    st->last_seq = first - 1; /* removed segments before it */
    if (st->msgs == 0)
      st->first_seq = first;
  }
  scan_ctx_t c = {.st = st,
                  .seg = s,
                  .base = map + FMT_SEG_HDR,
                  .rec = rec,
                  .prev_seq = first - 1};
  fmt_scan_ops_t ops = {scan_record, scan_corrupt};
  uint64_t last_msg = first - 1;
  size_t body = size - FMT_SEG_HDR;
  size_t end = fmt_scan(map + FMT_SEG_HDR, body, &last_msg, &ops, &c);
  if (c.err) {
    rc = c.err;
    goto out_seg;
  }
  if (end < body) {
    /* The tail. In the last segment, a torn write: cut it. A record there
     * that is whole but fails its checksum is damage, not a torn write:
     * its bytes are kept aside first. Elsewhere, a damaged span. */
    fmt_rec_t r;
    const uint8_t *p = map + FMT_SEG_HDR + end;
    bool whole = fmt_rec_decode(p, body - end, &r) == FMT_BAD &&
                 body - end >= FMT_REC_HDR && r.len >= FMT_REC_HDR &&
                 r.len <= body - end;
    if (!last || whole)
      copy_aside(st, first, FMT_SEG_HDR + end, p, body - end);
    if (last) {
      if (rec)
        rec->torn_bytes += body - end;
      if (ftruncate(fd, (off_t)(FMT_SEG_HDR + end)) != 0) {
        rc = -errno;
        goto out_seg;
      }
    } else if (rec) {
      rec->corrupt_spans++;
      rec->corrupt_bytes += body - end;
    }
  } else if (last) {
    /* Space reserved ahead (fallocate) before a crash goes back. */
    (void)ftruncate(fd, (off_t)size);
  }
  s->size = FMT_SEG_HDR + end;
  fd = -1; /* the segment's now */
  goto out;
out_seg:
  st->nsegs--;
  free(s->ents);
  free(s);
out:
  if (map)
    munmap((void *)map, size);
  if (fd >= 0)
    close(fd);
  return rc;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The segment files' first sequences, sorted. */
static int list_segments(store_t *st, uint64_t **out, size_t *n) {
  DIR *d = opendir(st->dir);
  if (!d)
    return -errno;
  uint64_t *v = NULL;
  size_t nv = 0, cap = 0;
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(d)) != NULL) {
    const char *name = de->d_name;
    size_t nl = strlen(name);
    if (nl == 32 && strcmp(name + 20, ".seg.compact") == 0) {
      /* A compaction the crash interrupted: the segment is intact. */
      char p[4096];
      snprintf(p, sizeof p, "%s/%s", st->dir, name);
      unlink(p);
      continue;
    }
    if (nl != 24 || strcmp(name + 20, ".seg") != 0)
      continue;
    uint64_t x = 0;
    bool ok = true;
    for (int i = 0; i < 20; i++) {
      if (name[i] < '0' || name[i] > '9') {
        ok = false;
        break;
      }
      x = x * 10 + (uint64_t)(name[i] - '0');
    }
    if (!ok || x == 0)
      continue;
    if (nv == cap) {
      cap = cap ? cap * 2 : 16;
      uint64_t *nn = realloc(v, cap * sizeof *nn);
      if (!nn) {
        rc = UV_ENOMEM;
        break;
      }
      v = nn;
    }
    v[nv++] = x;
  }
  closedir(d);
  if (rc != 0) {
    free(v);
    return rc;
  }
  if (nv > 1)
    qsort(v, nv, sizeof *v, cmp_u64);
  *out = v;
  *n = nv;
  return 0;
}

static void free_store(store_t *st) {
  for (size_t i = 0; i < st->nsegs; i++) {
    if (st->segs[i]->fd >= 0)
      close(st->segs[i]->fd);
    free(st->segs[i]->ents);
    free(st->segs[i]);
  }
  free(st->segs);
  if (st->topics) {
    size_t pos = 0;
    const void *k;
    size_t kl;
    void *v;
    while (hashmap_next(st->topics, &pos, &k, &kl, &v))
      free(v);
    hashmap_destroy(st->topics);
  }
  free(st->tby);
  free(st->tfree);
  free(st->wbuf);
  free(st->scratch);
  for (size_t i = 0; i < st->nretire; i++)
    close(st->retire[i]);
  free(st->retire);
  if (st->sync_fd >= 0)
    close(st->sync_fd);
  if (st->dirfd >= 0)
    close(st->dirfd);
  if (st->lockfd >= 0)
    close(st->lockfd);
  free(st->dir);
  free(st);
}

static void apply_config(store_t *st, const store_config_t *cfg) {
  st->cfg = *cfg;
  st->max_msg = cfg->limits.max_msg_size ? cfg->limits.max_msg_size
                                         : STORE_MSG_MAX_DEFAULT;
  if (st->max_msg > FMT_PAYLOAD_MAX)
    st->max_msg = FMT_PAYLOAD_MAX;
}

int store_open(store_env_t *env, const char *dir, const store_config_t *cfg,
               store_t **out, store_recovery_t *recovery) {
  *out = NULL;
  if (recovery)
    memset(recovery, 0, sizeof *recovery);
  store_t *st = calloc(1, sizeof *st);
  if (!st)
    return UV_ENOMEM;
  st->env = env;
  st->dirfd = st->lockfd = st->sync_fd = -1;
  st->falloc_ok = true;
  st->first_seq = 1;
  apply_config(st, cfg);
  st->seg_bytes =
      cfg->segment_bytes ? cfg->segment_bytes : STORE_SEGMENT_DEFAULT;
  if (st->seg_bytes > SEGMENT_MAX)
    st->seg_bytes = SEGMENT_MAX;
  if (st->seg_bytes < 4096)
    st->seg_bytes = 4096;
  store__work_init(&st->work, log_run);
  int rc = 0;
  uint64_t *firsts = NULL;
  size_t nfirst = 0;
  if (!(st->dir = strdup(dir))) {
    rc = UV_ENOMEM;
    goto fail;
  }
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    rc = -errno;
    goto fail;
  }
  if ((st->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
    rc = -errno;
    goto fail;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/LOCK", dir);
  if ((st->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
    rc = -errno;
    goto fail;
  }
  if (flock(st->lockfd, LOCK_EX | LOCK_NB) != 0) {
    rc = errno == EWOULDBLOCK ? TERND_ESTORE_LOCKED : -errno;
    goto fail;
  }
  if ((rc = hashmap_create(&st->topics, 0)) != 0) {
    rc = UV_ENOMEM;
    goto fail;
  }
  if ((rc = list_segments(st, &firsts, &nfirst)) != 0)
    goto fail;
  for (size_t i = 0; i < nfirst; i++) {
    if ((rc = load_segment(st, firsts[i], i + 1 == nfirst, recovery)) != 0)
      goto fail;
  }
  free(firsts);
  firsts = NULL;
  /* What the recovery read is made durable before new records follow. */
  for (size_t i = 0; i < st->nsegs; i++)
    (void)fdatasync(st->segs[i]->fd);
  if (st->nsegs == 0 || active(st)->size >= st->seg_bytes) {
    seg_t *s;
    if ((rc = seg_create(st, st->last_seq + 1, &s)) != 0)
      goto fail;
    if ((rc = segs_push(st, s)) != 0) {
      close(s->fd);
      free(s);
      goto fail;
    }
    (void)fdatasync(s->fd);
    (void)store__fsync_dir(st->dirfd);
  }
  st->alloc_end = active(st)->size;
  {
    int d = fcntl(active(st)->fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0) {
      rc = -errno;
      goto fail;
    }
    st->sync_fd = d;
  }
  if (st->msgs == 0)
    st->first_seq = st->last_seq + 1;
  uint64_t before = st->msgs;
  if (st->cfg.limits.max_age_ms) {
    int64_t cut =
        store__wall_ns() - (int64_t)st->cfg.limits.max_age_ms * 1000000;
    while (st->msgs) {
      const ent_t *e = ent_of(st, st->first_seq, NULL);
      if (e->time_ns >= cut)
        break;
      del_seq(st, st->first_seq);
    }
  }
  enforce(st, NULL);
  if (recovery)
    recovery->expired = before - st->msgs;
  st->reap = true;
  reap(st);
  atomic_store(&st->written, st->last_seq);
  atomic_store(&st->stored, st->last_seq);
  atomic_store(&st->synced, st->last_seq);
  if (st->cfg.sync == STORE_SYNC_INTERVAL) {
    uint64_t ms = st->cfg.sync_interval_ms ? st->cfg.sync_interval_ms : 1000;
    uv_mutex_lock(&env->mu);
    st->work.due_ns = store__mono_ns() + (int64_t)ms * 1000000;
    list_insert_tail(&env->timed, &st->work.tnode);
    uv_cond_signal(&env->wake);
    uv_mutex_unlock(&env->mu);
  }
  *out = st;
  return 0;
fail:
  free(firsts);
  free_store(st);
  return rc;
}

static void detach(store_t *st) {
  uv_mutex_lock(&st->env->mu);
  list_remove(&st->work.tnode);
  store__work_wait(st->env, &st->work);
  uv_mutex_unlock(&st->env->mu);
}

int store_close(store_t *st) {
  if (!st)
    return 0;
  int rc = TERND_ESTORE_FAILED;
  if (!atomic_load(&st->failed)) {
    (void)append_purge_mark(st);
    rc = store_sync(st);
  }
  detach(st);
  /* The spare reservation goes back to the disk. */
  seg_t *a = active(st);
  if (!atomic_load(&st->failed) && st->alloc_end > a->size)
    (void)ftruncate(a->fd, (off_t)a->size);
  free_store(st);
  return rc;
}

static int rm_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return errno == ENOENT ? 0 : -errno;
  struct dirent *de;
  char path[4096];
  int rc = 0;
  while ((de = readdir(d)) != NULL) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (unlink(path) != 0 && !rc)
      rc = -errno;
  }
  closedir(d);
  if (rmdir(dir) != 0 && !rc)
    rc = -errno;
  return rc;
}

int store_destroy(store_t *st) {
  if (!st)
    return 0;
  char *dir = strdup(st->dir);
  detach(st);
  free_store(st);
  if (!dir)
    return UV_ENOMEM;
  int rc = rm_tree(dir);
  free(dir);
  return rc;
}

int store_reconfigure(store_t *st, const store_config_t *cfg) {
  store_sync_t old = st->cfg.sync;
  bool changed = memcmp(&st->cfg.limits, &cfg->limits, sizeof cfg->limits);
  uv_mutex_lock(&st->env->mu);
  apply_config(st, cfg);
  if (old != cfg->sync) {
    list_remove(&st->work.tnode);
    if (cfg->sync == STORE_SYNC_INTERVAL) {
      uint64_t ms = cfg->sync_interval_ms ? cfg->sync_interval_ms : 1000;
      st->work.due_ns = store__mono_ns() + (int64_t)ms * 1000000;
      list_insert_tail(&st->env->timed, &st->work.tnode);
      uv_cond_signal(&st->env->wake);
    }
  }
  uv_mutex_unlock(&st->env->mu);
  if (!changed)
    return 0;
  enforce(st, NULL);
  if (cfg->limits.max_msgs_per_topic) {
    size_t pos = 0;
    const void *k;
    size_t kl;
    void *v;
    /* Deleting changes the map: collect the over-limit topics first. */
    for (;;) {
      topic_t *over = NULL;
      pos = 0;
      while (hashmap_next(st->topics, &pos, &k, &kl, &v)) {
        topic_t *t = v;
        if (t->count > cfg->limits.max_msgs_per_topic) {
          over = t;
          break;
        }
      }
      if (!over)
        break;
      enforce(st, over);
    }
  }
  if (cfg->limits.max_age_ms)
    (void)store_expire(st, 0);
  reap(st);
  if (atomic_load(&st->failed))
    return TERND_ESTORE_FAILED;
  int rc = append_purge_mark(st);
  return rc ? rc : store_flush(st);
}

/* ---- read ---- */

static int decode_into(const uint8_t *p, uint32_t len, uint64_t seq,
                       store_msg_t *out) {
  fmt_rec_t r;
  if (fmt_rec_decode(p, len, &r) != 0 || r.len != len || r.seq != seq ||
      r.kind != FMT_MSG)
    return TERND_ESTORE_CORRUPT;
  out->seq = r.seq;
  out->time_ns = r.time_ns;
  out->topic = (const char *)r.topic;
  out->topic_len = r.topic_len;
  out->msgid = r.msgid_len ? (const char *)r.msgid : NULL;
  out->msgid_len = r.msgid_len;
  out->data = r.data;
  out->len = r.data_len;
  return 0;
}

/* Copies n bytes at offset off of segment s into dst, from the file and
 * (for the active segment) the write buffer. */
static int read_bytes(const store_t *st, const seg_t *s, uint64_t off,
                      uint8_t *dst, size_t n) {
  size_t from_file = 0;
  if (off < s->size)
    from_file = (size_t)(s->size - off) < n ? (size_t)(s->size - off) : n;
  size_t got = 0;
  while (got < from_file) {
    ssize_t r = pread(s->fd, dst + got, from_file - got, (off_t)(off + got));
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0)
      return UV_EIO;
    got += (size_t)r;
  }
  if (got < n) {
    if (s != active(st))
      return UV_EIO;
    uint64_t boff = off + got - s->size;
    if (boff + (n - got) > st->wlen)
      return UV_EIO;
    memcpy(dst + got, st->wbuf + boff, n - got);
  }
  return 0;
}

int store_get(store_t *st, uint64_t seq, store_msg_t *out) {
  memset(out, 0, sizeof *out);
  seg_t *s;
  const ent_t *e = ent_of(st, seq, &s);
  if (!e || !e->len)
    return TERND_ESTORE_NOTFOUND;
  if (st->scap < e->len) {
    uint8_t *b = realloc(st->scratch, e->len);
    if (!b)
      return UV_ENOMEM;
    st->scratch = b;
    st->scap = e->len;
  }
  int rc = read_bytes(st, s, e->off, st->scratch, e->len);
  if (rc != 0)
    return rc;
  return decode_into(st->scratch, e->len, seq, out);
}

int store_last_for_topic(store_t *st, const char *topic, uint32_t topic_len,
                         uint64_t *seq) {
  topic_t *t = topic_get(st, topic, topic_len, false);
  *seq = t ? t->last_seq : 0;
  return t ? 0 : TERND_ESTORE_NOTFOUND;
}

int store_seq_for_time(store_t *st, int64_t time_ns, uint64_t *seq) {
  *seq = 0;
  if (st->msgs == 0)
    return TERND_ESTORE_NOTFOUND;
  /* The first segment whose last entry is at or after time_ns. */
  for (size_t i = 0; i < st->nsegs; i++) {
    seg_t *s = st->segs[i];
    if (s->nents == 0 || s->ents[s->nents - 1].time_ns < time_ns)
      continue;
    size_t lo = 0, hi = s->nents;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (s->ents[mid].time_ns < time_ns)
        lo = mid + 1;
      else
        hi = mid;
    }
    uint64_t q = s->first_seq + lo;
    if (q < st->first_seq)
      q = st->first_seq;
    for (; q <= st->last_seq; q++) {
      const ent_t *e = ent_of(st, q, NULL);
      if (e && e->len) {
        *seq = q;
        return 0;
      }
    }
    return TERND_ESTORE_NOTFOUND;
  }
  return TERND_ESTORE_NOTFOUND;
}

struct store_iter {
  store_t *st;
  uint64_t seq;
  uint8_t *buf;
  size_t cap;
  uint64_t bseg;  /* first_seq of the segment the block is from, 0: none */
  uint64_t epoch; /* the log's when the block was read */
  uint64_t boff;
  size_t blen;
};

int store_iter_open(store_t *st, uint64_t start_seq, store_iter_t **out) {
  store_iter_t *it = calloc(1, sizeof *it);
  if (!it)
    return UV_ENOMEM;
  it->st = st;
  it->seq = start_seq;
  st->iters++;
  *out = it;
  return 0;
}

uint64_t store_iter_seq(const store_iter_t *it) {
  return it->seq < it->st->first_seq ? it->st->first_seq : it->seq;
}

void store_iter_seek(store_iter_t *it, uint64_t seq) {
  it->seq = seq;
}

void store_iter_close(store_iter_t *it) {
  if (!it)
    return;
  it->st->iters--;
  free(it->buf);
  free(it);
}

int store_iter_next(store_iter_t *it, store_msg_t *out) {
  store_t *st = it->st;
  memset(out, 0, sizeof *out);
  uint64_t seq = it->seq < st->first_seq ? st->first_seq : it->seq;
  for (;;) {
    if (seq > st->last_seq || st->msgs == 0) {
      it->seq = seq;
      return 0;
    }
    ssize_t i = seg_find(st, seq);
    if (i < 0) {
      seq = st->first_seq;
      continue;
    }
    seg_t *s = st->segs[i];
    uint64_t k = seq - s->first_seq;
    if (k >= s->nents) {
      if ((size_t)i + 1 >= st->nsegs) {
        it->seq = seq;
        return 0;
      }
      seq = st->segs[i + 1]->first_seq;
      continue;
    }
    /* Skip the dead entries of this segment in a tight loop. */
    while (k < s->nents && s->ents[k].len == 0)
      k++;
    if (k >= s->nents) {
      seq = s->first_seq + k;
      continue;
    }
    seq = s->first_seq + k;
    const ent_t *e = &s->ents[k];
    if (it->bseg != s->first_seq || it->epoch != st->epoch ||
        e->off < it->boff || e->off + e->len > it->boff + it->blen) {
      uint64_t total = s->size + (s == active(st) ? st->wlen : 0);
      size_t want = e->len > ITER_BLOCK ? e->len : ITER_BLOCK;
      if (e->off + want > total)
        want = (size_t)(total - e->off);
      /* On an error the iterator still moves past the record, so a loop
       * that skips errors ends. */
      if (it->cap < want) {
        uint8_t *b = realloc(it->buf, want);
        if (!b) {
          it->seq = seq + 1;
          return UV_ENOMEM;
        }
        it->buf = b;
        it->cap = want;
      }
      it->bseg = 0;
      int rc = read_bytes(st, s, e->off, it->buf, want);
      if (rc != 0 && want > e->len) /* the block, no: the record alone */
        rc = read_bytes(st, s, e->off, it->buf, want = e->len);
      if (rc != 0) {
        it->seq = seq + 1;
        return rc;
      }
      it->bseg = s->first_seq;
      it->epoch = st->epoch;
      it->boff = e->off;
      it->blen = want;
    }
    it->seq = seq + 1;
    return decode_into(it->buf + (e->off - it->boff), e->len, seq, out) == 0
               ? 1
               : TERND_ESTORE_CORRUPT;
  }
}

/* ---- figures ---- */

void store_info(const store_t *st, store_info_t *out) {
  memset(out, 0, sizeof *out);
  out->first_seq = st->msgs ? st->first_seq : st->last_seq + 1;
  out->last_seq = st->last_seq;
  out->stored_seq = store_stored_seq(st);
  out->msgs = st->msgs;
  out->bytes = st->bytes;
  if (st->msgs)
    out->deleted = st->last_seq - st->first_seq + 1 - st->msgs;
  out->topics = hashmap_size(st->topics);
  if (st->msgs) {
    const ent_t *e = ent_of(st, st->first_seq, NULL);
    out->first_time_ns = e ? e->time_ns : 0;
    out->last_time_ns = st->last_time;
  }
  out->segments = st->nsegs;
  for (size_t i = 0; i < st->nsegs; i++)
    out->disk_bytes += st->segs[i]->size;
  out->disk_bytes += st->wlen;
  out->failed = atomic_load(&((store_t *)st)->failed);
}

uint64_t store_first_seq(const store_t *st) {
  return st->msgs ? st->first_seq : st->last_seq + 1;
}

uint64_t store_last_seq(const store_t *st) {
  return st->last_seq;
}

/* ---- removal ---- */

int store_delete(store_t *st, uint64_t seq) {
  if (atomic_load(&st->failed))
    return TERND_ESTORE_FAILED;
  const ent_t *e = ent_of(st, seq, NULL);
  if (!e || !e->len)
    return TERND_ESTORE_NOTFOUND;
  int rc = append_mark(st, FMT_DELETE, seq);
  if (rc != 0)
    return rc;
  del_seq(st, seq);
  reap(st);
  return 0;
}

int store_purge(store_t *st, const char *topic, uint32_t topic_len,
                uint64_t below_seq, uint64_t keep, uint64_t *purged) {
  if (purged)
    *purged = 0;
  if (atomic_load(&st->failed))
    return TERND_ESTORE_FAILED;
  uint64_t below = below_seq ? below_seq : st->last_seq + 1;
  if (below > st->last_seq + 1)
    below = st->last_seq + 1;
  uint64_t before = st->msgs;
  int rc = 0;
  if (!topic) {
    /* Keep the newest `keep` below `below`: the cut is the keep-th live
     * record counted back from below - 1. */
    uint64_t cut = below;
    if (keep) {
      uint64_t n = 0;
      cut = st->first_seq; /* fewer than keep: nothing goes */
      for (uint64_t q = below - 1; q >= st->first_seq && q > 0; q--) {
        const ent_t *e = ent_of(st, q, NULL);
        if (e && e->len && ++n == keep) {
          cut = q;
          break;
        }
      }
    }
    if (st->msgs && cut > st->first_seq) {
      if ((rc = append_mark(st, FMT_PURGE, cut)) != 0)
        return rc;
      apply_purge(st, cut);
    }
  } else {
    topic_t *t = topic_get(st, topic, topic_len, false);
    if (t) {
      uint32_t id = t->id;
      uint64_t hi = t->last_seq < below ? t->last_seq : below - 1;
      uint64_t cut = hi + 1;
      /* The keep-th newest of the topic at or below hi. */
      uint64_t q = hi + 1;
      for (uint64_t n = 0; keep && n < keep;) {
        q = topic_walk(st, id, q, -1, t->first_seq, 0);
        if (!q) {
          cut = 0;
          break;
        }
        if (++n == keep)
          cut = q;
      }
      if (cut) {
        uint64_t first = t->first_seq;
        for (uint64_t s = first; s && s < cut;) {
          uint64_t next = topic_walk(st, id, s, 1, 0, cut - 1);
          if ((rc = append_mark(st, FMT_DELETE, s)) != 0)
            break;
          bool gone = st->tby[id] == NULL || st->tby[id]->count == 1;
          del_seq(st, s);
          if (gone)
            break;
          s = next;
        }
      }
    }
  }
  if (purged)
    *purged = before - st->msgs;
  st->reap = true;
  reap(st);
  return rc;
}

int64_t store_expire(store_t *st, int64_t now_ns) {
  if (!st->cfg.limits.max_age_ms || st->msgs == 0)
    return 0;
  if (!now_ns)
    now_ns = store__wall_ns();
  int64_t cut = now_ns - (int64_t)st->cfg.limits.max_age_ms * 1000000;
  int64_t n = 0;
  while (st->msgs) {
    const ent_t *e = ent_of(st, st->first_seq, NULL);
    if (e->time_ns >= cut)
      break;
    del_seq(st, st->first_seq);
    n++;
  }
  reap(st);
  return n;
}

/* ---- compaction ---- */

typedef struct compact_ctx {
  const seg_t *s;
  uint8_t *out;
  size_t n;
  uint32_t *newoff; /* by entry index */
  bool damaged;
} compact_ctx_t;

static int compact_record(void *ctx, const fmt_rec_t *r, size_t off) {
  compact_ctx_t *c = ctx;
  const seg_t *s = c->s;
  const uint8_t *rec = r->topic - FMT_REC_HDR;
  if (r->kind == FMT_MSG) {
    uint64_t k = r->seq - s->first_seq;
    if (k >= s->nents || s->ents[k].len == 0)
      return 0; /* dead: dropped */
    if (s->ents[k].off != off + FMT_SEG_HDR || s->ents[k].len != r->len) {
      c->damaged = true;
      return 1;
    }
    c->newoff[k] = (uint32_t)c->n;
  }
  /* Messages alive, and every tombstone and purge record (they may
   * remove records of earlier segments still on disk). */
  memcpy(c->out + c->n, rec, r->len);
  c->n += r->len;
  return 0;
}

/* Rewrites sealed segment i without its dead records. */
static int64_t compact_one(store_t *st, size_t i) {
  seg_t *s = st->segs[i];
  size_t size = (size_t)s->size;
  uint8_t *in = malloc(size), *out = malloc(size);
  uint32_t *newoff = calloc(s->nents ? s->nents : 1, sizeof *newoff);
  int64_t rc = 0;
  int fd = -1;
  char path[4096], tmp[4096];
  seg_path(st, s->first_seq, "", path, sizeof path);
  seg_path(st, s->first_seq, ".compact", tmp, sizeof tmp);
  if (!in || !out || !newoff) {
    rc = UV_ENOMEM;
    goto out;
  }
  if ((rc = read_bytes(st, s, 0, in, size)) != 0)
    goto out;
  uint64_t hfirst;
  if (fmt_seg_header_decode(in, size, &hfirst) != 0 || hfirst != s->first_seq) {
    rc = TERND_ESTORE_CORRUPT;
    goto out;
  }
  memcpy(out, in, FMT_SEG_HDR);
  compact_ctx_t c = {.s = s, .out = out, .n = FMT_SEG_HDR, .newoff = newoff};
  fmt_scan_ops_t ops = {compact_record, NULL};
  uint64_t last = s->first_seq - 1;
  (void)fmt_scan(in + FMT_SEG_HDR, size - FMT_SEG_HDR, &last, &ops, &c);
  /* Every live record must have been found where the index says. */
  uint64_t kept = 0;
  for (size_t k = 0; k < s->nents; k++)
    kept += s->ents[k].len && newoff[k]; /* a kept one is past the header */
  if (c.damaged || kept != s->live) {
    rc = TERND_ESTORE_CORRUPT;
    goto out;
  }
  fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = -errno;
    goto out;
  }
  if ((rc = store__write_all(fd, out, c.n, 0)) != 0)
    goto out;
  if (fdatasync(fd) != 0 || rename(tmp, path) != 0) {
    rc = -errno;
    goto out;
  }
  (void)store__fsync_dir(st->dirfd);
  close(s->fd);
  s->fd = fd;
  fd = -1;
  for (size_t k = 0; k < s->nents; k++)
    if (s->ents[k].len)
      s->ents[k].off = newoff[k];
  rc = (int64_t)(size - c.n);
  s->size = c.n;
  st->epoch++;
out:
  if (fd >= 0) {
    close(fd);
    unlink(tmp);
  }
  free(in);
  free(out);
  free(newoff);
  return rc;
}

int64_t store_compact(store_t *st, uint64_t budget) {
  if (atomic_load(&st->failed))
    return TERND_ESTORE_FAILED;
  int64_t freed = 0;
  uint64_t copied = 0;
  for (size_t i = 0; i + 1 < st->nsegs; i++) {
    seg_t *s = st->segs[i];
    if (s->size <= FMT_SEG_HDR || s->live_bytes * 2 >= s->size - FMT_SEG_HDR)
      continue;
    int64_t rc = compact_one(st, i);
    if (rc < 0)
      return freed ? freed : rc;
    freed += rc;
    copied += s->size;
    if (copied >= budget)
      break;
  }
  return freed;
}
