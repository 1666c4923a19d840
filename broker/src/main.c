/*
 * ternd: flags, signals, startup and shutdown. Everything else is in
 * server.c and below.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "config.h"
#include "fdlimit.h"
#include "log.h"
#include "server.h"

int main(int argc, char **argv) {
  config_t cfg;
  config_defaults(&cfg);
  int what = config_parse(&cfg, argc, argv, stdout, stderr);
  if (what == CONFIG_EXIT_OK)
    return 0;
  if (what == CONFIG_EXIT_USAGE)
    return 2;
  log_g_level = (log_level_t)cfg.log_level;

  long nofile = fdlimit_raise();
  LOG(LOG_DEBUG, "open-file limit %ld", nofile);

  /* A peer that vanishes must be an EPIPE on write, not a dead broker. */
  signal(SIGPIPE, SIG_IGN);

  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) {
    fprintf(stderr, "ternd: cannot create the event loop\n");
    return 1;
  }
  server_t srv;
  int rc = server_init(&srv, &loop, &cfg);
  if (rc != 0) {
    fprintf(stderr, "ternd: out of memory at startup\n");
    return 1;
  }
  int exit_code = 0;
  rc = server_listen(&srv);
  if (rc != 0) {
    fprintf(stderr, "ternd: cannot listen on %s:%d: %s\n", cfg.host, cfg.port,
            uv_strerror(rc));
    exit_code = 1;
    server_shutdown(&srv); /* closes the handles made so far */
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  server_free(&srv);
  rc = uv_loop_close(&loop);
  if (rc != 0) {
    LOG(LOG_ERROR, "event loop not empty at exit: %s", uv_strerror(rc));
    return 1;
  }
  if (exit_code == 0)
    LOG(LOG_INFO, "ternd stopped");
  return exit_code;
}
