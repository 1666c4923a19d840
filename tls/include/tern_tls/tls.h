/*
 * tern's TLS engine: OpenSSL 3 driven through memory BIOs, with no I/O of
 * its own, so the broker's transport (broker/transport/tls.c), libtern and
 * the load generator run it on their own libuv loops. The caller moves
 * bytes: what arrives from the socket goes in with ttls_conn_feed, what
 * ttls_conn_pending_out shows goes to the socket.
 *
 * Two objects, each opaque with a create and a destroy (an unref):
 *   ttls_ctx_t   what a listener or a client is configured with: its
 *              certificate and key, the CAs it trusts, whether it checks
 *              the peer (an SSL_CTX). Reference counted: a connection
 *              holds its context, so a reload swaps the listener's context
 *              while connections made with the old one keep it. Safe to
 *              use from several threads (SSL_CTX is).
 *   ttls_conn_t  one connection's TLS state (an SSL and its two BIOs). One
 *              thread at a time.
 *
 * Policy, the same on both sides: TLS 1.2 at least, 1.3 preferred (the
 * highest both speak), TLS 1.2 limited to ECDHE key exchange with AEAD
 * ciphers (AES-GCM, ChaCha20-Poly1305), no renegotiation, no compression.
 *
 * Errors: 0 or a count on success; a negative TTLS_E* on failure, in
 * -40001..-40999 (clear of libuv's, the protocol library's -10xxx,
 * libtern's -20xxx and the broker's -30xxx); ttls_strerror names them. A
 * failed handshake leaves a one-line reason in ttls_conn_error.
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define TTLS_ERR_FIRST (-40001)
#define TTLS_ERR_LAST (-40999)

/* X(NAME, value, message). */
#define TTLS_ERR_MAP(X)                                                        \
  X(TTLS_EAGAIN, -40001, "TLS needs more bytes from the peer")                 \
  X(TTLS_ENOMEM, -40002, "out of memory")                                      \
  X(TTLS_ECONFIG, -40003, "TLS configuration refused")                         \
  X(TTLS_EHANDSHAKE, -40004, "TLS handshake failed")                           \
  X(TTLS_EVERIFY, -40005, "TLS peer certificate not accepted")                 \
  X(TTLS_ENOTTLS, -40006, "the peer does not speak TLS")                       \
  X(TTLS_EPROTO, -40007, "TLS protocol error")                                 \
  X(TTLS_ECLOSED, -40008, "TLS connection closed by the peer")                 \
  X(TTLS_EINVAL, -40009, "invalid argument")

typedef enum ttls_err {
#define TTLS_ERR_ENUM(name, val, msg) name = (val),
  TTLS_ERR_MAP(TTLS_ERR_ENUM)
#undef TTLS_ERR_ENUM
} ttls_err;

/* True for a value in the engine's range. */
static inline bool ttls_err_is(int rc) {
  return rc <= TTLS_ERR_FIRST && rc >= TTLS_ERR_LAST;
}
/* Text for a TTLS_E* code ("unknown TLS error" otherwise). Never NULL. */
const char *ttls_strerror(int rc);

/* ---- contexts ------------------------------------------------------- */

typedef struct ttls_ctx ttls_ctx_t;

typedef struct ttls_ctx_opts {
  bool server;           /* a listener's context (else a client's) */
  const char *cert_file; /* PEM chain; a server needs one, a client may */
  const char *key_file;  /* PEM private key for cert_file */
  /* PEM CA bundle to check the peer with. A client without one uses the
   * system's trust store. */
  const char *ca_file;
  /* Server: require a client certificate signed by ca_file (mutual TLS).
   * Client: ignored (a client always checks the server, unless
   * insecure_skip_verify). */
  bool verify_peer;
  /* Client only: accept any server certificate and name. For tests and
   * emergencies; the name says what it costs. */
  bool insecure_skip_verify;
} ttls_ctx_opts_t;

/*
 * Makes a context from o. On failure returns TTLS_ECONFIG (or TTLS_ENOMEM)
 * and writes why (the file and OpenSSL's reason) into err (cap bytes).
 */
int ttls_ctx_create(ttls_ctx_t **out, const ttls_ctx_opts_t *o, char *err,
                    size_t cap);
/* Another reference; the context lives until the last unref. */
ttls_ctx_t *ttls_ctx_ref(ttls_ctx_t *ctx);
void ttls_ctx_unref(ttls_ctx_t *ctx);
/* The subject of the context's own certificate, RFC 2253 ("" without). */
void ttls_ctx_subject(const ttls_ctx_t *ctx, char *out, size_t cap);

/* ---- connections ---------------------------------------------------- */

typedef struct ttls_conn ttls_conn_t;

/*
 * A connection on ctx (holds a reference to it). For a client,
 * server_name is the name the server's certificate must carry (a DNS name
 * or an IP address; also sent as SNI when a DNS name); NULL checks no name
 * (only with insecure_skip_verify). The client's ClientHello is ready in
 * ttls_conn_pending_out once ttls_conn_handshake has been called.
 */
int ttls_conn_create(ttls_conn_t **out, ttls_ctx_t *ctx,
                     const char *server_name);
void ttls_conn_destroy(ttls_conn_t *c);

/* Ciphertext from the socket. 0 or TTLS_ENOMEM. */
int ttls_conn_feed(ttls_conn_t *c, const void *bytes, size_t len);
/* Advances the handshake: 0 when it is done (also when it already was),
 * TTLS_EAGAIN when it waits for the peer, or an error (the reason in
 * ttls_conn_error; the alert for the peer is in pending_out). */
int ttls_conn_handshake(ttls_conn_t *c);
bool ttls_conn_handshake_done(const ttls_conn_t *c);
/*
 * Plaintext that arrived: up to cap bytes into buf. Returns the count,
 * TTLS_EAGAIN when a whole record has not arrived yet, TTLS_ECLOSED at the
 * peer's close_notify, or an error.
 */
int ttls_conn_read(ttls_conn_t *c, void *buf, size_t cap);
/* Plaintext decrypted and not read yet (more ttls_conn_read will give). */
bool ttls_conn_has_plaintext(ttls_conn_t *c);
/* Bytes fed and not read out yet (ciphertext and decrypted plaintext). */
size_t ttls_conn_pending_in(ttls_conn_t *c);
/*
 * Encrypts all of bufs, packing small buffers into full records (16 KiB)
 * rather than one record per buffer. The ciphertext waits in
 * pending_out. Returns the plaintext bytes taken (all) or an error.
 */
int ttls_conn_writev(ttls_conn_t *c, const uv_buf_t *bufs, unsigned n);
/* Queues a close_notify alert. */
void ttls_conn_shutdown(ttls_conn_t *c);

/* The ciphertext waiting to go to the socket: valid until the next call
 * on c. len 0 when none. */
void ttls_conn_pending_out(ttls_conn_t *c, const char **bytes, size_t *len);
/* The first n bytes of pending_out were sent (or copied away). */
void ttls_conn_consume_out(ttls_conn_t *c, size_t n);

/* Why the handshake or a read failed, one line ("" when nothing failed). */
const char *ttls_conn_error(const ttls_conn_t *c);
/* After the handshake: "TLSv1.3", the cipher's name. */
const char *ttls_conn_version(const ttls_conn_t *c);
const char *ttls_conn_cipher(const ttls_conn_t *c);
/* Was the session resumed (a ticket)? */
bool ttls_conn_resumed(const ttls_conn_t *c);

/* The peer's certificate (verified; only when the peer sent one): its
 * subject in RFC 2253 form ("CN=orders-service,O=tern-test"). Returns
 * false (out "") when there is no peer certificate. */
bool ttls_conn_peer_subject(const ttls_conn_t *c, char *out, size_t cap);
/* True when the peer's certificate carries the subject alternative name
 * san, written "DNS:name", "URI:uri", "email:addr" or "IP:addr", compared
 * exactly (case-insensitively for DNS and email). */
bool ttls_conn_peer_has_san(const ttls_conn_t *c, const char *san);

/* First bytes of a connection: does it start with a TLS handshake record
 * (a ClientHello)? Needs one byte. */
static inline bool ttls_looks_like_tls(const void *bytes, size_t len) {
  return len > 0 && ((const unsigned char *)bytes)[0] == 0x16;
}

#endif
