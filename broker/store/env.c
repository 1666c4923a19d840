/* The sync thread (env.h). */
#include "store/env.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int64_t store__mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t store__wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int store__write_all(int fd, const void *p, size_t n, uint64_t off) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = pwrite(fd, c, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (w == 0)
      return -EIO;
    c += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

int store__fsync_dir(int dirfd) {
  return fsync(dirfd) == 0 ? 0 : -errno;
}

void store__work_init(store_work_t *w, void (*run)(store_work_t *)) {
  list_init(&w->node);
  list_init(&w->tnode);
  w->queued = w->busy = false;
  w->due_ns = 0;
  w->run = run;
}

void store__work_queue(struct store_env *env, store_work_t *w) {
  if (w->queued)
    return;
  w->queued = true;
  list_insert_tail(&env->queue, &w->node);
  uv_cond_signal(&env->wake);
}

void store__work_wait(struct store_env *env, store_work_t *w) {
  while (w->queued || w->busy)
    uv_cond_wait(&env->done, &env->mu);
}

static void sync_thread(void *arg) {
  struct store_env *env = arg;
  uv_mutex_lock(&env->mu);
  for (;;) {
    /* Timed items that are due join the queue. */
    int64_t now = store__mono_ns(), next = 0;
    for (list_node_t *n = env->timed.next; n != &env->timed; n = n->next) {
      store_work_t *w = LIST_ENTRY(n, store_work_t, tnode);
      if (w->due_ns <= now)
        store__work_queue(env, w);
      else if (next == 0 || w->due_ns < next)
        next = w->due_ns;
    }
    list_node_t *first = list_first(&env->queue);
    if (first) {
      store_work_t *w = LIST_ENTRY(first, store_work_t, node);
      list_remove(first);
      w->queued = false;
      w->busy = true;
      uv_mutex_unlock(&env->mu);
      w->run(w);
      uv_mutex_lock(&env->mu);
      w->busy = false;
      uv_cond_broadcast(&env->done);
      continue;
    }
    if (env->stop)
      break;
    if (next) {
      uint64_t wait = (uint64_t)(next - now);
      (void)uv_cond_timedwait(&env->wake, &env->mu, wait);
    } else {
      uv_cond_wait(&env->wake, &env->mu);
    }
  }
  uv_mutex_unlock(&env->mu);
}

int store__env_new(struct store_env **out) {
  struct store_env *env = calloc(1, sizeof *env);
  if (!env)
    return UV_ENOMEM;
  int rc = uv_mutex_init(&env->mu);
  if (rc == 0 && (rc = uv_cond_init(&env->wake)) != 0)
    uv_mutex_destroy(&env->mu);
  if (rc == 0 && (rc = uv_cond_init(&env->done)) != 0) {
    uv_cond_destroy(&env->wake);
    uv_mutex_destroy(&env->mu);
  }
  if (rc != 0) {
    free(env);
    return rc;
  }
  list_init(&env->queue);
  list_init(&env->timed);
  if ((rc = uv_thread_create(&env->thread, sync_thread, env)) != 0) {
    uv_cond_destroy(&env->done);
    uv_cond_destroy(&env->wake);
    uv_mutex_destroy(&env->mu);
    free(env);
    return rc;
  }
  *out = env;
  return 0;
}

void store__env_free(struct store_env *env) {
  if (!env)
    return;
  uv_mutex_lock(&env->mu);
  env->stop = true;
  uv_cond_signal(&env->wake);
  uv_mutex_unlock(&env->mu);
  uv_thread_join(&env->thread);
  uv_cond_destroy(&env->done);
  uv_cond_destroy(&env->wake);
  uv_mutex_destroy(&env->mu);
  free(env);
}
