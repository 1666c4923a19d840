/*
 * One PUB frame, checked and built the same way for both publish paths:
 * tern_conn_publish on the loop thread (conn_write.c) and
 * tern_client_publish on the caller's thread (blocking.c, pub_batch.c).
 *
 * The work comes in three steps because the two paths interleave them with
 * their own checks: the topic and payload first (before the connection's
 * queue is looked at), the options next (reply and headers), the encoding
 * last, into whichever buffer the path owns. Header keys and values are
 * viewed without a heap allocation up to TERN__PUB_STACK_HEADERS pairs.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "tern_proto/topic.h"

int tern__pub_check(tern__pub_t *p, const char *topic, const void *payload,
                    size_t len, uint64_t max_payload) {
  size_t topic_len;
  if (topic == NULL || (len > 0 && payload == NULL)) {
    return TERN_EINVAL;
  }
  topic_len = strlen(topic);
  if (tp_topic_validate(topic, topic_len, TP_DEFAULT_MAX_TOPIC) != 0) {
    return TERN_ETOPIC;
  }
  if (len > max_payload) {
    return TERN_ETOOLARGE;
  }
  tp_frame_init(&p->frame, TP_PUB);
  p->frame.u.pub.topic = (tp_str_t){topic, (uint32_t)topic_len};
  p->frame.u.pub.payload = (tp_bytes_t){payload, (uint32_t)len};
  p->kv = p->kv_stack;
  p->nheaders = 0;
  return 0;
}

int tern__pub_prepare(tern__pub_t *p, const tern_pub_opts_t *opts) {
  size_t n;
  if (opts == NULL) {
    return 0;
  }
  if (opts->reply != NULL) {
    size_t reply_len = strlen(opts->reply);
    if (tp_topic_validate(opts->reply, reply_len, TP_DEFAULT_MAX_TOPIC) != 0) {
      return TERN_ETOPIC;
    }
    p->frame.u.pub.reply = (tp_str_t){opts->reply, (uint32_t)reply_len};
  }
  n = opts->header_count;
  if (n > 0 && (opts->header_keys == NULL || opts->header_values == NULL)) {
    return TERN_EINVAL;
  }
  for (size_t i = 0; i < n; i++) {
    if (opts->header_keys[i] == NULL || opts->header_values[i] == NULL) {
      return TERN_EINVAL;
    }
  }
  if (n > TERN__PUB_STACK_HEADERS) {
    p->kv = malloc(2 * n * sizeof(*p->kv));
    if (p->kv == NULL) {
      p->kv = p->kv_stack;
      return TERN_ENOMEM;
    }
  }
  for (size_t i = 0; i < n; i++) {
    const char *k = opts->header_keys[i], *v = opts->header_values[i];
    p->kv[i] = (tp_str_t){k, (uint32_t)strlen(k)};
    p->kv[n + i] = (tp_str_t){v, (uint32_t)strlen(v)};
  }
  p->nheaders = n;
  p->frame.u.pub.retain = opts->retain;
  p->frame.u.pub.ttl_ms = opts->ttl_ms;
  return 0;
}

int tern__pub_encode(tern__pub_t *p, tp_buf_t *scratch, tp_buf_t *dst) {
  size_t before = dst->len;
  int rc;
  if (p->nheaders > 0) {
    tp_buf_reset(scratch);
    rc = tp_headers_build(scratch, p->kv, p->kv + p->nheaders,
                          (uint32_t)p->nheaders, &p->frame.u.pub.headers);
    if (rc != 0) {
      return tern__err_from_tp(rc);
    }
  }
  rc = tp_frame_encode(dst, &p->frame);
  if (rc != 0) {
    dst->len = before;
    return tern__err_from_tp(rc);
  }
  return 0;
}

void tern__pub_done(tern__pub_t *p) {
  if (p->kv != p->kv_stack) {
    free(p->kv);
  }
  p->kv = p->kv_stack;
}
