/*
 * A received message.
 *
 * A tern_msg_t handed to a callback is borrowed for the duration of that
 * callback; to keep it, take a reference with tern_msg_retain and drop it
 * later with tern_msg_release. Messages from tern_sub_next and
 * tern_client_request belong to the caller, who releases them.
 * A message is immutable; its getters and retain/release may be used from
 * any thread (the reference count is atomic). Strings returned by the
 * getters are NUL-terminated, live as long as the message, and must not be
 * freed.
 */
#ifndef TERN_MSG_H
#define TERN_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_msg tern_msg_t;

/* One header pair; the pointers are into the message (do not free). */
typedef struct tern_header {
  const char *key;
  size_t key_len;
  const char *value;
  size_t value_len;
} tern_header_t;

/* Subscription id the broker delivered it for. */
TERN_EXTERN uint64_t tern_msg_sid(const tern_msg_t *m);
/* Topic it was published to. */
TERN_EXTERN const char *tern_msg_topic(const tern_msg_t *m);
/* Payload bytes (followed by a NUL not counted in len, so text payloads can
 * be printed as strings) and their length. */
TERN_EXTERN const void *tern_msg_data(const tern_msg_t *m);
TERN_EXTERN size_t tern_msg_len(const tern_msg_t *m);
/* Reply topic, or NULL when the publisher gave none. */
TERN_EXTERN const char *tern_msg_reply(const tern_msg_t *m);
/* True when it came from the broker's retained store. */
TERN_EXTERN bool tern_msg_retained(const tern_msg_t *m);

/* Number of headers. Iterate with i = 0 .. count-1 and tern_msg_header. */
TERN_EXTERN size_t tern_msg_header_count(const tern_msg_t *m);
/* The i-th header pair into *out: 0, or TERN_EINVAL when i >= count. */
TERN_EXTERN int tern_msg_header(const tern_msg_t *m, size_t i,
                                tern_header_t *out);
/* Value of the first header named key, or NULL. */
TERN_EXTERN const char *tern_msg_header_get(const tern_msg_t *m,
                                            const char *key);

/* Takes a reference; returns m. */
TERN_EXTERN tern_msg_t *tern_msg_retain(tern_msg_t *m);
/* Drops a reference; the last one frees the message. NULL is ignored. */
TERN_EXTERN void tern_msg_release(tern_msg_t *m);

#ifdef __cplusplus
}
#endif

#endif
