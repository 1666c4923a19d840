/*
 * The monitoring documents (see metrics.h). Everything is computed on
 * request by walking the connections: a scrape every few seconds costs far
 * less than keeping more counters on the message path.
 */
#include "server/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "cluster/cluster.h"
#include "delivery/sub.h"
#include "server/state.h"
#include "session/auth.h"
#include "session/conn.h"
#include "session/pressure.h"
#include "stream/streams.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"
#include "tern_proto/topic.h"
#include "transport/tls.h"

/* printf onto the end of a buffer. */
__attribute__((format(printf, 2, 3))) static int put(tp_buf_t *b,
                                                     const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0)
    return -1;
  if ((size_t)n < sizeof tmp)
    return tp_buf_append(b, tmp, (size_t)n);
  /* Longer than the scratch: format again straight into the buffer. */
  if (tp_buf_reserve(b, (size_t)n + 1) != 0)
    return -1;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

int metrics_json_str(tp_buf_t *out, const char *s, size_t len) {
  int rc = tp_buf_append(out, "\"", 1);
  char tmp[512];
  while (rc == 0 && s != NULL && len > 0) {
    size_t used;
    size_t n = log_escape(tmp, sizeof tmp, s, len, true, &used);
    rc = tp_buf_append(out, tmp, n);
    s += used;
    len -= used;
  }
  return rc == 0 ? tp_buf_append(out, "\"", 1) : rc;
}

static int json_cstr(tp_buf_t *out, const char *s) {
  if (s == NULL)
    return put(out, "null");
  return metrics_json_str(out, s, strlen(s));
}

/* ---- several workers: every figure is the sum over them --------------- */

/* Adds up one block of uint64_t counters of worker_t (at offset, size
 * bytes) over the workers (one worker: its own). */
static void sum_counters(const server_t *srv, size_t offset, size_t size,
                         uint64_t *out) {
  memset(out, 0, size);
  for (int i = 0; i < srv->broker.nworkers; i++) {
    const uint64_t *x =
        (const uint64_t *)((const char *)srv->workers[i] + offset);
    for (size_t k = 0; k < size / sizeof(uint64_t); k++)
      out[k] += x[k];
  }
}

static void sum_stats(const server_t *srv, server_stats_t *out) {
  sum_counters(srv, offsetof(worker_t, stats), sizeof *out, (uint64_t *)out);
}

static void sum_ops(const server_t *srv, server_ops_stats_t *out) {
  sum_counters(srv, offsetof(worker_t, ops), sizeof *out, (uint64_t *)out);
}

/* The login verifiers' counters added up over the workers. */
static void sum_auth(const server_t *srv, auth_stats_t *out) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < srv->broker.nworkers; i++) {
    if (srv->workers[i]->auth == NULL)
      continue;
    auth_stats_t a;
    auth_verifier_stats(srv->workers[i]->auth, &a);
    uint64_t *o = (uint64_t *)out;
    const uint64_t *x = (const uint64_t *)&a;
    for (size_t k = 0; k < sizeof a / sizeof(uint64_t); k++)
      o[k] += x[k];
  }
}

/* The gate's limits and its counters added up over the workers. */
static void sum_gate(const server_t *srv, pending_gate_t *out) {
  *out = srv->broker.gate;
  if (srv->broker.nworkers == 1)
    return;
  out->episodes = out->disconnects = out->evictions = out->pauses = 0;
  memset(out->drops, 0, sizeof out->drops);
  out->state = 0;
  for (int i = 0; i < srv->broker.nworkers; i++) {
    const pending_gate_t *g = srv->workers[i]->gate;
    out->episodes += g->episodes;
    out->disconnects += g->disconnects;
    out->evictions += g->evictions;
    out->pauses += g->pauses;
    for (int k = 0; k < 8; k++)
      out->drops[k] += g->drops[k];
    if (g->state > out->state)
      out->state = g->state;
  }
}

static size_t sum_nlive(const server_t *srv) {
  size_t n = 0;
  for (int i = 0; i < srv->broker.nworkers; i++)
    n += srv->workers[i]->nlive;
  return n;
}

static size_t sum_nconns(const server_t *srv) {
  size_t n = 0;
  for (int i = 0; i < srv->broker.nworkers; i++)
    n += srv->workers[i]->nconns;
  return n;
}

/* Read buffers held (or their caps), over the workers. */
static uint64_t sum_rx(const server_t *srv, bool cap) {
  uint64_t n = 0;
  for (int i = 0; i < srv->broker.nworkers; i++)
    n += cap ? (i == 0 ? srv->workers[i]->rx.tail_max : 0)
             : srv->workers[i]->rx.tail_bytes;
  return n;
}

/* Subscriptions in the index (every replica holds them all). */
static size_t index_count(const server_t *srv) {
  return srv->broker.replicas != NULL
             ? sublist_count(srv->broker.replicas[0].index)
             : sublist_count(srv->broker.index);
}

/* Every connection of every worker: FOR_EACH_CONN(srv, c) { ... } */
#define FOR_EACH_CONN(srv, c)                                                  \
  for (int wi_ = 0; wi_ < (srv)->broker.nworkers; wi_++)                       \
    for (list_node_t *ln_ = (srv)->workers[wi_]->conns.next;                   \
         ln_ != &(srv)->workers[wi_]->conns; ln_ = ln_->next)                  \
      for (conn_t *c = LIST_ENTRY(ln_, conn_t, all_link); c != NULL; c = NULL)

/* Figures that need a walk over the connections. */
typedef struct walk {
  uint64_t pending_bytes, pending_msgs, blocked_pubs, bytes_out, msgs_out;
  uint64_t subs_dropped;
} walk_t;

static void walk_conns(server_t *srv, walk_t *w) {
  memset(w, 0, sizeof *w);
  server_ops_stats_t ops;
  sum_ops(srv, &ops);
  w->bytes_out = ops.closed_bytes_out;
  w->msgs_out = ops.closed_msgs_out;
  FOR_EACH_CONN(srv, c) {
    w->pending_bytes += c->out.bytes;
    w->bytes_out += c->out.bytes_written;
    w->msgs_out += c->out.msgs_written;
    if (conn_is_blocked(c))
      w->blocked_pubs++;
    size_t pos = 0;
    const void *key;
    size_t klen;
    void *val;
    while (c->subs && hashmap_next(c->subs, &pos, &key, &klen, &val) == 1)
      w->pending_msgs += ((sub_t *)val)->q.pending_msgs;
  }
}

static double uptime_s(const server_t *srv) {
  return (double)(uv_now(srv->worker.loop) - srv->started_ms) / 1000.0;
}

/* One metric: HELP, TYPE and an unlabelled sample. */
static int metric(tp_buf_t *b, const char *name, const char *type,
                  const char *help, uint64_t v) {
  return put(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type,
             name, (unsigned long long)v);
}

/* Memory pressure (pending_gate.h): where the total stands against the
 * cap, and who paid for it. */
static int pressure_metrics(server_t *srv, tp_buf_t *b) {
  pending_gate_t gs;
  sum_gate(srv, &gs);
  const pending_gate_t *g = &gs;
  uint64_t total = pressure_total(&srv->worker);
  uint64_t budget = pending_gate_budget(g, total);
  int rc = 0;
  rc |= metric(b, "tern_pending_total_bytes", "gauge",
               "Bytes max_pending_total counts now (bodies once, entries, "
               "chunks).",
               total);
  rc |= metric(b, "tern_max_pending_total_bytes", "gauge",
               "The cap on pending bytes (max_pending_total).", g->high);
  rc |= metric(b, "tern_memory_pressure", "gauge",
               "0 below half the cap, 1 above it (budgets shrink), 2 at the "
               "cap.",
               (uint64_t)(total >= g->high   ? 2
                          : total >= g->soft ? 1
                                             : 0));
  rc |= metric(b, "tern_pressure_budget_bytes", "gauge",
               "Bytes each subscription may hold now (the cap when there is "
               "no pressure).",
               budget < g->high ? budget : g->high);
  rc |= metric(b, "tern_pressure_episodes_total", "counter",
               "Times the pending total rose above half the cap.", g->episodes);
  rc |= put(b, "# HELP tern_pressure_dropped_messages_total Messages "
               "dropped early because of memory pressure (also in "
               "tern_dropped_messages_total).\n# TYPE "
               "tern_pressure_dropped_messages_total counter\n");
  for (int p = TP_OVERFLOW_DROP_OLDEST; p <= TP_OVERFLOW_DROP_NEWEST; p++)
    rc |= put(b, "tern_pressure_dropped_messages_total{policy=\"%s\"} %llu\n",
              tp_overflow_name(p), (unsigned long long)g->drops[p]);
  rc |= metric(b, "tern_pressure_disconnects_total", "counter",
               "Slow consumers closed because of memory pressure (also in "
               "tern_slow_consumer_disconnects_total).",
               g->disconnects);
  rc |= metric(b, "tern_pressure_publisher_pauses_total", "counter",
               "Times a publisher was paused because a block queue it feeds "
               "was over its share under memory pressure.",
               g->pauses);
  return rc;
}

int metrics_prometheus(server_t *srv, tp_buf_t *b) {
  server_ops_stats_t ops;
  sum_ops(srv, &ops);
  walk_t w;
  walk_conns(srv, &w);
  server_stats_t sts;
  sum_stats(srv, &sts);
  const server_stats_t *st = &sts;
  int rc = 0;
  rc |= metric(b, "tern_connections", "gauge", "Client connections open.",
               sum_nlive(srv));
  rc |= metric(b, "tern_connections_accepted_total", "counter",
               "Client connections accepted.", st->conns_accepted);
  rc |= put(b, "# HELP tern_connections_refused_total Connections refused "
               "with ERR 11: over max_connections, or out of file "
               "descriptors.\n# TYPE tern_connections_refused_total "
               "counter\n");
  rc |= put(b,
            "tern_connections_refused_total{reason=\"max_connections\"} "
            "%llu\ntern_connections_refused_total{reason=\"fd\"} %llu\n",
            (unsigned long long)st->conns_refused,
            (unsigned long long)st->conns_refused_fd);
  rc |= metric(b, "tern_subscriptions", "gauge", "Subscriptions in place.",
               index_count(srv));
  rc |= metric(b, "tern_messages_in_total", "counter", "PUB messages routed.",
               st->msgs_in);
  rc |= metric(b, "tern_bytes_in_total", "counter",
               "Payload bytes of routed PUB messages.", st->bytes_in);
  rc |= metric(b, "tern_messages_out_total", "counter",
               "MSG frames queued to subscriptions.", st->msgs_out);
  rc |= metric(b, "tern_bytes_out_total", "counter",
               "Bytes written to clients.", w.bytes_out);
  rc |= put(b, "# HELP tern_dropped_messages_total Messages discarded by "
               "an overflow policy.\n# TYPE tern_dropped_messages_total "
               "counter\n");
  for (int p = TP_OVERFLOW_DROP_OLDEST; p <= TP_OVERFLOW_DROP_NEWEST; p++)
    rc |= put(b, "tern_dropped_messages_total{policy=\"%s\"} %llu\n",
              tp_overflow_name(p), (unsigned long long)st->drops_by_policy[p]);
  rc |= metric(b, "tern_slow_consumer_disconnects_total", "counter",
               "Connections closed as slow consumers (ERR 6).",
               st->slow_consumers);
  rc |= metric(b, "tern_stale_connections_total", "counter",
               "Connections closed for missed heartbeats (ERR 12).",
               st->stale_conns);
  rc |= metric(b, "tern_publisher_blocks_total", "counter",
               "Times a publisher stopped being read (block policy).",
               st->publisher_blocks);
  rc |= metric(b, "tern_blocked_publishers", "gauge",
               "Publishers not being read right now.", w.blocked_pubs);
  rc |= metric(b, "tern_pending_bytes", "gauge",
               "Bytes queued for clients, not yet written.", w.pending_bytes);
  rc |= metric(b, "tern_pending_messages", "gauge",
               "Messages pending in subscription queues.", w.pending_msgs);
  rc |= pressure_metrics(srv, b);
  rc |= metric(b, "tern_inbound_bytes", "gauge",
               "Bytes of read buffers held for unfinished or unhandled "
               "frames.",
               sum_rx(srv, false));
  rc |=
      metric(b, "tern_max_inbound_bytes", "gauge",
             "The cap on read buffers (max_inbound_total).", sum_rx(srv, true));
  rc |= metric(b, "tern_inbound_refused_total", "counter",
               "Frames refused because read buffers were full (ERR 5).",
               st->inbound_refused);
  rc |= metric(b, "tern_frame_timeouts_total", "counter",
               "Connections closed for a frame not completed within "
               "frame_timeout_ms (ERR 12).",
               st->frame_timeouts);
  retained_stats_t rs;
  retained_get_stats(srv->broker.retained, &rs);
  rc |= metric(b, "tern_retained_topics", "gauge",
               "Topics holding a retained message.", rs.topics);
  rc |= metric(b, "tern_retained_bytes", "gauge", "Bytes of retained messages.",
               rs.bytes);
  rc |= metric(b, "tern_retained_expired_total", "counter",
               "Retained messages removed by their ttl.", rs.expired);
  rc |= metric(b, "tern_auth_failures_total", "counter",
               "CONNECTs refused (ERR 2).", ops.auth_failures);
  rc |= put(b,
            "# HELP tern_permission_denials_total PUB and SUB refused by "
            "the user's permissions (ERR 3).\n# TYPE "
            "tern_permission_denials_total counter\n"
            "tern_permission_denials_total{op=\"pub\"} %llu\n"
            "tern_permission_denials_total{op=\"sub\"} %llu\n",
            (unsigned long long)(ops.perm_denials - ops.perm_denials_sub),
            (unsigned long long)ops.perm_denials_sub);
  rc |= metric(b, "tern_response_publishes_total", "counter",
               "PUBs allowed only as replies (allow_responses).",
               ops.resp_allowed);
  auth_stats_t as;
  sum_auth(srv, &as);
  rc |= metric(b, "tern_auth_hashes_total", "counter",
               "Password hashes computed (unknown users too).", as.hashes);
  rc |= metric(b, "tern_auth_cache_hits_total", "counter",
               "Logins accepted from the cache of verified ones, unhashed.",
               as.cache_hits);
  rc |= metric(b, "tern_auth_skipped_total", "counter",
               "Queued logins dropped unhashed: the client had left.",
               as.skipped);
  rc |= metric(b, "tern_auth_busy_total", "counter",
               "CONNECTs refused (ERR 11): the login queue was full.", as.busy);
  rc |= metric(b, "tern_auth_blocked_total", "counter",
               "CONNECTs refused (ERR 2) unhashed: too many failed logins "
               "from their address.",
               as.blocked);
  rc |= metric(b, "tern_auth_queued", "gauge",
               "Logins waiting for a password hash.", as.queued);
  rc |= put(b,
            "# HELP tern_fanout_ratio Messages out per message in.\n"
            "# TYPE tern_fanout_ratio gauge\ntern_fanout_ratio %.6f\n",
            st->msgs_in ? (double)st->msgs_out / (double)st->msgs_in : 0.0);
  rc |= put(b,
            "# HELP tern_uptime_seconds Seconds since ternd started.\n"
            "# TYPE tern_uptime_seconds gauge\ntern_uptime_seconds %.3f\n",
            uptime_s(srv));
  if (srv->streams != NULL && streams_metrics(srv->streams, b) != 0)
    rc = -1;
  rc |= put(b,
            "# HELP tern_info Static facts about this server.\n# TYPE "
            "tern_info gauge\ntern_info{version=\"%s\",server_id=\"%s\"} 1\n",
            TERND_VERSION, srv->broker.server_id);
  if (srv->cluster != NULL)
    cluster_metrics(srv->cluster, b);
  return rc == 0 ? 0 : -1;
}

int metrics_routez(server_t *srv, tp_buf_t *b) {
  if (srv->cluster == NULL)
    return put(b, "{\"cluster\":null,\"routes\":[]}\n") == 0 ? 0 : -1;
  cluster_routez(srv->cluster, b);
  return 0;
}

int metrics_streamz(server_t *srv, tp_buf_t *b) {
  if (srv->streams == NULL) {
    const char *off = "{\"streams\":[],\"enabled\":false}\n";
    return tp_buf_append(b, off, strlen(off)) == 0 ? 0 : -1;
  }
  return streams_json(srv->streams, b) == 0 ? 0 : -1;
}

int metrics_varz(server_t *srv, tp_buf_t *b) {
  server_ops_stats_t ops;
  sum_ops(srv, &ops);
  walk_t w;
  walk_conns(srv, &w);
  server_stats_t sts;
  sum_stats(srv, &sts);
  const server_stats_t *st = &sts;
  const config_t *cfg = &srv->broker.cfg;
  pending_gate_t gs;
  sum_gate(srv, &gs);
  int rc = put(b, "{\"server_id\":\"%s\",\"version\":\"%s\",",
               srv->broker.server_id, TERND_VERSION);
  rc |= put(b, "\"host\":");
  rc |= json_cstr(b, cfg->host);
  rc |= put(b,
            ",\"port\":%d,\"http_port\":%d,\"start\":%lld,\"uptime_s\":%.3f,"
            "\"draining\":%s,\"auth_required\":%s,",
            cfg->port, srv->http_port_bound, (long long)srv->started_unix,
            uptime_s(srv), srv->shutting_down ? "true" : "false",
            (cfg->users != NULL || cfg->auth_token[0]) ? "true" : "false");
  rc |= put(
      b,
      "\"connections\":%zu,\"total_connections\":%llu,"
      "\"subscriptions\":%zu,\"in_msgs\":%llu,\"in_bytes\":%llu,"
      "\"out_msgs\":%llu,\"out_bytes\":%llu,\"dropped_msgs\":%llu,"
      "\"slow_consumers\":%llu,\"stale_connections\":%llu,"
      "\"publisher_blocks\":%llu,\"blocked_publishers\":%llu,"
      "\"pending_bytes\":%llu,\"pending_total\":%llu,"
      "\"max_pending_total\":%llu,\"pressure_drops\":%llu,"
      "\"pressure_disconnects\":%llu,\"auth_failures\":%llu,"
      "\"permission_denials\":%llu,",
      sum_nlive(srv), (unsigned long long)st->conns_accepted, index_count(srv),
      (unsigned long long)st->msgs_in, (unsigned long long)st->bytes_in,
      (unsigned long long)st->msgs_out, (unsigned long long)w.bytes_out,
      (unsigned long long)st->msgs_dropped,
      (unsigned long long)st->slow_consumers,
      (unsigned long long)st->stale_conns,
      (unsigned long long)st->publisher_blocks,
      (unsigned long long)w.blocked_pubs, (unsigned long long)w.pending_bytes,
      (unsigned long long)pressure_total(&srv->worker),
      (unsigned long long)gs.high,
      (unsigned long long)(gs.drops[TP_OVERFLOW_DROP_OLDEST] +
                           gs.drops[TP_OVERFLOW_DROP_NEWEST]),
      (unsigned long long)gs.disconnects, (unsigned long long)ops.auth_failures,
      (unsigned long long)ops.perm_denials);
  rc |= put(b,
            "\"config\":{\"max_payload\":%llu,\"max_connections\":%llu,"
            "\"max_subs\":%llu,\"max_pending_msgs\":%llu,"
            "\"max_pending_bytes\":%llu,\"heartbeat_ms\":%llu,"
            "\"stall_timeout_ms\":%llu,\"log_level\":\"%s\",",
            (unsigned long long)cfg->max_payload,
            (unsigned long long)cfg->max_connections,
            (unsigned long long)cfg->max_subs,
            (unsigned long long)cfg->max_pending_msgs,
            (unsigned long long)cfg->max_pending_bytes,
            (unsigned long long)cfg->heartbeat_ms,
            (unsigned long long)cfg->stall_timeout_ms,
            log_level_name(log_g_level));
  /* The other limits and timeouts (max_pending_total as in effect: the
   * computed default when configured 0; 0 elsewhere = unlimited/off). */
  rc |= put(b,
            "\"max_frame\":%llu,\"max_topic\":%llu,"
            "\"max_pending_total\":%llu,\"max_retained_topics\":%llu,"
            "\"max_retained_bytes\":%llu,\"connect_timeout_ms\":%llu,"
            "\"drain_timeout_ms\":%llu,\"sys_interval_ms\":%llu}}\n",
            (unsigned long long)cfg->max_frame,
            (unsigned long long)cfg->max_topic,
            (unsigned long long)cfg->max_pending_total,
            (unsigned long long)cfg->max_retained_topics,
            (unsigned long long)cfg->max_retained_bytes,
            (unsigned long long)cfg->connect_timeout_ms,
            (unsigned long long)cfg->drain_timeout_ms,
            (unsigned long long)cfg->sys_interval_ms);
  return rc == 0 ? 0 : -1;
}

static const char *state_name(conn_state_t s) {
  switch (s) {
  case CONN_HANDSHAKE:
    return "handshake";
  case CONN_ACTIVE:
    return "active";
  case CONN_CLOSING:
    return "closing";
  default:
    return "closed";
  }
}

/* ---- /connz and /subz pages ------------------------------------------- */

enum {
  SORT_CID,
  SORT_SUBS,
  SORT_PENDING,
  SORT_MSGS_TO,
  SORT_MSGS_FROM,
  SORT_BYTES_TO,
  SORT_BYTES_FROM
};
static const char *const sort_names[] = {
    "cid", "subs", "pending", "msgs_to", "msgs_from", "bytes_to", "bytes_from"};
enum { STATE_OPEN, STATE_HANDSHAKE, STATE_ACTIVE, STATE_CLOSING, STATE_ANY };
static const char *const state_names[] = {"open", "handshake", "active",
                                          "closing", "any"};

/* One entry of a page: a connection, or a subscription of one. */
typedef struct item {
  uint64_t cid, sid;
} item_t;

struct metrics_page {
  server_t *srv;
  int kind;
  uint64_t limit, offset, total;
  item_t *items; /* the page, in order */
  size_t n, cap, next;
  size_t returned; /* entries rendered (some may have gone meanwhile) */
  size_t body;     /* bytes produced so far */
  bool started, truncated, done;
  /* Filters, kept for the document's head. */
  int sort, state;
};

/* Lookups for a run of items: the connections they name, found with one
 * walk over the registry (a connection may be gone by now: NULL). */
#define RUN 256

typedef struct run_ref {
  uint64_t cid;
  size_t at;
} run_ref_t;

static int cmp_run(const void *a, const void *b) {
  const run_ref_t *x = a, *y = b;
  return x->cid < y->cid ? -1 : x->cid > y->cid;
}

static void find_conns(server_t *srv, const item_t *items, size_t n,
                       conn_t **found) {
  run_ref_t refs[RUN];
  for (size_t i = 0; i < n; i++) {
    refs[i].cid = items[i].cid;
    refs[i].at = i;
    found[i] = NULL;
  }
  qsort(refs, n, sizeof refs[0], cmp_run);
  /* Each worker's registry is in accept order, which is ascending cid. */
  for (int wi = 0; wi < srv->broker.nworkers; wi++) {
    const list_node_t *head = &srv->workers[wi]->conns;
    size_t k = 0;
    for (list_node_t *l = head->next; l != head && k < n; l = l->next) {
      conn_t *c = LIST_ENTRY(l, conn_t, all_link);
      while (k < n && refs[k].cid < c->id)
        k++;
      while (k < n && refs[k].cid == c->id)
        found[refs[k++].at] = c;
    }
  }
}

/* Parses a decimal u64 query value. */
static bool parse_num(const char *v, uint64_t *out) {
  if (*v < '0' || *v > '9')
    return false;
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno != 0 || *end != '\0')
    return false;
  *out = x;
  return true;
}

/* Decodes %XX and '+' in place. False on a bad escape. */
static bool url_decode(char *s) {
  char *w = s;
  for (const char *r = s; *r; r++) {
    if (*r == '+') {
      *w++ = ' ';
    } else if (*r == '%') {
      int hi, lo;
      char h[3] = {r[1], r[1] ? r[2] : 0, 0};
      if (sscanf(h, "%1x%1x", &hi, &lo) != 2)
        return false;
      *w++ = (char)(hi * 16 + lo);
      r += 2;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
  return true;
}

static int lookup(const char *const *names, int n, const char *v) {
  for (int i = 0; i < n; i++) {
    if (strcmp(names[i], v) == 0)
      return i;
  }
  return -1;
}

typedef struct query {
  uint64_t limit, offset, cid;
  bool has_cid;
  int sort, state;
  char subject[1100], test[1100];
} query_t;

static int parse_query(query_t *q, int kind, const char *query, char *why,
                       size_t whylen) {
  memset(q, 0, sizeof *q);
  q->limit = METRICS_DEFAULT_LIMIT;
  q->state = STATE_OPEN;
  char buf[2048];
  if (query == NULL)
    query = "";
  if (strlen(query) >= sizeof buf) {
    snprintf(why, whylen, "query string too long");
    return TP_EINVAL;
  }
  snprintf(buf, sizeof buf, "%s", query);
  char *save = NULL;
  for (char *kv = strtok_r(buf, "&", &save); kv;
       kv = strtok_r(NULL, "&", &save)) {
    char *v = strchr(kv, '=');
    if (v != NULL)
      *v++ = '\0';
    else
      v = kv + strlen(kv);
    if (!url_decode(v)) {
      snprintf(why, whylen, "bad %%-escape in %s", kv);
      return TP_EINVAL;
    }
    bool ok = true;
    if (strcmp(kv, "limit") == 0) {
      ok = parse_num(v, &q->limit) && q->limit <= METRICS_MAX_LIMIT;
    } else if (strcmp(kv, "offset") == 0) {
      ok = parse_num(v, &q->offset);
    } else if (strcmp(kv, "cid") == 0) {
      ok = parse_num(v, &q->cid);
      q->has_cid = true;
    } else if (kind == METRICS_CONNZ && strcmp(kv, "sort") == 0) {
      q->sort = lookup(sort_names, 7, v);
      ok = q->sort >= 0;
    } else if (kind == METRICS_CONNZ && strcmp(kv, "state") == 0) {
      q->state = lookup(state_names, 5, v);
      ok = q->state >= 0;
    } else if (kind == METRICS_SUBZ && strcmp(kv, "subject") == 0) {
      ok = strlen(v) < sizeof q->subject;
      snprintf(q->subject, sizeof q->subject, "%s", v);
    } else if (kind == METRICS_SUBZ && strcmp(kv, "test") == 0) {
      ok = tp_topic_validate(v, strlen(v), TP_DEFAULT_MAX_TOPIC) == 0;
      snprintf(q->test, sizeof q->test, "%s", v);
    } else {
      snprintf(why, whylen, "unknown parameter '%.64s'", kv);
      return TP_EINVAL;
    }
    if (!ok) {
      snprintf(why, whylen, "bad value for %.32s (limit: at most %d)", kv,
               METRICS_MAX_LIMIT);
      return TP_EINVAL;
    }
  }
  return 0;
}

static bool state_ok(int want, conn_state_t s) {
  switch (want) {
  case STATE_OPEN:
    return s == CONN_HANDSHAKE || s == CONN_ACTIVE;
  case STATE_HANDSHAKE:
    return s == CONN_HANDSHAKE;
  case STATE_ACTIVE:
    return s == CONN_ACTIVE;
  case STATE_CLOSING:
    return s == CONN_CLOSING;
  default:
    return true;
  }
}

static uint64_t sort_key(int sort, const conn_t *c) {
  switch (sort) {
  case SORT_SUBS:
    return c->subs ? hashmap_size(c->subs) : 0;
  case SORT_PENDING:
    return c->out.bytes;
  case SORT_MSGS_TO:
    return c->out.msgs_written;
  case SORT_MSGS_FROM:
    return c->msgs_in;
  case SORT_BYTES_TO:
    return c->out.bytes_written;
  case SORT_BYTES_FROM:
    return c->bytes_in;
  case SORT_CID:
    return 0; /* then by cid, ascending */
  default:
    return c->id;
  }
}

typedef struct keyed {
  uint64_t key, cid;
} keyed_t;

/* The largest first; ties (and sort=cid) by ascending cid. */
static int cmp_keyed(const void *a, const void *b) {
  const keyed_t *x = a, *y = b;
  if (x->key != y->key)
    return x->key > y->key ? -1 : 1;
  return x->cid < y->cid ? -1 : x->cid > y->cid;
}

/* Keeps the page's share of a run of matching entries. */
static int page_take(metrics_page_t *p, uint64_t cid, uint64_t sid) {
  uint64_t at = p->total++;
  if (at < p->offset || at - p->offset >= p->limit)
    return 0;
  if (p->n == p->cap) {
    size_t cap = p->cap == 0 ? 16 : p->cap * 2;
    item_t *grown = realloc(p->items, cap * sizeof *grown);
    if (grown == NULL)
      return TP_ENOMEM;
    p->items = grown;
    p->cap = cap;
  }
  p->items[p->n].cid = cid;
  p->items[p->n].sid = sid;
  p->n++;
  return 0;
}

static int select_conns(metrics_page_t *p, const query_t *q) {
  server_t *srv = p->srv;
  if (q->sort == SORT_CID && srv->broker.nworkers == 1) {
    for (list_node_t *l = srv->worker.conns.next; l != &srv->worker.conns;
         l = l->next) {
      conn_t *c = LIST_ENTRY(l, conn_t, all_link);
      if ((q->has_cid && c->id != q->cid) || !state_ok(q->state, c->state))
        continue;
      if (page_take(p, c->id, 0) != 0)
        return TP_ENOMEM;
    }
    return 0;
  }
  keyed_t *all = malloc((sum_nconns(srv) + 1) * sizeof *all);
  if (all == NULL)
    return TP_ENOMEM;
  size_t n = 0;
  FOR_EACH_CONN(srv, c) {
    if ((q->has_cid && c->id != q->cid) || !state_ok(q->state, c->state))
      continue;
    all[n].key = sort_key(q->sort, c);
    all[n].cid = c->id;
    n++;
  }
  qsort(all, n, sizeof *all, cmp_keyed);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = page_take(p, all[i].cid, 0);
  free(all);
  return rc;
}

static bool sub_matches(const sub_t *s, const query_t *q) {
  if (q->subject[0] && strcmp(s->pattern, q->subject) != 0)
    return false;
  if (q->test[0] &&
      !tp_pattern_match(s->pattern, s->plen, q->test, strlen(q->test)))
    return false;
  return true;
}

static int select_subs(metrics_page_t *p, const query_t *q) {
  server_t *srv = p->srv;
  bool filtered = q->subject[0] || q->test[0];
  FOR_EACH_CONN(srv, c) {
    if ((q->has_cid && c->id != q->cid) || c->subs == NULL)
      continue;
    size_t size = hashmap_size(c->subs);
    /* Whole connections before or after the page: counted, not walked. */
    if (!filtered &&
        (p->total + size <= p->offset || p->total >= p->offset + p->limit)) {
      p->total += size;
      continue;
    }
    uint64_t base = p->total;
    size_t pos = 0;
    const void *key;
    size_t klen;
    void *val;
    while (hashmap_next(c->subs, &pos, &key, &klen, &val) == 1) {
      const sub_t *s = val;
      if (sub_matches(s, q) && page_take(p, c->id, s->sid) != 0)
        return TP_ENOMEM;
      /* Unfiltered, the rest of this connection only adds to the total. */
      if (!filtered && p->total >= p->offset + p->limit) {
        p->total = base + size;
        break;
      }
    }
  }
  return 0;
}

int metrics_page_open(metrics_page_t **out, server_t *srv, int kind,
                      const char *query, char *why, size_t whylen) {
  query_t q;
  int rc = parse_query(&q, kind, query, why, whylen);
  if (rc != 0)
    return rc;
  metrics_page_t *p = calloc(1, sizeof *p);
  if (p == NULL)
    return TP_ENOMEM;
  p->srv = srv;
  p->kind = kind;
  p->limit = q.limit;
  p->offset = q.offset;
  p->sort = q.sort;
  p->state = q.state;
  rc = kind == METRICS_CONNZ ? select_conns(p, &q) : select_subs(p, &q);
  if (rc != 0) {
    metrics_page_close(p);
    return rc;
  }
  *out = p;
  return 0;
}

size_t metrics_page_entries(const metrics_page_t *p) {
  return p->n;
}

void metrics_page_close(metrics_page_t *p) {
  if (p == NULL)
    return;
  free(p->items);
  free(p);
}

static int put_conn(tp_buf_t *b, conn_t *c, bool first) {
  uint64_t dropped = 0, pending_msgs = 0;
  size_t pos = 0, nsubs = 0;
  const void *key;
  size_t klen;
  void *val;
  while (c->subs && hashmap_next(c->subs, &pos, &key, &klen, &val) == 1) {
    dropped += ((sub_t *)val)->dropped;
    pending_msgs += ((sub_t *)val)->q.pending_msgs;
    nsubs++;
  }
  int rc = put(b, "%s{\"cid\":%llu,\"addr\":", first ? "" : ",",
               (unsigned long long)c->id);
  rc |= json_cstr(b, c->addr);
  rc |= put(b, ",\"name\":");
  rc |= json_cstr(b, c->name);
  rc |= put(b, ",\"user\":");
  rc |= json_cstr(b, c->auth_user);
  rc |= put(b,
            ",\"state\":\"%s\",\"subscriptions\":%zu,\"in_msgs\":%llu,"
            "\"in_bytes\":%llu,\"out_msgs\":%llu,\"out_bytes\":%llu,"
            "\"pending_bytes\":%llu,\"pending_msgs\":%llu,"
            "\"dropped\":%llu,\"blocked\":%s,\"worker\":%d",
            state_name(c->state), nsubs, (unsigned long long)c->msgs_in,
            (unsigned long long)c->bytes_in,
            (unsigned long long)c->out.msgs_written,
            (unsigned long long)c->out.bytes_written,
            (unsigned long long)c->out.bytes, (unsigned long long)pending_msgs,
            (unsigned long long)dropped, conn_is_blocked(c) ? "true" : "false",
            c->w->wid);
  tls_info_t ti;
  if (tls_transport_info(c->tr, &ti)) {
    rc |= put(b, ",\"tls\":{\"version\":");
    rc |= json_cstr(b, ti.version);
    rc |= put(b, ",\"cipher\":");
    rc |= json_cstr(b, ti.cipher);
    rc |= put(b, ",\"resumed\":%s,\"client_subject\":",
              ti.resumed ? "true" : "false");
    rc |= json_cstr(b, ti.client_subject[0] ? ti.client_subject : NULL);
    rc |= put(b, "}");
  } else {
    rc |= put(b, ",\"tls\":null");
  }
  rc |= put(b, "}");
  return rc;
}

static int put_sub(tp_buf_t *b, const conn_t *c, const sub_t *s, bool first) {
  int rc = put(b, "%s{\"cid\":%llu,\"sid\":%llu,\"pattern\":", first ? "" : ",",
               (unsigned long long)c->id, (unsigned long long)s->sid);
  rc |= json_cstr(b, s->pattern);
  rc |= put(b, ",\"queue\":");
  rc |= json_cstr(b, s->queue);
  rc |= put(b, ",\"policy\":");
  rc |= json_cstr(b, tp_overflow_name(s->policy));
  rc |= put(b,
            ",\"pending_msgs\":%llu,\"pending_bytes\":%llu,"
            "\"max_msgs\":%llu,\"max_bytes\":%llu,\"delivered\":%llu,"
            "\"dropped\":%llu,\"blocked_publishers\":%zu}",
            (unsigned long long)s->q.pending_msgs,
            (unsigned long long)s->q.pending_bytes,
            (unsigned long long)s->max_msgs, (unsigned long long)s->max_bytes,
            (unsigned long long)s->delivered, (unsigned long long)s->dropped,
            s->nwaiters);
  return rc;
}

static int put_head(metrics_page_t *p, tp_buf_t *b) {
  server_t *srv = p->srv;
  if (p->kind == METRICS_CONNZ)
    return put(
        b,
        "{\"now_uptime_s\":%.3f,\"num_connections\":%zu,\"total\":%llu,"
        "\"offset\":%llu,\"limit\":%llu,\"sort\":\"%s\",\"state\":\"%s\","
        "\"connections\":[",
        uptime_s(srv), sum_nconns(srv), (unsigned long long)p->total,
        (unsigned long long)p->offset, (unsigned long long)p->limit,
        sort_names[p->sort], state_names[p->state]);
  return put(b,
             "{\"num_subscriptions\":%zu,\"total\":%llu,\"offset\":%llu,"
             "\"limit\":%llu,\"subscriptions\":[",
             index_count(srv), (unsigned long long)p->total,
             (unsigned long long)p->offset, (unsigned long long)p->limit);
}

int metrics_page_next(metrics_page_t *p, tp_buf_t *b, size_t want) {
  if (p->done)
    return 0;
  size_t start = b->len;
  int rc = 0;
  if (!p->started) {
    p->started = true;
    rc = put_head(p, b);
  }
  while (rc == 0 && p->next < p->n && b->len - start < want) {
    if (p->body + (b->len - start) >= METRICS_MAX_BODY) {
      p->truncated = true;
      break;
    }
    size_t run = p->n - p->next < RUN ? p->n - p->next : RUN;
    conn_t *found[RUN];
    find_conns(p->srv, p->items + p->next, run, found);
    size_t i = 0;
    for (; i < run && rc == 0 && b->len - start < want; i++) {
      conn_t *c = found[i];
      const item_t *it = &p->items[p->next + i];
      if (c == NULL)
        continue; /* gone since the page was chosen */
      if (p->kind == METRICS_CONNZ) {
        rc = put_conn(b, c, p->returned == 0);
        p->returned++;
        continue;
      }
      uint8_t key[8];
      for (int k = 0; k < 8; k++)
        key[k] = (uint8_t)(it->sid >> (8 * k));
      const sub_t *s = c->subs ? hashmap_get(c->subs, key, sizeof key) : NULL;
      if (s == NULL)
        continue;
      rc = put_sub(b, c, s, p->returned == 0);
      p->returned++;
    }
    p->next += i;
  }
  if (rc == 0 && (p->next >= p->n || p->truncated) && b->len - start < want) {
    rc = put(b, "],\"returned\":%zu,\"truncated\":%s}\n", p->returned,
             p->truncated ? "true" : "false");
    p->done = true;
  }
  p->body += b->len - start;
  if (rc != 0)
    return -1;
  return p->done ? 0 : 1;
}
