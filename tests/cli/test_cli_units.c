/*
 * Unit tests of the tern command's pieces that need no broker: the UTF-8
 * text check that decides how a payload is printed, and the option parser.
 * Built from the CLI's own sources (client/cli/output.c, args.c).
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <string.h>

#include "args.h"
#include "output.h"

#define TEXT(s) cli_is_text(s, sizeof(s) - 1)

Test(cli_text, plain_ascii_and_empty_are_text) {
  cr_expect(TEXT("hello world"));
  cr_expect(TEXT(""));
  cr_expect(TEXT("~!@#$%^&*()"));
}

Test(cli_text, well_formed_multibyte_is_text) {
  cr_expect(TEXT("\xc3\xa9"));         /* U+00E9 */
  cr_expect(TEXT("\xe2\x9c\x93"));     /* U+2713 */
  cr_expect(TEXT("\xf0\x9f\x90\xa6")); /* U+1F426 */
  cr_expect(TEXT("\xf4\x8f\xbf\xbf")); /* U+10FFFF */
  cr_expect(TEXT("\xc2\xa0"));         /* U+00A0, first after C1 */
}

Test(cli_text, control_characters_are_not_text) {
  cr_expect_not(TEXT("a\tb"));
  cr_expect_not(TEXT("line\n"));
  cr_expect_not(TEXT("\r"));
  cr_expect_not(TEXT("\x7f"));
  cr_expect_not(TEXT("\xc2\x85")); /* U+0085, a C1 control */
  cr_expect_not(cli_is_text("a\0b", 3));
}

Test(cli_text, malformed_utf8_is_not_text) {
  cr_expect_not(TEXT("\xc0\xaf"));         /* overlong '/' */
  cr_expect_not(TEXT("\xe0\x80\xaf"));     /* overlong, 3 bytes */
  cr_expect_not(TEXT("\xf0\x80\x80\xaf")); /* overlong, 4 bytes */
  cr_expect_not(TEXT("\xed\xa0\x80"));     /* surrogate U+D800 */
  cr_expect_not(TEXT("\xf4\x90\x80\x80")); /* above U+10FFFF */
  cr_expect_not(TEXT("\xf5\x80\x80\x80")); /* invalid lead byte */
  cr_expect_not(TEXT("\x80"));             /* lone continuation */
  cr_expect_not(TEXT("\xc3"));             /* truncated */
  cr_expect_not(TEXT("\xe2\x9c"));         /* truncated */
  cr_expect_not(TEXT("\xc3\x28"));         /* bad continuation */
  cr_expect_not(TEXT("\xff"));
}

/* The parser, with a table like a subcommand's. */
enum { T_FLAG = CLI_OPT_FIRST_CMD, T_VALUE };

static const cli_opt_t t_opts[] = {
    CLI_COMMON_OPTS,
    {"flag", 'f', false, T_FLAG, NULL, "a flag"},
    {"value", 'v', true, T_VALUE, "X", "an option with a value"},
    {0},
};

static const cli_command_info_t t_info = {
    .name = "t",
    .usage = "t [options] A [B]",
    .summary = "test",
    .opts = t_opts,
    .min_pos = 1,
    .max_pos = 2,
};

typedef struct seen {
  int flags;
  const char *value;
} seen_t;

static int t_cb(const cli_command_info_t *info, int id, const char *value,
                void *ud) {
  seen_t *s = ud;
  (void)info;
  if (id == T_FLAG) {
    s->flags++;
  } else if (id == T_VALUE) {
    s->value = value;
  }
  return 0;
}

static int parse(int argc, char **argv, cli_common_t *c, seen_t *s,
                 const char **pos, size_t *npos) {
  memset(s, 0, sizeof(*s));
  c->server = "default:1";
  c->name = NULL;
  c->help = false;
  return cli_args_parse(&t_info, argc, argv, c, t_cb, s, pos, npos);
}

Test(cli_args, options_and_positionals_interleave) {
  char *argv[] = {"a", "--flag", "-s", "h:2", "b", "--value=x=y", "-f"};
  cli_common_t c;
  seen_t s;
  const char *pos[2];
  size_t npos;
  cr_assert_eq(parse(7, argv, &c, &s, pos, &npos), 0);
  cr_expect_eq(npos, 2);
  cr_expect_str_eq(pos[0], "a");
  cr_expect_str_eq(pos[1], "b");
  cr_expect_eq(s.flags, 2);
  cr_expect_str_eq(s.value, "x=y");
  cr_expect_str_eq(c.server, "h:2");
}

Test(cli_args, short_clusters_and_attached_values) {
  char *argv[] = {"-ffvX", "--server", "h:3", "--name=me", "a"};
  cli_common_t c;
  seen_t s;
  const char *pos[2];
  size_t npos;
  cr_assert_eq(parse(5, argv, &c, &s, pos, &npos), 0);
  cr_expect_eq(s.flags, 2);
  cr_expect_str_eq(s.value, "X");
  cr_expect_str_eq(c.server, "h:3");
  cr_expect_str_eq(c.name, "me");
  cr_expect_eq(npos, 1);
}

Test(cli_args, double_dash_ends_options) {
  char *argv[] = {"--", "-f", "--value"};
  cli_common_t c;
  seen_t s;
  const char *pos[2];
  size_t npos;
  cr_assert_eq(parse(3, argv, &c, &s, pos, &npos), 0);
  cr_expect_eq(s.flags, 0);
  cr_expect_eq(npos, 2);
  cr_expect_str_eq(pos[0], "-f");
  cr_expect_str_eq(pos[1], "--value");
}

Test(cli_args, help_skips_the_positional_check) {
  char *argv[] = {"-h"};
  cli_common_t c;
  seen_t s;
  const char *pos[2];
  size_t npos;
  cr_assert_eq(parse(1, argv, &c, &s, pos, &npos), 0);
  cr_expect(c.help);
  cr_expect_eq(npos, 0);
}

Test(cli_args, mistakes_are_usage_errors, .init = cr_redirect_stderr) {
  char *unknown[] = {"a", "--nope"};
  char *flag_value[] = {"a", "--flag=1"};
  char *no_value[] = {"a", "-v"};
  char *too_many[] = {"a", "b", "c"};
  char *too_few[] = {"-f"};
  cli_common_t c;
  seen_t s;
  const char *pos[2];
  size_t npos;
  cr_expect_eq(parse(2, unknown, &c, &s, pos, &npos), CLI_EUSAGE);
  cr_expect_eq(parse(2, flag_value, &c, &s, pos, &npos), CLI_EUSAGE);
  cr_expect_eq(parse(2, no_value, &c, &s, pos, &npos), CLI_EUSAGE);
  cr_expect_eq(parse(3, too_many, &c, &s, pos, &npos), CLI_EUSAGE);
  cr_expect_eq(parse(1, too_few, &c, &s, pos, &npos), CLI_EUSAGE);
}

Test(cli_args, numbers_are_checked, .init = cr_redirect_stderr) {
  uint64_t v = 0;
  cr_expect_eq(cli_parse_u64(&t_info, "--n", "42", 1, 100, &v), 0);
  cr_expect_eq(v, 42);
  cr_expect_eq(cli_parse_u64(&t_info, "--n", "0", 1, 100, &v), CLI_EUSAGE);
  cr_expect_eq(cli_parse_u64(&t_info, "--n", "101", 1, 100, &v), CLI_EUSAGE);
  cr_expect_eq(cli_parse_u64(&t_info, "--n", "-1", 0, 100, &v), CLI_EUSAGE);
  cr_expect_eq(cli_parse_u64(&t_info, "--n", " 1", 0, 100, &v), CLI_EUSAGE);
  cr_expect_eq(cli_parse_u64(&t_info, "--n", "1x", 0, 100, &v), CLI_EUSAGE);
  cr_expect_eq(cli_parse_u64(&t_info, "--n", "", 0, 100, &v), CLI_EUSAGE);
  cr_expect_eq(
      cli_parse_u64(&t_info, "--n", "99999999999999999999", 0, UINT64_MAX, &v),
      CLI_EUSAGE);
  cr_expect_eq(v, 42, "a failed parse leaves the value alone");
}
