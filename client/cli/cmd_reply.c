/*
 * tern reply: a responder for trying out `tern req`: answers every request
 * on a topic (or pattern) with a fixed response, and prints each request it
 * answered on stdout.
 */
#include <string.h>

#include <tern/tern.h>

#include "args.h"
#include "commands.h"
#include "connect.h"
#include "output.h"
#include "receive.h"
#include "stop.h"

#define CMD "reply"

enum {
  OPT_QUEUE = CLI_OPT_FIRST_CMD,
  OPT_COUNT,
  OPT_READY,
  OPT_RECONNECT,
};

static const cli_opt_t reply_opts[] = {
    CLI_COMMON_OPTS,
    {"queue", 0, true, OPT_QUEUE, "GROUP",
     "join queue group GROUP (responders share the requests)"},
    {"count", 0, true, OPT_COUNT, "N", "exit after answering N requests"},
    {"ready", 0, false, OPT_READY, NULL,
     "print \"ready\" on stderr once the subscription is live"},
    {"reconnect", 0, false, OPT_RECONNECT, NULL,
     "ride out broker restarts: reconnect and resubscribe"},
    {0},
};

static const cli_command_info_t reply_info = {
    .name = CMD,
    .usage = "reply [options] TOPIC RESPONSE",
    .summary =
        "Answers every request published to TOPIC (a pattern is allowed)\n"
        "with RESPONSE, and prints each request as \"[#n] topic: payload\".\n"
        "Messages without a reply topic are printed but not answered. Runs\n"
        "until --count answers or SIGINT/SIGTERM (exit 0), or until the\n"
        "server closes the connection or refuses an answer (exit 1).",
    .opts = reply_opts,
    .min_pos = 2,
    .max_pos = 2,
};

typedef struct reply_args {
  const char *queue;
  uint64_t count; /* 0: no limit */
  bool ready;
  bool reconnect;
} reply_args_t;

static int on_opt(const cli_command_info_t *info, int id, const char *value,
                  void *ud) {
  reply_args_t *a = ud;
  switch (id) {
  case OPT_QUEUE:
    a->queue = value;
    return 0;
  case OPT_COUNT:
    return cli_parse_u64(info, "--count", value, 1, UINT64_MAX, &a->count);
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
 * Prints one request and answers it. Returns 1 when it was answered, 0
 * when it had no reply topic, or a negative error (already reported).
 */
static int answer(tern_client_t *cl, const tern_msg_t *m, uint64_t seq,
                  const char *response) {
  const char *inbox = tern_msg_reply(m);
  int rc;
  if (cli_print_received(CMD, seq, m, CLI_FORMAT_LINE) != 0) {
    return -1;
  }
  if (inbox == NULL) {
    return 0;
  }
  rc = tern_client_publish(cl, inbox, response, strlen(response), NULL);
  if (rc == 0) {
    /* The broker may refuse the answer (no right to publish to the inbox):
     * the flush after it says so. */
    rc = tern_client_flush(cl, -1);
  }
  if (rc != 0) {
    cli_report(CMD, cl,
               cli_is_refusal(rc) ? "the broker refused the reply"
                                  : "sending the reply failed",
               rc);
    return rc;
  }
  return 1;
}

static int serve(const reply_args_t *a, tern_client_t *cl, tern_sub_t *sub,
                 const char *response, const char *server) {
  uint64_t received = 0, answered = 0;
  while (a->count == 0 || answered < a->count) {
    tern_msg_t *m = NULL;
    int rc = cli_next_msg(CMD, cl, sub, server, NULL, &m);
    if (rc <= 0) {
      return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }
    received++;
    rc = answer(cl, m, received, response);
    tern_msg_release(m);
    if (rc < 0) {
      return CLI_EXIT_FAIL;
    }
    answered += (uint64_t)rc;
  }
  return CLI_EXIT_OK;
}

static int run(const reply_args_t *a, const cli_common_t *common,
               const char *topic, const char *response) {
  tern_options_t o;
  tern_sub_opts_t sopts;
  tern_client_t *cl = NULL;
  tern_sub_t *sub = NULL;
  char server[TERN_HOST_MAX + 16];
  int status;
  if (cli_options(&reply_info, common, &o) != 0) {
    return CLI_EXIT_USAGE;
  }
  if (a->reconnect) {
    o.reconnect = true;
    o.reconnect_max_attempts = -1; /* until stopped */
  }
  cli_watch(&o, CMD, ": requests sent meanwhile went unanswered", false);
  cli_server_name(&o, server, sizeof(server));
  cli_stop_install();
  if (cli_connect(CMD, &o, &cl) != 0) {
    return CLI_EXIT_FAIL;
  }
  tern_sub_opts_init(&sopts);
  sopts.queue = a->queue;
  if (cli_subscribe(CMD, cl, topic, "topic", &sopts, &sub) != 0) {
    tern_client_close(cl);
    return CLI_EXIT_FAIL;
  }
  if (a->ready) {
    fprintf(stderr, "ready\n");
  }
  status = serve(a, cl, sub, response, server);
  tern_sub_destroy(sub);
  /* Close flushes: the last answers reach the broker before we exit. */
  tern_client_close(cl);
  return status;
}

int cli_cmd_reply(int argc, char **argv, cli_common_t *common) {
  reply_args_t a;
  const char *pos[2] = {NULL, NULL};
  size_t npos = 0;
  memset(&a, 0, sizeof(a));
  if (cli_args_parse(&reply_info, argc, argv, common, on_opt, &a, pos, &npos) !=
      0) {
    return CLI_EXIT_USAGE;
  }
  if (common->help) {
    cli_print_help(stdout, &reply_info);
    return CLI_EXIT_OK;
  }
  return run(&a, common, pos[0], pos[1]);
}
