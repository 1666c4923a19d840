/*
 * Topic and pattern validation and matching, as tables.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tern_proto/errors.h"
#include "tern_proto/frame.h"
#include "tern_proto/topic.h"

typedef struct vcase {
  const char *s;
  bool topic_ok;
  bool pattern_ok;
} vcase_t;

static const vcase_t vcases[] = {
    {"a", true, true},
    {"orders.eu.new", true, true},
    {"$SYS.conns", true, true},
    {"a-b_c:d/e", true, true},
    {"caf\xc3\xa9.men\xc3\xbc", true, true},
    {"", false, false},
    {".", false, false},
    {".a", false, false},
    {"a.", false, false},
    {"a..b", false, false},
    {"a b", false, false},
    {" a", false, false},
    {"a\tb", false, false},
    {"a\nb", false, false},
    {"a\x01"
     "b",
     false, false},
    {"a\x7f", false, false},
    {"a.\x1f", false, false},
    {"\xc3\x28", false, false}, /* invalid UTF-8 */
    {"*", false, true},
    {">", false, true},
    {"a.*", false, true},
    {"a.>", false, true},
    {"*.*.>", false, true},
    {"*.b.*", false, true},
    {"a*", false, false},
    {"*a", false, false},
    {"a.b*.c", false, false},
    {"a>", false, false},
    {"a.>b", false, false},
    {">.a", false, false},
    {"a.>.b", false, false},
    {"a.>.>", false, false},
    {"**", false, false},
    {"$SYS.>", false, true},
};

Test(topic, validation_table) {
  for (size_t i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
    const vcase_t *c = &vcases[i];
    size_t n = strlen(c->s);
    cr_assert_eq(tp_topic_validate(c->s, n, 0) == 0, c->topic_ok, "topic '%s'",
                 c->s);
    cr_assert_eq(tp_pattern_validate(c->s, n, 0) == 0, c->pattern_ok,
                 "pattern '%s'", c->s);
  }
}

Test(topic, error_codes) {
  cr_assert_eq(tp_topic_validate("a*", 2, 0), TP_ETOPIC);
  cr_assert_eq(tp_pattern_validate("a*", 2, 0), TP_EPATTERN);
  cr_assert_eq(tp_topic_validate("a", 1, 0), 0);
}

Test(topic, embedded_nul_is_a_control_byte) {
  cr_assert_eq(tp_topic_validate("a\0b", 3, 0), TP_ETOPIC);
}

Test(topic, length_limit) {
  char s[2048];
  memset(s, 'x', sizeof(s));
  cr_assert_eq(tp_topic_validate(s, TP_DEFAULT_MAX_TOPIC, 0), 0);
  cr_assert_eq(tp_topic_validate(s, TP_DEFAULT_MAX_TOPIC + 1, 0), TP_ETOPIC);
  cr_assert_eq(tp_pattern_validate(s, TP_DEFAULT_MAX_TOPIC + 1, 0),
               TP_EPATTERN);
  cr_assert_eq(tp_topic_validate(s, 2000, 2048), 0);
  cr_assert_eq(tp_topic_validate(s, 11, 10), TP_ETOPIC);
  cr_assert_eq(tp_topic_validate(s, 10, 10), 0);
}

typedef struct mcase {
  const char *pattern;
  const char *topic;
  bool match;
} mcase_t;

static const mcase_t mcases[] = {
    {"a", "a", true},
    {"a", "b", false},
    {"a", "a.b", false},
    {"a.b", "a", false},
    {"a.b", "a.b", true},
    {"ab", "a", false},
    {"a", "ab", false},
    {"*", "a", true},
    {"*", "a.b", false},
    {"a.*", "a.b", true},
    {"a.*", "a", false},
    {"a.*", "a.b.c", false},
    {"*.b", "a.b", true},
    {"*.b", "a.c", false},
    {"*.*", "a.b", true},
    {"a.*.c", "a.x.c", true},
    {"a.*.c", "a.x.d", false},
    {">", "a", true},
    {">", "a.b.c", true},
    {"a.>", "a", false},
    {"a.>", "a.b", true},
    {"a.>", "a.b.c", true},
    {"a.>", "b.c", false},
    {"*.>", "a.b", true},
    {"*.>", "a", false},
    {"a.*.>", "a.b.c.d", true},
    /* '$' topics: a leading wildcard does not match them */
    {"*.x", "$SYS.x", false},
    {">", "$SYS.x", false},
    {"*", "$SYS", false},
    {"*.>", "$SYS.x", false},
    {"$SYS.>", "$SYS.x", true},
    {"$SYS.>", "$SYS.x.y", true},
    {"$SYS.*", "$SYS.x", true},
    {"$SYS.x", "$SYS.x", true},
    {"$SYS.>", "SYS.x", false},
    {"a.*", "a.$b", true}, /* only the first token is special */
    {"a.>", "a.$b.c", true},
};

Test(topic, match_table) {
  for (size_t i = 0; i < sizeof(mcases) / sizeof(mcases[0]); i++) {
    const mcase_t *c = &mcases[i];
    cr_assert_eq(tp_pattern_validate(c->pattern, strlen(c->pattern), 0), 0,
                 "pattern '%s'", c->pattern);
    cr_assert_eq(tp_topic_validate(c->topic, strlen(c->topic), 0), 0,
                 "topic '%s'", c->topic);
    cr_assert_eq(tp_pattern_match(c->pattern, strlen(c->pattern), c->topic,
                                  strlen(c->topic)),
                 c->match, "'%s' vs '%s'", c->pattern, c->topic);
  }
}

Test(topic, wildcard_and_system) {
  cr_assert(tp_pattern_has_wildcard("a.*", 3));
  cr_assert(tp_pattern_has_wildcard(">", 1));
  cr_assert(!tp_pattern_has_wildcard("a.b", 3));
  cr_assert(!tp_pattern_has_wildcard("a*", 2));
  cr_assert(tp_topic_is_system("$SYS.x", 6));
  cr_assert(!tp_topic_is_system("SYS.x", 5));
  cr_assert(!tp_topic_is_system("", 0));
}

Test(topic, token_iter) {
  tp_token_iter_t it;
  const char *tok;
  size_t n;
  tp_token_iter_init(&it, "ab.c..d", 7);
  static const char *want[] = {"ab", "c", "", "d"};
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(tp_token_next(&it, &tok, &n), 1);
    cr_assert_eq(n, strlen(want[i]));
    cr_assert(memcmp(tok, want[i], n) == 0);
  }
  cr_assert_eq(tp_token_next(&it, &tok, &n), 0);
  tp_token_iter_init(&it, "", 0);
  cr_assert_eq(tp_token_next(&it, &tok, &n), 0);
  tp_token_iter_init(&it, "a.", 2);
  cr_assert_eq(tp_token_next(&it, &tok, &n), 1);
  cr_assert_eq(tp_token_next(&it, &tok, &n), 1);
  cr_assert_eq(n, 0);
  cr_assert_eq(tp_token_next(&it, &tok, &n), 0);
}
