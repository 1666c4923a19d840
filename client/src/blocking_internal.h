/*
 * Private state of the blocking API (blocking.c: client, command queue,
 * publish/request/flush; blocking_sub.c: subscriptions and their queues).
 *
 * Threads: application threads append commands under `mu` and wake the loop
 * thread with `wake`; only the loop thread takes commands off the queue and
 * touches the tern_conn_t. Fields marked (mu) are shared and read or written
 * under the mutex; (loop) fields belong to the loop thread alone.
 */
#ifndef TERN_BLOCKING_INTERNAL_H
#define TERN_BLOCKING_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "conn_internal.h"
#include "tern/sync.h"

typedef enum tern__cmd_kind {
  TERN__CMD_PUB_BATCH, /* a tern__pub_batch_t: plain publishes */
  TERN__CMD_PUB_ACK,
  TERN__CMD_REQ,
  TERN__CMD_FLUSH,
  TERN__CMD_SUB,
  TERN__CMD_UNSUB,
  TERN__CMD_SUB_DESTROY,
  TERN__CMD_CLOSE
} tern__cmd_kind_t;

/*
 * One request from an application thread to the loop thread. refs is 1 for
 * fire-and-forget commands (the loop frees them) and 2 for commands someone
 * waits on; whoever drops the last reference frees it, so a caller that
 * gives up on a timeout simply walks away.
 */
typedef struct tern__cmd {
  struct tern__cmd *next;
  tern__cmd_kind_t kind;
  int refs;           /* (mu) */
  bool done;          /* (mu) */
  int result;         /* (mu) */
  uint64_t receivers; /* (mu) PUB_ACK result */
  tern_msg_t *reply;  /* (mu) REQ result, owned until taken */
  /* Publish and request: copies owned by this command's allocation. */
  const char *topic;
  const void *payload;
  size_t len;
  tern_pub_opts_t po;
  uint32_t timeout_ms; /* REQ, FLUSH */
  /* Subscription commands. */
  tern_sub_t *sub;
  uint64_t max_msgs;
  char *pattern; /* SUB: owned copies */
  char *queue;
  tern_sub_opts_t so;
} tern__cmd_t;

struct tern_sub {
  tern_client_t *cl;
  tern_asub_t *asub; /* (loop) NULL once the subscription has ended */
  uint64_t sid;      /* set before the subscribe call returns */
  uv_cond_t cond;    /* (mu) signalled when a message arrives or it ends */
  tern_msg_t *qhead, *qtail; /* (mu) */
  size_t count, bytes;       /* (mu) */
  size_t max_msgs, max_bytes;
  bool ended;                   /* (mu) no more messages will be queued */
  bool paused;                  /* (mu) this queue being full paused reading */
  uint64_t dropped;             /* (mu) */
  uint64_t unsub_max;           /* (loop) end after this many deliveries */
  int refused;                  /* (loop) the broker refused the SUB */
  struct tern_sub *prev, *next; /* (mu) the client's live subscriptions */
};

struct tern_client {
  uv_loop_t loop;
  uv_async_t wake;
  uv_thread_t thread;
  tern_conn_t *conn;   /* (loop) after connect */
  tern_options_t user; /* the application's callbacks and cb_data */
  size_t limit;        /* bytes of publishes the command queue may hold */
  uint32_t publish_timeout_ms;
  uint32_t connect_timeout_ms;
  size_t sub_queue_msgs, sub_queue_bytes;
  uint64_t max_payload; /* set before connect returns */

  uv_mutex_t mu;
  uv_cond_t cond;      /* (mu) command completions, queue room, connect */
  tern__cmd_t *head, *tail;  /* (mu) */
  size_t queued_bytes; /* (mu) payload bytes of queued publishes */
  bool connect_done;   /* (mu) */
  int connect_status;  /* (mu) */
  bool lost;           /* (mu) the connection is gone */
  bool closing;        /* (mu) tern_client_close has started */
  bool resume_wanted;  /* (mu) a queue drained: resume reading */
  int paused_subs;     /* (mu) subscriptions whose full queue paused us */
  tern_sub_t *subs;    /* (mu) */
  char last_error[TERN__ERRTEXT_MAX]; /* (mu) */

  bool blocked; /* (loop) the head publish waits for the drain callback */

  bool offline;             /* (mu) lost, reconnecting */
  uint64_t offline_refused; /* (mu) publishes that timed out meanwhile */

  struct tern__pub_batch *free_batches; /* (mu) for reuse */
  int nfree_batches;                    /* (mu) */
  tp_buf_t pub_scratch;                 /* (mu) headers of a publish */
};

/*
 * A run of plain publishes as one command: their PUB frames back to back.
 * Publishers append to it while it is the queue's tail and not sealed.
 */
typedef struct tern__pub_batch {
  tern__cmd_t cmd;              /* first: the queue links batches as commands */
  tp_buf_t bytes;         /* (mu until sealed) the frames */
  tern__pubspan_t *spans; /* (mu until sealed) one per frame */
  size_t nspans, spans_cap;
  size_t taken; /* (loop) frames already handed to the connection */
  bool sealed;  /* (mu) the loop took it: append no more */
  struct tern__pub_batch *next_free; /* (mu) */
} tern__pub_batch_t;

/* pub_batch.c */
/* Encodes p into the tail batch, or a new one queued at the tail (then
 * *wake: the caller wakes the loop after unlocking); counts its payload in
 * queued_bytes. mu held. 0, TERN_ENOMEM, TERN_EINVAL. */
int tern__pub_batch_add_locked(tern_client_t *cl, tern__pub_t *p, bool *wake);
/* Loop thread, the batch sealed at the head: hands what fits to the
 * connection. *left gets the payload bytes that left the batch. 0 (all
 * gone: sent or dropped, last_error says why) or TERN__EXEC_RETRY (the
 * rest waits for the drain callback). */
int tern__pub_batch_exec(tern_client_t *cl, tern__pub_batch_t *b, bool closing,
                         uint64_t *left);
/* Back to the free list (or freed). mu held. */
void tern__pub_batch_release_locked(tern_client_t *cl, tern__pub_batch_t *b);
/* Frees the free list and the scratch buffer (client teardown). */
void tern__pub_batches_free(tern_client_t *cl);

/* blocking.c */
/* Appends cmd and wakes the loop thread. */
void tern__cmd_enqueue(tern_client_t *cl, tern__cmd_t *cmd);
/* Loop thread: records the result and drops the loop's reference. */
void tern__cmd_complete(tern_client_t *cl, tern__cmd_t *cmd, int result);
/* Application thread: waits (timeout_ms < 0: forever) for the result, takes
 * *reply if asked, and drops the caller's reference. */
/* tern_client_request with the headers of hdrs (NULL: none). */
int tern__client_request_hdrs(tern_client_t *cl, const char *topic,
                              const void *payload, size_t len,
                              const tern_pub_opts_t *hdrs, int timeout_ms,
                              tern_msg_t **reply);

int tern__cmd_wait(tern_client_t *cl, tern__cmd_t *cmd, int timeout_ms,
                   tern_msg_t **reply, uint64_t *receivers);
/* Loop thread: asks the loop to resume reading (see tern__bsub_*). */
void tern__client_wake(tern_client_t *cl);

/* exec() outcomes besides a result to complete the command with. */
#define TERN__EXEC_RETRY 1   /* stays at the head until the drain callback */
#define TERN__EXEC_PENDING 2 /* a connection callback completes it later */

/* blocking_sub.c: runs a subscription command on the loop thread; returns
 * the result or TERN__EXEC_PENDING. */
int tern__bsub_exec(tern_client_t *cl, tern__cmd_t *cmd);
/* Loop thread: the connection is gone; end every subscription (mu held). */
void tern__bsub_end_all_locked(tern_client_t *cl);
/* Frees a subscription's queue and itself (client teardown, no lock). */
void tern__bsub_free(tern_sub_t *sub);

#endif
