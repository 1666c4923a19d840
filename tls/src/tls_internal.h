/*
 * What the engine's files share (not installed).
 */
#ifndef TERN_TLS_INTERNAL_H
#define TERN_TLS_INTERNAL_H

#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <stdatomic.h>

#include "tern_tls/tls.h"

struct ttls_ctx {
  SSL_CTX *ssl;
  atomic_int refs;
  bool server;
  bool skip_verify;
  /* The output BIO's method (conn.c): one per context, so the engine has
   * no global; connections hold the context, so it outlives their BIOs. */
  BIO_METHOD *out_method;
  BIO_METHOD *in_method;
};

/* Writes OpenSSL's first queued error (or fallback) after prefix into
 * out, and empties the thread's error queue. */
void ttls_ssl_reason(char *out, size_t cap, const char *prefix,
                     const char *fallback);

#endif
