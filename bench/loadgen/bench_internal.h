/*
 * Shared between the files of the load generator: the state of one run and
 * of its workers (one thread and one connection per publisher/subscriber).
 */
#ifndef TERN_BENCH_INTERNAL_H
#define TERN_BENCH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "conn.h"
#include "histogram.h"
#include "loadgen.h"

struct bench_run;

typedef struct bench_worker {
  struct bench_run *run;
  int index;
  bool is_pub;
  pthread_t thread;
  bool started;
  bench_conn_t conn;
  uint64_t msgs;      /* sent (pub) or received (sub) */
  uint64_t bytes;     /* payload bytes of those */
  uint64_t t_last;    /* ns: publisher's closing pong / last message received */
  bench_hist_t *hist; /* latency samples, NULL when not measured */
  bool failed;
  char err[300];
} bench_worker_t;

typedef struct bench_run {
  const bench_opts_t *o;
  pthread_barrier_t ready; /* every worker connected and subscribed */
  pthread_barrier_t go;    /* start_ns is set: publish */
  uint64_t start_ns;
  bool setup_failed; /* someone could not connect or subscribe */
  atomic_int abort;
  atomic_int pubs_left;
  atomic_uint_fast64_t pubs_done_ns;
  atomic_uint_fast64_t received; /* over all subscribers (queue groups) */
  uint64_t expected_per_sub;     /* plain subscriptions */
  uint64_t expected_total;       /* all subscribers together */
  bench_worker_t *pubs;
  bench_worker_t *subs;
  struct ttls_ctx *tls; /* o->tls: the client context every conn shares */
} bench_run_t;

/* Handshake mode (o->connects): a publisher's thread body (worker.c). */
void *bench_connect_thread(void *arg);

/* Thread bodies (worker.c). arg is a bench_worker_t. */
void *bench_pub_thread(void *arg);
void *bench_sub_thread(void *arg);
void *bench_req_thread(void *arg);
void *bench_rep_thread(void *arg);

/* Prints the run's results (report.c). Returns 0, or 1 on loss/failure. */
int bench_report(const bench_run_t *run, FILE *out);

#endif
