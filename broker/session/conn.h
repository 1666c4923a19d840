/*
 * One client connection: the session state machine, the read path (reads
 * into the loop's shared buffer, readbuf.h; frames handled strictly in
 * order), the ordered output
 * queue, the connection's subscriptions, and the one close path.
 *
 * Lifetime. A connection is created on accept and freed when its
 * transport reports it closed (on_closed). Closing is two-phase so that nothing
 * is freed under a caller's feet (for instance in the middle of a fan-out):
 * conn_fail / conn_goaway only mark it CLOSING, stop reading and queue the
 * final frames; the server's before-sleep hook then tears down its
 * subscriptions (conn_teardown), flushes the output and closes the
 * transport once the queue is empty or the close deadline passes.
 *
 * Bytes, the timer and the close go through the connection's transport
 * (transport/transport.h): the session never names a socket.
 */
#ifndef TERND_CONN_H
#define TERND_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/list.h"
#include "data/hashmap.h"
#include "data/outq.h"
#include "data/readbuf.h"
#include "delivery/endpoint.h"
#include "delivery/sub.h"
#include "delivery/worker.h"
#include "session/auth.h"
#include "tern_proto/frame.h"
#include "transport/transport.h"

struct worker;

typedef enum conn_state {
  CONN_HANDSHAKE, /* HELLO sent, waiting for CONNECT */
  CONN_ACTIVE,    /* CONNECTed */
  CONN_CLOSING,   /* final frames queued, flushing */
  CONN_CLOSED     /* transport closing */
} conn_state_t;

struct conn;

/*
 * A connection that speaks another protocol on this machinery: a route of
 * the cluster (cluster/route.h), registered by the layer above. Its frames
 * (the bytes after each length prefix) go to on_frame instead of the
 * client handlers, in order, and stop while it is blocked as a publisher;
 * on_closed is called just before it is freed. It gets no HELLO, no OK and
 * no $SYS connect advisory, and does not count against max_connections.
 */
typedef struct conn_hooks {
  void (*on_frame)(struct conn *c, const uint8_t *body, size_t len);
  void (*on_closed)(struct conn *c);
} conn_hooks_t;

typedef struct conn {
  /* The subscriber side as the delivery core sees it (endpoint.h): its
   * flush-list link, echo, and `active` (kept equal to state ==
   * CONN_ACTIVE). */
  endpoint_t ep;
  struct worker *w;
  uint64_t id;
  char addr[64]; /* "ip:port" of the peer */
  char *name;    /* CONNECT name, owned, or NULL */
  conn_state_t state;
  bool verbose;
  bool reading;   /* the transport is reading */
  bool torn_down; /* subscriptions released (closing) */

  /* Bytes in and out, and the one timer: connect timeout, heartbeat,
   * then close deadline. Owned; closed by the close path. */
  transport_t *tr;
  uint64_t close_deadline; /* loop time (ms) a closing conn is cut off */
  bool lingering;          /* flushed; waits for the peer to take it all */

  rx_tail_t rx; /* bytes read but not handled yet (readbuf.h) */
  /* An unfinished frame sits in rx while the connection reads: since
   * this loop time, in the server's partial list (frame_timeout_ms). */
  uint64_t partial_since;
  list_node_t partial_link;
  size_t read_turn; /* bytes read since it last yielded to the loop */
  outq_t out;

  hashmap_t *subs;        /* sid (8 bytes) -> sub_t *, owned */
  uint64_t pattern_bytes; /* of subs' patterns and queue names */

  /* Subscriptions this connection (as a publisher) is blocked on. */
  sub_t **blocked_on;
  size_t nblocked, blocked_cap;
  /* ... and those of other loops (never dereferenced here: named only),
   * with their loop (rblocked[i].wid). */
  remote_waiter_t *rblocked;
  sub_t **rblocked_sub;
  size_t nrblocked, rblocked_cap;
  /* A PING waits for this many loops to take what it handed them. */
  unsigned fences;
  /* nblocked + nrblocked + fences: what holds it, in one test. */
  size_t nheld;

  /* Heartbeats. */
  int pings_out; /* PINGs sent since the client was last heard */
  bool heard;    /* a frame arrived since the last heartbeat tick */

  /* Server lists this connection may be in. */
  list_node_t all_link;    /* every connection */
  /* (has output to write: ep.flush_link) */
  list_node_t close_link;  /* CLOSING, teardown pending */
  list_node_t resume_link; /* unblocked, resume reading */

  /* Authentication (conn_auth.c). */
  bool authenticating;              /* CONNECT being verified off the loop */
  struct auth_job *auth_job;        /* the verification in progress */
  struct auth_db *perms_db;         /* a reference that keeps perms alive */
  const struct auth_user *perms;    /* NULL: may do everything */
  char *auth_user;                  /* owned user name, or NULL */
  struct conn_responses *responses; /* allow_responses, or NULL */
  bool was_active;                  /* announced on $SYS.conn.connect */
  uint64_t deny_logged_ms;          /* uv_now of the last denial logged */
  uint64_t deny_suppressed;         /* denials since then, not logged */

  /* Another protocol's connection (a route), or NULL for a client. */
  const conn_hooks_t *hooks;
  void *hook_ctx;

  /* Counters. */
  uint64_t msgs_in, bytes_in; /* PUBs received, bytes read */
  uint64_t frames_in;
} conn_t;

/*
 * Takes a transport the server opened on an accepted connection (it owns
 * tr from here on, closed on every failure): greets it with HELLO, or with
 * ERR 11 when the server is full. 0 or a libuv / TP error.
 */
int conn_accept(struct worker *w, transport_t *tr);

/*
 * Takes a transport for another protocol's connection (hooks, ctx: see
 * conn_hooks_t): nothing is sent; it reads at once, and the connect
 * timeout runs until conn_hooks_ready. *out is the connection (owned by
 * the session, freed after hooks->on_closed). 0 or TP_ENOMEM (tr closed).
 */
int conn_open_hooked(struct worker *w, transport_t *tr,
                     const conn_hooks_t *hooks, void *ctx, conn_t **out);
/* The hooked connection's handshake is done: ACTIVE, heartbeats on. */
void conn_hooks_ready(conn_t *c);
/* Queues len encoded bytes (whole frames) on c. 0 or TP_ENOMEM. */
int conn_send_bytes(conn_t *c, const uint8_t *bytes, size_t len);

/* Queues ERR code (message msg) and, if the code is fatal, closes. */
void conn_send_err(conn_t *c, int code, const char *msg);
/* Fatal error: queues ERR (code > 0), drops the MSGs not yet written,
 * closes once the ERR is flushed. Safe anywhere, including fan-out. */
void conn_fail(conn_t *c, int code, const char *msg);
/* Shutdown: queues GOAWAY after everything already queued, stops reading,
 * closes once flushed or at the drain deadline. */
void conn_goaway(conn_t *c, const char *reason);
/* Closes at once without sending anything more (socket error). */
void conn_abort(conn_t *c);

/* Encodes f and queues it on c's output. 0 or TP_ENOMEM. */
int conn_send_frame(conn_t *c, const tp_frame_t *f);
/* Marks c as having output to write this loop turn. */
void conn_want_flush(conn_t *c);
/* Fills in c's endpoint (c->w, c->id set): its operations, the worker's
 * flush list, echo on. conn_accept does it; stub connections too. */
void conn_init_endpoint(conn_t *c);

/* Before-sleep hook work, called by the server only. */
void conn_teardown(conn_t *c);
void conn_flush(conn_t *c);
void conn_resume(conn_t *c);

/* Whether c, as a publisher, waits on any subscription of any loop. */
static inline bool conn_is_blocked(const conn_t *c) {
  return c->nheld > 0;
}

/* Several loops: what other loops tell this one (delivery/handoff.h). A
 * subscription of theirs blocks or no longer blocks a publisher here; a
 * publisher of theirs blocked on a subscription here is gone. */
void conn_handoff_block(worker_t *w, const handoff_item_t *it);
void conn_handoff_unblock(worker_t *w, const handoff_item_t *it);
void conn_handoff_forget(worker_t *w, const handoff_item_t *it);
/* Every loop the PING's messages went to has taken them: PONG. */
void conn_handoff_fence_ack(worker_t *w, const handoff_item_t *it);
/* HANDOFF_ERR: ERR 13 (the text in it->body) to the connection. */
void conn_handoff_err(worker_t *w, const handoff_item_t *it);
/* sub_env_t.block_remote: c waits on s of loop wid. 1, 0 or TP_ENOMEM. */
int conn_block_remote(conn_t *c, sub_t *s, int wid);

/* c (a publisher) is now blocked by s; it stops reading after the frame
 * it is handling. 0 or TP_ENOMEM. */
int conn_block_on(conn_t *c, sub_t *s);
/* s no longer blocks c; c resumes when nothing else does. */
void conn_unblock(conn_t *c, sub_t *s);

/* CONNECT accepted (after authentication when required): OK, heartbeat
 * timer, log line. */
void conn_connected(conn_t *c);

/* Removes one subscription of c now (UNSUB, or max_msgs reached). */
void conn_remove_sub(conn_t *c, sub_t *s);

/* ---- authentication and permissions (conn_auth.c) ----------------------
 * The connection's login: the glue between the frame handlers and auth.c,
 * the second file of this module. CONNECT is verified on the thread pool
 * while the connection reads nothing more; the verdict comes back on the
 * loop. */

/* True when the server asks for credentials (users or a token). */
static inline bool conn_auth_required(const worker_t *w) {
  return w->broker->cfg.users != NULL || w->broker->cfg.auth_token[0] != '\0';
}

/*
 * Starts verifying req's credentials (copied). A token, a remembered login
 * or a refusal is decided at once; a password waits for its hash, with the
 * connection in HANDSHAKE processing nothing and the connect timeout
 * stopped (the verifier's queue is bounded, so is the wait), until the
 * verdict: OK and its buffered frames, or ERR 2 and close. A full queue is
 * ERR 11 (retry later). Credentials holding a NUL byte are ERR 2. 0, or -1
 * (no memory: the caller fails the connection).
 */
int conn_auth_begin(conn_t *c, const tp_connect_t *req);
/* From the close path: forgets a verification in progress, drops rights. */
void conn_auth_release(conn_t *c);

/* A reload changed the auth_* limits; remembered logins are forgotten. */
void conn_auth_reconfigure(worker_t *w);

/* Permission checks. A refusal is counted (by operation), logged (at most
 * one line per connection per second, with the count of those not logged)
 * and worded for the ERR 3 message (conn_auth_denial). */
bool conn_auth_deny(conn_t *c, bool sub, const char *topic, size_t len);
/* PUB refused by the lists: still allowed when topic is the reply topic of
 * a request c received and may answer (allow_responses); else a refusal as
 * conn_auth_deny. */
bool conn_auth_pub_denied(conn_t *c, const char *topic, size_t len);
static inline bool conn_may_publish(conn_t *c, const char *topic, size_t len) {
  if (c->perms == NULL || auth_may_publish(c->perms, topic, len))
    return true;
  return conn_auth_pub_denied(c, topic, len);
}

/*
 * allow_responses: a MSG carrying reply topic reply was queued for c. Only
 * connections of users with allow_responses keep a table (at most 1,024
 * reply topics, the oldest forgotten first); for the others this is one
 * test.
 */
typedef struct conn_responses conn_responses_t;
void conn_auth_note_request_slow(conn_t *c, const char *reply, size_t len);
static inline void conn_auth_note_request(conn_t *c, const char *reply,
                                          size_t len) {
  if (c->responses != NULL)
    conn_auth_note_request_slow(c, reply, len);
}
static inline bool conn_may_subscribe(conn_t *c, const char *pattern,
                                      size_t len) {
  if (c->perms == NULL || auth_may_subscribe(c->perms, pattern, len))
    return true;
  return conn_auth_deny(c, true, pattern, len);
}
/* The ERR 3 message of the last refusal ("permission denied: publish to
 * 'a.b'"). Valid until the next refusal (one loop thread). */
const char *conn_auth_denial(void);

#endif
