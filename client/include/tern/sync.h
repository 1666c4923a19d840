/*
 * The blocking API, for plain programs.
 *
 * A tern_client_t owns a libuv loop running on a background thread, with
 * one asynchronous connection on it. Application threads talk to that
 * thread only through a mutex-protected command queue and a uv_async_t, so
 * the functions below may be called from any thread, concurrently, except
 * where noted; none may be called once tern_client_close has started.
 * Callbacks set in tern_options_t (error, drain, disconnect) run on the
 * background thread.
 *
 * Timeouts are in milliseconds: a negative timeout waits forever, 0 does not
 * wait at all.
 *
 * Backpressure reaches both ways: a publish into a full outbound buffer
 * waits (publish_timeout_ms); a subscription whose local queue is full
 * makes the background thread stop reading the socket until the
 * application has taken half of it, so the broker holds the publishers.
 *
 * Reconnect is transparent (tern_options_t.reconnect, on by default):
 * while the background thread reconnects, subscriptions stay alive and
 * tern_sub_next keeps waiting; publishes are held (the command queue and
 * the connection's held buffer, each bounded by outbound_limit, then
 * TERN_EWOULDBLOCK after publish_timeout_ms); requests, flushes and
 * publish_ack calls whose frames were already sent fail at once with
 * TERN_EDISCONNECTED, later ones are sent after the reconnect. Only when
 * the client is closed or reconnecting gives up do calls answer
 * TERN_ECLOSED. status_cb reports the transitions on the background thread.
 *
 * Refusals: a frame the broker refuses without closing (ERR 3 permission
 * denied, and 4, 8, 9, 10, 13) fails the call that sent it, with the
 * matching code (TERN_EPERM for ERR 3): tern_client_subscribe,
 * tern_client_publish_ack and tern_client_request return it. A plain
 * tern_client_publish has already returned: its refusal is returned by the
 * next tern_client_flush (once). tern_client_last_error has the broker's
 * text ("permission denied: publish to 'a.b'"), and error_cb sees every
 * ERR. See "Refusals" in tern/async.h for how an ERR is matched to a frame.
 */
#ifndef TERN_SYNC_H
#define TERN_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "tern/errors.h"
#include "tern/export.h"
#include "tern/msg.h"
#include "tern/options.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_client tern_client_t;
/* A subscription of a blocking client, with its bounded message queue. */
typedef struct tern_sub tern_sub_t;

/*
 * Connects (blocks until the broker's OK, an error, or connect_timeout_ms).
 * opts may be NULL (defaults); it is copied. On success *out is the client,
 * to be freed with tern_client_close. Errors: those of tern_conn_connect and
 * its callback (UV_ECONNREFUSED, TERN_ETIMEOUT, TERN_EAUTH, ...), or
 * UV_E* from creating the thread. Any thread.
 */
TERN_EXTERN int tern_client_connect(tern_client_t **out,
                                    const tern_options_t *opts);
/* tern_client_connect, and on failure the reason in words (the
 * connection's last error: "certificate verify failed: ...") in why (n
 * bytes, may be NULL). */
TERN_EXTERN int tern_client_connect_why(tern_client_t **out,
                                        const tern_options_t *opts, char *why,
                                        size_t n);

/*
 * Flushes what is buffered (bounded by connect_timeout_ms), closes the
 * connection, stops and joins the background thread and frees the client and
 * every subscription not yet destroyed (their pointers become invalid).
 * Messages the application still holds stay valid until released. Threads
 * blocked in this client's calls must have returned first: not concurrently
 * with any other call on this client or its subscriptions.
 */
TERN_EXTERN void tern_client_close(tern_client_t *cl);

/*
 * Publishes a copy of payload to topic; opts (optional, ack_cb must be NULL)
 * is copied. Returns when the frame is queued, not when it is sent. Waits up
 * to publish_timeout_ms when the outbound buffer is full.
 * Returns 0, TERN_ETOPIC, TERN_ETOOLARGE (above the broker's max_payload),
 * TERN_EWOULDBLOCK (still full after the wait), TERN_ECLOSED (connection
 * lost), TERN_EINVAL (also: opts not initialised with tern_pub_opts_init),
 * TERN_ENOMEM. Any thread.
 */
TERN_EXTERN int tern_client_publish(tern_client_t *cl, const char *topic,
                                    const void *payload, size_t len,
                                    const tern_pub_opts_t *opts);

/*
 * Like tern_client_publish, but asks for a PUBACK and waits for it (up to
 * timeout_ms): *receivers (optional) gets the number of subscriptions the
 * broker delivered to. Returns 0, the publish errors, TERN_ETIMEOUT, the
 * broker's refusal (TERN_EPERM, ...), or TERN_ETOOLARGE after delivering a
 * retained publish it could not retain (*receivers set). Any thread.
 */
TERN_EXTERN int tern_client_publish_ack(tern_client_t *cl, const char *topic,
                                        const void *payload, size_t len,
                                        const tern_pub_opts_t *opts,
                                        int timeout_ms, uint64_t *receivers);

/*
 * Subscribes and waits until the broker has registered the subscription (a
 * PING/PONG round trip), so a publish made after this returns is delivered.
 * opts may be NULL. *out is owned by the caller: destroy it with
 * tern_sub_destroy (or let tern_client_close do it).
 * Returns 0, TERN_ETOPIC, TERN_ECLOSED, TERN_ETIMEOUT (no PONG within
 * connect_timeout_ms), TERN_EINVAL (also: opts not initialised with
 * tern_sub_opts_init), TERN_ENOMEM, or the broker's refusal: TERN_EPERM
 * (permission denied), TERN_ELIMIT (too many subscriptions), TERN_ETOPIC.
 * (Made while the connection is down, the SUB goes out after the reconnect
 * and a refusal then reaches error_cb and the next tern_client_flush.)
 * opts->error_cb is not used. Any thread.
 */
TERN_EXTERN int tern_client_subscribe(tern_client_t *cl, tern_sub_t **out,
                                      const char *pattern,
                                      const tern_sub_opts_t *opts);

/*
 * Pops the next message, waiting up to timeout_ms for one. Returns 0 with
 * *out set (the caller owns it: tern_msg_release), TERN_ETIMEOUT, or
 * TERN_ECLOSED once the subscription has ended (unsubscribed, max_msgs
 * reached, connection lost for good: a reconnect does not end it) and its
 * queue is empty. One consumer thread at a
 * time per subscription; any thread.
 */
TERN_EXTERN int tern_sub_next(tern_sub_t *sub, int timeout_ms,
                              tern_msg_t **out);

/*
 * Ends the subscription after max_msgs messages in total (0: now). Messages
 * already queued can still be taken with tern_sub_next, which then answers
 * TERN_ECLOSED. The tern_sub_t stays valid until tern_sub_destroy.
 * Returns 0 or TERN_ECLOSED. Any thread, not concurrently with destroy.
 */
TERN_EXTERN int tern_sub_unsubscribe(tern_sub_t *sub, uint64_t max_msgs);

/*
 * Unsubscribes (if still active), drops queued messages and frees sub.
 * Not concurrently with any other call on sub. Any thread.
 */
TERN_EXTERN void tern_sub_destroy(tern_sub_t *sub);

/* Messages waiting in the local queue, and the total the broker reported
 * dropped for this subscription. Any thread. */
TERN_EXTERN size_t tern_sub_pending(tern_sub_t *sub);
TERN_EXTERN uint64_t tern_sub_dropped(tern_sub_t *sub);
/* The subscription's sid. Any thread. */
TERN_EXTERN uint64_t tern_sub_sid(const tern_sub_t *sub);

/*
 * Sends a request and waits for the first reply (see tern_conn_request).
 * Returns 0 with *reply (caller releases it), TERN_ETIMEOUT,
 * TERN_ENORESPONDERS, TERN_EDISCONNECTED (the connection was lost after the
 * request was sent), TERN_EBREAKER (circuit breaker open), TERN_ECLOSED,
 * the broker's refusal of the request or of the reply inbox's subscription
 * (TERN_EPERM, ...), or the publish errors. Any thread.
 */
TERN_EXTERN int tern_client_request(tern_client_t *cl, const char *topic,
                                    const void *payload, size_t len,
                                    int timeout_ms, tern_msg_t **reply);

/*
 * Waits until the broker has processed everything this client sent before
 * (PING/PONG). Returns 0, TERN_ETIMEOUT, TERN_EDISCONNECTED, TERN_ECLOSED,
 * or the code of a refusal of an earlier plain publish (or other frame
 * without a call of its own to fail) not reported yet: TERN_EPERM, ...
 * (the PONG came: everything was processed). Any thread.
 */
TERN_EXTERN int tern_client_flush(tern_client_t *cl, int timeout_ms);

/* Copies the connection's last error text (see tern_conn_last_error) into
 * buf, NUL-terminated and truncated to n bytes. Any thread. */
TERN_EXTERN void tern_client_last_error(tern_client_t *cl, char *buf, size_t n);

/* The broker's max_payload from HELLO. Any thread. */
TERN_EXTERN uint64_t tern_client_max_payload(tern_client_t *cl);

#ifdef __cplusplus
}
#endif

#endif
