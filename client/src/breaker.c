/*
 * The request circuit breaker: per request topic, consecutive failures
 * (timeouts, no responders) open the breaker, requests then fail at once
 * with TERN_EBREAKER for a cool-down, after which one probe request goes
 * through (half-open) and its outcome closes or re-opens the breaker.
 *
 * Only topics with a failure since their last success are tracked: a reply
 * forgets the topic. The table is a small array searched linearly, bounded
 * by breaker_max_topics; when it is full the least recently touched topic
 * still below the threshold is forgotten first, since it carries the least
 * information. Everything runs on the loop thread; time is uv_now.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"

typedef struct entry {
  char *topic;
  uint32_t failures; /* consecutive, while closed */
  tern_breaker_state_t state;
  uint64_t open_until; /* OPEN: when it turns half-open */
  bool probing;        /* HALF_OPEN: the probe is in flight */
  uint64_t touched;    /* last failure or admission, for eviction */
} entry_t;

struct tern__breaker {
  entry_t *v;
  size_t n, cap;
};

int tern__breaker_create(tern_conn_t *c) {
  c->breaker = NULL;
  if (c->opts.o.breaker_threshold == 0) {
    return 0;
  }
  c->breaker = calloc(1, sizeof(*c->breaker));
  return c->breaker != NULL ? 0 : TERN_ENOMEM;
}

void tern__breaker_destroy(tern_conn_t *c) {
  tern__breaker_t *b = c->breaker;
  if (b == NULL) {
    return;
  }
  for (size_t i = 0; i < b->n; i++) {
    free(b->v[i].topic);
  }
  free(b->v);
  free(b);
  c->breaker = NULL;
}

static entry_t *find(const tern__breaker_t *b, const char *topic) {
  for (size_t i = 0; i < b->n; i++) {
    if (strcmp(b->v[i].topic, topic) == 0) {
      return &b->v[i];
    }
  }
  return NULL;
}

static void forget(tern__breaker_t *b, entry_t *e) {
  free(e->topic);
  *e = b->v[--b->n]; /* order does not matter */
}

/* An OPEN breaker whose cool-down is over is HALF_OPEN. */
static void refresh(entry_t *e, uint64_t now) {
  if (e->state == TERN_BREAKER_OPEN && now >= e->open_until) {
    e->state = TERN_BREAKER_HALF_OPEN;
    e->probing = false;
  }
}

/* Makes room for one more entry, evicting if at the bound. */
static entry_t *add(tern_conn_t *c, const char *topic, uint64_t now) {
  tern__breaker_t *b = c->breaker;
  size_t max =
      c->opts.o.breaker_max_topics != 0 ? c->opts.o.breaker_max_topics : 1;
  entry_t *e;
  char *copy = strdup(topic);
  if (copy == NULL) {
    return NULL;
  }
  if (b->n >= max) {
    entry_t *victim = NULL;
    for (size_t i = 0; i < b->n; i++) {
      entry_t *x = &b->v[i];
      bool x_closed = x->state == TERN_BREAKER_CLOSED;
      bool v_closed = victim != NULL && victim->state == TERN_BREAKER_CLOSED;
      if (victim == NULL || (x_closed && !v_closed) ||
          (x_closed == v_closed && x->touched < victim->touched)) {
        victim = x;
      }
    }
    forget(b, victim);
  }
  if (b->n == b->cap) {
    size_t cap = b->cap != 0 ? 2 * b->cap : 8;
    entry_t *v = realloc(b->v, cap * sizeof(*v));
    if (v == NULL) {
      free(copy);
      return NULL;
    }
    b->v = v;
    b->cap = cap;
  }
  e = &b->v[b->n++];
  memset(e, 0, sizeof(*e));
  e->topic = copy;
  e->state = TERN_BREAKER_CLOSED;
  e->touched = now;
  return e;
}

int tern__breaker_admit(tern_conn_t *c, const char *topic, bool *probe) {
  uint64_t now = uv_now(c->loop);
  entry_t *e = find(c->breaker, topic);
  *probe = false;
  if (e == NULL) {
    return 0;
  }
  refresh(e, now);
  e->touched = now;
  switch (e->state) {
  case TERN_BREAKER_CLOSED:
    return 0;
  case TERN_BREAKER_HALF_OPEN:
    if (!e->probing) {
      e->probing = true;
      *probe = true;
      return 0;
    }
    return TERN_EBREAKER;
  default:
    return TERN_EBREAKER;
  }
}

/*
 * A request finished. A reply forgets the topic (closed). A failure counts
 * while closed and opens at the threshold; a failed probe re-opens for a
 * new cool-down. Other outcomes (the connection went away) say nothing
 * about the service: they only give the probe slot back.
 */
void tern__breaker_record(tern_conn_t *c, const char *topic, int status,
                          bool probe) {
  tern__breaker_t *b = c->breaker;
  uint64_t now;
  entry_t *e;
  if (b == NULL) {
    return;
  }
  now = uv_now(c->loop);
  e = find(b, topic);
  if (status == 0) {
    if (e != NULL) {
      forget(b, e);
    }
    return;
  }
  if (status != TERN_ETIMEOUT && status != TERN_ENORESPONDERS) {
    if (e != NULL && probe) {
      e->probing = false;
    }
    return;
  }
  if (e == NULL && (e = add(c, topic, now)) == NULL) {
    return; /* out of memory: the breaker just does not track it */
  }
  refresh(e, now);
  e->touched = now;
  if (probe || (e->state == TERN_BREAKER_CLOSED &&
                ++e->failures >= c->opts.o.breaker_threshold)) {
    e->state = TERN_BREAKER_OPEN;
    e->open_until = now + c->opts.o.breaker_cooldown_ms;
    e->probing = false;
  }
}

tern_breaker_state_t tern_conn_breaker_state(const tern_conn_t *c,
                                             const char *topic) {
  entry_t *e;
  if (c == NULL || topic == NULL || c->breaker == NULL) {
    return TERN_BREAKER_CLOSED;
  }
  e = find(c->breaker, topic);
  if (e == NULL) {
    return TERN_BREAKER_CLOSED;
  }
  refresh(e, uv_now(c->loop));
  return e->state;
}
