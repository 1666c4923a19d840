/*
 * Topics and patterns: validation and matching, shared by broker and client.
 */
#include <string.h>

#include "proto_internal.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"
#include "tern_proto/topic.h"

void tp_token_iter_init(tp_token_iter_t *it, const char *s, size_t len) {
  it->p = s;
  it->end = s + len;
  it->done = len == 0;
}

int tp_token_next(tp_token_iter_t *it, const char **tok, size_t *tok_len) {
  if (it->done)
    return 0;
  const char *dot = memchr(it->p, '.', (size_t)(it->end - it->p));
  *tok = it->p;
  if (dot == NULL) {
    *tok_len = (size_t)(it->end - it->p);
    it->done = true;
  } else {
    *tok_len = (size_t)(dot - it->p);
    it->p = dot + 1;
  }
  return 1;
}

static bool is_token(const char *tok, size_t n, char c) {
  return n == 1 && tok[0] == c;
}

/*
 * One validator for both: every token non-empty, no ASCII whitespace or
 * control byte, valid UTF-8 overall; wildcards only as whole tokens, only
 * when allowed, and '>' only last.
 */
/* ASCII classes for tp__topic_ascii_check: controls, space, DEL, '*' and
 * '>' are bad, '.' separates tokens, every byte >= 0x80 defers to the
 * general check. */
/* clang-format off */
const unsigned char tp__topic_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 2, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
};
/* clang-format on */

static bool valid(const char *s, size_t len, size_t max_len, bool wildcards) {
  if (max_len == 0)
    max_len = TP_DEFAULT_MAX_TOPIC;
  if (s == NULL || len == 0 || len > max_len)
    return false;
  if (!wildcards) {
    int fast = tp__topic_ascii_check((const uint8_t *)s, len);
    if (fast >= 0)
      return fast == 1;
  }
  if (!tp__utf8_valid((const uint8_t *)s, len))
    return false;
  tp_token_iter_t it;
  const char *tok;
  size_t n;
  tp_token_iter_init(&it, s, len);
  while (tp_token_next(&it, &tok, &n)) {
    if (n == 0)
      return false;
    if (is_token(tok, n, '*') || is_token(tok, n, '>')) {
      if (!wildcards)
        return false;
      if (tok[0] == '>' && !it.done)
        return false;
      continue;
    }
    for (size_t i = 0; i < n; i++) {
      unsigned char c = (unsigned char)tok[i];
      if (c <= 0x20 || c == 0x7F || c == '*' || c == '>')
        return false;
    }
  }
  return true;
}

int tp_topic_validate(const char *topic, size_t len, size_t max_len) {
  return valid(topic, len, max_len, false) ? 0 : TP_ETOPIC;
}

int tp_pattern_validate(const char *pattern, size_t len, size_t max_len) {
  return valid(pattern, len, max_len, true) ? 0 : TP_EPATTERN;
}

bool tp_pattern_has_wildcard(const char *pattern, size_t len) {
  tp_token_iter_t it;
  const char *tok;
  size_t n;
  tp_token_iter_init(&it, pattern, len);
  while (tp_token_next(&it, &tok, &n))
    if (is_token(tok, n, '*') || is_token(tok, n, '>'))
      return true;
  return false;
}

bool tp_topic_is_system(const char *topic, size_t len) {
  return len > 0 && topic[0] == '$';
}

/*
 * Walks both token lists in step. '>' ends the walk successfully if the
 * topic still has a token to give it; '*' takes any one token. A pattern
 * that starts with a wildcard never matches a '$' topic.
 */
bool tp_pattern_match(const char *pattern, size_t plen, const char *topic,
                      size_t tlen) {
  tp_token_iter_t pi, ti;
  const char *pt, *tt;
  size_t pn, tn;
  bool first = true;
  tp_token_iter_init(&pi, pattern, plen);
  tp_token_iter_init(&ti, topic, tlen);
  while (tp_token_next(&pi, &pt, &pn)) {
    bool star = is_token(pt, pn, '*'), rest = is_token(pt, pn, '>');
    if (first && (star || rest) && tp_topic_is_system(topic, tlen))
      return false;
    first = false;
    if (!tp_token_next(&ti, &tt, &tn))
      return false;
    if (rest)
      return true;
    if (!star && (pn != tn || memcmp(pt, tt, pn) != 0))
      return false;
  }
  return !tp_token_next(&ti, &tt, &tn);
}
