/*
 * The engine's error texts (tern_tls/tls.h).
 */
#include "tern_tls/tls.h"

const char *ttls_strerror(int rc) {
  switch (rc) {
#define TTLS_ERR_TEXT(name, val, msg)                                          \
  case name:                                                                   \
    return msg;
    TTLS_ERR_MAP(TTLS_ERR_TEXT)
#undef TTLS_ERR_TEXT
  default:
    return "unknown TLS error";
  }
}
