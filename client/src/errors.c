/*
 * Error texts and names, generated from TERN_ERRNO_MAP; libuv's codes are
 * passed to libuv's own tables.
 */
#include <uv.h>

#include "tern/errors.h"
#include "tern/tern.h"
#include "tern_proto/errors.h"

#ifndef TERN_VERSION_STRING
#define TERN_VERSION_STRING "0.0.0"
#endif

/* libuv's codes are negated errno values and EAI_* codes, all above -4096. */
static int is_uv_code(int err) {
  return err < 0 && err >= -4095;
}

const char *tern_strerror(int err) {
  switch (err) {
  case TERN_OK:
    return "success";
#define TERN_ERR_STR_(name, val, msg)                                          \
  case TERN_E##name:                                                           \
    return msg;
    TERN_ERRNO_MAP(TERN_ERR_STR_)
#undef TERN_ERR_STR_
  default:
    break;
  }
  if (is_uv_code(err)) {
    return uv_strerror(err);
  }
  return "unknown error";
}

const char *tern_err_name(int err) {
  switch (err) {
  case TERN_OK:
    return "TERN_OK";
#define TERN_ERR_NAME_(name, val, msg)                                         \
  case TERN_E##name:                                                           \
    return "TERN_E" #name;
    TERN_ERRNO_MAP(TERN_ERR_NAME_)
#undef TERN_ERR_NAME_
  default:
    break;
  }
  if (is_uv_code(err)) {
    return uv_err_name(err);
  }
  return "UNKNOWN";
}

int tern_err_from_wire(int wire_code) {
  switch (wire_code) {
  case TP_WIRE_PROTOCOL:
  case TP_WIRE_FRAME_TOO_LARGE:
  case TP_WIRE_CONNECT_TIMEOUT:
    return TERN_EPROTO;
  case TP_WIRE_AUTH:
    return TERN_EAUTH;
  case TP_WIRE_PERMISSION:
    return TERN_EPERM;
  case TP_WIRE_INVALID_TOPIC:
    return TERN_ETOPIC;
  case TP_WIRE_SLOW_CONSUMER:
    return TERN_ESLOWCONSUMER;
  case TP_WIRE_TOO_MANY_SUBS:
  case TP_WIRE_TOO_MANY_CONNS:
    return TERN_ELIMIT;
  case TP_WIRE_STALE:
    return TERN_ESTALE;
  case TP_WIRE_PAYLOAD_TOO_LARGE:
    return TERN_ETOOLARGE;
  default:
    return TERN_ESERVER;
  }
}

const char *tern_version(void) {
  return TERN_VERSION_STRING;
}
