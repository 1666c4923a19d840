/*
 * Publish batches of the blocking client: the cheap path of
 * tern_client_publish.
 *
 * A publishing thread encodes its PUB frame, under the client's mutex,
 * straight into the batch command at the tail of the command queue (or a
 * new one there), so publishes stay in FIFO order with every other command
 * and cost one lock and no allocation in steady state. The loop thread
 * seals the batch when it reaches the head of the queue (later publishes
 * start a new batch) and hands its bytes to the connection in runs; frames
 * that do not fit under outbound_limit stay in the batch until the drain
 * callback. Finished batches go back to a small free list with their
 * buffers.
 */
#include <stdlib.h>
#include <string.h>

#include "blocking_internal.h"

/* Batches kept for reuse, and the largest buffer worth keeping. */
#define FREE_BATCHES 4
#define KEEP_BYTES (1u << 20)

static void batch_destroy(tern__pub_batch_t *b) {
  tp_buf_free(&b->bytes);
  free(b->spans);
  free(b);
}

void tern__pub_batches_free(tern_client_t *cl) {
  while (cl->free_batches != NULL) {
    tern__pub_batch_t *b = cl->free_batches;
    cl->free_batches = b->next_free;
    batch_destroy(b);
  }
  tp_buf_free(&cl->pub_scratch);
}

void tern__pub_batch_release_locked(tern_client_t *cl, tern__pub_batch_t *b) {
  if (cl->nfree_batches >= FREE_BATCHES || b->bytes.cap > KEEP_BYTES) {
    batch_destroy(b);
    return;
  }
  b->next_free = cl->free_batches;
  cl->free_batches = b;
  cl->nfree_batches++;
}

/* An empty batch command, from the free list when it has one (mu held). */
static tern__pub_batch_t *batch_get_locked(tern_client_t *cl) {
  tern__pub_batch_t *b = cl->free_batches;
  if (b != NULL) {
    cl->free_batches = b->next_free;
    cl->nfree_batches--;
  } else {
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
      return NULL;
    }
  }
  memset(&b->cmd, 0, sizeof(b->cmd));
  b->cmd.kind = TERN__CMD_PUB_BATCH;
  b->cmd.refs = 1;
  tp_buf_reset(&b->bytes);
  b->nspans = 0;
  b->taken = 0;
  b->sealed = false;
  b->next_free = NULL;
  return b;
}

/* Encodes the PUB frame into b and records its span (mu held). */
static int batch_encode(tern_client_t *cl, tern__pub_batch_t *b,
                        tern__pub_t *p) {
  int rc;
  if (b->nspans == b->spans_cap) {
    size_t cap = b->spans_cap ? 2 * b->spans_cap : 64;
    tern__pubspan_t *s = realloc(b->spans, cap * sizeof(*s));
    if (s == NULL) {
      return TERN_ENOMEM;
    }
    b->spans = s;
    b->spans_cap = cap;
  }
  rc = tern__pub_encode(p, &cl->pub_scratch, &b->bytes);
  if (rc != 0) {
    return rc;
  }
  b->spans[b->nspans].end = b->bytes.len;
  b->spans[b->nspans].len = p->frame.u.pub.payload.len;
  b->nspans++;
  return 0;
}

int tern__pub_batch_add_locked(tern_client_t *cl, tern__pub_t *p, bool *wake) {
  tern__pub_batch_t *b = NULL;
  int rc;
  *wake = false;
  if (cl->tail != NULL && cl->tail->kind == TERN__CMD_PUB_BATCH) {
    b = (tern__pub_batch_t *)cl->tail;
    if (b->sealed) {
      b = NULL;
    }
  }
  if (b != NULL) {
    /* Its creator woke the loop, which has not taken it yet. */
    rc = batch_encode(cl, b, p);
  } else {
    b = batch_get_locked(cl);
    if (b == NULL) {
      return TERN_ENOMEM;
    }
    rc = batch_encode(cl, b, p);
    if (rc != 0) {
      tern__pub_batch_release_locked(cl, b);
      return rc;
    }
    if (cl->tail != NULL) {
      cl->tail->next = &b->cmd;
    } else {
      cl->head = &b->cmd;
    }
    cl->tail = &b->cmd;
    *wake = true;
  }
  if (rc == 0) {
    cl->queued_bytes += p->frame.u.pub.payload.len;
  }
  return rc;
}

/* Payload bytes of frames from..to-1. */
static uint64_t span_payload(const tern__pub_batch_t *b, size_t from,
                             size_t to) {
  uint64_t sum = 0;
  for (size_t i = from; i < to; i++) {
    sum += b->spans[i].len;
  }
  return sum;
}

int tern__pub_batch_exec(tern_client_t *cl, tern__pub_batch_t *b, bool closing,
                         uint64_t *left) {
  size_t next;
  int dropped = 0;
  int rc =
      tern__conn_publish_frames(cl->conn, b->bytes.data, b->spans, b->taken,
                                b->nspans, closing, &next, &dropped);
  bool retry = rc == TERN_EWOULDBLOCK && tern_conn_outbound_bytes(cl->conn) > 0;
  /* Retry: the rest waits for the drain callback. Otherwise frames not
   * taken (connection gone, no memory) are dropped. */
  if (!retry) {
    next = b->nspans;
  }
  *left = span_payload(b, b->taken, next);
  b->taken = next;
  if (!retry && rc != 0) {
    dropped = rc;
  }
  if (dropped != 0) {
    uv_mutex_lock(&cl->mu);
    strncpy(cl->last_error, tern_strerror(dropped), sizeof(cl->last_error) - 1);
    uv_mutex_unlock(&cl->mu);
  }
  return retry ? TERN__EXEC_RETRY : 0;
}
