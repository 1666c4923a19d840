/*
 * The monitoring documents (see metrics.h). Everything is computed on
 * request by walking the connections: a scrape every few seconds costs far
 * less than keeping more counters on the message path.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "log.h"
#include "server.h"
#include "sub.h"
#include "tern_proto/frame.h"

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
  for (size_t i = 0; rc == 0 && s != NULL && i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\')
      rc = put(out, "\\%c", ch);
    else if (ch < 0x20)
      rc = put(out, "\\u%04x", ch);
    else
      rc = tp_buf_append(out, &s[i], 1);
  }
  return rc == 0 ? tp_buf_append(out, "\"", 1) : rc;
}

static int json_cstr(tp_buf_t *out, const char *s) {
  if (s == NULL)
    return put(out, "null");
  return metrics_json_str(out, s, strlen(s));
}

/* Figures that need a walk over the connections. */
typedef struct walk {
  uint64_t pending_bytes, pending_msgs, blocked_pubs, bytes_out, msgs_out;
  uint64_t subs_dropped;
} walk_t;

static void walk_conns(server_t *srv, walk_t *w) {
  memset(w, 0, sizeof *w);
  w->bytes_out = srv->ops.closed_bytes_out;
  w->msgs_out = srv->ops.closed_msgs_out;
  for (list_node_t *n = srv->conns.next; n != &srv->conns; n = n->next) {
    conn_t *c = LIST_ENTRY(n, conn_t, all_link);
    w->pending_bytes += c->out.bytes;
    w->bytes_out += c->out.bytes_written;
    w->msgs_out += c->out.msgs_written;
    if (c->nblocked > 0)
      w->blocked_pubs++;
    size_t pos = 0;
    const void *key;
    size_t klen;
    void *val;
    while (c->subs && hashmap_next(c->subs, &pos, &key, &klen, &val) == 1)
      w->pending_msgs += ((sub_t *)val)->pending_msgs;
  }
}

static double uptime_s(const server_t *srv) {
  return (double)(uv_now(srv->loop) - srv->started_ms) / 1000.0;
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
  const pending_gate_t *g = &srv->gate;
  uint64_t total = pending_gate_total(srv);
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
  walk_t w;
  walk_conns(srv, &w);
  const server_stats_t *st = &srv->stats;
  int rc = 0;
  rc |= metric(b, "tern_connections", "gauge", "Client connections open.",
               srv->nlive);
  rc |= metric(b, "tern_connections_accepted_total", "counter",
               "Client connections accepted.", st->conns_accepted);
  rc |= metric(b, "tern_connections_refused_total", "counter",
               "Connections refused as too many (ERR 11).", st->conns_refused);
  rc |= metric(b, "tern_subscriptions", "gauge", "Subscriptions in place.",
               sublist_count(srv->index));
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
               srv->rx.tail_bytes);
  rc |=
      metric(b, "tern_max_inbound_bytes", "gauge",
             "The cap on read buffers (max_inbound_total).", srv->rx.tail_max);
  rc |= metric(b, "tern_inbound_refused_total", "counter",
               "Frames refused because read buffers were full (ERR 5).",
               st->inbound_refused);
  rc |= metric(b, "tern_frame_timeouts_total", "counter",
               "Connections closed for a frame not completed within "
               "frame_timeout_ms (ERR 12).",
               st->frame_timeouts);
  retained_stats_t rs;
  retained_get_stats(srv->retained, &rs);
  rc |= metric(b, "tern_retained_topics", "gauge",
               "Topics holding a retained message.", rs.topics);
  rc |= metric(b, "tern_retained_bytes", "gauge", "Bytes of retained messages.",
               rs.bytes);
  rc |= metric(b, "tern_retained_expired_total", "counter",
               "Retained messages removed by their ttl.", rs.expired);
  rc |= metric(b, "tern_auth_failures_total", "counter",
               "CONNECTs refused (ERR 2).", srv->ops.auth_failures);
  rc |= metric(b, "tern_permission_denials_total", "counter",
               "PUB and SUB refused (ERR 3).", srv->ops.perm_denials);
  rc |= put(b,
            "# HELP tern_fanout_ratio Messages out per message in.\n"
            "# TYPE tern_fanout_ratio gauge\ntern_fanout_ratio %.6f\n",
            st->msgs_in ? (double)st->msgs_out / (double)st->msgs_in : 0.0);
  rc |= put(b,
            "# HELP tern_uptime_seconds Seconds since ternd started.\n"
            "# TYPE tern_uptime_seconds gauge\ntern_uptime_seconds %.3f\n",
            uptime_s(srv));
  rc |= put(b,
            "# HELP tern_info Static facts about this server.\n# TYPE "
            "tern_info gauge\ntern_info{version=\"%s\",server_id=\"%s\"} 1\n",
            TERND_VERSION, srv->server_id);
  return rc == 0 ? 0 : -1;
}

int metrics_varz(server_t *srv, tp_buf_t *b) {
  walk_t w;
  walk_conns(srv, &w);
  const server_stats_t *st = &srv->stats;
  const config_t *cfg = &srv->cfg;
  int rc = put(b, "{\"server_id\":\"%s\",\"version\":\"%s\",", srv->server_id,
               TERND_VERSION);
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
      srv->nlive, (unsigned long long)st->conns_accepted,
      sublist_count(srv->index), (unsigned long long)st->msgs_in,
      (unsigned long long)st->bytes_in, (unsigned long long)st->msgs_out,
      (unsigned long long)w.bytes_out, (unsigned long long)st->msgs_dropped,
      (unsigned long long)st->slow_consumers,
      (unsigned long long)st->stale_conns,
      (unsigned long long)st->publisher_blocks,
      (unsigned long long)w.blocked_pubs, (unsigned long long)w.pending_bytes,
      (unsigned long long)pending_gate_total(srv),
      (unsigned long long)srv->gate.high,
      (unsigned long long)(srv->gate.drops[TP_OVERFLOW_DROP_OLDEST] +
                           srv->gate.drops[TP_OVERFLOW_DROP_NEWEST]),
      (unsigned long long)srv->gate.disconnects,
      (unsigned long long)srv->ops.auth_failures,
      (unsigned long long)srv->ops.perm_denials);
  rc |= put(b,
            "\"config\":{\"max_payload\":%llu,\"max_connections\":%llu,"
            "\"max_subs\":%llu,\"max_pending_msgs\":%llu,"
            "\"max_pending_bytes\":%llu,\"heartbeat_ms\":%llu,"
            "\"stall_timeout_ms\":%llu,\"log_level\":\"%s\"}}\n",
            (unsigned long long)cfg->max_payload,
            (unsigned long long)cfg->max_connections,
            (unsigned long long)cfg->max_subs,
            (unsigned long long)cfg->max_pending_msgs,
            (unsigned long long)cfg->max_pending_bytes,
            (unsigned long long)cfg->heartbeat_ms,
            (unsigned long long)cfg->stall_timeout_ms,
            log_level_name(log_g_level));
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

int metrics_connz(server_t *srv, tp_buf_t *b) {
  int rc = put(b,
               "{\"now_uptime_s\":%.3f,\"num_connections\":%zu,"
               "\"connections\":[",
               uptime_s(srv), srv->nconns);
  bool first = true;
  for (list_node_t *n = srv->conns.next; n != &srv->conns; n = n->next) {
    conn_t *c = LIST_ENTRY(n, conn_t, all_link);
    uint64_t dropped = 0, pending_msgs = 0;
    size_t pos = 0, nsubs = 0;
    const void *key;
    size_t klen;
    void *val;
    while (c->subs && hashmap_next(c->subs, &pos, &key, &klen, &val) == 1) {
      dropped += ((sub_t *)val)->dropped;
      pending_msgs += ((sub_t *)val)->pending_msgs;
      nsubs++;
    }
    rc |= put(b, "%s{\"cid\":%llu,\"addr\":", first ? "" : ",",
              (unsigned long long)c->id);
    rc |= json_cstr(b, c->addr);
    rc |= put(b, ",\"name\":");
    rc |= json_cstr(b, c->name);
    rc |= put(b, ",\"user\":");
    rc |= json_cstr(b, c->auth_user);
    rc |=
        put(b,
            ",\"state\":\"%s\",\"subscriptions\":%zu,\"in_msgs\":%llu,"
            "\"in_bytes\":%llu,\"out_msgs\":%llu,\"out_bytes\":%llu,"
            "\"pending_bytes\":%llu,\"pending_msgs\":%llu,"
            "\"dropped\":%llu,\"blocked\":%s}",
            state_name(c->state), nsubs, (unsigned long long)c->msgs_in,
            (unsigned long long)c->bytes_in,
            (unsigned long long)c->out.msgs_written,
            (unsigned long long)c->out.bytes_written,
            (unsigned long long)c->out.bytes, (unsigned long long)pending_msgs,
            (unsigned long long)dropped, c->nblocked > 0 ? "true" : "false");
    first = false;
  }
  rc |= put(b, "]}\n");
  return rc == 0 ? 0 : -1;
}

int metrics_subz(server_t *srv, tp_buf_t *b) {
  int rc = put(b, "{\"num_subscriptions\":%zu,\"subscriptions\":[",
               sublist_count(srv->index));
  bool first = true;
  for (list_node_t *n = srv->conns.next; n != &srv->conns; n = n->next) {
    conn_t *c = LIST_ENTRY(n, conn_t, all_link);
    size_t pos = 0;
    const void *key;
    size_t klen;
    void *val;
    while (c->subs && hashmap_next(c->subs, &pos, &key, &klen, &val) == 1) {
      const sub_t *s = val;
      const char *policy = tp_overflow_name(s->policy);
      rc |=
          put(b, "%s{\"cid\":%llu,\"sid\":%llu,\"pattern\":", first ? "" : ",",
              (unsigned long long)c->id, (unsigned long long)s->sid);
      rc |= json_cstr(b, s->pattern);
      rc |= put(b, ",\"queue\":");
      rc |= json_cstr(b, s->queue);
      rc |= put(b, ",\"policy\":");
      rc |= json_cstr(b, policy);
      rc |= put(
          b,
          ",\"pending_msgs\":%llu,\"pending_bytes\":%llu,"
          "\"max_msgs\":%llu,\"max_bytes\":%llu,\"delivered\":%llu,"
          "\"dropped\":%llu,\"blocked_publishers\":%zu}",
          (unsigned long long)s->pending_msgs,
          (unsigned long long)s->pending_bytes, (unsigned long long)s->max_msgs,
          (unsigned long long)s->max_bytes, (unsigned long long)s->delivered,
          (unsigned long long)s->dropped, s->nwaiters);
      first = false;
    }
  }
  rc |= put(b, "]}\n");
  return rc == 0 ? 0 : -1;
}
