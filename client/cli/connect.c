/*
 * Connecting the tern command to a broker (see connect.h).
 */
#include "connect.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

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
  /* A lost connection ends the command with status 1 and a message, so a
   * script sees it; libtern's automatic reconnect is for long-lived
   * programs that must ride out broker restarts. */
  o->reconnect = false;
  return 0;
}

void cli_server_name(const tern_options_t *o, char *buf, size_t n) {
  if (strchr(o->host, ':') != NULL) {
    snprintf(buf, n, "[%s]:%d", o->host, o->port);
  } else {
    snprintf(buf, n, "%s:%d", o->host, o->port);
  }
}

int cli_connect(const char *cmd, const tern_options_t *o, tern_client_t **out) {
  int rc = tern_client_connect(out, o);
  if (rc != 0) {
    char server[TERN_HOST_MAX + 16];
    cli_server_name(o, server, sizeof(server));
    cli_error(cmd, "cannot connect to %s: %s", server, tern_strerror(rc));
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
  if (detail[0] != '\0' && strcmp(detail, text) != 0) {
    cli_error(cmd, "%s: %s (%s)", what, text, detail);
  } else {
    cli_error(cmd, "%s: %s", what, text);
  }
}

void cli_ignore_sigpipe(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}
