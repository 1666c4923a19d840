/*
 * The stream store (store.h). A stub for now: the API compiles and links,
 * and every call that would touch the disk returns UV_ENOSYS; the engine
 * replaces it.
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct store_env {
  int unused;
};

void store_config_init(store_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->limits.discard = STORE_DISCARD_OLD;
  cfg->sync = STORE_SYNC_ALWAYS;
}

int store_env_new(store_env_t **out) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : UV_ENOMEM;
}

void store_env_free(store_env_t *env) {
  free(env);
}

int store_open(store_env_t *env, const char *dir, const store_config_t *cfg,
               store_t **out, store_recovery_t *recovery) {
  (void)env, (void)dir, (void)cfg, (void)recovery;
  *out = NULL;
  return UV_ENOSYS;
}

int store_close(store_t *st) {
  return st ? UV_ENOSYS : 0;
}
int store_destroy(store_t *st) {
  return st ? UV_ENOSYS : 0;
}

int store_reconfigure(store_t *st, const store_config_t *cfg) {
  (void)st, (void)cfg;
  return UV_ENOSYS;
}

int store_append(store_t *st, const store_rec_t *rec, uint64_t *seq) {
  (void)st, (void)rec;
  if (seq)
    *seq = 0;
  return UV_ENOSYS;
}

int store_flush(store_t *st) {
  return st ? UV_ENOSYS : 0;
}
int store_sync(store_t *st) {
  return st ? UV_ENOSYS : 0;
}
uint64_t store_stored_seq(const store_t *st) {
  return st ? 0 : 0;
}
uint64_t store_synced_seq(const store_t *st) {
  return st ? 0 : 0;
}

int store_get(store_t *st, uint64_t seq, store_msg_t *out) {
  (void)st, (void)seq;
  memset(out, 0, sizeof *out);
  return UV_ENOSYS;
}

int store_last_for_topic(store_t *st, const char *topic, uint32_t topic_len,
                         uint64_t *seq) {
  (void)st, (void)topic, (void)topic_len;
  *seq = 0;
  return UV_ENOSYS;
}

int store_seq_for_time(store_t *st, int64_t time_ns, uint64_t *seq) {
  (void)st, (void)time_ns;
  *seq = 0;
  return UV_ENOSYS;
}

int store_iter_open(store_t *st, uint64_t start_seq, store_iter_t **out) {
  (void)st, (void)start_seq;
  *out = NULL;
  return UV_ENOSYS;
}

int store_iter_next(store_iter_t *it, store_msg_t *out) {
  (void)it;
  memset(out, 0, sizeof *out);
  return UV_ENOSYS;
}

uint64_t store_iter_seq(const store_iter_t *it) {
  return it ? 0 : 0;
}
void store_iter_seek(store_iter_t *it, uint64_t seq) {
  (void)it, (void)seq;
}
void store_iter_close(store_iter_t *it) {
  (void)it;
}

void store_info(const store_t *st, store_info_t *out) {
  (void)st;
  memset(out, 0, sizeof *out);
}

uint64_t store_first_seq(const store_t *st) {
  return st ? 0 : 0;
}
uint64_t store_last_seq(const store_t *st) {
  return st ? 0 : 0;
}

int store_delete(store_t *st, uint64_t seq) {
  (void)st, (void)seq;
  return UV_ENOSYS;
}

int store_purge(store_t *st, const char *topic, uint32_t topic_len,
                uint64_t below_seq, uint64_t keep, uint64_t *purged) {
  (void)st, (void)topic, (void)topic_len, (void)below_seq, (void)keep;
  if (purged)
    *purged = 0;
  return UV_ENOSYS;
}

int64_t store_expire(store_t *st, int64_t now_ns) {
  (void)st, (void)now_ns;
  return UV_ENOSYS;
}
