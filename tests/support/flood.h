/*
 * Test harness: a publisher that floods a topic from a background thread.
 *
 * Flow-control tests need a producer that the broker can stop: once the
 * broker stops reading, a plain blocking send would freeze the test
 * itself. The flood thread sends `count` PUBs (payload `size` bytes, the
 * first 4 bytes the sequence number, big-endian) and then, optionally, a
 * PING, while the test thread goes on reading other connections. Frames
 * are generated chunk by chunk, so a flood of a GiB costs no memory.
 */
#ifndef TERN_TESTS_FLOOD_H
#define TERN_TESTS_FLOOD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raw_client.h"
#include "tern_proto/frame.h"

typedef struct tt_flood {
  int fd;
  char topic[128];
  uint32_t first, count;
  size_t size;
  bool ping_after;
  bool retain; /* PUBs carry {retain: true} */
  pthread_t thread;
  int result; /* 0, or -errno of the failed send */
  bool running;
} tt_flood_t;

/* Starts sending on fd (a CONNECTed socket the caller keeps reading). */
void tt_flood_start(tt_flood_t *fl, int fd, const char *topic, uint32_t first,
                    uint32_t count, size_t size, bool ping_after);
/* The same with {retain: true} on every PUB. */
void tt_flood_start_retained(tt_flood_t *fl, int fd, const char *topic,
                             uint32_t first, uint32_t count, size_t size,
                             bool ping_after);
/* Waits for the thread: 0 when everything was sent, else -errno. */
int tt_flood_join(tt_flood_t *fl);

/* The sequence number in a flood message's payload (cr_assert on size). */
uint32_t tt_flood_seq(const tp_frame_t *msg, size_t size);

/* The flooding connection p gets nothing within wait_ms: its final PING
 * is not answered, so the broker is not reading it (block policy). */
void tt_flood_expect_held(tt_raw_t *p, int wait_ms);
/* The flood went through (joined, no send error) and its PING is
 * answered. */
void tt_flood_expect_done(tt_raw_t *p, tt_flood_t *fl);
/* Reads flood MSGs first..first+n-1 of sid on s, in order, and nothing
 * else (no DROPPED, no other frame). */
void tt_flood_read_in_order(tt_raw_t *s, uint64_t sid, uint32_t first,
                            uint32_t n, size_t size);
/* What a drop_oldest or drop_newest subscriber got of a flood so far. */
typedef struct tt_gaps {
  uint32_t expect;    /* next sequence number expected */
  uint64_t announced; /* DROPPED counts since the last MSG */
  uint64_t received;  /* MSGs */
  uint64_t dropped;   /* sum of the DROPPED counts */
} tt_gaps_t;

/*
 * Reads the flood MSGs of sid on s up to and including message `last`
 * (last < 0: up to a PONG, which the caller asked for with a PING),
 * checking that every gap is announced exactly where it is: the DROPPED
 * counts received since the previous MSG add up to the sequence numbers
 * missing before this one. Server PINGs are answered.
 */
void tt_flood_read_gaps(tt_raw_t *s, uint64_t sid, size_t size, int64_t last,
                        tt_gaps_t *g);

#endif
