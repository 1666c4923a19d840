/*
 * Redis pub/sub over RESP2:
 *   PUBLISH ch payload  -> :receivers
 *   SUBSCRIBE ch        -> *3 subscribe ch :count, then *3 message ch payload
 *   PING                -> +PONG, or *2 pong "" once the connection subscribed
 * Redis runs a connection's commands in order, so PING's answer is the
 * barrier. Redis has no queue groups and no reply subjects: those scenarios
 * are refused before they start (has_queue / has_reply are false).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "adapter.h"

static int append_bulk(tp_buf_t *out, const void *p, size_t n) {
  char head[32];
  int h = snprintf(head, sizeof(head), "$%zu\r\n", n);
  int rc = tp_buf_append(out, head, (size_t)h);
  rc = rc ? rc : tp_buf_append(out, p, n);
  return rc ? rc : tp_buf_append(out, "\r\n", 2);
}

static int redis_connect(tp_buf_t *out, const char *client_id) {
  int rc = tp_buf_append(out, "*3\r\n", 4);
  rc = rc ? rc : append_bulk(out, "CLIENT", 6);
  rc = rc ? rc : append_bulk(out, "SETNAME", 7);
  return rc ? rc : append_bulk(out, client_id, strlen(client_id));
}

static int redis_pub(tp_buf_t *out, const char *subject, size_t subject_len,
                     const char *reply, size_t reply_len,
                     const uint8_t *payload, size_t len, size_t *payload_off) {
  (void)reply_len;
  if (reply != NULL) {
    return -1;
  }
  size_t start = out->len;
  char head[32];
  int rc = tp_buf_append(out, "*3\r\n$7\r\nPUBLISH\r\n", 17);
  rc = rc ? rc : append_bulk(out, subject, subject_len);
  int h = snprintf(head, sizeof(head), "$%zu\r\n", len);
  rc = rc ? rc : tp_buf_append(out, head, (size_t)h);
  if (payload_off != NULL) {
    *payload_off = out->len - start;
  }
  rc = rc ? rc : tp_buf_append(out, payload, len);
  return rc ? rc : tp_buf_append(out, "\r\n", 2);
}

static int redis_sub(tp_buf_t *out, const char *subject, uint64_t sid,
                     const char *queue) {
  (void)sid;
  if (queue != NULL) {
    return -1;
  }
  int rc = tp_buf_append(out, "*2\r\n", 4);
  rc = rc ? rc : append_bulk(out, "SUBSCRIBE", 9);
  return rc ? rc : append_bulk(out, subject, strlen(subject));
}

static int redis_ping(tp_buf_t *out) {
  return tp_buf_append(out, "*1\r\n$4\r\nPING\r\n", 14);
}

/* One RESP element: its kind byte and, for strings, the bytes. */
typedef struct resp_elem {
  char kind;
  const char *ptr;
  size_t len;
} resp_elem_t;

/* Reads "<kind><text>\r\n" at p; returns the line length or 0 if partial. */
static size_t resp_line(const char *p, const char *end, const char **text,
                        size_t *text_len) {
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  if (nl == NULL || nl == p || nl[-1] != '\r') {
    return 0;
  }
  *text = p + 1;
  *text_len = (size_t)(nl - 1 - (p + 1));
  return (size_t)(nl + 1 - p);
}

static int resp_int(const char *p, size_t n, long long *v) {
  long long x = 0;
  int neg = 0;
  size_t i = 0;
  if (n > 0 && p[0] == '-') {
    neg = 1;
    i = 1;
  }
  if (i == n) {
    return -1;
  }
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') {
      return -1;
    }
    x = x * 10 + (p[i] - '0');
  }
  *v = neg ? -x : x;
  return 0;
}

/*
 * Parses one non-array element at p. >0: bytes taken; 0: partial; <0: bad.
 * Nested arrays never occur in the replies this bench provokes.
 */
static long resp_scalar(const char *p, const char *end, resp_elem_t *e) {
  const char *text;
  size_t text_len;
  if (p >= end) {
    return 0;
  }
  size_t ll = resp_line(p, end, &text, &text_len);
  if (ll == 0) {
    return (size_t)(end - p) > 64 * 1024 ? -1 : 0;
  }
  e->kind = p[0];
  e->ptr = text;
  e->len = text_len;
  switch (p[0]) {
  case '+':
  case '-':
  case ':':
    return (long)ll;
  case '$': {
    long long n;
    if (resp_int(text, text_len, &n) != 0) {
      return -1;
    }
    if (n < 0) {
      e->ptr = NULL;
      e->len = 0;
      return (long)ll;
    }
    if ((size_t)(end - p) < ll + (size_t)n + 2) {
      return 0;
    }
    e->ptr = p + ll;
    e->len = (size_t)n;
    return (long)(ll + (size_t)n + 2);
  }
  default:
    return -1;
  }
}

static int is_word(const resp_elem_t *e, const char *w) {
  size_t n = strlen(w);
  return e->len == n && strncasecmp(e->ptr, w, n) == 0;
}

static long redis_parse(void *state, const uint8_t *data, size_t len,
                        bench_ev_t *ev) {
  (void)state;
  const char *p = (const char *)data;
  const char *end = p + len;
  memset(ev, 0, sizeof(*ev));
  if (len == 0) {
    return 0;
  }
  if (p[0] != '*') {
    resp_elem_t e;
    long n = resp_scalar(p, end, &e);
    if (n <= 0) {
      return n;
    }
    if (e.kind == '-') {
      ev->type = BENCH_EV_ERROR;
      ev->text = e.ptr;
      ev->text_len = e.len;
    } else if (e.kind == '+' && is_word(&e, "PONG")) {
      ev->type = BENCH_EV_PONG;
    } else {
      ev->type = BENCH_EV_INFO;
    }
    return n;
  }
  const char *text;
  size_t text_len;
  size_t ll = resp_line(p, end, &text, &text_len);
  if (ll == 0) {
    return 0;
  }
  long long count;
  if (resp_int(text, text_len, &count) != 0 || count > 8) {
    return -1;
  }
  resp_elem_t el[8];
  size_t off = ll;
  for (long long i = 0; i < count; i++) {
    long n = resp_scalar(p + off, end, &el[i]);
    if (n <= 0) {
      return n;
    }
    off += (size_t)n;
  }
  ev->type = BENCH_EV_INFO;
  if (count == 3 && is_word(&el[0], "message")) {
    ev->type = BENCH_EV_MSG;
    ev->subject = el[1].ptr;
    ev->subject_len = el[1].len;
    ev->payload = (const uint8_t *)el[2].ptr;
    ev->payload_len = el[2].len;
  } else if (count >= 1 && is_word(&el[0], "pong")) {
    ev->type = BENCH_EV_PONG;
  }
  return (long)off;
}

const bench_adapter_t bench_adapter_redis = {
    .name = "redis",
    .default_port = 6379,
    .has_queue = false,
    .has_reply = false,
    .encode_connect = redis_connect,
    .encode_pub = redis_pub,
    .encode_sub = redis_sub,
    .encode_ping = redis_ping,
    .encode_pong = NULL,
    .parse = redis_parse,
};
