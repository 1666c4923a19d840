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

/* Reads fd to EOF (the server closes after each response) into buf. */
static size_t read_to_eof(int fd, char *buf, size_t cap, const char *what) {
  size_t used = 0;
  int64_t deadline = tt_now_ms() + TT_RECV_MS;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int64_t left = deadline - tt_now_ms();
    cr_assert_gt(left, 0, "no complete HTTP response for %s", what);
    if (poll(&p, 1, (int)left) <= 0)
      continue;
    cr_assert_lt(used, cap - 1, "response to %s larger than %zu", what, cap);
    ssize_t k = read(fd, buf + used, cap - 1 - used);
    if (k <= 0)
      break;
    used += (size_t)k;
  }
  buf[used] = '\0';
  return used;
}

size_t ops_http_parse(char *resp, size_t len, int *code) {
  *code = 0;
  cr_assert_eq(sscanf(resp, "HTTP/1.1 %d", code), 1, "response: %.80s", resp);
  char *sep = strstr(resp, "\r\n\r\n");
  cr_assert_not_null(sep, "no header end");
  *sep = '\0';
  char *body = sep + 4;
  size_t blen = len - (size_t)(body - resp);
  const char *cl = strstr(resp, "Content-Length: ");
  const char *chunked = strstr(resp, "Transfer-Encoding: chunked");
  if (cl != NULL) {
    size_t declared = strtoul(cl + 16, NULL, 10);
    cr_assert_eq(declared, blen, "Content-Length is wrong");
    memmove(resp, body, blen + 1);
    return blen;
  }
  cr_assert_not_null(chunked, "neither Content-Length nor chunked: %s", resp);
  /* Chunks: HEX\r\n DATA \r\n ... 0\r\n\r\n, decoded in place. */
  size_t out = 0;
  const char *p = body, *end = body + blen;
  for (;;) {
    char *hex_end;
    size_t n = strtoul(p, &hex_end, 16);
    cr_assert(hex_end != p && hex_end + 2 <= end && hex_end[0] == '\r' &&
                  hex_end[1] == '\n',
              "bad chunk header at %zu", (size_t)(p - body));
    p = hex_end + 2;
    if (n == 0) {
      cr_assert(p + 2 == end && p[0] == '\r' && p[1] == '\n',
                "bytes after the last chunk");
      break;
    }
    cr_assert_leq(n + 2, (size_t)(end - p), "truncated chunk");
    memmove(resp + out, p, n);
    out += n;
    p += n;
    cr_assert(p[0] == '\r' && p[1] == '\n', "chunk not ended by CRLF");
    p += 2;
  }
  resp[out] = '\0';
  return out;
}

int ops_http_get(int port, const char *path, char *body, size_t cap) {
  return ops_http_get_with(port, path, "", body, cap);
}

int ops_http_get_with(int port, const char *path, const char *headers,
                      char *body, size_t cap) {
  int fd = tt_connect(port);
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: "
                   "tern-tests\r\n%s\r\n",
                   path, headers);
  cr_assert_lt((size_t)n, sizeof req);
  tt_send_all(fd, req, (size_t)n);
  static char resp[1 << 22];
  size_t used = read_to_eof(fd, resp, sizeof resp, path);
  close(fd);
  int code;
  ops_http_parse(resp, used, &code);
  snprintf(body, cap, "%s", resp);
  return code;
}

/* ---- a strict JSON syntax check ----------------------------------------- */

typedef struct jp {
  const char *p, *end;
  int depth;
} jp_t;

static void jws(jp_t *j) {
  while (j->p < j->end &&
         (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
    j->p++;
}

static bool jvalue(jp_t *j);

static bool jstring(jp_t *j) {
  if (j->p >= j->end || *j->p != '"')
    return false;
  for (j->p++; j->p < j->end; j->p++) {
    unsigned char ch = (unsigned char)*j->p;
    if (ch == '"') {
      j->p++;
      return true;
    }
    if (ch < 0x20)
      return false;
    if (ch == '\\') {
      j->p++;
      if (j->p >= j->end || strchr("\"\\/bfnrtu", *j->p) == NULL)
        return false;
      if (*j->p == 'u') {
        for (int i = 0; i < 4; i++) {
          j->p++;
          if (j->p >= j->end || strchr("0123456789abcdefABCDEF", *j->p) == NULL)
            return false;
        }
      }
    }
  }
  return false;
}

static bool jnumber(jp_t *j) {
  const char *s = j->p;
  if (j->p < j->end && *j->p == '-')
    j->p++;
  while (j->p < j->end && strchr("0123456789.eE+-", *j->p) != NULL)
    j->p++;
  return j->p > s;
}

static bool jword(jp_t *j, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
    return false;
  j->p += n;
  return true;
}

static bool jcontainer(jp_t *j, char close, bool object) {
  if (++j->depth > 64)
    return false;
  j->p++;
  jws(j);
  if (j->p < j->end && *j->p == close) {
    j->p++;
    j->depth--;
    return true;
  }
  for (;;) {
    jws(j);
    if (object) {
      if (!jstring(j))
        return false;
      jws(j);
      if (j->p >= j->end || *j->p != ':')
        return false;
      j->p++;
    }
    if (!jvalue(j))
      return false;
    jws(j);
    if (j->p < j->end && *j->p == ',') {
      j->p++;
      continue;
    }
    if (j->p < j->end && *j->p == close) {
      j->p++;
      j->depth--;
      return true;
    }
    return false;
  }
}

static bool jvalue(jp_t *j) {
  jws(j);
  if (j->p >= j->end)
    return false;
  switch (*j->p) {
  case '{':
    return jcontainer(j, '}', true);
  case '[':
    return jcontainer(j, ']', false);
  case '"':
    return jstring(j);
  case 't':
    return jword(j, "true");
  case 'f':
    return jword(j, "false");
  case 'n':
    return jword(j, "null");
  default:
    return jnumber(j);
  }
}

bool ops_json_valid(const char *text, size_t len) {
  jp_t j = {text, text + len, 0};
  if (!jvalue(&j))
    return false;
  jws(&j);
  return j.p == j.end;
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

void ops_login_pipelined(tt_raw_t *c, const char *user, const char *pass,
                         const char *topic) {
  tp_frame_t f;
  tt_raw_expect(c, &f, TP_HELLO, TT_RECV_MS);
  tp_frame_init(&f, TP_CONNECT);
  f.u.connect.proto = 1;
  f.u.connect.user = tt_str(user);
  f.u.connect.pass = tt_str(pass);
  tt_raw_queue(c, &f);
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = 1;
  f.u.sub.pattern = tt_str(topic);
  tt_raw_queue(c, &f);
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = tt_str(topic);
  f.u.pub.payload.ptr = (const uint8_t *)"hi";
  f.u.pub.payload.len = 2;
  tt_raw_queue(c, &f);
  tp_frame_init(&f, TP_PING);
  tt_raw_queue(c, &f);
  tt_raw_flush(c);
  tt_raw_expect(c, &f, TP_OK, TT_RECV_MS);
  tt_raw_expect_msg(c, 1, topic, "hi", 2, TT_RECV_MS);
  tt_raw_expect(c, &f, TP_PONG, TT_RECV_MS);
  tt_raw_close(c);
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

void ops_write_over(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  cr_assert_not_null(fp);
  fputs(text, fp);
  fclose(fp);
}

bool ops_wait_reload(tt_raw_t *c, uint64_t sid) {
  tp_frame_t f;
  tt_raw_expect(c, &f, TP_MSG, TT_RECV_MS);
  cr_assert_eq(f.u.msg.sid, sid);
  cr_assert(tt_str_eq(f.u.msg.topic, "$SYS.server.reload"));
  const char *p = (const char *)f.u.msg.payload.ptr;
  size_t n = f.u.msg.payload.len;
  if (n == 11 && memcmp(p, "{\"ok\":true}", 11) == 0)
    return true;
  cr_assert(n == 12 && memcmp(p, "{\"ok\":false}", 12) == 0, "body %.*s",
            (int)n, p);
  return false;
}
