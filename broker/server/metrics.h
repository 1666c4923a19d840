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
/* /routez: the cluster's routes (cluster/cluster.h), or no cluster. */
int metrics_routez(struct server *srv, tp_buf_t *out);
/* /streamz: every stream, its figures and its consumers (JSON). */
int metrics_streamz(struct server *srv, tp_buf_t *out);

/*
 * /connz and /subz come in pages, produced a piece at a time so that a
 * large one neither stops the loop nor sits whole in memory: the page is
 * chosen when asked for (which connections, which subscriptions: ids
 * only), and each call to metrics_page_next renders the next entries of
 * those still there.
 */
typedef struct metrics_page metrics_page_t;

enum { METRICS_CONNZ = 1, METRICS_SUBZ = 2 };
/* Entries in a page unless limit= says otherwise, and at most. */
#define METRICS_DEFAULT_LIMIT 1024
#define METRICS_MAX_LIMIT 100000
/* A page stops (with "truncated":true) once its body passes this. */
#define METRICS_MAX_BODY (64u * 1024u * 1024u)

/*
 * Selects a page from the query string (the part after '?', may be NULL):
 *   /connz: limit, offset, cid, state (open|handshake|active|closing|any),
 *           sort (cid|subs|pending|msgs_to|msgs_from|bytes_to|bytes_from,
 *           the largest first except cid)
 *   /subz:  limit, offset, cid, subject (a pattern, exactly), test (a
 *           topic: the subscriptions it would reach)
 * 0 and *out; TP_EINVAL with a reason in why for a bad parameter;
 * TP_ENOMEM.
 */
int metrics_page_open(metrics_page_t **out, struct server *srv, int kind,
                      const char *query, char *why, size_t whylen);
/* Appends the next part of the document to out, stopping once out holds
 * about `want` bytes. 1: more to come; 0: the document is complete; -1:
 * out of memory. */
int metrics_page_next(metrics_page_t *p, tp_buf_t *out, size_t want);
void metrics_page_close(metrics_page_t *p);
/* Entries the page holds (16 bytes each) until it is closed. */
size_t metrics_page_entries(const metrics_page_t *p);

/* Appends s as a JSON string literal (quotes included); bytes that are
 * not UTF-8 become the text \xHH, so the document stays valid JSON. */
int metrics_json_str(tp_buf_t *out, const char *s, size_t len);

#endif
