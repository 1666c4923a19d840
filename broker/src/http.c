/*
 * The monitoring HTTP server (see http.h).
 *
 * Each client gets a parser and a small URL buffer; once the request is
 * complete the whole response is rendered into one buffer, written, and the
 * connection closed. A server in trouble is exactly when monitoring
 * matters, so requests are bounded (URL length, request size, number of
 * clients) and nothing here can block the loop for long.
 */
#include "http.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fdlimit.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "tern_proto/buf.h"

#define HTTP_MAX_CLIENTS 64
#define HTTP_MAX_URL 256
#define HTTP_MAX_REQUEST (16u * 1024u)

typedef struct http_client {
  struct http_server *hs;
  uv_tcp_t tcp;
  http_parser parser;
  char url[HTTP_MAX_URL];
  size_t url_len;
  bool url_too_long;
  bool responded;
  size_t request_bytes;
  char rbuf[2048];
  uv_write_t wreq;
  tp_buf_t out;
  struct http_client *next, *prev;
} http_client_t;

struct http_server {
  server_t *srv;
  uv_tcp_t listener;
  http_parser_settings settings;
  http_client_t *clients;
  size_t nclients;
  int handles_open;
  bool stopping;
  size_t max_clients;
};

static void maybe_free(http_server_t *hs) {
  if (hs->stopping && hs->handles_open == 0)
    free(hs);
}

static void on_client_closed(uv_handle_t *h) {
  http_client_t *cl = h->data;
  http_server_t *hs = cl->hs;
  if (cl->prev != NULL)
    cl->prev->next = cl->next;
  else
    hs->clients = cl->next;
  if (cl->next != NULL)
    cl->next->prev = cl->prev;
  hs->nclients--;
  tp_buf_free(&cl->out);
  free(cl);
  hs->handles_open--;
  maybe_free(hs);
}

static void client_close(http_client_t *cl) {
  if (!uv_is_closing((uv_handle_t *)&cl->tcp))
    uv_close((uv_handle_t *)&cl->tcp, on_client_closed);
}

static void on_written(uv_write_t *req, int status) {
  (void)status;
  client_close(req->data);
}

/* Renders the response for the request in cl and starts writing it. */
static void respond(http_client_t *cl, int code, const char *ctype,
                    const tp_buf_t *body) {
  static const char *const reasons[] = {"OK", "Not Found", "Method Not Allowed",
                                        "Bad Request", "Service Unavailable"};
  const char *reason = code == 200   ? reasons[0]
                       : code == 404 ? reasons[1]
                       : code == 405 ? reasons[2]
                       : code == 400 ? reasons[3]
                                     : reasons[4];
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: "
                   "%zu\r\nCache-Control: no-store\r\nConnection: "
                   "close\r\n\r\n",
                   code, reason, ctype, body ? body->len : 0);
  cl->responded = true;
  uv_read_stop((uv_stream_t *)&cl->tcp);
  tp_buf_reset(&cl->out);
  if (tp_buf_append(&cl->out, head, (size_t)n) != 0 ||
      (body && body->len > 0 &&
       tp_buf_append(&cl->out, body->data, body->len) != 0)) {
    client_close(cl);
    return;
  }
  uv_buf_t b = uv_buf_init((char *)cl->out.data, (unsigned)cl->out.len);
  cl->wreq.data = cl;
  if (uv_write(&cl->wreq, (uv_stream_t *)&cl->tcp, &b, 1, on_written) != 0)
    client_close(cl);
}

static void respond_text(http_client_t *cl, int code, const char *text) {
  tp_buf_t b;
  tp_buf_init(&b);
  if (tp_buf_append(&b, text, strlen(text)) == 0)
    respond(cl, code, "text/plain; charset=utf-8", &b);
  else
    client_close(cl);
  tp_buf_free(&b);
}

/* The path without a query string. */
static bool path_is(const http_client_t *cl, const char *path) {
  size_t len = strcspn(cl->url, "?");
  return strlen(path) == len && memcmp(cl->url, path, len) == 0;
}

static void route(http_client_t *cl) {
  server_t *srv = cl->hs->srv;
  if (cl->url_too_long) {
    respond_text(cl, 400, "request URL too long\n");
    return;
  }
  if (cl->parser.method != HTTP_GET) {
    respond_text(cl, 405, "only GET\n");
    return;
  }
  if (path_is(cl, "/healthz")) {
    if (srv->shutting_down)
      respond_text(cl, 503, "draining\n");
    else
      respond_text(cl, 200, "ok\n");
    return;
  }
  int (*render)(server_t *, tp_buf_t *) = NULL;
  const char *ctype = "application/json";
  if (path_is(cl, "/metrics")) {
    render = metrics_prometheus;
    ctype = "text/plain; version=0.0.4; charset=utf-8";
  } else if (path_is(cl, "/varz")) {
    render = metrics_varz;
  } else if (path_is(cl, "/connz")) {
    render = metrics_connz;
  } else if (path_is(cl, "/subz")) {
    render = metrics_subz;
  }
  if (render == NULL) {
    respond_text(cl, 404,
                 "not found: try /healthz /metrics /varz /connz "
                 "/subz\n");
    return;
  }
  tp_buf_t body;
  tp_buf_init(&body);
  if (render(srv, &body) == 0)
    respond(cl, 200, ctype, &body);
  else
    client_close(cl);
  tp_buf_free(&body);
}

static int on_url(http_parser *p, const char *at, size_t len) {
  http_client_t *cl = p->data;
  if (cl->url_len + len >= sizeof cl->url) {
    cl->url_too_long = true;
    return 0;
  }
  memcpy(cl->url + cl->url_len, at, len);
  cl->url_len += len;
  cl->url[cl->url_len] = '\0';
  return 0;
}

static int on_message_complete(http_parser *p) {
  http_client_t *cl = p->data;
  if (!cl->responded)
    route(cl);
  return 1; /* one request per connection: stop parsing */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  http_client_t *cl = h->data;
  *buf = uv_buf_init(cl->rbuf, sizeof cl->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  http_client_t *cl = s->data;
  if (nread == 0 || cl->responded)
    return;
  if (nread < 0) {
    client_close(cl);
    return;
  }
  cl->request_bytes += (size_t)nread;
  size_t used = http_parser_execute(&cl->parser, &cl->hs->settings, buf->base,
                                    (size_t)nread);
  if (cl->responded)
    return;
  if (HTTP_PARSER_ERRNO(&cl->parser) != HPE_OK || used != (size_t)nread ||
      cl->request_bytes > HTTP_MAX_REQUEST)
    respond_text(cl, 400, "bad request\n");
}

static void on_connection(uv_stream_t *listener, int status) {
  http_server_t *hs = listener->data;
  if (status < 0 || hs->stopping)
    return;
  http_client_t *cl = calloc(1, sizeof *cl);
  if (cl == NULL)
    return;
  cl->hs = hs;
  tp_buf_init(&cl->out);
  uv_tcp_init(listener->loop, &cl->tcp);
  cl->tcp.data = cl;
  hs->handles_open++;
  cl->next = hs->clients;
  if (hs->clients != NULL)
    hs->clients->prev = cl;
  hs->clients = cl;
  hs->nclients++;
  if (uv_accept(listener, (uv_stream_t *)&cl->tcp) != 0 ||
      hs->nclients > hs->max_clients) {
    client_close(cl);
    return;
  }
  http_parser_init(&cl->parser, HTTP_REQUEST);
  cl->parser.data = cl;
  if (uv_read_start((uv_stream_t *)&cl->tcp, on_alloc, on_read) != 0)
    client_close(cl);
}

static void on_listener_closed(uv_handle_t *h) {
  http_server_t *hs = h->data;
  hs->handles_open--;
  maybe_free(hs);
}

int http_start(http_server_t **out, server_t *srv, const char *host, int port,
               int *bound_port) {
  http_server_t *hs = calloc(1, sizeof *hs);
  if (hs == NULL)
    return UV_ENOMEM;
  hs->srv = srv;
  /* An eighth of a small open-file limit at most: clients come first. */
  long nofile = fdlimit_current();
  hs->max_clients = HTTP_MAX_CLIENTS;
  if (nofile > 0 && (size_t)nofile / 8 < hs->max_clients)
    hs->max_clients = nofile / 8 < 4 ? 4 : (size_t)nofile / 8;
  http_parser_settings_init(&hs->settings);
  hs->settings.on_url = on_url;
  hs->settings.on_message_complete = on_message_complete;
  uv_tcp_init(srv->loop, &hs->listener);
  hs->listener.data = hs;
  hs->handles_open = 1;

  int p = port < 0 ? 0 : port;
  struct sockaddr_storage ss;
  int rc = uv_ip4_addr(host, p, (struct sockaddr_in *)&ss);
  if (rc != 0)
    rc = uv_ip6_addr(host, p, (struct sockaddr_in6 *)&ss);
  if (rc == 0)
    rc = uv_tcp_bind(&hs->listener, (const struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&hs->listener, 64, on_connection);
  if (rc != 0) {
    hs->stopping = true;
    uv_close((uv_handle_t *)&hs->listener, on_listener_closed);
    return rc;
  }
  int len = sizeof ss;
  *bound_port = p;
  if (uv_tcp_getsockname(&hs->listener, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET)
      *bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
      *bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  *out = hs;
  return 0;
}

size_t http_client_limit(const http_server_t *hs) {
  return hs->max_clients;
}

void http_stop(http_server_t *hs) {
  if (hs == NULL || hs->stopping)
    return;
  hs->stopping = true;
  for (http_client_t *cl = hs->clients; cl != NULL; cl = cl->next)
    client_close(cl);
  uv_close((uv_handle_t *)&hs->listener, on_listener_closed);
}
