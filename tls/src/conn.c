/*
 * One connection's TLS state on memory BIOs (tern_tls/tls.h).
 *
 * Input: a memory BIO the caller feeds. Output: a sink BIO of our own
 * that appends records to a buffer the caller reads in place
 * (pending_out) and consumes by count, so the ciphertext is copied once,
 * from OpenSSL's record into this buffer, and the caller writes it from
 * there (an OpenSSL memory BIO would copy again on the way out, and clear
 * its whole buffer on reset).
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tls_internal.h"

/* A record's plaintext at most (TLS 1.2 and 1.3). */
#define TTLS_RECORD 16384

typedef struct ttls_out {
  char *p;
  size_t off, len, cap; /* pending bytes are p[off..len) */
} ttls_out_t;

/* What was fed and not read yet: in[off..len). OpenSSL's memory BIO
 * would zero every byte it grows by and move what is left to the front
 * on every write; this moves only when the room at the end runs out. */
typedef struct ttls_in {
  char *p;
  size_t off, len, cap;
} ttls_in_t;

struct ttls_conn {
  SSL *ssl;
  BIO *rbio;
  ttls_ctx_t *ctx;
  ttls_in_t in;
  ttls_out_t out;
  bool done;
  char err[200];
};

static int out_create(BIO *b);

/* ---- the input BIO -------------------------------------------------- */

static int in_read(BIO *b, char *out, int outl) {
  ttls_in_t *in = BIO_get_data(b);
  size_t n = in->len - in->off;
  BIO_clear_retry_flags(b);
  if (n == 0) {
    BIO_set_retry_read(b);
    return -1;
  }
  if (n > (size_t)outl)
    n = (size_t)outl;
  memcpy(out, in->p + in->off, n);
  in->off += n;
  if (in->off == in->len)
    in->off = in->len = 0;
  return (int)n;
}

static long in_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)num;
  (void)ptr;
  ttls_in_t *in = BIO_get_data(b);
  switch (cmd) {
  case BIO_CTRL_PENDING:
    return (long)(in->len - in->off);
  case BIO_CTRL_FLUSH:
    return 1;
  default:
    return 0;
  }
}

static int in_feed(ttls_in_t *in, const void *bytes, size_t n) {
  if (in->len + n > in->cap && in->off > 0) {
    memmove(in->p, in->p + in->off, in->len - in->off);
    in->len -= in->off;
    in->off = 0;
  }
  if (in->len + n > in->cap) {
    size_t cap = in->cap ? in->cap : 16384;
    while (cap < in->len + n)
      cap *= 2;
    char *p = realloc(in->p, cap);
    if (p == NULL)
      return -1;
    in->p = p;
    in->cap = cap;
  }
  memcpy(in->p + in->len, bytes, n);
  in->len += n;
  return 0;
}

/* ---- the output BIO ------------------------------------------------- */

static int out_write(BIO *b, const char *data, int dlen) {
  ttls_out_t *o = BIO_get_data(b);
  size_t n = (size_t)dlen;
  if (o->off > 0 && o->off == o->len)
    o->off = o->len = 0;
  if (o->len + n > o->cap) {
    if (o->off > 0) { /* room at the front first */
      memmove(o->p, o->p + o->off, o->len - o->off);
      o->len -= o->off;
      o->off = 0;
    }
    if (o->len + n > o->cap) {
      size_t cap = o->cap ? o->cap : 4096;
      while (cap < o->len + n)
        cap *= 2;
      char *p = realloc(o->p, cap);
      if (p == NULL)
        return -1;
      o->p = p;
      o->cap = cap;
    }
  }
  memcpy(o->p + o->len, data, n);
  o->len += n;
  return dlen;
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1;
  case BIO_CTRL_PUSH:
  case BIO_CTRL_POP:
    return 0;
  default:
    return 0;
  }
}

static int out_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD *ttls_in_method_new(void);
BIO_METHOD *ttls_in_method_new(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                               "tern TLS input");
  if (m == NULL)
    return NULL;
  BIO_meth_set_read(m, in_read);
  BIO_meth_set_ctrl(m, in_ctrl);
  BIO_meth_set_create(m, out_create);
  return m;
}

BIO_METHOD *ttls_out_method_new(void);
BIO_METHOD *ttls_out_method_new(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                               "tern TLS output");
  if (m == NULL)
    return NULL;
  BIO_meth_set_write(m, out_write);
  BIO_meth_set_ctrl(m, out_ctrl);
  BIO_meth_set_create(m, out_create);
  return m;
}

/* ---- the connection ------------------------------------------------- */

static bool is_ip(const char *name) {
  unsigned char a[16];
  return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

int ttls_conn_create(ttls_conn_t **out, ttls_ctx_t *ctx,
                     const char *server_name) {
  ERR_clear_error();
  ttls_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return TTLS_ENOMEM;
  c->ssl = SSL_new(ctx->ssl);
  c->rbio = BIO_new(ctx->in_method);
  BIO *wbio = BIO_new(ctx->out_method);
  if (c->ssl == NULL || c->rbio == NULL || wbio == NULL) {
    BIO_free(c->rbio);
    BIO_free(wbio);
    SSL_free(c->ssl);
    free(c);
    ERR_clear_error();
    return TTLS_ENOMEM;
  }
  BIO_set_data(c->rbio, &c->in);
  BIO_set_data(wbio, &c->out);
  SSL_set_bio(c->ssl, c->rbio, wbio); /* the SSL owns both now */
  c->ctx = ttls_ctx_ref(ctx);
  if (ctx->server) {
    SSL_set_accept_state(c->ssl);
  } else {
    SSL_set_connect_state(c->ssl);
    if (server_name != NULL && !ctx->skip_verify) {
      int ok;
      if (is_ip(server_name)) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), server_name);
      } else {
        ok = SSL_set_tlsext_host_name(c->ssl, server_name) == 1 &&
             SSL_set1_host(c->ssl, server_name) == 1;
      }
      if (!ok) {
        ttls_conn_destroy(c);
        ERR_clear_error();
        return TTLS_EINVAL;
      }
    } else if (server_name != NULL && !is_ip(server_name)) {
      SSL_set_tlsext_host_name(c->ssl, server_name);
    }
  }
  *out = c;
  return 0;
}

void ttls_conn_destroy(ttls_conn_t *c) {
  if (c == NULL)
    return;
  SSL_free(c->ssl); /* and its BIOs */
  free(c->in.p);
  free(c->out.p);
  ttls_ctx_unref(c->ctx);
  free(c);
}

int ttls_conn_feed(ttls_conn_t *c, const void *bytes, size_t len) {
  return in_feed(&c->in, bytes, len) == 0 ? 0 : TTLS_ENOMEM;
}

/* The first bytes of what the peer sent, when they plainly were no TLS
 * record: OpenSSL's reasons for a record that is not one. */
static bool not_tls_reason(unsigned long e) {
  int r = ERR_GET_REASON(e);
  return r == SSL_R_WRONG_VERSION_NUMBER || r == SSL_R_HTTP_REQUEST ||
         r == SSL_R_HTTPS_PROXY_REQUEST || r == SSL_R_PACKET_LENGTH_TOO_LONG ||
         r == SSL_R_UNKNOWN_PROTOCOL || r == SSL_R_RECORD_LENGTH_MISMATCH;
}

/* Turns a failed SSL call into an engine error (and a reason). */
static int failed(ttls_conn_t *c, int ret, const char *what) {
  int e = SSL_get_error(c->ssl, ret);
  switch (e) {
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_WRITE:
    return TTLS_EAGAIN;
  case SSL_ERROR_ZERO_RETURN:
    snprintf(c->err, sizeof c->err, "the peer closed the TLS session");
    return TTLS_ECLOSED;
  default:
    break;
  }
  long vr = SSL_get_verify_result(c->ssl);
  unsigned long first = ERR_peek_error();
  if (!c->done && vr != X509_V_OK) {
    snprintf(c->err, sizeof c->err, "%s: certificate verify failed: %s", what,
             X509_verify_cert_error_string(vr));
    ERR_clear_error();
    return TTLS_EVERIFY;
  }
  if (first != 0 && ERR_GET_LIB(first) == ERR_LIB_SSL && !c->done &&
      not_tls_reason(first)) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s: not TLS: ", what);
    ttls_ssl_reason(c->err, sizeof c->err, prefix, "");
    return TTLS_ENOTTLS;
  }
  char prefix[64];
  snprintf(prefix, sizeof prefix, "%s: ", what);
  ttls_ssl_reason(c->err, sizeof c->err, prefix,
                  e == SSL_ERROR_SYSCALL ? "unexpected end" : "failed");
  return c->done ? TTLS_EPROTO : TTLS_EHANDSHAKE;
}

int ttls_conn_handshake(ttls_conn_t *c) {
  if (c->done)
    return 0;
  ERR_clear_error();
  int ret = SSL_do_handshake(c->ssl);
  if (ret == 1) {
    c->done = true;
    return 0;
  }
  return failed(c, ret, "TLS handshake");
}

bool ttls_conn_handshake_done(const ttls_conn_t *c) {
  return c->done;
}

int ttls_conn_read(ttls_conn_t *c, void *buf, size_t cap) {
  if (cap == 0)
    return TTLS_EINVAL;
  if (cap > INT32_MAX)
    cap = INT32_MAX;
  ERR_clear_error();
  size_t n = 0;
  int ret = SSL_read_ex(c->ssl, buf, cap, &n);
  if (ret == 1) {
    c->done = true;
    return (int)n;
  }
  return failed(c, ret, c->done ? "TLS read" : "TLS handshake");
}

bool ttls_conn_has_plaintext(ttls_conn_t *c) {
  return SSL_has_pending(c->ssl) == 1;
}

size_t ttls_conn_pending_in(ttls_conn_t *c) {
  /* With read-ahead a record may wait undecrypted inside the SSL. */
  size_t n = (c->in.len - c->in.off) + (size_t)SSL_pending(c->ssl);
  return n == 0 && SSL_has_pending(c->ssl) ? 1 : n;
}

static int write_all(ttls_conn_t *c, const void *p, size_t len) {
  ERR_clear_error();
  size_t n = 0;
  int ret = SSL_write_ex(c->ssl, p, len, &n);
  if (ret == 1 && n == len)
    return 0;
  return failed(c, ret, "TLS write");
}

int ttls_conn_writev(ttls_conn_t *c, const uv_buf_t *bufs, unsigned n) {
  char stage[TTLS_RECORD];
  size_t sl = 0, total = 0;
  for (unsigned i = 0; i < n; i++) {
    const char *p = bufs[i].base;
    size_t len = bufs[i].len;
    total += len;
    while (len > 0) {
      if (sl == 0 && len >= TTLS_RECORD) { /* whole records from the buffer */
        size_t whole = len - len % TTLS_RECORD;
        int rc = write_all(c, p, whole);
        if (rc != 0)
          return rc;
        p += whole;
        len -= whole;
        continue;
      }
      size_t k = TTLS_RECORD - sl < len ? TTLS_RECORD - sl : len;
      memcpy(stage + sl, p, k);
      sl += k;
      p += k;
      len -= k;
      if (sl == TTLS_RECORD) {
        int rc = write_all(c, stage, sl);
        if (rc != 0)
          return rc;
        sl = 0;
      }
    }
  }
  if (sl > 0) {
    int rc = write_all(c, stage, sl);
    if (rc != 0)
      return rc;
  }
  return total > INT32_MAX ? INT32_MAX : (int)total;
}

void ttls_conn_shutdown(ttls_conn_t *c) {
  ERR_clear_error();
  if (c->done)
    SSL_shutdown(c->ssl);
  ERR_clear_error();
}

void ttls_conn_pending_out(ttls_conn_t *c, const char **bytes, size_t *len) {
  *bytes = c->out.p + c->out.off;
  *len = c->out.len - c->out.off;
}

void ttls_conn_consume_out(ttls_conn_t *c, size_t n) {
  c->out.off += n;
  if (c->out.off >= c->out.len)
    c->out.off = c->out.len = 0;
}

const char *ttls_conn_error(const ttls_conn_t *c) {
  return c->err;
}

const char *ttls_conn_version(const ttls_conn_t *c) {
  return SSL_get_version(c->ssl);
}

const char *ttls_conn_cipher(const ttls_conn_t *c) {
  return SSL_get_cipher_name(c->ssl);
}

bool ttls_conn_resumed(const ttls_conn_t *c) {
  return SSL_session_reused(c->ssl) == 1;
}

bool ttls_conn_peer_subject(const ttls_conn_t *c, char *out, size_t cap) {
  if (cap == 0)
    return false;
  out[0] = '\0';
  X509 *x = SSL_get0_peer_certificate(c->ssl);
  if (x == NULL)
    return false;
  BIO *b = BIO_new(BIO_s_mem());
  if (b == NULL)
    return false;
  X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
  int n = BIO_read(b, out, (int)cap - 1);
  out[n > 0 ? n : 0] = '\0';
  BIO_free(b);
  return true;
}

static bool san_matches(const GENERAL_NAME *g, const char *san) {
  const char *v;
  int type;
  if (strncasecmp(san, "DNS:", 4) == 0) {
    type = GEN_DNS;
    v = san + 4;
  } else if (strncasecmp(san, "URI:", 4) == 0) {
    type = GEN_URI;
    v = san + 4;
  } else if (strncasecmp(san, "email:", 6) == 0) {
    type = GEN_EMAIL;
    v = san + 6;
  } else if (strncasecmp(san, "IP:", 3) == 0) {
    type = GEN_IPADD;
    v = san + 3;
  } else {
    return false;
  }
  if (g->type != type)
    return false;
  if (type == GEN_IPADD) {
    unsigned char a[16];
    int len = inet_pton(AF_INET, v, a) == 1    ? 4
              : inet_pton(AF_INET6, v, a) == 1 ? 16
                                               : 0;
    return len > 0 && ASN1_STRING_length(g->d.ip) == len &&
           memcmp(ASN1_STRING_get0_data(g->d.ip), a, (size_t)len) == 0;
  }
  const ASN1_IA5STRING *s = g->d.ia5;
  size_t len = (size_t)ASN1_STRING_length(s);
  const char *d = (const char *)ASN1_STRING_get0_data(s);
  if (strlen(v) != len || memchr(d, '\0', len) != NULL)
    return false;
  return type == GEN_URI ? memcmp(d, v, len) == 0 : strncasecmp(d, v, len) == 0;
}

bool ttls_conn_peer_has_san(const ttls_conn_t *c, const char *san) {
  X509 *x = SSL_get0_peer_certificate(c->ssl);
  if (x == NULL)
    return false;
  GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  bool found = false;
  for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++)
    if (san_matches(sk_GENERAL_NAME_value(names, i), san))
      found = true;
  GENERAL_NAMES_free(names);
  ERR_clear_error();
  return found;
}
