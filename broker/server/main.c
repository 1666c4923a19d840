/*
 * ternd: configuration, signals, startup and shutdown. Everything else is
 * in server.c and below.
 */
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "base/config.h"
#include "base/log.h"
#include "server/config_file.h"
#include "server/fdlimit.h"
#include "server/sdnotify.h"
#include "server/server.h"
#include "session/auth.h"

/* --hash-password: one line from stdin (no echo handling: pipe it in). */
static int hash_password(void) {
  char pw[1024];
  if (fgets(pw, sizeof pw, stdin) == NULL) {
    fprintf(stderr, "ternd: no password on stdin\n");
    return 2;
  }
  pw[strcspn(pw, "\r\n")] = '\0';
  if (pw[0] == '\0') {
    fprintf(stderr, "ternd: empty password\n");
    return 2;
  }
  char hash[AUTH_HASH_MAX];
  int rc = auth_hash_password(pw, hash, sizeof hash);
  sodium_memzero(pw, sizeof pw);
  if (rc != 0) {
    fprintf(stderr, "ternd: cannot hash the password (out of memory?)\n");
    return 1;
  }
  printf("%s\n", hash);
  return 0;
}

int main(int argc, char **argv) {
  if (sodium_init() < 0) {
    fprintf(stderr, "ternd: libsodium failed to initialise\n");
    return 1;
  }
  config_t cfg;
  int what = config_load(&cfg, argc, argv, stdout, stderr);
  if (what == CONFIG_EXIT_OK || what == CONFIG_EXIT_USAGE) {
    config_free(&cfg);
    return what == CONFIG_EXIT_OK ? 0 : 2;
  }
  if (what == CONFIG_HASH_PASSWORD) {
    config_free(&cfg);
    return hash_password();
  }
  if (what == CONFIG_CHECK) {
    printf("# %s: valid; the effective configuration (file, environment "
           "and flags):\n",
           cfg.config_file);
    config_print(&cfg, stdout);
    config_free(&cfg);
    return 0;
  }
  log_g_level = (log_level_t)cfg.log_level;
  log_g_format = cfg.log_format;
  log_g_rate_limit = cfg.log_rate_limit;

  long nofile = fdlimit_raise();
  LOG(LOG_DEBUG, "open-file limit %ld", nofile);

  /* A peer that vanishes must be an EPIPE on write, not a dead broker. */
  signal(SIGPIPE, SIG_IGN);

  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) {
    fprintf(stderr, "ternd: cannot create the event loop\n");
    config_free(&cfg);
    return 1;
  }
  server_t srv;
  int rc = server_init(&srv, &loop, &cfg);
  config_free(&cfg); /* the server holds its own reference to the users */
  if (rc != 0) {
    fprintf(stderr, "ternd: out of memory at startup\n");
    return 1;
  }
  srv.argc = argc;
  srv.argv = argv;
  int exit_code = 0;
  rc = server_listen(&srv);
  if (rc != 0) {
    /* The monitoring port logs its own failure; this names the cause. */
    fprintf(stderr, "ternd: cannot start (listening on %s:%d%s): %s\n",
            srv.broker.cfg.host, srv.broker.cfg.port,
            srv.listening ? " worked, monitoring did not" : "",
            uv_strerror(rc));
    exit_code = 1;
    server_shutdown(&srv); /* closes the handles made so far */
  } else {
    /* systemd (Type=notify): both listeners are bound. */
    char status[320];
    snprintf(status, sizeof status, "accepting on %s:%d", srv.broker.cfg.host,
             srv.broker.cfg.port);
    sdnotify_ready(status);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  server_free(&srv);
  rc = uv_loop_close(&loop);
  if (rc != 0) {
    LOG(LOG_ERROR, "event loop not empty at exit: %s", uv_strerror(rc));
    return 1;
  }
  log_flush_suppressed(true);
  if (exit_code == 0)
    LOG(LOG_INFO, "ternd stopped");
  return exit_code;
}
