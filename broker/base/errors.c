#include "base/errors.h"

#include <uv.h>

#include "tern_proto/errors.h"
#include "tern_tls/tls.h"

const char *ternd_strerror(int rc) {
  if (rc == 0)
    return "success";
  if (tp_err_is(rc))
    return tp_strerror(rc);
  if (ttls_err_is(rc))
    return ttls_strerror(rc);
  switch (rc) {
#define TERND_ERR_TEXT(name, val, msg)                                         \
  case name:                                                                   \
    return msg;
    TERND_ERR_MAP(TERND_ERR_TEXT)
#undef TERND_ERR_TEXT
  default:
    break;
  }
  if (ternd_err_is(rc))
    return "unknown broker error";
  return uv_strerror(rc);
}
