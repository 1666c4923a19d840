/*
 * Connecting the tern command to a broker, with the messages every
 * subcommand prints when that fails.
 */
#ifndef TERN_CLI_CONNECT_H
#define TERN_CLI_CONNECT_H

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
 * Ignores SIGPIPE: libuv writes to sockets without MSG_NOSIGNAL, and a
 * closed stdout pipe must become an error we handle, not a silent death.
 */
void cli_ignore_sigpipe(void);

#endif
