/*
 * Connection, publish and subscribe options.
 *
 * Every options struct is filled with defaults by its *_init function first;
 * change only the fields you need. Structs carry reserved space so fields can
 * be added without breaking the ABI: always call the init function.
 */
#ifndef TERN_OPTIONS_H
#define TERN_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An asynchronous connection on a caller's uv_loop_t (tern/async.h). */
typedef struct tern_conn tern_conn_t;
/* A subscription of an asynchronous connection (tern/async.h). */
typedef struct tern_asub tern_asub_t;

#define TERN_DEFAULT_HOST "127.0.0.1"
#define TERN_DEFAULT_PORT 7421
#define TERN_HOST_MAX 256

/*
 * Fired for every error the server reports (an ERR frame: err is the tern
 * code from tern_err_from_wire, wire_code the ERR code, text its message) and
 * for errors the library detects on the connection (wire_code 0: protocol
 * violations by the server, socket errors, GOAWAY with the server's reason).
 * text is borrowed for the call. Loop thread.
 */
typedef void (*tern_error_cb)(tern_conn_t *conn, int err, int wire_code,
                              const char *text, void *cb_data);
/*
 * Fired when the outbound buffer, after a publish returned TERN_EWOULDBLOCK,
 * has fallen below half of outbound_limit: publishing may resume. Loop thread.
 */
typedef void (*tern_drain_cb)(tern_conn_t *conn, void *cb_data);
/*
 * Fired once when an established connection is lost for any reason other
 * than tern_conn_close (EOF, socket error, fatal ERR, protocol error). reason
 * is the error. Pending requests, flushes and acks have already been failed
 * with TERN_ECLOSED. The connection must still be closed with
 * tern_conn_close. Loop thread.
 */
typedef void (*tern_disconnect_cb)(tern_conn_t *conn, int reason,
                                   void *cb_data);

typedef struct tern_options {
  /* Broker address. host is an IPv4/IPv6 literal or a name resolved with
   * getaddrinfo on the loop's thread pool. Default "127.0.0.1":7421. */
  char host[TERN_HOST_MAX];
  int port;
  /* Sent in CONNECT. Borrowed until connect returns, copied there. NULL:
   * not sent. */
  const char *name;
  const char *user;
  const char *pass;
  const char *token;
  bool echo;    /* default true: receive your own publishes */
  bool verbose; /* default false: server answers PUB/SUB/UNSUB with OK/ERR */
  /* From the start of connect to the broker's OK. Default 5000 ms. */
  uint32_t connect_timeout_ms;
  /* Bytes of PUB frames held in the library before publish answers
   * TERN_EWOULDBLOCK. A publish into an empty buffer always succeeds, so one
   * frame larger than the limit can still be sent. Default 8 MiB. */
  size_t outbound_limit;
  /* Request inboxes are "<inbox_prefix>.<random>.<n>". Default "_INBOX". */
  const char *inbox_prefix;
  /* Most outstanding acks, requests and flushes each; beyond it the call
   * returns TERN_EWOULDBLOCK. Default 65536. */
  uint32_t max_inflight;
  /* Blocking API only: how long tern_client_publish waits for room in a
   * full outbound buffer before it answers TERN_EWOULDBLOCK. Default 5000;
   * 0 = do not wait. */
  uint32_t publish_timeout_ms;
  /* Blocking API only: default bounds of each subscription's local queue
   * (tern_sub_opts_t.queue_msgs/queue_bytes override them). When a queue is
   * full the library stops reading the socket until the application has
   * taken half of it. Defaults 65536 messages, 64 MiB. */
  size_t sub_queue_msgs;
  size_t sub_queue_bytes;
  /* Optional callbacks, all with cb_data. With the blocking API they run on
   * its background loop thread. */
  tern_error_cb error_cb;
  tern_drain_cb drain_cb;
  tern_disconnect_cb disconnect_cb;
  void *cb_data;
  void *reserved[8];
} tern_options_t;

/* Fills *o with the defaults above. Any thread. */
TERN_EXTERN void tern_options_init(tern_options_t *o);

/*
 * Sets host and port from "host:port", "tern://host:port", "host" (port kept)
 * or "[v6addr]:port". 0, or TERN_EBADURL (o unchanged). Any thread.
 */
TERN_EXTERN int tern_options_set_url(tern_options_t *o, const char *url);

/* Pending-queue overflow policy requested from the broker (PROTOCOL.md). */
typedef enum tern_overflow {
  TERN_OVERFLOW_DEFAULT = 0, /* the broker's default (block) */
  TERN_OVERFLOW_BLOCK = 1,
  TERN_OVERFLOW_DROP_OLDEST = 2,
  TERN_OVERFLOW_DROP_NEWEST = 3,
  TERN_OVERFLOW_DISCONNECT = 4
} tern_overflow_t;

/*
 * PUBACK outcome: status 0 and the number of subscriptions the message was
 * delivered or queued to (0 = nobody listened), or status TERN_ECLOSED with
 * receivers 0 when the connection ended first. Loop thread.
 */
typedef void (*tern_ack_cb)(tern_conn_t *conn, int status, uint64_t receivers,
                            void *cb_data);

typedef struct tern_pub_opts {
  /* Reply topic (validated as a topic). NULL: none. */
  const char *reply;
  /* header_count pairs of NUL-terminated strings; borrowed for the call. */
  const char *const *header_keys;
  const char *const *header_values;
  size_t header_count;
  /* Non-NULL: ask the broker for a PUBACK and call ack_cb(ack_cb_data) with
   * it (async API only; the blocking API has tern_client_publish_ack). */
  tern_ack_cb ack_cb;
  void *ack_cb_data;
  bool retain;     /* replace the topic's retained message */
  uint64_t ttl_ms; /* retained message expiry, 0 = none */
  void *reserved[4];
} tern_pub_opts_t;

/* Zeroes *o (no reply, no headers, no ack, not retained). Any thread. */
TERN_EXTERN void tern_pub_opts_init(tern_pub_opts_t *o);

/*
 * The broker reported count messages dropped for this subscription (a
 * DROPPED frame), before the next message it delivers. Loop thread.
 */
typedef void (*tern_dropped_cb)(tern_asub_t *sub, uint64_t count,
                                void *cb_data);

typedef struct tern_sub_opts {
  /* Queue group name: the group's members share the messages. NULL: none. */
  const char *queue;
  /* Broker-side pending limits for this subscription (capped by the
   * broker); 0 = the broker's default. */
  uint64_t max_msgs;
  uint64_t max_bytes;
  tern_overflow_t overflow;
  /* Async API: optional DROPPED notice, with the subscription's cb_data. */
  tern_dropped_cb dropped_cb;
  /* Blocking API: bounds of the local queue; 0 = tern_options_t default. */
  size_t queue_msgs;
  size_t queue_bytes;
  void *reserved[4];
} tern_sub_opts_t;

/* Zeroes *o (no queue group, broker defaults). Any thread. */
TERN_EXTERN void tern_sub_opts_init(tern_sub_opts_t *o);

#ifdef __cplusplus
}
#endif

#endif
