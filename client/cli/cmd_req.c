/*
 * tern req: sends one request and prints the reply's payload.
 */
#include <errno.h>
#include <string.h>

#include <tern/tern.h>

#include "args.h"
#include "commands.h"
#include "connect.h"

#define CMD "req"
#define DEFAULT_TIMEOUT_MS 5000

enum { OPT_TIMEOUT = CLI_OPT_FIRST_CMD };

static const cli_opt_t req_opts[] = {
    CLI_COMMON_OPTS,
    {"timeout", 't', true, OPT_TIMEOUT, "MS",
     "how long to wait for the reply (default 5000)"},
    {0},
};

static const cli_command_info_t req_info = {
    .name = CMD,
    .usage = "req [options] TOPIC MESSAGE",
    .summary =
        "Publishes MESSAGE to TOPIC with a reply inbox and prints the first\n"
        "reply's payload followed by a newline. Exits 1 when nobody is\n"
        "subscribed to TOPIC or no reply comes in time.",
    .opts = req_opts,
    .min_pos = 2,
    .max_pos = 2,
};

static int on_opt(const cli_command_info_t *info, int id, const char *value,
                  void *ud) {
  uint64_t *timeout_ms = ud;
  if (id == OPT_TIMEOUT) {
    return cli_parse_u64(info, "--timeout", value, 1, INT32_MAX, timeout_ms);
  }
  return cli_usage_error(info, "unhandled option");
}

static int run(const cli_common_t *common, const char *topic,
               const char *message, int timeout_ms) {
  tern_options_t o;
  tern_client_t *cl = NULL;
  tern_msg_t *reply = NULL;
  int rc;
  if (cli_options(&req_info, common, &o) != 0) {
    return CLI_EXIT_USAGE;
  }
  if (cli_connect(CMD, &o, &cl) != 0) {
    return CLI_EXIT_FAIL;
  }
  rc = tern_client_request(cl, topic, message, strlen(message), timeout_ms,
                           &reply);
  if (rc == 0) {
    size_t len = tern_msg_len(reply);
    if (fwrite(tern_msg_data(reply), 1, len, stdout) != len ||
        fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
      cli_error(CMD, "writing stdout: %s", strerror(errno));
      rc = -1;
    }
    tern_msg_release(reply);
  } else if (rc == TERN_ETIMEOUT) {
    cli_error(CMD, "no reply on '%s' within %d ms", topic, timeout_ms);
  } else if (rc == TERN_ENORESPONDERS) {
    cli_error(CMD, "no responders on '%s'", topic);
  } else if (rc == TERN_ETOPIC) {
    cli_error(CMD, "invalid topic '%s'", topic);
  } else {
    cli_report(CMD, cl, "request failed", rc);
  }
  tern_client_close(cl);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_cmd_req(int argc, char **argv, cli_common_t *common) {
  const char *pos[2] = {NULL, NULL};
  size_t npos = 0;
  uint64_t timeout_ms = DEFAULT_TIMEOUT_MS;
  if (cli_args_parse(&req_info, argc, argv, common, on_opt, &timeout_ms, pos,
                     &npos) != 0) {
    return CLI_EXIT_USAGE;
  }
  if (common->help) {
    cli_print_help(stdout, &req_info);
    return CLI_EXIT_OK;
  }
  return run(common, pos[0], pos[1], (int)timeout_ms);
}
