/*
 * One client connection (see conn.h for the lifetime rules).
 */
#include "session/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "delivery/handoff.h"
#include "delivery/interest.h"
#include "delivery/router.h"
#include "delivery/worker.h"
#include "tern_proto/errors.h"
#include "tern_proto/topic.h"

static const uint8_t FRAME_PING[] = {0, 0, 0, 2, 0x91, TP_PING};
static const uint8_t FRAME_PONG[] = {0, 0, 0, 2, 0x91, TP_PONG};
static const uint8_t FRAME_OK[] = {0, 0, 0, 2, 0x91, TP_OK};

static size_t process_frames(conn_t *c, const uint8_t *bytes, size_t len);
static void keep_unhandled(conn_t *c, const uint8_t *bytes, size_t len,
                           size_t used);
static void close_transport(conn_t *c);

/* The largest frame c may send now: small until CONNECT (server.h). */
static inline size_t conn_max_frame(const conn_t *c) {
  size_t m = c->w->broker->cfg.max_frame;
  return c->state == CONN_HANDSHAKE && m > SERVER_PRECONNECT_FRAME_MAX
             ? SERVER_PRECONNECT_FRAME_MAX
             : m;
}

/* ---- output ------------------------------------------------------------ */

void conn_want_flush(conn_t *c) {
  if (c->state != CONN_CLOSED)
    endpoint_want_flush(&c->ep);
}

static void send_small(conn_t *c, const uint8_t *bytes, size_t len) {
  if (c->state >= CONN_CLOSED)
    return;
  if (outq_push_small(&c->out, bytes, len) == 0)
    conn_want_flush(c);
}

int conn_send_bytes(conn_t *c, const uint8_t *bytes, size_t len) {
  if (c->state >= CONN_CLOSED)
    return 0;
  int rc;
  if (len <= OUTQ_INLINE_MAX) {
    rc = outq_push_small(&c->out, bytes, len);
  } else {
    msgbuf_t *mb = msgbuf_get(c->w->bufs);
    if (mb == NULL)
      return TP_ENOMEM;
    rc = tp_buf_append(&mb->bytes, bytes, len);
    if (rc != 0) {
      msgbuf_unref(mb);
      return rc;
    }
    rc = outq_push_buf(&c->out, mb);
  }
  if (rc == 0)
    conn_want_flush(c);
  return rc;
}

int conn_send_frame(conn_t *c, const tp_frame_t *f) {
  if (c->state >= CONN_CLOSED)
    return 0;
  tp_buf_t *b = &c->w->scratch;
  tp_buf_reset(b);
  int rc = tp_frame_encode(b, f);
  if (rc != 0)
    return rc;
  return conn_send_bytes(c, b->data, b->len);
}

static void queue_err(conn_t *c, int code, const char *msg) {
  tp_frame_t f;
  tp_frame_init(&f, TP_ERR);
  f.u.err.code = (uint32_t)code;
  f.u.err.message.ptr = msg;
  f.u.err.message.len = (uint32_t)strlen(msg);
  conn_send_frame(c, &f);
}

static void on_write_done(void *owner, int status) {
  conn_t *c = owner;
  outq_write_done(&c->out, status == 0);
  if (status < 0 && status != UV_ECANCELED) {
    LOG(LOG_DEBUG, "conn %llu (%s): write failed: %s",
        (unsigned long long)c->id, c->addr, uv_strerror(status));
    conn_abort(c);
    return;
  }
  if (!outq_empty(&c->out) || c->state == CONN_CLOSING)
    conn_want_flush(c);
}

/*
 * A closing connection's queue is flushed into the transport. Closing the
 * socket now while the peer's unread frames sit in our receive buffer
 * makes the kernel reset the connection and throw away whatever it has
 * not sent yet: the ERR or GOAWAY and the messages before it would be
 * lost exactly when a client keeps publishing. So the close waits, on a
 * short timer, until the peer has acknowledged every byte (as the
 * transport counts them: TIOCOUTQ for TCP), or until the
 * close deadline armed by begin_close.
 */
static void close_when_delivered(conn_t *c) {
  if (transport_unacked(c->tr) == 0 ||
      uv_now(c->w->loop) >= c->close_deadline) {
    close_transport(c);
    return;
  }
  if (!c->lingering) {
    c->lingering = true;
    transport_timer_start(c->tr, 5, 5);
  }
}

/* The output queue writes through the transport (data/ cannot name it). */
static int writer_try_write(void *ctx, const uv_buf_t *bufs, unsigned n) {
  return transport_try_write(ctx, bufs, n);
}
static int writer_write(void *ctx, const uv_buf_t *bufs, unsigned n) {
  return transport_write(ctx, bufs, n);
}
static const outq_writer_t conn_writer = {
    .try_write = writer_try_write,
    .write = writer_write,
};

/*
 * One gathered write for this loop turn. A closing connection whose queue
 * has emptied is closed here, which is how "send ERR, flush, close" ends.
 */
void conn_flush(conn_t *c) {
  if (c->state == CONN_CLOSED)
    return;
  int rc = outq_flush(&c->out, c->w->write_cap, &conn_writer, c->tr);
  if (rc < 0) {
    LOG(LOG_DEBUG, "conn %llu (%s): write failed: %s",
        (unsigned long long)c->id, c->addr, uv_strerror(rc));
    close_transport(c);
    return;
  }
  if (rc == 1 && !c->out.writing) {
    conn_want_flush(c); /* the per-turn cap left some: next turn */
    return;
  }
  if (c->state == CONN_CLOSING && outq_empty(&c->out))
    close_when_delivered(c);
}

/* ---- closing ----------------------------------------------------------- */

static void stop_reading(conn_t *c) {
  if (c->reading) {
    transport_stop_read(c->tr);
    c->reading = false;
  }
}

/* Leaves the live states: stop reading, arm the close deadline, and let
 * the before-sleep hook tear the subscriptions down. */
static void begin_close(conn_t *c) {
  worker_t *w = c->w;
  if (c->state == CONN_HANDSHAKE || c->state == CONN_ACTIVE) {
    w->nlive--;
    if (broker_multi(w->broker))
      atomic_fetch_sub_explicit(&w->broker->nlive, 1, memory_order_relaxed);
  }
  c->state = CONN_CLOSING;
  c->ep.active = false;
  stop_reading(c);
  list_remove(&c->resume_link);
  list_remove(&c->partial_link);
  transport_timer_start(c->tr, w->broker->cfg.drain_timeout_ms, 0);
  c->close_deadline = uv_now(w->loop) + w->broker->cfg.drain_timeout_ms;
  if (!list_linked(&c->close_link))
    list_insert_tail(&w->close_list, &c->close_link);
  conn_want_flush(c);
}

void conn_fail(conn_t *c, int code, const char *msg) {
  if (c->state >= CONN_CLOSING)
    return;
  LOG(LOG_DEBUG, "conn %llu (%s): closing with ERR %d: %s",
      (unsigned long long)c->id, c->addr, code, msg);
  if (code == TP_WIRE_SLOW_CONSUMER)
    CONN_EVENT(c->w, slow_consumer, c);
  /* What was not written yet will never be: only the ERR goes out. */
  outq_drop_queued_msgs(&c->out);
  if (code > 0)
    queue_err(c, code, msg);
  begin_close(c);
}

void conn_send_err(conn_t *c, int code, const char *msg) {
  if (tp_wire_code_is_fatal(code))
    conn_fail(c, code, msg);
  else
    queue_err(c, code, msg);
}

void conn_goaway(conn_t *c, const char *reason) {
  if (c->state >= CONN_CLOSING)
    return;
  tp_frame_t f;
  tp_frame_init(&f, TP_GOAWAY);
  f.u.goaway.reason.ptr = reason;
  f.u.goaway.reason.len = (uint32_t)strlen(reason);
  conn_send_frame(c, &f);
  begin_close(c);
}

void conn_abort(conn_t *c) {
  if (c->state == CONN_CLOSED)
    return;
  if (c->state != CONN_CLOSING)
    begin_close(c);
  outq_drop_queued_msgs(&c->out);
  close_transport(c);
}

/*
 * Releases everything the connection holds in the server: its
 * subscriptions (out of the index, pending entries detached, publishers
 * blocked on them released) and its own place among blocked publishers.
 */
void conn_teardown(conn_t *c) {
  if (c->torn_down)
    return;
  c->torn_down = true;
  list_remove(&c->close_link);
  list_remove(&c->resume_link);
  worker_t *w = c->w;
  size_t n = c->subs ? hashmap_size(c->subs) : 0;
  /* Every subscription goes: detach their chunk runs in one walk. */
  outq_detach_all_subs(&c->out);
  if (n > 0) {
    sub_t **all = malloc(n * sizeof *all);
    size_t pos = 0, k = 0;
    const void *key;
    size_t klen;
    void *val;
    if (all != NULL) {
      while (k < n && hashmap_next(c->subs, &pos, &key, &klen, &val) == 1)
        all[k++] = val;
      hashmap_clear(c->subs);
      for (size_t i = 0; i < k; i++) {
        interest_remove(w->broker, all[i]);
      }
      free(all);
    } else {
      /* No memory for the list: one at a time from the start. */
      while (pos = 0, hashmap_next(c->subs, &pos, &key, &klen, &val) == 1)
        conn_remove_sub(c, val);
    }
  }
  for (size_t i = 0; i < c->nblocked; i++)
    sub_remove_waiter(c->blocked_on[i], c);
  c->nblocked = 0;
  /* Blocked by subscriptions of other loops: they forget it. */
  for (size_t i = 0; i < c->nrblocked; i++)
    handoff_notice(w, c->rblocked[i].wid, HANDOFF_FORGET, c->rblocked_sub[i],
                   c->id);
  c->nrblocked = 0;
  c->nheld = c->fences;
}

static void on_closed(void *owner) {
  conn_t *c = owner;
  /* Cancelled writes have called back by now: nothing is in flight. */
  outq_clear(&c->out);
  rx_tail_free(&c->w->rx, &c->rx);
  hashmap_destroy(c->subs);
  free(c->blocked_on);
  free(c->rblocked);
  free(c->rblocked_sub);
  if (c->w->conn_by_id != NULL)
    hashmap_remove(c->w->conn_by_id, &c->id, sizeof c->id);
  conn_auth_release(c);
  free(c->name);
  if (c->hooks != NULL)
    c->hooks->on_closed(c);
  c->w->conn_events.closed(c->w, c);
  free(c);
}

static void close_transport(conn_t *c) {
  if (c->state == CONN_CLOSED)
    return;
  if (c->state != CONN_CLOSING)
    begin_close(c);
  conn_teardown(c);
  c->state = CONN_CLOSED;
  stop_reading(c);
  list_remove(&c->ep.flush_link);
  list_remove(&c->close_link);
  list_remove(&c->resume_link);
  LOG_CONN(LOG_INFO, c->id, c->addr, c->name,
           "closed: %llu frames in, %llu msgs out",
           (unsigned long long)c->frames_in,
           (unsigned long long)c->out.msgs_written);
  c->w->ops.closed_bytes_out += c->out.bytes_written;
  c->w->ops.closed_msgs_out += c->out.msgs_written;
  if (c->was_active && c->hooks == NULL)
    CONN_EVENT(c->w, disconnected, c);
  transport_close(c->tr);
}

/* ---- timers ------------------------------------------------------------ */

/*
 * One timer per connection, by state: the connect timeout, then the
 * heartbeat, then the close deadline.
 */
static void on_timer(void *owner) {
  conn_t *c = owner;
  switch (c->state) {
  case CONN_HANDSHAKE:
    conn_fail(c, TP_WIRE_CONNECT_TIMEOUT, "connect timeout");
    break;
  case CONN_ACTIVE:
    /* A blocked publisher is not read, so its silence proves nothing. */
    if (c->heard || conn_is_blocked(c)) {
      c->heard = false;
      c->pings_out = 0;
    } else if (c->pings_out >= 2) {
      c->w->stats.stale_conns++;
      conn_fail(c, TP_WIRE_STALE, "stale connection");
    } else {
      c->pings_out++;
      send_small(c, FRAME_PING, sizeof FRAME_PING);
    }
    break;
  case CONN_CLOSING:
    if (c->lingering) {
      close_when_delivered(c);
      break;
    }
    LOG(LOG_DEBUG, "conn %llu (%s): close deadline, dropping %zu entries",
        (unsigned long long)c->id, c->addr, c->out.nentries);
    close_transport(c);
    break;
  case CONN_CLOSED:
    break;
  }
}

/* ---- the endpoint (delivery/endpoint.h) -------------------------------- */

static conn_t *ep_conn(const endpoint_t *ep) {
  return ep->owner;
}
static void ep_fail_slow(endpoint_t *ep, const char *msg) {
  conn_fail(ep_conn(ep), TP_WIRE_SLOW_CONSUMER, msg);
}
static int ep_send_frame(endpoint_t *ep, const tp_frame_t *f) {
  return conn_send_frame(ep_conn(ep), f);
}
static void ep_remove_sub(endpoint_t *ep, sub_t *s) {
  conn_remove_sub(ep_conn(ep), s);
}
static void ep_note_request(endpoint_t *ep, const char *reply, size_t len) {
  conn_auth_note_request(ep_conn(ep), reply, len);
}
static bool ep_is_blocked(const endpoint_t *ep) {
  return conn_is_blocked(ep_conn(ep));
}

static const endpoint_ops_t conn_endpoint_ops = {
    .fail_slow = ep_fail_slow,
    .send_frame = ep_send_frame,
    .remove_sub = ep_remove_sub,
    .note_request = ep_note_request,
    .is_blocked = ep_is_blocked,
};

void conn_init_endpoint(conn_t *c) {
  c->ep.ops = &conn_endpoint_ops;
  c->ep.owner = c;
  c->ep.flush_list = &c->w->flush_list;
  list_init(&c->ep.flush_link);
  c->ep.active = c->state == CONN_ACTIVE;
  c->ep.echo = true;
  c->ep.notes_requests = false;
  c->ep.id = c->id;
  c->ep.addr = c->addr;
}

/* ---- subscriptions ----------------------------------------------------- */

void conn_remove_sub(conn_t *c, sub_t *s) {
  c->pattern_bytes -= s->plen + s->qlen;
  hashmap_remove(c->subs, s->sid_key, sizeof s->sid_key);
  interest_remove(c->w->broker, s);
}

int conn_block_on(conn_t *c, sub_t *s) {
  if (c->nblocked == c->blocked_cap) {
    size_t cap = c->blocked_cap ? c->blocked_cap * 2 : 4;
    sub_t **a = realloc(c->blocked_on, cap * sizeof *a);
    if (a == NULL)
      return TP_ENOMEM;
    c->blocked_on = a;
    c->blocked_cap = cap;
  }
  c->blocked_on[c->nblocked++] = s;
  c->nheld++;
  return 0;
}

void conn_unblock(conn_t *c, sub_t *s) {
  for (size_t i = 0; i < c->nblocked; i++) {
    if (c->blocked_on[i] == s) {
      c->blocked_on[i] = c->blocked_on[--c->nblocked];
      c->nheld--;
      break;
    }
  }
  if (!conn_is_blocked(c) && c->state == CONN_ACTIVE &&
      !list_linked(&c->resume_link))
    list_insert_tail(&c->w->resume_list, &c->resume_link);
}

/* ---- other loops (delivery/handoff.h) ---------------------------------- */

static conn_t *conn_by_id(worker_t *w, uint64_t id) {
  return w->conn_by_id != NULL ? hashmap_get(w->conn_by_id, &id, sizeof id)
                               : NULL;
}

int conn_block_remote(conn_t *c, sub_t *s, int wid) {
  for (size_t i = 0; i < c->nrblocked; i++) {
    if (c->rblocked_sub[i] == s)
      return 0;
  }
  if (c->nrblocked == c->rblocked_cap) {
    size_t cap = c->rblocked_cap ? c->rblocked_cap * 2 : 4;
    remote_waiter_t *a = realloc(c->rblocked, cap * sizeof *a);
    if (a != NULL)
      c->rblocked = a;
    sub_t **b = realloc(c->rblocked_sub, cap * sizeof *b);
    if (b != NULL)
      c->rblocked_sub = b;
    if (a == NULL || b == NULL)
      return TP_ENOMEM;
    c->rblocked_cap = cap;
  }
  c->rblocked[c->nrblocked] = (remote_waiter_t){c->id, wid};
  c->rblocked_sub[c->nrblocked++] = s;
  c->nheld++;
  return 1;
}

void conn_handoff_block(worker_t *w, const handoff_item_t *it) {
  conn_t *c = conn_by_id(w, it->conn_id);
  if (c == NULL || c->state != CONN_ACTIVE || c->torn_down ||
      conn_block_remote(c, it->s, it->from) < 0) {
    /* Gone, or going (or no memory: it publishes on, the subscriber's
     * queue grows): the subscription must not wait for it. */
    handoff_notice(w, it->from, HANDOFF_FORGET, it->s, it->conn_id);
    return;
  }
  /* Between frames (this is a wake-up, not a read): stop reading now. */
  stop_reading(c);
  list_remove(&c->resume_link);
  list_remove(&c->partial_link);
}

void conn_handoff_fence_ack(worker_t *w, const handoff_item_t *it) {
  conn_t *c = conn_by_id(w, it->conn_id);
  if (c == NULL || c->fences == 0)
    return;
  c->nheld--;
  if (--c->fences > 0)
    return;
  if (c->state == CONN_ACTIVE) {
    send_small(c, FRAME_PONG, sizeof FRAME_PONG);
    if (!conn_is_blocked(c) && !list_linked(&c->resume_link))
      list_insert_tail(&w->resume_list, &c->resume_link);
  }
}

void conn_handoff_err(worker_t *w, const handoff_item_t *it) {
  conn_t *c = conn_by_id(w, it->conn_id);
  if (c != NULL && c->state == CONN_ACTIVE)
    conn_send_err(c, TP_WIRE_PAYLOAD_TOO_LARGE,
                  (const char *)it->body->bytes.data);
}

void conn_handoff_unblock(worker_t *w, const handoff_item_t *it) {
  conn_t *c = conn_by_id(w, it->conn_id);
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->nrblocked; i++) {
    if (c->rblocked_sub[i] == it->s && c->rblocked[i].wid == it->from) {
      c->nrblocked--;
      c->rblocked[i] = c->rblocked[c->nrblocked];
      c->rblocked_sub[i] = c->rblocked_sub[c->nrblocked];
      c->nheld--;
      break;
    }
  }
  if (!conn_is_blocked(c) && c->state == CONN_ACTIVE &&
      !list_linked(&c->resume_link))
    list_insert_tail(&w->resume_list, &c->resume_link);
}

void conn_handoff_forget(worker_t *w, const handoff_item_t *it) {
  /* s may be gone (and its memory another subscription's): only a live
   * one of this loop is touched, and only this publisher's entry. */
  sub_t *s = hashmap_get(w->live_subs, &it->s, sizeof it->s);
  if (s != NULL)
    sub_remove_remote_waiter(s, it->from, it->conn_id);
}

/* Unblocked: first the frames already buffered, then the socket again. */
void conn_resume(conn_t *c) {
  if (c->state != CONN_ACTIVE || conn_is_blocked(c))
    return;
  c->read_turn = 0;
  const uint8_t *bytes;
  size_t len;
  rx_take(&c->rx, &bytes, &len);
  if (len > 0)
    keep_unhandled(c, bytes, len, process_frames(c, bytes, len));
  if (c->state == CONN_ACTIVE && !conn_is_blocked(c) && !c->reading) {
    if (transport_start_read(c->tr) == 0)
      c->reading = true;
  }
}

/* ---- frames ------------------------------------------------------------ */

static void ok_if_verbose(conn_t *c) {
  if (c->verbose)
    send_small(c, FRAME_OK, sizeof FRAME_OK);
}

static void handle_connect(conn_t *c, const tp_connect_t *req) {
  if (req->proto != TP_PROTO_VERSION) {
    char msg[64];
    snprintf(msg, sizeof msg, "unsupported protocol version %u", req->proto);
    conn_fail(c, TP_WIRE_PROTOCOL, msg);
    return;
  }
  if (req->name.ptr != NULL && memchr(req->name.ptr, '\0', req->name.len)) {
    conn_fail(c, TP_WIRE_PROTOCOL, "CONNECT name holds a NUL byte");
    return;
  }
  if (req->name.ptr != NULL) {
    c->name = malloc(req->name.len + 1);
    if (c->name != NULL) {
      memcpy(c->name, req->name.ptr, req->name.len);
      c->name[req->name.len] = '\0';
    }
  }
  c->ep.echo = req->echo;
  c->verbose = req->verbose;
  if (conn_auth_required(c->w)) {
    /* Frames after CONNECT wait, unread, until the verdict. */
    stop_reading(c);
    if (conn_auth_begin(c, req) != 0)
      conn_fail(c, TP_WIRE_AUTH, "authentication failed");
    return;
  }
  conn_connected(c);
}

void conn_connected(conn_t *c) {
  c->state = CONN_ACTIVE;
  c->ep.active = true;
  transport_timer_stop(c->tr);
  c->heard = false;
  if (c->w->broker->cfg.heartbeat_ms > 0)
    transport_timer_start(c->tr, c->w->broker->cfg.heartbeat_ms,
                          c->w->broker->cfg.heartbeat_ms);
  send_small(c, FRAME_OK, sizeof FRAME_OK);
  LOG_CONN(LOG_INFO, c->id, c->addr, c->name, "connected%s%s",
           c->auth_user ? " as " : "", log_field(c->auth_user));
  c->was_active = true;
  CONN_EVENT(c->w, connected, c);
}

static void handle_pub(conn_t *c, const tp_pub_t *pub) {
  const char *msg = NULL;
  int code = router_check(c->w, pub, &msg);
  if (code == 0 && !conn_may_publish(c, pub->topic.ptr, pub->topic.len)) {
    code = TP_WIRE_PERMISSION;
    msg = conn_auth_denial();
  }
  if (code != 0) {
    conn_send_err(c, code, msg);
    return;
  }
  c->msgs_in++;
  uint64_t receivers = 0;
  if (router_publish(c->w, &c->ep, pub, &receivers) != 0) {
    conn_fail(c, TP_WIRE_PROTOCOL, "out of memory");
    return;
  }
  if (c->state != CONN_ACTIVE)
    return; /* it was one of its own slow consumers */
  if (pub->retain) {
    code = router_retain(c->w, pub, &msg);
    if (code == TP_ENOMEM) {
      conn_fail(c, TP_WIRE_PROTOCOL, "out of memory");
      return;
    }
    if (code != 0)
      conn_send_err(c, code, msg);
  }
  if (code == 0)
    ok_if_verbose(c);
  if (pub->has_ack) {
    tp_frame_t f;
    tp_frame_init(&f, TP_PUBACK);
    f.u.puback.ack_id = pub->ack;
    f.u.puback.receivers = receivers;
    conn_send_frame(c, &f);
  }
}

static void handle_sub(conn_t *c, const tp_sub_t *req) {
  worker_t *w = c->w;
  if (tp_pattern_validate(req->pattern.ptr, req->pattern.len,
                          w->broker->cfg.max_topic) != 0) {
    conn_send_err(c, TP_WIRE_INVALID_TOPIC, "invalid pattern");
    return;
  }
  if (!conn_may_subscribe(c, req->pattern.ptr, req->pattern.len)) {
    conn_send_err(c, TP_WIRE_PERMISSION, conn_auth_denial());
    return;
  }
  uint8_t key[8];
  for (int i = 0; i < 8; i++)
    key[i] = (uint8_t)(req->sid >> (8 * i));
  if (hashmap_get(c->subs, key, sizeof key) != NULL) {
    conn_send_err(c, TP_WIRE_DUPLICATE_SID, "duplicate sid");
    return;
  }
  if (w->broker->cfg.max_subs > 0 &&
      hashmap_size(c->subs) >= w->broker->cfg.max_subs) {
    conn_send_err(c, TP_WIRE_TOO_MANY_SUBS, "too many subscriptions");
    return;
  }
  uint64_t sub_bytes = (uint64_t)req->pattern.len +
                       (req->queue.ptr != NULL ? req->queue.len : 0);
  if (w->broker->cfg.max_pattern_bytes > 0 &&
      c->pattern_bytes + sub_bytes > w->broker->cfg.max_pattern_bytes) {
    conn_send_err(c, TP_WIRE_TOO_MANY_SUBS,
                  "too many subscriptions: max_pattern_bytes reached");
    return;
  }
  sub_t *s = sub_create(c, &c->ep, &c->out, &w->sub_env, req,
                        w->broker->cfg.max_pending_msgs,
                        w->broker->cfg.max_pending_bytes);
  if (s == NULL) {
    conn_fail(c, TP_WIRE_PROTOCOL, "out of memory");
    return;
  }
  if (hashmap_put(c->subs, s->sid_key, sizeof s->sid_key, s) != 0) {
    sub_destroy(s);
    conn_fail(c, TP_WIRE_PROTOCOL, "out of memory");
    return;
  }
  if (interest_add(w->broker, s) != 0) {
    hashmap_remove(c->subs, s->sid_key, sizeof s->sid_key);
    sub_destroy(s);
    conn_fail(c, TP_WIRE_PROTOCOL, "out of memory");
    return;
  }
  c->pattern_bytes += s->plen + s->qlen;
  LOG(LOG_DEBUG, "conn %llu: SUB sid %llu '%s'%s%s", (unsigned long long)c->id,
      (unsigned long long)s->sid, log_field(s->pattern),
      s->queue ? " queue " : "", log_field(s->queue));
  ok_if_verbose(c);
  /* After the OK (verbose clients see the SUB answered first), before any
   * live message: both go through the same ordered output queue. */
  router_deliver_retained(w, s);
}

static void handle_unsub(conn_t *c, const tp_unsub_t *req) {
  uint8_t key[8];
  for (int i = 0; i < 8; i++)
    key[i] = (uint8_t)(req->sid >> (8 * i));
  sub_t *s = hashmap_get(c->subs, key, sizeof key);
  if (s == NULL) {
    conn_send_err(c, TP_WIRE_UNKNOWN_SID, "unknown sid");
    return;
  }
  /* max_msgs counts deliveries since the SUB: if they are already
   * reached (or max_msgs is 0) the subscription ends now. */
  if (req->has_max && req->max_msgs > s->delivered)
    s->unsub_at = req->max_msgs;
  else
    conn_remove_sub(c, s);
  ok_if_verbose(c);
}

static void handle_frame(conn_t *c, const tp_frame_t *f) {
  char msg[96];
  if (c->state == CONN_HANDSHAKE) {
    if (f->type == TP_PING) {
      send_small(c, FRAME_PONG, sizeof FRAME_PONG);
    } else if (f->type == TP_CONNECT) {
      handle_connect(c, &f->u.connect);
    } else {
      snprintf(msg, sizeof msg, "expected CONNECT, got %s",
               tp_frame_type_name(f->type));
      conn_fail(c, TP_WIRE_PROTOCOL, msg);
    }
    return;
  }
  switch (f->type) {
  case TP_PUB:
    handle_pub(c, &f->u.pub);
    break;
  case TP_SUB:
    handle_sub(c, &f->u.sub);
    break;
  case TP_UNSUB:
    handle_unsub(c, &f->u.unsub);
    break;
  case TP_PING:
    if (c->ep.handed_to != 0) {
      /* Messages of c went to other loops: PONG once they took them,
       * and nothing after the PING is handled before (conn_is_blocked). */
      uint64_t to = c->ep.handed_to;
      c->ep.handed_to = 0;
      for (int i = 0; to != 0; i++, to >>= 1) {
        if (to & 1) {
          handoff_notice(c->w, i, HANDOFF_FENCE, NULL, c->id);
          c->fences++;
          c->nheld++;
        }
      }
      break;
    }
    send_small(c, FRAME_PONG, sizeof FRAME_PONG);
    break;
  case TP_PONG:
    break; /* any frame counts as heard */
  case TP_CONNECT:
    conn_fail(c, TP_WIRE_PROTOCOL, "CONNECT sent twice");
    break;
  default:
    snprintf(msg, sizeof msg, "%s is not a client frame",
             tp_frame_type_name(f->type));
    conn_fail(c, TP_WIRE_PROTOCOL, msg);
    break;
  }
}

/*
 * Handles every complete frame in [bytes, bytes + len), in order, until
 * none is left, the connection closes, or a full `block` subscription
 * blocks it: then it stops reading, and the frames not handled wait in
 * the connection's tail for conn_resume. Returns the bytes handled.
 */
static size_t process_frames(conn_t *c, const uint8_t *bytes, size_t len) {
  tp_decoder_t *dec = c->w->rx.dec;
  size_t max_frame = conn_max_frame(c);
  size_t at = 0;
  while ((c->state == CONN_HANDSHAKE || c->state == CONN_ACTIVE) &&
         !conn_is_blocked(c) && !c->authenticating) {
    if (c->hooks != NULL) {
      size_t size = 0;
      int r = tp_frame_size(bytes + at, len - at, max_frame, &size);
      if (r == 0 || size > len - at)
        break;
      if (r < 0) {
        conn_fail(c, tp_err_wire_code(r),
                  r == TP_ETOOBIG ? "frame too large" : "empty frame");
        break;
      }
      c->frames_in++;
      c->heard = true;
      c->pings_out = 0;
      c->hooks->on_frame(c, bytes + at + TP_LEN_PREFIX, size - TP_LEN_PREFIX);
      at += size;
      continue;
    }
    tp_frame_t f;
    size_t size = 0;
    int r = tp_frame_next(dec, bytes + at, len - at, max_frame, &f, &size);
    if (r == 0)
      break;
    if (r < 0) {
      conn_fail(c, tp_err_wire_code(r), tp_decoder_errmsg(dec));
      break;
    }
    at += size;
    c->frames_in++;
    c->heard = true;
    c->pings_out = 0;
    handle_frame(c, &f);
    if (f.type == TP_CONNECT) /* the limit after CONNECT */
      max_frame = conn_max_frame(c);
  }
  if (conn_is_blocked(c))
    stop_reading(c);
  return at;
}

/*
 * What a live connection has not handled stays for later; a closing one
 * will never handle it. A connection that reads and keeps the start of a
 * frame is in the server's partial list: the frame has frame_timeout_ms
 * from when it started (when the last frame before it was handled) to
 * arrive whole (server.c). One that is not read (blocked, authenticating)
 * is not to blame for what it keeps.
 */
static void keep_unhandled(conn_t *c, const uint8_t *bytes, size_t len,
                           size_t used) {
  bool live = c->state == CONN_HANDSHAKE || c->state == CONN_ACTIVE;
  if (!live)
    used = len;
  if (rx_keep(&c->w->rx, &c->rx, bytes, len, used) != 0) {
    conn_fail(c, TP_WIRE_PROTOCOL, "out of memory");
    return;
  }
  if (live && c->rx.len > 0 && !conn_is_blocked(c) && !c->authenticating) {
    /* A new frame started (or the first): to the tail, so the list stays
     * oldest first. */
    if (!list_linked(&c->partial_link) || used > 0) {
      list_remove(&c->partial_link);
      c->partial_since = uv_now(c->w->loop);
      list_insert_tail(&c->w->partial_list, &c->partial_link);
    }
  } else {
    list_remove(&c->partial_link);
  }
}

/* ---- reading ----------------------------------------------------------- */

static void on_alloc(void *owner, uv_buf_t *buf) {
  conn_t *c = owner;
  rx_alloc(&c->w->rx, &c->rx, conn_max_frame(c), buf);
}

static void on_read_error(void *owner, int err) {
  conn_t *c = owner;
  if (err == UV_ENOBUFS) {
    if (c->rx.over_cap) {
      c->w->stats.inbound_refused++;
      LOG(LOG_WARN,
          "conn %llu (%s): a frame would take the read buffers past "
          "max_inbound_total %llu, closing",
          (unsigned long long)c->id, c->addr,
          (unsigned long long)c->w->broker->cfg.max_inbound_total);
      conn_fail(c, TP_WIRE_FRAME_TOO_LARGE,
                "frame refused: server read buffers full");
    } else {
      conn_fail(c, TP_WIRE_PROTOCOL, "out of memory");
    }
    return;
  }
  LOG(LOG_DEBUG, "conn %llu (%s): read: %s", (unsigned long long)c->id, c->addr,
      uv_strerror(err));
  if (c->state < CONN_CLOSING)
    begin_close(c);
  stop_reading(c);
}

static void on_data(void *owner, size_t nread) {
  conn_t *c = owner;
  c->bytes_in += (uint64_t)nread;
  const uint8_t *bytes;
  size_t len;
  rx_received(&c->w->rx, &c->rx, nread, &bytes, &len);
  keep_unhandled(c, bytes, len, process_frames(c, bytes, len));
  /* libuv reads a busy socket up to 32 times per turn: a fast publisher
   * would queue megabytes before any subscriber gets a write. Past the
   * budget it yields, and resumes reading at the next turn. */
  c->read_turn += nread;
  if (c->read_turn >= READBUF_TURN_BUDGET && c->reading &&
      c->state == CONN_ACTIVE) {
    stop_reading(c);
    if (!list_linked(&c->resume_link))
      list_insert_tail(&c->w->resume_list, &c->resume_link);
  }
}

/* ---- accept ------------------------------------------------------------ */

static const transport_cbs_t conn_transport_cbs = {
    .alloc = on_alloc,
    .on_data = on_data,
    .on_error = on_read_error,
    .on_write_done = on_write_done,
    .on_timer = on_timer,
    .on_closed = on_closed,
};

int conn_accept(worker_t *w, transport_t *tr) {
  conn_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    transport_close(tr);
    return TP_ENOMEM;
  }
  c->w = w;
  c->id = broker_multi(w->broker)
              ? atomic_fetch_add_explicit(&w->broker->next_conn_id, 1,
                                          memory_order_relaxed) +
                    1
              : ++w->next_conn_id;
  conn_init_endpoint(c);
  list_init(&c->all_link);
  list_init(&c->close_link);
  list_init(&c->resume_link);
  list_init(&c->partial_link);
  outq_init(&c->out, w->entries);
  c->tr = tr;
  transport_set_owner(tr, &conn_transport_cbs, c);
  list_insert_tail(&w->conns, &c->all_link);
  w->nconns++;
  /* From here on, failures go through the one close path. */
  c->state = CONN_HANDSHAKE;
  w->nlive++;
  uint64_t nlive = w->nlive;
  if (broker_multi(w->broker))
    nlive =
        atomic_fetch_add_explicit(&w->broker->nlive, 1, memory_order_relaxed) +
        1;
  if (hashmap_create(&c->subs, 0) != 0 ||
      (w->conn_by_id != NULL &&
       hashmap_put(w->conn_by_id, &c->id, sizeof c->id, c) != 0)) {
    conn_abort(c);
    return UV_ENOMEM;
  }
  struct sockaddr_storage ss;
  if (transport_peer(tr, &ss) == 0)
    transport_addr_name(&ss, c->addr, sizeof c->addr);
  else
    snprintf(c->addr, sizeof c->addr, "?");
  w->stats.conns_accepted++;

  if (w->broker->cfg.max_connections > 0 &&
      nlive > w->broker->cfg.max_connections) {
    w->stats.conns_refused++;
    LOG(LOG_WARN, "conn %llu (%s) refused: too many connections",
        (unsigned long long)c->id, c->addr);
    conn_fail(c, TP_WIRE_TOO_MANY_CONNS, "too many connections");
    return 0;
  }
  LOG_CONN(LOG_DEBUG, c->id, c->addr, NULL, "accepted");
  msgbuf_t *hello = w->hello != NULL ? w->hello : w->broker->hello;
  msgbuf_ref(hello);
  outq_push_buf(&c->out, hello);
  conn_want_flush(c);
  transport_timer_start(tr, w->broker->cfg.connect_timeout_ms, 0);
  if (transport_start_read(tr) == 0)
    c->reading = true;
  return 0;
}

int conn_open_hooked(worker_t *w, transport_t *tr, const conn_hooks_t *hooks,
                     void *ctx, conn_t **out) {
  *out = NULL;
  conn_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    transport_close(tr);
    return TP_ENOMEM;
  }
  c->w = w;
  c->id = ++w->next_conn_id;
  conn_init_endpoint(c);
  c->ep.route = true;
  c->ep.echo = false;
  c->hooks = hooks;
  c->hook_ctx = ctx;
  list_init(&c->all_link);
  list_init(&c->close_link);
  list_init(&c->resume_link);
  list_init(&c->partial_link);
  outq_init(&c->out, w->entries);
  c->tr = tr;
  transport_set_owner(tr, &conn_transport_cbs, c);
  list_insert_tail(&w->conns, &c->all_link);
  w->nconns++;
  c->state = CONN_HANDSHAKE;
  w->nlive++;
  if (broker_multi(w->broker))
    atomic_fetch_add_explicit(&w->broker->nlive, 1, memory_order_relaxed);
  if (hashmap_create(&c->subs, 0) != 0 ||
      (w->conn_by_id != NULL &&
       hashmap_put(w->conn_by_id, &c->id, sizeof c->id, c) != 0)) {
    c->hooks = NULL; /* the caller learns of it by the return */
    conn_abort(c);
    return TP_ENOMEM;
  }
  struct sockaddr_storage ss;
  if (transport_peer(tr, &ss) == 0)
    transport_addr_name(&ss, c->addr, sizeof c->addr);
  else
    snprintf(c->addr, sizeof c->addr, "?");
  transport_timer_start(tr, w->broker->cfg.connect_timeout_ms, 0);
  if (transport_start_read(tr) == 0)
    c->reading = true;
  *out = c;
  return 0;
}

void conn_hooks_ready(conn_t *c) {
  c->state = CONN_ACTIVE;
  c->ep.active = true;
  transport_timer_stop(c->tr);
  c->heard = false;
  if (c->w->broker->cfg.heartbeat_ms > 0)
    transport_timer_start(c->tr, c->w->broker->cfg.heartbeat_ms,
                          c->w->broker->cfg.heartbeat_ms);
  c->was_active = true;
}
