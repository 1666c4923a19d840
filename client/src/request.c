/*
 * Everything that waits for an answer from the broker: PUBACK waiters,
 * requests (one shared wildcard inbox subscription per connection), and
 * flushes (PING/PONG). Each kind is a FIFO bounded by max_inflight; the
 * deadline timer in conn.c calls tern__expire.
 *
 * Waiters created while the connection buffers (disconnected, or after a
 * GOAWAY) are marked held: their frames have not reached any broker yet, so
 * a loss spares them and they complete on the next connection.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "tern_proto/errors.h"

/*
 * Appends waiter w to the FIFO (head, tail) linked through `next`. The ack
 * and flush queues have this one shape with different element types; the
 * caller keeps the count.
 */
#define FIFO_APPEND(head, tail, w)                                             \
  do {                                                                         \
    if ((tail) != NULL) {                                                      \
      (tail)->next = (w);                                                      \
    } else {                                                                   \
      (head) = (w);                                                            \
    }                                                                          \
    (tail) = (w);                                                              \
  } while (0)

int tern__ack_add(tern_conn_t *c, tern_ack_cb cb, void *cb_data, uint64_t req_n,
                  bool retain) {
  tern__ack_t *a = calloc(1, sizeof(*a));
  if (a == NULL) {
    return TERN_ENOMEM;
  }
  a->id = c->next_ack++;
  a->seq = c->next_seq++;
  a->cb = cb;
  a->cb_data = cb_data;
  a->req_n = req_n;
  a->retain = retain;
  a->held = tern__buffering(c);
  FIFO_APPEND(c->acks, c->acks_tail, a);
  c->nacks++;
  return 0;
}

/* Unlinks request n; NULL if it already completed. */
static tern__req_t *take_req(tern_conn_t *c, uint64_t n) {
  for (tern__req_t **pp = &c->reqs; *pp != NULL; pp = &(*pp)->next) {
    if ((*pp)->n == n) {
      tern__req_t *r = *pp;
      *pp = r->next;
      c->nreqs--;
      return r;
    }
  }
  return NULL;
}

/* Completes request r (already unlinked): breaker bookkeeping, callback,
 * free. */
static void finish_req(tern_conn_t *c, tern__req_t *r, int status,
                       tern_msg_t *reply) {
  if (r->topic != NULL) {
    tern__breaker_record(c, r->topic, status, r->probe);
  }
  r->cb(c, status, reply, r->cb_data);
  free(r->topic);
  free(r);
}

/* Takes the head ack waiter off the FIFO. */
static tern__ack_t *pop_ack(tern_conn_t *c) {
  tern__ack_t *a = c->acks;
  c->acks = a->next;
  if (c->acks == NULL) {
    c->acks_tail = NULL;
  }
  c->nacks--;
  return a;
}

/* An ack whose PUB the broker refused: its callback (or its request) gets
 * err. a is already off the FIFO. */
static void fail_ack(tern_conn_t *c, tern__ack_t *a, int err) {
  tern__req_t *r;
  if (a->cb != NULL) {
    a->cb(c, err, 0, a->cb_data);
  } else if ((r = take_req(c, a->req_n)) != NULL) {
    finish_req(c, r, err, NULL);
  }
  free(a);
}

/*
 * An answer to the frame numbered seq arrived, so every ack waiter of an
 * earlier PUB still queued will get no PUBACK: the broker refused that PUB
 * (it answers every PUB it accepts, in order). Normally on_refusal has
 * already failed it; this covers the ERR 13 of a retained PUB that turned
 * out not to be followed by a PUBACK.
 */
static void fail_unanswered_acks(tern_conn_t *c, uint64_t seq) {
  while (c->acks != NULL && !c->acks->held && c->acks->seq < seq) {
    tern__ack_t *a = pop_ack(c);
    int err = a->err != 0 ? a->err : c->seg_err;
    fail_ack(c, a, err != 0 ? err : TERN_ESERVER);
  }
}

/*
 * PUBACK: the broker answers in the order it received the PUBs, so the
 * waiter is at the head once the refused PUBs before it are failed.
 */
void tern__on_puback(tern_conn_t *c, uint64_t id, uint64_t receivers) {
  tern__ack_t *a;
  tern__req_t *r;
  for (a = c->acks; a != NULL && a->id != id; a = a->next) {
  }
  if (a == NULL) {
    return;
  }
  fail_unanswered_acks(c, a->seq);
  c->seg_err = 0;
  if (c->acks == NULL || c->acks->id != id) {
    return; /* a callback closed the connection */
  }
  a = pop_ack(c);
  if (a->cb != NULL) {
    a->cb(c, a->err, receivers, a->cb_data);
  } else if (receivers == 0 && (r = take_req(c, a->req_n)) != NULL) {
    finish_req(c, r, TERN_ENORESPONDERS, NULL);
  }
  free(a);
}

void tern__on_pong(tern_conn_t *c) {
  tern__flush_t *f = c->flushes;
  if (f == NULL) {
    return; /* a PONG nobody asked for */
  }
  fail_unanswered_acks(c, f->seq);
  c->seg_err = 0;
  if (c->flushes != f) {
    return; /* a callback closed the connection */
  }
  c->flushes = f->next;
  if (c->flushes == NULL) {
    c->flushes_tail = NULL;
  }
  c->nflushes--;
  if (f->cb != NULL) {
    f->cb(c, f->err, f->cb_data);
  } else if (f->err != 0 && c->async_err == 0) {
    c->async_err = f->err; /* its flush timed out: keep it for the next */
  }
  free(f);
}

/*
 * A non-fatal ERR names no frame, but the broker handles frames in order
 * and answers in order, so the ERR belongs to a frame sent before the
 * answer due next: the ack or PING waiter with the lowest seq.
 *  - An ack waiter: the PUB it waits for is the only refusable frame since
 *    the previous barrier (conn_write.c sends a PING ahead otherwise), so
 *    the ERR is that PUB's. Except ERR 13 on a retained PUB, which may be
 *    "retained store full" with the PUBACK still to come: kept on the
 *    waiter, and fail_unanswered_acks settles it if no PUBACK comes.
 *  - A PING that closes a SUB barrier (sub.c: PING, SUB, PING): the SUB's.
 *  - Otherwise it is a plain PUB's or an UNSUB's, which have no callback:
 *    the first user flush outstanding reports it with its PONG (every
 *    outstanding PING was sent after the refused frame), or the next flush
 *    made does.
 * Held waiters belong to the next connection, not to this stream.
 */
void tern__on_refusal(tern_conn_t *c, int err, int wire_code) {
  tern__ack_t *a = c->acks;
  tern__flush_t *f = c->flushes;
  if (a != NULL && a->held) {
    a = NULL;
  }
  if (f != NULL && f->held) {
    f = NULL;
  }
  if (a != NULL && (f == NULL || a->seq < f->seq)) {
    if (a->retain && wire_code == TP_WIRE_PAYLOAD_TOO_LARGE) {
      a->err = err;
      return;
    }
    fail_ack(c, pop_ack(c), err);
    return;
  }
  if (f != NULL && f->sub_barrier) {
    f->sub_barrier = false; /* a SUB gets one answer */
    tern__sub_refused(c, f->sub_sid, err);
    return;
  }
  c->seg_err = err;
  for (f = c->flushes; f != NULL; f = f->next) {
    if (f->cb != NULL && f->collect) {
      if (f->err == 0) {
        f->err = err;
      }
      return;
    }
  }
  if (c->async_err == 0) {
    c->async_err = err;
  }
}

void tern__fail_requests(tern_conn_t *c, int err) {
  tern__req_t *fr = NULL, **pp = &c->reqs;
  while (*pp != NULL) {
    tern__req_t *r = *pp;
    if (r->held) {
      pp = &r->next;
      continue;
    }
    *pp = r->next;
    c->nreqs--;
    r->next = fr;
    fr = r;
  }
  while (fr != NULL) {
    tern__req_t *next = fr->next;
    finish_req(c, fr, err, NULL);
    fr = next;
  }
}

/*
 * Fails every waiter with err, except held ones when keep_held. The lists
 * are split first (kept ones stay on the connection, in order), so a
 * callback that starts new work cannot make this loop run forever.
 */
void tern__fail_pending(tern_conn_t *c, int err, bool keep_held) {
  tern__ack_t *a = c->acks, *fa = NULL, *fa_tail = NULL;
  tern__req_t *r = c->reqs, *fr = NULL;
  tern__flush_t *f = c->flushes, *ff = NULL, *ff_tail = NULL;
  c->acks = c->acks_tail = NULL;
  c->reqs = NULL;
  c->flushes = c->flushes_tail = NULL;
  c->nacks = c->nreqs = c->nflushes = 0;
  while (a != NULL) {
    tern__ack_t *next = a->next;
    a->next = NULL;
    if (keep_held && a->held) {
      FIFO_APPEND(c->acks, c->acks_tail, a);
      c->nacks++;
    } else {
      FIFO_APPEND(fa, fa_tail, a);
    }
    a = next;
  }
  while (r != NULL) {
    tern__req_t *next = r->next;
    if (keep_held && r->held) {
      r->next = c->reqs;
      c->reqs = r;
      c->nreqs++;
    } else {
      r->next = fr;
      fr = r;
    }
    r = next;
  }
  while (f != NULL) {
    tern__flush_t *next = f->next;
    f->next = NULL;
    if (keep_held && f->held) {
      FIFO_APPEND(c->flushes, c->flushes_tail, f);
      c->nflushes++;
    } else {
      FIFO_APPEND(ff, ff_tail, f);
    }
    f = next;
  }
  while (fa != NULL) {
    tern__ack_t *next = fa->next;
    if (fa->cb != NULL) {
      fa->cb(c, err, 0, fa->cb_data);
    }
    free(fa);
    fa = next;
  }
  while (fr != NULL) {
    tern__req_t *next = fr->next;
    finish_req(c, fr, err, NULL);
    fr = next;
  }
  while (ff != NULL) {
    tern__flush_t *next = ff->next;
    if (ff->err != 0 && c->async_err == 0) {
      c->async_err = ff->err; /* a refusal the next flush still reports */
    }
    if (ff->cb != NULL) {
      ff->cb(c, err, ff->cb_data);
    }
    free(ff);
    ff = next;
  }
}

void tern__pending_unhold(tern_conn_t *c) {
  for (tern__ack_t *a = c->acks; a != NULL; a = a->next) {
    a->held = false;
  }
  for (tern__req_t *r = c->reqs; r != NULL; r = r->next) {
    r->held = false;
  }
  for (tern__flush_t *f = c->flushes; f != NULL; f = f->next) {
    f->held = false;
  }
}

/*
 * Times out due requests and flushes. A timed-out flush stays queued with
 * no callback because its PONG will still arrive and must be matched.
 * Returns the earliest remaining deadline, 0 if none.
 */
uint64_t tern__expire(tern_conn_t *c, uint64_t now) {
  tern__req_t *due = NULL, **pp = &c->reqs;
  uint64_t next = 0;
  while (*pp != NULL) {
    tern__req_t *r = *pp;
    if (r->deadline <= now) {
      *pp = r->next;
      c->nreqs--;
      r->next = due;
      due = r;
    } else {
      if (next == 0 || r->deadline < next) {
        next = r->deadline;
      }
      pp = &r->next;
    }
  }
  for (tern__flush_t *f = c->flushes; f != NULL; f = f->next) {
    if (f->cb != NULL && f->deadline != 0) {
      if (f->deadline <= now) {
        tern_flush_cb cb = f->cb;
        f->cb = NULL;
        if (f->err != 0 && c->async_err == 0) {
          c->async_err = f->err;
          f->err = 0;
        }
        cb(c, TERN_ETIMEOUT, f->cb_data);
        if (c->flushes == NULL) {
          break; /* the callback closed the connection */
        }
      } else if (next == 0 || f->deadline < next) {
        next = f->deadline;
      }
    }
  }
  while (due != NULL) {
    tern__req_t *r = due;
    due = r->next;
    finish_req(c, r, TERN_ETIMEOUT, NULL);
  }
  return next;
}

/* Replies arrive on "<inbox><n>": route them to request n. */
static void on_inbox_msg(tern_asub_t *s, tern_msg_t *msg, void *cb_data) {
  tern_conn_t *c = cb_data;
  const char *topic = tern_msg_topic(msg);
  tern__req_t *r;
  uint64_t n = 0;
  const char *p;
  (void)s;
  if (strncmp(topic, c->inbox, c->inbox_len) != 0) {
    return;
  }
  p = topic + c->inbox_len;
  if (*p == '\0') {
    return;
  }
  for (; *p != '\0'; p++) {
    if (*p < '0' || *p > '9') {
      return;
    }
    n = n * 10 + (uint64_t)(*p - '0');
  }
  r = take_req(c, n);
  if (r != NULL) {
    finish_req(c, r, 0, msg);
  }
}

/* Creates the inbox prefix and its one wildcard subscription. */
static int ensure_inbox(tern_conn_t *c) {
  unsigned char rnd[TERN__INBOX_RANDOM_HEX / 2];
  char pattern[TERN_HOST_MAX + 2];
  char hex[TERN__INBOX_RANDOM_HEX + 1];
  int rc;
  if (c->inbox_sub != NULL) {
    return 0;
  }
  rc = uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL);
  if (rc != 0) {
    return rc;
  }
  for (size_t i = 0; i < sizeof(rnd); i++) {
    snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
  }
  rc = snprintf(c->inbox, sizeof(c->inbox), "%s.%s.", c->opts.o.inbox_prefix,
                hex);
  if (rc < 0 || (size_t)rc >= sizeof(c->inbox) - 24) {
    return TERN_EINVAL; /* prefix too long for "<n>" to fit */
  }
  snprintf(pattern, sizeof(pattern), "%s>", c->inbox);
  rc = tern__sub_create(c, &c->inbox_sub, pattern, NULL, on_inbox_msg, c);
  if (rc != 0) {
    return rc;
  }
  c->inbox_len = strlen(c->inbox);
  return 0;
}

int tern_conn_request(tern_conn_t *c, const char *topic, const void *payload,
                      size_t len, uint32_t timeout_ms, tern_reply_cb cb,
                      void *cb_data) {
  return tern__conn_request_hdrs(c, topic, payload, len, NULL, timeout_ms, cb,
                                 cb_data);
}

int tern__conn_request_hdrs(tern_conn_t *c, const char *topic,
                            const void *payload, size_t len,
                            const tern_pub_opts_t *hdrs, uint32_t timeout_ms,
                            tern_reply_cb cb, void *cb_data) {
  char reply[TERN_HOST_MAX + 24];
  tern_pub_opts_t po;
  tern__req_t *r;
  bool probe = false;
  int rc;
  if (c == NULL || cb == NULL || topic == NULL) {
    return TERN_EINVAL;
  }
  if (c->state != TERN__CONNECTED && !c->reconnecting) {
    return TERN_ENOTCONN;
  }
  if (c->nreqs >= c->opts.o.max_inflight) {
    return TERN_EWOULDBLOCK;
  }
  rc = ensure_inbox(c);
  if (rc != 0) {
    return rc;
  }
  r = calloc(1, sizeof(*r));
  if (r == NULL) {
    return TERN_ENOMEM;
  }
  if (c->breaker != NULL) {
    r->topic = strdup(topic);
    if (r->topic == NULL) {
      free(r);
      return TERN_ENOMEM;
    }
    rc = tern__breaker_admit(c, topic, &probe);
    if (rc != 0) {
      free(r->topic);
      free(r);
      return rc;
    }
  }
  r->n = c->next_req;
  snprintf(reply, sizeof(reply), "%s%" PRIu64, c->inbox, r->n);
  tern_pub_opts_init(&po);
  po.reply = reply;
  if (hdrs != NULL) {
    po.header_keys = hdrs->header_keys;
    po.header_values = hdrs->header_values;
    po.header_count = hdrs->header_count;
  }
  rc = tern__conn_publish(c, topic, payload, len, &po, true, r->n);
  if (rc != 0) {
    if (probe) { /* give the probe slot back */
      tern__breaker_record(c, topic, TERN_ECLOSED, true);
    }
    free(r->topic);
    free(r);
    return rc;
  }
  c->next_req++;
  r->probe = probe;
  r->held = tern__buffering(c);
  r->deadline = uv_now(c->loop) + timeout_ms;
  r->cb = cb;
  r->cb_data = cb_data;
  r->next = c->reqs;
  c->reqs = r;
  c->nreqs++;
  tern__timer_want(c, r->deadline);
  return 0;
}

/*
 * Appends a PING to out and queues its waiter: a flush (cb set), or a
 * heartbeat or barrier PING whose PONG is only consumed (cb NULL). held
 * says the PING went to the disconnected buffer. A PING into the stream now
 * being filled closes its segment (seg_dirty). On failure nothing is queued
 * and NULL is returned with *rc_out set.
 */
static tern__flush_t *queue_ping(tern_conn_t *c, tp_buf_t *out, bool held,
                                 tern_flush_cb cb, void *cb_data,
                                 uint64_t deadline, int *rc_out) {
  tern__flush_t *f = calloc(1, sizeof(*f));
  size_t before = out->len;
  tp_frame_t ping;
  int rc;
  *rc_out = 0;
  if (f == NULL) {
    *rc_out = TERN_ENOMEM;
    return NULL;
  }
  tp_frame_init(&ping, TP_PING);
  rc = tp_frame_encode(out, &ping);
  if (rc != 0) {
    out->len = before;
    free(f);
    *rc_out = tern__err_from_tp(rc);
    return NULL;
  }
  if (out == (tern__buffering(c) ? &c->held : &c->pending)) {
    c->seg_dirty = false;
  }
  f->seq = c->next_seq++;
  f->held = held;
  f->cb = cb;
  f->cb_data = cb_data;
  f->deadline = deadline;
  FIFO_APPEND(c->flushes, c->flushes_tail, f);
  c->nflushes++;
  return f;
}

int tern__barrier(tern_conn_t *c, bool for_sub, uint64_t sub_sid) {
  bool buf = tern__buffering(c);
  int rc;
  tern__flush_t *f =
      queue_ping(c, buf ? &c->held : &c->pending, buf, NULL, NULL, 0, &rc);
  if (f != NULL) {
    f->sub_barrier = for_sub;
    f->sub_sid = sub_sid;
  }
  return rc;
}

/*
 * After a reconnect the stream is CONNECT, the re-sent SUBs, then the held
 * frames. This PING between the SUBs and the held frames keeps a refused
 * re-subscription from being taken for a held PUB's: it is the answer due
 * first, so its seq (reserved when buffering started) is below every held
 * waiter's, and it goes to the head of the flush FIFO (only held flushes
 * are left at this point).
 */
int tern__resume_barrier(tern_conn_t *c) {
  tern__flush_t *f;
  int rc;
  f = queue_ping(c, &c->pending, false, NULL, NULL, 0, &rc);
  if (f == NULL) {
    return rc;
  }
  /* queue_ping appended it: move it from the tail to the head. */
  if (c->flushes != f) {
    tern__flush_t *p = c->flushes;
    while (p->next != f) {
      p = p->next;
    }
    p->next = NULL;
    c->flushes_tail = p;
    f->next = c->flushes;
    c->flushes = f;
  }
  f->seq = c->resume_seq;
  return 0;
}

int tern_conn_flush(tern_conn_t *c, uint32_t timeout_ms, tern_flush_cb cb,
                    void *cb_data) {
  return tern__flush(c, timeout_ms, cb, cb_data, true);
}

int tern__flush(tern_conn_t *c, uint32_t timeout_ms, tern_flush_cb cb,
                void *cb_data, bool collect) {
  tern__flush_t *f;
  uint64_t deadline;
  int rc;
  if (c == NULL || cb == NULL) {
    return TERN_EINVAL;
  }
  if (c->state != TERN__CONNECTED && !c->reconnecting) {
    return TERN_ENOTCONN;
  }
  if (c->nflushes >= c->opts.o.max_inflight) {
    return TERN_EWOULDBLOCK;
  }
  deadline = timeout_ms != 0 ? uv_now(c->loop) + timeout_ms : 0;
  f = queue_ping(c, tern__buffering(c) ? &c->held : &c->pending,
                 tern__buffering(c), cb, cb_data, deadline, &rc);
  if (f == NULL) {
    return rc;
  }
  f->collect = collect;
  if (collect) {
    f->err = c->async_err; /* a refusal no flush has reported yet */
    c->async_err = 0;
  }
  tern__timer_want(c, deadline);
  return 0;
}

/*
 * A PING of the client-side heartbeat: queued like a flush without a
 * callback, so its PONG is matched in order and consumed. It always goes
 * to the batch, never to the held buffer.
 */
int tern__heartbeat_ping(tern_conn_t *c) {
  int rc;
  queue_ping(c, &c->pending, false, NULL, NULL, 0, &rc);
  return rc;
}
