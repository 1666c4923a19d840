/*
 * Received messages: one allocation per message holding the header block,
 * the header table and NUL-terminated copies of topic, reply, payload and
 * header strings. The reference count is atomic because the blocking API
 * hands messages from the loop thread to application threads.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "tern/msg.h"

struct tern_msg {
  atomic_uint refs;
  uint64_t sid;
  const char *topic;
  const char *reply; /* NULL: none */
  const uint8_t *data;
  size_t len;
  bool retained;
  size_t nheaders;
  tern_header_t *headers;
  struct tern_msg *qnext; /* link in a blocking subscription's queue */
};

/* Copies len bytes plus a NUL at *cursor and advances it. */
static char *put_str(char **cursor, const void *p, size_t len) {
  char *dst = *cursor;
  if (len > 0) {
    memcpy(dst, p, len);
  }
  dst[len] = '\0';
  *cursor += len + 1;
  return dst;
}

tern_msg_t *tern__msg_create(const tp_msg_t *m) {
  tp_headers_iter_t it;
  tp_str_t k, v;
  size_t size = sizeof(tern_msg_t);
  size_t i = 0;
  tern_msg_t *msg;
  char *cur;

  size += (size_t)m->headers.count * sizeof(tern_header_t);
  size += (size_t)m->topic.len + 1 + (size_t)m->payload.len + 1;
  if (m->reply.ptr != NULL) {
    size += (size_t)m->reply.len + 1;
  }
  tp_headers_iter_init(&it, &m->headers);
  while (tp_headers_next(&it, &k, &v) == 1) {
    size += (size_t)k.len + 1 + (size_t)v.len + 1;
  }
  msg = malloc(size);
  if (msg == NULL) {
    return NULL;
  }
  memset(msg, 0, sizeof(*msg));
  atomic_init(&msg->refs, 1);
  msg->sid = m->sid;
  msg->retained = m->retained;
  msg->headers = (tern_header_t *)(msg + 1);
  cur = (char *)(msg->headers + m->headers.count);
  tp_headers_iter_init(&it, &m->headers);
  while (i < m->headers.count && tp_headers_next(&it, &k, &v) == 1) {
    msg->headers[i].key = put_str(&cur, k.ptr, k.len);
    msg->headers[i].key_len = k.len;
    msg->headers[i].value = put_str(&cur, v.ptr, v.len);
    msg->headers[i].value_len = v.len;
    i++;
  }
  msg->nheaders = i;
  msg->topic = put_str(&cur, m->topic.ptr, m->topic.len);
  if (m->reply.ptr != NULL) {
    msg->reply = put_str(&cur, m->reply.ptr, m->reply.len);
  }
  msg->data = (const uint8_t *)put_str(&cur, m->payload.ptr, m->payload.len);
  msg->len = m->payload.len;
  return msg;
}

uint64_t tern_msg_sid(const tern_msg_t *m) {
  return m->sid;
}
const char *tern_msg_topic(const tern_msg_t *m) {
  return m->topic;
}
const void *tern_msg_data(const tern_msg_t *m) {
  return m->data;
}
size_t tern_msg_len(const tern_msg_t *m) {
  return m->len;
}
const char *tern_msg_reply(const tern_msg_t *m) {
  return m->reply;
}
bool tern_msg_retained(const tern_msg_t *m) {
  return m->retained;
}
size_t tern_msg_header_count(const tern_msg_t *m) {
  return m->nheaders;
}

int tern_msg_header(const tern_msg_t *m, size_t i, tern_header_t *out) {
  if (m == NULL || out == NULL || i >= m->nheaders) {
    return TERN_EINVAL;
  }
  *out = m->headers[i];
  return 0;
}

const char *tern_msg_header_get(const tern_msg_t *m, const char *key) {
  size_t klen = strlen(key);
  for (size_t i = 0; i < m->nheaders; i++) {
    if (m->headers[i].key_len == klen &&
        memcmp(m->headers[i].key, key, klen) == 0) {
      return m->headers[i].value;
    }
  }
  return NULL;
}

tern_msg_t *tern_msg_retain(tern_msg_t *m) {
  atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
  return m;
}

void tern_msg_release(tern_msg_t *m) {
  if (m == NULL) {
    return;
  }
  if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
    free(m);
  }
}

tern_msg_t *tern__msg_qnext(const tern_msg_t *m) {
  return m->qnext;
}
void tern__msg_set_qnext(tern_msg_t *m, tern_msg_t *next) {
  m->qnext = next;
}
