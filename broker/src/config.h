/*
 * ternd's configuration: one struct with defaults, filled from the command
 * line. Every limit the broker enforces lives here.
 */
#ifndef TERND_CONFIG_H
#define TERND_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#ifndef TERND_VERSION
#define TERND_VERSION "0.0.0"
#endif

typedef struct config {
  char host[256];
  int port;
  int ready_fd; /* -1: none */
  uint64_t max_payload;
  uint64_t max_frame;       /* derived: max_payload + TP_FRAME_OVERHEAD */
  uint64_t max_connections; /* 0: unlimited */
  uint64_t max_subs;        /* per connection; 0: unlimited */
  uint64_t connect_timeout_ms;
  uint64_t heartbeat_ms;      /* 0: no heartbeats */
  uint64_t max_pending_msgs;  /* per subscription: default and cap */
  uint64_t max_pending_bytes; /* per subscription: default and cap */
  uint64_t max_pending_total; /* all pending bytes; 0: auto (server_init) */
  uint64_t stall_timeout_ms;
  uint64_t max_retained_topics; /* 0: unlimited */
  uint64_t max_retained_bytes;  /* encoded bodies; 0: unlimited */
  uint64_t drain_timeout_ms;
  size_t max_topic;
  int log_level;
} config_t;

/* Fills cfg with the defaults. */
void config_defaults(config_t *cfg);

/* What config_parse asks the caller to do. */
enum { CONFIG_RUN = 0, CONFIG_EXIT_OK = 1, CONFIG_EXIT_USAGE = 2 };

/*
 * Parses argv into cfg (which must hold the defaults). --help and --version
 * print to out and return CONFIG_EXIT_OK; a bad flag or value prints a
 * message to err and returns CONFIG_EXIT_USAGE; otherwise CONFIG_RUN.
 */
int config_parse(config_t *cfg, int argc, char **argv, FILE *out, FILE *err);

#endif
