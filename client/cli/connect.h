/*
 * Connecting the tern command to a broker, with the messages every
 * subcommand prints when that fails.
 */
#ifndef TERN_CLI_CONNECT_H
#define TERN_CLI_CONNECT_H

#include <stdbool.h>

#include <tern/tern.h>

#include "args.h"

/*
 * Fills *o with libtern's defaults plus the server address and client name
 * of *common. A malformed address is a usage error: reported, CLI_EUSAGE.
 * Returns 0 otherwise. The caller may adjust *o before cli_connect.
 */
int cli_options(const cli_command_info_t *info, const cli_common_t *common,
                tern_options_t *o);

/* Writes "HOST:PORT" of *o into buf (brackets around an IPv6 literal). */
void cli_server_name(const tern_options_t *o, char *buf, size_t n);

/*
 * Connects with *o (blocking). On failure prints
 * "tern CMD: cannot connect to HOST:PORT: <why>" and returns the negative
 * libtern error; 0 with *out set (close it with tern_client_close) on
 * success.
 */
int cli_connect(const char *cmd, const tern_options_t *o, tern_client_t **out);

/*
 * Reports a failed operation on an established client: "tern CMD: <what>:
 * <tern_strerror(err)>", followed by the connection's last error text when
 * that adds something (the server's ERR message, the GOAWAY reason).
 */
void cli_report(const char *cmd, tern_client_t *cl, const char *what, int err);

/*
 * Watching the connection (one per process). cli_watch sets o's error and
 * status callbacks, which run on libtern's background thread:
 *  - a frame the broker refused without closing (ERR 3 permission denied,
 *    4, 8, 9, 10, 13) is remembered for cli_watch_refused;
 *  - with reconnect on, losing the connection and getting it back are
 *    printed on stderr at once: "tern CMD: lost the connection to SERVER:
 *    <why>; reconnecting" and "tern CMD: reconnected to SERVER after
 *    S.SSS s away" followed by what_lost, e.g. ": messages published
 *    meanwhile were missed"; with count_pubs, the publishes thrown away at
 *    the loss are counted on that line;
 *  - the reason the connection ended is kept for cli_lost_reason.
 * cmd and what_lost must outlive the client.
 */
void cli_watch(tern_options_t *o, const char *cmd, const char *what_lost,
               bool count_pubs);
/* True for the codes of a broker's refusal (TERN_EPERM, TERN_ETOPIC,
 * TERN_ELIMIT, TERN_ETOOLARGE, TERN_ESERVER). */
bool cli_is_refusal(int err);
/* The first refusal since the last call (TERN_EPERM, ...), or 0. */
int cli_watch_refused(void);
/* Why the connection was lost, once it was: TERN_EGOAWAY for a broker
 * shutting down, the libtern or libuv error otherwise; 0 while up. */
int cli_lost_reason(void);

/*
 * Prints why the connection to server (NULL: the one cli_watch was given)
 * ended: "the broker at SERVER is shutting down (GOAWAY: <reason>)" for a
 * graceful shutdown, else "connection to SERVER closed: <why>".
 */
void cli_report_lost(const char *cmd, tern_client_t *cl, const char *server,
                     int err);

/*
 * Ignores SIGPIPE: libuv writes to sockets without MSG_NOSIGNAL, and a
 * closed stdout pipe must become an error we handle, not a silent death.
 */
void cli_ignore_sigpipe(void);

#endif
