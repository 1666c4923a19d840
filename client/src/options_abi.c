/*
 * Size-versioned options structs: the exported *_init_sized functions behind
 * the tern_*_init macros, and the import every public entry point applies to
 * a caller's struct before reading it. A caller compiled against an older
 * header passes a shorter struct: only its struct_size bytes are read and
 * the fields it lacks keep the library's defaults. A caller compiled against
 * a newer header passes a longer one: the bytes past the library's struct
 * are never read.
 */
#include <string.h>

#include "options_abi.h"
#include "tern/errors.h"

/*
 * A field appended later must start at or after the end of every earlier
 * version, else it would overlap an older caller's tail padding and be read
 * from bytes that caller never set.
 */
_Static_assert(offsetof(tern_options_t, struct_size) == 0,
               "struct_size comes first");
_Static_assert(offsetof(tern_options_t, status_cb) >= TERN__OPTIONS_SIZE_V0,
               "status_cb overlaps the first layout");
_Static_assert(offsetof(tern_options_t, status_event_cb) >=
                   TERN__OPTIONS_SIZE_V0,
               "status_event_cb overlaps the first layout");
_Static_assert(offsetof(tern_options_t, tls) >= TERN__OPTIONS_SIZE_V0,
               "tls overlaps the first layout");
_Static_assert(offsetof(tern_options_t, tls) >=
                   offsetof(tern_options_t, status_event_cb) +
                       sizeof(tern_status_event_cb),
               "tls overlaps the layout with status_event_cb");
_Static_assert(offsetof(tern_pub_opts_t, struct_size) == 0,
               "struct_size comes first");
_Static_assert(
    sizeof(tern_pub_opts_t) == TERN__PUB_OPTS_SIZE_V0,
    "a field was appended: assert its offset >= the v0 size instead");
_Static_assert(offsetof(tern_sub_opts_t, struct_size) == 0,
               "struct_size comes first");
_Static_assert(offsetof(tern_sub_opts_t, error_cb) >= TERN__SUB_OPTS_SIZE_V0,
               "error_cb overlaps the first layout");

/*
 * Writes the first size bytes of the caller's struct o from the library's
 * filled-in struct defaults (own bytes long), zeroes any bytes beyond it and
 * records size. A size below the first version is refused; struct_size is
 * then set to 0 when it fits, so the struct is refused again where used.
 */
static int init_sized(void *o, size_t size, const void *defaults, size_t own,
                      size_t v0) {
  size_t zero = 0;
  if (o == NULL) {
    return TERN_EINVAL;
  }
  if (size < v0) {
    if (size >= sizeof(size_t)) {
      memcpy(o, &zero, sizeof(zero));
    }
    return TERN_EINVAL;
  }
  memcpy(o, defaults, size < own ? size : own);
  if (size > own) {
    memset((char *)o + own, 0, size - own);
  }
  memcpy(o, &size, sizeof(size));
  return 0;
}

/*
 * Copies min(struct_size, own) bytes of the caller's src over dst, which
 * already holds the defaults, and marks dst as library-sized.
 */
static int import(void *dst, size_t own, const void *src, size_t v0) {
  size_t size;
  memcpy(&size, src, sizeof(size));
  if (size < v0) {
    return TERN_EINVAL;
  }
  memcpy(dst, src, size < own ? size : own);
  memcpy(dst, &own, sizeof(own));
  return 0;
}

int tern_options_init_sized(tern_options_t *o, size_t size) {
  tern_options_t d;
  tern__options_defaults(&d);
  return init_sized(o, size, &d, sizeof(d), TERN__OPTIONS_SIZE_V0);
}

int tern_pub_opts_init_sized(tern_pub_opts_t *o, size_t size) {
  tern_pub_opts_t d;
  memset(&d, 0, sizeof(d));
  return init_sized(o, size, &d, sizeof(d), TERN__PUB_OPTS_SIZE_V0);
}

int tern_sub_opts_init_sized(tern_sub_opts_t *o, size_t size) {
  tern_sub_opts_t d;
  memset(&d, 0, sizeof(d));
  return init_sized(o, size, &d, sizeof(d), TERN__SUB_OPTS_SIZE_V0);
}

int tern__options_import(tern_options_t *dst, const tern_options_t *src) {
  tern__options_defaults(dst);
  return import(dst, sizeof(*dst), src, TERN__OPTIONS_SIZE_V0);
}

int tern__pub_opts_import(tern_pub_opts_t *dst, const tern_pub_opts_t *src) {
  memset(dst, 0, sizeof(*dst));
  return import(dst, sizeof(*dst), src, TERN__PUB_OPTS_SIZE_V0);
}

int tern__sub_opts_import(tern_sub_opts_t *dst, const tern_sub_opts_t *src) {
  memset(dst, 0, sizeof(*dst));
  return import(dst, sizeof(*dst), src, TERN__SUB_OPTS_SIZE_V0);
}

_Static_assert(offsetof(tern_stream_config_t, struct_size) == 0,
               "struct_size comes first");
_Static_assert(sizeof(tern_stream_config_t) == TERN__STREAM_CONFIG_SIZE_V0,
               "a field was appended: assert its offset >= the v0 size");
_Static_assert(offsetof(tern_consumer_config_t, struct_size) == 0,
               "struct_size comes first");
_Static_assert(sizeof(tern_consumer_config_t) == TERN__CONSUMER_CONFIG_SIZE_V0,
               "a field was appended: assert its offset >= the v0 size");

int tern_stream_config_init_sized(tern_stream_config_t *o, size_t size) {
  tern_stream_config_t d;
  memset(&d, 0, sizeof(d));
  return init_sized(o, size, &d, sizeof(d), TERN__STREAM_CONFIG_SIZE_V0);
}

int tern_consumer_config_init_sized(tern_consumer_config_t *o, size_t size) {
  tern_consumer_config_t d;
  memset(&d, 0, sizeof(d));
  return init_sized(o, size, &d, sizeof(d), TERN__CONSUMER_CONFIG_SIZE_V0);
}

int tern__stream_config_import(tern_stream_config_t *dst,
                               const tern_stream_config_t *src) {
  memset(dst, 0, sizeof(*dst));
  return import(dst, sizeof(*dst), src, TERN__STREAM_CONFIG_SIZE_V0);
}

int tern__consumer_config_import(tern_consumer_config_t *dst,
                                 const tern_consumer_config_t *src) {
  memset(dst, 0, sizeof(*dst));
  return import(dst, sizeof(*dst), src, TERN__CONSUMER_CONFIG_SIZE_V0);
}
