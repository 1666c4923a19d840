/*
 * Riding out faults: the server list, the reconnect state machine and the
 * client-side heartbeat.
 *
 * A connection that was established once and then lost (EOF, socket
 * error, fatal ERR, the EOF after a GOAWAY, a silent server) goes to
 * WAITING: everything already sent to the broker and still waiting for an
 * answer fails with TERN_EDISCONNECTED, the tcp handle is closed and
 * initialised again, and the rtimer fires the next attempt after an
 * exponential backoff with jitter. Each attempt moves to the next server of
 * the list and runs the ordinary connect path (conn.c); when the broker
 * accepts CONNECT, tern__reconnect_resume re-sends every subscription and
 * then the frames held while disconnected, in that order, so a publish
 * buffered while disconnected reaches subscriptions of this very connection.
 *
 * The rtimer has two jobs that never overlap: backoff while WAITING,
 * heartbeat check while CONNECTED.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"

/* One URL of the server list, with room for "[v6]:port". */
#define SERVER_URL_MAX (TERN_HOST_MAX + 16)

static bool is_space(char ch) {
  return ch == ' ' || ch == '\t';
}

/* Parses the comma-separated URL [p, end) into *out. */
static int parse_server(const tern_conn_t *c, const char *p, const char *end,
                        tern__server_t *out) {
  char url[SERVER_URL_MAX];
  tern_options_t tmp;
  while (p < end && is_space(*p)) {
    p++;
  }
  while (end > p && is_space(end[-1])) {
    end--;
  }
  if (p == end || (size_t)(end - p) >= sizeof(url)) {
    return TERN_EBADURL;
  }
  memcpy(url, p, (size_t)(end - p));
  url[end - p] = '\0';
  tern_options_init(&tmp);
  tmp.port = c->opts.o.port; /* "host" alone keeps the configured port */
  tmp.tls = c->opts.o.tls;   /* and the configured TLS */
  if (tern_options_set_url(&tmp, url) != 0) {
    return TERN_EBADURL;
  }
  memcpy(out->host, tmp.host, sizeof(out->host));
  out->port = tmp.port;
  out->tls = tmp.tls;
  return 0;
}

int tern__servers_init(tern_conn_t *c) {
  const char *list = c->opts.o.servers;
  size_t n = 1;
  if (list != NULL && list[0] != '\0') {
    for (const char *p = list; *p != '\0'; p++) {
      n += *p == ',';
    }
  }
  c->servers = calloc(n, sizeof(*c->servers));
  if (c->servers == NULL) {
    return TERN_ENOMEM;
  }
  c->nservers = n;
  c->server_idx = 0;
  if (list == NULL || list[0] == '\0') {
    memcpy(c->servers[0].host, c->opts.o.host, sizeof(c->servers[0].host));
    c->servers[0].port = c->opts.o.port;
    c->servers[0].tls = c->opts.o.tls;
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    const char *end = strchr(list, ',');
    if (end == NULL) {
      end = list + strlen(list);
    }
    if (parse_server(c, list, end, &c->servers[i]) != 0) {
      return TERN_EBADURL; /* the caller frees the list */
    }
    list = *end == ',' ? end + 1 : end;
  }
  return 0;
}

#define TERN__SERVERS_MAX 64

int tern__servers_merge(tern_conn_t *c, const char *list, size_t len) {
  const char *p = list, *stop = list + len;
  while (p < stop) {
    const char *end = memchr(p, ',', (size_t)(stop - p));
    if (end == NULL) {
      end = stop;
    }
    tern__server_t s;
    memset(&s, 0, sizeof(s));
    if (parse_server(c, p, end, &s) == 0) {
      bool known = false;
      for (size_t i = 0; i < c->nservers && !known; i++) {
        known = c->servers[i].port == s.port &&
                strcmp(c->servers[i].host, s.host) == 0;
      }
      if (!known && c->nservers < TERN__SERVERS_MAX) {
        tern__server_t *a = realloc(c->servers, (c->nservers + 1) * sizeof(*a));
        if (a == NULL) {
          return TERN_ENOMEM;
        }
        c->servers = a;
        c->servers[c->nservers++] = s;
      }
    }
    p = end < stop ? end + 1 : end;
  }
  return 0;
}

void tern__servers_free(tern_conn_t *c) {
  free(c->servers);
  c->servers = NULL;
  c->nservers = 0;
}

/*
 * Delay before attempt n (1-based): initial * 2^(n-1), capped by max, then
 * shortened by up to jitter * delay at random, so that many clients that
 * lost the same broker do not all come back in the same millisecond.
 */
static uint64_t backoff_ms(const tern_conn_t *c, uint32_t n) {
  const tern_options_t *o = &c->opts.o;
  uint64_t d = o->reconnect_initial_ms != 0 ? o->reconnect_initial_ms : 1;
  uint64_t max = o->reconnect_max_ms > d ? o->reconnect_max_ms : d;
  double jitter = o->reconnect_jitter;
  uint32_t r = 0;
  for (uint32_t i = 1; i < n && d < max; i++) {
    d *= 2;
  }
  if (d > max) {
    d = max;
  }
  if (jitter > 1.0) {
    jitter = 1.0;
  }
  if (jitter > 0.0 && uv_random(NULL, NULL, &r, sizeof(r), 0, NULL) == 0) {
    d -= (uint64_t)((double)d * jitter * ((double)r / 4294967296.0));
  }
  return d;
}

static void start_attempt(tern_conn_t *c);

static void on_attempt_due(uv_timer_t *t) {
  start_attempt(t->data);
}

void tern__reconnect_tcp_ready(tern_conn_t *c) {
  uint64_t delay;
  if (c->state != TERN__WAITING) {
    return;
  }
  /* The first connect walks its server list without waiting. */
  delay = c->reconnecting ? backoff_ms(c, c->attempt + 1) : 0;
  uv_timer_start(&c->rtimer, on_attempt_due, delay, 0);
}

/* An attempt of a reconnect failed: try again later, or give up. */
static void attempt_failed(tern_conn_t *c, int status) {
  int max = c->opts.o.reconnect_max_attempts;
  c->state = TERN__WAITING;
  c->last_attempt_err = status;
  tp_buf_reset(&c->pending); /* a CONNECT that never went out */
  if (max >= 0 && c->attempt >= (uint32_t)max) {
    tern__conn_final_loss(c, status);
    return;
  }
  tern__conn_recycle_tcp(c);
}

/* rtimer while WAITING: the backoff is over, dial the next server. */
static void start_attempt(tern_conn_t *c) {
  int rc;
  if (c->state != TERN__WAITING) {
    return;
  }
  if (c->reconnecting) {
    c->attempt++;
    c->server_idx = (c->server_idx + 1) % c->nservers;
    tern__conn_status(c, TERN_STATUS_RECONNECTING, c->last_attempt_err);
    if (c->state != TERN__WAITING) {
      return; /* closed by the status callback */
    }
  }
  rc = tern__conn_dial(c);
  if (rc != 0) {
    tern__conn_set_error(c, tern_strerror(rc), strlen(tern_strerror(rc)));
    c->state = TERN__CONNECTING;
    tern__conn_fail_connect(c, rc);
  }
}

bool tern__reconnect_on_fail(tern_conn_t *c, int status) {
  if (!c->reconnecting) {
    if (c->server_idx + 1 >= c->nservers) {
      return false; /* the first connect has tried every server */
    }
    c->server_idx++;
    c->state = TERN__WAITING;
    tp_buf_reset(&c->pending);
    tern__conn_recycle_tcp(c);
    return true;
  }
  attempt_failed(c, status);
  return true;
}

void tern__buffering_started(tern_conn_t *c) {
  c->resume_seq = c->next_seq++;
  c->seg_dirty = false;
  c->pubs_refused = 0;
}

bool tern__reconnect_on_loss(tern_conn_t *c, int reason) {
  if (!c->opts.o.reconnect) {
    return false;
  }
  if (!c->goaway) {
    tern__buffering_started(c); /* else it started at the GOAWAY */
  }
  c->state = TERN__WAITING;
  c->reconnecting = true;
  c->goaway = false;
  c->attempt = 0;
  c->last_attempt_err = 0;
  uv_timer_stop(&c->rtimer);
  tern__conn_recycle_tcp(c);
  /* Sent before the loss: whatever happened to it is unknown; fail now
   * rather than let the caller wait for a timeout. */
  tern__fail_pending(c, TERN_EDISCONNECTED, true);
  if (c->state == TERN__WAITING) {
    tern__conn_status(c, TERN_STATUS_DISCONNECTED, reason);
  }
  return true;
}

/*
 * The broker of a reconnect attempt accepted CONNECT. Its batch already
 * holds CONNECT; append the subscriptions, then the held frames, so the new
 * broker sees them in the order the application made them.
 */
int tern__reconnect_resume(tern_conn_t *c) {
  int rc = tern__subs_resend(c);
  if (rc == 0 && c->nsubs > 0) {
    rc = tern__resume_barrier(c);
  }
  if (rc == 0 && c->held.len > 0 &&
      tp_buf_append(&c->pending, c->held.data, c->held.len) != 0) {
    rc = TERN_ENOMEM;
  }
  if (rc != 0) {
    return rc;
  }
  tp_buf_reset(&c->held);
  c->pending_pubs += c->held_pubs;
  c->held_pubs = 0;
  tern__pending_unhold(c);
  c->reconnecting = false;
  c->goaway = false;
  c->state = TERN__CONNECTED;
  c->stats.reconnects++;
  tern__heartbeat_start(c, c->heartbeat_ms);
  tern__conn_status(c, TERN_STATUS_CONNECTED, 0); /* with the loss figures */
  c->attempt = 0;
  c->down = false;
  c->pubs_discarded = c->pubs_refused = c->pubs_in_flight = 0;
  return 0;
}

/*
 * rtimer while CONNECTED, every half interval. Any frame from the broker
 * proves it alive; after one interval of silence a PING asks for a PONG,
 * after two the connection is declared dead. While the application has
 * paused reading, silence is ours, not the broker's, so it does not count.
 */
static void on_heartbeat(uv_timer_t *t) {
  static const char stale[] = "no frame from the server for two heartbeats";
  tern_conn_t *c = t->data;
  uint64_t now = uv_now(c->loop);
  uint64_t hb = c->heartbeat_ms;
  if (c->state != TERN__CONNECTED) {
    uv_timer_stop(t);
    return;
  }
  if (c->paused) {
    c->last_rx = now;
    return;
  }
  if (now - c->last_rx >= 2 * hb) {
    tern__conn_set_error(c, stale, sizeof(stale) - 1);
    tern__conn_report(c, TERN_ESTALE, 0);
    tern__conn_lost(c, TERN_ESTALE);
    return;
  }
  if (now - c->last_rx >= hb && c->hb_ping_at <= c->last_rx) {
    c->hb_ping_at = now;
    if (tern__heartbeat_ping(c) != 0) {
      c->hb_ping_at = 0; /* try again on the next tick */
    }
  }
}

void tern__heartbeat_start(tern_conn_t *c, uint64_t hello_hb_ms) {
  uint64_t hb =
      c->opts.o.heartbeat_ms != 0 ? c->opts.o.heartbeat_ms : hello_hb_ms;
  uint64_t tick = hb / 2 != 0 ? hb / 2 : 1;
  uv_timer_stop(&c->rtimer);
  c->heartbeat_ms = hb;
  if (hb == 0) {
    return;
  }
  c->last_rx = uv_now(c->loop);
  c->hb_ping_at = 0;
  uv_timer_start(&c->rtimer, on_heartbeat, tick, tick);
}
