/*
 * Command-line parsing shared by the tern subcommands.
 *
 * Each subcommand describes its options in a table of cli_opt_t and calls
 * cli_args_parse, which walks argv, hands every option to the command's
 * callback and collects the positional arguments. Options and positionals
 * may be interleaved ("tern sub orders.> --count 2"); "--" ends options.
 * The options every subcommand accepts (server, name, help) are in
 * CLI_COMMON_OPTS and are handled by cli_common_option.
 */
#ifndef TERN_CLI_ARGS_H
#define TERN_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of the tern program. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1  /* runtime failure: connection, timeout, server */
#define CLI_EXIT_USAGE 2 /* bad command line */

/* Returned by parsing helpers for a bad command line. */
#define CLI_EUSAGE (-2)

/* The default broker when neither -s nor TERN_SERVER is given. */
#define CLI_DEFAULT_SERVER "127.0.0.1:7421"

/* Option ids below 100 belong to the common options. */
enum cli_common_id {
  CLI_OPT_SERVER = 1,
  CLI_OPT_NAME,
  CLI_OPT_HELP,
  CLI_OPT_USER,
  CLI_OPT_PASS,
  CLI_OPT_TOKEN,
  CLI_OPT_TLS_CA,
  CLI_OPT_TLS_CERT,
  CLI_OPT_TLS_KEY,
  CLI_OPT_TLS_INSECURE,
  CLI_OPT_FIRST_CMD = 100 /* first id a subcommand may use */
};

typedef struct cli_opt {
  const char *long_name; /* without the leading "--" */
  char short_name;       /* 0: none */
  bool takes_value;
  int id;
  const char *metavar; /* value placeholder in --help, NULL when none */
  const char *help;
} cli_opt_t;

/* Rows of the common options, to place at the start of a command's table. */
#define CLI_COMMON_OPTS                                                          \
  {"server",                                                                     \
   's',                                                                          \
   true,                                                                         \
   CLI_OPT_SERVER,                                                               \
   "[tls://]HOST:PORT",                                                          \
   "broker address (default $TERN_SERVER, else " CLI_DEFAULT_SERVER ")"},        \
      {"name", 0, true, CLI_OPT_NAME, "NAME", "client name sent in CONNECT"},    \
      {"user", 0, true, CLI_OPT_USER, "USER", "user name (default $TERN_USER)"}, \
      {"pass",     0,                                                            \
       true,       CLI_OPT_PASS,                                                 \
       "PASSWORD", "password (default $TERN_PASSWORD; prefer the variable)"},    \
      {"token", 0,                                                               \
       true,    CLI_OPT_TOKEN,                                                   \
       "TOKEN", "auth token (default $TERN_TOKEN; prefer the variable)"},        \
      {"tls-ca",                                                                 \
       0,                                                                        \
       true,                                                                     \
       CLI_OPT_TLS_CA,                                                           \
       "FILE",                                                                   \
       "PEM CAs to check the server with (implies tls://; default "              \
       "$TERN_TLS_CA, else the system's)"},                                      \
      {"tls-cert",                                                               \
       0,                                                                        \
       true,                                                                     \
       CLI_OPT_TLS_CERT,                                                         \
       "FILE",                                                                   \
       "PEM client certificate for mutual TLS (default $TERN_TLS_CERT)"},        \
      {"tls-key",       0,      true,                                            \
       CLI_OPT_TLS_KEY, "FILE", "its PEM key (default $TERN_TLS_KEY)"},          \
      {"tls-insecure-skip-verify",                                               \
       0,                                                                        \
       false,                                                                    \
       CLI_OPT_TLS_INSECURE,                                                     \
       NULL,                                                                     \
       "accept any server certificate (tests only: no protection)"},             \
  {                                                                              \
    "help", 'h', false, CLI_OPT_HELP, NULL, "show this help and exit"            \
  }

/* Settings every subcommand shares. The strings are borrowed from argv or
 * the environment. */
typedef struct cli_common {
  const char *server;
  const char *name;
  const char *user; /* credentials for CONNECT, NULL when not given */
  const char *pass;
  const char *token;
  const char *tls_ca, *tls_cert, *tls_key; /* NULL when not given */
  bool tls_insecure;
  bool help;
} cli_common_t;

/*
 * Describes how a subcommand is invoked, for messages and --help.
 * usage is the synopsis after "tern " ("pub [options] TOPIC [MESSAGE]").
 */
typedef struct cli_command_info {
  const char *name; /* "pub" */
  const char *usage;
  const char *summary;     /* one paragraph, printed after the usage */
  const cli_opt_t *opts;   /* table, terminated by a zeroed row */
  size_t min_pos, max_pos; /* accepted number of positionals */
} cli_command_info_t;

/*
 * Called for each option found, with value NULL for an option that takes
 * none. Returns 0, or CLI_EUSAGE after reporting what is wrong with
 * cli_usage_error (for instance a number that does not parse).
 */
typedef int (*cli_opt_cb)(const cli_command_info_t *info, int id,
                          const char *value, void *ud);

/* Fills *c with the defaults: server from TERN_SERVER or the built-in one. */
void cli_common_init(cli_common_t *c);

/*
 * Stores a common option into *c. Returns 1 when id was a common option,
 * 0 when it is not (the command handles it).
 */
int cli_common_option(cli_common_t *c, int id, const char *value);

/*
 * Parses argv[0..argc-1] (the words after the subcommand name) against
 * info->opts. Common options are stored in *common, the others go to cb;
 * positionals are stored in pos (room for info->max_pos) and counted in
 * *npos. On a bad command line prints the problem and the usage on stderr
 * and returns CLI_EUSAGE. When --help was given the number of positionals is
 * not checked (common->help tells the caller to print the help instead).
 */
int cli_args_parse(const cli_command_info_t *info, int argc, char **argv,
                   cli_common_t *common, cli_opt_cb cb, void *ud,
                   const char **pos, size_t *npos);

/*
 * Parses the options before the first positional (the global options in
 * front of a subcommand name): as cli_args_parse, but stops at the first
 * positional and sets *next to its index (argc when there is none).
 */
int cli_args_parse_prefix(const cli_command_info_t *info, int argc, char **argv,
                          cli_common_t *common, cli_opt_cb cb, void *ud,
                          int *next);

/* Prints "Usage: tern <usage>", the summary and the option table. */
void cli_print_help(FILE *out, const cli_command_info_t *info);

/*
 * Prints "tern CMD: <message>", the usage line and a hint to run --help on
 * stderr. Returns CLI_EUSAGE, so callers can "return cli_usage_error(...)".
 */
int cli_usage_error(const cli_command_info_t *info, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Parses a decimal unsigned integer in [min, max] given to option opt;
 * reports a usage error and returns CLI_EUSAGE when it is not one.
 */
int cli_parse_u64(const cli_command_info_t *info, const char *opt,
                  const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Prints "tern CMD: <message>" on stderr (a runtime failure). */
void cli_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
