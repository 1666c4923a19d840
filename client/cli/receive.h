/*
 * The receiving side shared by `tern sub` and `tern reply`: subscribing,
 * waiting for the next message while watching for a stop signal, and
 * printing what arrived, each with the messages the commands print when
 * it fails.
 */
#ifndef TERN_CLI_RECEIVE_H
#define TERN_CLI_RECEIVE_H

#include <stdint.h>

#include <tern/tern.h>

#include "output.h"

/*
 * Subscribes cl to pattern (blocking until the broker has it). On failure
 * prints "tern CMD: invalid WHAT 'PATTERN'" for a malformed pattern, else
 * "tern CMD: subscribe failed: <why>", and returns the negative libtern
 * error; the caller still owns cl. 0 with *out set on success.
 */
int cli_subscribe(const char *cmd, tern_client_t *cl, const char *pattern,
                  const char *what, const tern_sub_opts_t *sopts,
                  tern_sub_t **out);

/*
 * Waits for the next message of sub, checking for a stop signal every
 * CLI_STOP_POLL_MS. Returns 1 with *out set (release it), 0 once a stop
 * is requested, or -1 when the connection to server is gone (reported as
 * "tern CMD: connection to SERVER closed: <why>"). With dropped_seen,
 * reports on stderr after every wait how many messages the broker dropped
 * since the count in *dropped_seen, and updates it.
 */
int cli_next_msg(const char *cmd, tern_client_t *cl, tern_sub_t *sub,
                 const char *server, uint64_t *dropped_seen, tern_msg_t **out);

/*
 * Prints message number seq on stdout in fmt. Returns 0, or -1 when stdout
 * failed; that is reported unless the reader went away (EPIPE).
 */
int cli_print_received(const char *cmd, uint64_t seq, const tern_msg_t *m,
                       cli_format_t fmt);

#endif
