/*
 * Test helper: runs the built `tern` program as a child process with its
 * stdin, stdout and stderr on pipes, and collects what it prints.
 *
 * Waiting is event-driven: for a line on stderr ("ready") or for the child
 * to close its pipes and exit, each with a deadline that only guards
 * against a hang. Nothing here sleeps.
 */
#ifndef TERN_TESTS_CLI_PROC_H
#define TERN_TESTS_CLI_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Deadline for anything a test waits for from a child. */
#define TC_WAIT_MS 20000

typedef struct tc_buf {
  char *data; /* NUL-terminated */
  size_t len;
} tc_buf_t;

typedef struct tc_proc {
  pid_t pid;
  int in_fd;  /* -1 once closed */
  int out_fd; /* -1 at EOF */
  int err_fd; /* -1 at EOF */
  tc_buf_t out;
  tc_buf_t err;
  int status; /* exit code, or -signal when killed; valid after wait */
} tc_proc_t;

/* argv: NULL-terminated arguments after "tern" (cr_assert on failure). */
void tc_spawn(tc_proc_t *p, const char *const *argv);

/* Writes all of data to the child's stdin (cr_assert on failure). */
void tc_write_stdin(tc_proc_t *p, const char *data);
/* Closes the child's stdin (EOF for it). */
void tc_close_stdin(tc_proc_t *p);

/* Reads the child's output until stderr holds a line equal to line;
 * cr_assert fails the test when the child exits or the deadline passes
 * first. */
void tc_wait_stderr_line(tc_proc_t *p, const char *line);
/* The same for text anywhere on stderr. */
void tc_wait_stderr_text(tc_proc_t *p, const char *text);
/* The same for a line on stdout. */
void tc_wait_stdout_line(tc_proc_t *p, const char *line);

/* Reads the output to EOF and reaps the child; returns p->status. A child
 * that has not exited within timeout_ms is killed and the test fails. */
int tc_wait_exit(tc_proc_t *p, int timeout_ms);

/* Most children tc_pump_many watches at once. */
#define TC_PUMP_MAX 8

/*
 * Waits up to timeout_ms until at least one of the n children printed
 * something (or closed a pipe) and appends what came to its buffers.
 * Returns false when every pipe is at EOF or the time ran out.
 */
bool tc_pump_many(tc_proc_t *const *ps, size_t n, int timeout_ms);

/* Sends sig to the child. */
void tc_signal(tc_proc_t *p, int sig);

/* Frees the buffers and closes the pipes (after tc_wait_exit). */
void tc_free(tc_proc_t *p);

/* Spawns, writes stdin_data (NULL: none) and closes stdin, waits for the
 * exit. The caller frees *p. Returns the exit status. */
int tc_run(tc_proc_t *p, const char *const *argv, const char *stdin_data);

/* Number of lines in s (counting a last line without newline). */
size_t tc_count_lines(const char *s);

/* "127.0.0.1:PORT" in a static buffer of the calling test. */
const char *tc_server(int port);

#endif
