/*
 * A connection's transport: its bytes in and out, its one timer and its
 * close, behind a table of operations, so the session (session/conn.c)
 * never names a socket. Plain TCP (transport/tcp.c) is one
 * implementation, TLS (transport/tls.c: memory BIOs over it, on the same
 * loop) another, a stub in the tests a third.
 *
 * The owner registers its callbacks once (transport_set_owner) and the
 * transport calls up only through them:
 *   alloc         where the next read goes (the loop's shared read buffer)
 *   on_data       len bytes arrived in the buffer the last alloc gave
 *   on_error      the read ended: UV_EOF, a socket error, or UV_ENOBUFS
 *                 when alloc gave no buffer
 *   on_write_done the write started by `write` finished (status 0, or an
 *                 error, or UV_ECANCELED on close)
 *   on_timer      the timer fired
 *   on_closed     close finished; nothing calls back after it and the
 *                 transport is freed right after it returns
 */
#ifndef TERND_TRANSPORT_H
#define TERND_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct transport transport_t;
struct ttls_conn;

typedef struct transport_cbs {
  void (*alloc)(void *owner, uv_buf_t *buf);
  void (*on_data)(void *owner, size_t len);
  void (*on_error)(void *owner, int err);
  void (*on_write_done)(void *owner, int status);
  void (*on_timer)(void *owner);
  void (*on_closed)(void *owner);
} transport_cbs_t;

typedef struct transport_ops {
  /* Reading on or off (0 or a libuv error). */
  int (*start_read)(transport_t *t);
  void (*stop_read)(transport_t *t);
  /* Writes what it can of bufs now: the bytes taken (0 when none could
   * be) or a negative error. */
  int (*try_write)(transport_t *t, const uv_buf_t *bufs, unsigned n);
  /* Writes all of bufs, one request at a time; on_write_done tells when.
   * The buffers' bytes must stay valid until then. 0 or an error. */
  int (*write)(transport_t *t, const uv_buf_t *bufs, unsigned n);
  /* The one timer: due in ms, then every repeat ms (0: once). */
  void (*timer_start)(transport_t *t, uint64_t ms, uint64_t repeat);
  void (*timer_stop)(transport_t *t);
  /* Closes everything; on_closed follows (never from inside close). */
  void (*close)(transport_t *t);
  /* The peer's address. 0 or an error. */
  int (*peer)(transport_t *t, struct sockaddr_storage *ss);
  /* Bytes written that the peer has not acknowledged yet; 0 when there is
   * nothing worth waiting for (the connection cannot deliver any more). */
  size_t (*unacked)(transport_t *t);
  /* Is the peer still there (a close or reset shows even while nothing
   * is read)? True when it cannot tell. */
  bool (*connected)(transport_t *t);
  /* The connection's TLS session once its handshake is done (the peer's
   * certificate: tern_tls/tls.h); NULL for a transport without TLS. */
  struct ttls_conn *(*tls)(transport_t *t);
} transport_ops_t;

struct transport {
  const transport_ops_t *ops;
  const transport_cbs_t *cbs;
  void *owner;
};

static inline void
transport_set_owner(transport_t *t, const transport_cbs_t *cbs, void *owner) {
  t->cbs = cbs;
  t->owner = owner;
}

static inline int transport_start_read(transport_t *t) {
  return t->ops->start_read(t);
}
static inline void transport_stop_read(transport_t *t) {
  t->ops->stop_read(t);
}
static inline int transport_try_write(transport_t *t, const uv_buf_t *bufs,
                                      unsigned n) {
  return t->ops->try_write(t, bufs, n);
}
static inline int transport_write(transport_t *t, const uv_buf_t *bufs,
                                  unsigned n) {
  return t->ops->write(t, bufs, n);
}
static inline void transport_timer_start(transport_t *t, uint64_t ms,
                                         uint64_t repeat) {
  t->ops->timer_start(t, ms, repeat);
}
static inline void transport_timer_stop(transport_t *t) {
  t->ops->timer_stop(t);
}
static inline void transport_close(transport_t *t) {
  t->ops->close(t);
}
static inline int transport_peer(transport_t *t, struct sockaddr_storage *ss) {
  return t->ops->peer(t, ss);
}
static inline size_t transport_unacked(transport_t *t) {
  return t->ops->unacked(t);
}
static inline bool transport_connected(transport_t *t) {
  return t->ops->connected(t);
}

static inline struct ttls_conn *transport_tls(transport_t *t) {
  return t->ops->tls != NULL ? t->ops->tls(t) : NULL;
}

/* Formats ss as "ip:port" or "[ip6]:port" ("?" when neither). */
void transport_addr_name(const struct sockaddr_storage *ss, char *out,
                         size_t cap);

#endif
