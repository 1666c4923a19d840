/*
 * SIGINT/SIGTERM as a request to stop, for the long-running subcommands
 * (sub, reply): they finish the message in hand, clean up and exit 0.
 */
#ifndef TERN_CLI_STOP_H
#define TERN_CLI_STOP_H

#include <stdbool.h>
#include <stdint.h>

/* Installs the handlers (without SA_RESTART, so sleeps are cut short). */
void cli_stop_install(void);

/* True once SIGINT or SIGTERM has arrived. */
bool cli_stop_requested(void);

/* Sleeps ms milliseconds, or less when a stop is requested. */
void cli_sleep_ms(uint64_t ms);

/* How long a wait for a message may last before the loop looks at the
 * stop flag again: a signal handler cannot safely wake a thread blocked in
 * tern_sub_next, so the loops poll. */
#define CLI_STOP_POLL_MS 200

#endif
