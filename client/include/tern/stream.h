/*
 * Durable streams from libtern (protocol/PROTOCOL.md section 8): stream
 * management, the persisted publish with its stream ack, consumers (pull
 * fetch, push through a subscription) and the acks of their messages.
 *
 * Everything is request/reply on the broker's $TS.API topics, so the
 * blocking calls (tern_client_*) are built on tern_client_request and the
 * async ones (tern_conn_*) on tern_conn_request. Stream API errors map to
 * TERN_EINVAL (400), TERN_ENOTFOUND (404), TERN_EEXISTS (409), TERN_EFULL
 * (507: stream limit with discard new, or the disk) and TERN_ESERVER
 * (others); `err` (when given) gets the broker's message.
 *
 * The config structs are versioned by size like tern_options_t
 * (options.h): initialise them with their *_init macro.
 */
#ifndef TERN_STREAM_H
#define TERN_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/async.h"
#include "tern/export.h"
#include "tern/msg.h"
#include "tern/sync.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tern_discard {
  TERN_DISCARD_OLD = 0, /* a full stream drops its oldest messages */
  TERN_DISCARD_NEW = 1  /* a full stream refuses new ones */
} tern_discard_t;

typedef enum tern_sync {
  TERN_SYNC_ALWAYS = 0,   /* fsync before the ack */
  TERN_SYNC_INTERVAL = 1, /* every sync_interval_ms */
  TERN_SYNC_NEVER = 2
} tern_sync_t;

typedef struct tern_stream_config {
  size_t struct_size;        /* set by tern_stream_config_init */
  const char *const *topics; /* patterns, borrowed for the call */
  size_t topic_count;
  uint64_t max_msgs, max_bytes, max_age_ms, max_msgs_per_topic; /* 0: none */
  tern_discard_t discard;
  tern_sync_t sync;
  uint64_t sync_interval_ms; /* 0: the broker's default (1000) */
  uint64_t dedup_window_ms;  /* 0: the broker's default (120000) */
} tern_stream_config_t;

TERN_EXTERN int tern_stream_config_init_sized(tern_stream_config_t *c,
                                              size_t size);
#define tern_stream_config_init(c)                                             \
  tern_stream_config_init_sized((c), sizeof *(c))

typedef enum tern_deliver {
  TERN_DELIVER_ALL = 0,
  TERN_DELIVER_LAST = 1,
  TERN_DELIVER_NEW = 2,
  TERN_DELIVER_BY_SEQ = 3, /* from opt_start_seq */
  TERN_DELIVER_BY_TIME = 4 /* from opt_start_time_ms (unix ms) */
} tern_deliver_t;

typedef struct tern_consumer_config {
  size_t struct_size; /* set by tern_consumer_config_init */
  tern_deliver_t deliver;
  uint64_t opt_start_seq;
  uint64_t opt_start_time_ms;
  bool ack_none;            /* no acks: a delivery is done */
  uint64_t ack_wait_ms;     /* 0: the broker's (30000) */
  uint64_t max_deliver;     /* 0: unlimited */
  uint64_t max_ack_pending; /* 0: the broker's (1000) */
  const char *filter;       /* pattern within the stream, or NULL */
  const char *push;         /* push: deliver to this topic; NULL: pull */
} tern_consumer_config_t;

TERN_EXTERN int tern_consumer_config_init_sized(tern_consumer_config_t *c,
                                                size_t size);
#define tern_consumer_config_init(c)                                           \
  tern_consumer_config_init_sized((c), sizeof *(c))

/* A stream's figures (tern_client_stream_info). */
typedef struct tern_stream_info {
  uint64_t msgs, bytes, first_seq, last_seq, consumers;
} tern_stream_info_t;

/* ---- bodies and answers, for any API (async users build on these) ---- */

/* The msgpack body of a CREATE/UPDATE (malloc'ed into *body). 0,
 * TERN_EINVAL, TERN_ENOMEM. */
TERN_EXTERN int tern_stream_config_encode(const tern_stream_config_t *c,
                                          void **body, size_t *len);
TERN_EXTERN int tern_consumer_config_encode(const tern_consumer_config_t *c,
                                            void **body, size_t *len);
/* 0 when the answer is not an error map, else its TERN_E* code with the
 * message in err (may be NULL). */
TERN_EXTERN int tern_stream_answer_status(const void *data, size_t len,
                                          char *err, size_t errlen);
/* The stream ack of a persisted publish: *seq, *duplicate (may be NULL). */
TERN_EXTERN int tern_stream_ack_decode(const void *data, size_t len,
                                       uint64_t *seq, bool *duplicate,
                                       char *err, size_t errlen);

/* ---- blocking ---- */

/* A request to $TS.API.<api> (e.g. "STREAM.LIST"); *answer is the reply
 * (release it) when 0 is returned. */
TERN_EXTERN int tern_client_stream_request(tern_client_t *cl, const char *api,
                                           const void *body, size_t len,
                                           int timeout_ms, tern_msg_t **answer,
                                           char *err, size_t errlen);
TERN_EXTERN int tern_client_stream_add(tern_client_t *cl, const char *name,
                                       const tern_stream_config_t *c,
                                       int timeout_ms, char *err,
                                       size_t errlen);
TERN_EXTERN int tern_client_stream_update(tern_client_t *cl, const char *name,
                                          const tern_stream_config_t *c,
                                          int timeout_ms, char *err,
                                          size_t errlen);
TERN_EXTERN int tern_client_stream_delete(tern_client_t *cl, const char *name,
                                          int timeout_ms, char *err,
                                          size_t errlen);
TERN_EXTERN int tern_client_stream_info(tern_client_t *cl, const char *name,
                                        tern_stream_info_t *info,
                                        int timeout_ms, char *err,
                                        size_t errlen);
/*
 * Publishes to a stream's topic and waits for the stream ack: *seq (may be
 * NULL) gets the message's sequence; msgid (may be NULL) de-duplicates a
 * retry within the stream's window (*duplicate, may be NULL, says so).
 */
TERN_EXTERN int tern_client_publish_stream(tern_client_t *cl, const char *topic,
                                           const void *payload, size_t len,
                                           const char *msgid, int timeout_ms,
                                           uint64_t *seq, bool *duplicate);
/* Creates a consumer (durable when durable is not NULL); its name (the
 * durable's, or the ephemeral one the broker chose) goes to name. */
TERN_EXTERN int tern_client_consumer_add(tern_client_t *cl, const char *stream,
                                         const char *durable,
                                         const tern_consumer_config_t *c,
                                         char *name, size_t namelen,
                                         int timeout_ms, char *err,
                                         size_t errlen);
/*
 * Pulls up to batch messages from a pull consumer, waiting up to
 * expires_ms for them: msgs (room for batch) gets them (release each), *n
 * how many. 0 (also with *n 0: none came in time) or an error.
 */
TERN_EXTERN int tern_client_fetch(tern_client_t *cl, const char *stream,
                                  const char *consumer, size_t batch,
                                  int expires_ms, tern_msg_t **msgs, size_t *n);

/* Acks of a consumer's message m (its reply topic): done, deliver again
 * (after delay_ms), still working (ack wait restarts), never again. */
TERN_EXTERN int tern_client_ack(tern_client_t *cl, const tern_msg_t *m);
TERN_EXTERN int tern_client_nak(tern_client_t *cl, const tern_msg_t *m,
                                uint64_t delay_ms);
TERN_EXTERN int tern_client_in_progress(tern_client_t *cl, const tern_msg_t *m);
TERN_EXTERN int tern_client_term(tern_client_t *cl, const tern_msg_t *m);
/* The delivery count and stream sequence of a consumer's message (from
 * its reply topic); 0 when it is not one. */
TERN_EXTERN int tern_msg_stream_seq(const tern_msg_t *m, uint64_t *deliveries,
                                    uint64_t *seq);

/* ---- async (loop thread) ---- */

/* The stream ack of tern_conn_publish_stream: status 0 with seq, or an
 * error (a refusal's code, TERN_ETIMEOUT, ...). */
typedef void (*tern_stream_ack_cb)(tern_conn_t *conn, int status, uint64_t seq,
                                   bool duplicate, void *cb_data);
TERN_EXTERN int tern_conn_publish_stream(tern_conn_t *conn, const char *topic,
                                         const void *payload, size_t len,
                                         const char *msgid, uint32_t timeout_ms,
                                         tern_stream_ack_cb cb, void *cb_data);
/* A request to $TS.API.<api>; cb gets the raw answer (check it with
 * tern_stream_answer_status). */
TERN_EXTERN int tern_conn_stream_request(tern_conn_t *conn, const char *api,
                                         const void *body, size_t len,
                                         uint32_t timeout_ms, tern_reply_cb cb,
                                         void *cb_data);
/* Acks m: payload "" (ack), "-NAK <ms>", "+WPI" or "+TERM". */
TERN_EXTERN int tern_conn_ack(tern_conn_t *conn, const tern_msg_t *m,
                              const char *what);

#ifdef __cplusplus
}
#endif

#endif
