/*
 * The store's environment inside: the sync thread and its queue of work,
 * shared by the logs (store.c) and the state files (state.c). Not part of
 * the store's API (store.h, state.h).
 *
 * The thread sleeps on `wake` until an item is queued or a timed item is
 * due, takes items off the queue one at a time and calls their `run`
 * without the lock held; `run` takes the lock for what it shares with the
 * owner thread. `busy` is set while the item runs, so its owner can wait
 * for it (store_close, store_state_close) before freeing it.
 *
 * (struct store_env is store.h's store_env_t; this header does not include
 * store.h, so that the log and the env are not a cycle of modules.)
 */
#ifndef TERND_STORE_ENV_H
#define TERND_STORE_ENV_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/list.h"

typedef struct store_work store_work_t;
struct store_work {
  list_node_t node;  /* in env->queue while queued */
  list_node_t tnode; /* in env->timed while it has a period */
  bool queued, busy;
  int64_t due_ns; /* timed items: when run is due next (monotonic) */
  void (*run)(store_work_t *w);
};

struct store_env {
  uv_mutex_t mu;
  uv_cond_t wake; /* the thread waits on it */
  uv_cond_t done; /* owners wait on it for their work to finish */
  uv_thread_t thread;
  list_node_t queue;
  list_node_t timed;
  bool stop;
};

/* store_env_new and store_env_free (store.h) are these. */
int store__env_new(struct store_env **out);
void store__env_free(struct store_env *env);

void store__work_init(store_work_t *w, void (*run)(store_work_t *));
/* Queues w and wakes the thread. env->mu held. */
void store__work_queue(struct store_env *env, store_work_t *w);
/* Waits until w is neither queued nor running. env->mu held. */
void store__work_wait(struct store_env *env, store_work_t *w);
/* Monotonic clock, ns. */
int64_t store__mono_ns(void);
/* Wall clock, ns since the epoch. */
int64_t store__wall_ns(void);
/* fsync of a directory, write loops, and making a file durable under a
 * name: what the logs and the state files share. -errno on failure. */
int store__write_all(int fd, const void *p, size_t n, uint64_t off);
int store__fsync_dir(int dirfd);

#endif
