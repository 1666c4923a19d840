/*
 * The operator's side of the server: SIGHUP reload (which also tells $SYS)
 * and the startup warnings, started and stopped by server.c (which starts
 * the monitoring HTTP server and $SYS events itself).
 */
#ifndef TERND_OPS_H
#define TERND_OPS_H

struct server;

/* Once the client listener is up: start times, the line saying whether
 * clients must authenticate, SIGHUP. */
void ops_start(struct server *srv);
/* Shutdown began: no more reloads (closes what ops_start opened). */
void ops_drain(struct server *srv);

/*
 * Reads the configuration again (same command line, same sources) and
 * applies what can change at run time: log level and format, users and
 * token (for new connections), limits for new connections. Anything else
 * that changed is reported as needing a restart. A bad configuration is
 * logged and changes nothing. 0 or -1.
 */
int ops_reload(struct server *srv);

#endif
