/*
 * What the streams send: messages to a consumer's target, replies to the
 * stream API and acks to publishers, all as the server's own messages
 * (delivery/router.h: router_publish_as), and the record envelope kept in
 * the log (the PUB's headers and payload).
 */
#ifndef TERND_STREAM_EMIT_H
#define TERND_STREAM_EMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery/worker.h"
#include "tern_proto/buf.h"
#include "tern_proto/frame.h"

/* The header carrying a publish's de-duplication id. */
#define STREAM_MSGID_HEADER "Tern-Msg-Id"
/* The header of a pull request's status message (no payload). */
#define STREAM_STATUS_HEADER "Tern-Status"

/* A message with topic/payload/headers/reply to the subscriptions of `to`.
 * *full (may be NULL): a `block` subscription is now full. 0 or
 * TP_ENOMEM. */
int emit_msg(worker_t *w, const char *to, const char *topic, size_t tlen,
             const uint8_t *payload, size_t plen, const tp_headers_t *hdrs,
             const char *reply, bool *full);
/* body (msgpack) to the reply topic `to`. */
int emit_reply(worker_t *w, const char *to, const tp_buf_t *body);
/* An empty message to `to` with the Tern-Status header (e.g. "404 no
 * messages"). */
int emit_status(worker_t *w, const char *to, const char *status);

/* The log's record: [flags][headers (u32 little-endian length + map) if
 * flags & 1][payload]. */
int rec_encode(tp_buf_t *b, const tp_headers_t *h, const uint8_t *payload,
               size_t plen);
/* The headers and payload of a record; -1 when malformed. */
int rec_decode(const uint8_t *data, size_t len, tp_headers_t *h,
               const uint8_t **payload, size_t *plen);

/* The value of header key in h; false when absent. */
bool header_find(const tp_headers_t *h, const char *key, tp_str_t *val);

#endif
