/*
 * What encoder and decoder share: frame type names, overflow policy names,
 * protocol defaults and the length prefix.
 */
#include <string.h>

#include "tern_proto/errors.h"
#include "tern_proto/frame.h"

const char *tp_frame_type_name(int type) {
  static const char *const names[] = {
      NULL,   "HELLO", "CONNECT", "PUB", "SUB",    "UNSUB",   "MSG",
      "PING", "PONG",  "OK",      "ERR", "PUBACK", "DROPPED", "GOAWAY"};
  if (type < TP_HELLO || type > TP_GOAWAY)
    return "?";
  return names[type];
}

static const char *const overflow_names[] = {NULL, "block", "drop_oldest",
                                             "drop_newest", "disconnect"};

const char *tp_overflow_name(int policy) {
  if (policy < TP_OVERFLOW_BLOCK || policy > TP_OVERFLOW_DISCONNECT)
    return NULL;
  return overflow_names[policy];
}

int tp_overflow_parse(const char *name, size_t len) {
  for (int i = TP_OVERFLOW_BLOCK; i <= TP_OVERFLOW_DISCONNECT; i++)
    if (strlen(overflow_names[i]) == len &&
        memcmp(overflow_names[i], name, len) == 0)
      return i;
  return TP_OVERFLOW_UNSET;
}

void tp_frame_init(tp_frame_t *f, int type) {
  memset(f, 0, sizeof(*f));
  f->type = type;
  switch (type) {
  case TP_HELLO:
    f->u.hello.proto = TP_PROTO_VERSION;
    f->u.hello.max_payload = TP_DEFAULT_MAX_PAYLOAD;
    f->u.hello.max_frame = TP_DEFAULT_MAX_PAYLOAD + TP_FRAME_OVERHEAD;
    break;
  case TP_CONNECT:
    f->u.connect.proto = TP_PROTO_VERSION;
    f->u.connect.echo = true;
    break;
  default:
    break;
  }
}

int tp_frame_size(const uint8_t *buf, size_t avail, size_t max_frame,
                  size_t *frame_size) {
  if (avail < TP_LEN_PREFIX)
    return 0;
  uint32_t len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
                 (uint32_t)buf[2] << 8 | (uint32_t)buf[3];
  if (len == 0)
    return TP_EPROTO;
  if (len > max_frame)
    return TP_ETOOBIG;
  *frame_size = TP_LEN_PREFIX + (size_t)len;
  return 1;
}
