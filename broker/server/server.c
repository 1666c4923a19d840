/*
 * The server: loop handles, listener, the before-sleep hook, stall checks
 * and graceful shutdown (see server.h).
 */
#include "server/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/log.h"
#include "cluster/cluster.h"
#include "delivery/handoff.h"
#include "delivery/router.h"
#include "server/config_file.h"
#include "server/cpus.h"
#include "server/http.h"
#include "server/ops.h"
#include "server/sdnotify.h"
#include "server/sysevents.h"
#include "session/auth.h"
#include "session/conn.h"
#include "session/pressure.h"
#include "stream/stream_def.h"
#include "stream/streams.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"
#include "transport/tcp.h"
#include "transport/tls.h"

/* Kept for reuse: enough for a busy loop turn, small next to the data.
 * One completed 1 MiB write releases ~40k small bodies at once. */
#define KEEP_BUFS 65536
#define KEEP_BUF_BYTES (8u * 1024u * 1024u)
#define KEEP_ENTRIES 65536

static void close_server_handle(server_t *srv, uv_handle_t *h);

/* ---- the before-sleep hook --------------------------------------------- */

static void on_spin(uv_idle_t *h) {
  (void)h;
}

/* What a worker does with what other workers hand it (handoff.h). */
static const handoff_ops_t handoff_ops = {
    .msg = router_take_handed,
    .block = conn_handoff_block,
    .unblock = conn_handoff_unblock,
    .forget = conn_handoff_forget,
    .wait = router_take_wait,
    .fence_ack = conn_handoff_fence_ack,
    .err = conn_handoff_err,
    .lost = router_take_lost,
};

static void on_before_sleep(uv_prepare_t *p) {
  worker_t *w = p->data;
  list_node_t local, *n;
  bool multi = broker_multi(w->broker);

  /* 0. What other workers handed over since the last wake-up. */
  if (multi)
    handoff_drain(w, &handoff_ops);
  /* 1. Publishers released from backpressure read their buffered frames. */
  list_move_all(&local, &w->resume_list);
  while ((n = list_first(&local)) != NULL) {
    list_remove(n);
    conn_resume(LIST_ENTRY(n, conn_t, resume_link));
  }
  /* 1b. Memory pressure (pending_gate.h): its state, and how much each
   * connection may write this turn. */
  w->write_cap = pressure_check(w);
  /* 2. Closing connections give up their subscriptions, outside any
   * fan-out. */
  while ((n = list_first(&w->close_list)) != NULL)
    conn_teardown(LIST_ENTRY(n, conn_t, close_link));
  /* 3. One gathered write per connection with output. */
  list_move_all(&local, &w->flush_list);
  while ((n = list_first(&local)) != NULL) {
    list_remove(n);
    conn_flush(LIST_ENTRY(n, conn_t, ep.flush_link));
  }
  /* 4. Several workers: what the others should know (queue groups that
   * drained, this worker's pending bytes), and the turn's hand-overs made
   * visible, one wake-up per worker handed to. */
  if (multi) {
    router_refresh_groups(w);
    atomic_store_explicit(&w->pending_shared,
                          outq_pool_pending_bytes(w->entries),
                          memory_order_relaxed);
    w->pending_others =
        worker_pending_total(w) - outq_pool_pending_bytes(w->entries);
    handoff_flush(w);
  }
  /* Work left for the next turn must not wait for an unrelated event. */
  bool more = !list_empty(&w->resume_list) || !list_empty(&w->flush_list) ||
              !list_empty(&w->close_list);
  if (more && !uv_is_active((uv_handle_t *)&w->spin))
    uv_idle_start(&w->spin, on_spin);
  else if (!more && uv_is_active((uv_handle_t *)&w->spin))
    uv_idle_stop(&w->spin);
}

/*
 * A subscription that has kept publishers blocked for stall_timeout is a
 * dead or hopelessly slow consumer: it is closed like `disconnect`, which
 * releases its publishers.
 */
/*
 * A frame that started frame_timeout_ms ago and is still not whole holds
 * its read buffer (up to max_frame) for nothing: a client that sends the
 * start of a large frame and stops would keep it until the heartbeat gave
 * up (three intervals). The list is oldest first.
 */
static void check_partial_frames(worker_t *w, uint64_t now) {
  uint64_t limit = w->broker->cfg.frame_timeout_ms;
  list_node_t *n;
  while (limit > 0 && (n = list_first(&w->partial_list)) != NULL) {
    conn_t *c = LIST_ENTRY(n, conn_t, partial_link);
    if (now - c->partial_since < limit)
      break;
    list_remove(n);
    w->stats.frame_timeouts++;
    LOG(LOG_INFO,
        "conn %llu (%s): a frame started %llu ms ago is still not whole "
        "(%zu bytes of it held), closing",
        (unsigned long long)c->id, c->addr,
        (unsigned long long)(now - c->partial_since), c->rx.len);
    conn_fail(c, TP_WIRE_STALE, "frame not completed within frame_timeout_ms");
  }
}

static void on_stall_check(uv_timer_t *t) {
  worker_t *w = t->data;
  uint64_t now = uv_now(w->loop);
  if (w->wid == 0)
    log_flush_suppressed(false);
  check_partial_frames(w, now);
  pressure_stall_check(w, now);
  if (w->wid == 0 && broker_multi(w->broker)) {
    uv_mutex_lock(&w->broker->retained_lock);
    retained_expire(w->broker->retained);
    uv_mutex_unlock(&w->broker->retained_lock);
  }
  /* conn_fail releases the subscriber's queued entries, which may unlink
   * any number of subscriptions from this list: start over after each. */
  for (;;) {
    sub_t *stalled = NULL;
    for (list_node_t *n = w->stalled_subs.next; n != &w->stalled_subs;
         n = n->next) {
      sub_t *s = LIST_ENTRY(n, sub_t, stalled_link);
      if (now - s->blocked_since >= w->broker->cfg.stall_timeout_ms &&
          s->conn->state == CONN_ACTIVE) {
        stalled = s;
        break;
      }
    }
    if (stalled == NULL)
      return;
    w->stats.slow_consumers++;
    LOG(LOG_INFO,
        "conn %llu (%s): sid %llu blocked publishers for %llu ms, "
        "closing as a slow consumer",
        (unsigned long long)stalled->conn->id, stalled->conn->addr,
        (unsigned long long)stalled->sid,
        (unsigned long long)(now - stalled->blocked_since));
    conn_fail(stalled->conn, TP_WIRE_SLOW_CONSUMER, "slow consumer (stalled)");
  }
}

/* ---- accept ------------------------------------------------------------ */

/*
 * A client that does not fit in the descriptors left: ERR 11 straight on
 * the socket (a few bytes always fit in an empty send buffer), what it
 * sent already is read away so that the close is a FIN and not a reset
 * that could discard the ERR, and the caller closes it.
 */
static void refuse_no_fd(server_t *srv, int fd) {
  srv->worker.stats.conns_refused_fd++;
  ssize_t w = send(fd, srv->err_no_fd.data, srv->err_no_fd.len,
                   MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)w;
  shutdown(fd, SHUT_WR);
  char sink[4096];
  for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
    ; /* bounded: a client that keeps sending gets its reset */
  LOG(LOG_WARN,
      "connection refused (ERR 11): out of file descriptors, %zu "
      "connections open, open-file limit %ld",
      srv->worker.nconns, fdlimit_current());
}

static void on_refuse(fd_acceptor_t *a, int fd) {
  refuse_no_fd(a->data, fd);
}

/* The one place an accepted descriptor becomes a connection of worker w,
 * on w's loop: the transport is chosen here (TLS when the listener has a
 * certificate, whatever the worker). */
static void open_conn(worker_t *w, int fd) {
  server_t *srv = w->server;
  transport_t *tr;
  int rc = srv->tls != NULL ? tls_transport_open(w->loop, fd, srv->tls, &tr)
                            : tcp_transport_open(w->loop, fd, &tr);
  if (rc == 0)
    rc = conn_accept(w, tr);
  if (rc != 0)
    LOG(LOG_WARN, "accept: %s", ternd_strerror(rc));
}

/* Connections open or closing on every worker (each worker's own count is
 * exact; the others' as the broker counts live ones). */
static size_t conns_now(const server_t *srv) {
  if (!broker_multi(&srv->broker))
    return srv->worker.nconns;
  return (size_t)atomic_load_explicit(&srv->broker.nlive, memory_order_relaxed);
}

/*
 * The listener is on worker 0, which hands each accepted descriptor to the
 * next worker in turn (its inbox, and one wake-up): every worker gets the
 * same share of connections, whatever their addresses (SO_REUSEPORT's
 * hash of the 4-tuple can put several of a few connections on one).
 */
static void on_accept(fd_acceptor_t *a, int fd) {
  server_t *srv = a->data;
  if (srv->shutting_down) {
    close(fd);
    return;
  }
  if (srv->fd_budget > 0 && conns_now(srv) >= srv->fd_budget) {
    refuse_no_fd(srv, fd);
    close(fd);
    return;
  }
  int n = srv->broker.nworkers;
  int to = n > 1 ? (int)(srv->next_worker++ % (unsigned)n) : 0;
  if (to == 0) {
    open_conn(&srv->worker, fd);
    return;
  }
  worker_thread_t *t = &srv->threads[to];
  uv_mutex_lock(&t->inbox_lock);
  if (t->ninbox == t->inbox_cap) {
    size_t cap = t->inbox_cap ? t->inbox_cap * 2 : 16;
    int *in = realloc(t->inbox, cap * sizeof *in);
    if (in == NULL) {
      uv_mutex_unlock(&t->inbox_lock);
      close(fd);
      return;
    }
    t->inbox = in;
    t->inbox_cap = cap;
  }
  t->inbox[t->ninbox++] = fd;
  uv_mutex_unlock(&t->inbox_lock);
  uv_async_send(&t->w.wake);
}

/*
 * How many connections the open-file limit leaves room for: the limit,
 * less what is open once listening (loop, listeners, spares, stdio), less
 * the monitoring port's clients and a margin for the odd file (a reload
 * reads the configuration). Counted in open and closing connections,
 * each one descriptor.
 */
static void set_fd_budget(server_t *srv) {
  long limit = fdlimit_current();
  int open_now = fdlimit_open_count();
  if (limit <= 0 || open_now < 0)
    return;
  long http = srv->http != NULL ? (long)http_client_limit(srv->http) : 0;
  long budget = limit - open_now - http - 16;
  if (budget < 1)
    budget = 1;
  srv->fd_budget = (size_t)budget;
  if (srv->broker.cfg.max_connections == 0 ||
      srv->broker.cfg.max_connections > srv->fd_budget)
    LOG(LOG_INFO,
        "open-file limit %ld: at most %zu client connections (%ld "
        "descriptors kept for monitoring and spare)",
        limit, srv->fd_budget, limit - budget);
}

/* The monitoring HTTP server, when http_port is set. 0 or a libuv error. */
static int start_monitoring(server_t *srv) {
  const config_t *cfg = &srv->broker.cfg;
  if (cfg->http_port == 0)
    return 0;
  const char *host = cfg->http_host[0] ? cfg->http_host : cfg->host;
  int rc =
      http_start(&srv->http, srv, host, cfg->http_port, &srv->http_port_bound);
  if (rc != 0) {
    LOG(LOG_ERROR, "cannot listen for monitoring on %s:%d: %s", host,
        cfg->http_port, uv_strerror(rc));
    return rc;
  }
  bool tls = http_tls(srv->http);
  LOG(LOG_INFO,
      "monitoring on %s://%s:%d/%s (healthz, metrics, varz, "
      "connz, subz); open to anyone: %s",
      tls ? "https" : "http", host, srv->http_port_bound,
      tls && !cfg->http_tls_required ? " and plain http" : "",
      cfg->http_open_paths[0] ? cfg->http_open_paths : "none");
  if (cfg->http_token[0] != '\0')
    LOG(LOG_INFO, "monitoring: the other pages need the http_token");
  else if (cfg->allow_anonymous && !config_is_loopback(host))
    LOG(LOG_WARN,
        "monitoring: no http_token and allow_anonymous: every page is "
        "open to anyone who can reach %s:%d",
        host, srv->http_port_bound);
  else if (!config_is_loopback(host))
    LOG(LOG_WARN,
        "monitoring: no http_token on non-loopback %s:%d: the other pages "
        "answer 403 (set http_token, or allow_anonymous to open them)",
        host, srv->http_port_bound);
  return 0;
}

/* ---- signals and shutdown ---------------------------------------------- */

static void on_signal(uv_signal_t *h, int signum) {
  server_t *srv = h->data;
  LOG(LOG_INFO, "%s received, shutting down",
      signum == SIGINT ? "SIGINT" : "SIGTERM");
  server_shutdown(srv);
}

static void on_server_handle_closed(uv_handle_t *h) {
  server_t *srv = h->data;
  srv->handles_open--;
}

static void close_server_handle(server_t *srv, uv_handle_t *h) {
  if (!uv_is_closing(h)) {
    h->data = srv;
    uv_close(h, on_server_handle_closed);
  }
}

/* The last connection is gone during shutdown (on every worker, and the
 * other workers' threads have ended): close the loop's own handles so
 * uv_run returns. */
static void finish_shutdown(server_t *srv) {
  if (broker_multi(&srv->broker)) {
    for (int i = 1; i < srv->broker.nworkers; i++) {
      if (srv->threads[i].started) {
        uv_thread_join(&srv->threads[i].tid);
        srv->threads[i].started = false;
      }
    }
    close_server_handle(srv, (uv_handle_t *)&srv->worker.wake);
  }
  close_server_handle(srv, (uv_handle_t *)&srv->worker.before_sleep);
  close_server_handle(srv, (uv_handle_t *)&srv->worker.spin);
  close_server_handle(srv, (uv_handle_t *)&srv->worker.stall_timer);
  close_server_handle(srv, (uv_handle_t *)&srv->worker.retained_timer);
  ops_drain(srv);
  http_stop(srv->http);
  srv->http = NULL;
  sysevents_stop(srv);
  streams_close(srv->streams);
  srv->streams = NULL;
}

/* ---- several workers: shutdown, pauses, wake-ups ----------------------- */

static void on_worker_handle_closed(uv_handle_t *h) {
  (void)h;
}

/* A worker other than the first stops: its loop's handles close, uv_run
 * returns in its thread. */
static void stop_worker(worker_t *w) {
  w->stopping = true;
  handoff_flush(w); /* reclaims; wakes nobody any more */
  uv_close((uv_handle_t *)&w->before_sleep, on_worker_handle_closed);
  uv_close((uv_handle_t *)&w->spin, on_worker_handle_closed);
  uv_close((uv_handle_t *)&w->stall_timer, on_worker_handle_closed);
  uv_close((uv_handle_t *)&w->wake, on_worker_handle_closed);
}

/* Worker 0: every worker has drained (or stopped): on to the next step. */
static void shutdown_progress(server_t *srv) {
  int n = srv->broker.nworkers;
  if (n == 1) {
    finish_shutdown(srv);
    return;
  }
  if (atomic_load(&srv->drained) == n && !atomic_load(&srv->stop_req)) {
    atomic_store(&srv->stop_req, 1);
    for (int i = 1; i < n; i++)
      uv_async_send(&srv->workers[i]->wake);
  }
  if (atomic_load(&srv->stopped) == n - 1)
    finish_shutdown(srv);
}

/* w has no connection left during shutdown: it says so once. */
static void check_drained(worker_t *w) {
  server_t *srv = w->server;
  if (w->nconns > 0 || srv->drained_flag == NULL || srv->drained_flag[w->wid])
    return;
  srv->drained_flag[w->wid] = true;
  handoff_flush(w); /* what its closes told others goes before it stops */
  atomic_fetch_add(&srv->drained, 1);
  if (w->wid == 0)
    shutdown_progress(srv);
  else
    uv_async_send(&srv->worker.wake);
}

static void goaway_all(worker_t *w) {
  for (list_node_t *n = w->conns.next; n != &w->conns; n = n->next)
    conn_goaway(LIST_ENTRY(n, conn_t, all_link), "shutdown");
}

/* A pause asked by worker 0 (pause_others): wait here until it ends. */
static void pause_here(server_t *srv) {
  uv_mutex_lock(&srv->pause_lock);
  if (!atomic_load(&srv->pause_req)) {
    uv_mutex_unlock(&srv->pause_lock);
    return;
  }
  /* Until this pause ends, not the next one (which may start before this
   * worker runs again: it gets its own wake-up). */
  uint64_t gen = srv->pause_gen;
  srv->paused++;
  uv_cond_broadcast(&srv->pause_cv);
  while (srv->pause_gen == gen)
    uv_cond_wait(&srv->pause_cv, &srv->pause_lock);
  uv_mutex_unlock(&srv->pause_lock);
}

static void pause_others(server_t *srv) {
  int n = srv->broker.nworkers;
  if (n == 1 || atomic_load(&srv->stop_req))
    return;
  uv_mutex_lock(&srv->pause_lock);
  srv->paused = 0;
  atomic_store(&srv->pause_req, true);
  uv_mutex_unlock(&srv->pause_lock);
  for (int i = 1; i < n; i++)
    uv_async_send(&srv->workers[i]->wake);
  uv_mutex_lock(&srv->pause_lock);
  while (srv->paused < n - 1)
    uv_cond_wait(&srv->pause_cv, &srv->pause_lock);
  uv_mutex_unlock(&srv->pause_lock);
}

static void resume_others(server_t *srv) {
  if (srv->broker.nworkers == 1 || !atomic_load(&srv->pause_req))
    return;
  uv_mutex_lock(&srv->pause_lock);
  atomic_store(&srv->pause_req, false);
  srv->pause_gen++;
  uv_cond_broadcast(&srv->pause_cv);
  uv_mutex_unlock(&srv->pause_lock);
}

/* Another worker woke w: descriptors to open, hand-overs to take, a
 * pause, a shutdown step. */
static void on_wake(uv_async_t *a) {
  worker_t *w = a->data;
  server_t *srv = w->server;
  if (w->wid != 0 && atomic_load(&srv->pause_req))
    pause_here(srv);
  if (w->wid != 0) {
    worker_thread_t *t = &srv->threads[w->wid];
    uv_mutex_lock(&t->inbox_lock);
    int *fds = t->inbox;
    size_t nfds = t->ninbox;
    t->inbox = NULL;
    t->ninbox = t->inbox_cap = 0;
    uv_mutex_unlock(&t->inbox_lock);
    for (size_t i = 0; i < nfds; i++) {
      if (atomic_load(&srv->shutdown_req))
        close(fds[i]);
      else
        open_conn(w, fds[i]);
    }
    free(fds);
  }
  if (!w->stopping)
    handoff_drain(w, &handoff_ops);
  if (atomic_load(&srv->shutdown_req)) {
    if (w->wid != 0 && !srv->threads[w->wid].goaway_sent) {
      srv->threads[w->wid].goaway_sent = true;
      goaway_all(w);
    }
    check_drained(w);
    if (w->wid == 0)
      shutdown_progress(srv);
    else if (atomic_load(&srv->stop_req) && !w->stopping)
      stop_worker(w);
  }
}

static void worker_main(void *arg) {
  worker_thread_t *t = arg;
  server_t *srv = t->w.server;
  uv_run(&t->loop, UV_RUN_DEFAULT);
  atomic_fetch_add(&srv->stopped, 1);
  uv_async_send(&srv->worker.wake);
}

void server_shutdown(server_t *srv) {
  if (srv->shutting_down)
    return;
  srv->shutting_down = true;
  sdnotify_stopping();
  if (srv->listener.fd >= 0)
    fd_acceptor_close(&srv->listener, srv, on_server_handle_closed);
  close_server_handle(srv, (uv_handle_t *)&srv->sigint);
  close_server_handle(srv, (uv_handle_t *)&srv->sigterm);
  ops_drain(srv);
  if (srv->cluster != NULL)
    cluster_stop(srv->cluster);
  if (!broker_multi(&srv->broker)) {
    goaway_all(&srv->worker);
    if (srv->worker.nconns == 0)
      finish_shutdown(srv);
    return;
  }
  /* Every connection of every worker is told at once, the others paused,
   * as one loop would: no PUB is handled after a subscriber elsewhere
   * stopped taking messages. Each worker tells worker 0 once it has none
   * left; then they stop, worker 0 last. */
  pause_others(srv);
  /* What was handed over is queued first: it was accepted before. */
  for (int i = 0; i < srv->broker.nworkers; i++) {
    if (i == 0 || srv->threads[i].started)
      handoff_drain(srv->workers[i], &handoff_ops);
  }
  goaway_all(&srv->worker);
  for (int i = 1; i < srv->broker.nworkers; i++) {
    if (srv->threads[i].started) {
      srv->threads[i].goaway_sent = true;
      goaway_all(srv->workers[i]);
    }
  }
  atomic_store(&srv->shutdown_req, 1);
  resume_others(srv);
  bool threads = false;
  for (int i = 1; i < srv->broker.nworkers; i++) {
    if (srv->threads[i].started) {
      threads = true;
      uv_async_send(&srv->workers[i]->wake);
    }
  }
  if (!threads) {
    /* Never started (listening failed): nothing runs but this loop. */
    for (int i = 1; i < srv->broker.nworkers; i++) {
      srv->drained_flag[i] = true;
      atomic_fetch_add(&srv->drained, 1);
      atomic_fetch_add(&srv->stopped, 1);
    }
    atomic_store(&srv->stop_req, 1);
  }
  check_drained(&srv->worker);
  shutdown_progress(srv);
}

/* What a worker's connections report ($SYS advisories, sysevents.h). */
static void on_connected(worker_t *w, conn_t *c) {
  sysevents_connect(w->server, c);
}
static void on_disconnected(worker_t *w, conn_t *c) {
  sysevents_disconnect(w->server, c);
}
static void on_slow_consumer(worker_t *w, conn_t *c) {
  sysevents_slow_consumer(w->server, c);
}
static void on_auth_failure(worker_t *w, conn_t *c) {
  sysevents_auth_failure(w->server, c);
}

/* c's last handle closed (conn_events_t.closed). */
static void on_conn_closed(worker_t *w, conn_t *c) {
  server_t *srv = w->server;
  list_remove(&c->all_link);
  w->nconns--;
  if (!broker_multi(w->broker)) {
    if (srv->shutting_down && w->nconns == 0)
      finish_shutdown(srv);
    return;
  }
  if (atomic_load(&srv->shutdown_req) && w->nconns == 0)
    check_drained(w);
}

/* ---- setup ------------------------------------------------------------- */

/* The HELLO frame is the same for every connection: encoded once (and
 * again when a reload turns authentication on or off). */
static int encode_hello(server_t *srv) {
  msgbuf_t *old = srv->broker.hello;
  srv->broker.hello = msgbuf_get(srv->worker.bufs);
  if (srv->broker.hello == NULL) {
    srv->broker.hello = old;
    return TP_ENOMEM;
  }
  if (old != NULL)
    msgbuf_unref(old); /* connections greeted with it hold their own ref */
  tp_frame_t f;
  tp_frame_init(&f, TP_HELLO);
  f.u.hello.proto = TP_PROTO_VERSION;
  f.u.hello.server.ptr = srv->broker.server_name;
  f.u.hello.server.len = (uint32_t)strlen(srv->broker.server_name);
  f.u.hello.server_id.ptr = srv->broker.server_id;
  f.u.hello.server_id.len = (uint32_t)strlen(srv->broker.server_id);
  f.u.hello.max_payload = srv->broker.cfg.max_payload;
  f.u.hello.max_frame = srv->broker.cfg.max_frame;
  /* Users, a token, or client certificates alone (config_mtls_only). */
  f.u.hello.auth_required = config_auth_required(&srv->broker.cfg);
  f.u.hello.heartbeat_ms = srv->broker.cfg.heartbeat_ms;
  if (srv->cluster != NULL) {
    const char *urls = cluster_client_urls(srv->cluster);
    f.u.hello.cluster_urls.ptr = urls;
    f.u.hello.cluster_urls.len = (uint32_t)strlen(urls);
  }
  return tp_frame_encode(&srv->broker.hello->bytes, &f);
}

/* Several workers: each greets with its own copy of HELLO (a body's
 * reference count belongs to one loop). */
static int copy_hello(server_t *srv) {
  for (int i = 1; i < srv->broker.nworkers; i++) {
    worker_t *w = srv->workers[i];
    msgbuf_t *h = msgbuf_get(w->bufs);
    if (h == NULL || tp_buf_append(&h->bytes, srv->broker.hello->bytes.data,
                                   srv->broker.hello->bytes.len) != 0) {
      if (h != NULL)
        msgbuf_unref(h);
      return TP_ENOMEM;
    }
    if (w->hello != NULL)
      msgbuf_unref(w->hello);
    w->hello = h;
  }
  return 0;
}

int server_hello_update(server_t *srv) {
  int rc = encode_hello(srv);
  if (rc == 0 && broker_multi(&srv->broker))
    rc = copy_hello(srv); /* a reload: the other workers are paused */
  return rc;
}

/* A random id, so clients can tell servers (and restarts) apart. */
static void make_server_id(server_t *srv) {
  uint8_t rnd[8] = {0};
  if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) != 0) {
    uint64_t t = uv_hrtime() ^ (uint64_t)getpid();
    memcpy(rnd, &t, sizeof rnd);
  }
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < sizeof rnd; i++) {
    srv->broker.server_id[2 * i] = hex[rnd[i] >> 4];
    srv->broker.server_id[2 * i + 1] = hex[rnd[i] & 15];
  }
  srv->broker.server_id[2 * sizeof rnd] = '\0';
}

static void free_handle(uv_handle_t *h) {
  free(h);
}

/* libuv opens a spare descriptor (loop->emfile_fd) at a loop's first
 * stream: made at start, so the descriptors counted once listening (the
 * budget, the tests' leak checks) are all there is. */
static void open_stream_spare(uv_loop_t *loop) {
  uv_tcp_t *t = malloc(sizeof *t);
  if (t != NULL && uv_tcp_init(loop, t) == 0)
    uv_close((uv_handle_t *)t, free_handle);
  else
    free(t);
}

/* What every worker has: its callbacks, pools, read buffer and the
 * before-sleep hook and stall timer on its loop. 0 or an error. */
static int worker_setup(server_t *srv, worker_t *w, int wid, uv_loop_t *loop) {
  worker_init(w, &srv->broker, loop);
  w->server = srv;
  w->wid = wid;
  w->sub_env.block = conn_block_on;
  w->sub_env.unblock = conn_unblock;
  w->conn_events = (conn_events_t){.connected = on_connected,
                                   .disconnected = on_disconnected,
                                   .slow_consumer = on_slow_consumer,
                                   .auth_failure = on_auth_failure,
                                   .closed = on_conn_closed};
  int rc = msgbuf_pool_create(&w->bufs, KEEP_BUFS, KEEP_BUF_BYTES);
  if (rc == 0)
    rc = outq_pool_create(&w->entries, KEEP_ENTRIES);
  if (rc == 0)
    rc = rx_shared_init(&w->rx);
  if (rc != 0)
    return rc;
  if (broker_multi(&srv->broker)) {
    w->sub_env.hand_over = handoff_hand_over;
    w->sub_env.unblock_remote = handoff_unblock_remote;
    w->sub_env.block_remote = conn_block_remote;
    w->gate_own = srv->broker.gate;
    w->gate = &w->gate_own;
    if (hashmap_create(&w->conn_by_id, 0) != 0 ||
        hashmap_create(&w->live_subs, 0) != 0 || handoff_init(w, on_wake) != 0)
      return TP_ENOMEM;
  }
  if (wid > 0)
    open_stream_spare(loop);
  uv_prepare_init(loop, &w->before_sleep);
  uv_idle_init(loop, &w->spin);
  uv_timer_init(loop, &w->stall_timer);
  w->before_sleep.data = w;
  w->spin.data = w;
  w->stall_timer.data = w;
  uv_prepare_start(&w->before_sleep, on_before_sleep);
  uint64_t every = srv->broker.cfg.stall_timeout_ms / 4;
  if (srv->broker.cfg.frame_timeout_ms > 0 &&
      srv->broker.cfg.frame_timeout_ms / 4 < every)
    every = srv->broker.cfg.frame_timeout_ms / 4;
  if (every < 10)
    every = 10;
  if (every > 1000)
    every = 1000;
  uv_timer_start(&w->stall_timer, on_stall_check, every, every);
  return 0;
}

int server_init(server_t *srv, uv_loop_t *loop, const config_t *cfg) {
  memset(srv, 0, sizeof *srv);
  srv->hello_update = server_hello_update;
  srv->pause_others = pause_others;
  srv->resume_others = resume_others;
  srv->broker.cfg = *cfg;
  auth_db_ref(srv->broker.cfg.users); /* the caller keeps its own */
  /* ... and its own stream definitions. */
  if (stream_defs_copy(&srv->broker.cfg.streams, cfg->streams) != 0)
    return TP_ENOMEM;
  snprintf(srv->broker.server_name, sizeof srv->broker.server_name, "ternd/%s",
           TERND_VERSION);
  make_server_id(srv);
  int n = cfg->workers < 1 ? cpus_available(BROKER_MAX_WORKERS) : cfg->workers;
  if (n > BROKER_MAX_WORKERS)
    n = BROKER_MAX_WORKERS;
  srv->broker.nworkers = n;
  srv->broker.workers = srv->workers;
  srv->workers[0] = &srv->worker;
  pending_gate_init(&srv->broker.gate, cfg->max_pending_total);
  srv->broker.cfg.max_pending_total = srv->broker.gate.high;
  if (srv->broker.cfg.max_inbound_total == 0) {
    /* A quarter of the pending cap: reads are transient, the queues are
     * where memory is meant to be; never below 16 frames of the largest
     * size, so a few large publishers always fit. */
    uint64_t q = srv->broker.gate.high / 4,
             least = 16 * srv->broker.cfg.max_frame;
    srv->broker.cfg.max_inbound_total = q > least ? q : least;
  }
  int rc = sublist_create(&srv->broker.index, 0);
  if (rc != 0)
    return rc;
  if (n > 1) {
    srv->threads = calloc((size_t)n, sizeof *srv->threads);
    srv->broker.replicas = calloc((size_t)n, sizeof *srv->broker.replicas);
    srv->drained_flag = calloc((size_t)n, sizeof *srv->drained_flag);
    if (srv->threads == NULL || srv->broker.replicas == NULL ||
        srv->drained_flag == NULL)
      return TP_ENOMEM;
    for (int i = 0; i < n; i++) {
      uv_mutex_init(&srv->broker.replicas[i].lock);
      if (sublist_create(&srv->broker.replicas[i].index, 0) != 0)
        return TP_ENOMEM;
    }
    uv_mutex_init(&srv->broker.retained_lock);
    uv_mutex_init(&srv->pause_lock);
    uv_cond_init(&srv->pause_cv);
    if (msgbuf_pool_create(&srv->broker.retained_bufs, 1024, KEEP_BUF_BYTES) !=
        0)
      return TP_ENOMEM;
    for (int i = 1; i < n; i++) {
      worker_thread_t *t = &srv->threads[i];
      uv_mutex_init(&t->inbox_lock);
      if (uv_loop_init(&t->loop) != 0)
        return UV_ENOMEM;
      srv->workers[i] = &t->w;
    }
  }
  rc = worker_setup(srv, &srv->worker, 0, loop);
  for (int i = 1; rc == 0 && i < n; i++)
    rc = worker_setup(srv, srv->workers[i], i, &srv->threads[i].loop);
  if (rc != 0)
    return rc;
  for (int i = 0; i < n; i++) {
    srv->workers[i]->rx.tail_max = (size_t)srv->broker.cfg.max_inbound_total;
    if (n > 1)
      srv->workers[i]->rx.all_tails = &srv->broker.rx_tails;
  }
  rc = encode_hello(srv);
  if (rc == 0 && n > 1)
    rc = copy_hello(srv);
  if (rc == 0 && srv->broker.cfg.tls_cert[0] != '\0') {
    char why[512];
    tls_listener_opts_t o = config_tls_opts(&srv->broker.cfg);
    rc = tls_listener_create(&srv->tls, &o, why, sizeof why);
    if (rc != 0)
      LOG(LOG_ERROR, "TLS: %s", why);
  }
  if (rc != 0)
    return rc;

  srv->listener.fd = -1;
  srv->listener.on_accept = on_accept;
  srv->listener.on_refuse = on_refuse;
  srv->listener.data = srv;
  tp_buf_init(&srv->err_no_fd);
  tp_frame_t err;
  tp_frame_init(&err, TP_ERR);
  err.u.err.code = TP_WIRE_TOO_MANY_CONNS;
  err.u.err.message.ptr = "too many connections";
  err.u.err.message.len = (uint32_t)strlen(err.u.err.message.ptr);
  rc = tp_frame_encode(&srv->err_no_fd, &err);
  if (rc != 0)
    return rc;
  uv_timer_init(loop, &srv->worker.retained_timer);
  uv_signal_init(loop, &srv->sigint);
  uv_signal_init(loop, &srv->sigterm);
  srv->handles_open = n > 1 ? 7 : 6; /* the listener counts once listening */
  srv->sigint.data = srv;
  srv->sigterm.data = srv;

  rc = retained_create(&srv->broker.retained, &srv->worker.retained_timer,
                       srv->broker.cfg.max_retained_topics,
                       srv->broker.cfg.max_retained_bytes);
  if (rc != 0)
    return rc;
  if (n > 1)
    retained_share(srv->broker.retained);
  if (srv->broker.cfg.data_dir[0] != '\0') {
    /* Durable streams, on this (the first) loop. */
    char why[600];
    rc = streams_open(&srv->streams, &srv->worker, srv->broker.cfg.data_dir,
                      srv->broker.cfg.streams, sysevents_stream, srv, why,
                      sizeof why);
    if (rc != 0) {
      LOG(LOG_ERROR, "streams: %s", why);
      return rc;
    }
  }
  uv_signal_start(&srv->sigint, on_signal, SIGINT);
  uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
  return 0;
}

/* A route came up or went down: $SYS, and HELLO's cluster_urls again
 * (the other workers wait while it changes, as for a reload). */
static void on_route_event(void *ud, bool up, const char *node,
                           const char *addr) {
  server_t *srv = ud;
  sysevents_route(srv, up, node, addr);
  if (srv->shutting_down)
    return;
  srv->pause_others(srv);
  if (server_hello_update(srv) != 0)
    LOG(LOG_WARN, "cluster: HELLO not updated (out of memory)");
  srv->resume_others(srv);
}

static void on_cluster_synced(void *ud) {
  server_t *srv = ud;
  if (!srv->shutting_down && srv->listener.fd >= 0)
    fd_acceptor_resume(&srv->listener);
}

int server_listen(server_t *srv) {
  int port = srv->broker.cfg.port;
  int rc =
      fd_acceptor_listen(&srv->listener, srv->worker.loop, srv->broker.cfg.host,
                         srv->broker.cfg.port, 511, &port);
  if (rc != 0)
    return rc;
  srv->listening = true;
  srv->handles_open++;
  srv->broker.cfg.port = port;
  /* The cluster watches interest before any other loop runs. */
  if (srv->broker.cfg.cluster_port > 0) {
    rc = cluster_create(&srv->cluster, &srv->worker);
    if (rc == 0) {
      /* Clients wait in the backlog until the retained store is in sync. */
      fd_acceptor_pause(&srv->listener);
      cluster_on_synced(srv->cluster, on_cluster_synced, srv);
      cluster_on_route(srv->cluster, on_route_event, srv);
      rc = cluster_start(srv->cluster);
      if (rc == 0)
        rc = server_hello_update(srv);
    }
    if (rc != 0) {
      LOG(LOG_ERROR, "cluster port %d: %s", srv->broker.cfg.cluster_port,
          ternd_strerror(rc));
      return rc;
    }
  }
  LOG(LOG_INFO, "ternd %s listening on %s:%d (server id %s, %d worker%s)",
      TERND_VERSION, srv->broker.cfg.host, port, srv->broker.server_id,
      srv->broker.nworkers, srv->broker.nworkers > 1 ? "s" : "");
  if (srv->tls != NULL) {
    char subject[256];
    tls_listener_subject(srv->tls, subject, sizeof subject);
    LOG(LOG_INFO, "TLS on port %d as %s: %s%s", port, subject,
        srv->broker.cfg.tls_required ? "plaintext refused"
                                     : "plaintext also served",
        srv->broker.cfg.tls_verify ? ", client certificates required" : "");
  }
  /* The operator's side, in this order: reload and warnings, $SYS, then
   * the monitoring port (whose clients set_fd_budget counts). What was
   * started is stopped by finish_shutdown. */
  ops_start(srv);
  if (sysevents_start(srv) != 0)
    return UV_ENOMEM;
  rc = start_monitoring(srv);
  if (rc != 0)
    return rc;
  set_fd_budget(srv);
  /* The other workers' loops run from here on, each in its thread. */
  for (int i = 1; i < srv->broker.nworkers; i++) {
    worker_thread_t *t = &srv->threads[i];
    if (uv_thread_create(&t->tid, worker_main, t) != 0)
      return UV_ENOMEM;
    t->started = true;
  }
  if (srv->broker.cfg.ready_fd >= 0) {
    /* "PORT\n", or "PORT HTTPPORT\n" with monitoring on. */
    char line[32];
    int n =
        srv->http_port_bound > 0
            ? snprintf(line, sizeof line, "%d %d\n", port, srv->http_port_bound)
            : snprintf(line, sizeof line, "%d\n", port);
    if (write(srv->broker.cfg.ready_fd, line, (size_t)n) != n)
      LOG(LOG_WARN, "could not write the port to --ready-fd %d",
          srv->broker.cfg.ready_fd);
    close(srv->broker.cfg.ready_fd);
    srv->broker.cfg.ready_fd = -1;
  }
  return 0;
}

/* What worker_setup made (the loop's handles are closed by now). */
static void worker_free(worker_t *w) {
  if (w->hello != NULL)
    msgbuf_unref(w->hello);
  w->hello = NULL;
  handoff_free(w);
  if (w->xcopy != NULL)
    msgbuf_unref(w->xcopy);
  w->xcopy = NULL;
  if (w->bufs != NULL && msgbuf_pool_live(w->bufs) != 0)
    LOG(LOG_WARN, "%zu message buffers still referenced at exit (worker %d)",
        msgbuf_pool_live(w->bufs), w->wid);
  msgbuf_pool_destroy(w->bufs);
  outq_pool_destroy(w->entries);
  rx_shared_free(&w->rx);
  tp_buf_free(&w->scratch);
  free(w->ended);
  auth_verifier_free(w->auth);
  hashmap_destroy(w->conn_by_id);
  hashmap_destroy(w->live_subs);
}

void server_free(server_t *srv) {
  int n = srv->broker.nworkers;
  for (int i = 1; i < n; i++) {
    if (srv->threads != NULL && srv->threads[i].started)
      uv_thread_join(&srv->threads[i].tid);
  }
  /* Every thread has ended: what is left in the queues is dropped. */
  for (int i = 0; i < n; i++) {
    if (srv->workers[i] != NULL)
      handoff_drop_all(srv->workers[i]);
  }
  if (srv->broker.hello != NULL)
    msgbuf_unref(srv->broker.hello);
  sublist_destroy(srv->broker.index);
  /* Retained bodies go back to the pool before it is checked. */
  retained_destroy(srv->broker.retained);
  for (int i = 1; i < n; i++) {
    if (srv->workers[i] == NULL)
      continue;
    uv_run(&srv->threads[i].loop, UV_RUN_NOWAIT);
    worker_free(srv->workers[i]);
    if (uv_loop_close(&srv->threads[i].loop) != 0)
      LOG(LOG_ERROR, "worker %d: event loop not empty at exit", i);
  }
  worker_free(&srv->worker);
  cluster_free(srv->cluster);
  srv->cluster = NULL;
  if (srv->broker.replicas != NULL) {
    for (int i = 0; i < n; i++) {
      sublist_destroy(srv->broker.replicas[i].index);
      uv_mutex_destroy(&srv->broker.replicas[i].lock);
    }
    free(srv->broker.replicas);
    msgbuf_pool_destroy(srv->broker.retained_bufs);
    uv_mutex_destroy(&srv->broker.retained_lock);
    uv_mutex_destroy(&srv->pause_lock);
    uv_cond_destroy(&srv->pause_cv);
    for (int i = 1; i < n; i++) {
      free(srv->threads[i].inbox);
      uv_mutex_destroy(&srv->threads[i].inbox_lock);
    }
  }
  free(srv->threads);
  free(srv->drained_flag);
  tp_buf_free(&srv->err_no_fd);
  tls_listener_destroy(srv->tls);
  config_free(&srv->broker.cfg);
}
