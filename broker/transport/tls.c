/*
 * TLS as a transport (tls.h).
 */
#include "transport/tls.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"
#include "tern_tls/tls.h"
#include "transport/tcp.h"

struct tls_listener {
  uv_mutex_t lock; /* guards ctx and the policy against a reload */
  ttls_ctx_t *ctx;
  bool required;
  uint64_t detect_ms;
};

typedef enum {
  TLS_DETECT,    /* nothing from the client yet */
  TLS_HANDSHAKE, /* a ClientHello came */
  TLS_OPEN,      /* handshake done: records both ways */
  TLS_PLAIN,     /* a plaintext client: bytes pass through */
  TLS_DEAD       /* refused or failed: nothing more moves */
} tls_state_t;

typedef struct tls_transport {
  transport_t base;
  transport_t *inner; /* the TCP transport under it */
  uv_timer_t timer;   /* the detect window, then deferred reads */
  ttls_conn_t *tls;   /* NULL until a ClientHello */
  ttls_ctx_t *ctx;    /* the listener's when accepted */
  tls_state_t state;
  bool required;
  bool reading;       /* the owner wants data */
  bool inner_reading; /* the socket is read */
  bool closing;
  int handles_open;
  uint64_t detect_ms;
  /* Where the inner transport reads: the owner's buffer before TLS is
   * known, then the engine's input itself (no copy), rbuf_engine. */
  uv_buf_t rbuf;
  bool rbuf_engine;
  /* The owner's write, held until it is encrypted and sent (or, plain,
   * until the inner write is done). */
  bool user_write;
  bool user_encrypted;
  uv_buf_t *held;
  unsigned nheld;
  /* Ciphertext on its way to the socket (the inner write's bytes). */
  bool sock_writing;
  char *wbuf;
  size_t wlen, wcap;
} tls_transport_t;

static tls_transport_t *tls_of(transport_t *t) {
  return (tls_transport_t *)t;
}

static const char *peer_name(tls_transport_t *tt, char *buf, size_t cap) {
  struct sockaddr_storage ss;
  if (transport_peer(tt->inner, &ss) == 0)
    transport_addr_name(&ss, buf, cap);
  else
    snprintf(buf, cap, "?");
  return buf;
}

/* ---- writing ciphertext ---------------------------------------------- */

static void pump(tls_transport_t *tt);

static void finish_user_write(tls_transport_t *tt, int status) {
  if (!tt->user_write)
    return;
  tt->user_write = false;
  tt->user_encrypted = false;
  free(tt->held);
  tt->held = NULL;
  tt->nheld = 0;
  if (tt->base.cbs != NULL)
    tt->base.cbs->on_write_done(tt->base.owner, status);
}

/* Sends what the engine has for the socket: tried at once, the rest
 * copied out and handed to one write. 0 or an error. */
static int send_out(tls_transport_t *tt) {
  if (tt->sock_writing || tt->tls == NULL || tt->closing)
    return 0;
  const char *p;
  size_t len;
  ttls_conn_pending_out(tt->tls, &p, &len);
  if (len == 0)
    return 0;
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
  int n = transport_try_write(tt->inner, &b, 1);
  if (n < 0)
    return n;
  ttls_conn_consume_out(tt->tls, (size_t)n);
  len -= (size_t)n;
  if (len == 0)
    return 0;
  if (len > tt->wcap) {
    char *w = realloc(tt->wbuf, len);
    if (w == NULL)
      return UV_ENOMEM;
    tt->wbuf = w;
    tt->wcap = len;
  }
  memcpy(tt->wbuf, p + n, len);
  ttls_conn_consume_out(tt->tls, len);
  tt->wlen = len;
  b = uv_buf_init(tt->wbuf, (unsigned)len);
  int rc = transport_write(tt->inner, &b, 1);
  if (rc != 0)
    return rc;
  tt->sock_writing = true;
  return 0;
}

static void fail(tls_transport_t *tt, int err) {
  if (tt->state == TLS_DEAD)
    return;
  tt->state = TLS_DEAD;
  uv_timer_stop(&tt->timer);
  finish_user_write(tt, UV_ECANCELED);
  if (tt->base.cbs != NULL && !tt->closing)
    tt->base.cbs->on_error(tt->base.owner, err);
}

/* Encrypts the held write once the handshake is done, sends, and tells
 * the owner when its bytes reached the socket. */
static void pump(tls_transport_t *tt) {
  if (tt->state != TLS_OPEN && tt->state != TLS_HANDSHAKE)
    return;
  if (tt->state == TLS_OPEN && tt->user_write && !tt->user_encrypted) {
    int rc = ttls_conn_writev(tt->tls, tt->held, tt->nheld);
    if (rc < 0) {
      fail(tt, UV_EPROTO);
      return;
    }
    tt->user_encrypted = true;
  }
  int rc = send_out(tt);
  if (rc < 0) {
    finish_user_write(tt, rc);
    return;
  }
  if (tt->user_write && tt->user_encrypted && !tt->sock_writing)
    finish_user_write(tt, 0);
}

static int tls_try_write(transport_t *t, const uv_buf_t *bufs, unsigned n) {
  tls_transport_t *tt = tls_of(t);
  if (tt->state == TLS_PLAIN)
    return transport_try_write(tt->inner, bufs, n);
  if (tt->state == TLS_DEAD)
    return UV_EPIPE;
  if (tt->state != TLS_OPEN || tt->sock_writing || tt->user_write)
    return 0;
  int rc = ttls_conn_writev(tt->tls, bufs, n);
  if (rc < 0)
    return UV_EPROTO;
  /* All taken: what the socket does not take now waits here, at most
   * one flush's worth (the next flush is held while it does). */
  int s = send_out(tt);
  return s < 0 ? s : rc;
}

static int tls_write(transport_t *t, const uv_buf_t *bufs, unsigned n) {
  tls_transport_t *tt = tls_of(t);
  if (tt->state == TLS_PLAIN)
    return transport_write(tt->inner, bufs, n);
  if (tt->state == TLS_DEAD || tt->user_write)
    return UV_EPIPE;
  uv_buf_t *h = malloc((n ? n : 1) * sizeof *h);
  if (h == NULL)
    return UV_ENOMEM;
  memcpy(h, bufs, n * sizeof *h);
  tt->held = h;
  tt->nheld = n;
  tt->user_write = true;
  tt->user_encrypted = false;
  pump(tt);
  return 0;
}

/* ---- reading --------------------------------------------------------- */

/* Hands the owner the plaintext the engine has, while it reads. */
static void deliver(tls_transport_t *tt) {
  while (tt->reading && tt->state == TLS_OPEN && !tt->closing) {
    uv_buf_t b = uv_buf_init(NULL, 0);
    tt->base.cbs->alloc(tt->base.owner, &b);
    if (b.base == NULL || b.len == 0) {
      tt->base.cbs->on_error(tt->base.owner, UV_ENOBUFS);
      return;
    }
    int n = ttls_conn_read(tt->tls, b.base, b.len);
    if (n > 0) {
      tt->base.cbs->on_data(tt->base.owner, (size_t)n);
      continue;
    }
    if (n == TTLS_EAGAIN) {
      /* Drained: now the socket again (see tls_start_read). */
      if (!tt->inner_reading) {
        int rc = transport_start_read(tt->inner);
        if (rc != 0) {
          tt->base.cbs->on_error(tt->base.owner, rc);
          return;
        }
        tt->inner_reading = true;
      }
      break;
    }
    if (n == TTLS_ECLOSED) {
      if (log_g_level >= LOG_DEBUG) {
        char who[64];
        LOG(LOG_DEBUG, "%s: TLS close_notify from the peer",
            peer_name(tt, who, sizeof who));
      }
      tt->base.cbs->on_error(tt->base.owner, UV_EOF);
      return;
    }
    char who[64];
    LOG(LOG_WARN, "%s: %s", peer_name(tt, who, sizeof who),
        ttls_conn_error(tt->tls));
    send_out(tt);
    fail(tt, UV_EPROTO);
    return;
  }
  pump(tt); /* a read may have something to answer (a key update) */
}

static void handshake(tls_transport_t *tt) {
  int rc = ttls_conn_handshake(tt->tls);
  if (rc == TTLS_EAGAIN) {
    pump(tt);
    return;
  }
  if (rc != 0) {
    char who[64];
    LOG(LOG_WARN, "%s: %s", peer_name(tt, who, sizeof who),
        ttls_conn_error(tt->tls));
    send_out(tt); /* the alert */
    fail(tt, UV_ECONNABORTED);
    return;
  }
  tt->state = TLS_OPEN;
  if (log_g_level >= LOG_DEBUG) {
    char who[64];
    LOG(LOG_DEBUG, "%s: TLS handshake done: %s %s%s",
        peer_name(tt, who, sizeof who), ttls_conn_version(tt->tls),
        ttls_conn_cipher(tt->tls),
        ttls_conn_resumed(tt->tls) ? " (resumed)" : "");
  }
  pump(tt);
  deliver(tt);
}

/* Plaintext refused: ERR 1 on the socket in the clear, then the owner
 * hears the connection ended (and closes once the ERR is delivered). */
static void refuse_plain(tls_transport_t *tt) {
  static const char msg[] = "TLS required: this port accepts only TLS "
                            "clients (use tls://)";
  tp_buf_t out;
  tp_buf_init(&out);
  tp_frame_t f;
  tp_frame_init(&f, TP_ERR);
  f.u.err.code = TP_WIRE_PROTOCOL;
  f.u.err.message.ptr = msg;
  f.u.err.message.len = (uint32_t)(sizeof msg - 1);
  if (tp_frame_encode(&out, &f) == 0) {
    uv_buf_t b = uv_buf_init((char *)out.data, (unsigned)out.len);
    transport_try_write(tt->inner, &b, 1); /* fits an empty socket */
  }
  tp_buf_free(&out);
  char who[64];
  LOG(LOG_WARN, "%s: plaintext client refused: TLS required",
      peer_name(tt, who, sizeof who));
  fail(tt, UV_ECONNABORTED);
}

/* The client is plaintext: what the owner wrote so far goes out as is. */
static void go_plain(tls_transport_t *tt) {
  tt->state = TLS_PLAIN;
  uv_timer_stop(&tt->timer);
  if (tt->user_write) {
    uv_buf_t *h = tt->held;
    unsigned n = tt->nheld;
    tt->held = NULL;
    tt->user_write = false;
    int rc = transport_write(tt->inner, h, n);
    free(h); /* the inner write copies the array, not the bytes */
    if (rc != 0 && tt->base.cbs != NULL)
      tt->base.cbs->on_write_done(tt->base.owner, rc);
  }
}

static void start_tls(tls_transport_t *tt) {
  int rc = ttls_conn_create(&tt->tls, tt->ctx, NULL);
  if (rc != 0) {
    fail(tt, UV_ENOMEM);
    return;
  }
  tt->state = TLS_HANDSHAKE;
  uv_timer_stop(&tt->timer);
}

/* Ciphertext is read straight into the engine, at least this much room
 * (a whole record and its header) per read. */
#define TLS_READ_MIN (16u * 1024u + 512u)

static void on_inner_alloc(void *owner, uv_buf_t *buf) {
  tls_transport_t *tt = owner;
  char *p;
  size_t n;
  if ((tt->state == TLS_HANDSHAKE || tt->state == TLS_OPEN) &&
      tt->tls != NULL &&
      ttls_conn_feed_space(tt->tls, TLS_READ_MIN, &p, &n) == 0) {
    *buf = uv_buf_init(p, n > UINT32_MAX ? UINT32_MAX : (unsigned)n);
    tt->rbuf = *buf;
    tt->rbuf_engine = true;
    return;
  }
  tt->base.cbs->alloc(tt->base.owner, buf);
  tt->rbuf = *buf;
  tt->rbuf_engine = false;
}

static void on_inner_data(void *owner, size_t len) {
  tls_transport_t *tt = owner;
  if (tt->state == TLS_DETECT) {
    if (ttls_looks_like_tls(tt->rbuf.base, len)) {
      start_tls(tt);
    } else if (tt->required) {
      refuse_plain(tt);
      return;
    } else {
      go_plain(tt);
    }
  }
  switch (tt->state) {
  case TLS_PLAIN:
    tt->base.cbs->on_data(tt->base.owner, len);
    return;
  case TLS_HANDSHAKE:
  case TLS_OPEN:
    if (tt->rbuf_engine) {
      ttls_conn_feed_commit(tt->tls, len);
    } else if (ttls_conn_feed(tt->tls, tt->rbuf.base, len) != 0) {
      fail(tt, UV_ENOMEM);
      return;
    }
    if (tt->state == TLS_HANDSHAKE)
      handshake(tt);
    else
      deliver(tt);
    return;
  default:
    return;
  }
}

static void on_inner_error(void *owner, int err) {
  tls_transport_t *tt = owner;
  if (tt->closing)
    return;
  if (tt->state == TLS_DETECT || tt->state == TLS_HANDSHAKE) {
    /* Gone before anything was said: nothing to hold any more. */
    tt->state = TLS_DEAD;
    uv_timer_stop(&tt->timer);
    finish_user_write(tt, UV_ECANCELED);
  }
  tt->base.cbs->on_error(tt->base.owner, err);
}

static void on_inner_write_done(void *owner, int status) {
  tls_transport_t *tt = owner;
  if (tt->state == TLS_PLAIN) {
    tt->base.cbs->on_write_done(tt->base.owner, status);
    return;
  }
  tt->sock_writing = false;
  tt->wlen = 0;
  if (status != 0) {
    finish_user_write(tt, status);
    return;
  }
  pump(tt);
}

static void on_inner_timer(void *owner) {
  tls_transport_t *tt = owner;
  if (tt->state == TLS_DETECT || tt->state == TLS_HANDSHAKE) {
    /* The connect timeout before the handshake was done: the session's
     * ERR cannot be sent, the connection just ends. */
    char who[64];
    LOG(LOG_WARN, "%s: %s", peer_name(tt, who, sizeof who),
        tt->state == TLS_DETECT
            ? "nothing sent within the connect timeout"
            : "TLS handshake not done within the connect timeout");
    tt->state = TLS_DEAD;
    uv_timer_stop(&tt->timer);
    finish_user_write(tt, UV_ECANCELED);
  }
  tt->base.cbs->on_timer(tt->base.owner);
}

static void maybe_free(tls_transport_t *tt) {
  if (--tt->handles_open > 0)
    return;
  finish_user_write(tt, UV_ECANCELED);
  if (tt->base.cbs != NULL)
    tt->base.cbs->on_closed(tt->base.owner);
  ttls_conn_destroy(tt->tls);
  ttls_ctx_unref(tt->ctx);
  free(tt->wbuf);
  free(tt);
}

static void on_inner_closed(void *owner) {
  maybe_free(owner);
}

static void on_timer_closed(uv_handle_t *h) {
  maybe_free(h->data);
}

static const transport_cbs_t inner_cbs = {
    .alloc = on_inner_alloc,
    .on_data = on_inner_data,
    .on_error = on_inner_error,
    .on_write_done = on_inner_write_done,
    .on_timer = on_inner_timer,
    .on_closed = on_inner_closed,
};

/* The detect window passed in silence, or reads resume with plaintext
 * already decrypted. */
static void on_timer(uv_timer_t *h) {
  tls_transport_t *tt = h->data;
  if (tt->state == TLS_DETECT) {
    if (tt->required)
      refuse_plain(tt);
    else
      go_plain(tt);
  } else if (tt->state == TLS_OPEN) {
    deliver(tt);
  }
}

/* ---- the rest of transport_ops_t -------------------------------------- */

static int tls_start_read(transport_t *t) {
  tls_transport_t *tt = tls_of(t);
  tt->reading = true;
  /* Records already in the engine arrive with no socket event; the socket
   * is read again only once they are delivered, so what the owner has not
   * taken yet never grows past one read (a publisher the session holds
   * back stays held back in its socket, as over TCP, not in the engine). */
  if (tt->state == TLS_OPEN && tt->tls != NULL &&
      ttls_conn_pending_in(tt->tls) > 0) {
    uv_timer_start(&tt->timer, on_timer, 0, 0);
    return 0;
  }
  if (tt->state == TLS_OPEN)
    uv_timer_start(&tt->timer, on_timer, 0, 0);
  if (tt->inner_reading)
    return 0;
  int rc = transport_start_read(tt->inner);
  tt->inner_reading = rc == 0;
  return rc;
}

static void tls_stop_read(transport_t *t) {
  tls_transport_t *tt = tls_of(t);
  tt->reading = false;
  if (tt->state == TLS_OPEN)
    uv_timer_stop(&tt->timer);
  tt->inner_reading = false;
  transport_stop_read(tt->inner);
}

static void tls_timer_start(transport_t *t, uint64_t ms, uint64_t repeat) {
  transport_timer_start(tls_of(t)->inner, ms, repeat);
}

static void tls_timer_stop(transport_t *t) {
  transport_timer_stop(tls_of(t)->inner);
}

static void tls_close(transport_t *t) {
  tls_transport_t *tt = tls_of(t);
  if (tt->closing)
    return;
  if (tt->state == TLS_OPEN) {
    ttls_conn_shutdown(tt->tls); /* close_notify, if the socket takes it */
    send_out(tt);
  }
  tt->closing = true;
  uv_close((uv_handle_t *)&tt->timer, on_timer_closed);
  transport_close(tt->inner);
}

static int tls_peer(transport_t *t, struct sockaddr_storage *ss) {
  return transport_peer(tls_of(t)->inner, ss);
}

static size_t tls_unacked(transport_t *t) {
  tls_transport_t *tt = tls_of(t);
  size_t n = transport_unacked(tt->inner);
  if (n == 0 && !transport_connected(tt->inner))
    return 0;
  if (tt->tls != NULL) {
    const char *p;
    size_t len;
    ttls_conn_pending_out(tt->tls, &p, &len);
    n += len;
  }
  return n + tt->wlen;
}

static bool tls_connected(transport_t *t) {
  return transport_connected(tls_of(t)->inner);
}

static struct ttls_conn *tls_session(transport_t *t) {
  tls_transport_t *tt = tls_of(t);
  return tt->state == TLS_OPEN ? tt->tls : NULL;
}

static const transport_ops_t tls_ops = {
    .start_read = tls_start_read,
    .stop_read = tls_stop_read,
    .try_write = tls_try_write,
    .write = tls_write,
    .timer_start = tls_timer_start,
    .timer_stop = tls_timer_stop,
    .close = tls_close,
    .peer = tls_peer,
    .unacked = tls_unacked,
    .connected = tls_connected,
    .tls = tls_session,
};

bool tls_transport_info(transport_t *t, tls_info_t *out) {
  struct ttls_conn *s = t != NULL ? transport_tls(t) : NULL;
  if (s == NULL)
    return false;
  out->version = ttls_conn_version(s);
  out->cipher = ttls_conn_cipher(s);
  out->resumed = ttls_conn_resumed(s);
  ttls_conn_peer_subject(s, out->client_subject, sizeof out->client_subject);
  return true;
}

int tls_transport_open(uv_loop_t *loop, int fd, tls_listener_t *l,
                       transport_t **out) {
  tls_transport_t *tt = calloc(1, sizeof *tt);
  if (tt == NULL) {
    close(fd);
    return UV_ENOMEM;
  }
  int rc = tcp_transport_open(loop, fd, &tt->inner);
  if (rc != 0) {
    free(tt);
    return rc;
  }
  tt->base.ops = &tls_ops;
  tcp_transport_carries_tls(tt->inner);
  uv_mutex_lock(&l->lock);
  tt->ctx = ttls_ctx_ref(l->ctx);
  tt->required = l->required;
  tt->detect_ms = l->detect_ms;
  uv_mutex_unlock(&l->lock);
  transport_set_owner(tt->inner, &inner_cbs, tt);
  uv_timer_init(loop, &tt->timer);
  tt->timer.data = tt;
  tt->handles_open = 2; /* the timer and the inner transport */
  tt->state = TLS_DETECT;
  uv_timer_start(&tt->timer, on_timer, tt->detect_ms, 0);
  *out = &tt->base;
  return 0;
}

/* ---- the client side ------------------------------------------------- */

struct tls_dialer {
  ttls_ctx_t *ctx;
};

int tls_dialer_create(tls_dialer_t **out, const char *cert_file,
                      const char *key_file, const char *ca_file, char *err,
                      size_t cap) {
  tls_dialer_t *d = calloc(1, sizeof *d);
  if (d == NULL)
    return UV_ENOMEM;
  ttls_ctx_opts_t co = {
      .server = false,
      .cert_file = cert_file,
      .key_file = key_file,
      .ca_file = ca_file,
  };
  int rc = ttls_ctx_create(&d->ctx, &co, err, cap);
  if (rc != 0) {
    free(d);
    return rc;
  }
  *out = d;
  return 0;
}

void tls_dialer_destroy(tls_dialer_t *d) {
  if (d == NULL)
    return;
  ttls_ctx_unref(d->ctx);
  free(d);
}

int tls_transport_dial(uv_loop_t *loop, int fd, tls_dialer_t *d,
                       const char *server_name, transport_t **out) {
  tls_transport_t *tt = calloc(1, sizeof *tt);
  if (tt == NULL) {
    close(fd);
    return UV_ENOMEM;
  }
  int rc = tcp_transport_open(loop, fd, &tt->inner);
  if (rc != 0) {
    free(tt);
    return rc;
  }
  tt->base.ops = &tls_ops;
  tcp_transport_carries_tls(tt->inner);
  tt->ctx = ttls_ctx_ref(d->ctx);
  tt->required = true;
  transport_set_owner(tt->inner, &inner_cbs, tt);
  uv_timer_init(loop, &tt->timer);
  tt->timer.data = tt;
  tt->handles_open = 2;
  if (ttls_conn_create(&tt->tls, tt->ctx, server_name) != 0) {
    tt->state = TLS_DEAD;
    tt->closing = true;
    uv_close((uv_handle_t *)&tt->timer, on_timer_closed);
    transport_close(tt->inner);
    return UV_ENOMEM;
  }
  tt->state = TLS_HANDSHAKE;
  handshake(tt); /* the ClientHello */
  *out = &tt->base;
  return 0;
}

/* ---- the listener ---------------------------------------------------- */

static int make_ctx(const tls_listener_opts_t *o, ttls_ctx_t **out, char *err,
                    size_t cap) {
  ttls_ctx_opts_t co = {
      .server = true,
      .cert_file = o->cert_file,
      .key_file = o->key_file,
      .ca_file = o->ca_file,
      .verify_peer = o->verify,
      .ciphers = o->ciphers,
      .ciphersuites = o->ciphersuites,
  };
  return ttls_ctx_create(out, &co, err, cap);
}

int tls_listener_create(tls_listener_t **out, const tls_listener_opts_t *o,
                        char *err, size_t cap) {
  tls_listener_t *l = calloc(1, sizeof *l);
  if (l == NULL)
    return UV_ENOMEM;
  int rc = make_ctx(o, &l->ctx, err, cap);
  if (rc != 0) {
    free(l);
    return rc;
  }
  uv_mutex_init(&l->lock);
  l->required = o->required;
  l->detect_ms = o->detect_ms;
  *out = l;
  return 0;
}

int tls_listener_reload(tls_listener_t *l, const tls_listener_opts_t *o,
                        char *err, size_t cap) {
  ttls_ctx_t *next;
  int rc = make_ctx(o, &next, err, cap);
  if (rc != 0)
    return rc;
  uv_mutex_lock(&l->lock);
  ttls_ctx_t *old = l->ctx;
  l->ctx = next;
  l->required = o->required;
  l->detect_ms = o->detect_ms;
  uv_mutex_unlock(&l->lock);
  ttls_ctx_unref(old); /* open connections hold their own reference */
  return 0;
}

void tls_listener_subject(tls_listener_t *l, char *out, size_t cap) {
  uv_mutex_lock(&l->lock);
  ttls_ctx_subject(l->ctx, out, cap);
  uv_mutex_unlock(&l->lock);
}

void tls_listener_destroy(tls_listener_t *l) {
  if (l == NULL)
    return;
  ttls_ctx_unref(l->ctx);
  uv_mutex_destroy(&l->lock);
  free(l);
}
