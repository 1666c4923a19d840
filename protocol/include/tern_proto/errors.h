/*
 * Error codes of the protocol library and the wire's ERR codes.
 *
 * Library functions return 0 (or a positive count) on success and a negative
 * tp_err on failure. Each library error maps to the wire ERR code the broker
 * must send for it (tp_err_wire_code), so the mapping lives in one place.
 */
#ifndef TERN_PROTO_ERRORS_H
#define TERN_PROTO_ERRORS_H

#include <stdbool.h>

/* Wire ERR codes, PROTOCOL.md "Error codes". */
typedef enum tp_wire_code {
  TP_WIRE_PROTOCOL = 1,       /* fatal */
  TP_WIRE_AUTH = 2,           /* fatal */
  TP_WIRE_PERMISSION = 3,     /* non-fatal */
  TP_WIRE_INVALID_TOPIC = 4,  /* non-fatal */
  TP_WIRE_FRAME_TOO_LARGE = 5, /* fatal */
  TP_WIRE_SLOW_CONSUMER = 6,  /* fatal */
  TP_WIRE_CONNECT_TIMEOUT = 7, /* fatal */
  TP_WIRE_UNKNOWN_SID = 8,    /* non-fatal */
  TP_WIRE_DUPLICATE_SID = 9,  /* non-fatal */
  TP_WIRE_TOO_MANY_SUBS = 10, /* non-fatal */
  TP_WIRE_TOO_MANY_CONNS = 11, /* fatal */
  TP_WIRE_STALE = 12,         /* fatal */
  TP_WIRE_PAYLOAD_TOO_LARGE = 13 /* non-fatal */
} tp_wire_code;

/* True when the wire code closes the connection after it is sent. */
bool tp_wire_code_is_fatal(int code);
/* Short English text for a wire code ("protocol error", ...). Never NULL. */
const char *tp_wire_code_text(int code);

/*
 * Library errors. X-macro: name, value, wire code, message.
 * The range -10001..-10999 is the protocol library's alone: clear of
 * libuv's UV_E* (negated errno values, UV_EAI_* near -3000, UV_EOF =
 * -4095), libtern's (-20001..-20999) and the broker's (-30001..-30999), so
 * a variable that holds any of them says by its value whose code it is.
 */
#define TP_ERR_FIRST (-10001)
#define TP_ERR_LAST (-10999)
#define TP_ERR_MAP(X)                                                          \
  X(TP_EPROTO, -10001, TP_WIRE_PROTOCOL, "malformed frame")                    \
  X(TP_ETOOBIG, -10002, TP_WIRE_FRAME_TOO_LARGE, "frame too large")            \
  X(TP_ENOMEM, -10003, TP_WIRE_PROTOCOL, "out of memory")                      \
  X(TP_ETYPE, -10004, TP_WIRE_PROTOCOL, "unknown frame type")                  \
  X(TP_EUTF8, -10005, TP_WIRE_PROTOCOL, "string is not valid UTF-8")           \
  X(TP_ETOPIC, -10006, TP_WIRE_INVALID_TOPIC, "invalid topic")                 \
  X(TP_EPATTERN, -10007, TP_WIRE_INVALID_TOPIC, "invalid pattern")             \
  X(TP_EINVAL, -10008, TP_WIRE_PROTOCOL, "invalid argument")

/*
 * Success is plain 0. There is deliberately no TP_OK here: TP_OK is the OK
 * frame type (9) in frame.h, and two enumerators of one name cannot coexist
 * in a file that includes both headers.
 */
typedef enum tp_err {
#define TP_ERR_ENUM(name, val, wire, msg) name = (val),
  TP_ERR_MAP(TP_ERR_ENUM)
#undef TP_ERR_ENUM
} tp_err;

/* True for a value in the protocol library's range. */
static inline bool tp_err_is(int rc) {
  return rc <= TP_ERR_FIRST && rc >= TP_ERR_LAST;
}

/* Message for a tp_err value; "unknown error" for anything else. */
const char *tp_strerror(int err);
/* Wire ERR code to send for a tp_err value (TP_WIRE_PROTOCOL by default). */
int tp_err_wire_code(int err);

#endif
