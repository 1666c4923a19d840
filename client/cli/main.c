/*
 * tern: the command-line tool of the tern broker.
 *
 *   tern [global options] COMMAND [options] ARGS...
 *
 * main only reads the global options and dispatches; each subcommand lives
 * in its own cmd_*.c. A new subcommand is one row in the commands table.
 */
#include <stdio.h>
#include <string.h>

#include <tern/tern.h>

#include "args.h"
#include "commands.h"
#include "connect.h"

#ifndef TERN_CLI_VERSION
#define TERN_CLI_VERSION "unknown"
#endif

typedef struct cli_command {
  const char *name;
  cli_command_fn run;
  const char *summary;
} cli_command_t;

static const cli_command_t commands[] = {
    {"pub", cli_cmd_pub, "publish a message, or one per line of stdin"},
    {"sub", cli_cmd_sub, "print the messages matching a pattern"},
    {"req", cli_cmd_req, "send a request and print the reply"},
    {"reply", cli_cmd_reply, "answer every request on a topic"},
    {"stream", cli_cmd_stream, "add, list, show or remove durable streams"},
    {"consume", cli_cmd_consume, "read a durable stream through a consumer"},
    {"bench", cli_cmd_bench,
     "measure throughput and latency (see tern bench --help)"},
};

enum { OPT_VERSION = CLI_OPT_FIRST_CMD };

static const cli_opt_t global_opts[] = {
    CLI_COMMON_OPTS,
    {"version", 0, false, OPT_VERSION, NULL, "print the version and exit"},
    {0},
};

static const cli_command_info_t global_info = {
    .name = "",
    .usage = "[-s HOST:PORT] [--name NAME] COMMAND [options] [ARGS...]",
    .summary = "The command-line client of the tern publish/subscribe broker.",
    .opts = global_opts,
    .min_pos = 0,
    .max_pos = 0,
};

static void print_help(FILE *out) {
  cli_print_help(out, &global_info);
  fprintf(out, "\nCommands:\n");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
    fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
  }
  fprintf(out, "\nRun 'tern COMMAND --help' for a command's options.\n");
}

static int on_global_opt(const cli_command_info_t *info, int id,
                         const char *value, void *ud) {
  bool *version = ud;
  (void)info;
  (void)value;
  if (id == OPT_VERSION) {
    *version = true;
  }
  return 0;
}

static const cli_command_t *find_command(const char *name) {
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
    if (strcmp(commands[i].name, name) == 0) {
      return &commands[i];
    }
  }
  return NULL;
}

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "tern: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nUsage: tern %s\nRun 'tern --help' for the commands.\n",
          global_info.usage);
  return CLI_EXIT_USAGE;
}

int main(int argc, char **argv) {
  cli_common_t common;
  bool version = false;
  const cli_command_t *cmd;
  int next = 0;
  cli_common_init(&common);
  cli_ignore_sigpipe();
  if (cli_args_parse_prefix(&global_info, argc - 1, argv + 1, &common,
                            on_global_opt, &version, &next) != 0) {
    return CLI_EXIT_USAGE;
  }
  next += 1; /* index into argv */
  if (version) {
    printf("tern %s (libtern %s)\n", TERN_CLI_VERSION, tern_version());
    return CLI_EXIT_OK;
  }
  if (next >= argc) {
    if (common.help) {
      print_help(stdout);
      return CLI_EXIT_OK;
    }
    return usage_error("%s", "missing command");
  }
  if (strcmp(argv[next], "help") == 0) {
    /* "tern help" and "tern help COMMAND" */
    if (next + 1 >= argc) {
      print_help(stdout);
      return CLI_EXIT_OK;
    }
    cmd = find_command(argv[next + 1]);
    if (cmd == NULL) {
      return usage_error("unknown command '%s'", argv[next + 1]);
    }
    common.help = true;
    return cmd->run(0, argv + argc, &common);
  }
  cmd = find_command(argv[next]);
  if (cmd == NULL) {
    return usage_error("unknown command '%s'", argv[next]);
  }
  return cmd->run(argc - next - 1, argv + next + 1, &common);
}
