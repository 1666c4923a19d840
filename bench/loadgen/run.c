/*
 * The run's orchestration and its exit status.
 *
 * A run: every subscriber connects, subscribes and sees its broker's pong
 * (so its subscription is live); every publisher connects; all meet at the
 * `ready` barrier; the main thread stamps the start and releases them at
 * `go`. Publishers then send as fast as the socket takes it (or at --rate),
 * and end with a ping/pong so that their time covers the broker taking the
 * messages in. Subscribers stop at their expected count, or --timeout after
 * the last publisher finished, and the shortfall is reported as loss.
 */
#include "loadgen.h"

#include <stdlib.h>
#include <string.h>

#include "bench_internal.h"
#include "tern_tls/tls.h"

static void init_workers(bench_run_t *run, bench_worker_t *ws, int n,
                         bool is_pub, bool timed) {
  for (int i = 0; i < n; i++) {
    ws[i].run = run;
    ws[i].index = i;
    ws[i].is_pub = is_pub;
    ws[i].conn.fd = -1;
    if (timed) {
      ws[i].hist = malloc(sizeof(bench_hist_t));
      if (ws[i].hist != NULL) {
        bench_hist_init(ws[i].hist);
      }
    }
  }
}

static void free_workers(bench_worker_t *ws, int n) {
  for (int i = 0; i < n; i++) {
    bench_conn_close(&ws[i].conn);
    free(ws[i].hist);
  }
  free(ws);
}

/* Handshake mode: publishers connect and close o->connects times each. */
static int connect_run(bench_run_t *run) {
  const bench_opts_t *o = run->o;
  init_workers(run, run->pubs, o->pubs, true, false);
  unsigned parties = (unsigned)(o->pubs + 1);
  pthread_barrier_init(&run->ready, NULL, parties);
  pthread_barrier_init(&run->go, NULL, parties);
  for (int i = 0; i < o->pubs; i++) {
    if (pthread_create(&run->pubs[i].thread, NULL, bench_connect_thread,
                       &run->pubs[i]) != 0) {
      fprintf(stderr, "tern bench: cannot start thread %d\n", i);
      exit(1);
    }
    run->pubs[i].started = true;
  }
  pthread_barrier_wait(&run->ready);
  run->start_ns = bench_now_ns();
  pthread_barrier_wait(&run->go);
  uint64_t done = 0, resumed = 0;
  for (int i = 0; i < o->pubs; i++) {
    pthread_join(run->pubs[i].thread, NULL);
    done += run->pubs[i].msgs;
    resumed += run->pubs[i].resumed;
  }
  double secs = (double)(bench_now_ns() - run->start_ns) / 1e9;
  int rc =
      atomic_load(&run->abort) != 0 || done != o->connects * (uint64_t)o->pubs;
  if (o->json) {
    printf("{\"broker\":\"%s\",\"tls\":%s,\"connects\":%llu,"
           "\"resumed\":%llu,"
           "\"seconds\":%.3f,\"connects_per_sec\":%.0f,\"lost\":%llu,"
           "\"failed_clients\":%d}\n",
           o->ad->name, o->tls ? "true" : "false", (unsigned long long)done,
           (unsigned long long)resumed, secs,
           secs > 0 ? (double)done / secs : 0.0,
           (unsigned long long)(o->connects * (uint64_t)o->pubs - done), rc);
  } else {
    printf("%s%s: %llu connections (connect%s, CONNECT, ping/pong, close) "
           "in %.3f s: %.0f/s (%llu TLS sessions resumed)\n",
           o->ad->name, o->tls ? " over TLS" : "", (unsigned long long)done,
           o->tls ? ", TLS handshake" : "", secs,
           secs > 0 ? (double)done / secs : 0.0, (unsigned long long)resumed);
  }
  fflush(stdout);
  pthread_barrier_destroy(&run->ready);
  pthread_barrier_destroy(&run->go);
  free_workers(run->pubs, o->pubs);
  free(run->subs);
  ttls_ctx_unref(run->tls);
  return rc;
}

int bench_run(const bench_opts_t *o) {
  bench_run_t run;
  memset(&run, 0, sizeof(run));
  run.o = o;
  atomic_init(&run.abort, 0);
  atomic_init(&run.pubs_left, o->pubs);
  atomic_init(&run.pubs_done_ns, 0);
  atomic_init(&run.received, 0);
  run.expected_per_sub = (uint64_t)o->pubs * o->msgs;
  run.expected_total = o->queue ? run.expected_per_sub
                                : run.expected_per_sub * (uint64_t)o->subs;
  run.pubs = calloc((size_t)o->pubs, sizeof(bench_worker_t));
  run.subs = calloc((size_t)o->subs + 1, sizeof(bench_worker_t));
  if (run.pubs == NULL || run.subs == NULL) {
    fprintf(stderr, "tern bench: out of memory\n");
    free(run.pubs);
    free(run.subs);
    return 1;
  }
  if (o->tls) {
    char why[512];
    ttls_ctx_opts_t to = {
        .ca_file = o->tls_ca, .cert_file = o->tls_cert, .key_file = o->tls_key};
    if (ttls_ctx_create(&run.tls, &to, why, sizeof(why)) != 0) {
      fprintf(stderr, "tern bench: TLS: %s\n", why);
      free(run.pubs);
      free(run.subs);
      return 1;
    }
  }
  if (o->connects > 0) {
    return connect_run(&run);
  }
  init_workers(&run, run.pubs, o->pubs, true, o->req);
  init_workers(&run, run.subs, o->subs, false, o->rate > 0);
  unsigned parties = (unsigned)(o->pubs + o->subs + 1);
  pthread_barrier_init(&run.ready, NULL, parties);
  pthread_barrier_init(&run.go, NULL, parties);

  void *(*pub_fn)(void *) = o->req ? bench_req_thread : bench_pub_thread;
  void *(*sub_fn)(void *) = o->req ? bench_rep_thread : bench_sub_thread;
  int rc = 0;
  for (int i = 0; i < o->subs + o->pubs; i++) {
    bool pub = i >= o->subs;
    bench_worker_t *w = pub ? &run.pubs[i - o->subs] : &run.subs[i];
    if (pthread_create(&w->thread, NULL, pub ? pub_fn : sub_fn, w) != 0) {
      /* Barriers count every party: without a thread, nobody may wait. */
      fprintf(stderr, "tern bench: cannot start thread %d\n", i);
      exit(1);
    }
    w->started = true;
  }
  pthread_barrier_wait(&run.ready);
  run.setup_failed = atomic_load(&run.abort) != 0;
  if (o->settle_ms > 0) {
    /* Interest travels between the nodes of a cluster after SUB. */
    struct timespec ts = {o->settle_ms / 1000,
                          (long)(o->settle_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  run.start_ns = bench_now_ns();
  pthread_barrier_wait(&run.go);
  for (int i = 0; i < o->pubs; i++) {
    pthread_join(run.pubs[i].thread, NULL);
  }
  for (int i = 0; i < o->subs; i++) {
    pthread_join(run.subs[i].thread, NULL);
  }
  rc = bench_report(&run, stdout);
  fflush(stdout);
  pthread_barrier_destroy(&run.ready);
  pthread_barrier_destroy(&run.go);
  free_workers(run.pubs, o->pubs);
  free_workers(run.subs, o->subs);
  ttls_ctx_unref(run.tls);
  return rc;
}

void bench_opts_init(bench_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->ad = &bench_adapter_tern;
  strcpy(o->host, "127.0.0.1");
  o->port = bench_adapter_tern.default_port;
  o->pubs = 1;
  o->subs = 0;
  o->msgs = 100000;
  o->size = 128;
  o->subject = "bench.t";
  o->timeout_ms = 10000;
  o->batch = 64u * 1024u;
}
