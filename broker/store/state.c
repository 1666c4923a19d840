/*
 * State files (state.h), written by the env's sync thread.
 *
 * A file is a 24-byte header then the content:
 *   0 magic "TERNSTAT"
 *   8 u32 version (1)
 *  12 u32 checksum: low 32 bits of XXH3 (seed = content length) of the
 *     content
 *  16 u64 content length
 * written to ".NAME.tmp", fdatasync'ed, renamed over NAME, and the
 * directory fsync'ed. (Names never start with '.', so the temporary file
 * is nobody's state.)
 */
#define _GNU_SOURCE
#include "store/state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/errors.h"
#include "store/env.h"

#define STATE_MAGIC "TERNSTAT"
#define STATE_VERSION 1u
#define STATE_HDR 24u

struct store_state {
  store_env_t *env;
  store_work_t work;
  char *dir, *name;
  int dirfd;
  /* Shared with the sync thread (env->mu). */
  uint8_t *pending; /* the newest put not yet taken by the thread */
  size_t plen;
  bool has_pending;
  uint64_t put_gen, done_gen;
  int err; /* of the last write */
};

static void le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static void le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) {
  return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint32_t state_sum(const uint8_t *p, size_t n) {
  return (uint32_t)XXH3_64bits_withSeed(p, n, (XXH64_hash_t)n);
}

static int write_file(store_state_t *s, const uint8_t *data, size_t len) {
  char tmp[4096], path[4096];
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp", s->dir, s->name);
  snprintf(path, sizeof path, "%s/%s", s->dir, s->name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -errno;
  uint8_t hdr[STATE_HDR];
  memcpy(hdr, STATE_MAGIC, 8);
  le32(hdr + 8, STATE_VERSION);
  le32(hdr + 12, state_sum(data, len));
  le64(hdr + 16, len);
  int rc = store__write_all(fd, hdr, sizeof hdr, 0);
  if (rc == 0 && len)
    rc = store__write_all(fd, data, len, STATE_HDR);
  if (rc == 0 && fdatasync(fd) != 0)
    rc = -errno;
  close(fd);
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -errno;
  if (rc == 0)
    rc = store__fsync_dir(s->dirfd);
  if (rc != 0)
    unlink(tmp);
  return rc;
}

static void state_run(store_work_t *w) {
  store_state_t *s = LIST_ENTRY(w, store_state_t, work);
  uv_mutex_lock(&s->env->mu);
  uint8_t *data = s->pending;
  size_t len = s->plen;
  bool has = s->has_pending;
  uint64_t gen = s->put_gen;
  s->pending = NULL;
  s->has_pending = false;
  uv_mutex_unlock(&s->env->mu);
  int rc = has ? write_file(s, data, len) : 0;
  free(data);
  uv_mutex_lock(&s->env->mu);
  s->err = rc;
  s->done_gen = gen;
  uv_mutex_unlock(&s->env->mu);
}

static bool name_ok(const char *name) {
  return name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) < 200;
}

int store_state_open(store_env_t *env, const char *dir, const char *name,
                     store_state_t **out) {
  *out = NULL;
  if (!name_ok(name))
    return UV_EINVAL;
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return -errno;
  store_state_t *s = calloc(1, sizeof *s);
  if (!s)
    return UV_ENOMEM;
  s->env = env;
  s->dir = strdup(dir);
  s->name = strdup(name);
  s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (!s->dir || !s->name || s->dirfd < 0) {
    int rc = s->dirfd < 0 && s->dir && s->name ? -errno : UV_ENOMEM;
    if (s->dirfd >= 0)
      close(s->dirfd);
    free(s->dir);
    free(s->name);
    free(s);
    return rc;
  }
  store__work_init(&s->work, state_run);
  *out = s;
  return 0;
}

int store_state_put(store_state_t *s, const void *data, size_t len) {
  if (len > STORE_STATE_MAX)
    return TERND_ESTORE_TOOBIG;
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy)
    return UV_ENOMEM;
  if (len)
    memcpy(copy, data, len);
  uv_mutex_lock(&s->env->mu);
  free(s->pending);
  s->pending = copy;
  s->plen = len;
  s->has_pending = true;
  s->put_gen++;
  store__work_queue(s->env, &s->work);
  uv_mutex_unlock(&s->env->mu);
  return 0;
}

int store_state_flush(store_state_t *s) {
  uv_mutex_lock(&s->env->mu);
  while (s->done_gen < s->put_gen)
    uv_cond_wait(&s->env->done, &s->env->mu);
  int rc = s->err;
  uv_mutex_unlock(&s->env->mu);
  return rc;
}

int store_state_get(store_state_t *s, uint8_t **data, size_t *len) {
  *data = NULL;
  *len = 0;
  int rc = store_state_flush(s);
  if (rc != 0)
    return rc;
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", s->dir, s->name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? TERND_ESTORE_NOTFOUND : -errno;
  struct stat sb;
  uint8_t *buf = NULL;
  if (fstat(fd, &sb) != 0) {
    rc = -errno;
    goto out;
  }
  size_t size = (size_t)sb.st_size;
  if (size < STATE_HDR || size > STATE_HDR + (size_t)STORE_STATE_MAX) {
    rc = TERND_ESTORE_CORRUPT;
    goto out;
  }
  if (!(buf = malloc(size))) {
    rc = UV_ENOMEM;
    goto out;
  }
  size_t got = 0;
  while (got < size) {
    ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      rc = r < 0 ? -errno : TERND_ESTORE_CORRUPT;
      goto out;
    }
    got += (size_t)r;
  }
  if (memcmp(buf, STATE_MAGIC, 8) != 0) {
    rc = TERND_ESTORE_CORRUPT;
    goto out;
  }
  if (rd32(buf + 8) != STATE_VERSION) {
    rc = TERND_ESTORE_FORMAT;
    goto out;
  }
  uint64_t n = rd64(buf + 16);
  if (n != size - STATE_HDR ||
      rd32(buf + 12) != state_sum(buf + STATE_HDR, n)) {
    rc = TERND_ESTORE_CORRUPT;
    goto out;
  }
  memmove(buf, buf + STATE_HDR, n);
  *data = buf;
  *len = n;
  buf = NULL;
out:
  free(buf);
  close(fd);
  return rc;
}

static void state_free(store_state_t *s) {
  uv_mutex_lock(&s->env->mu);
  store__work_wait(s->env, &s->work);
  uv_mutex_unlock(&s->env->mu);
  free(s->pending);
  close(s->dirfd);
  free(s->dir);
  free(s->name);
  free(s);
}

int store_state_close(store_state_t *s) {
  if (!s)
    return 0;
  int rc = store_state_flush(s);
  state_free(s);
  return rc;
}

int store_state_remove(store_state_t *s) {
  if (!s)
    return 0;
  (void)store_state_flush(s);
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", s->dir, s->name);
  int rc = 0;
  if (unlink(path) != 0 && errno != ENOENT)
    rc = -errno;
  if (rc == 0)
    rc = store__fsync_dir(s->dirfd);
  state_free(s);
  return rc;
}

/* ---- a consumer's state ----
 * Content (little-endian):
 *   0 u32 version (1)
 *   4 u32 reserved (0)
 *   8 u64 delivered stream seq, u64 delivered consumer seq,
 *     u64 ack floor stream seq, u64 ack floor consumer seq
 *  40 u64 pending count
 *  48 pending entries, 32 bytes each: u64 stream seq, u64 consumer seq,
 *     i64 time ns, u32 deliveries, u32 reserved */
#define CS_VERSION 1u
#define CS_HDR 48u
#define CS_ENT 32u

int store_consumer_encode(const store_consumer_state_t *cs, uint8_t **out,
                          size_t *len) {
  *out = NULL;
  *len = 0;
  if (cs->npending > (STORE_STATE_MAX - CS_HDR) / CS_ENT)
    return TERND_ESTORE_TOOBIG;
  size_t n = CS_HDR + cs->npending * CS_ENT;
  uint8_t *b = calloc(1, n);
  if (!b)
    return UV_ENOMEM;
  le32(b, CS_VERSION);
  le64(b + 8, cs->delivered_stream_seq);
  le64(b + 16, cs->delivered_consumer_seq);
  le64(b + 24, cs->ack_floor_stream_seq);
  le64(b + 32, cs->ack_floor_consumer_seq);
  le64(b + 40, cs->npending);
  for (size_t i = 0; i < cs->npending; i++) {
    uint8_t *p = b + CS_HDR + i * CS_ENT;
    le64(p, cs->pending[i].stream_seq);
    le64(p + 8, cs->pending[i].consumer_seq);
    le64(p + 16, (uint64_t)cs->pending[i].time_ns);
    le32(p + 24, cs->pending[i].deliveries);
  }
  *out = b;
  *len = n;
  return 0;
}

int store_consumer_decode(const uint8_t *data, size_t len,
                          store_consumer_state_t *out) {
  memset(out, 0, sizeof *out);
  if (len < CS_HDR)
    return TERND_ESTORE_CORRUPT;
  if (rd32(data) != CS_VERSION)
    return TERND_ESTORE_FORMAT;
  uint64_t np = rd64(data + 40);
  if (np > (len - CS_HDR) / CS_ENT || CS_HDR + np * CS_ENT != len)
    return TERND_ESTORE_CORRUPT;
  store_pending_t *p = NULL;
  if (np && !(p = malloc(np * sizeof *p)))
    return UV_ENOMEM;
  for (size_t i = 0; i < np; i++) {
    const uint8_t *q = data + CS_HDR + i * CS_ENT;
    p[i].stream_seq = rd64(q);
    p[i].consumer_seq = rd64(q + 8);
    p[i].time_ns = (int64_t)rd64(q + 16);
    p[i].deliveries = rd32(q + 24);
  }
  out->delivered_stream_seq = rd64(data + 8);
  out->delivered_consumer_seq = rd64(data + 16);
  out->ack_floor_stream_seq = rd64(data + 24);
  out->ack_floor_consumer_seq = rd64(data + 32);
  out->npending = np;
  out->pending = p;
  return 0;
}

void store_consumer_state_free(store_consumer_state_t *cs) {
  if (!cs)
    return;
  free(cs->pending);
  cs->pending = NULL;
  cs->npending = 0;
}
