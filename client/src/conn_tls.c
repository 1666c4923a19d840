/*
 * TLS under a connection (the engine of tern_tls/tls.h, on the
 * connection's loop). Per connect attempt: a ClientHello when TCP
 * connects, ciphertext in from the socket and plaintext out into the frame
 * reader, the outbound batch encrypted in one go (packed into full
 * records) when conn_write.c hands it to the socket. What the engine has
 * to say on its own (handshake, alerts) goes out in a write of its own;
 * the order of records is kept because every write takes all the
 * ciphertext there is, in the order the writes are started.
 *
 * Nothing here blocks: the handshake advances as bytes arrive, and the
 * connect deadline bounds it as it bounds the rest of the connect.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "tern_tls/tls.h"

#define TLS_READ_BUF (64u * 1024u)

static int make_ctx(tern_conn_t *c) {
  char why[TERN__ERRTEXT_MAX];
  ttls_ctx_opts_t o = {
      .server = false,
      .cert_file = c->opts.o.tls_cert_file,
      .key_file = c->opts.o.tls_key_file,
      .ca_file = c->opts.o.tls_ca_file,
      .insecure_skip_verify = c->opts.o.tls_insecure_skip_verify,
  };
  if (c->tls_ctx != NULL) {
    return 0;
  }
  if (ttls_ctx_create(&c->tls_ctx, &o, why, sizeof(why)) != 0) {
    tern__conn_set_error(c, why, strlen(why));
    return TERN_ETLS;
  }
  return 0;
}

/* Sends what the engine has for the socket when no engine write is on its
 * way (the one on its way sends the rest when it is done). */
static void send_ctl(tern_conn_t *c);

static void on_ctl_written(uv_write_t *req, int status) {
  tern_conn_t *c = req->handle->data;
  c->tls_ctl_writing = false;
  tp_buf_reset(&c->tls_ctl);
  if (status < 0 || c->tls == NULL) {
    return; /* the read side sees the broken stream */
  }
  send_ctl(c);
}

static void send_ctl(tern_conn_t *c) {
  const char *p;
  size_t len;
  uv_buf_t b;
  if (c->tls == NULL || c->tls_ctl_writing || !c->tcp_connected ||
      c->handles_closing) {
    return;
  }
  ttls_conn_pending_out(c->tls, &p, &len);
  if (len == 0) {
    return;
  }
  if (tp_buf_append(&c->tls_ctl, p, len) != 0) {
    return;
  }
  ttls_conn_consume_out(c->tls, len);
  b = uv_buf_init((char *)c->tls_ctl.data, (unsigned int)c->tls_ctl.len);
  if (uv_write(&c->tls_ctl_req, (uv_stream_t *)&c->tcp, &b, 1,
               on_ctl_written) == 0) {
    c->tls_ctl_writing = true;
  } else {
    tp_buf_reset(&c->tls_ctl);
  }
}

int tern__tls_begin(tern_conn_t *c) {
  const tern__server_t *s = &c->servers[c->server_idx];
  const char *name;
  int rc;
  tern__tls_end(c);
  if (!s->tls) {
    return 0;
  }
  rc = make_ctx(c);
  if (rc != 0) {
    return rc;
  }
  name =
      c->opts.o.tls_server_name != NULL ? c->opts.o.tls_server_name : s->host;
  if (c->tls_rbuf == NULL && (c->tls_rbuf = malloc(TLS_READ_BUF)) == NULL) {
    return TERN_ENOMEM;
  }
  if (ttls_conn_create(&c->tls, c->tls_ctx, name) != 0) {
    tern__conn_set_error(c, "TLS: cannot start a session",
                         strlen("TLS: cannot start a session"));
    return TERN_ETLS;
  }
  rc = ttls_conn_handshake(c->tls); /* the ClientHello */
  if (rc != TTLS_EAGAIN && rc != 0) {
    tern__conn_set_error(c, ttls_conn_error(c->tls),
                         strlen(ttls_conn_error(c->tls)));
    return TERN_ETLS;
  }
  send_ctl(c);
  return 0;
}

void tern__tls_end(tern_conn_t *c) {
  ttls_conn_destroy(c->tls);
  c->tls = NULL;
  /* A write still on its way keeps its buffer until its callback. */
  if (!c->tls_ctl_writing) {
    tp_buf_reset(&c->tls_ctl);
  }
}

void tern__tls_free(tern_conn_t *c) {
  tern__tls_end(c);
  ttls_ctx_unref(c->tls_ctx);
  c->tls_ctx = NULL;
  tp_buf_free(&c->tls_ctl);
  tp_buf_free(&c->tls_data);
  free(c->tls_rbuf);
  c->tls_rbuf = NULL;
}

bool tern__tls_ready(const tern_conn_t *c) {
  return c->tls == NULL || ttls_conn_handshake_done(c->tls);
}

void tern__tls_read_buf(tern_conn_t *c, uv_buf_t *buf) {
  buf->base = c->tls_rbuf;
  buf->len = TLS_READ_BUF;
}

/* A failure of the session: the reason in words a user can act on. */
static void tls_failed(tern_conn_t *c, int rc) {
  char text[TERN__ERRTEXT_MAX];
  const char *why = ttls_conn_error(c->tls);
  if (rc == TTLS_ENOTTLS) {
    snprintf(text, sizeof(text),
             "TLS: the server did not answer in TLS (a plaintext port? "
             "use tern://): %s",
             why);
  } else if (rc == TTLS_ECLOSED) {
    snprintf(text, sizeof(text), "connection closed by the server");
  } else {
    snprintf(text, sizeof(text), "%s", why[0] ? why : ttls_strerror(rc));
  }
  tern__conn_set_error(c, text, strlen(text));
  send_ctl(c); /* an alert, if the engine has one */
  tern__conn_fail(c, rc == TTLS_ECLOSED ? TERN_ECLOSED : TERN_ETLS);
}

bool tern__tls_pull(tern_conn_t *c) {
  uint8_t *p;
  size_t n;
  bool got = false;
  while (c->tls != NULL && ttls_conn_handshake_done(c->tls) && !c->paused &&
         (c->state == TERN__HANDSHAKE || c->state == TERN__CONNECTED ||
          c->state == TERN__CLOSING)) {
    int rc;
    if (tp_reader_space(c->reader, &p, &n) != 0) {
      tern__conn_set_error(c, "out of memory", strlen("out of memory"));
      tern__conn_fail(c, TERN_ENOMEM);
      return got;
    }
    rc = ttls_conn_read(c->tls, p, n);
    if (rc > 0) {
      tp_reader_commit(c->reader, (size_t)rc);
      got = true;
      tern__conn_dispatch(c);
      continue;
    }
    if (rc == TTLS_EAGAIN) {
      break;
    }
    tls_failed(c, rc);
    return got;
  }
  send_ctl(c);
  return got;
}

void tern__tls_received(tern_conn_t *c, const char *bytes, size_t n) {
  int rc;
  if (ttls_conn_feed(c->tls, bytes, n) != 0) {
    tern__conn_set_error(c, "out of memory", strlen("out of memory"));
    tern__conn_fail(c, TERN_ENOMEM);
    return;
  }
  if (!ttls_conn_handshake_done(c->tls)) {
    rc = ttls_conn_handshake(c->tls);
    if (rc == TTLS_EAGAIN) {
      send_ctl(c);
      return;
    }
    if (rc != 0) {
      tls_failed(c, rc);
      return;
    }
    send_ctl(c);
    /* The batch (CONNECT comes after HELLO) may go now. */
  }
  tern__tls_pull(c);
}

int tern__tls_encrypt(tern_conn_t *c, const tp_buf_t *plain, uv_buf_t *out) {
  uv_buf_t in = uv_buf_init((char *)plain->data, (unsigned int)plain->len);
  const char *p;
  size_t len;
  int rc = ttls_conn_writev(c->tls, &in, 1);
  if (rc < 0) {
    return TERN_ETLS;
  }
  ttls_conn_pending_out(c->tls, &p, &len);
  tp_buf_reset(&c->tls_data);
  if (tp_buf_append(&c->tls_data, p, len) != 0) {
    return TERN_ENOMEM;
  }
  ttls_conn_consume_out(c->tls, len);
  *out = uv_buf_init((char *)c->tls_data.data, (unsigned int)c->tls_data.len);
  return 0;
}
