/*
 * The monitoring HTTP server: its own port, on the broker's loop, parsed by
 * Debian's http_parser. GET only; every response closes the connection.
 *
 *   /healthz  200 "ok" while accepting clients, 503 "draining" after
 *             shutdown began
 *   /metrics  Prometheus text exposition format (metrics.h)
 *   /varz /connz /subz  JSON for people (metrics.h)
 *
 * With tls_cert set it serves HTTPS on the same port too (and plain HTTP
 * unless http_tls_required); http_open_paths and http_token decide who
 * sees what (http.c).
 */
#ifndef TERND_HTTP_H
#define TERND_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct server;
typedef struct http_server http_server_t;

/*
 * Listens on host:port (port -1: ephemeral). *bound_port gets the port.
 * 0, or a libuv error (nothing is left open).
 */
int http_start(http_server_t **out, struct server *srv, const char *host,
               int port, int *bound_port);
/* Whether the port speaks HTTPS. */
bool http_tls(const http_server_t *h);
/* The configuration's certificate and key loaded again (after a reload
 * took them): new connections use them; a file that fails keeps the old. */
void http_reload_tls(http_server_t *h);
/* Clients served at once at most (their descriptors are kept free). */
size_t http_client_limit(const http_server_t *h);
/* Closes the listener and every client; the object frees itself once
 * their handles have closed. */
void http_stop(http_server_t *h);

#endif
