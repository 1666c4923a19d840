/*
 * The monitoring HTTP server (see http.h).
 *
 * A server in trouble is exactly when monitoring matters, and this port has
 * no authentication, so nothing a client does here may cost the broker
 * much or keep others out:
 *
 * - a client has http_timeout_ms to send its request head, and the same
 *   for every part of the answer to be taken off the socket; then it is
 *   closed;
 * - at most http_max_clients at once (fewer under a small open-file
 *   limit). When full, the oldest client still sending its request makes
 *   room, once it has had a moment (EVICT_AGE_MS): idle sockets cannot
 *   lock /healthz out, and a burst of real requests waits in the listen
 *   backlog (accepting pauses) instead of being reset;
 * - /connz and /subz are pages (metrics.h), produced CHUNK bytes at a
 *   time as the socket drains: one turn of the loop renders at most one
 *   chunk per client, and a client that does not read holds one chunk;
 *   the pages in flight hold at most MAX_PAGE_ENTRIES entries (ids, 16
 *   bytes each) between them, past which a page request gets 503.
 *
 * Every response closes the connection. Small documents go out whole with
 * Content-Length; pages with chunked transfer encoding (HTTP/1.1) or until
 * the close (HTTP/1.0).
 */
#include "server/http.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/list.h"
#include "base/log.h"
#include "server/fdlimit.h"
#include "server/metrics.h"
#include "server/state.h"
#include "tern_proto/buf.h"
#include "tern_proto/errors.h"

#define HTTP_MAX_URL 2048
#define HTTP_MAX_REQUEST (16u * 1024u)
#define CHUNK (32u * 1024u)
#define EVICT_AGE_MS 250
/* Entries of pages in flight, all clients together (16 bytes each): a
 * page that would pass it is refused with 503 until others are done. */
#define MAX_PAGE_ENTRIES 1000000
/* Room for the chunk-size line written ahead of each chunk. */
#define CHUNK_HEAD 10

typedef struct http_client {
  struct http_server *hs;
  uv_tcp_t tcp;
  uv_timer_t timer; /* request head, then each write */
  int handles;      /* open handles of tcp and timer */
  http_parser parser;
  char url[HTTP_MAX_URL];
  size_t url_len;
  bool url_too_long;
  bool responded, closing;
  bool chunked; /* the page goes out in chunks (else until the close) */
  size_t request_bytes;
  uint64_t accepted_ms;
  char rbuf[2048];
  uv_write_t wreq;
  tp_buf_t out;
  metrics_page_t *page; /* a page still being produced, or NULL */
  list_node_t link;     /* http_server.clients, oldest first */
} http_client_t;

struct http_server {
  server_t *srv;
  fd_acceptor_t acceptor;
  uv_timer_t retry; /* accepting paused while full: try again */
  http_parser_settings settings;
  list_node_t clients;
  size_t nclients; /* not closing */
  size_t max_clients;
  size_t page_entries; /* held by the pages in flight */
  int handles_open;
  bool stopping;
};

static void maybe_free(http_server_t *hs) {
  if (hs->stopping && hs->handles_open == 0)
    free(hs);
}

static void on_client_handle_closed(uv_handle_t *h) {
  http_client_t *cl = h->data;
  http_server_t *hs = cl->hs;
  if (--cl->handles > 0)
    return;
  list_remove(&cl->link);
  tp_buf_free(&cl->out);
  if (cl->page != NULL)
    hs->page_entries -= metrics_page_entries(cl->page);
  metrics_page_close(cl->page);
  free(cl);
  hs->handles_open--;
  maybe_free(hs);
}

static void client_close(http_client_t *cl) {
  if (cl->closing)
    return;
  cl->closing = true;
  http_server_t *hs = cl->hs;
  hs->nclients--;
  uv_close((uv_handle_t *)&cl->tcp, on_client_handle_closed);
  uv_close((uv_handle_t *)&cl->timer, on_client_handle_closed);
  /* A slot is free: take the next client waiting in the backlog. */
  if (!hs->stopping && hs->nclients < hs->max_clients)
    fd_acceptor_resume(&hs->acceptor);
}

static void on_timeout(uv_timer_t *t) {
  client_close(t->data);
}

static void arm_timer(http_client_t *cl) {
  uv_timer_start(&cl->timer, on_timeout,
                 cl->hs->srv->broker.cfg.http_timeout_ms, 0);
}

static void start_write(http_client_t *cl);

/* Renders the next chunk of the page into out (chunked: with its size
 * line and CRLF; the last one also carries the terminating chunk). */
static int fill_page_chunk(http_client_t *cl) {
  tp_buf_reset(&cl->out);
  size_t head = cl->chunked ? CHUNK_HEAD : 0;
  if (tp_buf_reserve(&cl->out, head + CHUNK + 256) != 0)
    return -1;
  cl->out.len = head;
  server_t *srv = cl->hs->srv;
  srv->pause_others(srv); /* other workers' connections are read */
  int more = metrics_page_next(cl->page, &cl->out, CHUNK);
  srv->resume_others(srv);
  if (more < 0)
    return -1;
  if (cl->chunked) {
    size_t n = cl->out.len - head;
    char line[CHUNK_HEAD + 1];
    /* Fixed width (leading zeros are allowed), so it fits the room. */
    snprintf(line, sizeof line, "%08zx\r\n", n);
    memcpy(cl->out.data, line, CHUNK_HEAD);
    if (tp_buf_append(&cl->out, "\r\n", 2) != 0)
      return -1;
    if (n == 0)
      cl->out.len = 0; /* a zero-size chunk would end the body early */
    if (!more && tp_buf_append(&cl->out, "0\r\n\r\n", 5) != 0)
      return -1;
  }
  if (!more) {
    cl->hs->page_entries -= metrics_page_entries(cl->page);
    metrics_page_close(cl->page);
    cl->page = NULL;
  }
  return 0;
}

static void on_written(uv_write_t *req, int status) {
  http_client_t *cl = req->data;
  if (cl->closing)
    return;
  if (status < 0 || cl->page == NULL) {
    client_close(cl);
    return;
  }
  /* It took that much: the next part has the whole timeout again. */
  arm_timer(cl);
  if (fill_page_chunk(cl) != 0) {
    client_close(cl);
    return;
  }
  start_write(cl);
}

static void start_write(http_client_t *cl) {
  uv_buf_t b = uv_buf_init((char *)cl->out.data, (unsigned)cl->out.len);
  cl->wreq.data = cl;
  if (uv_write(&cl->wreq, (uv_stream_t *)&cl->tcp, &b, 1, on_written) != 0)
    client_close(cl);
}

static const char *reason_of(int code) {
  switch (code) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  default:
    return "Service Unavailable";
  }
}

/* Stops reading and arms the write timeout: the request is answered. */
static void begin_response(http_client_t *cl) {
  cl->responded = true;
  uv_read_stop((uv_stream_t *)&cl->tcp);
  arm_timer(cl);
  tp_buf_reset(&cl->out);
}

/* A whole response with Content-Length. */
static void respond(http_client_t *cl, int code, const char *ctype,
                    const tp_buf_t *body) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: "
                   "%zu\r\nCache-Control: no-store\r\nConnection: "
                   "close\r\n\r\n",
                   code, reason_of(code), ctype, body ? body->len : 0);
  begin_response(cl);
  if (tp_buf_append(&cl->out, head, (size_t)n) != 0 ||
      (body && body->len > 0 &&
       tp_buf_append(&cl->out, body->data, body->len) != 0)) {
    client_close(cl);
    return;
  }
  start_write(cl);
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

/* /connz or /subz: the page is chosen now, produced as it drains. */
static void respond_page(http_client_t *cl, int kind, const char *query) {
  char why[160] = "";
  server_t *srv = cl->hs->srv;
  srv->pause_others(srv);
  int rc = metrics_page_open(&cl->page, srv, kind, query, why, sizeof why);
  srv->resume_others(srv);
  if (rc == TP_EINVAL) {
    char text[200];
    snprintf(text, sizeof text, "%s\n", why);
    respond_text(cl, 400, text);
    return;
  }
  if (rc != 0) {
    respond_text(cl, 503, "out of memory\n");
    return;
  }
  http_server_t *hs = cl->hs;
  size_t entries = metrics_page_entries(cl->page);
  if (hs->page_entries + entries > MAX_PAGE_ENTRIES) {
    metrics_page_close(cl->page);
    cl->page = NULL;
    respond_text(cl, 503,
                 "busy: too many large pages being sent; retry, or ask "
                 "for a smaller limit\n");
    return;
  }
  hs->page_entries += entries;
  cl->chunked = cl->parser.http_major > 1 ||
                (cl->parser.http_major == 1 && cl->parser.http_minor >= 1);
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.%d 200 OK\r\nContent-Type: application/json\r\n%s"
                   "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                   cl->chunked ? 1 : 0,
                   cl->chunked ? "Transfer-Encoding: chunked\r\n" : "");
  begin_response(cl);
  if (tp_buf_append(&cl->out, head, (size_t)n) != 0) {
    client_close(cl);
    return;
  }
  start_write(cl); /* the head; the page follows from on_written */
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
  const char *q = strchr(cl->url, '?');
  q = q ? q + 1 : NULL;
  if (path_is(cl, "/connz")) {
    respond_page(cl, METRICS_CONNZ, q);
    return;
  }
  if (path_is(cl, "/subz")) {
    respond_page(cl, METRICS_SUBZ, q);
    return;
  }
  int (*render)(server_t *, tp_buf_t *) = NULL;
  const char *ctype = "application/json";
  if (path_is(cl, "/metrics")) {
    render = metrics_prometheus;
    ctype = "text/plain; version=0.0.4; charset=utf-8";
  } else if (path_is(cl, "/varz")) {
    render = metrics_varz;
  } else if (path_is(cl, "/routez")) {
    render = metrics_routez;
  }
  if (render == NULL) {
    respond_text(cl, 404,
                 "not found: try /healthz /metrics /varz /connz "
                 "/subz /routez\n");
    return;
  }
  tp_buf_t body;
  tp_buf_init(&body);
  srv->pause_others(srv); /* the other workers' counters are read */
  int rc = render(srv, &body);
  srv->resume_others(srv);
  if (rc == 0)
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
  if (nread == 0 || cl->responded || cl->closing)
    return;
  if (nread < 0) {
    client_close(cl);
    return;
  }
  cl->request_bytes += (size_t)nread;
  size_t used = http_parser_execute(&cl->parser, &cl->hs->settings, buf->base,
                                    (size_t)nread);
  if (cl->responded || cl->closing)
    return;
  if (HTTP_PARSER_ERRNO(&cl->parser) != HPE_OK || used != (size_t)nread ||
      cl->request_bytes > HTTP_MAX_REQUEST)
    respond_text(cl, 400, "bad request\n");
}

/*
 * Full: the oldest client still sending its request goes, if it has had
 * EVICT_AGE_MS to do so. False when there is none such (then accepting
 * pauses until a slot frees or the retry timer fires).
 */
static bool evict_one(http_server_t *hs) {
  uint64_t now = uv_now(hs->srv->worker.loop);
  for (list_node_t *n = hs->clients.next; n != &hs->clients; n = n->next) {
    http_client_t *cl = LIST_ENTRY(n, http_client_t, link);
    if (cl->closing || cl->responded)
      continue;
    if (now - cl->accepted_ms < EVICT_AGE_MS)
      return false; /* the rest are younger still */
    client_close(cl);
    return true;
  }
  return false;
}

static void on_retry(uv_timer_t *t) {
  http_server_t *hs = t->data;
  if (!hs->stopping)
    fd_acceptor_resume(&hs->acceptor);
}

static void on_accept(fd_acceptor_t *a, int fd) {
  http_server_t *hs = a->data;
  if (hs->stopping) {
    close(fd);
    return;
  }
  if (hs->nclients >= hs->max_clients && !evict_one(hs)) {
    /* Every slot is answering: the next ones wait in the backlog. This
     * one is served over the limit, up to an eighth more (slots held by
     * clients that do not read free up at their write timeout). */
    fd_acceptor_pause(&hs->acceptor);
    uv_timer_start(&hs->retry, on_retry, EVICT_AGE_MS, 0);
    if (hs->nclients >= hs->max_clients + hs->max_clients / 8) {
      close(fd);
      return;
    }
  }
  http_client_t *cl = calloc(1, sizeof *cl);
  if (cl == NULL) {
    close(fd);
    return;
  }
  cl->hs = hs;
  tp_buf_init(&cl->out);
  uv_tcp_init(hs->srv->worker.loop, &cl->tcp);
  uv_timer_init(hs->srv->worker.loop, &cl->timer);
  cl->tcp.data = cl;
  cl->timer.data = cl;
  cl->handles = 2;
  cl->accepted_ms = uv_now(hs->srv->worker.loop);
  hs->handles_open++;
  hs->nclients++;
  list_insert_tail(&hs->clients, &cl->link);
  if (uv_tcp_open(&cl->tcp, fd) != 0) {
    close(fd);
    client_close(cl);
    return;
  }
  http_parser_init(&cl->parser, HTTP_REQUEST);
  cl->parser.data = cl;
  arm_timer(cl);
  if (uv_read_start((uv_stream_t *)&cl->tcp, on_alloc, on_read) != 0)
    client_close(cl);
}

/* Out of descriptors (the acceptor's spare took this client): say so. */
static void on_refuse(fd_acceptor_t *a, int fd) {
  (void)a;
  static const char busy[] =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
      "Content-Length: 25\r\nConnection: close\r\n\r\n"
      "out of file descriptors\r\n";
  ssize_t w = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)w;
  LOG(LOG_WARN, "monitoring: a client refused, out of file descriptors");
}

static void on_server_handle_closed(uv_handle_t *h) {
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
  list_init(&hs->clients);
  /* An eighth of a small open-file limit at most: clients come first. */
  long nofile = fdlimit_current();
  hs->max_clients = (size_t)srv->broker.cfg.http_max_clients;
  if (nofile > 0 && (size_t)nofile / 8 < hs->max_clients)
    hs->max_clients = nofile / 8 < 4 ? 4 : (size_t)nofile / 8;
  http_parser_settings_init(&hs->settings);
  hs->settings.on_url = on_url;
  hs->settings.on_message_complete = on_message_complete;
  hs->acceptor.on_accept = on_accept;
  hs->acceptor.on_refuse = on_refuse;
  hs->acceptor.data = hs;
  int rc = fd_acceptor_listen(&hs->acceptor, srv->worker.loop, host,
                              port < 0 ? 0 : port, 511, bound_port);
  if (rc != 0) {
    free(hs);
    return rc;
  }
  uv_timer_init(srv->worker.loop, &hs->retry);
  hs->retry.data = hs;
  hs->handles_open = 2;
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
  for (list_node_t *n = hs->clients.next; n != &hs->clients; n = n->next)
    client_close(LIST_ENTRY(n, http_client_t, link));
  uv_close((uv_handle_t *)&hs->retry, on_server_handle_closed);
  fd_acceptor_close(&hs->acceptor, hs, on_server_handle_closed);
}
