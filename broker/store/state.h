/*
 * Small state files kept beside the logs: a durable consumer's position
 * and pending acks, a stream's definition, anything the layers above must
 * find again after a restart. Each is one file replaced atomically (written
 * to NAME.tmp, fdatasync'ed, renamed over NAME, directory fsync'ed), so a
 * crash leaves either the old content or the new, never a mix; a checksum
 * and a header (magic "TERNSTAT", format version 1) guard it.
 *
 * Writes go through the env's sync thread (store/store.h): store_state_put
 * copies the bytes and returns at once; the thread writes the newest
 * content soon after (puts made before it started are coalesced into one
 * write). A consumer's state therefore costs nothing on the loop per ack:
 * put it after a batch of acks (or from a short timer while it is dirty).
 * Acks put but not yet written when the process dies are lost, and their
 * messages are delivered again: at-least-once, as the consumer promises.
 * store_state_flush waits until what was put is on disk (for a delete of a
 * consumer, or a test).
 *
 * Threads: a store_state_t belongs to one thread, as a store_t does.
 */
#ifndef TERND_STORE_STATE_H
#define TERND_STORE_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct store_state store_state_t;

/* Largest state file content. */
#define STORE_STATE_MAX (256u << 20)

/* Opens the state file `name` (a plain file name: no '/', not starting
 * with '.') in `dir` (created if absent). The file need not exist yet. */
int store_state_open(store_env_t *env, const char *dir, const char *name,
                     store_state_t **out);

/* The newest content: what was last put, or else what the file holds.
 * *data is malloc'ed (the caller frees it); TERND_ESTORE_NOTFOUND when
 * there is none, TERND_ESTORE_CORRUPT when the file fails its checksum,
 * TERND_ESTORE_FORMAT for an unknown version. */
int store_state_get(store_state_t *s, uint8_t **data, size_t *len);

/* Replaces the content (copied; the sync thread writes it soon). */
int store_state_put(store_state_t *s, const void *data, size_t len);

/* Waits until the last put is on disk; its error if writing it failed. */
int store_state_flush(store_state_t *s);

/* Flushes and frees. Returns the flush's error. */
int store_state_close(store_state_t *s);

/* Removes the file (durably) and frees the handle. */
int store_state_remove(store_state_t *s);

/* ---- a durable consumer's state, encoded for a state file ---- */

/* One delivered, not yet acknowledged message. */
typedef struct store_pending {
  uint64_t stream_seq;
  uint64_t consumer_seq; /* the delivery's consumer sequence */
  int64_t time_ns;       /* when last delivered */
  uint32_t deliveries;   /* times delivered so far (>= 1) */
} store_pending_t;

typedef struct store_consumer_state {
  uint64_t delivered_stream_seq;   /* highest stream sequence delivered */
  uint64_t delivered_consumer_seq; /* deliveries made (consumer sequence) */
  uint64_t ack_floor_stream_seq;   /* every stream seq <= it is done */
  uint64_t ack_floor_consumer_seq;
  size_t npending;
  store_pending_t *pending; /* sorted by stream_seq is not required */
} store_consumer_state_t;

/* Encodes `cs` (little-endian, versioned; broker/store/README.md) into a
 * malloc'ed buffer for store_state_put. */
int store_consumer_encode(const store_consumer_state_t *cs, uint8_t **out,
                          size_t *len);
/* Decodes what store_consumer_encode made; `out->pending` is malloc'ed
 * (free with store_consumer_state_free). TERND_ESTORE_CORRUPT or
 * TERND_ESTORE_FORMAT on bad input, nothing allocated then. */
int store_consumer_decode(const uint8_t *data, size_t len,
                          store_consumer_state_t *out);
void store_consumer_state_free(store_consumer_state_t *cs);

#endif
