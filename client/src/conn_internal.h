/*
 * Private state of an asynchronous connection, shared by conn.c (socket,
 * handshake, read path, close), conn_write.c (the outbound batch, its
 * flush hook, publishes, the flush on close), sub.c (subscriptions), request.c
 * (acks, requests, flushes, the deadline timer), reconnect.c (server list,
 * backoff, heartbeat), breaker.c (request circuit breaker) and msg.c.
 * Everything here runs on the connection's loop thread.
 */
#ifndef TERN_CONN_INTERNAL_H
#define TERN_CONN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tern/async.h"
#include "tern_proto/buf.h"
#include "tern_proto/frame.h"
#include "tern_proto/reader.h"

/* The largest frame libtern accepts from a broker (the reader's bound). */
#define TERN__MAX_FRAME_IN (64u * 1024u * 1024u + TP_FRAME_OVERHEAD)
#define TERN__ERRTEXT_MAX 256
#define TERN__INBOX_RANDOM_HEX 16

typedef enum tern__conn_state {
  TERN__CONNECTING, /* resolving or TCP connecting */
  TERN__HANDSHAKE,  /* waiting for HELLO, then for OK */
  TERN__CONNECTED,
  TERN__WAITING, /* reconnect: between attempts (tcp recycling, backoff) */
  TERN__LOST,    /* failed or lost: only tern_conn_close is useful */
  TERN__CLOSING, /* tern_conn_close called */
} tern__conn_state_t;

/* Options with every string owned by the connection. */
typedef struct tern__opts {
  tern_options_t o; /* string pointers below point into this copy's fields */
  char *name, *user, *pass, *token, *inbox_prefix, *servers;
  char *tls_ca, *tls_cert, *tls_key, *tls_name;
} tern__opts_t;

/* One entry of the server list. */
typedef struct tern__server {
  char host[TERN_HOST_MAX];
  int port;
  bool tls;
} tern__server_t;

typedef struct tern__breaker tern__breaker_t;

struct tern_asub {
  tern_conn_t *conn;
  uint64_t sid;
  char *pattern;
  tern_msg_cb cb;
  tern_dropped_cb dropped_cb;
  tern_sub_error_cb error_cb;
  void *cb_data;
  uint64_t delivered;
  uint64_t dropped;
  uint64_t max_msgs; /* from UNSUB with a limit; 0 = none */
  /* SUB options, kept to re-send the subscription after a reconnect. */
  char *queue;
  uint64_t limit_msgs, limit_bytes;
  int overflow;
  int refused; /* the broker refused the SUB with this error; 0 = live */
  bool in_cb;  /* its message callback is running: defer the free */
  bool dead;  /* removed from the table; free when in_cb clears */
};

/*
 * Every waiter for an answer (PUBACK or PONG) has a seq, taken from
 * c->next_seq in the order its frame enters the byte stream, so the answer
 * due next is the ack or flush waiter with the lowest seq (see on_err's
 * attribution in request.c).
 */
typedef struct tern__ack {
  struct tern__ack *next;
  uint64_t id;
  uint64_t seq;
  tern_ack_cb cb; /* NULL: the ack of request number req_n */
  void *cb_data;
  uint64_t req_n;
  int err;     /* ERR 13 on a retained PUB: reported with the PUBACK */
  bool retain; /* a PUBACK may follow an ERR 13 (retained store full) */
  bool held;   /* its PUB is still in the disconnected buffer */
} tern__ack_t;

typedef struct tern__req {
  struct tern__req *next;
  uint64_t n;
  uint64_t deadline; /* uv_now() ms */
  tern_reply_cb cb;
  void *cb_data;
  bool held;   /* its PUB is still in the disconnected buffer */
  bool probe;  /* the circuit breaker's half-open probe */
  char *topic; /* copy for the circuit breaker; NULL when it is off */
} tern__req_t;

typedef struct tern__flush {
  struct tern__flush *next;
  uint64_t seq;
  uint64_t deadline; /* 0 = none */
  tern_flush_cb cb;  /* NULL once it timed out, or a barrier/heartbeat PING */
  void *cb_data;
  uint64_t sub_sid; /* sub_barrier: the SUB just before this PING */
  int err;          /* a refusal to report with the PONG */
  bool held;        /* its PING is still in the disconnected buffer */
  bool collect;     /* a user's flush: takes unattributed refusals */
  bool sub_barrier; /* an ERR before this PONG is sub_sid's */
} tern__flush_t;

struct tern_conn {
  uv_loop_t *loop;
  tern__opts_t opts;
  tern__conn_state_t state;
  bool hello_seen;

  uv_tcp_t tcp;
  uv_prepare_t prepare; /* writes the batch once per loop iteration */
  uv_timer_t timer;     /* connect, close, request and flush deadlines */
  uv_getaddrinfo_t gai;
  uv_connect_t connect_req;
  uv_write_t write_req;
  uv_shutdown_t shutdown_req;
  int refs; /* open handles + an active resolve: free when 0 and closing */
  bool resolving, tcp_connected, handles_closing, shutting_down;

  tern_connect_cb connect_cb; /* cleared once fired */
  void *connect_cb_data;
  tern_close_cb close_cb;
  void *close_cb_data;
  uint64_t connect_deadline;
  uint64_t timer_due; /* when the timer fires, if active */

  tp_reader_t *reader;
  bool reading, paused;
  int dispatching; /* depth of dispatch_frames on the stack */

  tp_buf_t pending;  /* frames not yet handed to the socket */
  tp_buf_t inflight; /* the one uv_write in flight */
  tp_buf_t scratch;  /* headers encoding */
  bool writing, want_drain;

  uint64_t max_payload;
  uint64_t next_sid;
  tern_asub_t **subs; /* sorted by sid (sids only grow) */
  size_t nsubs, subs_cap;

  uint64_t next_ack;
  tern__ack_t *acks, *acks_tail;
  size_t nacks;
  tern__req_t *reqs;
  size_t nreqs;
  uint64_t next_req;
  tern__flush_t *flushes, *flushes_tail;
  size_t nflushes;
  char inbox[TERN_HOST_MAX]; /* "<prefix>.<random>." once made */
  size_t inbox_len;
  tern_asub_t *inbox_sub;

  tern_conn_stats_t stats;
  char last_error[TERN__ERRTEXT_MAX];

  /* Refusal attribution (request.c). */
  uint64_t next_seq;
  bool seg_dirty;      /* a refusable frame went out since the last PING or
                        * acked PUB in the stream now being filled */
  int async_err;       /* an unattributed refusal no flush has reported yet */
  int seg_err;         /* the last unattributed refusal since the last answer */
  uint64_t resume_seq; /* reserved for the PING after re-sent SUBs */

  /* Loss accounting for tern_status_event_t (reconnect.c). */
  uint64_t pending_pubs;                 /* PUB frames in `pending` */
  uint64_t held_pubs;                    /* PUB frames in `held` */
  uint64_t inflight_pubs;                /* PUB frames in `inflight` */
  uint64_t pubs_in_flight;               /* inflight_pubs at the loss */
  uint64_t lost_at;                      /* uv_now() at the loss */
  uint64_t pubs_discarded, pubs_refused; /* since the loss */
  bool goaway_seen;                      /* this connection got GOAWAY */
  bool down; /* lost, not reconnected yet: lost_at is valid */

  /* reconnect.c */
  uv_timer_t rtimer; /* backoff while WAITING, heartbeat while CONNECTED */
  tern__server_t *servers;
  size_t nservers, server_idx;
  bool reconnecting;  /* lost after being connected: buffer, resubscribe */
  bool goaway;        /* GOAWAY seen: buffer until the reconnect */
  bool tcp_recycling; /* tcp is closing, to be initialised again */
  bool closed_reported;
  uint32_t attempt; /* attempts since the loss */
  int last_attempt_err;
  tp_buf_t held; /* frames made while disconnected, sent after the SUBs */
  uint64_t heartbeat_ms, last_rx, hb_ping_at;

  tern__breaker_t *breaker; /* NULL when off */

  /* conn_tls.c: TLS, when the current server's URL is tls:// */
  struct ttls_ctx *tls_ctx; /* made at the first TLS attempt, kept */
  struct ttls_conn *tls;    /* this attempt's session; NULL: plaintext */
  char *tls_rbuf;           /* the room of the read in flight (engine's) */
  char *tls_spare;          /* reads while the engine's input is not empty */
  /* The last TLS session (ticket) the server gave, offered again on the
   * next connect to the same server (servers[tls_session_server]). */
  struct ttls_session *tls_session;
  size_t tls_session_server;
  tp_buf_t tls_data;      /* the batch encrypted, in the write in flight */
  tp_buf_t tls_ctl;       /* the engine's own records on their way */
  uv_write_t tls_ctl_req;
  bool tls_ctl_writing;
};

/* Frames go to the held buffer instead of the socket's batch. */
static inline bool tern__buffering(const tern_conn_t *c) {
  return c->reconnecting || c->goaway;
}

/* options.c */
int tern__opts_copy(tern__opts_t *dst, const tern_options_t *src);
void tern__opts_free(tern__opts_t *o);

/* msg.c: a new message (one reference) holding copies of m's fields. */
tern_msg_t *tern__msg_create(const tp_msg_t *m);
/* The link of a blocking subscription's message queue. */
tern_msg_t *tern__msg_qnext(const tern_msg_t *m);
void tern__msg_set_qnext(tern_msg_t *m, tern_msg_t *next);

/* conn.c */
/* Records text as the connection's last error. */
void tern__conn_set_error(tern_conn_t *c, const char *text, size_t len);
/* The connection is unusable: fail everything, tell the application. */
void tern__conn_lost(tern_conn_t *c, int reason);
/* Connection lost for good: fails everything still waiting or buffered
 * with TERN_ECLOSED, reports CLOSED and calls disconnect_cb. */
void tern__conn_final_loss(tern_conn_t *c, int reason);
/* The current connect attempt failed (see fail_connect in conn.c). */
void tern__conn_fail_connect(tern_conn_t *c, int status);
/* Starts resolving/connecting to c->servers[c->server_idx]. 0 or an error. */
int tern__conn_dial(tern_conn_t *c);
/* Reports a status transition (and CLOSED at most once) to status_cb and
 * status_event_cb, with the loss figures of reconnect.c. */
void tern__conn_status(tern_conn_t *c, tern_status_t st, int reason);
/* Fires the error callback with the last error text. */
void tern__conn_report(tern_conn_t *c, int err, int wire_code);
/* Closes the tcp handle and initialises it again for the next attempt;
 * then calls tern__reconnect_tcp_ready unless the connection is closing. */
void tern__conn_recycle_tcp(tern_conn_t *c);
/* (Re)starts the deadline timer if deadline is sooner than its due time. */
void tern__timer_want(tern_conn_t *c, uint64_t deadline);
/* Maps a tp_err from the protocol library to a tern code. */
int tern__err_from_tp(int tp_err);
/* A broken stream (error text already recorded): fails the connect
 * attempt during the handshake, later loses the connection. */
void tern__conn_fail(tern_conn_t *c, int err);
/* Closes every handle (once); the connection is freed after the last
 * close callback. */
void tern__conn_close_handles(tern_conn_t *c);

/* pub.c: one PUB frame, checked and built once for both publish paths. */
#define TERN__PUB_STACK_HEADERS 16
typedef struct tern__pub {
  tp_frame_t frame;
  tp_str_t kv_stack[2 * TERN__PUB_STACK_HEADERS];
  tp_str_t *kv; /* header keys then values: kv_stack or allocated */
  size_t nheaders;
} tern__pub_t;
/* Checks topic, payload and size, and starts p's frame (the strings stay
 * borrowed). 0, TERN_EINVAL, TERN_ETOPIC, TERN_ETOOLARGE; on an error p
 * holds nothing to free. */
int tern__pub_check(tern__pub_t *p, const char *topic, const void *payload,
                    size_t len, uint64_t max_payload);
/* Adds opts (may be NULL) to p's frame after checking them: reply, headers,
 * retain, ttl. 0, TERN_ETOPIC, TERN_EINVAL, TERN_ENOMEM. tern__pub_done
 * afterwards in every case. */
int tern__pub_prepare(tern__pub_t *p, const tern_pub_opts_t *opts);
/* Appends p's frame to dst, its headers built in scratch; dst is left as it
 * was on an error. 0 or a TERN_E* code. */
int tern__pub_encode(tern__pub_t *p, tp_buf_t *scratch, tp_buf_t *dst);
/* Frees what tern__pub_prepare allocated. */
void tern__pub_done(tern__pub_t *p);

/* conn_write.c */
/* Appends a frame to the outbound batch (control frames: not limited). */
int tern__conn_send(tern_conn_t *c, const tp_frame_t *f);
/* tern_conn_publish, plus: req_ack asks for a PUBACK routed to request
 * req_n instead of opts->ack_cb. */
/* tern_conn_request with the headers of hdrs (NULL: none; only its
 * header_* fields are read): the stream API's Tern-Msg-Id. */
int tern__conn_request_hdrs(tern_conn_t *c, const char *topic,
                            const void *payload, size_t len,
                            const tern_pub_opts_t *hdrs, uint32_t timeout_ms,
                            tern_reply_cb cb, void *cb_data);

int tern__conn_publish(tern_conn_t *c, const char *topic, const void *payload,
                       size_t len, const tern_pub_opts_t *opts, bool req_ack,
                       uint64_t req_n);
/* One pre-encoded PUB frame of a publish batch: where it ends in the
 * batch's bytes (it starts where the previous one ends) and its payload
 * length. */
typedef struct tern__pubspan {
  size_t end;
  size_t len;
} tern__pubspan_t;
/* Appends frames first..n-1 of a publish batch to the outbound batch (the
 * held buffer while disconnected) under the same outbound_limit as
 * tern__conn_publish, copying runs of frames in one go. Stops at the first
 * frame that does not fit (TERN_EWOULDBLOCK, drain callback armed) unless
 * drop_unfit, which drops it instead; drops frames above max_payload. *next
 * is the first frame not taken; *dropped the error of the last dropped
 * frame (left alone if none). 0, TERN_EWOULDBLOCK, TERN_ENOTCONN,
 * TERN_ENOMEM. */
int tern__conn_publish_frames(tern_conn_t *c, const uint8_t *data,
                              const tern__pubspan_t *spans, size_t first,
                              size_t n, bool drop_unfit, size_t *next,
                              int *dropped);
/* Starts the (unreferenced) prepare hook that writes the batch once per
 * loop iteration. */
void tern__conn_write_start(tern_conn_t *c);
/* One step of the graceful close: wait for the write in flight, write the
 * rest of the batch, shut down, close the handles. Called again from the
 * write callback until done. */
void tern__conn_close_step(tern_conn_t *c);

/* sub.c */
int tern__sub_create(tern_conn_t *c, tern_asub_t **out, const char *pattern,
                     const tern_sub_opts_t *opts, tern_msg_cb cb,
                     void *cb_data);
void tern__sub_on_msg(tern_conn_t *c, const tp_msg_t *m);
void tern__sub_on_dropped(tern_conn_t *c, uint64_t sid, uint64_t count);
/* The broker refused sid's SUB with err (text in c->last_error). */
void tern__sub_refused(tern_conn_t *c, uint64_t sid, int err);
/* Frees every subscription (connection teardown). */
void tern__subs_free_all(tern_conn_t *c);
/* Appends SUB (and UNSUB for a pending max_msgs) of every live
 * subscription to the batch, after a reconnect. 0 or TERN_ENOMEM. */
int tern__subs_resend(tern_conn_t *c);

/* request.c */
/* A non-fatal ERR (already reported to error_cb): hands it to the waiter of
 * the frame it refused, or keeps it for the next flush. */
void tern__on_refusal(tern_conn_t *c, int err, int wire_code);
/* Appends a PING barrier without a callback to the stream now being filled
 * (pending, or held while buffering); sub_sid set: the SUB just appended
 * is the only frame since the last barrier. 0 or an error. */
int tern__barrier(tern_conn_t *c, bool for_sub, uint64_t sub_sid);
/* Reconnect: a PING after the re-sent SUBs, ahead of every held waiter. */
int tern__resume_barrier(tern_conn_t *c);
/* tern_conn_flush; collect: the flush takes unattributed refusals. */
int tern__flush(tern_conn_t *c, uint32_t timeout_ms, tern_flush_cb cb,
                void *cb_data, bool collect);
/* Fails every request not held with err (the inbox was refused). */
void tern__fail_requests(tern_conn_t *c, int err);
void tern__on_puback(tern_conn_t *c, uint64_t id, uint64_t receivers);
void tern__on_pong(tern_conn_t *c);
/* Fails every ack, request and flush with err; keep_held spares those whose
 * frame is still in the held buffer. */
void tern__fail_pending(tern_conn_t *c, int err, bool keep_held);
/* The held buffer has joined the batch: nothing is held any more. */
void tern__pending_unhold(tern_conn_t *c);
/* Sends a heartbeat PING whose PONG is just consumed. 0 or an error. */
int tern__heartbeat_ping(tern_conn_t *c);
/* Expires due requests and flushes; returns the next deadline or 0. */
uint64_t tern__expire(tern_conn_t *c, uint64_t now);
/* Queues an ack waiter and returns its id in *id. */
/* Queues a waiter for ack id c->next_ack (then increments it). cb NULL:
 * the ack of request req_n. 0 or TERN_ENOMEM. */
int tern__ack_add(tern_conn_t *c, tern_ack_cb cb, void *cb_data, uint64_t req_n,
                  bool retain);

/* reconnect.c */
/* Parses the server list into c->servers. 0, TERN_EBADURL, TERN_ENOMEM. */
int tern__servers_init(tern_conn_t *c);
/* Adds the URLs of a comma-separated list (HELLO's cluster_urls: the other
 * nodes of the server's cluster) that are not in c->servers yet, so a
 * reconnect may go to any of them (at most 64 servers). 0 or TERN_ENOMEM. */
int tern__servers_merge(tern_conn_t *c, const char *list, size_t len);
/* A connection was lost; true if reconnecting took over. */
bool tern__reconnect_on_loss(tern_conn_t *c, int reason);
/* A connect attempt failed; true if reconnect (or the next server of the
 * first connect) took over, false if the failure is the caller's to report. */
bool tern__reconnect_on_fail(tern_conn_t *c, int status);
/* The handshake of an attempt completed: resubscribe, flush the held
 * frames. 0 or TERN_ENOMEM. */
int tern__reconnect_resume(tern_conn_t *c);
/* Frames start going to the held buffer (a loss, or GOAWAY): the held
 * stream starts clean and the resume barrier's seq is reserved. */
void tern__buffering_started(tern_conn_t *c);
/* The recycled tcp handle is ready: schedule the next attempt. */
void tern__reconnect_tcp_ready(tern_conn_t *c);
/* (Re)arms the heartbeat check after CONNECT was accepted. */
void tern__heartbeat_start(tern_conn_t *c, uint64_t hello_hb_ms);
/* Free the server list. */
void tern__servers_free(tern_conn_t *c);

/* conn.c: handles every complete frame the reader holds. */
void tern__conn_dispatch(tern_conn_t *c);

/* conn_tls.c */
/* TCP connected: starts TLS if the current server is tls://. 0, or
 * TERN_ETLS / TERN_ENOMEM with the reason recorded. */
int tern__tls_begin(tern_conn_t *c);
/* Drops this attempt's session (reconnect, close). */
void tern__tls_end(tern_conn_t *c);
/* Frees everything TLS (the connection is freed). */
void tern__tls_free(tern_conn_t *c);
/* No TLS, or its handshake is done: the batch may be written. */
bool tern__tls_ready(const tern_conn_t *c);
/* Closing: queues the TLS close_notify and starts its write (before the
 * socket is shut down). */
void tern__tls_close_notify(tern_conn_t *c);
/* Where the socket reads ciphertext. */
void tern__tls_read_buf(tern_conn_t *c, uv_buf_t *buf);
/* Ciphertext arrived: advance the handshake, hand frames to dispatch. */
void tern__tls_received(tern_conn_t *c, const char *bytes, size_t n);
/* Plaintext the engine holds goes to the reader (after a pause). True
 * when some did. */
bool tern__tls_pull(tern_conn_t *c);
/* Encrypts plain into the connection's ciphertext buffer, *out. 0 or an
 * error. */
int tern__tls_encrypt(tern_conn_t *c, const tp_buf_t *plain, uv_buf_t *out);

/* breaker.c */
int tern__breaker_create(tern_conn_t *c);
void tern__breaker_destroy(tern_conn_t *c);
/* May a request to topic go out? 0 (*probe set if it is the half-open
 * probe) or TERN_EBREAKER. */
int tern__breaker_admit(tern_conn_t *c, const char *topic, bool *probe);
/* Records a request's outcome. */
void tern__breaker_record(tern_conn_t *c, const char *topic, int status,
                          bool probe);

#endif
