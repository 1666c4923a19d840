/*
 * Hand-over between event loops (several workers): a message published on
 * one loop for a subscription another loop owns, and the flow-control
 * notices that go back and forth about it.
 *
 * One single-producer single-consumer queue per ordered pair of loops
 * (base/spsc.h): loop A writes to B's queue while it routes, makes the
 * turn's items visible at once before it sleeps and wakes B with one
 * uv_async_send per batch, never per message. B takes everything on its
 * wake-up. A message body crosses without a copy: A keeps its reference
 * until B is past the item (A drops it when it reclaims the queue), and B
 * copies the bytes only into its own output (as it does for small MSGs
 * on one loop) or, for a message its queue keeps by reference, into one
 * body of its own per message. Order is the queue's: per publisher per
 * subscription it is kept.
 *
 * A PING after messages handed over is answered once every loop they went
 * to has taken them (FENCE, FENCE_ACK): PONG stays the barrier it is
 * with one loop.
 *
 * Flow control: A counts what it handed to B and B has not taken (its
 * queue's length, an upper bound for any one subscription) on top of what
 * B holds for the subscription (x_pending, as of B's last turn): when that
 * reaches a limit, A stops the publisher there and
 * then (as one loop would) and sends WAIT; B, having taken everything
 * before it, records the waiter if the subscription is still full, or
 * answers UNBLOCK at once. Besides, B finds a `block` subscription full with a
 * message from A's publisher P: B records (A, P) as a waiter and sends BLOCK; A
 * stops reading P. When the subscription drains, goes or its subscriber closes,
 * B sends UNBLOCK; A resumes P. When P closes first, A sends FORGET and B
 * drops the waiter (so the stall timeout does not close a subscriber for
 * a publisher that is gone).
 *
 * A subscription is named in queues by pointer: once out of every index
 * (interest.h) no loop can name it in a new item, so its owner frees it
 * after its next full drain of every queue (the graveyard). Publishers
 * are named by connection id, looked up on their own loop.
 */
#ifndef TERND_HANDOFF_H
#define TERND_HANDOFF_H

#include <stdbool.h>
#include <stdint.h>

#include "delivery/sub.h"
#include "delivery/worker.h"

enum {
  HANDOFF_MSG = 1,   /* body for s, from publisher conn_id (0: the server) */
  HANDOFF_BLOCK,     /* s blocks conn_id (to the publisher's loop) */
  HANDOFF_UNBLOCK,   /* s no longer blocks conn_id (to the publisher's loop) */
  HANDOFF_FORGET,    /* conn_id closed: not a waiter of s (to s's loop) */
  HANDOFF_WAIT,      /* conn_id stopped for s: unblock it when s drains */
  HANDOFF_FENCE,     /* conn_id sent PING: answer once everything before it
                        is taken (to each loop it handed messages to) */
  HANDOFF_FENCE_ACK, /* ... taken (to the publisher's loop) */
  HANDOFF_ERR,       /* ERR 13 to conn_id, its text in body (to its loop): a
                        stream refused what it published on another loop */
  HANDOFF_LOST       /* messages for s may have been lost upstream (a
                        route went down): DROPPED to s (to s's loop) */
};

/* A MSG's head beside its body, as counted against max_bytes (about). */
#define HANDOFF_HEAD_BYTES 16

struct handoff_item {
  uint8_t kind;
  uint8_t from;                  /* the sending loop */
  uint32_t reply_off, reply_len; /* the reply topic's bytes in body */
  sub_t *s;
  struct msgbuf *body;
  uint64_t conn_id;
};

/* What a loop does with what it takes (set by the server). */
typedef struct handoff_ops {
  void (*msg)(worker_t *w, const handoff_item_t *it);
  void (*block)(worker_t *w, const handoff_item_t *it);
  void (*unblock)(worker_t *w, const handoff_item_t *it);
  void (*forget)(worker_t *w, const handoff_item_t *it);
  void (*wait)(worker_t *w, const handoff_item_t *it);
  void (*fence_ack)(worker_t *w, const handoff_item_t *it);
  void (*err)(worker_t *w, const handoff_item_t *it);
  void (*lost)(worker_t *w, const handoff_item_t *it);
} handoff_ops_t;

/* w's queues to every other loop and its wake-up handle (on w's loop),
 * with wake_cb the async callback. 0 or TP_ENOMEM. */
int handoff_init(worker_t *w, uv_async_cb wake_cb);
/* After every thread stopped: drops what is left in w's queues and frees
 * them. Every loop's handoff_drop_all before any handoff_free. */
void handoff_drop_all(worker_t *w);
void handoff_free(worker_t *w);

/* sub_env_t.hand_over for every loop. */
bool handoff_hand_over(worker_t *from, sub_t *s, struct endpoint *publisher,
                       struct msgbuf *body, const tp_str_t *reply);
/* sub_env_t.unblock_remote. */
void handoff_unblock_remote(sub_t *s, int wid, uint64_t conn_id);
/* A control notice from w to loop `to`. */
void handoff_notice(worker_t *w, int to, int kind, sub_t *s, uint64_t conn_id);

/* ERR 13 with text (NUL-terminated in a body of w's) to connection
 * conn_id of loop `to`. */
void handoff_err(worker_t *w, int to, uint64_t conn_id, const char *text);

/* Before w sleeps: makes the turn's items visible and wakes their loops;
 * drops the body references of what other loops are done with. */
void handoff_flush(worker_t *w);
/* Takes everything other loops made visible to w, then frees the
 * subscriptions retired before it started. */
void handoff_drain(worker_t *w, const handoff_ops_t *ops);
/* Several loops: s is out of every index; free it once that is safe. */
void handoff_bury(worker_t *w, sub_t *s);

#endif
