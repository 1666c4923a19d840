/*
 * Command-line parsing shared by the tern subcommands (see args.h).
 *
 * A small table-driven parser rather than getopt_long: it lets options and
 * positionals interleave without relying on GNU argument permutation, gives
 * every subcommand the same messages, and prints --help from the same table
 * it parses with, so the two cannot drift apart.
 */
#include "args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void cli_common_init(cli_common_t *c) {
  const char *env = getenv("TERN_SERVER");
  c->server = (env != NULL && env[0] != '\0') ? env : CLI_DEFAULT_SERVER;
  c->name = NULL;
  c->user = getenv("TERN_USER");
  c->pass = getenv("TERN_PASSWORD");
  c->token = getenv("TERN_TOKEN");
  c->tls_ca = getenv("TERN_TLS_CA");
  c->tls_cert = getenv("TERN_TLS_CERT");
  c->tls_key = getenv("TERN_TLS_KEY");
  c->tls_insecure = false;
  c->help = false;
}

int cli_common_option(cli_common_t *c, int id, const char *value) {
  switch (id) {
  case CLI_OPT_SERVER:
    c->server = value;
    return 1;
  case CLI_OPT_NAME:
    c->name = value;
    return 1;
  case CLI_OPT_USER:
    c->user = value;
    return 1;
  case CLI_OPT_PASS:
    c->pass = value;
    return 1;
  case CLI_OPT_TOKEN:
    c->token = value;
    return 1;
  case CLI_OPT_TLS_CA:
    c->tls_ca = value;
    return 1;
  case CLI_OPT_TLS_CERT:
    c->tls_cert = value;
    return 1;
  case CLI_OPT_TLS_KEY:
    c->tls_key = value;
    return 1;
  case CLI_OPT_TLS_INSECURE:
    c->tls_insecure = true;
    return 1;
  case CLI_OPT_HELP:
    c->help = true;
    return 1;
  default:
    return 0;
  }
}

static void print_usage_line(FILE *out, const cli_command_info_t *info) {
  fprintf(out, "Usage: tern %s\n", info->usage);
}

int cli_usage_error(const cli_command_info_t *info, const char *fmt, ...) {
  va_list ap;
  bool global = info->name[0] == '\0'; /* options before any command */
  fprintf(stderr, global ? "tern: " : "tern %s: ", info->name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  print_usage_line(stderr, info);
  if (global) {
    fprintf(stderr, "Run 'tern --help' for the commands.\n");
  } else {
    fprintf(stderr, "Run 'tern %s --help' for the options.\n", info->name);
  }
  return CLI_EUSAGE;
}

void cli_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "tern %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int cli_parse_u64(const cli_command_info_t *info, const char *opt,
                  const char *s, uint64_t min, uint64_t max, uint64_t *out) {
  char *end = NULL;
  unsigned long long v;
  /* strtoull accepts a sign and leading blanks; a count must not have them. */
  if (s[0] < '0' || s[0] > '9') {
    return cli_usage_error(info, "%s expects a number, not '%s'", opt, s);
  }
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0') {
    return cli_usage_error(info, "%s expects a number, not '%s'", opt, s);
  }
  if (v < min || v > max) {
    return cli_usage_error(info, "%s must be between %llu and %llu", opt,
                           (unsigned long long)min, (unsigned long long)max);
  }
  *out = (uint64_t)v;
  return 0;
}

static const cli_opt_t *find_long(const cli_opt_t *opts, const char *name,
                                  size_t len) {
  for (const cli_opt_t *o = opts; o->id != 0; o++) {
    if (o->long_name != NULL && strlen(o->long_name) == len &&
        memcmp(o->long_name, name, len) == 0) {
      return o;
    }
  }
  return NULL;
}

static const cli_opt_t *find_short(const cli_opt_t *opts, char c) {
  for (const cli_opt_t *o = opts; o->id != 0; o++) {
    if (o->short_name == c) {
      return o;
    }
  }
  return NULL;
}

static int deliver(const cli_command_info_t *info, const cli_opt_t *o,
                   const char *value, cli_common_t *common, cli_opt_cb cb,
                   void *ud) {
  if (cli_common_option(common, o->id, value)) {
    return 0;
  }
  return cb(info, o->id, value, ud);
}

/*
 * Handles one word that starts with "--": "--name", "--name=value" or
 * "--name value" (which consumes the next word, hence *i may advance).
 */
static int parse_long(const cli_command_info_t *info, int argc, char **argv,
                      int *i, cli_common_t *common, cli_opt_cb cb, void *ud) {
  const char *word = argv[*i] + 2;
  const char *eq = strchr(word, '=');
  size_t len = eq != NULL ? (size_t)(eq - word) : strlen(word);
  const cli_opt_t *o = find_long(info->opts, word, len);
  const char *value = NULL;
  if (o == NULL) {
    return cli_usage_error(info, "unknown option '--%.*s'", (int)len, word);
  }
  if (!o->takes_value) {
    if (eq != NULL) {
      return cli_usage_error(info, "option '--%s' takes no value",
                             o->long_name);
    }
  } else if (eq != NULL) {
    value = eq + 1;
  } else if (*i + 1 < argc) {
    value = argv[++*i];
  } else {
    return cli_usage_error(info, "option '--%s' needs a value", o->long_name);
  }
  return deliver(info, o, value, common, cb, ud);
}

/*
 * Handles one word that starts with a single '-': a cluster of flags
 * ("-hx") where the first option that takes a value takes the rest of the
 * word ("-s127.0.0.1:7421") or else the next word.
 */
static int parse_short(const cli_command_info_t *info, int argc, char **argv,
                       int *i, cli_common_t *common, cli_opt_cb cb, void *ud) {
  const char *p = argv[*i] + 1;
  while (*p != '\0') {
    const cli_opt_t *o = find_short(info->opts, *p);
    const char *value = NULL;
    int rc;
    if (o == NULL) {
      return cli_usage_error(info, "unknown option '-%c'", *p);
    }
    if (o->takes_value) {
      if (p[1] != '\0') {
        value = p + 1;
      } else if (*i + 1 < argc) {
        value = argv[++*i];
      } else {
        return cli_usage_error(info, "option '-%c' needs a value", *p);
      }
    }
    rc = deliver(info, o, value, common, cb, ud);
    if (rc != 0 || value != NULL) {
      return rc;
    }
    p++;
  }
  return 0;
}

/*
 * The loop behind both entry points. With stop_at_pos the first positional
 * ends parsing and its index goes to *next (argc when there is none);
 * otherwise positionals are collected into pos.
 */
static int parse_words(const cli_command_info_t *info, int argc, char **argv,
                       cli_common_t *common, cli_opt_cb cb, void *ud,
                       const char **pos, size_t *npos, bool stop_at_pos,
                       int *next) {
  bool options_done = false;
  size_t n = 0;
  int i;
  for (i = 0; i < argc; i++) {
    const char *w = argv[i];
    int rc = 0;
    if (!options_done && strcmp(w, "--") == 0) {
      options_done = true;
      continue;
    }
    if (options_done || w[0] != '-' || w[1] == '\0') {
      /* "-" alone is a positional, as for most Unix tools. */
      if (stop_at_pos) {
        break;
      }
      if (n == info->max_pos) {
        return cli_usage_error(info, "unexpected argument '%s'", w);
      }
      pos[n++] = w;
      continue;
    }
    if (w[1] == '-') {
      rc = parse_long(info, argc, argv, &i, common, cb, ud);
    } else {
      rc = parse_short(info, argc, argv, &i, common, cb, ud);
    }
    if (rc != 0) {
      return rc;
    }
  }
  if (next != NULL) {
    *next = i;
  }
  if (npos != NULL) {
    *npos = n;
  }
  return 0;
}

int cli_args_parse(const cli_command_info_t *info, int argc, char **argv,
                   cli_common_t *common, cli_opt_cb cb, void *ud,
                   const char **pos, size_t *npos) {
  int rc =
      parse_words(info, argc, argv, common, cb, ud, pos, npos, false, NULL);
  if (rc != 0) {
    return rc;
  }
  if (!common->help && *npos < info->min_pos) {
    return cli_usage_error(info, "missing argument");
  }
  return 0;
}

int cli_args_parse_prefix(const cli_command_info_t *info, int argc, char **argv,
                          cli_common_t *common, cli_opt_cb cb, void *ud,
                          int *next) {
  return parse_words(info, argc, argv, common, cb, ud, NULL, NULL, true, next);
}

void cli_print_help(FILE *out, const cli_command_info_t *info) {
  print_usage_line(out, info);
  fprintf(out, "\n%s\n\nOptions:\n", info->summary);
  for (const cli_opt_t *o = info->opts; o->id != 0; o++) {
    char left[64];
    int len;
    if (o->short_name != 0) {
      len = snprintf(left, sizeof(left), "-%c, --%s", o->short_name,
                     o->long_name);
    } else {
      len = snprintf(left, sizeof(left), "    --%s", o->long_name);
    }
    if (o->metavar != NULL && len > 0 && (size_t)len < sizeof(left)) {
      snprintf(left + len, sizeof(left) - (size_t)len, " %s", o->metavar);
    }
    fprintf(out, "  %-26s %s\n", left, o->help);
  }
}
