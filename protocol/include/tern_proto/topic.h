/*
 * Topics and patterns: validation and matching, once, for broker and client.
 *
 * A topic is tokens separated by '.', each non-empty, with no ASCII
 * whitespace or control character (0x00-0x20, 0x7F); at most max_len bytes.
 * A pattern may also use '*' (exactly one token) and '>' (one or more
 * tokens, last token only), as whole tokens. A pattern whose first token is
 * a wildcard does not match a topic whose first token starts with '$'.
 */
#ifndef TERN_PROTO_TOPIC_H
#define TERN_PROTO_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

/* A topic a client may publish to (no wildcards). 0 or TP_ETOPIC. */
int tp_topic_validate(const char *topic, size_t len, size_t max_len);
/* A pattern a client may subscribe to. 0 or TP_EPATTERN. */
int tp_pattern_validate(const char *pattern, size_t len, size_t max_len);
/* True when the pattern holds '*' or '>' tokens. */
bool tp_pattern_has_wildcard(const char *pattern, size_t len);
/* True for server topics ("$SYS.x"): first byte '$'. */
bool tp_topic_is_system(const char *topic, size_t len);
/* Both arguments must be valid; topic has no wildcards. */
bool tp_pattern_match(const char *pattern, size_t plen, const char *topic,
                      size_t tlen);

/* Splits a topic or pattern into tokens without copying. */
typedef struct tp_token_iter {
  const char *p;
  const char *end;
  bool done;
} tp_token_iter_t;
void tp_token_iter_init(tp_token_iter_t *it, const char *s, size_t len);
/* 1 and the next token, or 0 at the end. */
int tp_token_next(tp_token_iter_t *it, const char **tok, size_t *tok_len);

#endif
