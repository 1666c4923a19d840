/*
 * Routes between the nodes of a cluster (cluster.h, PROTOCOL.md "Routes").
 */
#include "cluster/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/list.h"
#include "base/log.h"
#include "cluster/mp.h"
#include "data/hashmap.h"
#include "data/msgbuf.h"
#include "data/retained.h"
#include "delivery/endpoint.h"
#include "delivery/interest.h"
#include "delivery/router.h"
#include "delivery/sub.h"
#include "session/conn.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"
#include "tern_proto/topic.h"
#include "transport/tcp.h"
#include "transport/tls.h"

#define ROUTE_PROTO 1
#define RT_HELLO 32
#define RT_CONNECT 33
#define RT_SUB 34
#define RT_UNSUB 35
#define RT_INFO 36
#define RT_RETAIN 37
#define RT_SYNC 38

#define TICK_MS 200
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* ---- local interest ---------------------------------------------------- */

/* One (pattern, queue) with local subscriptions. key: pattern, NUL, queue. */
typedef struct linterest {
  uint64_t id;
  uint32_t count; /* local subscriptions; 0: gone, RUNSUB on the next flush */
  bool dirty;     /* changed since the last flush */
  size_t plen, qlen, klen;
  uint8_t idkey[8];
  char key[]; /* pattern \0 queue */
} linterest_t;

/* ---- routes and where to dial ------------------------------------------ */

typedef enum { T_IDLE, T_DIALING, T_UP, T_SELF } tstate_t;

typedef struct target {
  list_node_t link;
  struct sockaddr_storage addr;
  char name[64]; /* ip:port */
  tstate_t state;
  char node[64]; /* the node found there, once known */
  uint64_t next_at;
  unsigned failures;
  struct route *route;
} target_t;

typedef struct seed {
  list_node_t link;
  char host[256];
  int port;
  bool resolving;
  uv_getaddrinfo_t req;
  struct cluster *cl;
  uint64_t next_at;
} seed_t;

typedef struct route {
  list_node_t link;
  struct cluster *cl;
  conn_t *c;
  target_t *target; /* dialed by us, else NULL */
  bool outbound;
  bool ready;
  bool hello_seen;
  char node[64];
  char url[256];        /* the peer's route URL */
  char client_url[256]; /* the peer's client URL(s) */
  uint64_t up_at;
  uint64_t msgs_in;
  int64_t rtt_ms;   /* of the last PING we sent, -1 before one */
  uint64_t ping_at; /* loop time of the PING waiting for its PONG, 0: none */
  /* Our interest ids this route delivered to (key and value: a malloc'd
   * uint64_t): told of a possible loss when it goes down uncleanly. */
  hashmap_t *fed;
  bool goaway_seen; /* the peer said GOAWAY: everything before it came */
} route_t;

typedef struct dial {
  uv_tcp_t tcp;
  uv_connect_t req;
  target_t *t;
  struct cluster *cl;
  list_node_t link; /* in cl->dials while connecting */
} dial_t;

struct cluster {
  worker_t *w;
  broker_t *b;
  /* Mutual TLS on routes (cluster_tls_*), else both NULL. */
  tls_listener_t *tls_in;
  tls_dialer_t *tls_out;
  uv_tcp_t listener;
  bool listening;
  int port;
  uv_timer_t tick;
  bool ticking;
  uv_async_t async;
  bool async_open;
  atomic_bool async_live; /* the watch may wake worker 0 */
  bool stopping;
  char node[64];
  char url[300];        /* this node's route URL */
  char client_url[300]; /* this node's client URL(s) */

  /* Local interest, written from every loop's thread. */
  uv_mutex_t lock;
  hashmap_t *by_key, *by_id;
  tp_buf_t retained_out; /* RRETAIN frames not sent yet */
  linterest_t **dirty;
  size_t ndirty, dirty_cap;
  uint64_t next_id;

  list_node_t routes;
  list_node_t dials;
  list_node_t targets;
  list_node_t seeds;
  uint64_t routes_made, routes_lost;
  uint64_t last_ping_s;
  tp_buf_t out;
  char client_urls[2048]; /* this node's and its peers' (cluster_urls) */
  /* Clients are served once the retained store is in sync (cluster.h). */
  bool synced;
  uint64_t started_at;
  void (*on_synced)(void *ud);
  void *synced_ud;
  void (*on_route)(void *ud, bool up, const char *node, const char *addr);
  void *route_ud;
};

static const conn_hooks_t route_hooks;

static uint64_t now_ms(cluster_t *cl) {
  return uv_now(cl->w->loop);
}

static route_t *route_of(conn_t *c) {
  return c->hook_ctx;
}

/* ---- local interest: the watch (any thread) ----------------------------- */

static void mark_dirty(cluster_t *cl, linterest_t *e) {
  if (e->dirty)
    return;
  if (cl->ndirty == cl->dirty_cap) {
    size_t cap = cl->dirty_cap ? cl->dirty_cap * 2 : 64;
    linterest_t **a = realloc(cl->dirty, cap * sizeof *a);
    if (a == NULL)
      return; /* the peers learn it at the next snapshot */
    cl->dirty = a;
    cl->dirty_cap = cap;
  }
  e->dirty = true;
  cl->dirty[cl->ndirty++] = e;
}

/* The interest table's key for s: its pattern, a NUL, its queue group.
 * In stack when it fits (cap bytes), else malloc'd (the caller frees what
 * is not stack); NULL when out of memory. */
static char *interest_key(const sub_t *s, char *stack, size_t cap,
                          size_t *klen) {
  *klen = s->plen + 1 + s->qlen;
  char *key = *klen <= cap ? stack : malloc(*klen);
  if (key == NULL)
    return NULL;
  memcpy(key, s->pattern, s->plen);
  key[s->plen] = '\0';
  if (s->qlen > 0)
    memcpy(key + s->plen + 1, s->queue, s->qlen);
  return key;
}

static void watch_added(void *ctx, const sub_t *s) {
  cluster_t *cl = ctx;
  char stackkey[512];
  size_t klen;
  char *key = interest_key(s, stackkey, sizeof stackkey, &klen);
  if (key == NULL)
    return;
  uv_mutex_lock(&cl->lock);
  linterest_t *e = hashmap_get(cl->by_key, key, klen);
  if (e == NULL) {
    e = calloc(1, sizeof *e + klen);
    if (e != NULL) {
      e->id = ++cl->next_id;
      for (int i = 0; i < 8; i++)
        e->idkey[i] = (uint8_t)(e->id >> (8 * i));
      e->plen = s->plen;
      e->qlen = s->qlen;
      e->klen = klen;
      memcpy(e->key, key, klen);
      if (hashmap_put(cl->by_key, e->key, klen, e) != 0) {
        free(e);
        e = NULL;
      } else if (hashmap_put(cl->by_id, e->idkey, 8, e) != 0) {
        hashmap_remove(cl->by_key, e->key, klen);
        free(e);
        e = NULL;
      }
    }
  }
  if (e != NULL) {
    e->count++;
    /* A group's member count travels; a plain pattern only comes and
     * goes. */
    if (e->count == 1 || e->qlen > 0)
      mark_dirty(cl, e);
  }
  uv_mutex_unlock(&cl->lock);
  if (key != stackkey)
    free(key);
  if (atomic_load(&cl->async_live))
    uv_async_send(&cl->async);
}

static void watch_removed(void *ctx, const sub_t *s) {
  cluster_t *cl = ctx;
  char stackkey[512];
  size_t klen;
  char *key = interest_key(s, stackkey, sizeof stackkey, &klen);
  if (key == NULL)
    return;
  uv_mutex_lock(&cl->lock);
  linterest_t *e = hashmap_get(cl->by_key, key, klen);
  if (e != NULL && e->count > 0) {
    e->count--;
    if (e->count == 0 || e->qlen > 0)
      mark_dirty(cl, e);
  }
  uv_mutex_unlock(&cl->lock);
  if (key != stackkey)
    free(key);
  if (atomic_load(&cl->async_live))
    uv_async_send(&cl->async);
}

/* [37, ttl_ms, topic, payload, opts?] from body, an encoded MSG body of
 * body_elems elements (topic, payload, opts?). */
static void put_retain(tp_buf_t *b, uint64_t ttl, const uint8_t *body,
                       size_t len, uint32_t body_elems) {
  size_t at = mp_begin_frame(b);
  mp_put_array(b, 2 + body_elems);
  mp_put_uint(b, RT_RETAIN);
  mp_put_uint(b, ttl);
  mp_put_raw(b, body, len);
  mp_end_frame(b, at);
}

static void watch_retained(void *ctx, const tp_pub_t *pub) {
  cluster_t *cl = ctx;
  tp_buf_t body;
  tp_buf_init(&body);
  bool has_opts = false;
  if (tp_msg_body_encode(&body, pub->topic, pub->payload, pub->reply,
                         pub->headers, false, &has_opts) == 0) {
    uv_mutex_lock(&cl->lock);
    put_retain(&cl->retained_out, pub->ttl_ms, body.data, body.len,
               has_opts ? 3 : 2);
    uv_mutex_unlock(&cl->lock);
    if (atomic_load(&cl->async_live))
      uv_async_send(&cl->async);
  }
  tp_buf_free(&body);
}

static const interest_watch_t watch = {watch_added, watch_removed,
                                       watch_retained};

/* ---- frames out -------------------------------------------------------- */

static void put_sub(tp_buf_t *b, const linterest_t *e) {
  size_t at = mp_begin_frame(b);
  mp_put_array(b, e->qlen > 0 ? 5 : 3);
  mp_put_uint(b, RT_SUB);
  mp_put_uint(b, e->id);
  mp_put_str(b, e->key, e->plen);
  if (e->qlen > 0) {
    mp_put_str(b, e->key + e->plen + 1, e->qlen);
    mp_put_uint(b, e->count);
  }
  mp_end_frame(b, at);
}

static void put_unsub(tp_buf_t *b, uint64_t id) {
  size_t at = mp_begin_frame(b);
  mp_put_array(b, 2);
  mp_put_uint(b, RT_UNSUB);
  mp_put_uint(b, id);
  mp_end_frame(b, at);
}

/* Whether c is still there to write to. */
static bool route_live(const route_t *r) {
  return r->c != NULL && r->c->state <= CONN_ACTIVE;
}

static void send_buf(route_t *r, tp_buf_t *b) {
  if (b->len > 0 && route_live(r) && conn_send_bytes(r->c, b->data, b->len))
    conn_fail(r->c, TP_WIRE_PROTOCOL, "out of memory");
}

/* The changes since the last flush, to every ready route. */
static void flush_interest(cluster_t *cl) {
  tp_buf_t *b = &cl->out;
  tp_buf_reset(b);
  uv_mutex_lock(&cl->lock);
  for (size_t i = 0; i < cl->ndirty; i++) {
    linterest_t *e = cl->dirty[i];
    e->dirty = false;
    if (e->count > 0) {
      put_sub(b, e);
      continue;
    }
    put_unsub(b, e->id);
    hashmap_remove(cl->by_key, e->key, e->klen);
    hashmap_remove(cl->by_id, e->idkey, 8);
    free(e);
  }
  cl->ndirty = 0;
  if (cl->retained_out.len > 0) {
    tp_buf_append(b, cl->retained_out.data, cl->retained_out.len);
    tp_buf_reset(&cl->retained_out);
  }
  uv_mutex_unlock(&cl->lock);
  for (list_node_t *n = cl->routes.next; n != &cl->routes; n = n->next) {
    route_t *r = LIST_ENTRY(n, route_t, link);
    if (r->ready)
      send_buf(r, b);
  }
}

static void on_async(uv_async_t *a) {
  flush_interest(a->data);
}

static void snapshot_retained(void *ud, msgbuf_t *body, uint64_t ttl_left) {
  put_retain(ud, ttl_left, body->bytes.data, body->bytes.len,
             body->has_opts ? 3 : 2);
}

/* Every local interest, to one route that just came up. */
static void send_snapshot(route_t *r) {
  cluster_t *cl = r->cl;
  tp_buf_t *b = &cl->out;
  tp_buf_reset(b);
  uv_mutex_lock(&cl->lock);
  size_t pos = 0;
  const void *key;
  size_t klen;
  void *val;
  while (hashmap_next(cl->by_id, &pos, &key, &klen, &val) == 1) {
    linterest_t *e = val;
    if (e->count > 0)
      put_sub(b, e);
  }
  uv_mutex_unlock(&cl->lock);
  /* The retained store, with the time each message has left, then SYNC:
   * the peer has all of it. */
  broker_t *br = cl->b;
  bool multi = broker_multi(br);
  if (multi)
    uv_mutex_lock(&br->retained_lock);
  retained_each(br->retained, snapshot_retained, b);
  if (multi)
    uv_mutex_unlock(&br->retained_lock);
  size_t at = mp_begin_frame(b);
  mp_put_array(b, 1);
  mp_put_uint(b, RT_SYNC);
  mp_end_frame(b, at);
  send_buf(r, b);
}

/* Every route URL this node knows (its own and its ready peers'). */
static void put_info(cluster_t *cl, tp_buf_t *b, int type) {
  size_t nroutes = 1;
  for (list_node_t *n = cl->routes.next; n != &cl->routes; n = n->next)
    if (LIST_ENTRY(n, route_t, link)->ready &&
        LIST_ENTRY(n, route_t, link)->url[0] != '\0')
      nroutes++;
  size_t at = mp_begin_frame(b);
  mp_put_array(b, 2);
  mp_put_uint(b, (uint64_t)type);
  bool with_auth = type == RT_CONNECT && cl->b->cfg.cluster_token[0] != '\0';
  mp_put_map(b, with_auth ? 7 : 6);
  mp_put_cstr(b, "proto");
  mp_put_uint(b, ROUTE_PROTO);
  mp_put_cstr(b, "cluster");
  mp_put_cstr(b, cl->b->cfg.cluster_name);
  mp_put_cstr(b, "node");
  mp_put_cstr(b, cl->node);
  mp_put_cstr(b, "route_url");
  mp_put_cstr(b, cl->url);
  mp_put_cstr(b, "client_url");
  mp_put_cstr(b, cl->client_url);
  mp_put_cstr(b, "routes");
  mp_put_array(b, (uint32_t)nroutes);
  mp_put_cstr(b, cl->url);
  for (list_node_t *n = cl->routes.next; n != &cl->routes; n = n->next) {
    route_t *r = LIST_ENTRY(n, route_t, link);
    if (r->ready && r->url[0] != '\0')
      mp_put_cstr(b, r->url);
  }
  if (with_auth) {
    mp_put_cstr(b, "token");
    mp_put_cstr(b, cl->b->cfg.cluster_token);
  }
  mp_end_frame(b, at);
}

static void send_info(route_t *r, int type) {
  tp_buf_t *b = &r->cl->out;
  tp_buf_reset(b);
  put_info(r->cl, b, type);
  send_buf(r, b);
}

/* ---- targets and seeds --------------------------------------------------- */

static target_t *find_target(cluster_t *cl, const char *name) {
  for (list_node_t *n = cl->targets.next; n != &cl->targets; n = n->next) {
    target_t *t = LIST_ENTRY(n, target_t, link);
    if (strcmp(t->name, name) == 0)
      return t;
  }
  return NULL;
}

static void add_target(cluster_t *cl, const struct sockaddr *sa) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  memcpy(&ss, sa,
         sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                   : sizeof(struct sockaddr_in));
  char name[64];
  transport_addr_name(&ss, name, sizeof name);
  if (find_target(cl, name) != NULL)
    return;
  target_t *t = calloc(1, sizeof *t);
  if (t == NULL)
    return;
  t->addr = ss;
  snprintf(t->name, sizeof t->name, "%s", name);
  t->state = T_IDLE;
  list_insert_tail(&cl->targets, &t->link);
  LOG(LOG_DEBUG, "cluster: route target %s", name);
}

static void add_seed(cluster_t *cl, const char *hostport, size_t len) {
  while (len > 0 && (*hostport == ' ' || *hostport == '\t')) {
    hostport++;
    len--;
  }
  while (len > 0 && (hostport[len - 1] == ' ' || hostport[len - 1] == '\t'))
    len--;
  if (len > 6 && memcmp(hostport, "tern://", 7) == 0) {
    hostport += 7;
    len -= 7;
  } else if (len > 7 && memcmp(hostport, "route://", 8) == 0) {
    hostport += 8;
    len -= 8;
  }
  if (len == 0 || len >= 256)
    return;
  char buf[256];
  memcpy(buf, hostport, len);
  buf[len] = '\0';
  char *colon = strrchr(buf, ':');
  if (colon == NULL)
    return;
  *colon = '\0';
  int port = atoi(colon + 1);
  if (port <= 0 || port > 65535)
    return;
  char *host = buf;
  if (*host == '[') { /* [v6]:port */
    host++;
    size_t hl = strlen(host);
    if (hl > 0 && host[hl - 1] == ']')
      host[hl - 1] = '\0';
  }
  for (list_node_t *n = cl->seeds.next; n != &cl->seeds; n = n->next) {
    seed_t *s = LIST_ENTRY(n, seed_t, link);
    if (s->port == port && strcmp(s->host, host) == 0)
      return;
  }
  seed_t *s = calloc(1, sizeof *s);
  if (s == NULL)
    return;
  snprintf(s->host, sizeof s->host, "%s", host);
  s->port = port;
  s->cl = cl;
  list_insert_tail(&cl->seeds, &s->link);
}

static void add_seeds(cluster_t *cl, const char *list) {
  const char *p = list;
  while (*p != '\0') {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    add_seed(cl, p, len);
    p += len;
    if (*p == ',')
      p++;
  }
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  seed_t *s = req->data;
  cluster_t *cl = s->cl;
  s->resolving = false;
  if (status != 0) {
    LOG(LOG_DEBUG, "cluster: resolving %s: %s", s->host, uv_strerror(status));
  } else if (!cl->stopping) {
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
      if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
        continue;
      struct sockaddr_storage ss;
      memset(&ss, 0, sizeof ss);
      memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
      if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)s->port);
      else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)s->port);
      add_target(cl, (struct sockaddr *)&ss);
    }
  }
  uv_freeaddrinfo(res);
}

static void resolve(seed_t *s) {
  cluster_t *cl = s->cl;
  /* A numeric address needs no resolver. */
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  if (uv_ip4_addr(s->host, s->port, &a4) == 0) {
    add_target(cl, (struct sockaddr *)&a4);
    return;
  }
  if (uv_ip6_addr(s->host, s->port, &a6) == 0) {
    add_target(cl, (struct sockaddr *)&a6);
    return;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  s->req.data = s;
  if (uv_getaddrinfo(cl->w->loop, &s->req, on_resolved, s->host, NULL,
                     &hints) == 0)
    s->resolving = true;
}

/* ---- routes ------------------------------------------------------------ */

static route_t *ready_route_to(cluster_t *cl, const char *node) {
  for (list_node_t *n = cl->routes.next; n != &cl->routes; n = n->next) {
    route_t *r = LIST_ENTRY(n, route_t, link);
    if (r->ready && route_live(r) && strcmp(r->node, node) == 0)
      return r;
  }
  return NULL;
}

static unsigned backoff_ms(unsigned failures) {
  unsigned ms = BACKOFF_MIN_MS;
  for (unsigned i = 0; i < failures && ms < BACKOFF_MAX_MS; i++)
    ms *= 2;
  if (ms > BACKOFF_MAX_MS)
    ms = BACKOFF_MAX_MS;
  /* jitter: 50% .. 150% */
  return ms / 2 + (unsigned)(rand() % (int)(ms + 1));
}

static route_t *route_new(cluster_t *cl, bool outbound, target_t *t) {
  route_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->cl = cl;
  r->outbound = outbound;
  r->target = t;
  r->rtt_ms = -1;
  list_insert_tail(&cl->routes, &r->link);
  return r;
}

/*
 * A route gone without the peer's GOAWAY may have lost messages for our
 * interest: queued on the peer (closed as a slow consumer), in flight on
 * a cut link, or held by a node that died. Nobody can count them; every
 * local subscription the route fed is told DROPPED with count 0 (an
 * unknown number, PROTOCOL.md section 9.4), at the gap: after everything
 * the route delivered.
 */
static void report_loss(route_t *r) {
  cluster_t *cl = r->cl;
  size_t pos = 0, klen, told = 0, interests = 0;
  const void *k;
  void *v;
  while (hashmap_next(r->fed, &pos, &k, &klen, &v) == 1) {
    char stackkey[512];
    char *key = NULL;
    size_t plen = 0, qlen = 0;
    uv_mutex_lock(&cl->lock);
    linterest_t *e = hashmap_get(cl->by_id, k, klen);
    if (e != NULL && e->count > 0) {
      key = e->klen <= sizeof stackkey ? stackkey : malloc(e->klen);
      if (key != NULL) {
        memcpy(key, e->key, e->klen);
        plen = e->plen;
        qlen = e->qlen;
      }
    }
    uv_mutex_unlock(&cl->lock);
    if (key == NULL)
      continue;
    interests++;
    told += router_report_loss(cl->w, key, plen,
                               qlen > 0 ? key + plen + 1 : NULL, qlen);
    if (key != stackkey)
      free(key);
  }
  if (told > 0)
    LOG(LOG_WARN,
        "cluster: route to %s lost: %zu subscription(s) of %zu pattern(s) "
        "told DROPPED (messages may have been lost)",
        r->node, told, interests);
}

static void fed_free(route_t *r) {
  if (r->fed == NULL)
    return;
  size_t pos = 0, klen;
  const void *k;
  void *v;
  while (hashmap_next(r->fed, &pos, &k, &klen, &v) == 1)
    free(v);
  hashmap_destroy(r->fed);
  r->fed = NULL;
}

/* The route's connection is gone: its remote interest went with it (the
 * session tore its subscriptions down). */
static void route_closed(conn_t *c) {
  route_t *r = route_of(c);
  cluster_t *cl = r->cl;
  if (r->fed != NULL && !r->goaway_seen && !cl->stopping)
    report_loss(r);
  fed_free(r);
  if (r->ready) {
    cl->routes_lost++;
    LOG(LOG_INFO, "cluster: route to %s (%s) down", r->node, c->addr);
    if (cl->on_route != NULL && !cl->stopping)
      cl->on_route(cl->route_ud, false, r->node, c->addr);
  }
  if (r->target != NULL) {
    target_t *t = r->target;
    t->route = NULL;
    if (t->state != T_SELF) {
      t->state = T_IDLE;
      if (!r->ready)
        t->failures++;
      else
        t->failures = 0;
      t->next_at = now_ms(cl) + backoff_ms(t->failures);
    }
  }
  list_remove(&r->link);
  free(r);
}

static void route_fail(route_t *r, const char *why) {
  LOG(LOG_INFO, "cluster: route %s (%s): %s", r->c->addr,
      r->node[0] ? r->node : "?", why);
  conn_fail(r->c, TP_WIRE_PROTOCOL, why);
}

/* Whether a new route to node (dialed by us when outbound) should stand
 * over an existing one: the route dialed by the lower node id stays. */
static bool keeps_new(const cluster_t *cl, const char *node, bool outbound) {
  bool we_lower = strcmp(cl->node, node) < 0;
  return we_lower == outbound;
}

static void route_ready(route_t *r) {
  cluster_t *cl = r->cl;
  r->ready = true;
  r->up_at = now_ms(cl);
  cl->routes_made++;
  conn_hooks_ready(r->c);
  free(r->c->name);
  r->c->name = strdup(r->node);
  if (r->target != NULL) {
    r->target->state = T_UP;
    r->target->failures = 0;
    snprintf(r->target->node, sizeof r->target->node, "%s", r->node);
  }
  LOG(LOG_INFO, "cluster: route to %s (%s, %s) up", r->node, r->c->addr,
      r->outbound ? "dialed" : "accepted");
  if (cl->on_route != NULL)
    cl->on_route(cl->route_ud, true, r->node, r->c->addr);
  send_snapshot(r);
}

/* HELLO or CONNECT's map. Fails the route and returns false when it is
 * not acceptable. */
static bool read_info(route_t *r, mp_rd_t *rd, bool is_connect) {
  cluster_t *cl = r->cl;
  uint32_t n;
  if (!mp_get_map(rd, &n)) {
    route_fail(r, "route info must be a map");
    return false;
  }
  uint64_t proto = 0;
  mp_rd_t routes_at = {NULL, NULL, true};
  bool has_routes = false;
  const char *cluster = NULL, *node = NULL, *token = NULL;
  uint32_t cluster_len = 0, node_len = 0, token_len = 0;
  for (uint32_t i = 0; i < n && !rd->bad; i++) {
    const char *k;
    uint32_t kl;
    if (!mp_get_str(rd, &k, &kl, false))
      break;
    if (mp_key_is(k, kl, "proto")) {
      mp_get_uint(rd, &proto);
    } else if (mp_key_is(k, kl, "cluster")) {
      mp_get_str(rd, &cluster, &cluster_len, false);
    } else if (mp_key_is(k, kl, "node")) {
      mp_get_str(rd, &node, &node_len, false);
    } else if (mp_key_is(k, kl, "token")) {
      mp_get_str(rd, &token, &token_len, false);
    } else if (mp_key_is(k, kl, "route_url")) {
      const char *u;
      uint32_t ul;
      if (mp_get_str(rd, &u, &ul, false) && ul < sizeof r->url) {
        memcpy(r->url, u, ul);
        r->url[ul] = '\0';
      }
    } else if (mp_key_is(k, kl, "client_url")) {
      const char *u;
      uint32_t ul;
      if (mp_get_str(rd, &u, &ul, false) && ul < sizeof r->client_url) {
        memcpy(r->client_url, u, ul);
        r->client_url[ul] = '\0';
      }
    } else if (mp_key_is(k, kl, "routes")) {
      /* Read once the peer is accepted (below). */
      routes_at = *rd;
      has_routes = true;
      mp_skip(rd, 2);
    } else {
      mp_skip(rd, 8);
    }
  }
  if (rd->bad || proto != ROUTE_PROTO || node == NULL || cluster == NULL ||
      node_len == 0 || node_len >= sizeof r->node) {
    route_fail(r, "malformed route HELLO/CONNECT");
    return false;
  }
  memcpy(r->node, node, node_len);
  r->node[node_len] = '\0';
  if (cluster_len != strlen(cl->b->cfg.cluster_name) ||
      memcmp(cluster, cl->b->cfg.cluster_name, cluster_len) != 0) {
    route_fail(r, "another cluster");
    return false;
  }
  if (strcmp(r->node, cl->node) == 0) {
    if (r->target != NULL)
      r->target->state = T_SELF;
    conn_fail(r->c, 0, NULL);
    return false;
  }
  if (is_connect && cl->b->cfg.cluster_token[0] != '\0') {
    size_t want = strlen(cl->b->cfg.cluster_token);
    unsigned diff = token == NULL || token_len != want;
    for (size_t i = 0; i < want && token != NULL && i < token_len; i++)
      diff |= (unsigned)(token[i] ^ cl->b->cfg.cluster_token[i]);
    if (diff) {
      LOG(LOG_WARN, "cluster: route from %s refused: bad cluster token",
          r->c->addr);
      conn_fail(r->c, TP_WIRE_AUTH, "bad cluster token");
      return false;
    }
  }
  /* Is there a route to this node already? */
  route_t *old = ready_route_to(cl, r->node);
  if (old != NULL && old != r) {
    if (!keeps_new(cl, r->node, r->outbound)) {
      if (r->target != NULL)
        snprintf(r->target->node, sizeof r->target->node, "%s", r->node);
      conn_fail(r->c, 0, NULL);
      return false;
    }
    LOG(LOG_DEBUG, "cluster: route to %s replaced", r->node);
    conn_goaway(old->c, "duplicate route");
    old->ready = false;
  }
  /* The routes the peer knows: this node dials those it does not. */
  uint32_t m;
  if (has_routes && mp_get_array(&routes_at, &m)) {
    for (uint32_t j = 0; j < m; j++) {
      const char *u;
      uint32_t ul;
      if (!mp_get_str(&routes_at, &u, &ul, false))
        break;
      if (ul == strlen(cl->url) && memcmp(u, cl->url, ul) == 0)
        continue;
      add_seed(cl, u, ul);
    }
  }
  return true;
}

static void handle_sub(route_t *r, mp_rd_t *rd, uint32_t nel) {
  uint64_t id = 0;
  const char *pat = NULL, *queue = NULL;
  uint32_t plen = 0, qlen = 0;
  uint64_t members = 1;
  mp_get_uint(rd, &id);
  mp_get_str(rd, &pat, &plen, false);
  if (nel >= 4)
    mp_get_str(rd, &queue, &qlen, true);
  if (nel >= 5)
    mp_get_uint(rd, &members);
  conn_t *c = r->c;
  broker_t *b = c->w->broker;
  if (rd->bad || pat == NULL ||
      tp_pattern_validate(pat, plen,
                          b->cfg.max_topic ? b->cfg.max_topic
                                           : TP_DEFAULT_MAX_TOPIC) != 0 ||
      (queue != NULL && qlen == 0)) {
    route_fail(r, "malformed RSUB");
    return;
  }
  uint8_t key[8];
  for (int i = 0; i < 8; i++)
    key[i] = (uint8_t)(id >> (8 * i));
  if (hashmap_get(c->subs, key, 8) != NULL)
    return; /* an update (member count): nothing to change here */
  tp_sub_t req;
  memset(&req, 0, sizeof req);
  req.sid = id;
  req.pattern.ptr = pat;
  req.pattern.len = plen;
  if (queue != NULL) {
    req.queue.ptr = queue;
    req.queue.len = qlen;
  }
  req.max_msgs = b->cfg.route_pending_msgs;
  req.max_bytes = b->cfg.route_pending_bytes;
  req.overflow = TP_OVERFLOW_BLOCK;
  sub_t *s = sub_create(c, &c->ep, &c->out, &c->w->sub_env, &req,
                        b->cfg.route_pending_msgs, b->cfg.route_pending_bytes);
  if (s == NULL) {
    conn_fail(c, TP_WIRE_PROTOCOL, "out of memory");
    return;
  }
  if (hashmap_put(c->subs, s->sid_key, sizeof s->sid_key, s) != 0) {
    sub_destroy(s);
    conn_fail(c, TP_WIRE_PROTOCOL, "out of memory");
    return;
  }
  if (interest_add(b, s) != 0) {
    hashmap_remove(c->subs, s->sid_key, sizeof s->sid_key);
    sub_destroy(s);
    conn_fail(c, TP_WIRE_PROTOCOL, "out of memory");
    return;
  }
}

static void handle_unsub(route_t *r, mp_rd_t *rd) {
  uint64_t id = 0;
  if (!mp_get_uint(rd, &id)) {
    route_fail(r, "malformed RUNSUB");
    return;
  }
  uint8_t key[8];
  for (int i = 0; i < 8; i++)
    key[i] = (uint8_t)(id >> (8 * i));
  sub_t *s = hashmap_get(r->c->subs, key, 8);
  if (s != NULL)
    conn_remove_sub(r->c, s);
}

/* The route delivered to our interest id (route_t.fed). */
static void note_fed(route_t *r, uint64_t id) {
  if (r->fed == NULL && hashmap_create(&r->fed, 0) != 0)
    return;
  uint8_t *k = malloc(8);
  if (k == NULL)
    return;
  for (int i = 0; i < 8; i++)
    k[i] = (uint8_t)(id >> (8 * i));
  if (hashmap_put(r->fed, k, 8, k) != 0)
    free(k);
}

/* A MSG for our interest id: to the local subscriptions of that one
 * (pattern, queue). */
static void handle_msg(route_t *r, const uint8_t *body, size_t len) {
  conn_t *c = r->c;
  tp_frame_t f;
  tp_decoder_t *dec = c->w->rx.dec;
  if (tp_frame_decode(dec, body, len, &f) != 0 || f.type != TP_MSG) {
    route_fail(r, tp_decoder_errmsg(dec));
    return;
  }
  r->msgs_in++;
  cluster_t *cl = r->cl;
  char stackkey[512];
  char *key = NULL;
  size_t plen = 0, qlen = 0;
  uint8_t idkey[8];
  for (int i = 0; i < 8; i++)
    idkey[i] = (uint8_t)(f.u.msg.sid >> (8 * i));
  uv_mutex_lock(&cl->lock);
  linterest_t *e = hashmap_get(cl->by_id, idkey, 8);
  if (e != NULL && e->count > 0) {
    key = e->klen <= sizeof stackkey ? stackkey : malloc(e->klen);
    if (key != NULL) {
      memcpy(key, e->key, e->klen);
      plen = e->plen;
      qlen = e->qlen;
    }
  }
  uv_mutex_unlock(&cl->lock);
  if (key == NULL)
    return; /* the interest went away meanwhile: no one to deliver to */
  if (r->fed == NULL || hashmap_get(r->fed, idkey, 8) == NULL)
    note_fed(r, f.u.msg.sid);
  tp_pub_t pub;
  memset(&pub, 0, sizeof pub);
  pub.topic = f.u.msg.topic;
  pub.payload = f.u.msg.payload;
  pub.reply = f.u.msg.reply;
  pub.headers = f.u.msg.headers;
  uint64_t n = 0;
  int rc = router_publish_routed(c->w, &c->ep, &pub, key, plen,
                                 qlen > 0 ? key + plen + 1 : NULL, qlen, &n);
  if (rc != 0)
    LOG(LOG_WARN, "cluster: route %s: delivery: %s", r->node,
        ternd_strerror(rc));
  if (key != stackkey)
    free(key);
}

/* A retained message from another node: stored here as it was there, with
 * the time it had left. [37, ttl, topic, payload, opts?] is read as the PUB
 * [3, topic, payload, opts?] it was made from. */
static void handle_retain(route_t *r, const uint8_t *body, size_t len,
                          uint32_t nel, mp_rd_t *rd) {
  conn_t *c = r->c;
  uint64_t ttl = 0;
  if (nel < 4 || !mp_get_uint(rd, &ttl)) {
    route_fail(r, "malformed RRETAIN");
    return;
  }
  size_t rest = (size_t)(rd->end - rd->p);
  (void)body;
  (void)len;
  tp_buf_t *b = &r->cl->out;
  tp_buf_reset(b);
  mp_put_array(b, nel - 1);
  mp_put_uint(b, TP_PUB);
  mp_put_raw(b, rd->p, rest);
  tp_frame_t f;
  tp_decoder_t *dec = c->w->rx.dec;
  if (tp_frame_decode(dec, b->data, b->len, &f) != 0 || f.type != TP_PUB) {
    route_fail(r, tp_decoder_errmsg(dec));
    return;
  }
  f.u.pub.retain = true;
  f.u.pub.ttl_ms = ttl;
  const char *msg = NULL;
  int rc = router_retain_routed(c->w, &f.u.pub, &msg);
  if (rc != 0)
    LOG(LOG_WARN, "cluster: retained message from %s not stored: %s", r->node,
        msg ? msg : ternd_strerror(rc));
}

static void set_synced(cluster_t *cl, const char *why) {
  if (cl->synced)
    return;
  cl->synced = true;
  LOG(LOG_INFO, "cluster: in sync (%s): serving clients", why);
  if (cl->on_synced != NULL)
    cl->on_synced(cl->synced_ud);
}

static const uint8_t FRAME_PONG[] = {0, 0, 0, 2, 0x91, 0x08};
static const uint8_t FRAME_PING[] = {0, 0, 0, 2, 0x91, 0x07};

static void route_on_frame(conn_t *c, const uint8_t *body, size_t len) {
  route_t *r = route_of(c);
  mp_rd_t rd;
  mp_rd_init(&rd, body, len);
  uint32_t nel;
  uint64_t type;
  if (!mp_get_array(&rd, &nel) || nel == 0 || !mp_get_uint(&rd, &type)) {
    route_fail(r, "malformed route frame");
    return;
  }
  if (!r->ready) {
    /* The handshake: the acceptor sends HELLO, the dialer CONNECT, the
     * acceptor INFO (accepted) or ERR. */
    if (r->outbound && !r->hello_seen && type == RT_HELLO) {
      if (!read_info(r, &rd, false))
        return;
      r->hello_seen = true;
      send_info(r, RT_CONNECT);
      return;
    }
    if (r->outbound && r->hello_seen && type == RT_INFO) {
      if (!read_info(r, &rd, false))
        return;
      route_ready(r);
      return;
    }
    if (!r->outbound && type == RT_CONNECT) {
      if (!read_info(r, &rd, true))
        return;
      send_info(r, RT_INFO);
      route_ready(r);
      return;
    }
    if (type == TP_ERR) {
      uint64_t code = 0;
      const char *m = "";
      uint32_t ml = 0;
      mp_get_uint(&rd, &code);
      mp_get_str(&rd, &m, &ml, false);
      LOG(LOG_WARN, "cluster: route %s refused us: ERR %llu %.*s", c->addr,
          (unsigned long long)code, (int)ml, m ? m : "");
      conn_fail(c, 0, NULL);
      return;
    }
    route_fail(r, "unexpected frame during the route handshake");
    return;
  }
  switch (type) {
  case TP_MSG:
    handle_msg(r, body, len);
    break;
  case RT_SUB:
    handle_sub(r, &rd, nel);
    break;
  case RT_UNSUB:
    handle_unsub(r, &rd);
    break;
  case RT_INFO:
    read_info(r, &rd, false);
    break;
  case RT_RETAIN:
    handle_retain(r, body, len, nel, &rd);
    break;
  case RT_SYNC:
    set_synced(r->cl, "a peer's snapshot arrived");
    break;
  case TP_PING:
    conn_send_bytes(c, FRAME_PONG, sizeof FRAME_PONG);
    break;
  case TP_PONG:
    if (r->ping_at != 0) {
      r->rtt_ms = (int64_t)(now_ms(r->cl) - r->ping_at);
      r->ping_at = 0;
    }
    break;
  case TP_GOAWAY:
    r->goaway_seen = true;
    conn_fail(c, 0, NULL);
    break;
  case TP_ERR:
    LOG(LOG_WARN, "cluster: route %s sent ERR", r->node);
    conn_fail(c, 0, NULL);
    break;
  default:
    route_fail(r, "unknown route frame");
    break;
  }
}

static const conn_hooks_t route_hooks = {route_on_frame, route_closed};

/* A transport for a route, either way. */
static void route_open(cluster_t *cl, int fd, bool outbound, target_t *t) {
  transport_t *tr;
  /* With route TLS a peer is whoever holds a certificate of the cluster's
   * CA (cluster_tls_ca), either way; names are not checked: nodes come
   * and go with the addresses the platform gives them. */
  int rc;
  if (cl->tls_in != NULL && !outbound)
    rc = tls_transport_open(cl->w->loop, fd, cl->tls_in, &tr);
  else if (cl->tls_out != NULL)
    rc = tls_transport_dial(cl->w->loop, fd, cl->tls_out, NULL, &tr);
  else
    rc = tcp_transport_open(cl->w->loop, fd, &tr);
  if (rc != 0) {
    LOG(LOG_WARN, "cluster: route transport: %s", ternd_strerror(rc));
    if (t != NULL) {
      t->state = T_IDLE;
      t->next_at = now_ms(cl) + backoff_ms(++t->failures);
    }
    return;
  }
  route_t *r = route_new(cl, outbound, t);
  if (r == NULL) {
    transport_close(tr);
    return;
  }
  conn_t *c;
  if (conn_open_hooked(cl->w, tr, &route_hooks, r, &c) != 0) {
    list_remove(&r->link);
    free(r);
    if (t != NULL) {
      t->state = T_IDLE;
      t->next_at = now_ms(cl) + backoff_ms(++t->failures);
    }
    return;
  }
  r->c = c;
  if (t != NULL)
    t->route = r;
  if (!outbound)
    send_info(r, RT_HELLO);
}

static void on_dial_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_dialed(uv_connect_t *req, int status) {
  dial_t *d = req->data;
  cluster_t *cl = d->cl;
  target_t *t = d->t;
  int fd = -1;
  list_remove(&d->link);
  if (uv_is_closing((uv_handle_t *)&d->tcp))
    return; /* cluster_stop closed it */
  if (status == 0 && !cl->stopping) {
    uv_os_fd_t ofd;
    if (uv_fileno((uv_handle_t *)&d->tcp, &ofd) == 0)
      fd = dup(ofd);
  }
  uv_close((uv_handle_t *)&d->tcp, on_dial_closed);
  if (t == NULL)
    return;
  if (fd < 0) {
    if (status != 0)
      LOG(LOG_DEBUG, "cluster: dialing %s: %s", t->name, uv_strerror(status));
    t->state = T_IDLE;
    t->next_at = now_ms(cl) + backoff_ms(++t->failures);
    return;
  }
  route_open(cl, fd, true, t);
}

static void dial(cluster_t *cl, target_t *t) {
  dial_t *d = calloc(1, sizeof *d);
  if (d == NULL)
    return;
  d->t = t;
  d->cl = cl;
  d->tcp.data = d;
  d->req.data = d;
  if (uv_tcp_init(cl->w->loop, &d->tcp) != 0) {
    free(d);
    return;
  }
  t->state = T_DIALING;
  list_init(&d->link);
  int rc =
      uv_tcp_connect(&d->req, &d->tcp, (struct sockaddr *)&t->addr, on_dialed);
  if (rc == 0)
    list_insert_tail(&cl->dials, &d->link);
  if (rc != 0) {
    d->t = NULL;
    uv_close((uv_handle_t *)&d->tcp, on_dial_closed);
    t->state = T_IDLE;
    t->next_at = now_ms(cl) + backoff_ms(++t->failures);
  }
}

static void on_tick(uv_timer_t *tm) {
  cluster_t *cl = tm->data;
  if (cl->stopping)
    return;
  uint64_t now = now_ms(cl);
  if (!cl->synced && now - cl->started_at >= cl->b->cfg.route_sync_ms)
    set_synced(cl, "no peer answered in route_sync_ms: the first node");
  for (list_node_t *n = cl->seeds.next; n != &cl->seeds; n = n->next) {
    seed_t *s = LIST_ENTRY(n, seed_t, link);
    if (!s->resolving && now >= s->next_at) {
      s->next_at = now + cl->b->cfg.route_resolve_ms;
      resolve(s);
    }
  }
  for (list_node_t *n = cl->targets.next; n != &cl->targets; n = n->next) {
    target_t *t = LIST_ENTRY(n, target_t, link);
    if (t->state != T_IDLE || now < t->next_at)
      continue;
    if (t->node[0] != '\0' && ready_route_to(cl, t->node) != NULL)
      continue; /* that node is reached by another route */
    dial(cl, t);
  }
  /* The routes' round trip, about once a second. */
  if (now / 1000 != cl->last_ping_s) {
    cl->last_ping_s = now / 1000;
    for (list_node_t *n = cl->routes.next; n != &cl->routes; n = n->next) {
      route_t *r = LIST_ENTRY(n, route_t, link);
      if (r->ready && route_live(r) && r->ping_at == 0) {
        r->ping_at = now;
        conn_send_bytes(r->c, FRAME_PING, sizeof FRAME_PING);
      }
    }
  }
}

static void on_route_conn(uv_stream_t *server, int status) {
  cluster_t *cl = server->data;
  if (status != 0)
    return;
  uv_tcp_t *tmp = malloc(sizeof *tmp);
  if (tmp == NULL || uv_tcp_init(cl->w->loop, tmp) != 0) {
    free(tmp);
    return;
  }
  tmp->data = NULL;
  int fd = -1;
  if (uv_accept(server, (uv_stream_t *)tmp) == 0) {
    uv_os_fd_t ofd;
    if (uv_fileno((uv_handle_t *)tmp, &ofd) == 0)
      fd = dup(ofd);
  }
  tmp->data = tmp;
  uv_close((uv_handle_t *)tmp, on_dial_closed);
  if (fd >= 0 && !cl->stopping)
    route_open(cl, fd, false, NULL);
  else if (fd >= 0)
    close(fd);
}

/* ---- life -------------------------------------------------------------- */

int cluster_create(cluster_t **out, worker_t *w) {
  cluster_t *cl = calloc(1, sizeof *cl);
  if (cl == NULL)
    return TP_ENOMEM;
  cl->w = w;
  cl->b = w->broker;
  list_init(&cl->routes);
  list_init(&cl->dials);
  list_init(&cl->targets);
  list_init(&cl->seeds);
  tp_buf_init(&cl->out);
  tp_buf_init(&cl->retained_out);
  if (uv_mutex_init(&cl->lock) != 0) {
    free(cl);
    return TP_ENOMEM;
  }
  if (hashmap_create(&cl->by_key, 0) != 0 ||
      hashmap_create(&cl->by_id, 0) != 0) {
    hashmap_destroy(cl->by_key);
    uv_mutex_destroy(&cl->lock);
    free(cl);
    return TP_ENOMEM;
  }
  snprintf(cl->node, sizeof cl->node, "%s", cl->b->server_id);
  int rc = uv_async_init(w->loop, &cl->async, on_async);
  if (rc != 0) {
    cluster_free(cl);
    return rc;
  }
  cl->async.data = cl;
  cl->async_open = true;
  atomic_store(&cl->async_live, true);
  cl->b->watch = &watch;
  cl->b->watch_ctx = cl;
  *out = cl;
  return 0;
}

int cluster_start(cluster_t *cl) {
  const config_t *cfg = &cl->b->cfg;
  if (cfg->cluster_tls_cert[0] != '\0') {
    char why[512];
    tls_listener_opts_t o = {.cert_file = cfg->cluster_tls_cert,
                             .key_file = cfg->cluster_tls_key,
                             .ca_file = cfg->cluster_tls_ca,
                             .verify = true,
                             .required = true,
                             .detect_ms = cfg->tls_detect_ms};
    if (tls_listener_create(&cl->tls_in, &o, why, sizeof why) != 0 ||
        tls_dialer_create(&cl->tls_out, cfg->cluster_tls_cert,
                          cfg->cluster_tls_key, cfg->cluster_tls_ca, why,
                          sizeof why) != 0) {
      LOG(LOG_ERROR, "cluster: route TLS: %s", why);
      return UV_EINVAL;
    }
  }
  int rc = uv_tcp_init(cl->w->loop, &cl->listener);
  if (rc != 0)
    return rc;
  cl->listener.data = cl;
  cl->listening = true;
  struct sockaddr_storage ss;
  if (uv_ip4_addr(cfg->host, cfg->cluster_port, (struct sockaddr_in *)&ss) !=
          0 &&
      uv_ip6_addr(cfg->host, cfg->cluster_port, (struct sockaddr_in6 *)&ss) !=
          0)
    return UV_EINVAL;
  rc = uv_tcp_bind(&cl->listener, (struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&cl->listener, 128, on_route_conn);
  if (rc != 0)
    return rc;
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  if (uv_tcp_getsockname(&cl->listener, (struct sockaddr *)&bound, &blen) == 0)
    cl->port = ntohs(bound.ss_family == AF_INET6
                         ? ((struct sockaddr_in6 *)&bound)->sin6_port
                         : ((struct sockaddr_in *)&bound)->sin_port);
  if (cfg->cluster_advertise[0] != '\0')
    snprintf(cl->url, sizeof cl->url, "%s", cfg->cluster_advertise);
  else if (strchr(cfg->host, ':') != NULL)
    snprintf(cl->url, sizeof cl->url, "[%s]:%d", cfg->host, cl->port);
  else
    snprintf(cl->url, sizeof cl->url, "%s:%d", cfg->host, cl->port);
  if (cfg->client_advertise[0] != '\0')
    snprintf(cl->client_url, sizeof cl->client_url, "%s",
             cfg->client_advertise);
  else
    snprintf(cl->client_url, sizeof cl->client_url, "tern://%s:%d", cfg->host,
             cfg->port);
  add_seeds(cl, cfg->routes);
  cl->started_at = now_ms(cl);
  if (list_empty(&cl->seeds))
    set_synced(cl, "no seeds");
  rc = uv_timer_init(cl->w->loop, &cl->tick);
  if (rc != 0)
    return rc;
  cl->tick.data = cl;
  cl->ticking = true;
  uv_timer_start(&cl->tick, on_tick, 0, TICK_MS);
  LOG(LOG_INFO, "cluster '%s': node %s, routes on %s (port %d%s)",
      cfg->cluster_name, cl->node, cl->url, cl->port,
      cl->tls_in != NULL ? ", mutual TLS" : "");
  return 0;
}

int cluster_port(const cluster_t *cl) {
  return cl->port;
}

static void on_handle_closed(uv_handle_t *h) {
  (void)h;
}

void cluster_stop(cluster_t *cl) {
  if (cl->stopping)
    return;
  cl->stopping = true;
  if (cl->listening && !uv_is_closing((uv_handle_t *)&cl->listener))
    uv_close((uv_handle_t *)&cl->listener, on_handle_closed);
  if (cl->ticking && !uv_is_closing((uv_handle_t *)&cl->tick))
    uv_close((uv_handle_t *)&cl->tick, on_handle_closed);
  for (list_node_t *n = cl->seeds.next; n != &cl->seeds; n = n->next) {
    seed_t *s = LIST_ENTRY(n, seed_t, link);
    if (s->resolving)
      uv_cancel((uv_req_t *)&s->req);
  }
  for (list_node_t *n = cl->routes.next; n != &cl->routes; n = n->next) {
    route_t *r = LIST_ENTRY(n, route_t, link);
    if (route_live(r))
      conn_goaway(r->c, "server shutting down");
  }
  /* Dials in progress: closed (their callbacks see it and stop). */
  for (list_node_t *n = cl->dials.next; n != &cl->dials; n = n->next) {
    dial_t *d = LIST_ENTRY(n, dial_t, link);
    if (!uv_is_closing((uv_handle_t *)&d->tcp))
      uv_close((uv_handle_t *)&d->tcp, on_dial_closed);
  }
  atomic_store(&cl->async_live, false);
  if (cl->async_open && !uv_is_closing((uv_handle_t *)&cl->async))
    uv_close((uv_handle_t *)&cl->async, on_handle_closed);
}

void cluster_free(cluster_t *cl) {
  if (cl == NULL)
    return;
  if (cl->b->watch_ctx == cl) {
    cl->b->watch = NULL;
    cl->b->watch_ctx = NULL;
  }
  while (!list_empty(&cl->targets)) {
    list_node_t *n = cl->targets.next;
    list_remove(n);
    free(LIST_ENTRY(n, target_t, link));
  }
  while (!list_empty(&cl->seeds)) {
    list_node_t *n = cl->seeds.next;
    list_remove(n);
    free(LIST_ENTRY(n, seed_t, link));
  }
  /* Routes are freed with their connections (route_closed). */
  if (cl->by_id != NULL) {
    size_t pos = 0;
    const void *key;
    size_t klen;
    void *val;
    while (hashmap_next(cl->by_id, &pos, &key, &klen, &val) == 1)
      free(val);
  }
  hashmap_destroy(cl->by_id);
  hashmap_destroy(cl->by_key);
  tls_listener_destroy(cl->tls_in);
  tls_dialer_destroy(cl->tls_out);
  free(cl->dirty);
  tp_buf_free(&cl->out);
  tp_buf_free(&cl->retained_out);
  uv_mutex_destroy(&cl->lock);
  free(cl);
}

size_t cluster_routes_up(const cluster_t *cl) {
  size_t n = 0;
  for (const list_node_t *p = cl->routes.next; p != &cl->routes; p = p->next)
    if (LIST_ENTRY(p, route_t, link)->ready)
      n++;
  return n;
}

/* Appends printf-formatted text to b (dropped when out of memory). */
static void bprintf(tp_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void bprintf(tp_buf_t *b, const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0)
    tp_buf_append(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void json_str(tp_buf_t *b, const char *s) {
  tp_buf_append(b, "\"", 1);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      tp_buf_append(b, "\\", 1);
    if ((unsigned char)*s < 0x20)
      bprintf(b, "\\u%04x", *s);
    else
      tp_buf_append(b, s, 1);
  }
  tp_buf_append(b, "\"", 1);
}

void cluster_routez(cluster_t *cl, tp_buf_t *out) {
  uv_mutex_lock(&cl->lock);
  size_t local = hashmap_size(cl->by_id);
  uv_mutex_unlock(&cl->lock);
  bprintf(out, "{\"cluster\":");
  json_str(out, cl->b->cfg.cluster_name);
  bprintf(out, ",\"node\":");
  json_str(out, cl->node);
  bprintf(out, ",\"route_url\":");
  json_str(out, cl->url);
  bprintf(out,
          ",\"local_interest\":%zu,\"routes_up\":%zu,\"routes_made\":%llu,"
          "\"routes_lost\":%llu,\"routes\":[",
          local, cluster_routes_up(cl), (unsigned long long)cl->routes_made,
          (unsigned long long)cl->routes_lost);
  bool first = true;
  uint64_t now = now_ms(cl);
  for (list_node_t *n = cl->routes.next; n != &cl->routes; n = n->next) {
    route_t *r = LIST_ENTRY(n, route_t, link);
    if (r->c == NULL)
      continue;
    conn_t *c = r->c;
    bprintf(out, "%s{\"node\":", first ? "" : ",");
    first = false;
    json_str(out, r->node);
    bprintf(out, ",\"addr\":");
    json_str(out, c->addr);
    bprintf(out, ",\"url\":");
    json_str(out, r->url);
    bprintf(out, ",\"client_url\":");
    json_str(out, r->client_url);
    bprintf(out,
            ",\"state\":\"%s\",\"dialed\":%s,\"uptime_ms\":%llu,"
            "\"rtt_ms\":%lld,\"remote_interest\":%zu,\"msgs_in\":%llu,"
            "\"msgs_out\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,"
            "\"pending_bytes\":%llu,\"blocked\":%s}",
            r->ready                   ? "up"
            : c->state >= CONN_CLOSING ? "closing"
                                       : "handshake",
            r->outbound ? "true" : "false",
            (unsigned long long)(r->ready ? now - r->up_at : 0),
            (long long)r->rtt_ms, c->subs ? hashmap_size(c->subs) : (size_t)0,
            (unsigned long long)r->msgs_in,
            (unsigned long long)c->out.msgs_written,
            (unsigned long long)c->bytes_in,
            (unsigned long long)c->out.bytes_written,
            (unsigned long long)c->out.bytes,
            conn_is_blocked(c) ? "true" : "false");
  }
  bprintf(out, "]}\n");
}

void cluster_metrics(cluster_t *cl, tp_buf_t *out) {
  uint64_t in = 0, out_msgs = 0, bin = 0, bout = 0, pend = 0, remote = 0;
  for (list_node_t *n = cl->routes.next; n != &cl->routes; n = n->next) {
    route_t *r = LIST_ENTRY(n, route_t, link);
    if (r->c == NULL)
      continue;
    in += r->msgs_in;
    out_msgs += r->c->out.msgs_written;
    bin += r->c->bytes_in;
    bout += r->c->out.bytes_written;
    pend += r->c->out.bytes;
    remote += r->c->subs ? hashmap_size(r->c->subs) : 0;
  }
  uv_mutex_lock(&cl->lock);
  size_t local = hashmap_size(cl->by_id);
  uv_mutex_unlock(&cl->lock);
  bprintf(out,
          "# HELP tern_routes Routes to other nodes that are up.\n"
          "# TYPE tern_routes gauge\ntern_routes %zu\n"
          "# HELP tern_routes_made_total Routes that came up.\n"
          "# TYPE tern_routes_made_total counter\n"
          "tern_routes_made_total %llu\n"
          "# HELP tern_routes_lost_total Routes that went down.\n"
          "# TYPE tern_routes_lost_total counter\n"
          "tern_routes_lost_total %llu\n",
          cluster_routes_up(cl), (unsigned long long)cl->routes_made,
          (unsigned long long)cl->routes_lost);
  bprintf(out,
          "# HELP tern_route_msgs_in_total Messages read from routes (open "
          "ones).\n"
          "# TYPE tern_route_msgs_in_total counter\n"
          "tern_route_msgs_in_total %llu\n"
          "# HELP tern_route_msgs_out_total Messages written to routes (open "
          "ones).\n"
          "# TYPE tern_route_msgs_out_total counter\n"
          "tern_route_msgs_out_total %llu\n"
          "# HELP tern_route_bytes_in_total Bytes read from routes.\n"
          "# TYPE tern_route_bytes_in_total counter\n"
          "tern_route_bytes_in_total %llu\n"
          "# HELP tern_route_bytes_out_total Bytes written to routes.\n"
          "# TYPE tern_route_bytes_out_total counter\n"
          "tern_route_bytes_out_total %llu\n",
          (unsigned long long)in, (unsigned long long)out_msgs,
          (unsigned long long)bin, (unsigned long long)bout);
  bprintf(out,
          "# HELP tern_route_pending_bytes Bytes queued on routes.\n"
          "# TYPE tern_route_pending_bytes gauge\n"
          "tern_route_pending_bytes %llu\n"
          "# HELP tern_route_remote_interest Patterns other nodes want.\n"
          "# TYPE tern_route_remote_interest gauge\n"
          "tern_route_remote_interest %llu\n"
          "# HELP tern_route_local_interest Patterns this node tells.\n"
          "# TYPE tern_route_local_interest gauge\n"
          "tern_route_local_interest %zu\n",
          (unsigned long long)pend, (unsigned long long)remote, local);
}

void cluster_on_synced(cluster_t *cl, void (*fn)(void *ud), void *ud) {
  cl->on_synced = fn;
  cl->synced_ud = ud;
}

bool cluster_synced(const cluster_t *cl) {
  return cl->synced;
}

void cluster_on_route(cluster_t *cl,
                      void (*fn)(void *ud, bool up, const char *node,
                                 const char *addr),
                      void *ud) {
  cl->on_route = fn;
  cl->route_ud = ud;
}

const char *cluster_client_urls(cluster_t *cl) {
  size_t at = 0;
  cl->client_urls[0] = '\0';
  int n =
      snprintf(cl->client_urls, sizeof cl->client_urls, "%s", cl->client_url);
  at = n > 0 ? (size_t)n : 0;
  for (list_node_t *p = cl->routes.next; p != &cl->routes; p = p->next) {
    route_t *r = LIST_ENTRY(p, route_t, link);
    if (!r->ready || r->client_url[0] == '\0')
      continue;
    size_t len = strlen(r->client_url);
    if (at + 1 + len + 1 > sizeof cl->client_urls)
      break;
    cl->client_urls[at++] = ',';
    memcpy(cl->client_urls + at, r->client_url, len + 1);
    at += len;
  }
  return cl->client_urls;
}
