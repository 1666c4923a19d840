/*
 * Subscribing, waiting and printing for `tern sub` and `tern reply` (see
 * receive.h).
 */
#include "receive.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cli_report_drops(const char *cmd, tern_sub_t *sub, cli_drops_t *d,
                      bool force) {
  uint64_t total = tern_sub_dropped(sub);
  uint64_t now;
  if (total <= d->seen) {
    return;
  }
  now = now_ms();
  if (!force && d->printed && now - d->last_ms < CLI_DROPS_INTERVAL_MS) {
    return; /* counted in the next line */
  }
  fprintf(stderr, "tern %s: dropped %llu messages\n", cmd,
          (unsigned long long)(total - d->seen));
  d->seen = total;
  d->last_ms = now;
  d->printed = true;
}

void cli_sleep_reporting(const char *cmd, tern_sub_t *sub, cli_drops_t *d,
                         uint64_t ms) {
  uint64_t end = now_ms() + ms;
  for (;;) {
    uint64_t now = now_ms();
    if (now >= end || cli_stop_requested()) {
      break;
    }
    cli_sleep_ms(end - now < CLI_DROPS_POLL_MS ? end - now : CLI_DROPS_POLL_MS);
    cli_report_drops(cmd, sub, d, false);
  }
}

int cli_next_msg(const char *cmd, tern_client_t *cl, tern_sub_t *sub,
                 const char *server, cli_drops_t *drops, tern_msg_t **out) {
  while (!cli_stop_requested()) {
    int rc = tern_sub_next(sub, CLI_DROPS_POLL_MS, out);
    if (drops != NULL) {
      cli_report_drops(cmd, sub, drops, false);
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
    cli_report_lost(cmd, cl, server, rc);
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
