/*
 * The receiving side shared by `tern sub` and `tern reply`: subscribing,
 * waiting for the next message while watching for a stop signal, and
 * printing what arrived, each with the messages the commands print when
 * it fails.
 */
#ifndef TERN_CLI_RECEIVE_H
#define TERN_CLI_RECEIVE_H

#include <stdbool.h>
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

/* Drops the broker reported for a subscription, as told on stderr. */
typedef struct cli_drops {
  uint64_t seen;    /* dropped messages already reported */
  uint64_t last_ms; /* monotonic ms of the last line */
  bool printed;
} cli_drops_t;

/* At most one "dropped N messages" line per this many ms. */
#define CLI_DROPS_INTERVAL_MS 1000
/* How often a waiting or sleeping subscriber looks for new drops. */
#define CLI_DROPS_POLL_MS 100

/*
 * Prints "tern CMD: dropped N messages" on stderr for the drops reported
 * since the last line: at once, but at most once per
 * CLI_DROPS_INTERVAL_MS unless force (the last line, on exit).
 */
void cli_report_drops(const char *cmd, tern_sub_t *sub, cli_drops_t *d,
                      bool force);

/* Sleeps ms (cut short by a stop request), reporting drops as they come. */
void cli_sleep_reporting(const char *cmd, tern_sub_t *sub, cli_drops_t *d,
                         uint64_t ms);

/*
 * Waits for the next message of sub, checking for a stop signal every
 * CLI_DROPS_POLL_MS. Returns 1 with *out set (release it), 0 once a stop
 * is requested, or -1 when the connection to server is gone (reported by
 * cli_report_lost: "tern CMD: connection to SERVER closed: <why>", or that
 * the broker is shutting down). With drops, reports new drops as
 * cli_report_drops does.
 */
int cli_next_msg(const char *cmd, tern_client_t *cl, tern_sub_t *sub,
                 const char *server, cli_drops_t *drops, tern_msg_t **out);

/*
 * Prints message number seq on stdout in fmt. Returns 0, or -1 when stdout
 * failed; that is reported unless the reader went away (EPIPE).
 */
int cli_print_received(const char *cmd, uint64_t seq, const tern_msg_t *m,
                       cli_format_t fmt);

#endif
