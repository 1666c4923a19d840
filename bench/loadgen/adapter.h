/*
 * adapter: what the load generator needs from a broker's wire protocol.
 *
 * An adapter is a table of pure functions: encoders append one command to a
 * tp_buf_t, and the parser turns the front of a byte buffer into one event.
 * Sockets, batching, polling and timing live in conn.c and worker.c and are
 * the same for every broker, so a comparison measures the brokers, not four
 * differently written clients. Every adapter speaks its protocol over a raw
 * non-blocking TCP socket with no client library in between.
 *
 * Subjects are given in tern's dotted form ("bench.t"); an adapter whose
 * protocol separates levels differently (MQTT's '/') maps them itself.
 */
#ifndef TERN_BENCH_ADAPTER_H
#define TERN_BENCH_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tern_proto/buf.h>

typedef enum bench_ev_type {
  BENCH_EV_MSG = 1, /* a delivered message */
  BENCH_EV_PONG,    /* the answer to our ping: the barrier */
  BENCH_EV_PING,    /* the server pings us: conn.c answers it */
  BENCH_EV_INFO,    /* anything to skip: greetings, OK, acks, counts */
  BENCH_EV_ERROR    /* the server reports an error: fatal for the bench */
} bench_ev_type;

/* One parsed event; every pointer borrows the connection's input buffer. */
typedef struct bench_ev {
  int type;
  uint64_t sid;
  const char *subject;
  size_t subject_len;
  const char *reply; /* NULL when the message has no reply subject */
  size_t reply_len;
  const uint8_t *payload;
  size_t payload_len;
  const char *text; /* BENCH_EV_ERROR: the server's words, not terminated */
  size_t text_len;
} bench_ev_t;

typedef struct bench_adapter {
  const char *name;
  uint16_t default_port;
  bool has_queue; /* queue-group subscriptions */
  bool has_reply; /* a reply subject on publish: request/reply */
  /* Per-connection parser state (0: none); created and freed by conn.c. */
  int (*state_create)(void **state);
  void (*state_destroy)(void *state);

  /* The session's opening command(s); client_id must be unique per conn. */
  int (*encode_connect)(tp_buf_t *out, const char *client_id);
  /*
   * One publish. reply may be NULL. *payload_off (if not NULL) receives the
   * offset of the payload's first byte from the start of this command, so a
   * caller can reuse the bytes as a template and patch a timestamp in.
   */
  int (*encode_pub)(tp_buf_t *out, const char *subject, size_t subject_len,
                    const char *reply, size_t reply_len, const uint8_t *payload,
                    size_t len, size_t *payload_off);
  /* One subscription; queue is NULL for a plain one. */
  int (*encode_sub)(tp_buf_t *out, const char *subject, uint64_t sid,
                    const char *queue);
  int (*encode_ping)(tp_buf_t *out);
  /* Answer to a server's ping; NULL when the protocol has none to answer. */
  int (*encode_pong)(tp_buf_t *out);
  /*
   * Parses the first event in data[0..len). Returns the bytes it took (> 0)
   * with *ev filled in, 0 when the event is not complete yet, or a negative
   * value when the stream is broken (ev->text then says why, if it can).
   */
  long (*parse)(void *state, const uint8_t *data, size_t len, bench_ev_t *ev);
} bench_adapter_t;

extern const bench_adapter_t bench_adapter_tern;
extern const bench_adapter_t bench_adapter_nats;
extern const bench_adapter_t bench_adapter_redis;
extern const bench_adapter_t bench_adapter_mqtt;

/* The adapter called name ("tern", "nats", "redis", "mqtt"), or NULL. */
const bench_adapter_t *bench_adapter_find(const char *name);

#endif
