/*
 * tern consume: reads a stream through a consumer (pull) and prints each
 * message's payload, optionally acknowledging it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

#include "args.h"
#include "commands.h"
#include "connect.h"

#define CMD "consume"
#define TIMEOUT_MS 10000
#define MAX_BATCH 10000

enum {
  OPT_PULL = CLI_OPT_FIRST_CMD,
  OPT_ACK,
  OPT_DURABLE,
  OPT_DELIVER,
  OPT_START_SEQ,
  OPT_COUNT,
  OPT_FOLLOW,
  OPT_WAIT,
};

static const cli_opt_t consume_opts[] = {
    CLI_COMMON_OPTS,
    {"pull", 0, true, OPT_PULL, "N", "messages per pull request (default 100)"},
    {"ack", 0, false, OPT_ACK, NULL,
     "acknowledge each message once printed (else they come back after the "
     "ack wait)"},
    {"durable", 0, true, OPT_DURABLE, "NAME",
     "use (or make) the durable consumer NAME; shared by every client "
     "using it"},
    {"deliver", 0, true, OPT_DELIVER, "all|last|new",
     "where a new consumer starts (default all)"},
    {"start-seq", 0, true, OPT_START_SEQ, "SEQ",
     "a new consumer starts at stream sequence SEQ"},
    {"count", 0, true, OPT_COUNT, "N", "stop after N messages"},
    {"follow", 'f', false, OPT_FOLLOW, NULL,
     "keep waiting for new messages (default: stop when none is left)"},
    {"wait", 0, true, OPT_WAIT, "MS",
     "how long one pull waits for messages (default 1000)"},
    {0},
};

static const cli_command_info_t consume_info = {
    .name = CMD,
    .usage = "consume [options] STREAM",
    .summary = "Prints the payload of each message of STREAM (one per line)\n"
               "through an ephemeral consumer, or the durable one --durable\n"
               "names, pulling --pull messages at a time. Without --follow\n"
               "it stops once a pull finds nothing new.",
    .opts = consume_opts,
    .min_pos = 1,
    .max_pos = 1,
};

typedef struct consume_args {
  uint64_t pull, count, wait_ms, start_seq;
  bool ack, follow;
  const char *durable;
  tern_deliver_t deliver;
} consume_args_t;

static int on_opt(const cli_command_info_t *info, int id, const char *value,
                  void *ud) {
  consume_args_t *a = ud;
  switch (id) {
  case OPT_PULL:
    return cli_parse_u64(info, "--pull", value, 1, MAX_BATCH, &a->pull);
  case OPT_COUNT:
    return cli_parse_u64(info, "--count", value, 1, UINT64_MAX, &a->count);
  case OPT_WAIT:
    return cli_parse_u64(info, "--wait", value, 1, INT32_MAX / 2, &a->wait_ms);
  case OPT_START_SEQ:
    a->deliver = TERN_DELIVER_BY_SEQ;
    return cli_parse_u64(info, "--start-seq", value, 1, UINT64_MAX,
                         &a->start_seq);
  case OPT_ACK:
    a->ack = true;
    return 0;
  case OPT_FOLLOW:
    a->follow = true;
    return 0;
  case OPT_DURABLE:
    a->durable = value;
    return 0;
  case OPT_DELIVER:
    if (strcmp(value, "all") == 0)
      a->deliver = TERN_DELIVER_ALL;
    else if (strcmp(value, "last") == 0)
      a->deliver = TERN_DELIVER_LAST;
    else if (strcmp(value, "new") == 0)
      a->deliver = TERN_DELIVER_NEW;
    else
      return cli_usage_error(info, "--deliver is all, last or new");
    return 0;
  default:
    return cli_usage_error(info, "unhandled option");
  }
}

static int run(const consume_args_t *a, const cli_common_t *common,
               const char *stream) {
  tern_options_t o;
  tern_client_t *cl = NULL;
  char err[256] = "", name[80] = "";
  if (cli_options(&consume_info, common, &o) != 0)
    return CLI_EXIT_USAGE;
  if (cli_connect(CMD, &o, &cl) != 0)
    return CLI_EXIT_FAIL;
  tern_consumer_config_t cc;
  tern_consumer_config_init(&cc);
  cc.deliver = a->deliver;
  cc.opt_start_seq = a->start_seq;
  int rc = tern_client_consumer_add(cl, stream, a->durable, &cc, name,
                                    sizeof name, TIMEOUT_MS, err, sizeof err);
  if (rc != 0) {
    cli_error(CMD, "cannot read stream %s: %s%s%s", stream, tern_strerror(rc),
              err[0] ? ": " : "", err);
    tern_client_close(cl);
    return CLI_EXIT_FAIL;
  }
  tern_msg_t **msgs = calloc(a->pull, sizeof *msgs);
  uint64_t got = 0;
  while (rc == 0 && msgs != NULL && (a->count == 0 || got < a->count)) {
    size_t want = a->pull, n = 0;
    if (a->count > 0 && a->count - got < want)
      want = (size_t)(a->count - got);
    rc = tern_client_fetch(cl, stream, name, want, (int)a->wait_ms, msgs, &n);
    for (size_t i = 0; i < n; i++) {
      size_t len = tern_msg_len(msgs[i]);
      if (rc == 0 && (fwrite(tern_msg_data(msgs[i]), 1, len, stdout) != len ||
                      fputc('\n', stdout) == EOF)) {
        cli_error(CMD, "writing stdout: %s", strerror(errno));
        rc = -1;
      }
      if (rc == 0 && a->ack)
        rc = tern_client_ack(cl, msgs[i]);
      tern_msg_release(msgs[i]);
    }
    fflush(stdout);
    got += n;
    if (n == 0 && !a->follow)
      break;
  }
  if (rc == 0 && a->ack)
    rc = tern_client_flush(cl, TIMEOUT_MS);
  if (rc != 0 && rc != -1)
    cli_report(CMD, cl, "consume failed", rc);
  free(msgs);
  tern_client_close(cl);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_cmd_consume(int argc, char **argv, cli_common_t *common) {
  consume_args_t a;
  const char *pos[1] = {NULL};
  size_t npos = 0;
  memset(&a, 0, sizeof a);
  a.pull = 100;
  a.wait_ms = 1000;
  if (cli_args_parse(&consume_info, argc, argv, common, on_opt, &a, pos,
                     &npos) != 0)
    return CLI_EXIT_USAGE;
  if (common->help) {
    cli_print_help(stdout, &consume_info);
    return CLI_EXIT_OK;
  }
  return run(&a, common, pos[0]);
}
