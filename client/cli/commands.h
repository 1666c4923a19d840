/*
 * The tern subcommands. Each runs with the words after its name and the
 * global options already parsed into *common (its own -s/--name/--help
 * override them), and returns the process exit status (CLI_EXIT_*).
 */
#ifndef TERN_CLI_COMMANDS_H
#define TERN_CLI_COMMANDS_H

#include "args.h"

typedef int (*cli_command_fn)(int argc, char **argv, cli_common_t *common);

int cli_cmd_pub(int argc, char **argv, cli_common_t *common);
int cli_cmd_sub(int argc, char **argv, cli_common_t *common);
int cli_cmd_req(int argc, char **argv, cli_common_t *common);
int cli_cmd_reply(int argc, char **argv, cli_common_t *common);
int cli_cmd_bench(int argc, char **argv, cli_common_t *common);
int cli_cmd_stream(int argc, char **argv, cli_common_t *common);
int cli_cmd_consume(int argc, char **argv, cli_common_t *common);

#endif
