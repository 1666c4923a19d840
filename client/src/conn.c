/*
 * An asynchronous connection: resolve, TCP connect, the HELLO/CONNECT/OK
 * handshake, the read path (frames decoded by tern_protocol's reader and
 * dispatched in order), and the close path. The write batch, publishes
 * and the flush before a graceful close are in conn_write.c.
 *
 * Lifetime: the connection owns four handles (tcp, prepare, timer, and
 * reconnect.c's rtimer) and, while resolving, a getaddrinfo request. `refs`
 * counts them; the memory is freed in the last close callback, so user
 * callbacks may close the connection from anywhere: nothing is freed under
 * their feet. A reconnect closes the tcp handle and initialises it again
 * (reconnect.c); its reference is kept throughout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "options_abi.h"
#include "tern_proto/errors.h"

#define READER_INITIAL_CAP (64u * 1024u)

static void dispatch_frames(tern_conn_t *c);
static void on_timer(uv_timer_t *t);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

int tern__err_from_tp(int perr) {
  switch (perr) {
  case TP_ENOMEM:
    return TERN_ENOMEM;
  case TP_ETOPIC:
  case TP_EPATTERN:
    return TERN_ETOPIC;
  case TP_EINVAL:
  case TP_EUTF8:
    return TERN_EINVAL;
  default:
    return TERN_EPROTO;
  }
}

void tern__conn_set_error(tern_conn_t *c, const char *text, size_t len) {
  if (len >= sizeof(c->last_error)) {
    len = sizeof(c->last_error) - 1;
  }
  memcpy(c->last_error, text, len);
  c->last_error[len] = '\0';
}

static void set_error_str(tern_conn_t *c, const char *text) {
  tern__conn_set_error(c, text, strlen(text));
}

static void report_error(tern_conn_t *c, int err, int wire_code) {
  if (c->opts.o.error_cb != NULL) {
    c->opts.o.error_cb(c, err, wire_code, c->last_error, c->opts.o.cb_data);
  }
}

void tern__conn_report(tern_conn_t *c, int err, int wire_code) {
  report_error(c, err, wire_code);
}

void tern__conn_status(tern_conn_t *c, tern_status_t st, int reason) {
  if (st == TERN_STATUS_CLOSED) {
    if (c->closed_reported) {
      return;
    }
    c->closed_reported = true;
  }
  if (c->opts.o.status_cb != NULL) {
    tern__conn_state_t before = c->state;
    c->opts.o.status_cb(c, st, reason, c->opts.o.cb_data);
    if (c->state == TERN__CLOSING && before != TERN__CLOSING) {
      return; /* closed by the callback: CLOSED was the last event */
    }
  }
  if (c->opts.o.status_event_cb != NULL) {
    tern_status_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.struct_size = sizeof(ev);
    ev.status = st;
    ev.reason = reason;
    if (c->down) {
      ev.down_ms = uv_now(c->loop) - c->lost_at;
      ev.attempts = c->attempt;
      ev.pubs_discarded = c->pubs_discarded;
      ev.pubs_in_flight = c->pubs_in_flight;
      ev.pubs_refused = c->pubs_refused;
    }
    c->opts.o.status_event_cb(c, &ev, c->opts.o.cb_data);
  }
}

/* Frees everything once closing and the last handle/request is done. */
static void maybe_free(tern_conn_t *c) {
  if (c->refs > 0 || c->state != TERN__CLOSING) {
    return;
  }
  tern__subs_free_all(c);
  tp_reader_destroy(c->reader);
  tp_buf_free(&c->pending);
  tp_buf_free(&c->inflight);
  tp_buf_free(&c->scratch);
  tp_buf_free(&c->held);
  tern__servers_free(c);
  tern__breaker_destroy(c);
  tern__tls_free(c);
  tern__opts_free(&c->opts);
  /* The pointer is handed back for identification only: every handle is
   * closed, and the memory is freed as soon as the callback returns. */
  if (c->close_cb != NULL) {
    c->close_cb(c, c->close_cb_data);
  }
  free(c);
}

static void on_handle_closed(uv_handle_t *h) {
  tern_conn_t *c = h->data;
  c->refs--;
  maybe_free(c);
}

static void close_handles(tern_conn_t *c) {
  if (c->handles_closing) {
    return;
  }
  c->handles_closing = true;
  if (!c->tcp_recycling) { /* else its recycle callback drops the ref */
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  }
  uv_close((uv_handle_t *)&c->prepare, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->rtimer, on_handle_closed);
}

void tern__conn_close_handles(tern_conn_t *c) {
  close_handles(c);
}

static void on_tcp_recycled(uv_handle_t *h) {
  tern_conn_t *c = h->data;
  if (c->state == TERN__CLOSING || uv_tcp_init(c->loop, &c->tcp) != 0) {
    c->refs--; /* the tcp handle is gone for good */
    if (c->state != TERN__CLOSING) {
      tern__conn_final_loss(c, TERN_ENOMEM);
    }
    maybe_free(c);
    return;
  }
  c->tcp_recycling = false;
  c->tcp.data = c;
  tern__reconnect_tcp_ready(c);
}

void tern__conn_recycle_tcp(tern_conn_t *c) {
  if (c->tcp_recycling) {
    return;
  }
  c->tcp_recycling = true;
  c->tcp_connected = false;
  c->reading = false;
  tern__tls_end(c);
  uv_close((uv_handle_t *)&c->tcp, on_tcp_recycled);
}

static void stop_reading(tern_conn_t *c) {
  if (c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  tern_conn_t *c = h->data;
  uint8_t *p;
  size_t n;
  (void)suggested;
  if (c->tls != NULL) {
    tern__tls_read_buf(c, buf);
    return;
  }
  if (tp_reader_space(c->reader, &p, &n) != 0) {
    buf->base = NULL; /* libuv reports UV_ENOBUFS to on_read */
    buf->len = 0;
    return;
  }
  buf->base = (char *)p;
  buf->len = n;
}

/*
 * The connect attempt is over without success. A reconnect (or the first
 * connect with servers left to try) moves on to the next attempt;
 * otherwise the connection becomes unusable and the connect callback (if
 * not fired yet) gets status.
 */
static void fail_connect(tern_conn_t *c, int status) {
  tern_connect_cb cb = c->connect_cb;
  if (c->state != TERN__CONNECTING && c->state != TERN__HANDSHAKE) {
    return;
  }
  if (c->last_error[0] == '\0') {
    set_error_str(c, tern_strerror(status));
  }
  stop_reading(c);
  if (tern__reconnect_on_fail(c, status)) {
    return;
  }
  c->state = TERN__LOST;
  c->connect_cb = NULL;
  if (cb != NULL) {
    cb(c, status, c->connect_cb_data);
  }
}

void tern__conn_fail_connect(tern_conn_t *c, int status) {
  fail_connect(c, status);
}

void tern__conn_final_loss(tern_conn_t *c, int reason) {
  c->state = TERN__LOST;
  c->reconnecting = false;
  c->goaway = false;
  uv_timer_stop(&c->rtimer);
  tp_buf_reset(&c->held); /* buffered frames have nowhere to go */
  c->pubs_discarded += c->held_pubs;
  c->held_pubs = 0;
  tern__fail_pending(c, TERN_ECLOSED, false);
  if (c->state != TERN__LOST) {
    return; /* a callback closed the connection */
  }
  tern__conn_status(c, TERN_STATUS_CLOSED, reason);
  if (c->state == TERN__LOST && c->opts.o.disconnect_cb != NULL) {
    c->opts.o.disconnect_cb(c, reason, c->opts.o.cb_data);
  }
}

void tern__conn_lost(tern_conn_t *c, int reason) {
  if (c->state != TERN__CONNECTED) {
    return;
  }
  stop_reading(c);
  tp_buf_reset(&c->pending); /* unsent frames have nowhere to go */
  if (!c->goaway) {
    c->pubs_refused = 0; /* else counted since the GOAWAY */
  }
  c->pubs_discarded = c->pending_pubs;
  c->pending_pubs = 0;
  c->pubs_in_flight = c->writing ? c->inflight_pubs : 0;
  c->down = true;
  c->lost_at = uv_now(c->loop);
  if (c->goaway_seen && (reason == TERN_ECLOSED || reason == UV_ECONNRESET ||
                         reason == UV_EPIPE)) {
    /* The close that follows a GOAWAY: a reset when the broker stopped
     * reading with our frames still unread. */
    reason = TERN_EGOAWAY;
  }
  if (tern__reconnect_on_loss(c, reason)) {
    return;
  }
  c->state = TERN__LOST;
  uv_timer_stop(&c->rtimer);
  tern__fail_pending(c, TERN_ECLOSED, false);
  if (c->state != TERN__LOST) {
    return;
  }
  tern__conn_status(c, TERN_STATUS_DISCONNECTED, reason);
  if (c->state == TERN__LOST) {
    tern__conn_final_loss(c, reason);
  }
}

/* A broken stream: during the handshake the connect fails, later the
 * connection is lost. The error text is already recorded. */
static void fail(tern_conn_t *c, int err) {
  if (c->state == TERN__CONNECTED) {
    report_error(c, err, 0);
    tern__conn_lost(c, err);
  } else {
    fail_connect(c, err);
  }
}

void tern__conn_fail(tern_conn_t *c, int err) {
  fail(c, err);
}

static void start_reading(tern_conn_t *c) {
  int rc;
  if (c->reading || c->paused || !c->tcp_connected ||
      (c->state != TERN__HANDSHAKE && c->state != TERN__CONNECTED)) {
    return;
  }
  c->reading = true;
  rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
  if (rc != 0) {
    c->reading = false;
    set_error_str(c, uv_strerror(rc));
    fail(c, rc);
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tern_conn_t *c = s->data;
  int err;
  if (nread > 0 && c->tls != NULL) {
    c->last_rx = uv_now(c->loop);
    tern__tls_received(c, buf->base, (size_t)nread);
    return;
  }
  if (nread > 0) {
    c->last_rx = uv_now(c->loop);
    tp_reader_commit(c->reader, (size_t)nread);
    dispatch_frames(c);
    return;
  }
  if (nread == 0) {
    return;
  }
  stop_reading(c);
  err = nread == UV_EOF ? TERN_ECLOSED : (int)nread;
  if (!c->goaway_seen) { /* else keep the GOAWAY reason */
    set_error_str(c, nread == UV_EOF ? "connection closed by the server"
                                     : uv_strerror((int)nread));
  }
  fail(c, err);
}

static void on_hello(tern_conn_t *c, const tp_hello_t *h) {
  tp_frame_t f;
  const tern_options_t *o = &c->opts.o;
  if (c->hello_seen || c->state != TERN__HANDSHAKE) {
    return;
  }
  if (h->proto != TP_PROTO_VERSION) {
    set_error_str(c, "unsupported protocol version");
    fail_connect(c, TERN_EPROTO);
    return;
  }
  c->hello_seen = true;
  if (h->cluster_urls.len > 0) {
    tern__servers_merge(c, h->cluster_urls.ptr, h->cluster_urls.len);
  }
  c->max_payload =
      h->max_payload != 0 ? h->max_payload : TP_DEFAULT_MAX_PAYLOAD;
  c->heartbeat_ms = h->heartbeat_ms;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = TP_PROTO_VERSION;
  if (o->name != NULL) {
    f.u.connect.name = (tp_str_t){o->name, (uint32_t)strlen(o->name)};
  }
  if (o->user != NULL) {
    f.u.connect.user = (tp_str_t){o->user, (uint32_t)strlen(o->user)};
  }
  if (o->pass != NULL) {
    f.u.connect.pass = (tp_str_t){o->pass, (uint32_t)strlen(o->pass)};
  }
  if (o->token != NULL) {
    f.u.connect.token = (tp_str_t){o->token, (uint32_t)strlen(o->token)};
  }
  f.u.connect.echo = o->echo;
  f.u.connect.verbose = o->verbose;
  if (tern__conn_send(c, &f) != 0) {
    set_error_str(c, "out of memory");
    fail_connect(c, TERN_ENOMEM);
  }
}

static void on_ok(tern_conn_t *c) {
  tern_connect_cb cb;
  if (c->state == TERN__HANDSHAKE && c->hello_seen) {
    if (c->reconnecting) {
      if (tern__reconnect_resume(c) != 0) {
        set_error_str(c, "out of memory");
        fail_connect(c, TERN_ENOMEM);
      }
      return;
    }
    c->state = TERN__CONNECTED;
    tern__heartbeat_start(c, c->heartbeat_ms);
    tern__conn_status(c, TERN_STATUS_CONNECTED, 0);
    if (c->state != TERN__CONNECTED) {
      return; /* closed by the status callback */
    }
    cb = c->connect_cb;
    c->connect_cb = NULL;
    if (cb != NULL) {
      cb(c, 0, c->connect_cb_data);
    }
    return;
  }
  c->stats.oks++;
}

/* An ERR frame: fails the handshake, or is reported (and ends the
 * connection when the code is fatal). */
static void on_err(tern_conn_t *c, const tp_errf_t *e) {
  int err = tern_err_from_wire((int)e->code);
  c->stats.errs++;
  tern__conn_set_error(c, e->message.ptr != NULL ? e->message.ptr : "",
                       e->message.len);
  if (c->state == TERN__HANDSHAKE) {
    fail_connect(c, err);
    return;
  }
  report_error(c, err, (int)e->code);
  if (tp_wire_code_is_fatal((int)e->code)) {
    tern__conn_lost(c, err);
  } else if (c->state == TERN__CONNECTED) {
    tern__on_refusal(c, err, (int)e->code);
  }
}

static void handle_frame(tern_conn_t *c, const tp_frame_t *f) {
  tp_frame_t pong;
  char text[64];
  switch (f->type) {
  case TP_HELLO:
    on_hello(c, &f->u.hello);
    break;
  case TP_OK:
    on_ok(c);
    break;
  case TP_ERR:
    on_err(c, &f->u.err);
    break;
  case TP_PING:
    tp_frame_init(&pong, TP_PONG);
    if (tern__conn_send(c, &pong) != 0) {
      set_error_str(c, "out of memory");
      fail(c, TERN_ENOMEM);
    }
    break;
  case TP_PONG:
    tern__on_pong(c);
    break;
  case TP_MSG:
    if (c->state == TERN__CONNECTED) {
      tern__sub_on_msg(c, &f->u.msg);
    }
    break;
  case TP_PUBACK:
    tern__on_puback(c, f->u.puback.ack_id, f->u.puback.receivers);
    break;
  case TP_DROPPED:
    tern__sub_on_dropped(c, f->u.dropped.sid, f->u.dropped.count);
    break;
  case TP_GOAWAY:
    tern__conn_set_error(
        c, f->u.goaway.reason.ptr != NULL ? f->u.goaway.reason.ptr : "",
        f->u.goaway.reason.len);
    c->goaway_seen = true;
    report_error(c, TERN_EGOAWAY, 0);
    /* The broker stops reading but still flushes to us until it closes:
     * keep reading to the EOF, and hold new frames for the next broker. */
    if (c->state == TERN__CONNECTED && c->opts.o.reconnect && !c->goaway) {
      c->goaway = true;
      tern__buffering_started(c);
    }
    break;
  default:
    snprintf(text, sizeof(text), "unexpected %s frame from the server",
             tp_frame_type_name(f->type));
    set_error_str(c, text);
    fail(c, TERN_EPROTO);
    break;
  }
}

/*
 * Decodes and handles every complete frame buffered, in order, until the
 * buffer is empty, reading is paused, or a callback ended the connection.
 * Re-entrant calls (resume from inside a callback) are avoided by the
 * `dispatching` depth: the outer loop simply continues.
 */
static void dispatch_frames(tern_conn_t *c) {
  tp_frame_t f;
  int rc;
  c->dispatching++;
  while (!c->paused &&
         (c->state == TERN__HANDSHAKE || c->state == TERN__CONNECTED)) {
    rc = tp_reader_next(c->reader, &f);
    if (rc == 0) {
      break;
    }
    if (rc < 0) {
      set_error_str(c, tp_reader_errmsg(c->reader));
      fail(c, TERN_EPROTO);
      break;
    }
    handle_frame(c, &f);
  }
  c->dispatching--;
}

void tern__conn_dispatch(tern_conn_t *c) {
  if (c->dispatching == 0) {
    dispatch_frames(c);
  }
}

static void on_connected(uv_connect_t *req, int status) {
  tern_conn_t *c = req->handle->data;
  int rc;
  if (status == UV_ECANCELED || c->state != TERN__CONNECTING) {
    return;
  }
  if (status < 0) {
    set_error_str(c, uv_strerror(status));
    fail_connect(c, status);
    return;
  }
  c->tcp_connected = true;
  c->state = TERN__HANDSHAKE;
  uv_tcp_nodelay(&c->tcp, 1);
  rc = tern__tls_begin(c);
  if (rc != 0) {
    fail_connect(c, rc);
    return;
  }
  start_reading(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  tern_conn_t *c = req->data;
  int rc;
  c->resolving = false;
  c->refs--;
  if (c->state != TERN__CONNECTING) {
    uv_freeaddrinfo(res);
    maybe_free(c);
    return;
  }
  if (status < 0) {
    uv_freeaddrinfo(res);
    set_error_str(c, uv_strerror(status));
    fail_connect(c, status);
    return;
  }
  rc = uv_tcp_connect(&c->connect_req, &c->tcp, res->ai_addr, on_connected);
  uv_freeaddrinfo(res);
  if (rc != 0) {
    set_error_str(c, uv_strerror(rc));
    fail_connect(c, rc);
  }
}

void tern__timer_want(tern_conn_t *c, uint64_t deadline) {
  uint64_t now;
  if (c->state == TERN__CLOSING || deadline == 0) {
    return;
  }
  if (c->timer_due != 0 && c->timer_due <= deadline) {
    return;
  }
  now = uv_now(c->loop);
  uv_timer_start(&c->timer, on_timer, deadline > now ? deadline - now : 0, 0);
  c->timer_due = deadline;
}

/* The single deadline timer: connect timeout, close bound, request and
 * flush timeouts. It re-arms itself for the next deadline. */
static void on_timer(uv_timer_t *t) {
  tern_conn_t *c = t->data;
  uint64_t now = uv_now(c->loop);
  uint64_t next;
  bool connecting;
  c->timer_due = 0;
  if (c->state == TERN__CLOSING) {
    close_handles(c);
    return;
  }
  connecting = c->state == TERN__CONNECTING || c->state == TERN__HANDSHAKE;
  if (connecting && now >= c->connect_deadline) {
    set_error_str(c, "connect timed out");
    fail_connect(c, TERN_ETIMEOUT);
  }
  next = tern__expire(c, now);
  connecting = c->state == TERN__CONNECTING || c->state == TERN__HANDSHAKE;
  if (connecting && (next == 0 || c->connect_deadline < next)) {
    next = c->connect_deadline;
  }
  tern__timer_want(c, next);
}

int tern_conn_connect(tern_conn_t **out, uv_loop_t *loop,
                      const tern_options_t *opts, tern_connect_cb cb,
                      void *cb_data) {
  tern_options_t own; /* the caller's struct at the library's size */
  tern_conn_t *c;
  int rc;

  if (out == NULL || loop == NULL) {
    return TERN_EINVAL;
  }
  *out = NULL;
  if (opts == NULL) {
    tern_options_init(&own);
  } else if (tern__options_import(&own, opts) != 0) {
    return TERN_EINVAL;
  }
  opts = &own;
  if (opts->port < 1 || opts->port > 65535 || opts->host[0] == '\0') {
    return TERN_EINVAL;
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    return TERN_ENOMEM;
  }
  rc = tern__opts_copy(&c->opts, opts);
  if (rc == 0) {
    rc = tern__servers_init(c);
    if (rc == 0) {
      rc = tern__breaker_create(c);
    }
    if (rc != 0) {
      tern__servers_free(c);
      tern__opts_free(&c->opts);
    }
  }
  if (rc == 0 && tp_reader_create(&c->reader, TERN__MAX_FRAME_IN,
                                  READER_INITIAL_CAP) != 0) {
    tern__servers_free(c);
    tern__breaker_destroy(c);
    tern__opts_free(&c->opts);
    rc = TERN_ENOMEM;
  }
  if (rc == 0) {
    rc = uv_tcp_init(loop, &c->tcp);
    if (rc != 0) {
      tp_reader_destroy(c->reader);
      tern__servers_free(c);
      tern__breaker_destroy(c);
      tern__opts_free(&c->opts);
    }
  }
  if (rc != 0) {
    free(c);
    return rc;
  }
  c->loop = loop;
  c->state = TERN__CONNECTING;
  c->next_sid = 1;
  c->next_ack = 1;
  c->next_req = 1;
  uv_prepare_init(loop, &c->prepare);
  uv_timer_init(loop, &c->timer);
  uv_timer_init(loop, &c->rtimer);
  c->tcp.data = c;
  c->prepare.data = c;
  c->timer.data = c;
  c->rtimer.data = c;
  c->gai.data = c;
  c->refs = 4;
  tern__conn_write_start(c);

  rc = tern__conn_dial(c);
  if (rc != 0) {
    c->state = TERN__CLOSING; /* freed by the close callbacks */
    close_handles(c);
    return rc;
  }
  c->connect_cb = cb;
  c->connect_cb_data = cb_data;
  *out = c;
  return 0;
}

/*
 * Starts one connect attempt to the current server: a direct TCP connect
 * for an address literal, else a resolve first (on the thread pool). Each
 * attempt gets its own connect_timeout_ms deadline and a fresh reader, since
 * a previous stream may have stopped mid-frame.
 */
int tern__conn_dial(tern_conn_t *c) {
  const tern__server_t *s = &c->servers[c->server_idx];
  struct sockaddr_storage sa;
  struct addrinfo hints;
  char port[16];
  int rc;
  if (c->resolving) {
    return UV_EBUSY; /* an abandoned resolve has not come back yet */
  }
  if (c->reader == NULL || tp_reader_pending(c->reader) > 0) {
    tp_reader_t *r;
    if (tp_reader_create(&r, TERN__MAX_FRAME_IN, READER_INITIAL_CAP) != 0) {
      return TERN_ENOMEM;
    }
    tp_reader_destroy(c->reader);
    c->reader = r;
  }
  c->state = TERN__CONNECTING;
  c->hello_seen = false;
  c->goaway_seen = false;
  c->connect_deadline = uv_now(c->loop) + c->opts.o.connect_timeout_ms;
  if (uv_ip4_addr(s->host, s->port, (struct sockaddr_in *)&sa) == 0 ||
      uv_ip6_addr(s->host, s->port, (struct sockaddr_in6 *)&sa) == 0) {
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&sa,
                        on_connected);
  } else {
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", s->port);
    rc = uv_getaddrinfo(c->loop, &c->gai, on_resolved, s->host, port, &hints);
    if (rc == 0) {
      c->resolving = true;
      c->refs++;
    }
  }
  if (rc == 0) {
    tern__timer_want(c, c->connect_deadline);
  }
  return rc;
}

void tern_conn_close(tern_conn_t *c, tern_close_cb cb, void *cb_data) {
  tern__conn_state_t prev;
  tern_connect_cb ccb;
  if (c == NULL || c->state == TERN__CLOSING) {
    return;
  }
  prev = c->state;
  c->state = TERN__CLOSING;
  c->close_cb = cb;
  c->close_cb_data = cb_data;
  stop_reading(c);
  ccb = c->connect_cb;
  c->connect_cb = NULL;
  if (ccb != NULL) {
    ccb(c, TERN_ECLOSED, c->connect_cb_data);
  }
  tern__fail_pending(c, TERN_ECLOSED, false);
  tern__conn_status(c, TERN_STATUS_CLOSED, TERN_ECLOSED);
  if (c->resolving) {
    uv_cancel((uv_req_t *)&c->gai);
  }
  if (prev == TERN__CONNECTED && c->tcp_connected) {
    uv_timer_start(&c->timer, on_timer, c->opts.o.connect_timeout_ms, 0);
    tern__conn_close_step(c);
  } else {
    close_handles(c);
  }
}

void tern_conn_read_pause(tern_conn_t *c) {
  c->paused = true;
  stop_reading(c);
}

void tern_conn_read_resume(tern_conn_t *c) {
  if (!c->paused) {
    return;
  }
  c->paused = false;
  if (c->dispatching == 0) {
    dispatch_frames(c); /* frames buffered while paused come first */
    if (c->tls != NULL) {
      tern__tls_pull(c); /* then what the TLS session decrypted */
    }
  }
  start_reading(c);
}

bool tern_conn_is_connected(const tern_conn_t *c) {
  return c->state == TERN__CONNECTED;
}

uint64_t tern_conn_max_payload(const tern_conn_t *c) {
  return c->max_payload;
}

const char *tern_conn_last_error(const tern_conn_t *c) {
  return c->last_error;
}

void tern_conn_get_stats(const tern_conn_t *c, tern_conn_stats_t *out) {
  *out = c->stats;
}

uv_loop_t *tern_conn_loop(const tern_conn_t *c) {
  return c->loop;
}
