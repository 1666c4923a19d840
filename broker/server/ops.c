/*
 * Operations lifecycle and reload (see ops.h).
 */
#include "server/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "server/config_file.h"
#include "server/http.h"
#include "server/sdnotify.h"
#include "server/state.h"
#include "server/sysevents.h"
#include "session/auth.h"
#include "session/conn.h"
#include "stream/streams.h"
#include "transport/tls.h"

static void on_sighup(uv_signal_t *h, int signum) {
  (void)signum;
  server_t *srv = h->data;
  LOG(LOG_INFO, "SIGHUP received, reloading the configuration");
  sdnotify_reloading();
  sdnotify_ready(ops_reload(srv) == 0
                     ? "reloaded"
                     : "reload failed: the configuration is unchanged");
}

/* The startup line that says whether clients must authenticate (a
 * non-loopback host without it got this far only with allow_anonymous). */
static void log_auth_mode(const config_t *cfg) {
  size_t nusers = cfg->users != NULL ? cfg->users->n : 0;
  if (config_auth_required(cfg))
    LOG(LOG_INFO, "authentication required:%s%s%s", nusers > 0 ? " users" : "",
        cfg->auth_token[0] ? " token" : "",
        config_mtls_only(cfg) ? " client-certificates" : "");
  else if (config_is_loopback(cfg->host))
    LOG(LOG_INFO,
        "no authentication: anonymous clients accepted on loopback %s "
        "only (any other address needs auth_token, [user NAME] sections "
        "or --allow-anonymous)",
        cfg->host);
  else
    LOG(LOG_WARN,
        "no authentication (allow_anonymous): anyone who can reach %s may "
        "publish and subscribe",
        cfg->host);
}

void ops_start(server_t *srv) {
  srv->started_ms = uv_now(srv->worker.loop);
  srv->started_unix = (int64_t)time(NULL);
  log_auth_mode(&srv->broker.cfg);
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

/* The certificate, key and CA read again: new connections get them, open
 * ones keep theirs; a file that does not load keeps the old ones. */
static void reload_tls(server_t *srv, const config_t *next) {
  config_t *cur = &srv->broker.cfg;
  if (srv->tls == NULL) {
    if (next->tls_cert[0] != '\0')
      LOG(LOG_WARN, "reload: TLS was off at start: turning it on needs a "
                    "restart");
    return;
  }
  if (next->tls_cert[0] == '\0') {
    LOG(LOG_WARN, "reload: TLS stays on (turning it off needs a restart)");
    return;
  }
  char why[512];
  tls_listener_opts_t o = config_tls_opts(next);
  if (tls_listener_reload(srv->tls, &o, why, sizeof why) != 0) {
    LOG(LOG_ERROR, "reload: TLS: %s; the old certificate stays", why);
    return;
  }
  snprintf(cur->tls_cert, sizeof cur->tls_cert, "%s", next->tls_cert);
  snprintf(cur->tls_key, sizeof cur->tls_key, "%s", next->tls_key);
  snprintf(cur->tls_ca, sizeof cur->tls_ca, "%s", next->tls_ca);
  cur->tls_verify = next->tls_verify;
  cur->tls_required = next->tls_required;
  cur->tls_detect_ms = next->tls_detect_ms;
  snprintf(cur->tls_ciphers, sizeof cur->tls_ciphers, "%s", next->tls_ciphers);
  snprintf(cur->tls_ciphersuites, sizeof cur->tls_ciphersuites, "%s",
           next->tls_ciphersuites);
  char subject[256];
  tls_listener_subject(srv->tls, subject, sizeof subject);
  LOG(LOG_INFO, "reload: TLS certificate %s (%s) loaded for new connections",
      cur->tls_cert, subject);
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
  /* The secure-by-default rule again, on the host in use: a new host
   * waits for a restart. */
  char why[1024];
  snprintf(next.host, sizeof next.host, "%s", cur->host);
  if (config_check_exposure(&next, why, sizeof why) != 0) {
    LOG(LOG_ERROR, "reload: %s", why);
    LOG(LOG_ERROR, "reload failed: the configuration is unchanged");
    return -1; /* ops_reload frees next and tells $SYS */
  }
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
  cur->allow_anonymous = next.allow_anonymous;
  memcpy(cur->http_token, next.http_token, sizeof cur->http_token);
  memcpy(cur->http_open_paths, next.http_open_paths,
         sizeof cur->http_open_paths);
  cur->http_tls_required = next.http_tls_required;
  /* Connections keep the users database they authenticated with. */
  bool was_required = config_auth_required(cur);
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
  /* Streams of the file: created or updated (stream/streams.h). */
  if (strcmp(next.data_dir, cur->data_dir) != 0)
    LOG(LOG_WARN, "reload: data_dir needs a restart; the old one stays");
  if (srv->streams != NULL)
    streams_reload(srv->streams, next.streams);
  stream_defs_free(cur->streams);
  cur->streams = next.streams;
  reload_tls(srv, &next);
  if (srv->http != NULL)
    http_reload_tls(srv->http); /* the certificate reload_tls took */
  bool required = config_auth_required(cur);
  if (required != was_required && srv->hello_update(srv) != 0)
    LOG(LOG_ERROR, "reload: out of memory updating HELLO");
  LOG(LOG_INFO, "reload done: log level %s, %zu users%s",
      log_level_name(cur->log_level), cur->users ? cur->users->n : 0,
      cur->auth_token[0] ? ", token set" : "");
  nextp->users = NULL;   /* taken */
  nextp->streams = NULL; /* taken */
  return 0;
}
