/*
 * An endpoint: the subscriber side of a connection as the delivery core
 * sees it. The session embeds one in each connection (session/conn.h) and
 * fills it in; the router reads its flags and links it into the loop's
 * flush list directly (that is the fan-out's path, so no call), and calls
 * through `ops` only for what is rare: closing a slow consumer, a control
 * frame (DROPPED), removing a subscription that reached UNSUB max_msgs,
 * noting a request for allow_responses. So the delivery core never names
 * the session, and another protocol's session can be an endpoint too.
 *
 * The output queue itself is the subscription's (sub_t.out, the owner's
 * queue), so a MSG is queued without going through the endpoint.
 */
#ifndef TERND_ENDPOINT_H
#define TERND_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/list.h"
#include "tern_proto/frame.h"

struct conn;
struct endpoint;
struct sub;

typedef struct endpoint_ops {
  /* Closes as a slow consumer (ERR 6 with msg): only marks it closing, so
   * it is safe in the middle of a fan-out. */
  void (*fail_slow)(struct endpoint *ep, const char *msg);
  /* Encodes f and queues it after everything queued. 0 or TP_ENOMEM. */
  int (*send_frame)(struct endpoint *ep, const tp_frame_t *f);
  /* s reached UNSUB max_msgs: remove it now (after the walk). */
  void (*remove_sub)(struct endpoint *ep, struct sub *s);
  /* A MSG with reply topic reply was queued (allow_responses). Called
   * only while notes_requests is set. */
  void (*note_request)(struct endpoint *ep, const char *reply, size_t len);
  /* Whether this endpoint, as a publisher, waits on any subscription. */
  bool (*is_blocked)(const struct endpoint *ep);
} endpoint_ops_t;

typedef struct endpoint {
  const endpoint_ops_t *ops;
  struct conn *owner;      /* the session's connection (sub_t.conn) */
  list_node_t *flush_list; /* the loop's endpoints with output to write */
  list_node_t flush_link;  /* in flush_list */
  bool active;             /* takes messages: logged in, not closing */
  bool echo;               /* gets its own messages */
  bool notes_requests;     /* call ops->note_request (allow_responses) */
  bool route;  /* a route to another node of the cluster: its subscriptions
                  are remote interest (never told to other routes, picked
                  after local members of a queue group) */
  uint64_t id; /* for log lines; names it to other loops */
  /* Several loops: the loops (a bit each) this endpoint's messages were
   * handed to since its last PING, whose PONG waits until they have taken
   * them (delivery/handoff.h). */
  uint64_t handed_to;
  const char *addr; /* "ip:port" of the peer, for log lines */
} endpoint_t;

/* ep has output to write this loop turn. Only for an open endpoint (the
 * router calls it for active ones). */
static inline void endpoint_want_flush(endpoint_t *ep) {
  if (!list_linked(&ep->flush_link))
    list_insert_tail(ep->flush_list, &ep->flush_link);
}

#endif
