/*
 * A stream's consumer: where it reads, what it delivered and is waiting
 * for an ack, its pull requests or its push topic (stream_internal.h has
 * the structure). Durable ones keep their configuration and state in two
 * state files of the stream's directory (store/state.h).
 */
#ifndef TERND_STREAM_CONSUMER_H
#define TERND_STREAM_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/stream_internal.h"

/* Ack kinds (PROTOCOL.md 8.4). */
enum { ACK_ACK = 0, ACK_NAK, ACK_PROGRESS, ACK_TERM };

/* A consumer of st with its defaults (not started). NULL when out of
 * memory. */
consumer_t *consumer_new(stream_t *st, const char *name, bool durable);
/* Its configuration from a msgpack map. 0, or -1 with why. */
int consumer_config_decode(consumer_t *c, const uint8_t *p, size_t len,
                           char *why, size_t whylen);
/* Starts reading: a durable one opens its state files (saving its
 * configuration, or taking its position from what was saved). 0 or an
 * error. */
int consumer_start(consumer_t *c, bool restore);
/* Frees it; remove: a durable one's files go too. */
void consumer_free(consumer_t *c, bool remove);
/* Info as a msgpack map. */
int consumer_info(const consumer_t *c, tp_buf_t *b);
/* A pull request: up to batch messages to reply, waiting up to
 * expires_ms (0: until it is served), or none if no_wait. */
int consumer_pull(consumer_t *c, const char *reply, size_t rlen, uint64_t batch,
                  uint64_t expires_ms, bool no_wait);
/* An ack of the delivery of stream sequence sseq. */
void consumer_ack(consumer_t *c, uint64_t sseq, int kind, uint64_t delay_ms);
/* Delivers what it can, at most budget messages. True when it stopped on
 * the budget (more to do at once). */
bool consumer_pump(consumer_t *c, size_t budget);
/* Timers: pull requests that expired. */
void consumer_tick(consumer_t *c, uint64_t now);
/* Writes a durable consumer's state when it changed. */
void consumer_save(consumer_t *c);
/* Records below first_seq are gone: drop their pending entries. */
void consumer_trim(consumer_t *c, uint64_t first_seq);

#endif
