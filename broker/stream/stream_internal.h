/*
 * The durable streams' shared structures (stream/): the registry, one
 * stream, one consumer. Everything here lives on one event loop, the
 * broker's first (the store's logs are single-threaded: store/store.h);
 * other workers hand their part to it (streams_t.xhead).
 */
#ifndef TERND_STREAM_INTERNAL_H
#define TERND_STREAM_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "data/hashmap.h"
#include "delivery/worker.h"
#include "store/state.h"
#include "store/store.h"
#include "stream/stream_def.h"
#include "tern_proto/buf.h"

struct stream;
struct consumer;

/* An $SYS advisory: topic (static) and its JSON body. */
typedef void (*streams_advise_fn)(void *ctx, const char *topic,
                                  const char *json, size_t len);

typedef struct streams {
  worker_t *w; /* the loop that owns every stream */
  store_env_t *env;
  char dir[1024]; /* data_dir/streams */
  struct stream **v;
  size_t n, cap;
  uv_async_t stored; /* a log's stored sequence advanced */
  uv_check_t turn;   /* after each poll: flush logs, pump consumers */
  uv_idle_t spin;    /* keeps the loop turning while consumers have work */
  uv_timer_t tick;   /* ack waits, pull expiry, age limits, dedup */
  int handles_open;
  bool closing;
  streams_advise_fn advise;
  void *advise_ctx;
  tp_buf_t scratch; /* encoding replies */
  tp_buf_t rec;     /* encoding records */
  uint64_t api_requests, api_errors;
  /* Retained messages kept across restarts (data_dir/retained): the last
   * record of each topic, with its expiry. */
  store_t *retained;
  bool retained_dirty;
  uint64_t retained_restored;
  /* Several workers: what another worker's publish hook hands to this
   * one (streams.c "several workers"), under xlock, woken by xwake; and
   * defs_lock, held by this loop while it changes the registry or a
   * stream's topics and by the others while they look a topic up. */
  uv_mutex_t xlock, defs_lock;
  uv_async_t xwake;
  struct xpub *xhead, *xtail;
  size_t xbytes;
  uint64_t xrefused;
  _Atomic size_t nshared; /* s->n, for the others' first test */
  int xfrom_wid;          /* while one is taken: its publisher's worker */
  uint64_t xfrom_conn;    /* ... and connection (0: none) */
} streams_t;

/* A publish waiting for its record to be stored before its ack. */
typedef struct ack_wait {
  uint64_t seq;
  char *reply; /* the publisher's reply topic, malloc'ed */
} ack_wait_t;

/* A remembered message id (dedup window). */
typedef struct dedup_ent {
  struct dedup_ent *next; /* insertion order, oldest first */
  uint64_t seq;
  uint64_t at_ms; /* loop time it was stored */
  uint32_t len;
  char id[]; /* the key */
} dedup_ent_t;

typedef struct stream {
  streams_t *owner;
  stream_def_t def;
  char dir[1100];
  store_t *log;
  store_state_t *defstate; /* the definition, for the next start */
  bool declared;           /* from the configuration file */
  bool dirty;              /* appended since the last flush */
  /* Acks waiting for storage, in sequence order (a ring). */
  ack_wait_t *acks;
  size_t acks_head, nacks, acks_cap;
  /* Dedup. */
  hashmap_t *ids;
  dedup_ent_t *ids_head, *ids_tail;
  /* Consumers. */
  struct consumer **cons;
  size_t ncons, cons_cap;
  /* Figures. */
  uint64_t msgs_in, bytes_in, duplicates, refused_full, refused_disk,
      refused_other;
  bool full_advised; /* a "stream full" advisory since it last had room */
} stream_t;

enum { DELIVER_ALL = 0, DELIVER_LAST, DELIVER_NEW, DELIVER_SEQ, DELIVER_TIME };

/* One delivered, unacknowledged message. */
typedef struct pend {
  uint64_t sseq, cseq;
  uint64_t due_ms; /* redeliver at (loop time) */
  uint32_t deliveries;
} pend_t;

/* A pull request waiting for messages. */
typedef struct pull_req {
  char *reply;
  uint64_t left;
  uint64_t expires_ms; /* loop time; 0 = never */
  bool no_wait;
} pull_req_t;

typedef struct consumer {
  stream_t *st;
  char name[STREAM_NAME_MAX + 1];
  bool durable;
  /* Configuration. */
  int deliver;
  uint64_t opt_start_seq;
  uint64_t opt_start_time_ms; /* unix ms */
  uint64_t ack_wait_ms;
  uint64_t max_deliver; /* 0 = unlimited */
  uint64_t max_ack_pending;
  bool ack_none;        /* no acks: delivered is done */
  char *filter;         /* topic pattern, or NULL */
  char *push;           /* push: the topic it delivers to, or NULL (pull) */
  uint64_t inactive_ms; /* ephemeral: removed when idle this long */
  /* State. */
  uint64_t next_seq; /* next stream sequence to read */
  uint64_t dseq;     /* deliveries made (consumer sequence) */
  uint64_t ack_floor;
  pend_t *pend; /* sorted by sseq */
  size_t npend, pend_cap;
  pull_req_t *pulls;
  size_t npulls, pulls_cap;
  store_iter_t *it;
  store_state_t *state, *cfgstate; /* durable only */
  bool state_dirty;
  bool waiting_room; /* push: a `block` subscription is full */
  uint64_t last_active_ms;
  /* Figures. */
  uint64_t delivered, redelivered, acked, naked, termed, max_deliver_hits;
} consumer_t;

#endif
