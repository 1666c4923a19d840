/*
 * TLS as a transport (transport.h): the TLS engine (tern_tls/tls.h) on
 * memory BIOs over a TCP transport (tcp.h), on the same loop.
 *
 * A listener with TLS serves TLS and, unless told otherwise, plaintext on
 * the same port, told apart by the client's first byte: a TLS client
 * speaks first (its ClientHello starts with 0x16, which no tern frame
 * does), a tern client waits for HELLO. So nothing is sent until the
 * first byte arrives or detect_ms pass: then a ClientHello starts the
 * handshake and HELLO follows it encrypted; anything else (or silence) is
 * a plaintext client, which gets HELLO as on a plain port, or, with
 * `required`, ERR 1 "TLS required" in plaintext and a close. The
 * handshake has the connect timeout the session already runs.
 *
 * Writes: what the output queue gathers (one flush, many frames) is
 * packed into full TLS records (16 KiB of plaintext each) and written as
 * one ciphertext buffer, tried at once and handed to one write when the
 * socket does not take it all; a flush that finds ciphertext still on its
 * way is held (not encrypted) until it is sent, so the bytes a slow reader
 * leaves stay in the queue, counted, as over TCP.
 */
#ifndef TERND_TRANSPORT_TLS_H
#define TERND_TRANSPORT_TLS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "transport/transport.h"

struct ttls_conn;

/* One listener's TLS: its context (swapped by a reload) and policy. Safe
 * to open transports from several loops at once. */
typedef struct tls_listener tls_listener_t;

typedef struct tls_listener_opts {
  const char *cert_file, *key_file; /* required */
  const char *ca_file;              /* NULL: none */
  bool verify;   /* client certificates required and checked */
  bool required; /* plaintext clients refused */
  /* OpenSSL's TLS 1.2 cipher list and TLS 1.3 suites; NULL: the engine's
   * policy (tern_tls/tls.h). */
  const char *ciphers, *ciphersuites;
  uint64_t detect_ms;
} tls_listener_opts_t;

/* 0, or an error with the reason (file, OpenSSL's words) in err. */
int tls_listener_create(tls_listener_t **out, const tls_listener_opts_t *o,
                        char *err, size_t cap);
/* Loads o's certificate, key and CA again: new connections use them,
 * open ones keep theirs. On failure the old ones stay (reason in err).
 * verify, required and detect_ms change too. */
int tls_listener_reload(tls_listener_t *l, const tls_listener_opts_t *o,
                        char *err, size_t cap);
/* Open transports keep what they need: the listener may go first. */
void tls_listener_destroy(tls_listener_t *l);
/* The server certificate's subject (for the startup log). */
void tls_listener_subject(tls_listener_t *l, char *out, size_t cap);

/* What /connz shows of a connection's TLS. */
typedef struct tls_info {
  const char *version; /* "TLSv1.3" */
  const char *cipher;  /* "TLS_AES_128_GCM_SHA256" */
  bool resumed;        /* an abbreviated handshake (a ticket) */
  /* The verified client certificate's subject (RFC 2253), "" without. */
  char client_subject[256];
} tls_info_t;

/* Fills out for a transport whose TLS handshake is done; false for a
 * plaintext one or one still in its handshake. */
bool tls_transport_info(transport_t *t, tls_info_t *out);

/* Wraps an accepted socket fd (owned from here on, closed on failure). */
int tls_transport_open(uv_loop_t *loop, int fd, tls_listener_t *l,
                       transport_t **out);

/* The client side, for a connection ternd makes itself (a cluster's
 * route): a certificate to present, and the CAs that must sign the
 * peer's. */
typedef struct tls_dialer tls_dialer_t;
int tls_dialer_create(tls_dialer_t **out, const char *cert_file,
                      const char *key_file, const char *ca_file, char *err,
                      size_t cap);
void tls_dialer_destroy(tls_dialer_t *d);
/* Wraps a connected socket fd (owned from here on, closed on failure) and
 * starts the handshake at once (TLS from the first byte). The peer's
 * certificate must carry server_name (a DNS name or an IP address). */
int tls_transport_dial(uv_loop_t *loop, int fd, tls_dialer_t *d,
                       const char *server_name, transport_t **out);

#endif
