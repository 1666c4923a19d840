/*
 * The asynchronous API: a tern connection driven by a caller-supplied libuv
 * loop.
 *
 * Threads: every function here must be called on the thread that runs the
 * connection's loop (or before uv_run, on the thread that will), and every
 * callback fires on that thread from inside uv_run. Callbacks receive the
 * cb_data given when they were registered.
 *
 * Lifetime: tern_conn_connect creates a connection; exactly one
 * tern_conn_close frees it, whatever happened in between (failed connect,
 * lost connection). Its memory, and that of its subscriptions, is freed
 * only after every libuv handle it owns is closed, just before the close
 * callback, so uv_loop_close succeeds once that callback has run.
 * It is legal to close the connection, or to unsubscribe a subscription,
 * from inside any of its callbacks (the free is deferred).
 *
 * Outbound frames are appended to one bounded buffer and written once per
 * loop iteration (a uv_prepare_t hook), so a burst of publishes costs one
 * write.
 *
 * Faults: a connection that was established once reconnects by itself
 * (tern_options_t.reconnect, on by default), keeping its subscriptions and
 * buffering what is published meanwhile; tern_options_t.status_cb reports
 * each transition. "Disconnected" below means lost and reconnecting; "lost"
 * means lost for good. The request circuit breaker is described with
 * tern_options_t.breaker_threshold.
 *
 * Refusals: the broker answers a frame it refuses without closing (ERR 3
 * permission denied, 4, 8, 9, 10, 13) with an ERR that names no frame. The
 * broker handles a connection's frames in order, so libtern tells which
 * frame an ERR belongs to by where it arrives among the answers it expects
 * (PONG, PUBACK), and hands it to that frame's callback:
 *  - a publish with an ack_cb (and a request): the ack (request) fails with
 *    the error, e.g. TERN_EPERM. libtern sends a PING ahead of such a PUB
 *    when other refusable frames went out since the last PING or acked PUB,
 *    so that the PUB is the only candidate;
 *  - a subscribe: SUB goes out between two PINGs (the first one only when
 *    needed) and an ERR before the second PONG is that SUB's: the
 *    subscription's error_cb (tern_sub_opts_t) fires and tern_asub_error
 *    reports it;
 *  - anything else (a plain publish, an UNSUB): the first tern_conn_flush
 *    whose PING was sent after the refused frame completes with the error
 *    instead of 0; with no flush outstanding, the next one made does. A
 *    flush reports one refusal (the first); more of them before its PONG
 *    are only seen by error_cb, and none is reported twice.
 * Every ERR also goes to tern_options_t.error_cb, with the broker's text.
 * A SUB re-sent after a reconnect (or made while disconnected) has no
 * barrier of its own: its refusal is reported like a plain publish's.
 */
#ifndef TERN_ASYNC_H
#define TERN_ASYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tern/errors.h"
#include "tern/export.h"
#include "tern/msg.h"
#include "tern/options.h"

#ifdef __cplusplus
extern "C" {
#endif

/* status 0: the broker accepted CONNECT (OK received). Otherwise a libuv
 * error (UV_ECONNREFUSED, ...), TERN_ETIMEOUT, TERN_EAUTH, TERN_EPROTO or
 * TERN_ECLOSED (closed before it completed); the connection is then unusable
 * and must be closed. Fires exactly once per successful tern_conn_connect. */
typedef void (*tern_connect_cb)(tern_conn_t *conn, int status, void *cb_data);
/* Fires once, after all of the connection's memory has been released except
 * the pointer value itself: do not dereference conn. */
typedef void (*tern_close_cb)(tern_conn_t *conn, void *cb_data);
/* A message for sub. msg is borrowed for the call (tern_msg_retain keeps
 * it). May unsubscribe sub or close the connection. */
typedef void (*tern_msg_cb)(tern_asub_t *sub, tern_msg_t *msg, void *cb_data);
/* Request outcome: status 0 with the reply (borrowed for the call), or
 * TERN_ETIMEOUT / TERN_ENORESPONDERS / TERN_ECLOSED with reply NULL. */
typedef void (*tern_reply_cb)(tern_conn_t *conn, int status, tern_msg_t *reply,
                              void *cb_data);
/* Flush outcome: 0 when the PONG arrived (everything sent before the flush
 * has been processed by the broker), TERN_ETIMEOUT or TERN_ECLOSED; or,
 * when the PONG arrived but the broker refused a frame sent before the flush
 * that no other callback was told about (see "Refusals" above), that
 * refusal's code (TERN_EPERM, TERN_ETOPIC, TERN_ETOOLARGE, ...). */
typedef void (*tern_flush_cb)(tern_conn_t *conn, int status, void *cb_data);

/* Connection counters. */
typedef struct tern_conn_stats {
  uint64_t msgs_in;    /* MSG frames received */
  uint64_t bytes_in;   /* payload bytes received */
  uint64_t msgs_out;   /* PUB frames accepted by tern_conn_publish */
  uint64_t bytes_out;  /* payload bytes of those */
  uint64_t oks;        /* OK frames after the connect handshake (verbose) */
  uint64_t errs;       /* ERR frames received */
  uint64_t dropped;    /* sum of DROPPED counts over all subscriptions */
  uint64_t reconnects; /* successful reconnects */
} tern_conn_stats_t;

/* A request topic's circuit breaker (tern_conn_breaker_state). */
typedef enum tern_breaker_state {
  TERN_BREAKER_CLOSED = 0,   /* requests go through */
  TERN_BREAKER_OPEN = 1,     /* failing fast with TERN_EBREAKER */
  TERN_BREAKER_HALF_OPEN = 2 /* cool-down over: the next request probes */
} tern_breaker_state_t;

/*
 * Starts connecting to opts->host:port on loop. opts (and every string it
 * points to) is copied; the caller may free it when this returns. On success
 * *out is the new connection and cb fires later with the outcome; on failure
 * a negative code is returned, *out is NULL and cb never fires.
 * Errors: TERN_EINVAL (NULL argument, port out of range, opts not
 * initialised with tern_options_init: struct_size too small), TERN_ENOMEM,
 * libuv errors from starting the resolve/connect.
 */
TERN_EXTERN int tern_conn_connect(tern_conn_t **out, uv_loop_t *loop,
                                  const tern_options_t *opts,
                                  tern_connect_cb cb, void *cb_data);

/*
 * Closes the connection: frames already buffered are written (bounded by
 * connect_timeout_ms), the socket is shut down, pending requests, flushes and
 * acks fire with TERN_ECLOSED (a pending connect with TERN_ECLOSED), and
 * when every handle is closed the memory is freed and cb (optional) fires.
 * Calling it a second time is a no-op. conn must not be used after this
 * returns, except that callbacks already promised may still arrive from
 * inside this call.
 */
TERN_EXTERN void tern_conn_close(tern_conn_t *conn, tern_close_cb cb,
                                 void *cb_data);

/*
 * Publishes len bytes of payload to topic. topic must be a valid topic
 * without wildcards (and not start with '$': the broker refuses those). The
 * frame is copied into the outbound buffer; payload is borrowed for the call.
 * opts may be NULL. With opts->ack_cb set the callback fires on the PUBACK.
 * While disconnected (reconnecting) the frame is buffered and sent after
 * the reconnect, behind the re-sent subscriptions; the same outbound_limit
 * bounds that buffer. An ack_cb then fires with the PUBACK from the new
 * connection, or TERN_ECLOSED if reconnecting gives up.
 * Returns 0, or: TERN_ENOTCONN (connect has not completed, or the
 * connection was lost for good), TERN_ETOPIC (invalid topic or reply),
 * TERN_ETOOLARGE (len above the broker's max_payload), TERN_EWOULDBLOCK
 * (outbound buffer at its limit, or max_inflight acks outstanding: retry
 * after the drain callback), TERN_EINVAL (also: opts not initialised with
 * tern_pub_opts_init), TERN_ENOMEM.
 */
TERN_EXTERN int tern_conn_publish(tern_conn_t *conn, const char *topic,
                                  const void *payload, size_t len,
                                  const tern_pub_opts_t *opts);

/*
 * Subscribes to pattern ('*' and '>' wildcards). opts may be NULL. cb fires
 * for every message, with cb_data. *out (optional) receives the
 * subscription, owned by the connection: valid until it is unsubscribed
 * (tern_asub_unsubscribe with 0, or after its max_msgs-th message's callback
 * returns) or the connection is freed.
 * Returns 0, or TERN_ENOTCONN, TERN_ETOPIC, TERN_EINVAL (also: opts not
 * initialised with tern_sub_opts_init), TERN_ENOMEM.
 * Messages may start arriving after the next loop iteration; a flush after
 * subscribing tells you when the broker has registered it. The subscription
 * survives reconnects (re-sent with the same sid and options); made while
 * disconnected, it is sent with the others on reconnect.
 */
TERN_EXTERN int tern_conn_subscribe(tern_conn_t *conn, tern_asub_t **out,
                                    const char *pattern,
                                    const tern_sub_opts_t *opts, tern_msg_cb cb,
                                    void *cb_data);

/*
 * Ends the subscription. max_msgs 0: now; sub is invalid after the call
 * (freed at once, or after its running callback returns). max_msgs > 0: after
 * that many messages in total (counting those already delivered); sub stays
 * valid until the last one's callback returns. Returns 0 or TERN_EINVAL (sub
 * already ending); on a lost connection the subscription is just removed.
 */
TERN_EXTERN int tern_asub_unsubscribe(tern_asub_t *sub, uint64_t max_msgs);

/* The subscription's sid, pattern (do not free), messages delivered to its
 * callback so far, and the total the broker reported dropped. */
TERN_EXTERN uint64_t tern_asub_sid(const tern_asub_t *sub);
TERN_EXTERN const char *tern_asub_pattern(const tern_asub_t *sub);
TERN_EXTERN uint64_t tern_asub_delivered(const tern_asub_t *sub);
TERN_EXTERN uint64_t tern_asub_dropped(const tern_asub_t *sub);
/* 0, or the error the broker refused the subscription with (TERN_EPERM,
 * ...; see tern_sub_error_cb). */
TERN_EXTERN int tern_asub_error(const tern_asub_t *sub);
/* The connection a subscription belongs to. */
TERN_EXTERN tern_conn_t *tern_asub_conn(const tern_asub_t *sub);

/*
 * Sends a request: publishes payload to topic with a reply inbox
 * "<inbox_prefix>.<random>.<n>" unique to this request. All requests of a
 * connection share one wildcard subscription "<inbox_prefix>.<random>.>",
 * made on the first request. The publish asks for a PUBACK; when the broker
 * says nobody received it, cb fires with TERN_ENORESPONDERS at once. cb
 * fires exactly once: with the first reply, TERN_ETIMEOUT after timeout_ms,
 * TERN_ENORESPONDERS, TERN_EDISCONNECTED (the connection was lost after the
 * request was sent: it fails at the loss, it does not wait for the timeout),
 * TERN_ECLOSED, or the broker's refusal of the request's PUB or of the
 * inbox subscription (TERN_EPERM for a permission denial, ...: see
 * "Refusals" above). Later replies are ignored. A request made while
 * disconnected is buffered and sent after the reconnect (its timeout runs).
 * Returns 0, TERN_EBREAKER (the topic's circuit breaker is open: nothing is
 * sent), or the errors of tern_conn_publish (nothing is sent then).
 */
TERN_EXTERN int tern_conn_request(tern_conn_t *conn, const char *topic,
                                  const void *payload, size_t len,
                                  uint32_t timeout_ms, tern_reply_cb cb,
                                  void *cb_data);

/*
 * Barrier: sends PING; cb fires with 0 when the matching PONG arrives, i.e.
 * once the broker has processed every frame sent before it (or with the
 * code of a refusal no other callback got: see tern_flush_cb); TERN_ETIMEOUT
 * after timeout_ms (0 = no timeout), TERN_EDISCONNECTED (lost after the PING
 * was sent) or TERN_ECLOSED. Made while disconnected, the PING is sent after
 * the reconnect.
 * Returns 0, TERN_ENOTCONN, TERN_EWOULDBLOCK (max_inflight flushes pending),
 * TERN_ENOMEM.
 */
TERN_EXTERN int tern_conn_flush(tern_conn_t *conn, uint32_t timeout_ms,
                                tern_flush_cb cb, void *cb_data);

/*
 * Application-paced reading. pause stops reading the socket after the frame
 * being dispatched (so the broker's flow control holds the publishers back);
 * resume delivers the frames already buffered and reads again. Both may be
 * called from callbacks. Idempotent.
 */
TERN_EXTERN void tern_conn_read_pause(tern_conn_t *conn);
TERN_EXTERN void tern_conn_read_resume(tern_conn_t *conn);

/* True between a CONNECTED status and the next loss or close: false while
 * reconnecting. */
TERN_EXTERN bool tern_conn_is_connected(const tern_conn_t *conn);
/* The circuit breaker state of request topic (TERN_BREAKER_CLOSED when the
 * breaker is off or the topic is not tracked). An OPEN breaker whose
 * cool-down has passed reads HALF_OPEN. */
TERN_EXTERN tern_breaker_state_t
tern_conn_breaker_state(const tern_conn_t *conn, const char *topic);
/* Bytes in the outbound buffer (not yet written, in flight, or buffered
 * while disconnected). */
TERN_EXTERN size_t tern_conn_outbound_bytes(const tern_conn_t *conn);
/* The broker's max_payload from HELLO (0 before it arrived). */
TERN_EXTERN uint64_t tern_conn_max_payload(const tern_conn_t *conn);
/* Text of the last error on this connection (server ERR message, socket or
 * protocol error), "" if none. Valid until the next error; do not free. */
TERN_EXTERN const char *tern_conn_last_error(const tern_conn_t *conn);
/* Copies the counters into *out. */
TERN_EXTERN void tern_conn_get_stats(const tern_conn_t *conn,
                                     tern_conn_stats_t *out);
/* The loop the connection runs on. */
TERN_EXTERN uv_loop_t *tern_conn_loop(const tern_conn_t *conn);

#ifdef __cplusplus
}
#endif

#endif
