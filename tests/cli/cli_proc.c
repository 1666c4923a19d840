/*
 * Test helper: the `tern` program as a child process (see cli_proc.h).
 */
#include "cli_proc.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TERN_CLI_PATH
#define TERN_CLI_PATH "tern"
#endif

#define MAX_ARGS 64

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(long long deadline) {
  long long left = deadline - now_ms();
  return left < 0 ? 0 : (int)left;
}

static void buf_append(tc_buf_t *b, const char *p, size_t n) {
  char *grown = realloc(b->data, b->len + n + 1);
  cr_assert_not_null(grown, "out of memory");
  b->data = grown;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

/* In the forked child: wire the pipes to 0/1/2 and exec tern. The child
 * dies with the test (PDEATHSIG) so a failed test leaves nothing behind. */
static void exec_child(int in_fd, int out_fd, int err_fd, char *const argv[]) {
  sigset_t none;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_DFL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  dup2(in_fd, 0);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  for (int fd = 3; fd < 1024; fd++) {
    close(fd);
  }
  execv(argv[0], argv);
  _exit(127);
}

void tc_spawn(tc_proc_t *p, const char *const *argv) {
  int in[2], out[2], err[2];
  const char *full[MAX_ARGS];
  size_t n = 0;
  memset(p, 0, sizeof(*p));
  signal(SIGPIPE, SIG_IGN);
  full[n++] = TERN_CLI_PATH;
  for (size_t i = 0; argv != NULL && argv[i] != NULL; i++) {
    cr_assert_lt(n, (size_t)MAX_ARGS - 1, "too many arguments");
    full[n++] = argv[i];
  }
  full[n] = NULL;
  cr_assert_eq(pipe(in), 0);
  cr_assert_eq(pipe(out), 0);
  cr_assert_eq(pipe(err), 0);
  p->pid = fork();
  cr_assert_geq(p->pid, 0, "fork: %s", strerror(errno));
  if (p->pid == 0) {
    exec_child(in[0], out[1], err[1], (char *const *)full);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  p->in_fd = in[1];
  p->out_fd = out[0];
  p->err_fd = err[0];
  p->status = -1;
}

void tc_write_stdin(tc_proc_t *p, const char *data) {
  size_t len = strlen(data), done = 0;
  cr_assert_geq(p->in_fd, 0, "stdin already closed");
  while (done < len) {
    ssize_t w = write(p->in_fd, data + done, len - done);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    cr_assert_gt(w, 0, "writing the child's stdin: %s", strerror(errno));
    done += (size_t)w;
  }
}

void tc_close_stdin(tc_proc_t *p) {
  if (p->in_fd >= 0) {
    close(p->in_fd);
    p->in_fd = -1;
  }
}

bool tc_pump_many(tc_proc_t *const *ps, size_t n, int timeout_ms) {
  struct pollfd fds[2 * TC_PUMP_MAX];
  tc_proc_t *owner[2 * TC_PUMP_MAX];
  nfds_t nfds = 0;
  int r;
  cr_assert_leq(n, (size_t)TC_PUMP_MAX);
  for (size_t i = 0; i < n; i++) {
    if (ps[i]->out_fd >= 0) {
      owner[nfds] = ps[i];
      fds[nfds++] = (struct pollfd){.fd = ps[i]->out_fd, .events = POLLIN};
    }
    if (ps[i]->err_fd >= 0) {
      owner[nfds] = ps[i];
      fds[nfds++] = (struct pollfd){.fd = ps[i]->err_fd, .events = POLLIN};
    }
  }
  if (nfds == 0) {
    return false;
  }
  do {
    r = poll(fds, nfds, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) {
    return false;
  }
  for (nfds_t i = 0; i < nfds; i++) {
    tc_proc_t *p = owner[i];
    char chunk[4096];
    ssize_t got;
    bool is_out = fds[i].fd == p->out_fd;
    if (fds[i].revents == 0) {
      continue;
    }
    got = read(fds[i].fd, chunk, sizeof(chunk));
    if (got > 0) {
      buf_append(is_out ? &p->out : &p->err, chunk, (size_t)got);
    } else if (got == 0 || errno != EINTR) {
      close(fds[i].fd);
      if (is_out) {
        p->out_fd = -1;
      } else {
        p->err_fd = -1;
      }
    }
  }
  return true;
}

static bool pump(tc_proc_t *p, int timeout_ms) {
  return tc_pump_many(&p, 1, timeout_ms);
}

static bool has_line(const tc_buf_t *b, const char *line) {
  size_t n = strlen(line);
  const char *s = b->data;
  while (s != NULL && *s != '\0') {
    const char *nl = strchr(s, '\n');
    if (nl == NULL) {
      return false; /* an unfinished line does not count yet */
    }
    if ((size_t)(nl - s) == n && memcmp(s, line, n) == 0) {
      return true;
    }
    s = nl + 1;
  }
  return false;
}

static void wait_line(tc_proc_t *p, const tc_buf_t *b, const char *name,
                      const char *line) {
  long long deadline = now_ms() + TC_WAIT_MS;
  while (!has_line(b, line)) {
    cr_assert(pump(p, left_ms(deadline)),
              "tern did not print \"%s\" on %s (stderr: %s)", line, name,
              p->err.data != NULL ? p->err.data : "");
  }
}

void tc_wait_stderr_text(tc_proc_t *p, const char *text) {
  long long deadline = now_ms() + TC_WAIT_MS;
  while (p->err.data == NULL || strstr(p->err.data, text) == NULL) {
    cr_assert(pump(p, left_ms(deadline)),
              "tern did not print \"%s\" on stderr (stderr: %s)", text,
              p->err.data != NULL ? p->err.data : "");
  }
}

void tc_wait_stderr_line(tc_proc_t *p, const char *line) {
  wait_line(p, &p->err, "stderr", line);
}

void tc_wait_stdout_line(tc_proc_t *p, const char *line) {
  wait_line(p, &p->out, "stdout", line);
}

/*
 * In a sanitizer build the child reports leaks and UB on its own stderr,
 * which we capture, so ctest's FAIL_REGULAR_EXPRESSION would never see
 * them: fail the test and pass the report on to our stderr.
 */
static void check_sanitizers(const tc_proc_t *p) {
  const char *e = p->err.data;
  if (e == NULL) {
    return;
  }
  if (strstr(e, "Sanitizer") != NULL || strstr(e, "runtime error:") != NULL) {
    fprintf(stderr, "%s", e);
    cr_expect_fail("tern reported a sanitizer error (see above)");
  }
}

int tc_wait_exit(tc_proc_t *p, int timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  int status = 0;
  pid_t w;
  while (p->out_fd >= 0 || p->err_fd >= 0) {
    if (!pump(p, left_ms(deadline)) && left_ms(deadline) == 0) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, &status, 0);
      cr_assert_fail("tern did not exit within %d ms (stderr: %s)", timeout_ms,
                     p->err.data != NULL ? p->err.data : "");
    }
  }
  /* Both pipes at EOF: the child has exited or is about to. */
  do {
    w = waitpid(p->pid, &status, 0);
  } while (w < 0 && errno == EINTR);
  cr_assert_eq(w, p->pid, "waitpid: %s", strerror(errno));
  p->status = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  check_sanitizers(p);
  return p->status;
}

void tc_signal(tc_proc_t *p, int sig) {
  kill(p->pid, sig);
}

void tc_free(tc_proc_t *p) {
  tc_close_stdin(p);
  if (p->out_fd >= 0) {
    close(p->out_fd);
  }
  if (p->err_fd >= 0) {
    close(p->err_fd);
  }
  free(p->out.data);
  free(p->err.data);
  memset(p, 0, sizeof(*p));
}

int tc_run(tc_proc_t *p, const char *const *argv, const char *stdin_data) {
  tc_spawn(p, argv);
  if (stdin_data != NULL) {
    tc_write_stdin(p, stdin_data);
  }
  tc_close_stdin(p);
  return tc_wait_exit(p, TC_WAIT_MS);
}

size_t tc_count_lines(const char *s) {
  size_t n = 0;
  if (s == NULL) {
    return 0;
  }
  for (const char *c = s; *c != '\0'; c++) {
    if (*c == '\n') {
      n++;
    }
  }
  if (*s != '\0' && s[strlen(s) - 1] != '\n') {
    n++;
  }
  return n;
}

const char *tc_server(int port) {
  static char buf[32];
  snprintf(buf, sizeof(buf), "127.0.0.1:%d", port);
  return buf;
}
