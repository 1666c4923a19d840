/*
 * Consumers (consumer.h): positions, pending acks, redelivery, pull
 * requests and push delivery.
 */
#include "stream/consumer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "base/log.h"
#include "delivery/router.h"
#include "stream/emit.h"
#include "tern_proto/errors.h"
#include "tern_proto/mp.h"
#include "tern_proto/topic.h"

static uint64_t now_ms(const consumer_t *c) {
  return uv_now(c->st->owner->w->loop);
}

consumer_t *consumer_new(stream_t *st, const char *name, bool durable) {
  consumer_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->st = st;
  snprintf(c->name, sizeof c->name, "%s", name);
  c->durable = durable;
  c->deliver = DELIVER_ALL;
  c->ack_wait_ms = 30000;
  c->max_ack_pending = 1000;
  c->inactive_ms = 30000;
  return c;
}

static char *dupn(const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (s != NULL) {
    memcpy(s, p, n);
    s[n] = '\0';
  }
  return s;
}

static const char *deliver_names[] = {"all", "last", "new", "by_seq",
                                      "by_time"};

int consumer_config_decode(consumer_t *c, const uint8_t *p, size_t len,
                           char *why, size_t whylen) {
  if (len == 0)
    return 0;
  tp_mp_cur_t cur;
  tp_mp_cur_init(&cur, p, len);
  uint32_t n;
  if (tp_mp_read_map(&cur, &n) != 0) {
    snprintf(why, whylen, "the request body must be a msgpack map");
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    tp_str_t k, v;
    uint64_t u;
    bool b;
    if (tp_mp_read_str(&cur, &k) != 0) {
      snprintf(why, whylen, "map keys must be strings");
      return -1;
    }
#define U64(key, field)                                                        \
  if (tp_str_is(k, key)) {                                                     \
    if (tp_mp_read_uint(&cur, &u) != 0) {                                      \
      snprintf(why, whylen, "%s must be an unsigned integer", key);            \
      return -1;                                                               \
    }                                                                          \
    c->field = u;                                                              \
    continue;                                                                  \
  }
    U64("opt_start_seq", opt_start_seq)
    U64("opt_start_time_ms", opt_start_time_ms)
    U64("ack_wait_ms", ack_wait_ms)
    U64("max_deliver", max_deliver)
    U64("max_ack_pending", max_ack_pending)
    U64("inactive_ms", inactive_ms)
#undef U64
    if (tp_str_is(k, "deliver")) {
      int d = -1;
      if (tp_mp_read_str(&cur, &v) == 0)
        for (int j = 0; j < 5; j++)
          if (tp_str_is(v, deliver_names[j]))
            d = j;
      if (d < 0) {
        snprintf(why, whylen,
                 "deliver must be all, last, new, by_seq or by_time");
        return -1;
      }
      c->deliver = d;
    } else if (tp_str_is(k, "ack")) {
      if (tp_mp_read_str(&cur, &v) != 0 ||
          !(tp_str_is(v, "explicit") || tp_str_is(v, "none"))) {
        snprintf(why, whylen, "ack must be explicit or none");
        return -1;
      }
      c->ack_none = tp_str_is(v, "none");
    } else if (tp_str_is(k, "filter") || tp_str_is(k, "push")) {
      bool filter = tp_str_is(k, "filter");
      if (tp_mp_read_str(&cur, &v) != 0 ||
          (filter
               ? tp_pattern_validate(v.ptr, v.len, TP_DEFAULT_MAX_TOPIC)
               : tp_topic_validate(v.ptr, v.len, TP_DEFAULT_MAX_TOPIC)) != 0) {
        snprintf(why, whylen, "%s must be a valid %s",
                 filter ? "filter" : "push", filter ? "pattern" : "topic");
        return -1;
      }
      char **f = filter ? &c->filter : &c->push;
      free(*f);
      *f = dupn(v.ptr, v.len);
      if (*f == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1;
      }
    } else if (tp_str_is(k, "durable")) {
      if (tp_mp_read_bool(&cur, &b) != 0) {
        snprintf(why, whylen, "durable must be a boolean");
        return -1;
      }
    } else if (tp_mp_skip(&cur) != 0) {
      snprintf(why, whylen, "malformed request body");
      return -1;
    }
  }
  if (c->ack_wait_ms == 0)
    c->ack_wait_ms = 30000;
  if (c->max_ack_pending == 0)
    c->max_ack_pending = 1000;
  if (c->deliver == DELIVER_SEQ && c->opt_start_seq == 0) {
    snprintf(why, whylen, "deliver by_seq needs opt_start_seq");
    return -1;
  }
  return 0;
}

static int config_encode(const consumer_t *c, tp_buf_t *b) {
  uint32_t n = 8 + (c->filter != NULL) + (c->push != NULL);
  int rc = tp_mp_map(b, n);
  rc = rc ? rc : tp_mp_kv_str(b, "deliver", deliver_names[c->deliver]);
  rc = rc ? rc : tp_mp_kv_uint(b, "opt_start_seq", c->opt_start_seq);
  rc = rc ? rc : tp_mp_kv_uint(b, "opt_start_time_ms", c->opt_start_time_ms);
  rc = rc ? rc : tp_mp_kv_str(b, "ack", c->ack_none ? "none" : "explicit");
  rc = rc ? rc : tp_mp_kv_uint(b, "ack_wait_ms", c->ack_wait_ms);
  rc = rc ? rc : tp_mp_kv_uint(b, "max_deliver", c->max_deliver);
  rc = rc ? rc : tp_mp_kv_uint(b, "max_ack_pending", c->max_ack_pending);
  rc = rc ? rc : tp_mp_kv_uint(b, "inactive_ms", c->inactive_ms);
  if (c->filter != NULL)
    rc = rc ? rc : tp_mp_kv_str(b, "filter", c->filter);
  if (c->push != NULL)
    rc = rc ? rc : tp_mp_kv_str(b, "push", c->push);
  return rc;
}

int consumer_info(const consumer_t *c, tp_buf_t *b) {
  int rc = tp_mp_map(b, 11);
  rc = rc ? rc : tp_mp_kv_str(b, "name", c->name);
  rc = rc ? rc : tp_mp_kv_str(b, "stream", c->st->def.name);
  rc = rc ? rc : tp_mp_kv_bool(b, "durable", c->durable);
  rc = rc ? rc : tp_mp_cstr(b, "config");
  rc = rc ? rc : config_encode(c, b);
  rc = rc ? rc : tp_mp_kv_uint(b, "delivered", c->delivered);
  rc = rc ? rc : tp_mp_kv_uint(b, "redelivered", c->redelivered);
  rc = rc ? rc : tp_mp_kv_uint(b, "ack_pending", c->npend);
  rc = rc ? rc : tp_mp_kv_uint(b, "ack_floor", c->ack_floor);
  rc = rc ? rc : tp_mp_kv_uint(b, "next_seq", c->next_seq);
  rc = rc ? rc : tp_mp_kv_uint(b, "num_waiting", c->npulls);
  rc = rc ? rc : tp_mp_kv_uint(b, "max_deliver_hits", c->max_deliver_hits);
  return rc;
}

/* ---- durable state ---- */

static void state_names(const consumer_t *c, char *cfg, char *state, size_t n) {
  snprintf(cfg, n, "c.%s.cfg", c->name);
  snprintf(state, n, "c.%s.state", c->name);
}

void consumer_save(consumer_t *c) {
  if (!c->durable || !c->state_dirty || c->state == NULL)
    return;
  store_consumer_state_t cs;
  memset(&cs, 0, sizeof cs);
  cs.delivered_stream_seq = c->next_seq > 0 ? c->next_seq - 1 : 0;
  cs.delivered_consumer_seq = c->dseq;
  cs.ack_floor_stream_seq = c->ack_floor;
  cs.npending = c->npend;
  cs.pending = c->npend ? calloc(c->npend, sizeof *cs.pending) : NULL;
  if (c->npend && cs.pending == NULL)
    return;
  for (size_t i = 0; i < c->npend; i++) {
    cs.pending[i].stream_seq = c->pend[i].sseq;
    cs.pending[i].consumer_seq = c->pend[i].cseq;
    cs.pending[i].deliveries = c->pend[i].deliveries;
  }
  uint8_t *data = NULL;
  size_t len = 0;
  int rc = store_consumer_encode(&cs, &data, &len);
  free(cs.pending);
  if (rc == 0)
    rc = store_state_put(c->state, data, len);
  free(data);
  if (rc == 0)
    c->state_dirty = false;
  else
    LOG(LOG_WARN, "stream %s consumer %s: cannot save its state: %s",
        c->st->def.name, c->name, ternd_strerror(rc));
}

static void set_start(consumer_t *c) {
  store_t *log = c->st->log;
  uint64_t first = store_first_seq(log), last = store_last_seq(log);
  uint64_t seq = first;
  switch (c->deliver) {
  case DELIVER_LAST:
    seq = last > 0 ? last : 1;
    if (c->filter != NULL &&
        !tp_pattern_has_wildcard(c->filter, strlen(c->filter))) {
      uint64_t s;
      if (store_last_for_topic(log, c->filter, (uint32_t)strlen(c->filter),
                               &s) == 0)
        seq = s;
    }
    break;
  case DELIVER_NEW:
    seq = last + 1;
    break;
  case DELIVER_SEQ:
    seq = c->opt_start_seq;
    break;
  case DELIVER_TIME: {
    uint64_t s;
    if (store_seq_for_time(log, (int64_t)c->opt_start_time_ms * 1000000, &s) ==
        0)
      seq = s;
    else
      seq = last + 1;
    break;
  }
  default:
    break;
  }
  if (seq < first)
    seq = first;
  if (seq == 0)
    seq = 1;
  c->next_seq = seq;
  c->ack_floor = seq - 1;
}

int consumer_start(consumer_t *c, bool restore) {
  stream_t *st = c->st;
  int rc;
  c->last_active_ms = now_ms(c);
  set_start(c);
  if (c->durable) {
    char cfgname[96], statename[96];
    state_names(c, cfgname, statename, sizeof cfgname);
    rc = store_state_open(st->owner->env, st->dir, cfgname, &c->cfgstate);
    if (rc == 0)
      rc = store_state_open(st->owner->env, st->dir, statename, &c->state);
    if (rc != 0)
      return rc;
    if (!restore) {
      tp_buf_t b;
      tp_buf_init(&b);
      rc = config_encode(c, &b);
      if (rc == 0)
        rc = store_state_put(c->cfgstate, b.data, b.len);
      if (rc == 0)
        rc = store_state_flush(c->cfgstate);
      tp_buf_free(&b);
      if (rc != 0)
        return rc;
      c->state_dirty = true;
      consumer_save(c);
    } else {
      uint8_t *data = NULL;
      size_t len = 0;
      rc = store_state_get(c->state, &data, &len);
      if (rc == 0) {
        store_consumer_state_t cs;
        rc = store_consumer_decode(data, len, &cs);
        if (rc == 0) {
          c->next_seq = cs.delivered_stream_seq + 1;
          c->dseq = cs.delivered_consumer_seq;
          c->ack_floor = cs.ack_floor_stream_seq;
          c->pend = calloc(cs.npending ? cs.npending : 1, sizeof *c->pend);
          if (c->pend != NULL) {
            c->pend_cap = cs.npending ? cs.npending : 1;
            uint64_t due = now_ms(c) + c->ack_wait_ms;
            for (size_t i = 0; i < cs.npending; i++) {
              pend_t *p = &c->pend[c->npend++];
              p->sseq = cs.pending[i].stream_seq;
              p->cseq = cs.pending[i].consumer_seq;
              p->deliveries = cs.pending[i].deliveries;
              p->due_ms = due;
            }
            /* Kept sorted by stream sequence. */
            for (size_t i = 1; i < c->npend; i++)
              for (size_t j = i; j > 0 && c->pend[j - 1].sseq > c->pend[j].sseq;
                   j--) {
                pend_t t = c->pend[j];
                c->pend[j] = c->pend[j - 1];
                c->pend[j - 1] = t;
              }
          }
          store_consumer_state_free(&cs);
        }
        free(data);
      }
      if (rc != 0 && rc != TERND_ESTORE_NOTFOUND)
        LOG(LOG_WARN,
            "stream %s consumer %s: its state is unreadable (%s): starting "
            "from its deliver policy",
            st->def.name, c->name, ternd_strerror(rc));
    }
  }
  return store_iter_open(st->log, c->next_seq, &c->it);
}

void consumer_free(consumer_t *c, bool remove) {
  if (c == NULL)
    return;
  if (c->it != NULL)
    store_iter_close(c->it);
  if (c->state != NULL) {
    if (remove) {
      store_state_remove(c->state);
    } else {
      consumer_save(c);
      store_state_close(c->state);
    }
  }
  if (c->cfgstate != NULL) {
    if (remove)
      store_state_remove(c->cfgstate);
    else
      store_state_close(c->cfgstate);
  }
  for (size_t i = 0; i < c->npulls; i++)
    free(c->pulls[i].reply);
  free(c->pulls);
  free(c->pend);
  free(c->filter);
  free(c->push);
  free(c);
}

static void advise_max_deliver(consumer_t *c, const pend_t *p);
static void pend_remove(consumer_t *c, size_t i);

/* ---- pull requests ---- */

int consumer_pull(consumer_t *c, const char *reply, size_t rlen, uint64_t batch,
                  uint64_t expires_ms, bool no_wait) {
  if (c->npulls == c->pulls_cap) {
    size_t cap = c->pulls_cap ? c->pulls_cap * 2 : 4;
    pull_req_t *a = realloc(c->pulls, cap * sizeof *a);
    if (a == NULL)
      return TP_ENOMEM;
    c->pulls = a;
    c->pulls_cap = cap;
  }
  char *r = dupn(reply, rlen);
  if (r == NULL)
    return TP_ENOMEM;
  c->last_active_ms = now_ms(c);
  c->pulls[c->npulls++] =
      (pull_req_t){.reply = r,
                   .left = batch ? batch : 1,
                   .expires_ms = expires_ms ? now_ms(c) + expires_ms : 0,
                   .no_wait = no_wait};
  return 0;
}

static void pull_pop(consumer_t *c, size_t i) {
  free(c->pulls[i].reply);
  memmove(&c->pulls[i], &c->pulls[i + 1],
          (c->npulls - i - 1) * sizeof *c->pulls);
  c->npulls--;
}

void consumer_tick(consumer_t *c, uint64_t now) {
  /* Due messages that had all their deliveries go now, pulled or not. */
  if (c->max_deliver > 0) {
    for (size_t i = 0; i < c->npend;) {
      pend_t *p = &c->pend[i];
      if (p->due_ms <= now && p->deliveries >= c->max_deliver) {
        advise_max_deliver(c, p);
        pend_remove(c, i);
      } else {
        i++;
      }
    }
  }
  for (size_t i = 0; i < c->npulls;) {
    pull_req_t *p = &c->pulls[i];
    if (p->expires_ms != 0 && p->expires_ms <= now) {
      emit_status(c->st->owner->w, p->reply, "408 request expired");
      pull_pop(c, i);
    } else {
      i++;
    }
  }
}

/* ---- pending acks ---- */

/* The index of sseq in pend, or of where it would go. */
static size_t pend_find(const consumer_t *c, uint64_t sseq) {
  size_t lo = 0, hi = c->npend;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c->pend[mid].sseq < sseq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static void update_floor(consumer_t *c) {
  uint64_t floor = c->npend ? c->pend[0].sseq - 1 : c->next_seq - 1;
  if (floor > c->ack_floor || c->npend == 0)
    c->ack_floor = floor;
  c->state_dirty = true;
}

static void pend_remove(consumer_t *c, size_t i) {
  memmove(&c->pend[i], &c->pend[i + 1], (c->npend - i - 1) * sizeof *c->pend);
  c->npend--;
  update_floor(c);
}

void consumer_ack(consumer_t *c, uint64_t sseq, int kind, uint64_t delay_ms) {
  size_t i = pend_find(c, sseq);
  c->last_active_ms = now_ms(c);
  if (i >= c->npend || c->pend[i].sseq != sseq)
    return; /* already acked, or never pending: acks are idempotent */
  switch (kind) {
  case ACK_ACK:
    c->acked++;
    pend_remove(c, i);
    break;
  case ACK_TERM:
    c->termed++;
    pend_remove(c, i);
    break;
  case ACK_NAK:
    c->naked++;
    c->pend[i].due_ms = now_ms(c) + delay_ms;
    break;
  case ACK_PROGRESS:
    c->pend[i].due_ms = now_ms(c) + c->ack_wait_ms;
    break;
  }
}

void consumer_trim(consumer_t *c, uint64_t first_seq) {
  size_t k = pend_find(c, first_seq);
  if (k > 0) {
    memmove(c->pend, c->pend + k, (c->npend - k) * sizeof *c->pend);
    c->npend -= k;
    update_floor(c);
  }
  if (c->next_seq < first_seq) {
    c->next_seq = first_seq;
    update_floor(c);
  }
}

static int pend_add(consumer_t *c, uint64_t sseq, uint64_t cseq) {
  if (c->npend == c->pend_cap) {
    size_t cap = c->pend_cap ? c->pend_cap * 2 : 64;
    pend_t *a = realloc(c->pend, cap * sizeof *a);
    if (a == NULL)
      return TP_ENOMEM;
    c->pend = a;
    c->pend_cap = cap;
  }
  /* New deliveries come in stream order: the tail. */
  c->pend[c->npend++] = (pend_t){.sseq = sseq,
                                 .cseq = cseq,
                                 .due_ms = now_ms(c) + c->ack_wait_ms,
                                 .deliveries = 1};
  return 0;
}

/* ---- delivery ---- */

/* Where the next message goes: the first pull request's inbox or the
 * push topic; NULL when there is nowhere now. */
static const char *target(consumer_t *c) {
  if (c->push != NULL) {
    if (!router_has_room(c->st->owner->w, c->push, strlen(c->push))) {
      c->waiting_room = true;
      return NULL;
    }
    c->waiting_room = false;
    return c->push;
  }
  return c->npulls > 0 ? c->pulls[0].reply : NULL;
}

static void delivered_one(consumer_t *c) {
  if (c->push == NULL && c->npulls > 0 && --c->pulls[0].left == 0)
    pull_pop(c, 0);
}

static void advise_max_deliver(consumer_t *c, const pend_t *p) {
  streams_t *o = c->st->owner;
  c->max_deliver_hits++;
  if (o->advise == NULL)
    return;
  char body[512];
  int n =
      snprintf(body, sizeof body,
               "{\"stream\":\"%s\",\"consumer\":\"%s\",\"stream_seq\":%" PRIu64
               ",\"deliveries\":%u}",
               c->st->def.name, c->name, p->sseq, p->deliveries);
  o->advise(o->advise_ctx, "$SYS.stream.consumer.max_deliveries", body,
            (size_t)n);
}

/* Sends message m (delivery number `deliveries`, consumer sequence cseq)
 * to `to`. 0, or an error (nothing was sent). */
static int send_msg(consumer_t *c, const char *to, const store_msg_t *m,
                    uint32_t deliveries, uint64_t cseq, bool *full) {
  tp_headers_t h;
  const uint8_t *payload;
  size_t plen;
  if (rec_decode(m->data, m->len, &h, &payload, &plen) != 0)
    return TERND_ESTORE_CORRUPT;
  char ack[64 + 2 * STREAM_NAME_MAX + 3 * 21];
  if (!c->ack_none)
    snprintf(ack, sizeof ack, "$TS.ACK.%s.%s.%u.%" PRIu64 ".%" PRIu64,
             c->st->def.name, c->name, deliveries, m->seq, cseq);
  return emit_msg(c->st->owner->w, to, m->topic, m->topic_len, payload, plen,
                  &h, c->ack_none ? NULL : ack, full);
}

/* A pending message that is due again, or NULL. Those past max_deliver
 * are dropped (with an advisory) on the way. */
static pend_t *due(consumer_t *c, uint64_t now) {
  for (size_t i = 0; i < c->npend;) {
    pend_t *p = &c->pend[i];
    if (p->due_ms > now) {
      i++;
      continue;
    }
    if (c->max_deliver > 0 && p->deliveries >= c->max_deliver) {
      advise_max_deliver(c, p);
      pend_remove(c, i);
      continue;
    }
    return p;
  }
  return NULL;
}

bool consumer_pump(consumer_t *c, size_t budget) {
  uint64_t now = now_ms(c);
  store_t *log = c->st->log;
  size_t n = 0;
  for (; n < budget; n++) {
    const char *to = target(c);
    if (to == NULL)
      return false;
    bool full = false;
    pend_t *p = c->ack_none ? NULL : due(c, now);
    if (p != NULL) {
      store_msg_t m;
      int rc = store_get(log, p->sseq, &m);
      if (rc != 0) {
        /* Gone (limits, a delete): nothing left to redeliver. */
        pend_remove(c, (size_t)(p - c->pend));
        continue;
      }
      p->deliveries++;
      p->due_ms = now + c->ack_wait_ms;
      if (send_msg(c, to, &m, p->deliveries, p->cseq, &full) != 0)
        return false;
      c->redelivered++;
      c->delivered++;
      delivered_one(c);
      if (full)
        c->waiting_room = true;
      continue;
    }
    if (!c->ack_none && c->npend >= c->max_ack_pending)
      break;
    store_msg_t m;
    int rc = store_iter_next(c->it, &m);
    if (rc == 0)
      break; /* the end, for now */
    if (rc < 0) {
      c->next_seq = store_iter_seq(c->it);
      continue; /* a corrupt record: skipped */
    }
    c->next_seq = m.seq + 1;
    if (c->filter != NULL &&
        !tp_pattern_match(c->filter, strlen(c->filter), m.topic, m.topic_len)) {
      if (c->npend == 0)
        update_floor(c);
      continue;
    }
    uint64_t cseq = ++c->dseq;
    if (!c->ack_none && pend_add(c, m.seq, cseq) != 0)
      return false;
    if (send_msg(c, to, &m, 1, cseq, &full) != 0)
      return false;
    c->delivered++;
    if (c->ack_none)
      update_floor(c);
    c->state_dirty = true;
    delivered_one(c);
    if (full)
      c->waiting_room = true;
  }
  /* Pull requests with no_wait that found nothing. */
  if (c->push == NULL && c->npulls > 0 && c->pulls[0].no_wait) {
    emit_status(c->st->owner->w, c->pulls[0].reply, "404 no messages");
    pull_pop(c, 0);
  }
  return n == budget;
}
