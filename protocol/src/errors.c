/*
 * Error texts and the mapping from library errors to wire ERR codes.
 */
#include "tern_proto/errors.h"

bool tp_wire_code_is_fatal(int code) {
  switch (code) {
  case TP_WIRE_PROTOCOL:
  case TP_WIRE_AUTH:
  case TP_WIRE_FRAME_TOO_LARGE:
  case TP_WIRE_SLOW_CONSUMER:
  case TP_WIRE_CONNECT_TIMEOUT:
  case TP_WIRE_TOO_MANY_CONNS:
  case TP_WIRE_STALE:
    return true;
  default:
    return false;
  }
}

const char *tp_wire_code_text(int code) {
  switch (code) {
  case TP_WIRE_PROTOCOL:
    return "protocol error";
  case TP_WIRE_AUTH:
    return "authentication failed";
  case TP_WIRE_PERMISSION:
    return "permission denied";
  case TP_WIRE_INVALID_TOPIC:
    return "invalid topic or pattern";
  case TP_WIRE_FRAME_TOO_LARGE:
    return "frame too large";
  case TP_WIRE_SLOW_CONSUMER:
    return "slow consumer";
  case TP_WIRE_CONNECT_TIMEOUT:
    return "connect timeout";
  case TP_WIRE_UNKNOWN_SID:
    return "unknown sid";
  case TP_WIRE_DUPLICATE_SID:
    return "duplicate sid";
  case TP_WIRE_TOO_MANY_SUBS:
    return "too many subscriptions";
  case TP_WIRE_TOO_MANY_CONNS:
    return "too many connections";
  case TP_WIRE_STALE:
    return "stale connection";
  case TP_WIRE_PAYLOAD_TOO_LARGE:
    return "payload too large";
  default:
    return "unknown error code";
  }
}

const char *tp_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define TP_ERR_TEXT(name, val, wire, msg)                                      \
  case name:                                                                   \
    return msg;
    TP_ERR_MAP(TP_ERR_TEXT)
#undef TP_ERR_TEXT
  default:
    return "unknown error";
  }
}

int tp_err_wire_code(int err) {
  switch (err) {
#define TP_ERR_WIRE(name, val, wire, msg)                                      \
  case name:                                                                   \
    return wire;
    TP_ERR_MAP(TP_ERR_WIRE)
#undef TP_ERR_WIRE
  default:
    return TP_WIRE_PROTOCOL;
  }
}
