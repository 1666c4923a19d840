/*
 * tern sub: prints the messages matching a pattern, one per line, until
 * --count messages, SIGINT/SIGTERM, or the server closes the connection.
 * Only messages go to stdout, so the output can be piped; notices (ready,
 * dropped messages, connection closed) go to stderr.
 */
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

#include "args.h"
#include "commands.h"
#include "connect.h"
#include "output.h"
#include "receive.h"
#include "stop.h"

#define CMD "sub"
/* With --slow, keep the local queue short so that the broker, not libtern,
 * holds the backlog and its overflow policy shows. */
#define SLOW_QUEUE_MSGS 16

enum {
  OPT_QUEUE = CLI_OPT_FIRST_CMD,
  OPT_COUNT,
  OPT_RAW,
  OPT_HEADERS,
  OPT_POLICY,
  OPT_MAX_MSGS,
  OPT_MAX_BYTES,
  OPT_SLOW,
  OPT_READY,
  OPT_RECONNECT,
};

static const cli_opt_t sub_opts[] = {
    CLI_COMMON_OPTS,
    {"queue", 0, true, OPT_QUEUE, "GROUP", "join queue group GROUP"},
    {"count", 0, true, OPT_COUNT, "N", "exit after N messages"},
    {"raw", 0, false, OPT_RAW, NULL, "print only each payload and a newline"},
    {"headers", 0, false, OPT_HEADERS, NULL, "print the headers too"},
    {"policy", 0, true, OPT_POLICY, "POLICY",
     "on a full broker queue: block (default), drop_oldest,\n"
     "                             drop_newest or disconnect"},
    {"max-msgs", 0, true, OPT_MAX_MSGS, "N",
     "broker-side pending limit in messages"},
    {"max-bytes", 0, true, OPT_MAX_BYTES, "N",
     "broker-side pending limit in bytes"},
    {"slow", 0, true, OPT_SLOW, "MS",
     "sleep MS milliseconds per message (to watch the policies)"},
    {"ready", 0, false, OPT_READY, NULL,
     "print \"ready\" on stderr once the subscription is live"},
    {"reconnect", 0, false, OPT_RECONNECT, NULL,
     "ride out broker restarts: reconnect and resubscribe"},
    {0},
};

static const cli_command_info_t sub_info = {
    .name = CMD,
    .usage = "sub [options] PATTERN",
    .summary =
        "Prints every message whose topic matches PATTERN ('*' matches one\n"
        "token, '>' the rest) as \"[#n] topic: payload\". A payload that is\n"
        "not printable UTF-8 text shows as \"<N bytes>\". Runs until --count\n"
        "messages, SIGINT/SIGTERM (exit 0) or the server closes the\n"
        "connection (exit 1). Messages the broker dropped (--policy) are\n"
        "counted on stderr as \"dropped N messages\", at most once a second\n"
        "and on exit. With --reconnect, losing the broker and getting it\n"
        "back are told on stderr, with how long it was away.",
    .opts = sub_opts,
    .min_pos = 1,
    .max_pos = 1,
};

typedef struct sub_args {
  tern_sub_opts_t sopts;
  uint64_t count; /* 0: no limit */
  uint64_t slow_ms;
  cli_format_t format;
  bool raw, headers, ready;
  bool reconnect; /* libtern reconnects; the command keeps going */
} sub_args_t;

static int parse_policy(const cli_command_info_t *info, const char *s,
                        tern_overflow_t *out) {
  static const struct {
    const char *name;
    tern_overflow_t policy;
  } policies[] = {
      {"block", TERN_OVERFLOW_BLOCK},
      {"drop_oldest", TERN_OVERFLOW_DROP_OLDEST},
      {"drop_newest", TERN_OVERFLOW_DROP_NEWEST},
      {"disconnect", TERN_OVERFLOW_DISCONNECT},
  };
  for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
    if (strcmp(s, policies[i].name) == 0) {
      *out = policies[i].policy;
      return 0;
    }
  }
  return cli_usage_error(info,
                         "--policy must be block, drop_oldest, drop_newest or "
                         "disconnect, not '%s'",
                         s);
}

static int on_opt(const cli_command_info_t *info, int id, const char *value,
                  void *ud) {
  sub_args_t *a = ud;
  switch (id) {
  case OPT_QUEUE:
    a->sopts.queue = value;
    return 0;
  case OPT_COUNT:
    return cli_parse_u64(info, "--count", value, 1, UINT64_MAX, &a->count);
  case OPT_RAW:
    a->raw = true;
    return 0;
  case OPT_HEADERS:
    a->headers = true;
    return 0;
  case OPT_POLICY:
    return parse_policy(info, value, &a->sopts.overflow);
  case OPT_MAX_MSGS:
    return cli_parse_u64(info, "--max-msgs", value, 1, UINT64_MAX,
                         &a->sopts.max_msgs);
  case OPT_MAX_BYTES:
    return cli_parse_u64(info, "--max-bytes", value, 1, UINT64_MAX,
                         &a->sopts.max_bytes);
  case OPT_SLOW:
    return cli_parse_u64(info, "--slow", value, 0, 3600 * 1000, &a->slow_ms);
  case OPT_READY:
    a->ready = true;
    return 0;
  case OPT_RECONNECT:
    a->reconnect = true;
    return 0;
  default:
    return cli_usage_error(info, "unhandled option");
  }
}

/*
 * Receives and prints until done. Returns the exit status: 0 after --count
 * messages or a stop signal, 1 when the connection is lost or stdout fails.
 */
static int receive_loop(const sub_args_t *a, tern_client_t *cl, tern_sub_t *sub,
                        const char *server, cli_drops_t *drops) {
  uint64_t received = 0;
  while (a->count == 0 || received < a->count) {
    tern_msg_t *m = NULL;
    int rc = cli_next_msg(CMD, cl, sub, server, drops, &m);
    if (rc <= 0) {
      return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }
    received++;
    rc = cli_print_received(CMD, received, m, a->format);
    tern_msg_release(m);
    if (rc != 0) {
      return CLI_EXIT_FAIL;
    }
    if (a->slow_ms > 0) {
      /* Drops are told as they come, not after the messages queued
       * before them have been slept through. */
      cli_sleep_reporting(CMD, sub, drops, a->slow_ms);
    }
  }
  return CLI_EXIT_OK;
}

static int run(sub_args_t *a, const cli_common_t *common, const char *pattern) {
  tern_options_t o;
  tern_client_t *cl = NULL;
  tern_sub_t *sub = NULL;
  char server[TERN_HOST_MAX + 16];
  cli_drops_t drops = {0};
  int status;
  if (cli_options(&sub_info, common, &o) != 0) {
    return CLI_EXIT_USAGE;
  }
  if (a->reconnect) {
    o.reconnect = true;
    o.reconnect_max_attempts = -1; /* until stopped */
  }
  cli_watch(&o, CMD, ": messages published meanwhile were missed", false);
  cli_server_name(&o, server, sizeof(server));
  cli_stop_install();
  if (cli_connect(CMD, &o, &cl) != 0) {
    return CLI_EXIT_FAIL;
  }
  if (a->slow_ms > 0) {
    a->sopts.queue_msgs = SLOW_QUEUE_MSGS;
  }
  if (cli_subscribe(CMD, cl, pattern, "pattern", &a->sopts, &sub) != 0) {
    tern_client_close(cl);
    return CLI_EXIT_FAIL;
  }
  if (a->ready) {
    /* tern_client_subscribe returned after a PING/PONG: the broker has
     * registered the subscription, so publishes from now on reach us. */
    fprintf(stderr, "ready\n");
  }
  status = receive_loop(a, cl, sub, server, &drops);
  cli_report_drops(CMD, sub, &drops, true); /* what the limit held back */
  tern_sub_destroy(sub);
  tern_client_close(cl);
  return status;
}

int cli_cmd_sub(int argc, char **argv, cli_common_t *common) {
  sub_args_t a;
  const char *pos[1] = {NULL};
  size_t npos = 0;
  memset(&a, 0, sizeof(a));
  tern_sub_opts_init(&a.sopts);
  if (cli_args_parse(&sub_info, argc, argv, common, on_opt, &a, pos, &npos) !=
      0) {
    return CLI_EXIT_USAGE;
  }
  if (common->help) {
    cli_print_help(stdout, &sub_info);
    return CLI_EXIT_OK;
  }
  if (a.raw && a.headers) {
    cli_usage_error(&sub_info, "--raw prints payloads only: it cannot be "
                               "combined with --headers");
    return CLI_EXIT_USAGE;
  }
  a.format = a.raw       ? CLI_FORMAT_RAW
             : a.headers ? CLI_FORMAT_HEADERS
                         : CLI_FORMAT_LINE;
  return run(&a, common, pos[0]);
}
