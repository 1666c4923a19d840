/*
 * Connecting the tern command to a broker (see connect.h).
 */
#include "connect.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* The one connection of the process, as seen by cli_watch's callbacks. */
static struct {
  const char *cmd;
  const char *what_lost;
  bool count_pubs;
  char server[TERN_HOST_MAX + 16];
  atomic_int refused;
  atomic_int lost;
} watch;

int cli_options(const cli_command_info_t *info, const cli_common_t *common,
                tern_options_t *o) {
  tern_options_init(o);
  if (tern_options_set_url(o, common->server) != 0) {
    return cli_usage_error(info, "bad server address '%s' (want HOST:PORT)",
                           common->server);
  }
  o->name = common->name;
  o->user = common->user;
  o->pass = common->pass;
  o->token = common->token;
  /* Any TLS option means TLS, with or without tls:// in the address. */
  o->tls_ca_file = common->tls_ca;
  o->tls_cert_file = common->tls_cert;
  o->tls_key_file = common->tls_key;
  o->tls_insecure_skip_verify = common->tls_insecure;
  if (common->tls_ca != NULL || common->tls_cert != NULL ||
      common->tls_insecure) {
    o->tls = true;
  }
  if ((common->tls_cert == NULL) != (common->tls_key == NULL)) {
    return cli_usage_error(info, "--tls-cert and --tls-key go together");
  }
  /* A lost connection ends the command with status 1 and a message, so a
   * script sees it; libtern's automatic reconnect is for long-lived
   * programs that must ride out broker restarts. */
  o->reconnect = false;
  return 0;
}

void cli_server_name(const tern_options_t *o, char *buf, size_t n) {
  const char *scheme = o->tls ? "tls://" : "";
  if (strchr(o->host, ':') != NULL) {
    snprintf(buf, n, "%s[%s]:%d", scheme, o->host, o->port);
  } else {
    snprintf(buf, n, "%s%s:%d", scheme, o->host, o->port);
  }
}

int cli_connect(const char *cmd, const tern_options_t *o, tern_client_t **out) {
  char why[256] = "";
  int rc = tern_client_connect_why(out, o, why, sizeof(why));
  if (rc != 0) {
    char server[TERN_HOST_MAX + 16];
    cli_server_name(o, server, sizeof(server));
    if (why[0] != '\0' && strcmp(why, tern_strerror(rc)) != 0) {
      cli_error(cmd, "cannot connect to %s: %s (%s)", server, tern_strerror(rc),
                why);
    } else {
      cli_error(cmd, "cannot connect to %s: %s", server, tern_strerror(rc));
    }
    return rc;
  }
  return 0;
}

void cli_report(const char *cmd, tern_client_t *cl, const char *what, int err) {
  char detail[256];
  const char *text = tern_strerror(err);
  detail[0] = '\0';
  if (cl != NULL) {
    tern_client_last_error(cl, detail, sizeof(detail));
  }
  if (detail[0] != '\0' && strncmp(detail, text, strlen(text)) == 0) {
    /* The broker's text says it all: "permission denied: publish to 'x'" */
    cli_error(cmd, "%s: %s", what, detail);
  } else if (detail[0] != '\0') {
    cli_error(cmd, "%s: %s (%s)", what, text, detail);
  } else {
    cli_error(cmd, "%s: %s", what, text);
  }
}

/* The wire codes of refusals that leave the connection open. */
static bool is_refusal(int wire_code) {
  switch (wire_code) {
  case 3:
  case 4:
  case 8:
  case 9:
  case 10:
  case 13:
    return true;
  default:
    return false;
  }
}

static void on_error(tern_conn_t *conn, int err, int wire_code,
                     const char *text, void *cb_data) {
  int none = 0;
  (void)conn;
  (void)text;
  (void)cb_data;
  if (is_refusal(wire_code)) {
    atomic_compare_exchange_strong(&watch.refused, &none, err);
  }
}

/* Why a connection was lost, for people: the GOAWAY reason (the
 * connection's last error text then) or the error's text. */
static void describe_loss(tern_conn_t *conn, int reason, char *buf, size_t n) {
  if (reason == TERN_EGOAWAY) {
    snprintf(buf, n, "the broker is shutting down (GOAWAY: %s)",
             tern_conn_last_error(conn));
  } else {
    const char *detail = tern_conn_last_error(conn);
    snprintf(buf, n, "%s", detail[0] != '\0' ? detail : tern_strerror(reason));
  }
}

static void on_status(tern_conn_t *conn, const tern_status_event_t *ev,
                      void *cb_data) {
  char why[TERN_HOST_MAX + 64];
  (void)cb_data;
  switch (ev->status) {
  case TERN_STATUS_DISCONNECTED:
    atomic_store(&watch.lost, ev->reason);
    if (watch.what_lost != NULL) {
      describe_loss(conn, ev->reason, why, sizeof(why));
      fprintf(stderr, "tern %s: lost the connection to %s: %s; reconnecting\n",
              watch.cmd, watch.server, why);
    }
    break;
  case TERN_STATUS_CONNECTED:
    if (ev->attempts > 0) {
      atomic_store(&watch.lost, 0);
      if (watch.count_pubs) {
        char inflight[64] = "";
        if (ev->pubs_in_flight > 0) {
          snprintf(inflight, sizeof(inflight),
                   " (and up to %llu being written then)",
                   (unsigned long long)ev->pubs_in_flight);
        }
        fprintf(stderr,
                "tern %s: reconnected to %s after %.3f s away: %llu "
                "unsent publishes dropped at the disconnect%s%s\n",
                watch.cmd, watch.server, (double)ev->down_ms / 1000.0,
                (unsigned long long)(ev->pubs_discarded), inflight,
                watch.what_lost != NULL ? watch.what_lost : "");
      } else {
        fprintf(stderr, "tern %s: reconnected to %s after %.3f s away%s\n",
                watch.cmd, watch.server, (double)ev->down_ms / 1000.0,
                watch.what_lost != NULL ? watch.what_lost : "");
      }
    }
    break;
  case TERN_STATUS_CLOSED:
    if (atomic_load(&watch.lost) == 0) {
      atomic_store(&watch.lost, ev->reason);
    }
    break;
  default:
    break;
  }
}

void cli_watch(tern_options_t *o, const char *cmd, const char *what_lost,
               bool count_pubs) {
  watch.cmd = cmd;
  watch.what_lost = o->reconnect ? what_lost : NULL;
  watch.count_pubs = count_pubs;
  cli_server_name(o, watch.server, sizeof(watch.server));
  o->error_cb = on_error;
  o->status_event_cb = on_status;
}

bool cli_is_refusal(int err) {
  return err == TERN_EPERM || err == TERN_ETOPIC || err == TERN_ELIMIT ||
         err == TERN_ETOOLARGE || err == TERN_ESERVER;
}

int cli_watch_refused(void) {
  return atomic_exchange(&watch.refused, 0);
}

int cli_lost_reason(void) {
  return atomic_load(&watch.lost);
}

void cli_report_lost(const char *cmd, tern_client_t *cl, const char *server,
                     int err) {
  char detail[256];
  if (server == NULL) {
    server = watch.server;
  }
  tern_client_last_error(cl, detail, sizeof(detail));
  if (cli_lost_reason() == TERN_EGOAWAY) {
    cli_error(cmd, "the broker at %s is shutting down (GOAWAY: %s)", server,
              detail);
  } else {
    cli_error(cmd, "connection to %s closed: %s", server,
              detail[0] != '\0' ? detail : tern_strerror(err));
  }
}

void cli_ignore_sigpipe(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}
