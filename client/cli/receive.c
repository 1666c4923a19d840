/*
 * Subscribing, waiting and printing for `tern sub` and `tern reply` (see
 * receive.h).
 */
#include "receive.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "connect.h"
#include "stop.h"

int cli_subscribe(const char *cmd, tern_client_t *cl, const char *pattern,
                  const char *what, const tern_sub_opts_t *sopts,
                  tern_sub_t **out) {
  int rc = tern_client_subscribe(cl, out, pattern, sopts);
  if (rc != 0) {
    if (rc == TERN_ETOPIC) {
      cli_error(cmd, "invalid %s '%s'", what, pattern);
    } else {
      cli_report(cmd, cl, "subscribe failed", rc);
    }
  }
  return rc;
}

/* Tells stderr about messages the broker dropped since the last look. */
static void report_drops(const char *cmd, tern_sub_t *sub, uint64_t *seen) {
  uint64_t total = tern_sub_dropped(sub);
  if (total > *seen) {
    fprintf(stderr, "tern %s: dropped %llu messages\n", cmd,
            (unsigned long long)(total - *seen));
    *seen = total;
  }
}

int cli_next_msg(const char *cmd, tern_client_t *cl, tern_sub_t *sub,
                 const char *server, uint64_t *dropped_seen, tern_msg_t **out) {
  while (!cli_stop_requested()) {
    char detail[256];
    int rc = tern_sub_next(sub, CLI_STOP_POLL_MS, out);
    if (dropped_seen != NULL) {
      report_drops(cmd, sub, dropped_seen);
    }
    if (rc == TERN_ETIMEOUT) {
      continue;
    }
    if (rc == 0) {
      return 1;
    }
    /* A stop requested meanwhile wins: it is a normal end, not a loss. */
    if (cli_stop_requested()) {
      break;
    }
    tern_client_last_error(cl, detail, sizeof(detail));
    cli_error(cmd, "connection to %s closed: %s", server,
              detail[0] != '\0' ? detail : tern_strerror(rc));
    return -1;
  }
  return 0;
}

int cli_print_received(const char *cmd, uint64_t seq, const tern_msg_t *m,
                       cli_format_t fmt) {
  if (cli_print_msg(stdout, seq, m, fmt) != 0) {
    /* A reader that went away (| head) is a normal end, not news. */
    if (errno != EPIPE) {
      cli_error(cmd, "writing stdout: %s", strerror(errno));
    }
    return -1;
  }
  return 0;
}
