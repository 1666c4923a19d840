/*
 * Operations lifecycle and reload (see ops.h).
 */
#include "server/ops.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "server/config_file.h"
#include "server/sdnotify.h"
#include "server/state.h"
#include "server/sysevents.h"
#include "session/auth.h"
#include "session/conn.h"

static void on_sighup(uv_signal_t *h, int signum) {
  (void)signum;
  server_t *srv = h->data;
  LOG(LOG_INFO, "SIGHUP received, reloading the configuration");
  sdnotify_reloading();
  sdnotify_ready(ops_reload(srv) == 0
                     ? "reloaded"
                     : "reload failed: the configuration is unchanged");
}

bool ops_is_loopback(const char *host) {
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

static void warn_if_open(const server_t *srv) {
  if (srv->broker.cfg.users == NULL && srv->broker.cfg.auth_token[0] == '\0' &&
      !ops_is_loopback(srv->broker.cfg.host))
    LOG(LOG_WARN,
        "listening on %s with no authentication: anyone who can reach "
        "this address may publish and subscribe (set auth_token or "
        "[user NAME] sections)",
        srv->broker.cfg.host);
}

void ops_start(server_t *srv) {
  srv->started_ms = uv_now(srv->worker.loop);
  srv->started_unix = (int64_t)time(NULL);
  warn_if_open(srv);
  uv_signal_init(srv->worker.loop, &srv->sighup);
  srv->sighup.data = srv;
  uv_signal_start(&srv->sighup, on_sighup, SIGHUP);
}

void ops_drain(server_t *srv) {
  /* signal_cb is set only once ops_start has initialised the handle. */
  if (srv->sighup.signal_cb != NULL &&
      !uv_is_closing((uv_handle_t *)&srv->sighup))
    uv_close((uv_handle_t *)&srv->sighup, NULL);
}

/* Logs every line of a captured error text. */
static void log_lines(log_level_t level, char *text) {
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
    LOG(level, "reload: %s", line);
}

static int apply(server_t *srv, config_t *nextp);

int ops_reload(server_t *srv) {
  config_t next;
  char *errtext = NULL;
  size_t errlen = 0;
  FILE *err = open_memstream(&errtext, &errlen);
  if (err == NULL) {
    LOG(LOG_ERROR, "reload: out of memory");
    return -1;
  }
  int mode = config_load(&next, srv->argc, srv->argv, err, err);
  fclose(err);
  if (mode != CONFIG_RUN) {
    log_lines(LOG_ERROR, errtext);
    LOG(LOG_ERROR, "reload failed: the configuration is unchanged");
    sysevents_reload(srv, 0);
    free(errtext);
    config_free(&next);
    return -1;
  }
  free(errtext);
  /* Every other worker reads the configuration: they wait while it
   * changes. */
  srv->pause_others(srv);
  int rc = apply(srv, &next);
  srv->resume_others(srv);
  config_free(&next);
  sysevents_reload(srv, rc == 0);
  return rc;
}

/* Applies a configuration that loaded (the other workers paused). */
static int apply(server_t *srv, config_t *nextp) {
  config_t next = *nextp;
  config_t *cur = &srv->broker.cfg;
  /* What only a restart can change. */
  if (strcmp(next.host, cur->host) != 0 ||
      (next.port != cur->port && next.port != 0) ||
      next.http_port != cur->http_port ||
      strcmp(next.http_host, cur->http_host) != 0 ||
      next.max_payload != cur->max_payload ||
      next.heartbeat_ms != cur->heartbeat_ms ||
      next.sys_interval_ms != cur->sys_interval_ms ||
      (next.max_inbound_total != 0 &&
       next.max_inbound_total != cur->max_inbound_total))
    LOG(LOG_WARN, "reload: host, port, http_host, http_port, max_payload, "
                  "heartbeat_ms, sys_interval_ms and max_inbound_total need "
                  "a restart; their old values stay");

  log_g_level = (log_level_t)next.log_level;
  log_g_format = next.log_format;
  log_g_rate_limit = next.log_rate_limit;
  cur->log_level = next.log_level;
  cur->log_format = next.log_format;
  cur->log_rate_limit = next.log_rate_limit;
  cur->max_connections = next.max_connections;
  cur->max_subs = next.max_subs;
  cur->max_pattern_bytes = next.max_pattern_bytes;
  cur->frame_timeout_ms = next.frame_timeout_ms;
  cur->max_pending_msgs = next.max_pending_msgs;
  cur->max_pending_bytes = next.max_pending_bytes;
  cur->connect_timeout_ms = next.connect_timeout_ms;
  cur->stall_timeout_ms = next.stall_timeout_ms;
  cur->drain_timeout_ms = next.drain_timeout_ms;
  cur->http_timeout_ms = next.http_timeout_ms;
  /* Connections keep the users database they authenticated with. */
  bool was_required = cur->users != NULL || cur->auth_token[0] != '\0';
  auth_db_unref(cur->users);
  cur->users = next.users;
  next.users = NULL;
  memcpy(cur->auth_token, next.auth_token, sizeof cur->auth_token);
  cur->auth_queue = next.auth_queue;
  cur->auth_fail_limit = next.auth_fail_limit;
  cur->auth_fail_window_ms = next.auth_fail_window_ms;
  cur->auth_cache_size = next.auth_cache_size;
  cur->auth_cache_ttl_ms = next.auth_cache_ttl_ms;
  for (int i = 0; i < srv->broker.nworkers; i++)
    conn_auth_reconfigure(srv->broker.workers[i]); /* forgets logins */
  bool required = cur->users != NULL || cur->auth_token[0] != '\0';
  if (required != was_required && srv->hello_update(srv) != 0)
    LOG(LOG_ERROR, "reload: out of memory updating HELLO");
  LOG(LOG_INFO, "reload done: log level %s, %zu users%s",
      log_level_name(cur->log_level), cur->users ? cur->users->n : 0,
      cur->auth_token[0] ? ", token set" : "");
  nextp->users = NULL; /* taken */
  return 0;
}
