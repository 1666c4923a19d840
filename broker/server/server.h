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
 * server_t itself is in server/state.h, read by the server's parts
 * (ops, HTTP, metrics, $SYS), which server.c starts and stops.
 */
#ifndef TERND_SERVER_H
#define TERND_SERVER_H

#include <uv.h>

#include "server/state.h"

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
