/*
 * Incremental frame reader: bytes in as they arrive, whole frames out.
 *
 * It owns one buffer. A libuv reader asks for space (tp_reader_space), reads
 * into it, commits, then calls tp_reader_next until it returns 0. Every
 * complete frame in the buffer is decoded in place (no copy, no memmove per
 * frame); the unfinished tail is moved to the front at most once per read.
 * The length prefix is checked against max_frame before any body byte is
 * buffered, so a hostile prefix costs nothing.
 */
#ifndef TERN_PROTO_READER_H
#define TERN_PROTO_READER_H

#include <stddef.h>
#include <stdint.h>

#include "tern_proto/frame.h"

typedef struct tp_reader tp_reader_t;

/* initial_cap: the buffer size kept between large frames (e.g. 64 KiB). */
int tp_reader_create(tp_reader_t **out, size_t max_frame, size_t initial_cap);
void tp_reader_destroy(tp_reader_t *r);

/* Free space at the end of the buffer to read into (never 0 bytes). */
int tp_reader_space(tp_reader_t *r, uint8_t **ptr, size_t *len);
/* Marks n bytes written into the space as received. */
void tp_reader_commit(tp_reader_t *r, size_t n);
/* Copies n bytes in (for callers without their own read buffer). */
int tp_reader_feed(tp_reader_t *r, const void *data, size_t n);

/*
 * 1: *f holds the next frame, valid until the next call on r.
 * 0: no complete frame is buffered.
 * <0: TP_ETOOBIG, TP_EPROTO, TP_ETYPE, TP_EUTF8, TP_ENOMEM. The stream is
 *     broken after an error: every later call returns the same error.
 */
int tp_reader_next(tp_reader_t *r, tp_frame_t *f);
/* Reason for the last error, for the ERR frame's message. */
const char *tp_reader_errmsg(const tp_reader_t *r);
/* Bytes received but not yet returned as frames. */
size_t tp_reader_pending(const tp_reader_t *r);
/* Size of the buffer currently held (for memory accounting). */
size_t tp_reader_capacity(const tp_reader_t *r);

#endif
