/*
 * State files (state.h). A stub for now: every call returns UV_ENOSYS; the
 * engine replaces it.
 */
#include "store/state.h"

#include <string.h>
#include <uv.h>

int store_state_open(store_env_t *env, const char *dir, const char *name,
                     store_state_t **out) {
  (void)env, (void)dir, (void)name;
  *out = NULL;
  return UV_ENOSYS;
}

int store_state_get(store_state_t *s, uint8_t **data, size_t *len) {
  (void)s;
  *data = NULL;
  *len = 0;
  return UV_ENOSYS;
}

int store_state_put(store_state_t *s, const void *data, size_t len) {
  (void)s, (void)data, (void)len;
  return UV_ENOSYS;
}

int store_state_flush(store_state_t *s) {
  return s ? UV_ENOSYS : 0;
}
int store_state_close(store_state_t *s) {
  return s ? UV_ENOSYS : 0;
}
int store_state_remove(store_state_t *s) {
  return s ? UV_ENOSYS : 0;
}

int store_consumer_encode(const store_consumer_state_t *cs, uint8_t **out,
                          size_t *len) {
  (void)cs;
  *out = NULL;
  *len = 0;
  return UV_ENOSYS;
}

int store_consumer_decode(const uint8_t *data, size_t len,
                          store_consumer_state_t *out) {
  (void)data, (void)len;
  memset(out, 0, sizeof *out);
  return UV_ENOSYS;
}

void store_consumer_state_free(store_consumer_state_t *cs) {
  (void)cs;
}
