/*
 * NATS text protocol (the subset a load generator needs):
 *   CONNECT {json}\r\n   PUB subj [reply] n\r\n<payload>\r\n
 *   SUB subj [queue] sid\r\n   PING\r\n / PONG\r\n
 * and from the server INFO, +OK, -ERR, PING, PONG and
 *   MSG subj sid [reply] n\r\n<payload>\r\n
 * The server handles a connection's commands in order, so PONG is a barrier
 * exactly as in tern.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"

static int append_str(tp_buf_t *out, const char *s) {
  return tp_buf_append(out, s, strlen(s));
}

static int nats_connect(tp_buf_t *out, const char *client_id) {
  char line[256];
  int n = snprintf(line, sizeof(line),
                   "CONNECT {\"verbose\":false,\"pedantic\":false,"
                   "\"name\":\"%s\",\"lang\":\"c\",\"version\":\"tern-bench\","
                   "\"protocol\":1}\r\n",
                   client_id);
  if (n < 0 || (size_t)n >= sizeof(line)) {
    return -1;
  }
  return tp_buf_append(out, line, (size_t)n);
}

static int nats_pub(tp_buf_t *out, const char *subject, size_t subject_len,
                    const char *reply, size_t reply_len, const uint8_t *payload,
                    size_t len, size_t *payload_off) {
  char tail[48];
  size_t start = out->len;
  int rc = tp_buf_append(out, "PUB ", 4);
  rc = rc ? rc : tp_buf_append(out, subject, subject_len);
  if (reply != NULL) {
    rc = rc ? rc : tp_buf_append(out, " ", 1);
    rc = rc ? rc : tp_buf_append(out, reply, reply_len);
  }
  int n = snprintf(tail, sizeof(tail), " %zu\r\n", len);
  rc = rc ? rc : tp_buf_append(out, tail, (size_t)n);
  if (payload_off != NULL) {
    *payload_off = out->len - start;
  }
  rc = rc ? rc : tp_buf_append(out, payload, len);
  return rc ? rc : tp_buf_append(out, "\r\n", 2);
}

static int nats_sub(tp_buf_t *out, const char *subject, uint64_t sid,
                    const char *queue) {
  char line[512];
  int n =
      snprintf(line, sizeof(line), "SUB %s%s%s %llu\r\n", subject,
               queue ? " " : "", queue ? queue : "", (unsigned long long)sid);
  if (n < 0 || (size_t)n >= sizeof(line)) {
    return -1;
  }
  return tp_buf_append(out, line, (size_t)n);
}

static int nats_ping(tp_buf_t *out) {
  return append_str(out, "PING\r\n");
}
static int nats_pong(tp_buf_t *out) {
  return append_str(out, "PONG\r\n");
}

/* Splits "MSG subj sid [reply] n" into its fields; 0 or -1. */
static int parse_msg_line(const char *p, const char *end, bench_ev_t *ev) {
  const char *tok[5];
  size_t tlen[5];
  int nt = 0;
  while (p < end && nt < 5) {
    while (p < end && (*p == ' ' || *p == '\t')) {
      p++;
    }
    if (p >= end) {
      break;
    }
    tok[nt] = p;
    while (p < end && *p != ' ' && *p != '\t') {
      p++;
    }
    tlen[nt] = (size_t)(p - tok[nt]);
    nt++;
  }
  /* tok[0] is "MSG". */
  if (nt != 4 && nt != 5) {
    return -1;
  }
  ev->subject = tok[1];
  ev->subject_len = tlen[1];
  ev->sid = strtoull(tok[2], NULL, 10);
  if (nt == 5) {
    ev->reply = tok[3];
    ev->reply_len = tlen[3];
  }
  const char *np = tok[nt - 1];
  size_t n = 0;
  for (size_t i = 0; i < tlen[nt - 1]; i++) {
    if (np[i] < '0' || np[i] > '9') {
      return -1;
    }
    n = n * 10 + (size_t)(np[i] - '0');
  }
  ev->payload_len = n;
  return 0;
}

static long nats_parse(void *state, const uint8_t *data, size_t len,
                       bench_ev_t *ev) {
  (void)state;
  const uint8_t *nl = memchr(data, '\n', len);
  if (nl == NULL) {
    return len > 64 * 1024 ? -1 : 0;
  }
  const char *line = (const char *)data;
  size_t line_len = (size_t)(nl - data) + 1;
  size_t body = line_len >= 2 && nl[-1] == '\r' ? line_len - 2 : line_len - 1;
  memset(ev, 0, sizeof(*ev));
  if (body >= 4 && memcmp(line, "MSG ", 4) == 0) {
    if (parse_msg_line(line, line + body, ev) != 0) {
      ev->type = BENCH_EV_ERROR;
      ev->text = "malformed MSG line";
      ev->text_len = strlen(ev->text);
      return -1;
    }
    size_t need = line_len + ev->payload_len + 2;
    if (len < need) {
      return 0;
    }
    ev->type = BENCH_EV_MSG;
    ev->payload = data + line_len;
    return (long)need;
  }
  if (body == 4 && memcmp(line, "PING", 4) == 0) {
    ev->type = BENCH_EV_PING;
  } else if (body == 4 && memcmp(line, "PONG", 4) == 0) {
    ev->type = BENCH_EV_PONG;
  } else if (body >= 4 && memcmp(line, "-ERR", 4) == 0) {
    ev->type = BENCH_EV_ERROR;
    ev->text = line;
    ev->text_len = body;
  } else {
    ev->type = BENCH_EV_INFO; /* INFO {...}, +OK */
  }
  return (long)line_len;
}

const bench_adapter_t bench_adapter_nats = {
    .name = "nats",
    .default_port = 4222,
    .has_queue = true,
    .has_reply = true,
    .encode_connect = nats_connect,
    .encode_pub = nats_pub,
    .encode_sub = nats_sub,
    .encode_ping = nats_ping,
    .encode_pong = nats_pong,
    .parse = nats_parse,
};
