/*
 * The server's state: the broker_t (what every event loop shares), its
 * worker_t (one loop) and what is around them (listener, signals,
 * monitoring). The server's parts (ops.h, http.h, metrics.h, sysevents.h)
 * read it; only server.c starts and stops them, in its order, so none of
 * them includes server.h.
 */
#ifndef TERND_SERVER_STATE_H
#define TERND_SERVER_STATE_H

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
  struct tls_listener *tls; /* its TLS (transport/tls.h); NULL: none */
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
  /* Set by server_init: encodes HELLO again (a reload changed whether
   * credentials are asked for). 0 or TP_ENOMEM. */
  int (*hello_update)(struct server *srv);
  /* Durable streams (stream/streams.h); NULL without a data_dir. */
  struct streams *streams;
} server_t;

#endif
