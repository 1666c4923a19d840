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
#include "server/config_file.h"
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

static void on_before_sleep(uv_prepare_t *p) {
  server_t *srv = p->data;
  list_node_t local, *n;

  /* 1. Publishers released from backpressure read their buffered frames. */
  list_move_all(&local, &srv->worker.resume_list);
  while ((n = list_first(&local)) != NULL) {
    list_remove(n);
    conn_resume(LIST_ENTRY(n, conn_t, resume_link));
  }
  /* 1b. Memory pressure (pending_gate.h): its state, and how much each
   * connection may write this turn. */
  srv->worker.write_cap = pressure_check(&srv->worker);
  /* 2. Closing connections give up their subscriptions, outside any
   * fan-out. */
  while ((n = list_first(&srv->worker.close_list)) != NULL)
    conn_teardown(LIST_ENTRY(n, conn_t, close_link));
  /* 3. One gathered write per connection with output. */
  list_move_all(&local, &srv->worker.flush_list);
  while ((n = list_first(&local)) != NULL) {
    list_remove(n);
    conn_flush(LIST_ENTRY(n, conn_t, ep.flush_link));
  }
  /* Work left for the next turn must not wait for an unrelated event. */
  bool more = !list_empty(&srv->worker.resume_list) ||
              !list_empty(&srv->worker.flush_list) ||
              !list_empty(&srv->worker.close_list);
  if (more && !uv_is_active((uv_handle_t *)&srv->worker.spin))
    uv_idle_start(&srv->worker.spin, on_spin);
  else if (!more && uv_is_active((uv_handle_t *)&srv->worker.spin))
    uv_idle_stop(&srv->worker.spin);
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
static void check_partial_frames(server_t *srv, uint64_t now) {
  uint64_t limit = srv->broker.cfg.frame_timeout_ms;
  list_node_t *n;
  while (limit > 0 && (n = list_first(&srv->worker.partial_list)) != NULL) {
    conn_t *c = LIST_ENTRY(n, conn_t, partial_link);
    if (now - c->partial_since < limit)
      break;
    list_remove(n);
    srv->worker.stats.frame_timeouts++;
    LOG(LOG_INFO,
        "conn %llu (%s): a frame started %llu ms ago is still not whole "
        "(%zu bytes of it held), closing",
        (unsigned long long)c->id, c->addr,
        (unsigned long long)(now - c->partial_since), c->rx.len);
    conn_fail(c, TP_WIRE_STALE, "frame not completed within frame_timeout_ms");
  }
}

static void on_stall_check(uv_timer_t *t) {
  server_t *srv = t->data;
  uint64_t now = uv_now(srv->worker.loop);
  log_flush_suppressed(false);
  check_partial_frames(srv, now);
  pressure_stall_check(&srv->worker, now);
  /* conn_fail releases the subscriber's queued entries, which may unlink
   * any number of subscriptions from this list: start over after each. */
  for (;;) {
    sub_t *stalled = NULL;
    for (list_node_t *n = srv->worker.stalled_subs.next;
         n != &srv->worker.stalled_subs; n = n->next) {
      sub_t *s = LIST_ENTRY(n, sub_t, stalled_link);
      if (now - s->blocked_since >= srv->broker.cfg.stall_timeout_ms &&
          s->conn->state == CONN_ACTIVE) {
        stalled = s;
        break;
      }
    }
    if (stalled == NULL)
      return;
    srv->worker.stats.slow_consumers++;
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

static void on_accept(fd_acceptor_t *a, int fd) {
  server_t *srv = a->data;
  if (srv->shutting_down) {
    close(fd);
    return;
  }
  if (srv->fd_budget > 0 && srv->worker.nconns >= srv->fd_budget) {
    refuse_no_fd(srv, fd);
    close(fd);
    return;
  }
  transport_t *tr;
  int rc = srv->tls != NULL
               ? tls_transport_open(srv->worker.loop, fd, srv->tls, &tr)
               : tcp_transport_open(srv->worker.loop, fd, &tr);
  if (rc == 0)
    rc = conn_accept(&srv->worker, tr);
  if (rc != 0)
    LOG(LOG_WARN, "accept: %s", ternd_strerror(rc));
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

/* The last connection is gone during shutdown: close the loop's own
 * handles so uv_run returns. */
static void finish_shutdown(server_t *srv) {
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
  for (list_node_t *n = srv->worker.conns.next; n != &srv->worker.conns;
       n = n->next)
    conn_goaway(LIST_ENTRY(n, conn_t, all_link), "shutdown");
  if (srv->worker.nconns == 0)
    finish_shutdown(srv);
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
  srv->worker.nconns--;
  if (srv->shutting_down && srv->worker.nconns == 0)
    finish_shutdown(srv);
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
  f.u.hello.auth_required =
      srv->broker.cfg.users != NULL || srv->broker.cfg.auth_token[0] != '\0';
  f.u.hello.heartbeat_ms = srv->broker.cfg.heartbeat_ms;
  return tp_frame_encode(&srv->broker.hello->bytes, &f);
}

int server_hello_update(server_t *srv) {
  return encode_hello(srv);
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

int server_init(server_t *srv, uv_loop_t *loop, const config_t *cfg) {
  memset(srv, 0, sizeof *srv);
  worker_init(&srv->worker, &srv->broker, loop);
  srv->worker.server = srv;
  srv->hello_update = server_hello_update;
  srv->broker.cfg = *cfg;
  auth_db_ref(srv->broker.cfg.users); /* the caller keeps its own */
  /* ... and its own stream definitions. */
  if (stream_defs_copy(&srv->broker.cfg.streams, cfg->streams) != 0)
    return TP_ENOMEM;
  snprintf(srv->broker.server_name, sizeof srv->broker.server_name, "ternd/%s",
           TERND_VERSION);
  make_server_id(srv);
  srv->worker.sub_env.block = conn_block_on;
  srv->worker.sub_env.unblock = conn_unblock;
  srv->worker.conn_events = (conn_events_t){.connected = on_connected,
                                            .disconnected = on_disconnected,
                                            .slow_consumer = on_slow_consumer,
                                            .auth_failure = on_auth_failure,
                                            .closed = on_conn_closed};
  pending_gate_init(&srv->broker.gate, cfg->max_pending_total);
  srv->broker.cfg.max_pending_total = srv->broker.gate.high;
  int rc = sublist_create(&srv->broker.index, 0);
  if (rc == 0)
    rc = msgbuf_pool_create(&srv->worker.bufs, KEEP_BUFS, KEEP_BUF_BYTES);
  if (rc == 0)
    rc = outq_pool_create(&srv->worker.entries, KEEP_ENTRIES);
  if (rc == 0)
    rc = rx_shared_init(&srv->worker.rx);
  if (srv->broker.cfg.max_inbound_total == 0) {
    /* A quarter of the pending cap: reads are transient, the queues are
     * where memory is meant to be; never below 16 frames of the largest
     * size, so a few large publishers always fit. */
    uint64_t q = srv->broker.gate.high / 4,
             least = 16 * srv->broker.cfg.max_frame;
    srv->broker.cfg.max_inbound_total = q > least ? q : least;
  }
  srv->worker.rx.tail_max = (size_t)srv->broker.cfg.max_inbound_total;
  if (rc == 0)
    rc = encode_hello(srv);
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
  uv_prepare_init(loop, &srv->worker.before_sleep);
  uv_idle_init(loop, &srv->worker.spin);
  uv_timer_init(loop, &srv->worker.stall_timer);
  uv_timer_init(loop, &srv->worker.retained_timer);
  uv_signal_init(loop, &srv->sigint);
  uv_signal_init(loop, &srv->sigterm);
  srv->handles_open = 6; /* the listener counts once listening */
  srv->worker.before_sleep.data = srv;
  srv->worker.spin.data = srv;
  srv->worker.stall_timer.data = srv;
  srv->sigint.data = srv;
  srv->sigterm.data = srv;

  rc = retained_create(&srv->broker.retained, &srv->worker.retained_timer,
                       srv->broker.cfg.max_retained_topics,
                       srv->broker.cfg.max_retained_bytes);
  if (rc != 0)
    return rc;
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
  uv_prepare_start(&srv->worker.before_sleep, on_before_sleep);
  uint64_t every = srv->broker.cfg.stall_timeout_ms / 4;
  if (srv->broker.cfg.frame_timeout_ms > 0 &&
      srv->broker.cfg.frame_timeout_ms / 4 < every)
    every = srv->broker.cfg.frame_timeout_ms / 4;
  if (every < 10)
    every = 10;
  if (every > 1000)
    every = 1000;
  uv_timer_start(&srv->worker.stall_timer, on_stall_check, every, every);
  uv_signal_start(&srv->sigint, on_signal, SIGINT);
  uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
  return 0;
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
  LOG(LOG_INFO, "ternd %s listening on %s:%d (server id %s)", TERND_VERSION,
      srv->broker.cfg.host, port, srv->broker.server_id);
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

void server_free(server_t *srv) {
  if (srv->broker.hello != NULL)
    msgbuf_unref(srv->broker.hello);
  sublist_destroy(srv->broker.index);
  /* Retained bodies go back to the pool before it is checked. */
  retained_destroy(srv->broker.retained);
  if (srv->worker.bufs != NULL && msgbuf_pool_live(srv->worker.bufs) != 0)
    LOG(LOG_WARN, "%zu message buffers still referenced at exit",
        msgbuf_pool_live(srv->worker.bufs));
  msgbuf_pool_destroy(srv->worker.bufs);
  outq_pool_destroy(srv->worker.entries);
  rx_shared_free(&srv->worker.rx);
  tp_buf_free(&srv->worker.scratch);
  tp_buf_free(&srv->err_no_fd);
  tls_listener_destroy(srv->tls);
  free(srv->worker.ended);
  auth_verifier_free(srv->broker.auth);
  config_free(&srv->broker.cfg);
}
