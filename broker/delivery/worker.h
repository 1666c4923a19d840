/*
 * The broker's state as the delivery core and the sessions see it:
 * broker_t, shared by every event loop, and worker_t, one loop's own. The
 * server (server/server.h) owns both and sets the callbacks through which
 * they reach it.
 */
#ifndef TERND_WORKER_H
#define TERND_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/config.h"
#include "base/list.h"
#include "base/spsc.h"
#include "data/hashmap.h"
#include "data/msgbuf.h"
#include "data/outq.h"
#include "data/readbuf.h"
#include "data/retained.h"
#include "data/sublist.h"
#include "delivery/pending_gate.h"
#include "delivery/sub.h"
#include "tern_proto/buf.h"

struct conn;
struct endpoint;
struct server;
struct worker;

/* The most event loops one broker runs (--workers). */
#define BROKER_MAX_WORKERS 64

/* Bytes one connection may write per loop turn, so none starves others. */
#define SERVER_WRITE_CAP_PER_TURN (1024u * 1024u)
/* The largest frame accepted before CONNECT: HELLO's answer is a CONNECT
 * of a few hundred bytes (credentials, a name), so 16 KiB is ample, and
 * 10,000 unauthenticated connections hold at most 160 MiB of frames
 * instead of 10 GiB. A larger frame is refused with ERR 5. */
#define SERVER_PRECONNECT_FRAME_MAX (16u * 1024u)

typedef struct server_stats {
  uint64_t conns_accepted;
  uint64_t conns_refused;      /* ERR 11: max_connections */
  uint64_t conns_refused_fd;   /* ERR 11: out of file descriptors */
  uint64_t msgs_in, bytes_in;  /* PUBs routed, their payload bytes */
  uint64_t msgs_out;           /* MSGs queued to subscriptions */
  uint64_t msgs_dropped;       /* by drop_oldest / drop_newest */
  uint64_t slow_consumers;     /* closed with ERR 6 */
  uint64_t stale_conns;        /* closed with ERR 12 */
  uint64_t publisher_blocks;   /* times a publisher stopped reading */
  uint64_t drops_by_policy[8]; /* msgs_dropped by tp_overflow policy */
  uint64_t inbound_refused;    /* ERR 5: max_inbound_total */
  uint64_t frame_timeouts;     /* ERR 12: frame_timeout_ms */
} server_stats_t;

/* Operations counters (monitoring, auth), apart from the routing ones. */
typedef struct server_ops_stats {
  uint64_t auth_failures;    /* CONNECTs refused with ERR 2 */
  uint64_t perm_denials;     /* PUB/SUB refused with ERR 3 */
  uint64_t perm_denials_sub; /* of which SUBs */
  uint64_t resp_allowed;     /* PUBs allowed only by allow_responses */
  uint64_t closed_bytes_out; /* bytes written by connections now gone */
  uint64_t closed_msgs_out;
} server_ops_stats_t;

/*
 * What connections report as they go, for the layer above to act on (the
 * server publishes $SYS advisories and keeps its registry). Set in the
 * worker (worker_t.conn_events) by the server; the session calls them and
 * does not name their owner. Each may be NULL but `closed`.
 */
typedef struct conn_events {
  void (*connected)(struct worker *w, struct conn *c);
  void (*disconnected)(struct worker *w, struct conn *c);
  void (*slow_consumer)(struct worker *w, struct conn *c);
  void (*auth_failure)(struct worker *w, struct conn *c);
  /* c's last handle closed: it leaves the registry and is freed. */
  void (*closed)(struct worker *w, struct conn *c);
} conn_events_t;

/* Calls w->conn_events.name(w, c) when it is set. */
#define CONN_EVENT(w, name, c)                                                 \
  do {                                                                         \
    if ((w)->conn_events.name != NULL)                                         \
      (w)->conn_events.name((w), (c));                                         \
  } while (0)

/*
 * What sees every PUB before its fan-out: the durable streams (stream/,
 * above; set by the server once they are open, else all NULL). The
 * router calls on_publish on the loop that read the PUB; with several
 * loops the streams' own hook hands the message to the loop that owns
 * the streams. Topics starting with `prefix` ("$TS.", the stream API and
 * acknowledgements) pass router_check although they begin with '$'.
 */
enum { PUBLISH_HOOK_NONE = 0, PUBLISH_HOOK_KEPT = 1, PUBLISH_HOOK_TAKEN = 2 };
typedef struct publish_hook {
  /* PUBLISH_HOOK_NONE: not the hook's; PUBLISH_HOOK_KEPT: stored (a
   * stream captured it) and routed on; PUBLISH_HOOK_TAKEN: the hook's own
   * (an API request, an ack, a duplicate), not routed. Either of the last
   * two counts the hook as one receiver (a request's PUBACK must not say
   * "no responders"). publisher is NULL for the server's own messages. */
  int (*on_publish)(void *ctx, struct worker *w, struct endpoint *publisher,
                    const tp_pub_t *pub);
  const char *prefix;
  size_t prefix_len;
  void *ctx;
} publish_hook_t;

/*
 * What the whole broker shares, however many event loops it runs:
 * configuration, the subject index (written only through
 * delivery/interest.h), the retained store, auth, the global pending gate.
 */
/* One loop's copy of the subject index when several loops run: every
 * subscribe writes every replica (interest.h), a publish matches its own
 * loop's under that replica's lock, which only a subscribe elsewhere ever
 * contends for. */
typedef struct index_replica {
  _Alignas(64) uv_mutex_t lock;
  sublist_t *index;
} index_replica_t;

typedef struct broker {
  config_t cfg;
  char server_id[24];
  char server_name[32]; /* "ternd/X.Y.Z" */
  msgbuf_t *hello;      /* the HELLO frame, shared by every connection */
  sublist_t *index;
  retained_t *retained; /* last-value cache per topic */
  pending_gate_t gate;  /* max_pending_total and memory pressure */

  /* Several loops (--workers N > 1); with one, none of this is used and
   * the broker is the single-loop broker exactly. */
  int nworkers;
  struct worker **workers;   /* [nworkers] */
  index_replica_t *replicas; /* [nworkers], or NULL with one loop */
  /* The retained store is shared: its lock, and the pool its bodies come
   * from (used only under the lock). */
  uv_mutex_t retained_lock;
  msgbuf_pool_t *retained_bufs;
  _Atomic uint64_t nlive; /* HANDSHAKE or ACTIVE connections, all loops */
  /* A cluster's watch on local interest (delivery/interest.h): set by
   * the layer above before any loop runs, NULL without a cluster. */
  const struct interest_watch *watch;
  void *watch_ctx;
  _Atomic uint64_t next_conn_id; /* connection ids, unique over the loops */
  _Atomic size_t rx_tails;       /* every loop's read tails (readbuf.h) */
  publish_hook_t publish_hook;   /* durable streams (issue 19) */
} broker_t;

/* True when other loops own subscriptions too. */
static inline bool broker_multi(const broker_t *b) {
  return b->nworkers > 1;
}

/*
 * One event loop and what only it touches: its connections and their
 * lists, the pools and buffers they draw from, its timers and the
 * before-sleep hook, and its counters (the broker's stats are the sum
 * over workers; there is one today). A second worker is a second one of
 * these on its own loop and thread.
 */
typedef struct worker {
  broker_t *broker;      /* shared with every other worker */
  struct server *server; /* the owner, for its callbacks only */
  uv_loop_t *loop;
  uv_prepare_t before_sleep;
  uv_idle_t spin; /* keeps the loop from sleeping while work is left */
  uv_timer_t stall_timer;
  uv_timer_t retained_timer; /* expiry of retained messages */

  msgbuf_pool_t *bufs;
  outq_pool_t *entries;
  rx_shared_t rx;     /* the read buffer all connections share */
  uint64_t write_cap; /* bytes per connection this turn (gate) */

  list_node_t conns;        /* every connection */
  list_node_t flush_list;   /* connections with output to write */
  list_node_t close_list;   /* connections waiting for teardown */
  list_node_t resume_list;  /* publishers to resume */
  list_node_t stalled_subs; /* subscriptions with blocked publishers */
  list_node_t partial_list; /* connections with an unfinished frame */
  size_t nconns;            /* in the registry */
  size_t nlive;             /* HANDSHAKE or ACTIVE */
  uint64_t next_conn_id;
  sub_env_t sub_env;         /* this loop, for its subscriptions (sub.h) */
  conn_events_t conn_events; /* $SYS advisories (sysevents.h) */

  /* Scratch space reused on every turn. */
  tp_buf_t scratch;   /* encoding small control frames */
  struct sub **ended; /* subscriptions that reached UNSUB max_msgs */
  size_t nended, ended_cap;

  server_stats_t stats;
  server_ops_stats_t ops; /* operations counters (summed like stats) */

  /* With several loops. */
  int wid;              /* 0 .. nworkers-1 */
  pending_gate_t *gate; /* &broker->gate with one loop, else gate_own */
  pending_gate_t gate_own;
  _Atomic uint64_t pending_shared; /* this loop's pending bytes, for others */
  uint64_t pending_others;         /* theirs, as of this loop's last turn */
  struct auth_verifier *auth;      /* made at the first login (conn_auth.c) */
  hashmap_t *conn_by_id; /* id -> conn, for notices from other loops */
  hashmap_t *live_subs;  /* sub pointer -> sub, for the same */
  spsc_t *out;           /* [nworkers]: messages to each other loop */
  bool *out_dirty;       /* [nworkers]: pushed since the last flush */
  bool out_any;
  uv_async_t wake;         /* another loop published to this one */
  list_node_t graveyard;   /* retired subscriptions (handoff.c) ... */
  list_node_t grave_closing; /* ... and those freed once the queues into
                                this loop are past grave_marks */
  uint64_t *grave_marks;     /* [nworkers] */
  list_node_t full_groups; /* queue-group members marked full (sub.h) */
  list_node_t xpend_subs;  /* block subscriptions other loops hand to */
  struct msgbuf *xcopy_src, *xcopy; /* the last body copied from another loop */
  struct msgbuf *hello;             /* this loop's HELLO; NULL: broker->hello */
  bool stopping;
} worker_t;

/* A message from another loop (delivery/handoff.h). */
typedef struct handoff_item handoff_item_t;

/*
 * A worker of broker b on loop: its lists, scratch buffer and write cap,
 * and the loop and stalled list its subscriptions see; everything else
 * zero. The caller still registers what belongs to the layers above
 * (sub_env.block/unblock, conn_events) and creates the pools. Every
 * worker, the tests' included, starts here.
 */
void worker_init(worker_t *w, broker_t *b, uv_loop_t *loop);

/* The pending bytes of every loop (max_pending_total is for them all):
 * this loop's own as they are, the others' as they last told. */
uint64_t worker_pending_total(const worker_t *w);

#endif
