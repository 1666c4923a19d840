/*
 * Size-versioned options structs (tern/options.h): the library's side of
 * struct_size. Every public function that reads a caller's options struct
 * imports it into a library-sized copy first and reads only that copy.
 */
#ifndef TERN_OPTIONS_ABI_H
#define TERN_OPTIONS_ABI_H

#include "tern/options.h"

/*
 * The size of the first version of each layout: struct_size plus the fields
 * before the old reserved arrays. A smaller struct_size means the struct was
 * never initialised. These never change when fields are appended.
 */
#define TERN__OPTIONS_SIZE_V0                                                  \
  (offsetof(tern_options_t, cb_data) + sizeof(void *))
#define TERN__PUB_OPTS_SIZE_V0                                                 \
  (offsetof(tern_pub_opts_t, ttl_ms) + sizeof(uint64_t))
#define TERN__SUB_OPTS_SIZE_V0                                                 \
  (offsetof(tern_sub_opts_t, queue_bytes) + sizeof(size_t))

/* options.c: the defaults of every field of the library's own struct. */
void tern__options_defaults(tern_options_t *o);

/*
 * Fill *dst (the library's size) with the defaults, then copy
 * min(src->struct_size, sizeof *dst) bytes of *src over them and set
 * dst->struct_size to the library's size. 0, or TERN_EINVAL (dst
 * unspecified) when src->struct_size is below the first version's size.
 */
int tern__options_import(tern_options_t *dst, const tern_options_t *src);
int tern__pub_opts_import(tern_pub_opts_t *dst, const tern_pub_opts_t *src);
int tern__sub_opts_import(tern_sub_opts_t *dst, const tern_sub_opts_t *src);

/* The stream structs (tern/stream.h), the same way. */
#include "tern/stream.h"
#define TERN__STREAM_CONFIG_SIZE_V0                                            \
  (offsetof(tern_stream_config_t, dedup_window_ms) + sizeof(uint64_t))
#define TERN__CONSUMER_CONFIG_SIZE_V0                                          \
  (offsetof(tern_consumer_config_t, push) + sizeof(const char *))
int tern__stream_config_import(tern_stream_config_t *dst,
                               const tern_stream_config_t *src);
int tern__consumer_config_import(tern_consumer_config_t *dst,
                                 const tern_consumer_config_t *src);

#endif
