/*
 * The monitoring HTTP server (see http.h).
 *
 * A server in trouble is exactly when monitoring matters, and most of
 * this port's clients are not authenticated, so nothing a client does here
 * may cost the broker much or keep others out:
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
 * Access: the pages in http_open_paths (/healthz and /metrics by default)
 * are served to anyone. The others (/varz, /connz, /subz, /streamz, /routez
 * list clients, users, addresses, topics, streams and peers) need the
 * http_token when one is set, as "Authorization: Bearer TOKEN" or as the
 * password of Basic auth (any user name, so a browser can ask for it), compared
 * in constant time; without a token they are served on a loopback monitoring
 * address, or anywhere with allow_anonymous, and refused with 403 elsewhere.
 *
 * Each client is a transport (transport/transport.h), as a client
 * connection is: plain TCP, or with tls_cert set the TLS transport
 * (transport/tls.h) on a listener of its own, with the client port's
 * certificate and key but no client certificate asked for (probes cannot
 * send one). It serves HTTPS and plain HTTP on the one port, told apart
 * by the client's first byte; http_tls_required answers plain HTTP with
 * 400. The handshake has the request head's timeout.
 *
 * Every response closes the connection. Small documents go out whole with
 * Content-Length; pages with chunked transfer encoding (HTTP/1.1) or until
 * the close (HTTP/1.0).
 */
#include "server/http.h"

#include <http_parser.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/list.h"
#include "base/log.h"
#include "server/fdlimit.h"
#include "server/metrics.h"
#include "server/state.h"
#include "tern_proto/buf.h"
#include "tern_proto/errors.h"
#include "transport/tcp.h"
#include "transport/tls.h"

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
  transport_t *t; /* its timer: the request head, then each write */
  http_parser parser;
  char url[HTTP_MAX_URL];
  size_t url_len;
  bool url_too_long;
  /* The Authorization header, collected as the parser hands it over. */
  char hfield[16];
  size_t hfield_len;
  bool hfield_long;
  bool in_value; /* the last piece was a header value */
  bool in_authz; /* ... of Authorization */
  char authz[512];
  size_t authz_len;
  bool authz_bad; /* too long, or sent twice */
  bool responded, closing;
  bool chunked; /* the page goes out in chunks (else until the close) */
  size_t request_bytes;
  uint64_t accepted_ms;
  char rbuf[2048];
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
  tls_listener_t *tls; /* HTTPS too; NULL: plain HTTP only */
  bool loopback;       /* the monitoring address is a loopback one */
  int handles_open;
  bool stopping;
};

static void maybe_free(http_server_t *hs) {
  if (hs->stopping && hs->handles_open == 0) {
    tls_listener_destroy(hs->tls);
    free(hs);
  }
}

static void on_closed(void *owner) {
  http_client_t *cl = owner;
  http_server_t *hs = cl->hs;
  list_remove(&cl->link);
  tp_buf_free(&cl->out);
  sodium_memzero(cl->authz, sizeof cl->authz);
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
  transport_close(cl->t);
  /* A slot is free: take the next client waiting in the backlog. */
  if (!hs->stopping && hs->nclients < hs->max_clients)
    fd_acceptor_resume(&hs->acceptor);
}

static void on_timer(void *owner) {
  client_close(owner);
}

static void arm_timer(http_client_t *cl) {
  transport_timer_start(cl->t, cl->hs->srv->broker.cfg.http_timeout_ms, 0);
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

static void on_write_done(void *owner, int status) {
  http_client_t *cl = owner;
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
  if (transport_write(cl->t, &b, 1) != 0)
    client_close(cl);
}

static const char *reason_of(int code) {
  switch (code) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
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
  transport_stop_read(cl->t);
  arm_timer(cl);
  tp_buf_reset(&cl->out);
}

/* A whole response with Content-Length; extra: more header lines, each
 * ending in CRLF, or "". */
static void respond_with(http_client_t *cl, int code, const char *ctype,
                         const char *extra, const tp_buf_t *body) {
  char head[384];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: "
                   "%zu\r\n%sCache-Control: no-store\r\nConnection: "
                   "close\r\n\r\n",
                   code, reason_of(code), ctype, body ? body->len : 0, extra);
  begin_response(cl);
  if (tp_buf_append(&cl->out, head, (size_t)n) != 0 ||
      (body && body->len > 0 &&
       tp_buf_append(&cl->out, body->data, body->len) != 0)) {
    client_close(cl);
    return;
  }
  start_write(cl);
}

static void respond(http_client_t *cl, int code, const char *ctype,
                    const tp_buf_t *body) {
  respond_with(cl, code, ctype, "", body);
}

static void respond_text_with(http_client_t *cl, int code, const char *extra,
                              const char *text) {
  tp_buf_t b;
  tp_buf_init(&b);
  if (tp_buf_append(&b, text, strlen(text)) == 0)
    respond_with(cl, code, "text/plain; charset=utf-8", extra, &b);
  else
    client_close(cl);
  tp_buf_free(&b);
}

static void respond_text(http_client_t *cl, int code, const char *text) {
  respond_text_with(cl, code, "", text);
}

/* ---- access ------------------------------------------------------------- */

/* The credential in the Authorization header: a Bearer token, or the
 * password of Basic auth (decoded into scratch). Length 0: none. */
static size_t credential(const http_client_t *cl, char *scratch, size_t cap,
                         const char **out) {
  const char *v = cl->authz;
  size_t n = cl->authz_len;
  if (cl->authz_bad)
    return 0;
  while (n > 0 && v[0] == ' ')
    v++, n--;
  while (n > 0 && v[n - 1] == ' ')
    n--;
  if (n > 7 && strncasecmp(v, "Bearer ", 7) == 0) {
    v += 7, n -= 7;
    while (n > 0 && v[0] == ' ')
      v++, n--;
    *out = v;
    return n;
  }
  if (n > 6 && strncasecmp(v, "Basic ", 6) == 0) {
    v += 6, n -= 6;
    while (n > 0 && v[0] == ' ')
      v++, n--;
    size_t len = 0;
    if (sodium_base642bin((unsigned char *)scratch, cap, v, n, NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
      return 0;
    const char *colon = memchr(scratch, ':', len);
    if (colon == NULL)
      return 0;
    *out = colon + 1;
    return len - (size_t)(colon + 1 - scratch);
  }
  return 0;
}

/* Whether the request carries the token. Both sides are hashed first, so
 * the comparison takes the same time whatever the lengths and bytes. */
static bool token_given(const http_client_t *cl, const char *token) {
  char scratch[sizeof cl->authz];
  const char *cred = NULL;
  size_t n = credential(cl, scratch, sizeof scratch, &cred);
  unsigned char a[crypto_generichash_BYTES], b[crypto_generichash_BYTES];
  crypto_generichash(a, sizeof a, (const unsigned char *)(n ? cred : ""), n,
                     NULL, 0);
  crypto_generichash(b, sizeof b, (const unsigned char *)token, strlen(token),
                     NULL, 0);
  sodium_memzero(scratch, sizeof scratch);
  return n > 0 && sodium_memcmp(a, b, sizeof a) == 0;
}

/* Serves path (known) or answers 401/403; true when it may be served. */
static bool allowed(http_client_t *cl, const char *path) {
  const config_t *cfg = &cl->hs->srv->broker.cfg;
  if (config_http_path_open(cfg, path, strlen(path)))
    return true;
  if (cfg->http_token[0] != '\0') {
    if (token_given(cl, cfg->http_token))
      return true;
    if (cl->authz_len > 0)
      LOG(LOG_WARN, "monitoring: %s refused: a wrong token", path);
    respond_text_with(cl, 401,
                      "WWW-Authenticate: Bearer realm=\"ternd\"\r\n"
                      "WWW-Authenticate: Basic realm=\"ternd\"\r\n",
                      "unauthorized: this page needs the monitoring token "
                      "(Authorization: Bearer TOKEN)\n");
    return false;
  }
  if (cl->hs->loopback || cfg->allow_anonymous)
    return true;
  respond_text(cl, 403,
               "forbidden: this page lists clients; on a non-loopback "
               "address it needs http_token (or allow_anonymous)\n");
  return false;
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
    if (!allowed(cl, "/healthz"))
      return;
    if (srv->shutting_down)
      respond_text(cl, 503, "draining\n");
    else
      respond_text(cl, 200, "ok\n");
    return;
  }
  const char *q = strchr(cl->url, '?');
  q = q ? q + 1 : NULL;
  if (path_is(cl, "/connz")) {
    if (allowed(cl, "/connz"))
      respond_page(cl, METRICS_CONNZ, q);
    return;
  }
  if (path_is(cl, "/subz")) {
    if (allowed(cl, "/subz"))
      respond_page(cl, METRICS_SUBZ, q);
    return;
  }
  int (*render)(server_t *, tp_buf_t *) = NULL;
  const char *ctype = "application/json";
  const char *path = NULL;
  if (path_is(cl, "/metrics")) {
    render = metrics_prometheus;
    ctype = "text/plain; version=0.0.4; charset=utf-8";
    path = "/metrics";
  } else if (path_is(cl, "/varz")) {
    render = metrics_varz;
    path = "/varz";
  } else if (path_is(cl, "/streamz")) {
    render = metrics_streamz;
    path = "/streamz";
  } else if (path_is(cl, "/routez")) {
    render = metrics_routez;
    path = "/routez";
  }
  if (render == NULL) {
    respond_text(cl, 404,
                 "not found: try /healthz /metrics /varz /connz "
                 "/subz /streamz /routez\n");
    return;
  }
  if (!allowed(cl, path))
    return;
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

static int on_header_field(http_parser *p, const char *at, size_t len) {
  http_client_t *cl = p->data;
  if (cl->in_value) {
    cl->in_value = false;
    cl->hfield_len = 0;
    cl->hfield_long = false;
  }
  if (cl->hfield_len + len > sizeof cl->hfield) {
    cl->hfield_long = true;
    return 0;
  }
  memcpy(cl->hfield + cl->hfield_len, at, len);
  cl->hfield_len += len;
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  http_client_t *cl = p->data;
  if (!cl->in_value) {
    cl->in_value = true;
    cl->in_authz = !cl->hfield_long && cl->hfield_len == 13 &&
                   strncasecmp(cl->hfield, "Authorization", 13) == 0;
    if (cl->in_authz && cl->authz_len > 0)
      cl->authz_bad = true; /* twice: believe neither */
  }
  if (!cl->in_authz || cl->authz_bad)
    return 0;
  if (cl->authz_len + len >= sizeof cl->authz) {
    cl->authz_bad = true;
    return 0;
  }
  memcpy(cl->authz + cl->authz_len, at, len);
  cl->authz_len += len;
  return 0;
}

static int on_message_complete(http_parser *p) {
  http_client_t *cl = p->data;
  if (!cl->responded)
    route(cl);
  return 1; /* one request per connection: stop parsing */
}

static void on_alloc(void *owner, uv_buf_t *buf) {
  http_client_t *cl = owner;
  *buf = uv_buf_init(cl->rbuf, sizeof cl->rbuf);
}

/* Request bytes (decrypted, with TLS) to the parser. */
static void on_data(void *owner, size_t n) {
  http_client_t *cl = owner;
  if (cl->responded || cl->closing)
    return;
  if (cl->request_bytes == 0 && cl->hs->tls != NULL &&
      transport_tls(cl->t) == NULL &&
      cl->hs->srv->broker.cfg.http_tls_required) {
    respond_text(cl, 400, "this port needs HTTPS\n");
    return;
  }
  cl->request_bytes += n;
  size_t used =
      http_parser_execute(&cl->parser, &cl->hs->settings, cl->rbuf, n);
  if (cl->responded || cl->closing)
    return;
  if (HTTP_PARSER_ERRNO(&cl->parser) != HPE_OK || used != n ||
      cl->request_bytes > HTTP_MAX_REQUEST)
    respond_text(cl, 400, "bad request\n");
}

static void on_error(void *owner, int err) {
  (void)err;
  client_close(owner);
}

static const transport_cbs_t client_cbs = {
    .alloc = on_alloc,
    .on_data = on_data,
    .on_error = on_error,
    .on_write_done = on_write_done,
    .on_timer = on_timer,
    .on_closed = on_closed,
};

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
  uv_loop_t *loop = hs->srv->worker.loop;
  int rc = hs->tls != NULL ? tls_transport_open(loop, fd, hs->tls, &cl->t)
                           : tcp_transport_open(loop, fd, &cl->t);
  if (rc != 0) { /* the descriptor is closed */
    free(cl);
    return;
  }
  cl->hs = hs;
  tp_buf_init(&cl->out);
  transport_set_owner(cl->t, &client_cbs, cl);
  cl->accepted_ms = uv_now(loop);
  hs->handles_open++;
  hs->nclients++;
  list_insert_tail(&hs->clients, &cl->link);
  http_parser_init(&cl->parser, HTTP_REQUEST);
  cl->parser.data = cl;
  arm_timer(cl);
  if (transport_start_read(cl->t) != 0)
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

/* HTTPS with the client port's certificate and key; no client
 * certificates (whatever tls_verify says), plaintext HTTP beside it. */
static tls_listener_opts_t tls_opts(const config_t *cfg) {
  return (tls_listener_opts_t){.cert_file = cfg->tls_cert,
                               .key_file = cfg->tls_key,
                               .detect_ms = cfg->tls_detect_ms};
}

int http_start(http_server_t **out, server_t *srv, const char *host, int port,
               int *bound_port) {
  http_server_t *hs = calloc(1, sizeof *hs);
  if (hs == NULL)
    return UV_ENOMEM;
  hs->srv = srv;
  if (srv->broker.cfg.tls_cert[0] != '\0') {
    char why[512];
    tls_listener_opts_t o = tls_opts(&srv->broker.cfg);
    if (tls_listener_create(&hs->tls, &o, why, sizeof why) != 0) {
      LOG(LOG_ERROR, "monitoring: TLS: %s", why);
      free(hs);
      return UV_EINVAL;
    }
  }
  list_init(&hs->clients);
  /* An eighth of a small open-file limit at most: clients come first. */
  long nofile = fdlimit_current();
  hs->max_clients = (size_t)srv->broker.cfg.http_max_clients;
  if (nofile > 0 && (size_t)nofile / 8 < hs->max_clients)
    hs->max_clients = nofile / 8 < 4 ? 4 : (size_t)nofile / 8;
  http_parser_settings_init(&hs->settings);
  hs->settings.on_url = on_url;
  hs->settings.on_header_field = on_header_field;
  hs->settings.on_header_value = on_header_value;
  hs->loopback = config_is_loopback(host);
  hs->settings.on_message_complete = on_message_complete;
  hs->acceptor.on_accept = on_accept;
  hs->acceptor.on_refuse = on_refuse;
  hs->acceptor.data = hs;
  int rc = fd_acceptor_listen(&hs->acceptor, srv->worker.loop, host,
                              port < 0 ? 0 : port, 511, bound_port);
  if (rc != 0) {
    tls_listener_destroy(hs->tls);
    free(hs);
    return rc;
  }
  uv_timer_init(srv->worker.loop, &hs->retry);
  hs->retry.data = hs;
  hs->handles_open = 2;
  *out = hs;
  return 0;
}

bool http_tls(const http_server_t *hs) {
  return hs->tls != NULL;
}

void http_reload_tls(http_server_t *hs) {
  const config_t *cfg = &hs->srv->broker.cfg;
  if (hs->tls == NULL || cfg->tls_cert[0] == '\0')
    return;
  char why[512];
  tls_listener_opts_t o = tls_opts(cfg);
  if (tls_listener_reload(hs->tls, &o, why, sizeof why) != 0)
    LOG(LOG_ERROR, "reload: monitoring TLS: %s; the old certificate stays",
        why);
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
