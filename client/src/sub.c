/*
 * Subscriptions of an asynchronous connection: the sid table, SUB/UNSUB
 * frames, message and DROPPED dispatch.
 *
 * The table is an array sorted by sid. Sids only grow, so insertion is an
 * append; lookup is a binary search; removal shifts the tail (subscribe and
 * unsubscribe are rare next to message dispatch).
 *
 * Each subscription keeps its SUB options so that a reconnect can re-send
 * it with the same sid. While disconnected, SUB and UNSUB frames are not
 * sent: the table itself is what the reconnect re-sends.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "options_abi.h"
#include "tern_proto/topic.h"

static size_t find_index(const tern_conn_t *c, uint64_t sid, bool *found) {
  size_t lo = 0, hi = c->nsubs;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (c->subs[mid]->sid < sid) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  *found = lo < c->nsubs && c->subs[lo]->sid == sid;
  return lo;
}

static tern_asub_t *find_sub(const tern_conn_t *c, uint64_t sid) {
  bool found;
  size_t i = find_index(c, sid, &found);
  return found ? c->subs[i] : NULL;
}

static void free_sub(tern_asub_t *s) {
  free(s->pattern);
  free(s->queue);
  free(s);
}

/* Takes s out of the table; it is freed now, or by the dispatcher once its
 * running callback returns. */
static void remove_sub(tern_asub_t *s) {
  tern_conn_t *c = s->conn;
  bool found;
  size_t i = find_index(c, s->sid, &found);
  if (found) {
    memmove(&c->subs[i], &c->subs[i + 1],
            (c->nsubs - i - 1) * sizeof(c->subs[0]));
    c->nsubs--;
  }
  if (c->inbox_sub == s) {
    c->inbox_sub = NULL;
    c->inbox_len = 0;
  }
  s->dead = true;
  if (!s->in_cb) {
    free_sub(s);
  }
}

int tern__sub_create(tern_conn_t *c, tern_asub_t **out, const char *pattern,
                     const tern_sub_opts_t *opts, tern_msg_cb cb,
                     void *cb_data) {
  tern_asub_t *s;
  tp_frame_t f;
  size_t plen;
  size_t before;
  int rc;

  if (out != NULL) {
    *out = NULL;
  }
  if (c == NULL || pattern == NULL || cb == NULL) {
    return TERN_EINVAL;
  }
  if (c->state != TERN__CONNECTED && !c->reconnecting) {
    return TERN_ENOTCONN;
  }
  plen = strlen(pattern);
  if (tp_pattern_validate(pattern, plen, TP_DEFAULT_MAX_TOPIC) != 0) {
    return TERN_ETOPIC;
  }
  if (opts != NULL && opts->queue != NULL && opts->queue[0] == '\0') {
    return TERN_EINVAL;
  }
  if (c->nsubs == c->subs_cap) {
    size_t cap = c->subs_cap ? 2 * c->subs_cap : 16;
    tern_asub_t **n = realloc(c->subs, cap * sizeof(*n));
    if (n == NULL) {
      return TERN_ENOMEM;
    }
    c->subs = n;
    c->subs_cap = cap;
  }
  s = calloc(1, sizeof(*s));
  if (s == NULL || (s->pattern = strdup(pattern)) == NULL ||
      (opts != NULL && opts->queue != NULL &&
       (s->queue = strdup(opts->queue)) == NULL)) {
    if (s != NULL) {
      free(s->pattern);
    }
    free(s);
    return TERN_ENOMEM;
  }
  s->conn = c;
  s->sid = c->next_sid;
  s->cb = cb;
  s->cb_data = cb_data;
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = s->sid;
  f.u.sub.pattern = (tp_str_t){pattern, (uint32_t)plen};
  if (opts != NULL) {
    s->dropped_cb = opts->dropped_cb;
    s->error_cb = opts->error_cb;
    if (opts->queue != NULL) {
      f.u.sub.queue = (tp_str_t){opts->queue, (uint32_t)strlen(opts->queue)};
    }
    f.u.sub.max_msgs = s->limit_msgs = opts->max_msgs;
    f.u.sub.max_bytes = s->limit_bytes = opts->max_bytes;
    f.u.sub.overflow = s->overflow = (int)opts->overflow;
  }
  /*
   * The SUB goes out between two PINGs (the first only when something
   * refusable went out since the last barrier), so an ERR that arrives
   * before the second PONG is this SUB's (request.c, tern__on_refusal).
   * While disconnected the table alone is re-sent after the reconnect;
   * after a GOAWAY the frame goes nowhere useful, so no barrier either.
   */
  rc = 0;
  if (!tern__buffering(c) && c->seg_dirty) {
    rc = tern__barrier(c, false, 0);
  }
  before = c->pending.len;
  if (rc == 0 && !c->reconnecting) {
    rc = tern__conn_send(c, &f);
  }
  if (rc != 0) {
    c->pending.len = before;
    free_sub(s);
    return rc;
  }
  if (!tern__buffering(c) && tern__barrier(c, true, s->sid) != 0) {
    c->seg_dirty = true; /* sent without its closing barrier */
  }
  c->next_sid++;
  c->subs[c->nsubs++] = s;
  if (out != NULL) {
    *out = s;
  }
  return 0;
}

int tern_conn_subscribe(tern_conn_t *c, tern_asub_t **out, const char *pattern,
                        const tern_sub_opts_t *opts, tern_msg_cb cb,
                        void *cb_data) {
  tern_sub_opts_t own;
  if (opts != NULL) {
    if (tern__sub_opts_import(&own, opts) != 0) {
      if (out != NULL) {
        *out = NULL;
      }
      return TERN_EINVAL;
    }
    opts = &own;
  }
  return tern__sub_create(c, out, pattern, opts, cb, cb_data);
}

int tern_asub_unsubscribe(tern_asub_t *s, uint64_t max_msgs) {
  tern_conn_t *c;
  tp_frame_t f;
  if (s == NULL || s->dead) {
    return TERN_EINVAL;
  }
  c = s->conn;
  if (s->refused != 0) {
    remove_sub(s); /* the broker never had it */
    return 0;
  }
  if (c->state == TERN__CONNECTED) {
    tp_frame_init(&f, TP_UNSUB);
    f.u.unsub.sid = s->sid;
    if (max_msgs > s->delivered) {
      f.u.unsub.has_max = true;
      f.u.unsub.max_msgs = max_msgs;
    }
    if (tern__conn_send(c, &f) != 0) {
      return TERN_ENOMEM;
    }
    if (!tern__buffering(c)) {
      c->seg_dirty = true; /* ERR 8 is possible */
    }
  }
  if (max_msgs > s->delivered &&
      (c->state == TERN__CONNECTED || c->reconnecting)) {
    s->max_msgs = max_msgs;
    return 0;
  }
  remove_sub(s);
  return 0;
}

/*
 * A MSG frame: copy it into a message, hand it to the subscription's
 * callback, and finish an UNSUB with max_msgs or an unsubscribe made inside
 * the callback once the callback has returned.
 */
void tern__sub_on_msg(tern_conn_t *c, const tp_msg_t *m) {
  tern_asub_t *s = find_sub(c, m->sid);
  tern_msg_t *msg;
  if (s == NULL) {
    return; /* unsubscribed while the message was on its way */
  }
  msg = tern__msg_create(m);
  if (msg == NULL) {
    s->dropped++;
    c->stats.dropped++;
    return;
  }
  c->stats.msgs_in++;
  c->stats.bytes_in += m->payload.len;
  s->delivered++;
  s->in_cb = true;
  s->cb(s, msg, s->cb_data);
  s->in_cb = false;
  tern_msg_release(msg);
  if (s->dead) {
    free_sub(s);
  } else if (s->max_msgs != 0 && s->delivered >= s->max_msgs) {
    remove_sub(s); /* the broker ended it too */
  }
}

/*
 * The broker refused s's SUB. It stays in the table, so the application's
 * pointer stays valid, but gets nothing and is not re-sent; unsubscribing
 * it sends no UNSUB (that would be ERR 8). The request inbox is dropped
 * instead, failing the requests that wait on it, so that the next request
 * tries a new one.
 */
void tern__sub_refused(tern_conn_t *c, uint64_t sid, int err) {
  tern_asub_t *s = find_sub(c, sid);
  if (s == NULL || s->refused != 0) {
    return;
  }
  s->refused = err;
  if (s == c->inbox_sub) {
    remove_sub(s);
    tern__fail_requests(c, err);
    return;
  }
  if (s->error_cb != NULL) {
    s->in_cb = true;
    s->error_cb(s, err, c->last_error, s->cb_data);
    s->in_cb = false;
    if (s->dead) {
      free_sub(s);
    }
  }
}

void tern__sub_on_dropped(tern_conn_t *c, uint64_t sid, uint64_t count) {
  tern_asub_t *s = find_sub(c, sid);
  c->stats.dropped += count;
  if (s == NULL) {
    return;
  }
  s->dropped += count;
  if (s->dropped_cb != NULL) {
    s->in_cb = true;
    s->dropped_cb(s, count, s->cb_data);
    s->in_cb = false;
    if (s->dead) {
      free_sub(s);
    }
  }
}

/*
 * After a reconnect, before any held frame: the new broker learns every
 * live subscription under its old sid, so messages keep reaching the same
 * callbacks, and an UNSUB with max_msgs asks only for the messages still
 * due (the new broker counts from zero).
 */
int tern__subs_resend(tern_conn_t *c) {
  for (size_t i = 0; i < c->nsubs; i++) {
    tern_asub_t *s = c->subs[i];
    tp_frame_t f;
    if (s->refused != 0) {
      continue;
    }
    tp_frame_init(&f, TP_SUB);
    f.u.sub.sid = s->sid;
    f.u.sub.pattern = (tp_str_t){s->pattern, (uint32_t)strlen(s->pattern)};
    if (s->queue != NULL) {
      f.u.sub.queue = (tp_str_t){s->queue, (uint32_t)strlen(s->queue)};
    }
    f.u.sub.max_msgs = s->limit_msgs;
    f.u.sub.max_bytes = s->limit_bytes;
    f.u.sub.overflow = s->overflow;
    if (tern__conn_send(c, &f) != 0) {
      return TERN_ENOMEM;
    }
    if (s->max_msgs > s->delivered) {
      tp_frame_init(&f, TP_UNSUB);
      f.u.unsub.sid = s->sid;
      f.u.unsub.has_max = true;
      f.u.unsub.max_msgs = s->max_msgs - s->delivered;
      if (tern__conn_send(c, &f) != 0) {
        return TERN_ENOMEM;
      }
    }
  }
  return 0;
}

void tern__subs_free_all(tern_conn_t *c) {
  for (size_t i = 0; i < c->nsubs; i++) {
    free_sub(c->subs[i]);
  }
  free(c->subs);
  c->subs = NULL;
  c->nsubs = 0;
}

uint64_t tern_asub_sid(const tern_asub_t *s) {
  return s->sid;
}
const char *tern_asub_pattern(const tern_asub_t *s) {
  return s->pattern;
}
uint64_t tern_asub_delivered(const tern_asub_t *s) {
  return s->delivered;
}
uint64_t tern_asub_dropped(const tern_asub_t *s) {
  return s->dropped;
}
int tern_asub_error(const tern_asub_t *s) {
  return s->refused;
}
tern_conn_t *tern_asub_conn(const tern_asub_t *s) {
  return s->conn;
}
