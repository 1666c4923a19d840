/*
 * Where the configuration comes from, and in which order: defaults, then
 * the file (--config FILE, or TERN_CONFIG_FILE), then TERN_* environment
 * variables, then the command-line flags. Each later source wins.
 */
#ifndef TERND_CONFIG_FILE_H
#define TERND_CONFIG_FILE_H

#include <stdio.h>

#include "base/config.h"
#include "transport/tls.h"

/*
 * Reads one INI file into cfg: options at the top (or in [server]), users
 * in [user NAME] sections. 0, or -1 with "FILE:LINE: what" written to
 * err. Any error, even after valid lines, makes the whole file invalid.
 */
int config_read_file(config_t *cfg, const char *path, char *err, size_t errlen);

/*
 * Builds the effective configuration from every source (cfg need not be
 * initialised; config_free it afterwards). Returns what config_parse
 * returns: CONFIG_RUN, CONFIG_CHECK, CONFIG_HASH_PASSWORD, CONFIG_EXIT_OK,
 * or CONFIG_EXIT_USAGE after printing the error to err.
 */
int config_load(config_t *cfg, int argc, char **argv, FILE *out, FILE *err);

/* The client port's TLS as the configuration sets it (tls_cert set). */
static inline tls_listener_opts_t config_tls_opts(const config_t *cfg) {
  tls_listener_opts_t o = {
      .cert_file = cfg->tls_cert,
      .key_file = cfg->tls_key,
      .ca_file = cfg->tls_ca[0] ? cfg->tls_ca : NULL,
      .verify = cfg->tls_verify,
      .required = cfg->tls_required,
      .detect_ms = cfg->tls_detect_ms,
  };
  return o;
}

#endif
