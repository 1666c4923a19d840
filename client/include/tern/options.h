/*
 * Connection, publish and subscribe options.
 *
 * Every options struct is filled with defaults by its *_init macro first;
 * change only the fields you need.
 *
 * The structs are versioned by size. Their first field, struct_size, is set
 * by the init macro to the size of the struct the caller was compiled with,
 * and every function that reads a caller's struct starts from the library's
 * defaults and copies only min(struct_size, the library's own size) bytes
 * over them: a program built against an older header gets the defaults for
 * the fields it does not know, and the fields a newer header added are
 * ignored by an older library. Fields are therefore only ever appended,
 * never reordered or removed. A struct whose struct_size is 0 or smaller
 * than the first version of its layout (never initialised) is refused with
 * TERN_EINVAL: always call the init macro.
 *
 * The init macros expand to the exported *_init_sized functions with
 * sizeof *(o). Bindings that cannot expand C macros call those functions
 * directly, passing the size of their own copy of the struct layout.
 *
 * No libtern has been released yet, so the SONAME stays libtern.so.0 across
 * the layout changes made before the first release (struct_size added, the
 * old reserved arrays removed).
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
 * Fired once when an established connection is lost for good, for any
 * reason other than tern_conn_close: with reconnect off, at the loss (EOF,
 * socket error, fatal ERR, protocol error, missed heartbeats); with
 * reconnect on, only when reconnecting gives up (reason: the last attempt's
 * error). Pending requests, flushes and acks have already been failed with
 * TERN_ECLOSED. The connection must still be closed with tern_conn_close.
 * Loop thread. (tern_status_cb reports every transition, transient ones
 * included.)
 */
typedef void (*tern_disconnect_cb)(tern_conn_t *conn, int reason,
                                   void *cb_data);

/* Connection states reported to tern_status_cb. */
typedef enum tern_status {
  /* The broker accepted CONNECT: the first time (just before the connect
   * callback) and after every successful reconnect (subscriptions already
   * re-sent, publishes buffered while disconnected queued behind them). */
  TERN_STATUS_CONNECTED = 1,
  /* An established connection was lost (reason: TERN_ECLOSED for EOF,
   * TERN_EGOAWAY after the server's GOAWAY, TERN_ESTALE for a silent server,
   * a libuv or tern error otherwise). Requests, flushes and acks in flight
   * have just been failed with TERN_EDISCONNECTED (reconnect on) or
   * TERN_ECLOSED (off). */
  TERN_STATUS_DISCONNECTED = 2,
  /* A reconnect attempt starts (reason: the previous attempt's error, 0 for
   * the first). Fired once per attempt. */
  TERN_STATUS_RECONNECTING = 3,
  /* The connection is down for good: reconnect gave up or was off (reason:
   * the error), or tern_conn_close was called (reason TERN_ECLOSED). Fired at
   * most once, and last. */
  TERN_STATUS_CLOSED = 4
} tern_status_t;

/*
 * Connection status transitions, in order: CONNECTED, then for each loss
 * DISCONNECTED, RECONNECTING (once per attempt) and CONNECTED again, and
 * finally CLOSED. reason as documented per status. May close the
 * connection. Loop thread (the blocking API's background thread).
 */
typedef void (*tern_status_cb)(tern_conn_t *conn, tern_status_t status,
                               int reason, void *cb_data);

/*
 * A status transition with what it cost (tern_status_event_cb). The library
 * fills it and passes it for the duration of the callback.
 *
 * Versioned by size, the other way round from the options structs: the
 * library sets struct_size to the size of its own struct, so a field added
 * by a later version is present only when
 * ev->struct_size >= offsetof(tern_status_event_t, field) + sizeof field.
 * A program built against this header may read every field below without
 * that check: the library it runs with has them all (they came with the
 * struct itself).
 */
typedef struct tern_status_event {
  size_t struct_size;
  tern_status_t status; /* as for tern_status_cb */
  int reason;           /* as for tern_status_cb */
  /*
   * The loss this event belongs to. On DISCONNECTED: this loss. On
   * RECONNECTING, CONNECTED after a reconnect, and CLOSED after reconnecting
   * gave up: the loss being recovered from. All 0 on the first CONNECTED
   * and on a CLOSED by tern_conn_close while connected.
   */
  /* Milliseconds since the connection was lost (on CONNECTED: how long it
   * was down). */
  uint64_t down_ms;
  /* Reconnect attempts made since the loss (on CONNECTED: including the one
   * that succeeded). */
  uint32_t attempts;
  /* Publishes thrown away at the loss: PUB frames still in the outbound
   * batch, never handed to the socket. */
  uint64_t pubs_discarded;
  /* PUB frames of the write that was in flight at the loss: handed to the
   * socket, not known to be written; the broker may or may not have read
   * them. (Frames written just before the loss may be lost too, in the
   * kernel's buffers: at most once.) */
  uint64_t pubs_in_flight;
  /* Publishes refused while disconnected because the buffer for them was
   * full: tern_conn_publish calls that returned TERN_EWOULDBLOCK, and with
   * the blocking API tern_client_publish calls that returned
   * TERN_EWOULDBLOCK after publish_timeout_ms. With pubs_discarded, the
   * publishes this loss cost the application; subscribers also miss
   * whatever was published to them while they were away. */
  uint64_t pubs_refused;
} tern_status_event_t;

/*
 * Like tern_status_cb (same transitions, same thread, fired right after
 * it when both are set), with the event's figures. May close the
 * connection.
 */
typedef void (*tern_status_event_cb)(tern_conn_t *conn,
                                     const tern_status_event_t *ev,
                                     void *cb_data);

typedef struct tern_options {
  /* Set by tern_options_init; never change it. */
  size_t struct_size;
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
  /* (The first version of the layout ends here.) */

  /* Status transitions (tern_status_cb), with cb_data. Optional. */
  tern_status_cb status_cb;

  /*
   * Server list: NULL, or a comma-separated list of URLs in the forms
   * tern_options_set_url accepts ("10.0.0.1:7421,10.0.0.2:7421"); it then
   * replaces host/port. The first connect tries each server once, in order,
   * and reports the last error if none accepts. Every reconnect attempt
   * moves on to the next server, wrapping around, so a GOAWAY or a loss sends
   * the client to the next server (the same one with a single server).
   * Copied by connect. Malformed: connect returns TERN_EBADURL.
   */
  const char *servers;

  /*
   * Reconnect (default on). Once connected, a lost connection (EOF, socket
   * error, fatal ERR, GOAWAY, missed heartbeats) is re-established by a
   * timer on the loop: attempt n waits
   *   d = min(reconnect_max_ms, reconnect_initial_ms * 2^(n-1)),
   * shortened by a random fraction of at most reconnect_jitter (0..1) of d,
   * then re-sends CONNECT, every live subscription with its sid, pattern,
   * queue group, pending limits and overflow policy (and, after an UNSUB
   * with max_msgs, an UNSUB for the messages still due), then the frames
   * buffered while disconnected. While disconnected, publishes, flushes,
   * requests and subscribes are accepted and buffered (publishes within
   * outbound_limit, else TERN_EWOULDBLOCK and the drain callback once the
   * buffer has been sent after the reconnect). Requests, flushes and acks
   * already sent fail at the loss with TERN_EDISCONNECTED; waits that are
   * still buffered keep their timeouts. After reconnect_max_attempts failed
   * attempts in a row (negative: never give up) the connection is lost for
   * good: everything buffered fails with TERN_ECLOSED, then status CLOSED and
   * disconnect_cb. A connection that never connected does not reconnect.
   * reconnect = false: the first loss is final, as described for
   * disconnect_cb. Defaults: on, 100 ms initial, 5000 ms max, 0.2 jitter,
   * 60 attempts.
   */
  bool reconnect;
  uint32_t reconnect_initial_ms;
  uint32_t reconnect_max_ms;
  int reconnect_max_attempts;
  double reconnect_jitter;

  /*
   * Client-side heartbeat, on whenever the broker's HELLO announces a
   * heartbeat_ms H > 0: after H without any frame from the broker the client
   * PINGs it, and after 2*H of silence it treats the connection as dead
   * (TERN_ESTALE) and reconnects. heartbeat_ms (default 0) overrides H when
   * non-zero.
   */
  uint32_t heartbeat_ms;

  /*
   * Request circuit breaker (default off: breaker_threshold 0). With a
   * threshold N > 0, each request topic counts consecutive failures
   * (TERN_ETIMEOUT, TERN_ENORESPONDERS); at N the breaker opens and requests
   * to that topic fail at once with TERN_EBREAKER (returned by the request
   * call, no callback) for breaker_cooldown_ms. Then it is half-open: one
   * request goes through as a probe while the others still get
   * TERN_EBREAKER; a reply closes the breaker, a failure opens it for
   * another cool-down. TERN_EDISCONNECTED and TERN_ECLOSED outcomes do not
   * count. At most breaker_max_topics (default 1024) topics are tracked;
   * topics with no recent failure are forgotten first. Default cool-down
   * 5000 ms. Off by default because failing fast changes what callers see;
   * turn it on for request paths that must not pile up on a dead service.
   */
  uint32_t breaker_threshold;
  uint32_t breaker_cooldown_ms;
  uint32_t breaker_max_topics;

  /* Status transitions with their figures (tern_status_event_cb), with
   * cb_data. Optional; default NULL. */
  tern_status_event_cb status_event_cb;

  /*
   * TLS (OpenSSL 3). tls: host/port speak TLS; a "tls://" URL
   * (tern_options_set_url, or an entry of servers) sets it for that
   * server. The server's certificate is checked against tls_ca_file (PEM;
   * NULL: the system's trust store) and must name the host connected to
   * (a DNS name, or an IP address in its SANs), or tls_server_name when
   * set. tls_cert_file and tls_key_file (PEM) are the client's certificate
   * for a broker that asks for one (mutual TLS). Every reconnect makes a
   * new handshake; the handshake runs on the loop like the rest and counts
   * in connect_timeout_ms. Strings copied by connect. A certificate that
   * is not accepted fails the connect with TERN_ETLS (the reason in
   * tern_conn_last_error); a TLS server for a plaintext URL, or the
   * reverse, fails it too, with a reason that says so.
   *
   * tls_insecure_skip_verify accepts any certificate for any name: the
   * traffic is encrypted but anyone in the middle can read it. For tests
   * only. Default false.
   */
  bool tls;
  const char *tls_ca_file;
  const char *tls_cert_file;
  const char *tls_key_file;
  const char *tls_server_name;
  bool tls_insecure_skip_verify;
} tern_options_t;

/*
 * Fills the first size bytes of *o with the defaults above (zeroing any
 * bytes beyond the library's own struct) and sets o->struct_size = size.
 * Returns 0, or TERN_EINVAL when o is NULL or size is smaller than the first
 * version of the layout (then struct_size is set to 0 if it fits, so connect
 * refuses the struct too). Any thread. C callers use tern_options_init.
 */
TERN_EXTERN int tern_options_init_sized(tern_options_t *o, size_t size);
#define tern_options_init(o) tern_options_init_sized((o), sizeof *(o))

/*
 * Sets host and port from "host:port", "tern://host:port", "host" (port kept)
 * or "[v6addr]:port", and tls from the scheme: "tls://host:port" sets it,
 * "tern://" clears it, no scheme leaves it. 0, TERN_EBADURL (o unchanged),
 * or TERN_EINVAL when *o was not initialised (struct_size too small, or,
 * for tls://, too small to hold tls). Any thread.
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
 * delivered or queued to (0 = nobody listened); status TERN_ECLOSED (or
 * TERN_EDISCONNECTED) with receivers 0 when the connection ended first;
 * the broker's refusal of the PUB with receivers 0 (TERN_EPERM: permission
 * denied, TERN_ETOPIC, TERN_ETOOLARGE; tern/async.h "Refusals"); or, for a
 * retained publish the broker delivered but could not retain (retained
 * store full, ERR 13), TERN_ETOOLARGE with the receivers. Loop thread.
 */
typedef void (*tern_ack_cb)(tern_conn_t *conn, int status, uint64_t receivers,
                            void *cb_data);

typedef struct tern_pub_opts {
  /* Set by tern_pub_opts_init; never change it. */
  size_t struct_size;
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
  /* (The first version of the layout ends here.) */
} tern_pub_opts_t;

/*
 * Zeroes the first size bytes of *o (no reply, no headers, no ack, not
 * retained) and sets o->struct_size = size. 0, or TERN_EINVAL as for
 * tern_options_init_sized. Any thread. C callers use tern_pub_opts_init.
 */
TERN_EXTERN int tern_pub_opts_init_sized(tern_pub_opts_t *o, size_t size);
#define tern_pub_opts_init(o) tern_pub_opts_init_sized((o), sizeof *(o))

/*
 * The broker reported count messages dropped for this subscription (a
 * DROPPED frame), before the next message it delivers. Loop thread.
 */
typedef void (*tern_dropped_cb)(tern_asub_t *sub, uint64_t count,
                                void *cb_data);

/*
 * The broker refused the subscription's SUB: err is TERN_EPERM (permission
 * denied, ERR 3), TERN_ETOPIC (ERR 4), TERN_ELIMIT (too many subscriptions,
 * ERR 10) or another tern_err_from_wire code, text the broker's message
 * (borrowed for the call). Fires at most once, before the PONG of any flush
 * made after the subscribe. The subscription then receives nothing and is
 * not re-sent after a reconnect; sub stays valid (tern_asub_error says why)
 * until tern_asub_unsubscribe, which may be called from here. Loop thread.
 */
typedef void (*tern_sub_error_cb)(tern_asub_t *sub, int err, const char *text,
                                  void *cb_data);

typedef struct tern_sub_opts {
  /* Set by tern_sub_opts_init; never change it. */
  size_t struct_size;
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
  /* (The first version of the layout ends here.) */

  /* Async API: optional, with the subscription's cb_data: the broker
   * refused the subscription (see tern_sub_error_cb). Ignored by the
   * blocking API, whose tern_client_subscribe returns the error. */
  tern_sub_error_cb error_cb;
} tern_sub_opts_t;

/*
 * Zeroes the first size bytes of *o (no queue group, broker defaults) and
 * sets o->struct_size = size. 0, or TERN_EINVAL as for
 * tern_options_init_sized. Any thread. C callers use tern_sub_opts_init.
 */
TERN_EXTERN int tern_sub_opts_init_sized(tern_sub_opts_t *o, size_t size);
#define tern_sub_opts_init(o) tern_sub_opts_init_sized((o), sizeof *(o))

#ifdef __cplusplus
}
#endif

#endif
