/*
 * The server's state: the broker_t (what every event loop shares), its
 * worker_t (one loop) and what is around them (listener, signals,
 * monitoring). The server's parts (ops.h, http.h, metrics.h, sysevents.h)
 * read it; only server.c starts and stops them, in its order, so none of
 * them includes server.h.
 */
#ifndef TERND_SERVER_STATE_H
#define TERND_SERVER_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "delivery/worker.h"
#include "server/fdlimit.h"
#include "tern_proto/buf.h"

/* A worker beyond the first (--workers N > 1): its own loop and thread,
 * and the descriptors the listener handed to it. */
typedef struct worker_thread {
  worker_t w;
  uv_loop_t loop;
  uv_thread_t tid;
  bool started;
  bool goaway_sent; /* shutdown: its connections were told */
  uv_mutex_t inbox_lock;
  int *inbox; /* accepted descriptors to open on this loop */
  size_t ninbox, inbox_cap;
} worker_thread_t;

typedef struct server {
  broker_t broker;
  worker_t worker; /* worker 0, on the caller's loop; worker.broker and
                      worker.server point back here */
  struct cluster *cluster; /* routes to other nodes (cluster/), or NULL */
  worker_t *workers[BROKER_MAX_WORKERS]; /* [0] is &worker */
  worker_thread_t *threads;              /* [nworkers]; [0] unused */
  unsigned next_worker;                  /* round-robin for the listener */
  /* Shutdown and pauses across workers (server.c). */
  _Atomic int shutdown_req, stop_req, drained, stopped;
  bool *drained_flag; /* [nworkers], each worker's own */
  uv_mutex_t pause_lock;
  uv_cond_t pause_cv;
  _Atomic bool pause_req;
  int paused;
  uint64_t pause_gen; /* pauses ended so far */

  fd_acceptor_t listener; /* polled once listening (fdlimit.h) */
  struct tls_listener *tls; /* its TLS (transport/tls.h); NULL: none */
  uv_signal_t sigint, sigterm;
  bool listening;
  bool shutting_down;
  int handles_open;
  /* Connections (open or closing) that the open-file limit leaves room
   * for beside the monitoring port; 0 = no limit known. */
  size_t fd_budget;
  tp_buf_t err_no_fd; /* the encoded ERR 11 sent when it is reached */

  /* Operations: monitoring, reload, $SYS (ops.h). */
  int argc; /* the command line, read again on SIGHUP */
  char **argv;
  uint64_t started_ms; /* uv_now at init */
  int64_t started_unix;
  int http_port_bound; /* 0: monitoring off */
  struct http_server *http;
  struct sysevents *sys;
  uv_signal_t sighup;
  /* Set by server_init: encodes HELLO again (a reload changed whether
   * credentials are asked for). 0 or TP_ENOMEM. */
  int (*hello_update)(struct server *srv);
  /* Set by server_init: every worker but the first waits (between loop
   * turns) until resume_others, so their state may be read or changed
   * from worker 0 (monitoring, reload). Nothing with one worker. */
  void (*pause_others)(struct server *srv);
  void (*resume_others)(struct server *srv);
  /* Durable streams (stream/streams.h); NULL without a data_dir. */
  struct streams *streams;
} server_t;

#endif
