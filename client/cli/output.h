/*
 * How the tern command prints received messages.
 */
#ifndef TERN_CLI_OUTPUT_H
#define TERN_CLI_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <tern/tern.h>

typedef enum cli_format {
  CLI_FORMAT_LINE,    /* "[#n] topic: payload" */
  CLI_FORMAT_HEADERS, /* the line, then one "  key: value" line per header */
  CLI_FORMAT_RAW      /* the payload bytes as they are, then "\n" */
} cli_format_t;

/*
 * True when the n bytes at p are well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF) and hold no control character (C0,
 * DEL or C1), so they can be printed on one line as they are.
 */
bool cli_is_text(const void *p, size_t n);

/*
 * Writes n bytes as text when cli_is_text, else as "<N bytes>".
 * Returns 0, or -1 when writing failed.
 */
int cli_print_payload(FILE *out, const void *p, size_t n);

/*
 * Prints message number seq (counted from 1) in the given format and
 * flushes out, so a reader at the other end of a pipe sees each message as
 * it arrives. Returns 0, or -1 when writing failed (errno tells why).
 */
int cli_print_msg(FILE *out, uint64_t seq, const tern_msg_t *m,
                  cli_format_t fmt);

#endif
