/*
 * Fuzz target: topic and pattern validation, tokenising and matching.
 *
 * Input layout: byte 0 picks max_len (0 = the default 1024, else 5 * byte,
 * so limits on both sides of 1024 are tried); the rest is a pattern and a
 * topic separated by the first 0xFF byte, which can never occur in UTF-8.
 *
 * The library is checked against a reference written from PROTOCOL.md
 * section 5 (validity and matching over token arrays), and against
 * properties that hold whatever the reference says: a valid topic is a
 * valid pattern and matches itself, matches '>' and '*'-substitutions of
 * itself unless it is a '$' topic, and so on.
 */
#include <stdlib.h>
#include <string.h>

#include "frame_check.h"
#include "tern_proto/errors.h"
#include "tern_proto/topic.h"

#define DEFAULT_MAX 1024u
/* max_len <= 5 * 255 bytes, so at most 1276 tokens (all empty). */
#define MAX_TOKENS 1280u
/* Substitution properties are checked for this many leading tokens. */
#define SUBST_TOKENS 16u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct toks {
  const char *p[MAX_TOKENS];
  size_t n[MAX_TOKENS];
  size_t count;
} toks_t;

/* Splits on '.' by index; false when there are too many tokens to hold. */
static bool split(const char *s, size_t len, toks_t *t) {
  size_t begin = 0;
  t->count = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && s[i] != '.')
      continue;
    if (t->count == MAX_TOKENS)
      return false;
    t->p[t->count] = s + begin;
    t->n[t->count] = i - begin;
    t->count++;
    begin = i + 1;
  }
  return true;
}

static bool is_wild(const char *p, size_t n) {
  return n == 1 && (p[0] == '*' || p[0] == '>');
}

/* PROTOCOL.md section 5, read literally. */
static bool ref_valid(const char *s, size_t len, size_t max_len, bool wildcards,
                      toks_t *t) {
  size_t limit = max_len == 0 ? DEFAULT_MAX : max_len;
  if (len == 0 || len > limit || !fc_utf8_ok((const uint8_t *)s, len))
    return false;
  if (!split(s, len, t))
    fc_fail("more than %u tokens in %zu bytes", MAX_TOKENS, len);
  for (size_t k = 0; k < t->count; k++) {
    if (t->n[k] == 0)
      return false;
    if (is_wild(t->p[k], t->n[k])) {
      if (!wildcards || (t->p[k][0] == '>' && k + 1 != t->count))
        return false;
      continue;
    }
    for (size_t i = 0; i < t->n[k]; i++) {
      unsigned char c = (unsigned char)t->p[k][i];
      if (c <= 0x20 || c == 0x7F || c == '*' || c == '>')
        return false;
    }
  }
  return true;
}

static bool ref_match_from(const toks_t *p, size_t pi, const toks_t *t,
                           size_t ti) {
  for (; pi < p->count; pi++, ti++) {
    if (p->n[pi] == 1 && p->p[pi][0] == '>')
      return ti < t->count;
    if (ti == t->count)
      return false;
    if (p->n[pi] == 1 && p->p[pi][0] == '*')
      continue;
    if (p->n[pi] != t->n[ti] || memcmp(p->p[pi], t->p[ti], p->n[pi]) != 0)
      return false;
  }
  return ti == t->count;
}

static bool ref_match(const toks_t *p, const toks_t *t, bool system) {
  if (system && is_wild(p->p[0], p->n[0]))
    return false;
  return ref_match_from(p, 0, t, 0);
}

/* Any string: the iterator's tokens joined by '.' give the string back. */
static void check_tokens(const char *s, size_t len) {
  tp_token_iter_t it;
  const char *tok;
  size_t n, pos = 0, count = 0, dots = 0;
  for (size_t i = 0; i < len; i++)
    dots += s[i] == '.';
  tp_token_iter_init(&it, s, len);
  while (tp_token_next(&it, &tok, &n)) {
    if (count > 0) {
      if (pos >= len || s[pos] != '.')
        fc_fail("token %zu does not follow a dot", count);
      pos++;
    }
    if (tok != s + pos || n > len - pos || memchr(tok, '.', n) != NULL)
      fc_fail("token %zu is not the next piece of the string", count);
    pos += n;
    count++;
  }
  if (pos != len || count != (len == 0 ? 0 : dots + 1))
    fc_fail("tokens cover %zu of %zu bytes in %zu tokens (%zu dots)", pos, len,
            count, dots);
}

static bool lib_match(const char *p, size_t pn, const char *t, size_t tn) {
  return tp_pattern_match(p, pn, t, tn);
}

/*
 * Patterns made from a valid topic: each of the first tokens replaced by
 * '*', and each suffix replaced by '>'. All match it unless the wildcard is
 * the first token and the topic is a '$' topic; none of them is a topic.
 */
static void check_substitutions(const char *t, size_t len, size_t max_len,
                                const toks_t *tt) {
  bool sys = tp_topic_is_system(t, len);
  char *p = malloc(len + 2);
  if (p == NULL)
    fc_fail("out of memory");
  for (size_t k = 0; k < tt->count && k < SUBST_TOKENS; k++) {
    size_t before = (size_t)(tt->p[k] - t), after = before + tt->n[k];
    bool expect = !(k == 0 && sys);

    memcpy(p, t, before);
    p[before] = '*';
    memcpy(p + before + 1, t + after, len - after);
    size_t pn = before + 1 + (len - after);
    if (tp_pattern_validate(p, pn, max_len) != 0 ||
        tp_topic_validate(p, pn, max_len) == 0)
      fc_fail("'*' for token %zu: pattern/topic validity wrong", k);
    if (lib_match(p, pn, t, len) != expect)
      fc_fail("'*' for token %zu: match should be %d", k, expect);

    p[before] = '>';
    if (tp_pattern_validate(p, before + 1, max_len) != 0)
      fc_fail("'>' for tokens %zu..: pattern refused", k);
    if (lib_match(p, before + 1, t, len) != expect)
      fc_fail("'>' for tokens %zu..: match should be %d", k, expect);
    /* '>' needs at least one token: the prefix alone does not match. */
    if (k > 0 && lib_match(p, before + 1, t, before - 1))
      fc_fail("'>' matched a topic with no token left for it");
  }
  free(p);
}

static void check_one(const char *s, size_t len, size_t max_len, toks_t *t) {
  check_tokens(s, len);
  if (tp_topic_is_system(s, len) != (len > 0 && s[0] == '$'))
    fc_fail("tp_topic_is_system wrong");

  bool topic = tp_topic_validate(s, len, max_len) == 0;
  bool pattern = tp_pattern_validate(s, len, max_len) == 0;
  if (topic != ref_valid(s, len, max_len, false, t))
    fc_fail("tp_topic_validate says %d, PROTOCOL.md says %d", topic, !topic);
  if (pattern != ref_valid(s, len, max_len, true, t))
    fc_fail("tp_pattern_validate says %d, PROTOCOL.md says %d", pattern,
            !pattern);
  if (topic && !pattern)
    fc_fail("a valid topic is not a valid pattern");
  if (!pattern)
    return;

  bool wild = false;
  for (size_t k = 0; k < t->count; k++)
    wild |= is_wild(t->p[k], t->n[k]);
  if (tp_pattern_has_wildcard(s, len) != wild)
    fc_fail("tp_pattern_has_wildcard wrong");
  if (topic == wild)
    fc_fail("a valid pattern is a topic exactly when it has no wildcard");
  if (!topic)
    return;

  bool sys = tp_topic_is_system(s, len);
  if (!lib_match(s, len, s, len))
    fc_fail("a valid topic does not match itself");
  if (lib_match(">", 1, s, len) == sys)
    fc_fail("'>' matching a %s topic is wrong", sys ? "'$'" : "plain");
  if (lib_match("*", 1, s, len) != (!sys && t->count == 1))
    fc_fail("'*' matching wrong");
  check_substitutions(s, len, max_len, t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t max_len = (size_t)data[0] * 5;
  const char *s = (const char *)data + 1;
  size_t len = size - 1;
  const char *sep = memchr(s, 0xFF, len);
  size_t plen = sep ? (size_t)(sep - s) : len;
  const char *t = sep ? sep + 1 : s + len;
  size_t tlen = sep ? len - plen - 1 : 0;

  toks_t *pt = malloc(sizeof(*pt)), *tt = malloc(sizeof(*tt));
  if (pt == NULL || tt == NULL)
    fc_fail("out of memory");
  check_one(s, plen, max_len, pt);
  check_one(t, tlen, max_len, tt);

  if (tp_pattern_validate(s, plen, max_len) == 0 &&
      tp_topic_validate(t, tlen, max_len) == 0) {
    bool want = ref_match(pt, tt, tp_topic_is_system(t, tlen));
    if (lib_match(s, plen, t, tlen) != want)
      fc_fail("tp_pattern_match says %d, PROTOCOL.md says %d", !want, want);
  }
  free(pt);
  free(tt);
  return 0;
}
