/*
 * Frames of the tern wire protocol v1: types, decoded views, encoders.
 *
 * A frame on the wire is a 4-byte big-endian length L followed by L bytes
 * holding exactly one msgpack array whose first element is the frame type.
 *
 * Decoded frames are *views*: every tp_str_t / tp_bytes_t / tp_headers_t in
 * a tp_frame_t points into the bytes that were decoded and is valid only as
 * long as those bytes are (for tp_reader_t: until the next tp_reader_next).
 * Strings are not NUL-terminated.
 */
#ifndef TERN_PROTO_FRAME_H
#define TERN_PROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern_proto/buf.h"

#define TP_PROTO_VERSION 1
#define TP_DEFAULT_PORT 7421
#define TP_DEFAULT_HTTP_PORT 8421
#define TP_DEFAULT_MAX_PAYLOAD (1024u * 1024u)
/* max_frame = max_payload + TP_FRAME_OVERHEAD */
#define TP_FRAME_OVERHEAD (64u * 1024u)
#define TP_DEFAULT_MAX_TOPIC 1024u
#define TP_LEN_PREFIX 4u
/* Largest per-subscriber MSG head: prefix(4) + array(1) + type(1) + sid(9). */
#define TP_MSG_HEAD_MAX 16u

typedef enum tp_frame_type {
  TP_HELLO = 1,
  TP_CONNECT = 2,
  TP_PUB = 3,
  TP_SUB = 4,
  TP_UNSUB = 5,
  TP_MSG = 6,
  TP_PING = 7,
  TP_PONG = 8,
  TP_OK = 9,
  TP_ERR = 10,
  TP_PUBACK = 11,
  TP_DROPPED = 12,
  TP_GOAWAY = 13
} tp_frame_type;

/* "HELLO", "PUB", ...; "?" for an unknown type. */
const char *tp_frame_type_name(int type);

/* Borrowed UTF-8 string; ptr == NULL means "absent" (len is then 0). */
typedef struct tp_str {
  const char *ptr;
  uint32_t len;
} tp_str_t;

/* Borrowed binary payload; ptr may be NULL when len == 0. */
typedef struct tp_bytes {
  const uint8_t *ptr;
  uint32_t len;
} tp_bytes_t;

/*
 * A headers map (str -> str) kept as its raw msgpack encoding, so the broker
 * passes it from PUB to MSG without re-encoding. raw == NULL: no headers.
 * The decoder has already checked that it is a map of valid str to str.
 */
typedef struct tp_headers {
  const uint8_t *raw; /* msgpack map, borrowed */
  uint32_t len;       /* bytes of raw */
  uint32_t count;     /* number of key/value pairs */
} tp_headers_t;

/* Iterates a decoded tp_headers_t. */
typedef struct tp_headers_iter {
  const uint8_t *p;
  const uint8_t *end;
  uint32_t left;
} tp_headers_iter_t;
void tp_headers_iter_init(tp_headers_iter_t *it, const tp_headers_t *h);
/* 1 and the next pair, or 0 at the end. */
int tp_headers_next(tp_headers_iter_t *it, tp_str_t *key, tp_str_t *val);
/*
 * Encodes n pairs as a msgpack map appended to out, and points *h at those
 * bytes (valid while out is not modified). 0 or TP_ENOMEM / TP_EINVAL.
 */
int tp_headers_build(tp_buf_t *out, const tp_str_t *keys, const tp_str_t *vals,
                     uint32_t n, tp_headers_t *h);

typedef enum tp_overflow {
  TP_OVERFLOW_UNSET = 0, /* not given in SUB: server default applies */
  TP_OVERFLOW_BLOCK = 1,
  TP_OVERFLOW_DROP_OLDEST = 2,
  TP_OVERFLOW_DROP_NEWEST = 3,
  TP_OVERFLOW_DISCONNECT = 4
} tp_overflow;
/* "block", "drop_oldest", ... ; NULL for TP_OVERFLOW_UNSET or unknown. */
const char *tp_overflow_name(int policy);
/* TP_OVERFLOW_* for a name, or TP_OVERFLOW_UNSET if it is not one. */
int tp_overflow_parse(const char *name, size_t len);

typedef struct tp_hello {
  uint32_t proto;
  tp_str_t server;    /* "ternd/X.Y.Z" */
  tp_str_t server_id;
  uint64_t max_payload;
  uint64_t max_frame;
  bool auth_required;
  uint64_t heartbeat_ms;
  /* A cluster's client URLs, comma-separated ("tern://h1:7421,..."); ptr
   * NULL when the server is not in a cluster (the key is left out). */
  tp_str_t cluster_urls;
} tp_hello_t;

typedef struct tp_connect {
  uint32_t proto; /* required */
  tp_str_t name, user, pass, token;
  bool echo;    /* default true */
  bool verbose; /* default false */
} tp_connect_t;

typedef struct tp_pub {
  tp_str_t topic;
  tp_bytes_t payload;
  tp_str_t reply;
  tp_headers_t headers;
  bool has_ack;
  uint64_t ack;
  bool retain;
  uint64_t ttl_ms;
  /* Set by the decoder when it found topic to be a valid publish topic
   * (tp_topic_validate's rules but the length limit) while reading it, so
   * the receiver need not walk it again; false means "not checked". */
  bool topic_checked;
} tp_pub_t;

typedef struct tp_sub {
  uint64_t sid;
  tp_str_t pattern;
  tp_str_t queue;
  uint64_t max_msgs;  /* 0 = not given */
  uint64_t max_bytes; /* 0 = not given */
  int overflow;       /* tp_overflow; TP_OVERFLOW_UNSET = not given */
} tp_sub_t;

typedef struct tp_unsub {
  uint64_t sid;
  bool has_max;
  uint64_t max_msgs;
} tp_unsub_t;

typedef struct tp_msg {
  uint64_t sid;
  tp_str_t topic;
  tp_bytes_t payload;
  tp_str_t reply;
  tp_headers_t headers;
  bool retained;
} tp_msg_t;

typedef struct tp_errf {
  uint32_t code;
  tp_str_t message;
} tp_errf_t;

typedef struct tp_puback {
  uint64_t ack_id;
  uint64_t receivers;
} tp_puback_t;

typedef struct tp_dropped {
  uint64_t sid;
  uint64_t count;
} tp_dropped_t;

typedef struct tp_goaway {
  tp_str_t reason;
} tp_goaway_t;

typedef struct tp_frame {
  int type; /* tp_frame_type */
  union {
    tp_hello_t hello;
    tp_connect_t connect;
    tp_pub_t pub;
    tp_sub_t sub;
    tp_unsub_t unsub;
    tp_msg_t msg;
    tp_errf_t err;
    tp_puback_t puback;
    tp_dropped_t dropped;
    tp_goaway_t goaway;
  } u;
} tp_frame_t;

/* Sets type and gives every field its protocol default (echo = true, ...). */
void tp_frame_init(tp_frame_t *f, int type);

/*
 * Appends one whole frame (length prefix included) to out.
 * Optional strings with ptr == NULL and zero/false options are omitted, and
 * the opts map is left out entirely when it would be empty.
 * 0, TP_ENOMEM, or TP_EINVAL (unknown type, NULL required field).
 */
int tp_frame_encode(tp_buf_t *out, const tp_frame_t *f);

/*
 * The broker's fan-out encoding of MSG, split in two:
 *  - the body, shared by all subscribers: topic, payload and, if any of
 *    reply/headers/retained is set, the opts map. Appended to out once.
 *  - the head, per subscriber: length prefix, array header, type, sid.
 * head + body is exactly the frame tp_frame_encode would produce.
 */
int tp_msg_body_encode(tp_buf_t *out, tp_str_t topic, tp_bytes_t payload,
                       tp_str_t reply, tp_headers_t headers, bool retained,
                       bool *has_opts);
/* Writes the head into out; returns its size (<= TP_MSG_HEAD_MAX). */
size_t tp_msg_head_encode(uint8_t out[TP_MSG_HEAD_MAX], uint64_t sid,
                          size_t body_len, bool has_opts);

/*
 * Reads the length prefix at buf.
 * Returns 0 when avail < 4; 1 with *frame_size = 4 + L when the prefix is
 * acceptable; TP_ETOOBIG when L > max_frame; TP_EPROTO when L == 0.
 */
int tp_frame_size(const uint8_t *buf, size_t avail, size_t max_frame,
                  size_t *frame_size);

/* Decodes frame bodies. Holds reusable msgpack scratch memory. */
typedef struct tp_decoder tp_decoder_t;
int tp_decoder_create(tp_decoder_t **out);
void tp_decoder_destroy(tp_decoder_t *d);
/*
 * Decodes the L bytes after a length prefix into *f (views into body).
 * Every declared container/str/bin length is bounded by the bytes that
 * remain before msgpack-c sees the body; nesting deeper than 32 levels is
 * refused. Unknown trailing array elements and unknown option keys are
 * ignored; missing required elements, wrong types, a str payload, invalid
 * UTF-8 and unknown frame types are errors.
 * 0, or TP_EPROTO / TP_ETYPE / TP_EUTF8 / TP_ENOMEM; details in
 * tp_decoder_errmsg.
 */
int tp_frame_decode(tp_decoder_t *d, const uint8_t *body, size_t len,
                    tp_frame_t *f);
/* Human-readable reason for the last decode error ("PUB payload must be bin"). */
const char *tp_decoder_errmsg(const tp_decoder_t *d);

/*
 * Decodes the frame at the front of a caller-owned buffer of avail bytes,
 * for readers that keep their own buffers (the broker reads into one
 * buffer shared by all its connections).
 * 1: *f holds the frame (views into buf, valid while buf is unchanged and
 *    until the next decode with d); *used is its size, prefix included.
 * 0: the frame is not complete; *used is its whole size once the prefix
 *    is in (the prefix passed the max_frame check), else 0.
 * <0: TP_ETOOBIG (prefix above max_frame, refused before its body
 *    arrives), TP_EPROTO (zero length) or a tp_frame_decode error; the
 *    reason is in tp_decoder_errmsg.
 */
int tp_frame_next(tp_decoder_t *d, const uint8_t *buf, size_t avail,
                  size_t max_frame, tp_frame_t *f, size_t *used);

#endif
