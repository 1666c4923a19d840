/*
 * The operator's side of the server: the monitoring HTTP server, $SYS
 * events, SIGHUP reload and the startup warnings, started and stopped with
 * the server.
 */
#ifndef TERND_OPS_H
#define TERND_OPS_H

struct server;

/* Once the client listener is up. 0, or a libuv error (e.g. the HTTP port
 * is taken); what was started is stopped by ops_stop. */
int ops_start(struct server *srv);
/* Shutdown began: no more reloads (monitoring stays up, saying 503). */
void ops_drain(struct server *srv);
/* The last connection is gone: close everything ops_start opened. */
void ops_stop(struct server *srv);

/*
 * Reads the configuration again (same command line, same sources) and
 * applies what can change at run time: log level and format, users and
 * token (for new connections), limits for new connections. Anything else
 * that changed is reported as needing a restart. A bad configuration is
 * logged and changes nothing. 0 or -1.
 */
int ops_reload(struct server *srv);

#endif
