/*
 * One entry of a connection's output queue (data/outq.h), apart so that a
 * pending count (data/pending.h) can link and credit entries without the
 * rest of the queue.
 */
#ifndef TERND_OUTQ_ENTRY_H
#define TERND_OUTQ_ENTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/list.h"

struct msgbuf;
struct pending;

/* Inline head room: a MSG head, or a small control frame (PUBACK, ...). */
#define OUTQ_INLINE_MAX 32u
/* A MSG of at most this many bytes (head + body) may be copied into a
 * chunk rather than queued as an entry with a shared body. */
#define OUTQ_CHUNK_MSG_MAX 512u

typedef struct outq_entry {
  list_node_t link;     /* in the connection's queue */
  list_node_t sub_link; /* in its pending count's list (MSG only) */
  struct pending *pend; /* accounted to this count (data/pending.h); NULL
                           for control frames or once the subscription is
                           gone */
  struct msgbuf *body;  /* one reference, or NULL */
  uint32_t bytes;       /* head_len + body length */
  uint8_t head_len;
  bool inflight; /* handed to the write, not completed yet */
  bool is_msg;
  bool is_chunk;  /* an outq_chunk_t (outq.h): bytes inside, no body */
  bool is_notice; /* a drop_oldest DROPPED notice that `pend` may still grow
                     (pend->gap_notice); a plain control frame once in flight */
  uint8_t head[OUTQ_INLINE_MAX];
} outq_entry_t;

#endif
