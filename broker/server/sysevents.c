/*
 * $SYS statistics and advisories (see sysevents.h).
 */
#include "server/sysevents.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "delivery/router.h"
#include "server/metrics.h"
#include "server/state.h"
#include "session/conn.h"

#define SYS_MAX_QUEUED 1024

typedef struct sys_event {
  struct sys_event *next;
  const char *topic; /* static */
  size_t len;
  char body[]; /* JSON */
} sys_event_t;

typedef struct sysevents {
  server_t *srv;
  uv_timer_t stats_timer, flush_timer;
  uv_async_t kick; /* several workers: another worker queued an advisory */
  uv_mutex_t lock; /* the queue, with several workers */
  int handles_open;
  bool stopping;
  sys_event_t *head, *tail;
  size_t queued;
  uint64_t lost; /* advisories dropped because the queue was full */
} sysevents_t;

/* Publishes one message from the server itself (never blocks). */
static void publish(server_t *srv, const char *topic, const void *body,
                    size_t len) {
  tp_pub_t pub;
  memset(&pub, 0, sizeof pub);
  pub.topic.ptr = topic;
  pub.topic.len = (uint32_t)strlen(topic);
  pub.payload.ptr = body;
  pub.payload.len = (uint32_t)len;
  uint64_t receivers = 0;
  /* The router counts every PUB as a message in; the server's own are
   * not clients' traffic (they still count as messages out). */
  uint64_t msgs_in = srv->worker.stats.msgs_in,
           bytes_in = srv->worker.stats.bytes_in;
  int rc = router_publish(&srv->worker, NULL, &pub, &receivers);
  srv->worker.stats.msgs_in = msgs_in;
  srv->worker.stats.bytes_in = bytes_in;
  if (rc != 0)
    LOG(LOG_WARN, "$SYS: out of memory publishing %s", topic);
}

static void on_flush(uv_timer_t *t) {
  sysevents_t *se = t->data;
  uv_mutex_lock(&se->lock);
  sys_event_t *e = se->head;
  se->head = se->tail = NULL;
  se->queued = 0;
  uv_mutex_unlock(&se->lock);
  while (e != NULL) {
    sys_event_t *next = e->next;
    publish(se->srv, e->topic, e->body, e->len);
    free(e);
    e = next;
  }
}

static void on_kick(uv_async_t *a) {
  sysevents_t *se = a->data;
  if (!se->stopping && !uv_is_active((uv_handle_t *)&se->flush_timer))
    uv_timer_start(&se->flush_timer, on_flush, 0, 0);
}

static void on_stats(uv_timer_t *t) {
  sysevents_t *se = t->data;
  tp_buf_t b;
  tp_buf_init(&b);
  se->srv->pause_others(se->srv);
  int rc = metrics_varz(se->srv, &b);
  se->srv->resume_others(se->srv);
  if (rc == 0)
    publish(se->srv, "$SYS.server.stats", b.data, b.len);
  tp_buf_free(&b);
}

/* Queues body for topic; flushed on worker 0's next loop turn (from
 * another worker, through a wake-up of worker 0). */
static void enqueue(sysevents_t *se, int wid, const char *topic,
                    const tp_buf_t *b) {
  sys_event_t *e = malloc(sizeof *e + b->len);
  if (e == NULL)
    return;
  e->next = NULL;
  e->topic = topic;
  e->len = b->len;
  memcpy(e->body, b->data, b->len);
  uv_mutex_lock(&se->lock);
  if (se->queued >= SYS_MAX_QUEUED) {
    se->lost++;
    uv_mutex_unlock(&se->lock);
    free(e);
    return;
  }
  if (se->tail != NULL)
    se->tail->next = e;
  else
    se->head = e;
  se->tail = e;
  se->queued++;
  uv_mutex_unlock(&se->lock);
  if (wid != 0)
    uv_async_send(&se->kick);
  else if (!uv_is_active((uv_handle_t *)&se->flush_timer))
    uv_timer_start(&se->flush_timer, on_flush, 0, 0);
}

void sysevents_reload(server_t *srv, int ok) {
  sysevents_t *se = srv->sys;
  if (se == NULL || se->stopping)
    return;
  tp_buf_t b;
  tp_buf_init(&b);
  const char *body = ok ? "{\"ok\":true}" : "{\"ok\":false}";
  if (tp_buf_append(&b, body, strlen(body)) == 0)
    enqueue(se, 0, "$SYS.server.reload", &b);
  tp_buf_free(&b);
}

void sysevents_route(server_t *srv, bool up, const char *node,
                     const char *addr) {
  sysevents_t *se = srv->sys;
  if (se == NULL || se->stopping)
    return;
  tp_buf_t b;
  tp_buf_init(&b);
  int rc = tp_buf_append(&b, "{\"node\":", 8);
  rc |= metrics_json_str(&b, node, strlen(node));
  rc |= tp_buf_append(&b, ",\"addr\":", 8);
  rc |= metrics_json_str(&b, addr, strlen(addr));
  rc |= tp_buf_append(&b, ",\"server_id\":", 13);
  rc |= metrics_json_str(&b, srv->broker.server_id,
                         strlen(srv->broker.server_id));
  rc |= tp_buf_append(&b, "}", 1);
  if (rc == 0)
    enqueue(se, 0, up ? "$SYS.route.up" : "$SYS.route.down", &b);
  tp_buf_free(&b);
}

void sysevents_stream(void *srv, const char *topic, const char *json,
                      size_t len) {
  sysevents_t *se = ((server_t *)srv)->sys;
  if (se == NULL || se->stopping)
    return;
  tp_buf_t b;
  tp_buf_init(&b);
  if (tp_buf_append(&b, json, len) == 0)
    enqueue(se, 0, topic, &b); /* streams run on worker 0 */
  tp_buf_free(&b);
}

/* Queues an advisory about c. */
static void advise(server_t *srv, const char *topic, conn_t *c) {
  sysevents_t *se = srv->sys;
  if (se == NULL || se->stopping)
    return;
  tp_buf_t b;
  tp_buf_init(&b);
  char num[48];
  snprintf(num, sizeof num,
           "{\"cid\":%llu,\"addr\":", (unsigned long long)c->id);
  int rc = tp_buf_append(&b, num, strlen(num));
  rc |= metrics_json_str(&b, c->addr, strlen(c->addr));
  rc |= tp_buf_append(&b, ",\"name\":", 8);
  rc |= c->name ? metrics_json_str(&b, c->name, strlen(c->name))
                : tp_buf_append(&b, "null", 4);
  rc |= tp_buf_append(&b, ",\"user\":", 8);
  rc |= c->auth_user ? metrics_json_str(&b, c->auth_user, strlen(c->auth_user))
                     : tp_buf_append(&b, "null", 4);
  snprintf(num, sizeof num, ",\"server_id\":\"%s\"}", srv->broker.server_id);
  rc |= tp_buf_append(&b, num, strlen(num));
  if (rc == 0)
    enqueue(se, c->w->wid, topic, &b);
  tp_buf_free(&b);
}

void sysevents_connect(server_t *srv, conn_t *c) {
  advise(srv, "$SYS.conn.connect", c);
}
void sysevents_disconnect(server_t *srv, conn_t *c) {
  advise(srv, "$SYS.conn.disconnect", c);
}
void sysevents_slow_consumer(server_t *srv, conn_t *c) {
  advise(srv, "$SYS.conn.slow_consumer", c);
}
void sysevents_auth_failure(server_t *srv, conn_t *c) {
  advise(srv, "$SYS.auth.failure", c);
}

static void on_closed(uv_handle_t *h) {
  sysevents_t *se = h->data;
  if (--se->handles_open == 0) {
    uv_mutex_destroy(&se->lock);
    free(se);
  }
}

int sysevents_start(server_t *srv) {
  sysevents_t *se = calloc(1, sizeof *se);
  if (se == NULL)
    return -1;
  se->srv = srv;
  uv_timer_init(srv->worker.loop, &se->stats_timer);
  uv_timer_init(srv->worker.loop, &se->flush_timer);
  uv_async_init(srv->worker.loop, &se->kick, on_kick);
  uv_mutex_init(&se->lock);
  se->stats_timer.data = se;
  se->flush_timer.data = se;
  se->kick.data = se;
  se->handles_open = 3;
  if (srv->broker.cfg.sys_interval_ms > 0)
    uv_timer_start(&se->stats_timer, on_stats, srv->broker.cfg.sys_interval_ms,
                   srv->broker.cfg.sys_interval_ms);
  srv->sys = se;
  return 0;
}

void sysevents_stop(server_t *srv) {
  sysevents_t *se = srv->sys;
  if (se == NULL)
    return;
  srv->sys = NULL;
  se->stopping = true;
  sys_event_t *e;
  while ((e = se->head) != NULL) {
    se->head = e->next;
    free(e);
  }
  uv_close((uv_handle_t *)&se->stats_timer, on_closed);
  uv_close((uv_handle_t *)&se->flush_timer, on_closed);
  uv_close((uv_handle_t *)&se->kick, on_closed);
}
