/*
 * Durable streams from libtern (tern/stream.h): request bodies, answers,
 * and the blocking and async calls built on requests.
 */
#include "tern/stream.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "blocking_internal.h"
#include "conn_internal.h"
#include "options_abi.h"
#include "tern/errors.h"
#include "tern_proto/mp.h"

#define API "$TS.API."

/* ---- bodies ---- */

int tern_stream_config_encode(const tern_stream_config_t *cin, void **body,
                              size_t *len) {
  tern_stream_config_t c;
  if (cin == NULL || body == NULL || len == NULL ||
      tern__stream_config_import(&c, cin) != 0)
    return TERN_EINVAL;
  static const char *discards[] = {"old", "new"};
  static const char *syncs[] = {"always", "interval", "never"};
  if ((unsigned)c.discard > 1 || (unsigned)c.sync > 2)
    return TERN_EINVAL;
  uint32_t n = 7 + (c.topic_count > 0) + (c.sync_interval_ms > 0) +
               (c.dedup_window_ms > 0);
  tp_buf_t b;
  tp_buf_init(&b);
  int rc = tp_mp_map(&b, n - 1);
  if (c.topic_count > 0) {
    rc = rc ? rc : tp_mp_cstr(&b, "topics");
    rc = rc ? rc : tp_mp_array(&b, (uint32_t)c.topic_count);
    for (size_t i = 0; rc == 0 && i < c.topic_count; i++)
      rc = tp_mp_cstr(&b, c.topics[i]);
  }
  rc = rc ? rc : tp_mp_kv_uint(&b, "max_msgs", c.max_msgs);
  rc = rc ? rc : tp_mp_kv_uint(&b, "max_bytes", c.max_bytes);
  rc = rc ? rc : tp_mp_kv_uint(&b, "max_age_ms", c.max_age_ms);
  rc = rc ? rc : tp_mp_kv_uint(&b, "max_msgs_per_topic", c.max_msgs_per_topic);
  rc = rc ? rc : tp_mp_kv_str(&b, "discard", discards[c.discard]);
  rc = rc ? rc : tp_mp_kv_str(&b, "sync", syncs[c.sync]);
  if (c.sync_interval_ms > 0)
    rc = rc ? rc : tp_mp_kv_uint(&b, "sync_interval_ms", c.sync_interval_ms);
  if (c.dedup_window_ms > 0)
    rc = rc ? rc : tp_mp_kv_uint(&b, "dedup_window_ms", c.dedup_window_ms);
  if (rc != 0) {
    tp_buf_free(&b);
    return TERN_ENOMEM;
  }
  *body = b.data;
  *len = b.len;
  return 0;
}

int tern_consumer_config_encode(const tern_consumer_config_t *cin, void **body,
                                size_t *len) {
  tern_consumer_config_t c;
  if (cin == NULL || body == NULL || len == NULL ||
      tern__consumer_config_import(&c, cin) != 0)
    return TERN_EINVAL;
  static const char *delivers[] = {"all", "last", "new", "by_seq", "by_time"};
  if ((unsigned)c.deliver > 4)
    return TERN_EINVAL;
  uint32_t n = 5 + (c.ack_wait_ms > 0) + (c.max_ack_pending > 0) +
               (c.filter != NULL) + (c.push != NULL);
  tp_buf_t b;
  tp_buf_init(&b);
  int rc = tp_mp_map(&b, n);
  rc = rc ? rc : tp_mp_kv_str(&b, "deliver", delivers[c.deliver]);
  rc = rc ? rc : tp_mp_kv_uint(&b, "opt_start_seq", c.opt_start_seq);
  rc = rc ? rc : tp_mp_kv_uint(&b, "opt_start_time_ms", c.opt_start_time_ms);
  rc = rc ? rc : tp_mp_kv_str(&b, "ack", c.ack_none ? "none" : "explicit");
  rc = rc ? rc : tp_mp_kv_uint(&b, "max_deliver", c.max_deliver);
  if (c.ack_wait_ms > 0)
    rc = rc ? rc : tp_mp_kv_uint(&b, "ack_wait_ms", c.ack_wait_ms);
  if (c.max_ack_pending > 0)
    rc = rc ? rc : tp_mp_kv_uint(&b, "max_ack_pending", c.max_ack_pending);
  if (c.filter != NULL)
    rc = rc ? rc : tp_mp_kv_str(&b, "filter", c.filter);
  if (c.push != NULL)
    rc = rc ? rc : tp_mp_kv_str(&b, "push", c.push);
  if (rc != 0) {
    tp_buf_free(&b);
    return TERN_ENOMEM;
  }
  *body = b.data;
  *len = b.len;
  return 0;
}

/* ---- answers ---- */

static int map_code(uint64_t code) {
  switch (code) {
  case 400:
    return TERN_EINVAL;
  case 404:
    return TERN_ENOTFOUND;
  case 409:
    return TERN_EEXISTS;
  case 507:
    return TERN_EFULL;
  default:
    return TERN_ESERVER;
  }
}

/* Looks for key in the top map of data; the cursor is left on its value. */
static bool find_key(const void *data, size_t len, const char *key,
                     tp_mp_cur_t *at) {
  tp_mp_cur_t c;
  tp_mp_cur_init(&c, data, len);
  uint32_t n;
  if (tp_mp_read_map(&c, &n) != 0)
    return false;
  for (uint32_t i = 0; i < n; i++) {
    tp_str_t k;
    if (tp_mp_read_str(&c, &k) != 0)
      return false;
    if (tp_str_is(k, key)) {
      *at = c;
      return true;
    }
    if (tp_mp_skip(&c) != 0)
      return false;
  }
  return false;
}

int tern_stream_answer_status(const void *data, size_t len, char *err,
                              size_t errlen) {
  tp_mp_cur_t c;
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (!find_key(data, len, "error", &c))
    return 0;
  uint32_t n;
  uint64_t code = 0;
  if (tp_mp_read_map(&c, &n) != 0)
    return TERN_EPROTO;
  for (uint32_t i = 0; i < n; i++) {
    tp_str_t k, v;
    if (tp_mp_read_str(&c, &k) != 0)
      return TERN_EPROTO;
    if (tp_str_is(k, "code")) {
      if (tp_mp_read_uint(&c, &code) != 0)
        return TERN_EPROTO;
    } else if (tp_str_is(k, "message") && err != NULL && errlen > 0) {
      if (tp_mp_read_str(&c, &v) != 0)
        return TERN_EPROTO;
      snprintf(err, errlen, "%.*s", (int)v.len, v.ptr);
    } else if (tp_mp_skip(&c) != 0) {
      return TERN_EPROTO;
    }
  }
  return map_code(code);
}

int tern_stream_ack_decode(const void *data, size_t len, uint64_t *seq,
                           bool *duplicate, char *err, size_t errlen) {
  int rc = tern_stream_answer_status(data, len, err, errlen);
  if (rc != 0)
    return rc;
  tp_mp_cur_t c;
  uint64_t s = 0;
  bool d = false;
  if (!find_key(data, len, "seq", &c) || tp_mp_read_uint(&c, &s) != 0)
    return TERN_EPROTO;
  if (find_key(data, len, "duplicate", &c))
    tp_mp_read_bool(&c, &d);
  if (seq != NULL)
    *seq = s;
  if (duplicate != NULL)
    *duplicate = d;
  return 0;
}

/* ---- blocking ---- */

int tern_client_stream_request(tern_client_t *cl, const char *api,
                               const void *body, size_t len, int timeout_ms,
                               tern_msg_t **answer, char *err, size_t errlen) {
  if (cl == NULL || api == NULL || answer == NULL)
    return TERN_EINVAL;
  char topic[512];
  if ((size_t)snprintf(topic, sizeof topic, API "%s", api) >= sizeof topic)
    return TERN_EINVAL;
  *answer = NULL;
  tern_msg_t *m = NULL;
  int rc = tern_client_request(cl, topic, body, len, timeout_ms, &m);
  if (rc != 0)
    return rc;
  rc =
      tern_stream_answer_status(tern_msg_data(m), tern_msg_len(m), err, errlen);
  if (rc != 0) {
    tern_msg_release(m);
    return rc;
  }
  *answer = m;
  return 0;
}

/* A request whose answer is only checked. */
static int simple(tern_client_t *cl, const char *api, const void *body,
                  size_t len, int timeout_ms, char *err, size_t errlen) {
  tern_msg_t *m = NULL;
  int rc = tern_client_stream_request(cl, api, body, len, timeout_ms, &m, err,
                                      errlen);
  if (m != NULL)
    tern_msg_release(m);
  return rc;
}

static int add_or_update(tern_client_t *cl, const char *verb, const char *name,
                         const tern_stream_config_t *c, int timeout_ms,
                         char *err, size_t errlen) {
  void *body = NULL;
  size_t len = 0;
  if (name == NULL)
    return TERN_EINVAL;
  int rc = tern_stream_config_encode(c, &body, &len);
  if (rc != 0)
    return rc;
  char api[128];
  snprintf(api, sizeof api, "STREAM.%s.%s", verb, name);
  rc = simple(cl, api, body, len, timeout_ms, err, errlen);
  free(body);
  return rc;
}

int tern_client_stream_add(tern_client_t *cl, const char *name,
                           const tern_stream_config_t *c, int timeout_ms,
                           char *err, size_t errlen) {
  return add_or_update(cl, "CREATE", name, c, timeout_ms, err, errlen);
}

int tern_client_stream_update(tern_client_t *cl, const char *name,
                              const tern_stream_config_t *c, int timeout_ms,
                              char *err, size_t errlen) {
  return add_or_update(cl, "UPDATE", name, c, timeout_ms, err, errlen);
}

int tern_client_stream_delete(tern_client_t *cl, const char *name,
                              int timeout_ms, char *err, size_t errlen) {
  char api[128];
  if (name == NULL)
    return TERN_EINVAL;
  snprintf(api, sizeof api, "STREAM.DELETE.%s", name);
  return simple(cl, api, NULL, 0, timeout_ms, err, errlen);
}

int tern_client_stream_info(tern_client_t *cl, const char *name,
                            tern_stream_info_t *info, int timeout_ms, char *err,
                            size_t errlen) {
  char api[128];
  if (name == NULL || info == NULL)
    return TERN_EINVAL;
  snprintf(api, sizeof api, "STREAM.INFO.%s", name);
  tern_msg_t *m = NULL;
  int rc =
      tern_client_stream_request(cl, api, NULL, 0, timeout_ms, &m, err, errlen);
  if (rc != 0)
    return rc;
  memset(info, 0, sizeof *info);
  tp_mp_cur_t c;
  rc = TERN_EPROTO;
  if (find_key(tern_msg_data(m), tern_msg_len(m), "stream", &c)) {
    tp_mp_cur_t st;
    if (find_key(c.p, (size_t)(c.end - c.p), "state", &st)) {
      uint32_t n;
      if (tp_mp_read_map(&st, &n) == 0) {
        rc = 0;
        for (uint32_t i = 0; i < n && rc == 0; i++) {
          tp_str_t k;
          uint64_t v = 0;
          if (tp_mp_read_str(&st, &k) != 0 || tp_mp_read_uint(&st, &v) != 0) {
            rc = TERN_EPROTO;
            break;
          }
          if (tp_str_is(k, "msgs"))
            info->msgs = v;
          else if (tp_str_is(k, "bytes"))
            info->bytes = v;
          else if (tp_str_is(k, "first_seq"))
            info->first_seq = v;
          else if (tp_str_is(k, "last_seq"))
            info->last_seq = v;
          else if (tp_str_is(k, "consumers"))
            info->consumers = v;
        }
      }
    }
  }
  tern_msg_release(m);
  return rc;
}

int tern_client_publish_stream(tern_client_t *cl, const char *topic,
                               const void *payload, size_t len,
                               const char *msgid, int timeout_ms, uint64_t *seq,
                               bool *duplicate) {
  tern_pub_opts_t po;
  tern_pub_opts_init(&po);
  const char *k[1] = {"Tern-Msg-Id"}, *v[1] = {msgid};
  if (msgid != NULL) {
    po.header_keys = k;
    po.header_values = v;
    po.header_count = 1;
  }
  tern_msg_t *m = NULL;
  int rc = tern__client_request_hdrs(cl, topic, payload, len,
                                     msgid ? &po : NULL, timeout_ms, &m);
  if (rc != 0)
    return rc;
  rc = tern_stream_ack_decode(tern_msg_data(m), tern_msg_len(m), seq, duplicate,
                              NULL, 0);
  tern_msg_release(m);
  return rc;
}

int tern_client_consumer_add(tern_client_t *cl, const char *stream,
                             const char *durable,
                             const tern_consumer_config_t *c, char *name,
                             size_t namelen, int timeout_ms, char *err,
                             size_t errlen) {
  void *body = NULL;
  size_t len = 0;
  if (stream == NULL)
    return TERN_EINVAL;
  int rc = tern_consumer_config_encode(c, &body, &len);
  if (rc != 0)
    return rc;
  char api[192];
  snprintf(api, sizeof api, "CONSUMER.CREATE.%s%s%s", stream,
           durable ? "." : "", durable ? durable : "");
  tern_msg_t *m = NULL;
  rc = tern_client_stream_request(cl, api, body, len, timeout_ms, &m, err,
                                  errlen);
  free(body);
  if (rc != 0)
    return rc;
  tp_mp_cur_t cur, nm;
  tp_str_t s;
  rc = TERN_EPROTO;
  if (find_key(tern_msg_data(m), tern_msg_len(m), "consumer", &cur) &&
      find_key(cur.p, (size_t)(cur.end - cur.p), "name", &nm) &&
      tp_mp_read_str(&nm, &s) == 0) {
    if (name != NULL && namelen > 0)
      snprintf(name, namelen, "%.*s", (int)s.len, s.ptr);
    rc = 0;
  }
  tern_msg_release(m);
  return rc;
}

int tern_client_fetch(tern_client_t *cl, const char *stream,
                      const char *consumer, size_t batch, int expires_ms,
                      tern_msg_t **msgs, size_t *n) {
  if (cl == NULL || stream == NULL || consumer == NULL || msgs == NULL ||
      n == NULL || batch == 0)
    return TERN_EINVAL;
  *n = 0;
  uint8_t rnd[8];
  uint64_t t = uv_hrtime();
  if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) != 0)
    memcpy(rnd, &t, sizeof rnd);
  char inbox[64];
  snprintf(inbox, sizeof inbox, "_INBOX.fetch.%02x%02x%02x%02x%02x%02x%02x%02x",
           rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
  tern_sub_t *sub = NULL;
  int rc = tern_client_subscribe(cl, &sub, inbox, NULL);
  if (rc != 0)
    return rc;
  tp_buf_t b;
  tp_buf_init(&b);
  rc = tp_mp_map(&b, 2);
  rc = rc ? rc : tp_mp_kv_uint(&b, "batch", batch);
  rc = rc ? rc
          : tp_mp_kv_uint(&b, "expires_ms",
                          expires_ms > 0 ? (uint64_t)expires_ms : 1);
  char topic[256];
  snprintf(topic, sizeof topic, API "CONSUMER.NEXT.%s.%s", stream, consumer);
  tern_pub_opts_t po;
  tern_pub_opts_init(&po);
  po.reply = inbox;
  if (rc == 0)
    rc = tern_client_publish(cl, topic, b.data, b.len, &po);
  tp_buf_free(&b);
  /* The broker ends the request itself at expires_ms (a Tern-Status
   * message); the wait here has slack for the round trip. */
  int wait = (expires_ms > 0 ? expires_ms : 1) + 5000;
  while (rc == 0 && *n < batch) {
    tern_msg_t *m = NULL;
    rc = tern_sub_next(sub, wait, &m);
    if (rc == TERN_ETIMEOUT) {
      rc = 0;
      break;
    }
    if (rc != 0)
      break;
    if (tern_msg_header_get(m, "Tern-Status") != NULL) {
      tern_msg_release(m);
      break;
    }
    if (strcmp(tern_msg_topic(m), inbox) == 0) {
      /* The API's own answer: an error. */
      rc =
          tern_stream_answer_status(tern_msg_data(m), tern_msg_len(m), NULL, 0);
      tern_msg_release(m);
      if (rc == 0)
        rc = TERN_EPROTO;
      break;
    }
    msgs[(*n)++] = m;
  }
  tern_sub_destroy(sub);
  return rc;
}

static int ack_with(tern_client_t *cl, const tern_msg_t *m, const char *what) {
  const char *reply = m != NULL ? tern_msg_reply(m) : NULL;
  if (cl == NULL || reply == NULL || strncmp(reply, "$TS.ACK.", 8) != 0)
    return TERN_EINVAL;
  return tern_client_publish(cl, reply, what, strlen(what), NULL);
}

int tern_client_ack(tern_client_t *cl, const tern_msg_t *m) {
  return ack_with(cl, m, "");
}
int tern_client_nak(tern_client_t *cl, const tern_msg_t *m, uint64_t delay_ms) {
  char what[32];
  snprintf(what, sizeof what, "-NAK %" PRIu64, delay_ms);
  return ack_with(cl, m, delay_ms ? what : "-NAK");
}
int tern_client_in_progress(tern_client_t *cl, const tern_msg_t *m) {
  return ack_with(cl, m, "+WPI");
}
int tern_client_term(tern_client_t *cl, const tern_msg_t *m) {
  return ack_with(cl, m, "+TERM");
}

int tern_msg_stream_seq(const tern_msg_t *m, uint64_t *deliveries,
                        uint64_t *seq) {
  const char *r = m != NULL ? tern_msg_reply(m) : NULL;
  if (r == NULL || strncmp(r, "$TS.ACK.", 8) != 0)
    return TERN_EINVAL;
  /* $TS.ACK.<stream>.<consumer>.<deliveries>.<seq>.<cseq> */
  const char *p = r + 8;
  for (int dots = 0; dots < 2; p++) {
    if (*p == '\0')
      return TERN_EINVAL;
    if (*p == '.')
      dots++;
  }
  unsigned long long d = 0, s = 0;
  if (sscanf(p, "%llu.%llu", &d, &s) != 2)
    return TERN_EINVAL;
  if (deliveries != NULL)
    *deliveries = d;
  if (seq != NULL)
    *seq = s;
  return 0;
}

/* ---- async ---- */

typedef struct pub_ctx {
  tern_stream_ack_cb cb;
  void *cb_data;
} pub_ctx_t;

static void on_stream_ack(tern_conn_t *conn, int status, tern_msg_t *reply,
                          void *cb_data) {
  pub_ctx_t *ctx = cb_data;
  uint64_t seq = 0;
  bool dup = false;
  if (status == 0)
    status = tern_stream_ack_decode(tern_msg_data(reply), tern_msg_len(reply),
                                    &seq, &dup, NULL, 0);
  ctx->cb(conn, status, seq, dup, ctx->cb_data);
  free(ctx);
}

int tern_conn_publish_stream(tern_conn_t *conn, const char *topic,
                             const void *payload, size_t len, const char *msgid,
                             uint32_t timeout_ms, tern_stream_ack_cb cb,
                             void *cb_data) {
  if (cb == NULL)
    return TERN_EINVAL;
  pub_ctx_t *ctx = malloc(sizeof *ctx);
  if (ctx == NULL)
    return TERN_ENOMEM;
  ctx->cb = cb;
  ctx->cb_data = cb_data;
  tern_pub_opts_t po;
  tern_pub_opts_init(&po);
  const char *k[1] = {"Tern-Msg-Id"}, *v[1] = {msgid};
  if (msgid != NULL) {
    po.header_keys = k;
    po.header_values = v;
    po.header_count = 1;
  }
  int rc =
      tern__conn_request_hdrs(conn, topic, payload, len, msgid ? &po : NULL,
                              timeout_ms, on_stream_ack, ctx);
  if (rc != 0)
    free(ctx);
  return rc;
}

int tern_conn_stream_request(tern_conn_t *conn, const char *api,
                             const void *body, size_t len, uint32_t timeout_ms,
                             tern_reply_cb cb, void *cb_data) {
  char topic[512];
  if (api == NULL ||
      (size_t)snprintf(topic, sizeof topic, API "%s", api) >= sizeof topic)
    return TERN_EINVAL;
  return tern_conn_request(conn, topic, body, len, timeout_ms, cb, cb_data);
}

int tern_conn_ack(tern_conn_t *conn, const tern_msg_t *m, const char *what) {
  const char *reply = m != NULL ? tern_msg_reply(m) : NULL;
  if (reply == NULL || strncmp(reply, "$TS.ACK.", 8) != 0)
    return TERN_EINVAL;
  if (what == NULL)
    what = "";
  return tern_conn_publish(conn, reply, what, strlen(what), NULL);
}
