/*
 * The server: the listener, signals and operations around a broker_t
 * (what every event loop shares) and its worker_t (one libuv loop: the
 * registry of connections, the pools, and the "before sleep" hook).
 *
 * The before-sleep hook (a uv_prepare_t, run once per loop turn before
 * libuv polls) is where deferred work happens, in this order: connections
 * released from backpressure resume reading their buffered frames; closing
 * connections tear down their subscriptions; every connection with queued
 * output gets one gathered write. Doing this outside the read callbacks
 * batches the writes of a whole turn and keeps frees out of fan-out loops.
 *
 * The session and the delivery core still read these structs field by
 * field (broker/README.md, "Not layered yet"); they are not a public API.
 */
#ifndef TERND_SERVER_H
#define TERND_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "delivery/worker.h"
#include "server/fdlimit.h"
#include "tern_proto/buf.h"

typedef struct server {
  broker_t broker;
  worker_t worker; /* worker.broker and worker.server point back here */

  fd_acceptor_t listener; /* polled once listening (fdlimit.h) */
  uv_signal_t sigint, sigterm;
  bool listening;
  bool shutting_down;
  int handles_open;
  /* Connections (open or closing) that the open-file limit leaves room
   * for beside the monitoring port; 0 = no limit known. */
  size_t fd_budget;
  tp_buf_t err_no_fd; /* the encoded ERR 11 sent when it is reached */

  /* Operations: monitoring, reload, $SYS (ops.h). */
  int argc; /* the command line, read again on SIGHUP */
  char **argv;
  uint64_t started_ms; /* uv_now at init */
  int64_t started_unix;
  int http_port_bound; /* 0: monitoring off */
  struct http_server *http;
  struct sysevents *sys;
  uv_signal_t sighup;
} server_t;

/* Sets up the loop and everything on it (not listening yet). */
int server_init(server_t *srv, uv_loop_t *loop, const config_t *cfg);
/* Binds and listens; logs and returns a libuv error on failure (the
 * caller reports it). Writes the port to cfg.ready_fd when set. */
int server_listen(server_t *srv);
/* Starts the graceful shutdown (also what SIGINT/SIGTERM do). */
void server_shutdown(server_t *srv);
/* Encodes HELLO again (auth_required changed on reload). 0 or TP_ENOMEM. */
int server_hello_update(server_t *srv);
/* After uv_run returned: frees what server_init made. */
void server_free(server_t *srv);

#endif
