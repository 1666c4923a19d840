/*
 * The engine's error texts (tern_tls/tls.h).
 */
#include "tern_tls/tls.h"

const char *tt_strerror(int rc) {
  switch (rc) {
#define TT_ERR_TEXT(name, val, msg)                                            \
  case name:                                                                   \
    return msg;
    TT_ERR_MAP(TT_ERR_TEXT)
#undef TT_ERR_TEXT
  default:
    return "unknown TLS error";
  }
}
