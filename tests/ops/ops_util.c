/*
 * Helpers for the operations tests (see ops_util.h).
 */
#include "ops_util.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker_proc.h"

extern char **environ;

#define RUN_TIMEOUT_MS 30000

/* Reads both pipes to the end (or the deadline). */
static void drain_pipes(int ofd, int efd, ops_run_t *r) {
  size_t on = 0, en = 0;
  int64_t deadline = tt_now_ms() + RUN_TIMEOUT_MS;
  struct pollfd p[2] = {{.fd = ofd, .events = POLLIN},
                        {.fd = efd, .events = POLLIN}};
  int open_fds = 2;
  while (open_fds > 0) {
    int64_t left = deadline - tt_now_ms();
    if (left <= 0)
      break;
    int n = poll(p, 2, (int)left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
        continue;
      char *buf = i == 0 ? r->out : r->err;
      size_t *len = i == 0 ? &on : &en;
      char tmp[4096];
      ssize_t k = read(p[i].fd, tmp, sizeof tmp);
      if (k <= 0) {
        p[i].fd = -1;
        open_fds--;
        continue;
      }
      size_t room = sizeof r->out - 1 - *len;
      size_t take = (size_t)k < room ? (size_t)k : room;
      memcpy(buf + *len, tmp, take);
      *len += take;
    }
  }
  r->out[on] = '\0';
  r->err[en] = '\0';
}

void ops_run_ternd(ops_run_t *r, const char *const *args,
                   const char *const *env, const char *stdin_text) {
  int o[2], e[2], in[2];
  cr_assert_eq(pipe(o), 0);
  cr_assert_eq(pipe(e), 0);
  cr_assert_eq(pipe(in), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(o[1], 1);
    dup2(e[1], 2);
    for (int fd = 3; fd < 1024; fd++)
      close(fd);
    /* Only the variables the test names. */
    for (char **v = environ; *v != NULL;) {
      if (strncmp(*v, "TERN_", 5) == 0) {
        char name[128];
        size_t n = strcspn(*v, "=");
        snprintf(name, sizeof name, "%.*s", (int)n, *v);
        unsetenv(name);
        v = environ;
      } else {
        v++;
      }
    }
    for (size_t i = 0; env && env[i]; i++)
      putenv((char *)env[i]);
    const char *argv[64];
    size_t n = 0;
    argv[n++] = tt_ternd_path();
    for (size_t i = 0; args[i] && n < 63; i++)
      argv[n++] = args[i];
    argv[n] = NULL;
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(o[1]);
  close(e[1]);
  close(in[0]);
  tt_ignore_sigpipe();
  if (stdin_text != NULL) {
    ssize_t w = write(in[1], stdin_text, strlen(stdin_text));
    (void)w;
  }
  close(in[1]);
  drain_pipes(o[0], e[0], r);
  close(o[0]);
  close(e[0]);
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void ops_write_file(char *path, const char *text) {
  snprintf(path, 64, "/tmp/tern-ops-XXXXXX");
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
  size_t len = strlen(text);
  cr_assert_eq(write(fd, text, len), (ssize_t)len);
  close(fd);
}

int ops_http_get(int port, const char *path, char *body, size_t cap) {
  int fd = tt_connect(port);
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: "
                   "tern-tests\r\n\r\n",
                   path);
  tt_send_all(fd, req, (size_t)n);
  /* The server closes after the response: read to EOF. */
  static char resp[1 << 20];
  size_t used = 0;
  int64_t deadline = tt_now_ms() + TT_RECV_MS;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int64_t left = deadline - tt_now_ms();
    cr_assert_gt(left, 0, "no complete HTTP response for %s", path);
    if (poll(&p, 1, (int)left) <= 0)
      continue;
    ssize_t k = read(fd, resp + used, sizeof resp - 1 - used);
    if (k <= 0)
      break;
    used += (size_t)k;
  }
  close(fd);
  resp[used] = '\0';
  int code = 0;
  cr_assert_eq(sscanf(resp, "HTTP/1.1 %d", &code), 1, "response: %.80s", resp);
  const char *sep = strstr(resp, "\r\n\r\n");
  cr_assert_not_null(sep, "no header end");
  const char *cl = strstr(resp, "Content-Length: ");
  cr_assert_not_null(cl, "no Content-Length");
  size_t declared = strtoul(cl + 16, NULL, 10);
  cr_assert_eq(declared, strlen(sep + 4), "Content-Length is wrong");
  snprintf(body, cap, "%s", sep + 4);
  return code;
}

void ops_connect_creds(tt_raw_t *c, int port, const char *user,
                       const char *pass, const char *token, bool *auth_req) {
  tt_raw_attach(c, tt_connect(port));
  tp_frame_t f;
  tt_raw_expect(c, &f, TP_HELLO, TT_RECV_MS);
  if (auth_req != NULL)
    *auth_req = f.u.hello.auth_required;
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = 1;
  f.u.connect.echo = true;
  if (user)
    f.u.connect.user = tt_str(user);
  if (pass)
    f.u.connect.pass = tt_str(pass);
  if (token)
    f.u.connect.token = tt_str(token);
  tt_raw_send(c, &f);
}

void ops_login(tt_raw_t *c, int port, const char *user, const char *pass,
               const char *token) {
  ops_connect_creds(c, port, user, pass, token, NULL);
  tp_frame_t f;
  tt_raw_expect(c, &f, TP_OK, TT_RECV_MS);
}

uint64_t ops_metric(int port, const char *name) {
  static char body[1 << 20];
  cr_assert_eq(ops_http_get(port, "/metrics", body, sizeof body), 200);
  char key[256];
  snprintf(key, sizeof key, "\n%s ", name);
  const char *at = strstr(body, key);
  cr_assert_not_null(at, "no %s in /metrics", name);
  return strtoull(at + strlen(key), NULL, 10);
}
