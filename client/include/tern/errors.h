/*
 * libtern error codes.
 *
 * Every libtern function that can fail returns an int: 0 (or a positive
 * value where documented) on success, a negative code on failure. Two ranges
 * share that int:
 *  - libuv's own codes (UV_ECONNREFUSED, UV_EOF, ...), passed through
 *    unchanged when a socket operation fails;
 *  - tern's codes below, in -20000..-20999, clear of libuv's (which stop at
 *    UV_EOF = -4095).
 * tern_strerror() and tern_err_name() accept both.
 *
 * A call that returns an error never invokes the callback it was given.
 *
 * TERN_ECLOSED and TERN_EDISCONNECTED both fail work that was waiting on the
 * broker: TERN_ECLOSED when the connection is gone for good (closed by the
 * application, lost with reconnect disabled, or reconnect gave up);
 * TERN_EDISCONNECTED when it was lost and the library is reconnecting (the
 * operation may be retried). TERN_EBREAKER is a request refused at once
 * because the topic's circuit breaker is open (tern_options_t.breaker_*).
 */
#ifndef TERN_ERRORS_H
#define TERN_ERRORS_H

#include "tern/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, message): the single list the enum, tern_strerror and
 * tern_err_name are generated from. */
#define TERN_ERRNO_MAP(X)                                                      \
  X(PROTO, -20001, "protocol error")                                           \
  X(SERVER, -20002, "the server reported an error")                            \
  X(TIMEOUT, -20003, "operation timed out")                                    \
  X(CLOSED, -20004, "connection closed")                                       \
  X(WOULDBLOCK, -20005, "outbound buffer full")                                \
  X(NORESPONDERS, -20006, "no responders")                                     \
  X(TOPIC, -20007, "invalid topic or pattern")                                 \
  X(TOOLARGE, -20008, "payload too large")                                     \
  X(INVAL, -20009, "invalid argument")                                         \
  X(NOMEM, -20010, "out of memory")                                            \
  X(AUTH, -20011, "authentication failed")                                     \
  X(PERM, -20012, "permission denied")                                         \
  X(SLOWCONSUMER, -20013, "slow consumer")                                     \
  X(GOAWAY, -20014, "the server is shutting down")                             \
  X(NOTCONN, -20015, "not connected")                                          \
  X(LIMIT, -20016, "a server limit was reached")                               \
  X(STALE, -20017, "stale connection")                                         \
  X(BADURL, -20018, "malformed url")                                           \
  X(DISCONNECTED, -20019, "connection lost, reconnecting")                     \
  X(BREAKER, -20020, "circuit breaker open for this topic")                    \
  X(TLS, -20021, "TLS failed (handshake, certificate or configuration)")       \
  X(NOTFOUND, -20022, "no such stream or consumer")                            \
  X(EXISTS, -20023, "the stream exists with another definition")               \
  X(FULL, -20024, "stream or disk full: message not stored")

typedef enum tern_errno {
  TERN_OK = 0,
#define TERN_ERR_ENUM_(name, val, msg) TERN_E##name = (val),
  TERN_ERRNO_MAP(TERN_ERR_ENUM_)
#undef TERN_ERR_ENUM_
} tern_errno_t;

/*
 * Text for a tern or libuv error code ("outbound buffer full"). Never NULL;
 * "unknown error" for a value that is neither. Static string: do not free.
 * Any thread.
 */
TERN_EXTERN const char *tern_strerror(int err);

/*
 * Symbolic name of an error code ("TERN_EWOULDBLOCK", "ECONNREFUSED" for
 * libuv's). Never NULL; "UNKNOWN" otherwise. Static string. Any thread.
 */
TERN_EXTERN const char *tern_err_name(int err);

/*
 * The tern code a wire ERR code (PROTOCOL.md "Error codes") is reported as:
 * 2 -> TERN_EAUTH, 3 -> TERN_EPERM, 4 -> TERN_ETOPIC, 6 -> TERN_ESLOWCONSUMER,
 * 10/11 -> TERN_ELIMIT, 12 -> TERN_ESTALE, 13 -> TERN_ETOOLARGE,
 * 1/5/7 -> TERN_EPROTO, anything else -> TERN_ESERVER. Any thread.
 */
TERN_EXTERN int tern_err_from_wire(int wire_code);

#ifdef __cplusplus
}
#endif

#endif
