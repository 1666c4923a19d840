/*
 * libtern: the client library of the tern publish/subscribe broker.
 *
 * One include for everything:
 *   tern/errors.h   negative error codes, tern_strerror
 *   tern/options.h  connection, publish and subscribe options
 *   tern/msg.h      received messages
 *   tern/async.h    the asynchronous API on a caller's uv_loop_t
 *   tern/sync.h     the blocking API (its own loop on a background thread)
 *   tern/stream.h   durable streams: management, persisted publish, consumers
 *
 * No global state: every object belongs to a connection or client, and no
 * initialisation call is needed.
 */
#ifndef TERN_TERN_H
#define TERN_TERN_H

#include "tern/async.h"
#include "tern/errors.h"
#include "tern/export.h"
#include "tern/msg.h"
#include "tern/options.h"
#include "tern/stream.h"
#include "tern/sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version string ("0.1.0"). Any thread. */
TERN_EXTERN const char *tern_version(void);

#ifdef __cplusplus
}
#endif

#endif
