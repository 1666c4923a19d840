/*
 * Micro-benchmark of the stream store (broker/store/), not a test:
 *
 *   build/bin/store_bench append DIR COUNT SIZE always|interval|never
 *                        [BATCH [WINDOW]]
 *   build/bin/store_bench replay DIR
 *   build/bin/store_bench open DIR
 *
 * append: COUNT records of SIZE payload bytes (topic "bench.<i % 16>") into
 * a fresh log in DIR, BATCH appends between flushes (what a broker's loop
 * turn would bring; 64), at most WINDOW records appended but not yet stored
 * (a publisher's window of outstanding acks; 10000; 1 = one at a time).
 * The time runs until the last record is stored under the policy (with
 * always: fdatasync'ed). Prints msgs/s, fsyncs' worth (stored callbacks),
 * and the disk bytes per record after close.
 * replay: reads every record of the log in DIR with one iterator, or with
 * ITERATORS (a fan-out: each reads every record; msgs/s counts them all).
 * open: opens the log in DIR (recovery scan, index rebuild) and closes it;
 * with "cold" after DIR, its files are first dropped from the page cache
 * (posix_fadvise DONTNEED, after an fdatasync), so the scan reads the disk.
 * One JSON line each.
 */
#include <inttypes.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <uv.h>

#include "base/errors.h"
#include "store/store.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static atomic_uint_fast64_t g_callbacks;
static void on_stored(void *ctx, store_t *st, uint64_t seq) {
  (void)ctx, (void)st, (void)seq;
  atomic_fetch_add(&g_callbacks, 1);
}

static uint64_t dir_bytes(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  uint64_t n = 0;
  struct dirent *de;
  char p[4096];
  while ((de = readdir(d)) != NULL) {
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    if (de->d_name[0] != '.' && stat(p, &sb) == 0 && S_ISREG(sb.st_mode))
      n += (uint64_t)sb.st_size;
  }
  closedir(d);
  return n;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "store_bench: %s: %s\n", what, ternd_strerror(rc));
  exit(1);
}

static int do_append(store_env_t *env, const char *dir, uint64_t count,
                     uint32_t size, const char *policy, uint64_t batch,
                     uint64_t window) {
  store_config_t cfg;
  store_config_init(&cfg);
  if (!strcmp(policy, "always"))
    cfg.sync = STORE_SYNC_ALWAYS;
  else if (!strcmp(policy, "interval"))
    cfg.sync = STORE_SYNC_INTERVAL;
  else if (!strcmp(policy, "never"))
    cfg.sync = STORE_SYNC_NEVER;
  else
    die("policy", UV_EINVAL);
  cfg.on_stored = on_stored;
  store_t *st;
  int rc = store_open(env, dir, &cfg, &st, NULL);
  if (rc)
    die("open", rc);
  if (store_last_seq(st) != 0) {
    fprintf(stderr, "store_bench: %s is not empty\n", dir);
    return 1;
  }
  uint8_t *data = malloc(size ? size : 1);
  memset(data, 'p', size);
  char topics[16][16];
  uint32_t tlen[16];
  for (int i = 0; i < 16; i++)
    tlen[i] = (uint32_t)snprintf(topics[i], sizeof topics[i], "bench.%d", i);
  double t0 = now_s();
  uint64_t i = 0;
  while (i < count) {
    uint64_t n = batch;
    if (n > count - i)
      n = count - i;
    for (uint64_t k = 0; k < n; k++, i++) {
      store_rec_t r = {.topic = topics[i % 16],
                       .topic_len = tlen[i % 16],
                       .data = data,
                       .len = size};
      if ((rc = store_append(st, &r, NULL)) != 0)
        die("append", rc);
    }
    if ((rc = store_flush(st)) != 0)
      die("flush", rc);
    while (store_last_seq(st) - store_stored_seq(st) >= window)
      sched_yield(); /* the publisher waits for acks */
  }
  while (store_stored_seq(st) < count)
    sched_yield();
  double dt = now_s() - t0;
  store_info_t in;
  store_info(st, &in);
  rc = store_close(st);
  if (rc)
    die("close", rc);
  uint64_t disk = dir_bytes(dir);
  printf("{\"op\":\"append\",\"count\":%" PRIu64 ",\"size\":%u,\"sync\":\"%s\","
         "\"batch\":%" PRIu64 ",\"window\":%" PRIu64
         ",\"seconds\":%.3f,\"msgs_per_s\":%.0f,\"MB_per_s\":%.1f,"
         "\"stored_callbacks\":%" PRIu64 ",\"disk_bytes\":%" PRIu64
         ",\"disk_bytes_per_msg\":%.1f}\n",
         count, size, policy, batch, window, dt, (double)count / dt,
         (double)in.bytes / dt / 1e6, (uint64_t)atomic_load(&g_callbacks), disk,
         (double)disk / (double)count);
  free(data);
  return 0;
}

static int do_replay(store_env_t *env, const char *dir, int iters) {
  store_config_t cfg;
  store_config_init(&cfg);
  store_t *st;
  int rc = store_open(env, dir, &cfg, &st, NULL);
  if (rc)
    die("open", rc);
  store_iter_t *it[64];
  for (int i = 0; i < iters; i++)
    if ((rc = store_iter_open(st, 0, &it[i])) != 0)
      die("iter", rc);
  double t0 = now_s();
  store_msg_t m;
  uint64_t n = 0, bytes = 0;
  /* Round robin, 64 records per iterator per turn: consumers at about the
   * same place, as a fan-out reads. */
  for (int live = iters; live > 0;) {
    live = 0;
    for (int i = 0; i < iters; i++) {
      int k = 0;
      while (k < 64 && (rc = store_iter_next(it[i], &m)) == 1) {
        n++;
        bytes += m.len;
        k++;
      }
      if (rc < 0)
        die("iter_next", rc);
      live += k == 64;
    }
  }
  double dt = now_s() - t0;
  for (int i = 0; i < iters; i++)
    store_iter_close(it[i]);
  store_close(st);
  printf("{\"op\":\"replay\",\"iterators\":%d,\"count\":%" PRIu64
         ",\"seconds\":%.3f,\"msgs_per_s\":%.0f,\"payload_MB_per_s\":%.1f}\n",
         iters, n, dt, (double)n / dt, (double)bytes / dt / 1e6);
  return 0;
}

static void drop_cache(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *de;
  char p[4096];
  while ((de = readdir(d)) != NULL) {
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    int fd = open(p, O_RDONLY);
    if (fd < 0)
      continue;
    (void)fdatasync(fd);
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
  closedir(d);
}

static int do_open(store_env_t *env, const char *dir, bool cold) {
  if (cold)
    drop_cache(dir);
  store_config_t cfg;
  store_config_init(&cfg);
  store_t *st;
  store_recovery_t rec;
  double t0 = now_s();
  int rc = store_open(env, dir, &cfg, &st, &rec);
  double dt = now_s() - t0;
  if (rc)
    die("open", rc);
  store_close(st);
  printf("{\"op\":\"open\",\"cold\":%s,\"records\":%" PRIu64
         ",\"seconds\":%.3f,\"records_per_s\":%.0f}\n",
         cold ? "true" : "false", rec.records, dt, (double)rec.records / dt);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr,
            "usage: store_bench append DIR COUNT SIZE always|interval|never "
            "[BATCH [WINDOW]]\n"
            "       store_bench replay DIR [ITERATORS]\n"
            "       store_bench open DIR [cold]\n");
    return 2;
  }
  store_env_t *env;
  int rc = store_env_new(&env);
  if (rc)
    die("env", rc);
  if (!strcmp(argv[1], "append") && argc >= 6) {
    uint64_t batch = argc > 6 ? strtoull(argv[6], NULL, 10) : 64;
    uint64_t window = argc > 7 ? strtoull(argv[7], NULL, 10) : 10000;
    rc = do_append(env, argv[2], strtoull(argv[3], NULL, 10),
                   (uint32_t)strtoul(argv[4], NULL, 10), argv[5],
                   batch ? batch : 1, window ? window : 1);
  } else if (!strcmp(argv[1], "replay")) {
    int iters = argc > 3 ? atoi(argv[3]) : 1;
    rc = do_replay(env, argv[2], iters < 1 ? 1 : iters > 64 ? 64 : iters);
  } else if (!strcmp(argv[1], "open")) {
    rc = do_open(env, argv[2], argc > 3 && !strcmp(argv[3], "cold"));
  } else {
    fprintf(stderr, "store_bench: unknown command %s\n", argv[1]);
    rc = 2;
  }
  store_env_free(env);
  return rc;
}
