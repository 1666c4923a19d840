/*
 * The broker's error codes, and one function that names any error code a
 * broker function can return.
 *
 * Broker functions return 0 (or a count) on success and a negative int on
 * failure, from one of three ranges that never overlap, so one variable
 * may carry any of them and the code says which it is:
 *   - libuv's (UV_E*: negated errno values, UV_EAI_* near -3000, down to
 *     UV_EOF = -4095), passed through from socket and timer calls;
 *   - the protocol library's (TP_E*, -10001..-10999, tern_proto/errors.h);
 *   - the broker's own below (TERND_E*, -30001..-30999);
 *   - the TLS engine's (TTLS_E*, -40001..-40999, tern_tls/tls.h).
 * libtern's codes (-20001..-20999) are the client's and never reach here.
 */
#ifndef TERND_ERRORS_H
#define TERND_ERRORS_H

#include <stdbool.h>

#define TERND_ERR_FIRST (-30001)
#define TERND_ERR_LAST (-30999)

/* X(NAME, value, message). */
#define TERND_ERR_MAP(X)                                                       \
  X(TERND_ERETAINED_TOPICS, -30001, "too many retained topics")                \
  X(TERND_ERETAINED_BYTES, -30002, "too many retained bytes")                  \
  X(TERND_ESTORE_FULL, -30101, "stream store full (discard new)")              \
  X(TERND_ESTORE_TOOBIG, -30102, "record too large for the stream store")      \
  X(TERND_ESTORE_NOTFOUND, -30103, "no such record in the stream store")       \
  X(TERND_ESTORE_CORRUPT, -30104, "corrupt record in the stream store")        \
  X(TERND_ESTORE_FORMAT, -30105, "unknown stream store format or version")     \
  X(TERND_ESTORE_FAILED, -30106, "stream store failed after an I/O error")     \
  X(TERND_ESTORE_LOCKED, -30107, "stream store directory in use")

typedef enum ternd_err {
#define TERND_ERR_ENUM(name, val, msg) name = (val),
  TERND_ERR_MAP(TERND_ERR_ENUM)
#undef TERND_ERR_ENUM
} ternd_err;

/* True for a value in the broker's own range. */
static inline bool ternd_err_is(int rc) {
  return rc <= TERND_ERR_FIRST && rc >= TERND_ERR_LAST;
}

/* Text for 0, a TERND_E*, a TP_E*, a TTLS_E* or a libuv code. Never NULL. */
const char *ternd_strerror(int rc);

#endif
