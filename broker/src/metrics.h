/*
 * What the monitoring endpoints say: the broker's counters rendered as
 * Prometheus text (version 0.0.4) and as JSON. Each function appends to
 * out and returns 0, or -1 when out of memory. They only read the server.
 */
#ifndef TERND_METRICS_H
#define TERND_METRICS_H

#include "tern_proto/buf.h"

struct server;

int metrics_prometheus(struct server *srv, tp_buf_t *out);
/* Server-wide figures and configuration. */
int metrics_varz(struct server *srv, tp_buf_t *out);
/* One object per connection: pending bytes, drops, blocked state. */
int metrics_connz(struct server *srv, tp_buf_t *out);
/* One object per subscription. */
int metrics_subz(struct server *srv, tp_buf_t *out);

/* Appends s as a JSON string literal (quotes included). */
int metrics_json_str(tp_buf_t *out, const char *s, size_t len);

#endif
