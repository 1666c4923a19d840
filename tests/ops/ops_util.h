/*
 * Helpers for the operations tests: run ternd as a one-shot command
 * (--check-config, --hash-password) with its output captured, write
 * temporary configuration files, speak minimal HTTP to the monitoring port,
 * and CONNECT with credentials.
 */
#ifndef TERN_TESTS_OPS_UTIL_H
#define TERN_TESTS_OPS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raw_client.h"

typedef struct ops_run {
  int status; /* exit status, or -1 if killed */
  char out[16384];
  char err[16384];
} ops_run_t;

/*
 * Runs ternd with args (NULL-terminated), the environment variables in env
 * ("NAME=value", NULL-terminated, may be NULL) added and every other
 * TERN_* variable removed, and stdin_text (may be NULL) on its stdin.
 */
void ops_run_ternd(ops_run_t *r, const char *const *args,
                   const char *const *env, const char *stdin_text);

/* Writes text to a new temporary file; its path goes to path (>= 64). */
void ops_write_file(char *path, const char *text);
/* Replaces the contents of the file at path with text. */
void ops_write_over(const char *path, const char *text);

/* Waits for the $SYS.server.reload advisory on c's subscription sid and
 * returns its body's "ok" value (cr_assert on anything else). */
bool ops_wait_reload(tt_raw_t *c, uint64_t sid);

/* GET path on 127.0.0.1:port: status code, and the body into body
 * (NUL-terminated, truncated to cap). cr_assert on I/O failure. */
int ops_http_get(int port, const char *path, char *body, size_t cap);

/* ops_http_get with more header lines (each ending in CRLF, or ""). */
int ops_http_get_with(int port, const char *path, const char *headers,
                      char *body, size_t cap);

/* Parses a whole HTTP/1.1 response in resp (len bytes, NUL-terminated):
 * checks Content-Length or decodes the chunked body, moves the body to the
 * start of resp (NUL-terminated) and returns its length; *code gets the
 * status. cr_assert on anything malformed. */
size_t ops_http_parse(char *resp, size_t len, int *code);

/* True when text is exactly one valid JSON value (syntax only). */
bool ops_json_valid(const char *text, size_t len);

/* One unlabelled or fully labelled sample of /metrics on port, e.g.
 * "tern_blocked_publishers" or "tern_dropped_messages_total{policy=
 * \"drop_oldest\"}". cr_assert that it is there. */
uint64_t ops_metric(int port, const char *name);

/* Opens a connection and sends CONNECT with the given credentials (each
 * may be NULL) without waiting for the answer; HELLO is read into *hello
 * when non-NULL. */
void ops_connect_creds(tt_raw_t *c, int port, const char *user,
                       const char *pass, const char *token, bool *auth_req);
/* The same, and the answer must be OK. */
void ops_login(tt_raw_t *c, int port, const char *user, const char *pass,
               const char *token);
/* On c (attached, nothing read yet): reads HELLO, then sends CONNECT (user,
 * pass), SUB 1 on topic, a PUB "hi" to it and a PING in one write, and
 * expects OK, the MSG and PONG in that order: frames sent behind a CONNECT
 * are handled once it is decided, in order. Closes c. */
void ops_login_pipelined(tt_raw_t *c, const char *user, const char *pass,
                         const char *topic);

#endif
