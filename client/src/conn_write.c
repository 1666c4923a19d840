/*
 * The outbound write path of a connection. Frames are encoded into the
 * pending batch (tern__conn_send, publishes); once per loop iteration, from
 * a uv_prepare_t hook, the batch becomes the one uv_write in flight, so
 * every frame made during a loop turn goes out in a single write. The
 * graceful close waits for that write, flushes what is left, then shuts the
 * socket down (tern__conn_close_step).
 *
 * The held buffer (frames made while disconnected) belongs to reconnect.c;
 * here it only counts against outbound_limit and receives publishes.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "options_abi.h"

/* A write could not start or failed: record libuv's text, end the stream. */
static void fail_uv(tern_conn_t *c, int err) {
  const char *text = uv_strerror(err);
  if (!c->goaway_seen) { /* else keep the GOAWAY reason */
    tern__conn_set_error(c, text, strlen(text));
  }
  tern__conn_fail(c, err);
}

int tern__conn_send(tern_conn_t *c, const tp_frame_t *f) {
  int rc = tp_frame_encode(&c->pending, f);
  return rc != 0 ? tern__err_from_tp(rc) : 0;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  tern__conn_close_handles(req->data);
}

static void on_written(uv_write_t *req, int status) {
  tern_conn_t *c = req->handle->data;
  c->writing = false;
  tp_buf_reset(&c->inflight);
  c->inflight_pubs = 0;
  if (c->state == TERN__CLOSING) {
    if (status < 0) {
      tern__conn_close_handles(c);
    } else {
      tern__conn_close_step(c);
    }
    return;
  }
  if (status < 0) {
    if (c->state == TERN__CONNECTED) {
      fail_uv(c, status);
    }
    return;
  }
  if (c->want_drain &&
      c->pending.len + c->held.len < c->opts.o.outbound_limit / 2) {
    c->want_drain = false;
    if (c->opts.o.drain_cb != NULL && c->state == TERN__CONNECTED) {
      c->opts.o.drain_cb(c, c->opts.o.cb_data);
    }
  }
}

/*
 * Hands the batch to the socket: pending becomes the in-flight buffer and
 * the old in-flight buffer (already written) becomes the new, empty pending
 * one, so both keep their capacity.
 */
static int start_write(tern_conn_t *c) {
  tp_buf_t t = c->inflight;
  uv_buf_t b;
  int rc;
  c->inflight = c->pending;
  c->pending = t;
  tp_buf_reset(&c->pending);
  c->inflight_pubs = c->pending_pubs; /* handed to the socket */
  c->pending_pubs = 0;
  b = uv_buf_init((char *)c->inflight.data, (unsigned int)c->inflight.len);
  if (c->tls != NULL && (rc = tern__tls_encrypt(c, &c->inflight, &b)) != 0) {
    tp_buf_reset(&c->inflight);
    return rc;
  }
  rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
  if (rc != 0) {
    tp_buf_reset(&c->inflight);
    return rc;
  }
  c->writing = true;
  return 0;
}

/* Once per loop iteration, before libuv blocks for I/O: write the batch. */
static void on_prepare(uv_prepare_t *h) {
  tern_conn_t *c = h->data;
  int rc;
  if (c->writing || c->pending.len == 0 || !c->tcp_connected ||
      !tern__tls_ready(c) ||
      (c->state != TERN__HANDSHAKE && c->state != TERN__CONNECTED)) {
    return;
  }
  rc = start_write(c);
  if (rc != 0) {
    fail_uv(c, rc);
  }
}

void tern__conn_write_start(tern_conn_t *c) {
  /* Unreferenced: the batch hook alone must not keep the loop alive. */
  uv_prepare_start(&c->prepare, on_prepare);
  uv_unref((uv_handle_t *)&c->prepare);
}

/*
 * Graceful close, one step at a time: wait for the write in flight, write
 * what is still buffered, shut the socket down, then close the handles. The
 * timer armed by tern_conn_close bounds the whole sequence.
 */
void tern__conn_close_step(tern_conn_t *c) {
  if (c->handles_closing || c->writing || c->shutting_down) {
    return;
  }
  if (c->pending.len > 0 && start_write(c) == 0) {
    return;
  }
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) == 0) {
    c->shutting_down = true;
    return;
  }
  tern__conn_close_handles(c);
}

int tern__conn_publish(tern_conn_t *c, const char *topic, const void *payload,
                       size_t len, const tern_pub_opts_t *opts, bool req_ack,
                       uint64_t req_n) {
  size_t before, queued;
  tp_buf_t *dst;
  tern__pub_t p;
  bool ack;
  int rc;

  /* A bad pointer is reported before the connection's state;
   * tern__pub_check tests it again for the blocking path. */
  if (c == NULL || topic == NULL || (len > 0 && payload == NULL)) {
    return TERN_EINVAL;
  }
  if (c->state != TERN__CONNECTED && !c->reconnecting) {
    return TERN_ENOTCONN;
  }
  rc = tern__pub_check(&p, topic, payload, len, c->max_payload);
  if (rc != 0) {
    return rc;
  }
  ack = req_ack || (opts != NULL && opts->ack_cb != NULL);
  if (ack && c->nacks >= c->opts.o.max_inflight) {
    return TERN_EWOULDBLOCK;
  }
  /* While disconnected, the held buffer alone: the others are empty. */
  dst = tern__buffering(c) ? &c->held : &c->pending;
  queued = tern_conn_outbound_bytes(c);
  if (queued > 0 && queued >= c->opts.o.outbound_limit) {
    c->want_drain = true;
    if (tern__buffering(c)) {
      c->pubs_refused++;
    }
    return TERN_EWOULDBLOCK;
  }
  /* An acked PUB must be the only refusable frame since the last barrier,
   * so that an ERR arriving while its PUBACK is due is its own (request.c,
   * tern__on_refusal). */
  if (ack && c->seg_dirty && (rc = tern__barrier(c, false, 0)) != 0) {
    return rc;
  }
  rc = tern__pub_prepare(&p, opts);
  if (rc != 0) {
    goto out;
  }
  if (ack) {
    p.frame.u.pub.has_ack = true;
    p.frame.u.pub.ack = c->next_ack;
  }
  before = dst->len;
  rc = tern__pub_encode(&p, &c->scratch, dst);
  if (rc != 0) {
    goto out;
  }
  if (queued > 0 && queued + (dst->len - before) > c->opts.o.outbound_limit) {
    dst->len = before; /* take the frame back out */
    c->want_drain = true;
    if (tern__buffering(c)) {
      c->pubs_refused++;
    }
    rc = TERN_EWOULDBLOCK;
    goto out;
  }
  if (ack) {
    rc = tern__ack_add(c, req_ack ? NULL : opts->ack_cb,
                       req_ack ? NULL : opts->ack_cb_data, req_n,
                       opts != NULL && opts->retain);
    if (rc != 0) {
      dst->len = before;
      goto out;
    }
  }
  c->seg_dirty = !ack;
  if (dst == &c->held) {
    c->held_pubs++;
  } else {
    c->pending_pubs++;
  }
  c->stats.msgs_out++;
  c->stats.bytes_out += len;
  rc = 0;
out:
  tern__pub_done(&p);
  return rc;
}

/* Appends frames run..end-1 in one copy and counts them. */
static int append_run(tern_conn_t *c, tp_buf_t *dst, const uint8_t *data,
                      const tern__pubspan_t *spans, size_t run, size_t end,
                      uint64_t payload) {
  size_t start = run > 0 ? spans[run - 1].end : 0;
  if (end == run) {
    return 0;
  }
  if (tp_buf_append(dst, data + start, spans[end - 1].end - start) != 0) {
    return TERN_ENOMEM;
  }
  c->seg_dirty = true;
  if (dst == &c->held) {
    c->held_pubs += end - run;
  } else {
    c->pending_pubs += end - run;
  }
  c->stats.msgs_out += end - run;
  c->stats.bytes_out += payload;
  return 0;
}

int tern__conn_publish_frames(tern_conn_t *c, const uint8_t *data,
                              const tern__pubspan_t *spans, size_t first,
                              size_t n, bool drop_unfit, size_t *next,
                              int *dropped) {
  size_t limit = c->opts.o.outbound_limit, queued, run = first, i;
  uint64_t payload = 0; /* of frames run..i-1 */
  tp_buf_t *dst;
  int rc = 0;
  *next = first;
  if (c->state != TERN__CONNECTED && !c->reconnecting) {
    return TERN_ENOTCONN;
  }
  dst = tern__buffering(c) ? &c->held : &c->pending;
  queued = tern_conn_outbound_bytes(c);
  for (i = first; i < n; i++) {
    size_t flen = spans[i].end - (i > 0 ? spans[i - 1].end : 0);
    int skip = 0;
    if (spans[i].len > c->max_payload) {
      skip = TERN_ETOOLARGE; /* a new broker with a smaller limit */
    } else if (queued > 0 && queued + flen > limit) {
      c->want_drain = true;
      if (!drop_unfit) {
        rc = TERN_EWOULDBLOCK;
        break;
      }
      skip = TERN_EWOULDBLOCK;
      if (tern__buffering(c)) {
        c->pubs_refused++;
      }
    }
    if (skip != 0) {
      if (append_run(c, dst, data, spans, run, i, payload) != 0) {
        *next = run;
        return TERN_ENOMEM;
      }
      *dropped = skip;
      run = i + 1;
      payload = 0;
      continue;
    }
    queued += flen;
    payload += spans[i].len;
  }
  if (append_run(c, dst, data, spans, run, i, payload) != 0) {
    *next = run;
    return TERN_ENOMEM;
  }
  *next = i;
  return rc;
}

int tern_conn_publish(tern_conn_t *c, const char *topic, const void *payload,
                      size_t len, const tern_pub_opts_t *opts) {
  tern_pub_opts_t own;
  if (opts != NULL) {
    if (tern__pub_opts_import(&own, opts) != 0) {
      return TERN_EINVAL;
    }
    opts = &own;
  }
  return tern__conn_publish(c, topic, payload, len, opts, false, 0);
}

size_t tern_conn_outbound_bytes(const tern_conn_t *c) {
  return c->pending.len + c->inflight.len + c->held.len;
}
