/*
 * Durable streams (issue 19): the registry of streams on the broker's
 * first loop, the stream API on reserved topics ($TS.API.>), the capture
 * of published messages into their stream's log (through the router's
 * publish hook, delivery/worker.h), persisted-publish acks, consumers'
 * acks ($TS.ACK.>), and the figures the monitoring pages show.
 * PROTOCOL.md section 8 is the wire contract; README.md the user's view.
 */
#ifndef TERND_STREAMS_H
#define TERND_STREAMS_H

#include <stddef.h>
#include <stdint.h>

#include "delivery/worker.h"
#include "stream/stream_def.h"
#include "tern_proto/buf.h"

struct streams;

/* An $SYS advisory: topic (static string) and its JSON body. */
typedef void (*streams_advise_cb)(void *ctx, const char *topic,
                                  const char *json, size_t len);

/*
 * Opens every stream kept under data_dir/streams, then those declared in
 * defs (created, or updated to the file's definition), on w's loop, and
 * registers the publish hook in w->broker. 0, or an error with why set.
 */
int streams_open(struct streams **out, worker_t *w, const char *data_dir,
                 const stream_defs_t *defs, streams_advise_cb advise,
                 void *advise_ctx, char *why, size_t whylen);
/* Unregisters the hook, closes every log (writing what is buffered) and
 * the loop handles; the memory goes once they are closed (uv_run). */
void streams_close(struct streams *s);

/* /metrics lines (Prometheus text) and /streamz (JSON). 0 or TP_ENOMEM. */
int streams_metrics(struct streams *s, tp_buf_t *out);
int streams_json(struct streams *s, tp_buf_t *out);

#endif
