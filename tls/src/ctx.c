/*
 * A TLS context: a listener's or a client's configuration as an SSL_CTX
 * with the engine's policy (tern_tls/tls.h).
 */
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>

#include "tls_internal.h"

/* TLS 1.2's suites: forward secrecy and AEAD only (TLS 1.3's defaults
 * already are). */
#define TTLS_CIPHERS_12                                                        \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                 \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                 \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* TLS 1.3's, AES-128 first (as fast as any where the CPU has AES
 * instructions, the strength NIST asks for). */
#define TTLS_SUITES_13                                                         \
  "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

void ttls_ssl_reason(char *out, size_t cap, const char *prefix,
                     const char *fallback) {
  unsigned long e = ERR_get_error();
  char buf[256];
  if (e != 0)
    ERR_error_string_n(e, buf, sizeof buf);
  snprintf(out, cap, "%s%s", prefix, e != 0 ? buf : fallback);
  ERR_clear_error();
}

static int fail(ttls_ctx_t *c, char *err, size_t cap, const char *what,
                const char *file) {
  char prefix[512];
  snprintf(prefix, sizeof prefix, "%s%s%s: ", what, file ? " " : "",
           file ? file : "");
  if (err != NULL && cap > 0)
    ttls_ssl_reason(err, cap, prefix, "failed");
  else
    ERR_clear_error();
  ttls_ctx_unref(c);
  return TTLS_ECONFIG;
}

BIO_METHOD *ttls_out_method_new(void); /* conn.c */
BIO_METHOD *ttls_in_method_new(void);  /* conn.c */

int ttls_ctx_create(ttls_ctx_t **out, const ttls_ctx_opts_t *o, char *err,
                    size_t cap) {
  if (err != NULL && cap > 0)
    err[0] = '\0';
  if (o->server && (o->cert_file == NULL || o->key_file == NULL)) {
    if (err != NULL)
      snprintf(err, cap, "a TLS listener needs a certificate and a key");
    return TTLS_ECONFIG;
  }
  if ((o->cert_file == NULL) != (o->key_file == NULL)) {
    if (err != NULL)
      snprintf(err, cap,
               "a TLS certificate needs its key and a key its "
               "certificate");
    return TTLS_ECONFIG;
  }
  if (o->server && o->verify_peer && o->ca_file == NULL) {
    if (err != NULL)
      snprintf(err, cap, "checking client certificates needs a CA file");
    return TTLS_ECONFIG;
  }
  ERR_clear_error();
  ttls_ctx_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return TTLS_ENOMEM;
  atomic_init(&c->refs, 1);
  c->server = o->server;
  c->skip_verify = !o->server && o->insecure_skip_verify;
  c->out_method = ttls_out_method_new();
  c->in_method = ttls_in_method_new();
  c->ssl = SSL_CTX_new(o->server ? TLS_server_method() : TLS_client_method());
  if (c->ssl == NULL || c->out_method == NULL || c->in_method == NULL)
    return fail(c, err, cap, "TLS context", NULL);
  SSL_CTX *s = c->ssl;
  SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
  SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (SSL_CTX_set_ciphersuites(s, TTLS_SUITES_13) != 1 ||
      SSL_CTX_set_cipher_list(s, TTLS_CIPHERS_12) != 1)
    return fail(c, err, cap, "TLS cipher list", NULL);
  /* Writes never wait on a socket (memory BIOs); keep the buffers of an
   * idle connection small. */
  SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
  /* Whole records (several when they are there) per read from our input
   * buffer, rather than a header and then a body. */
  SSL_CTX_set_read_ahead(s, 1);
  if (o->cert_file != NULL) {
    if (SSL_CTX_use_certificate_chain_file(s, o->cert_file) != 1)
      return fail(c, err, cap, "TLS certificate", o->cert_file);
    if (SSL_CTX_use_PrivateKey_file(s, o->key_file, SSL_FILETYPE_PEM) != 1)
      return fail(c, err, cap, "TLS key", o->key_file);
    if (SSL_CTX_check_private_key(s) != 1)
      return fail(c, err, cap, "TLS key does not match the certificate",
                  o->key_file);
  }
  if (o->ca_file != NULL) {
    if (SSL_CTX_load_verify_locations(s, o->ca_file, NULL) != 1)
      return fail(c, err, cap, "TLS CA file", o->ca_file);
  } else if (!o->server && !c->skip_verify) {
    SSL_CTX_set_default_verify_paths(s);
  }
  if (o->server) {
    /* No resumption: no shared session cache between the loops, no
     * tickets to mint on every handshake (clients reconnect rarely). */
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(s, 0);
    SSL_CTX_set_options(s, SSL_OP_NO_TICKET);
    if (o->verify_peer) {
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
      if (names != NULL)
        SSL_CTX_set_client_CA_list(s, names);
      SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                         NULL);
    } else {
      SSL_CTX_set_verify(s, SSL_VERIFY_NONE, NULL);
    }
  } else {
    SSL_CTX_set_verify(s, c->skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                       NULL);
  }
  ERR_clear_error();
  *out = c;
  return 0;
}

ttls_ctx_t *ttls_ctx_ref(ttls_ctx_t *ctx) {
  atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
  return ctx;
}

void ttls_ctx_unref(ttls_ctx_t *ctx) {
  if (ctx == NULL ||
      atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
    return;
  SSL_CTX_free(ctx->ssl);
  if (ctx->out_method != NULL)
    BIO_meth_free(ctx->out_method);
  if (ctx->in_method != NULL)
    BIO_meth_free(ctx->in_method);
  free(ctx);
}

void ttls_ctx_subject(const ttls_ctx_t *ctx, char *out, size_t cap) {
  if (cap == 0)
    return;
  out[0] = '\0';
  X509 *x = SSL_CTX_get0_certificate((SSL_CTX *)ctx->ssl);
  if (x == NULL)
    return;
  BIO *b = BIO_new(BIO_s_mem());
  if (b == NULL)
    return;
  X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
  int n = BIO_read(b, out, (int)cap - 1);
  out[n > 0 ? n : 0] = '\0';
  BIO_free(b);
}
