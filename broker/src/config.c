/*
 * Command-line parsing for ternd. Every flag takes its value as the next
 * argument or after '=' (--port=0). Numbers are checked strictly: no sign,
 * no trailing garbage, within the flag's range.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tern_proto/frame.h"

void config_defaults(config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->host, sizeof cfg->host, "%s", "127.0.0.1");
  cfg->port = TP_DEFAULT_PORT;
  cfg->ready_fd = -1;
  cfg->max_payload = TP_DEFAULT_MAX_PAYLOAD;
  cfg->max_frame = cfg->max_payload + TP_FRAME_OVERHEAD;
  cfg->max_connections = 0;
  cfg->max_subs = 0;
  cfg->connect_timeout_ms = 5000;
  cfg->heartbeat_ms = 30000;
  cfg->max_pending_msgs = 65536;
  cfg->max_pending_bytes = 64u * 1024u * 1024u;
  cfg->stall_timeout_ms = 10000;
  cfg->max_retained_topics = 1000000;
  cfg->max_retained_bytes = 256u * 1024u * 1024u;
  cfg->drain_timeout_ms = 5000;
  cfg->max_topic = TP_DEFAULT_MAX_TOPIC;
  cfg->log_level = LOG_INFO;
}

static void usage(FILE *out) {
  fprintf(
      out,
      "usage: ternd [options]\n"
      "\n"
      "  --host H                 IPv4/IPv6 address to listen on (127.0.0.1)\n"
      "  --port P                 TCP port, 0 = ephemeral (7421)\n"
      "  --ready-fd N             write the bound port + \"\\n\" to fd N "
      "once listening, then close it\n"
      "  --max-payload BYTES      largest PUB payload (1048576)\n"
      "  --max-connections N      0 = unlimited (0)\n"
      "  --max-subs N             subscriptions per connection, 0 = "
      "unlimited (0)\n"
      "  --connect-timeout-ms MS  time to send CONNECT (5000)\n"
      "  --heartbeat-ms MS        PING idle clients, 0 = never (30000)\n"
      "  --max-pending-msgs N     per-subscription queue default/cap "
      "(65536)\n"
      "  --max-pending-bytes B    per-subscription queue default/cap "
      "(67108864)\n"
      "  --max-pending-total B    all pending bytes of the server; past it "
      "publishers\n"
      "                           are not read, 0 = min(1 GiB, RAM/4) (0)\n"
      "  --stall-timeout-ms MS    a full blocking queue this long is a "
      "slow consumer (10000)\n"
      "  --max-retained-topics N  topics with a retained message, 0 = "
      "unlimited (1000000)\n"
      "  --max-retained-bytes B   bytes of retained messages, 0 = unlimited "
      "(268435456)\n"
      "  --drain-timeout-ms MS    flush deadline at shutdown (5000)\n"
      "  --log-level L            error|warn|info|debug (info)\n"
      "  --help                   this text\n"
      "  --version                print the version\n");
}

/* Parses a decimal unsigned integer in [min, max]. */
static bool parse_u64(const char *s, uint64_t min, uint64_t max,
                      uint64_t *out) {
  if (s == NULL || *s < '0' || *s > '9')
    return false;
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max)
    return false;
  *out = v;
  return true;
}

typedef enum {
  F_HOST,
  F_PORT,
  F_READY_FD,
  F_MAX_PAYLOAD,
  F_MAX_CONNS,
  F_MAX_SUBS,
  F_CONNECT_TIMEOUT,
  F_HEARTBEAT,
  F_PENDING_MSGS,
  F_PENDING_BYTES,
  F_PENDING_TOTAL,
  F_STALL,
  F_RETAINED_TOPICS,
  F_RETAINED_BYTES,
  F_DRAIN,
  F_LOG_LEVEL
} flag_id;

typedef struct flag_spec {
  const char *name;
  flag_id id;
  uint64_t min, max; /* for numeric flags */
} flag_spec_t;

/* max_payload is bounded so that max_frame still fits the 32-bit prefix. */
static const flag_spec_t flags[] = {
    {"--host", F_HOST, 0, 0},
    {"--port", F_PORT, 0, 65535},
    {"--ready-fd", F_READY_FD, 0, 1u << 20},
    {"--max-payload", F_MAX_PAYLOAD, 1, UINT32_MAX - TP_FRAME_OVERHEAD},
    {"--max-connections", F_MAX_CONNS, 0, UINT32_MAX},
    {"--max-subs", F_MAX_SUBS, 0, UINT32_MAX},
    {"--connect-timeout-ms", F_CONNECT_TIMEOUT, 1, 86400000},
    {"--heartbeat-ms", F_HEARTBEAT, 0, 86400000},
    {"--max-pending-msgs", F_PENDING_MSGS, 1, UINT32_MAX},
    {"--max-pending-bytes", F_PENDING_BYTES, 1, UINT64_MAX / 2},
    {"--max-pending-total", F_PENDING_TOTAL, 0, UINT64_MAX / 2},
    {"--stall-timeout-ms", F_STALL, 1, 86400000},
    {"--max-retained-topics", F_RETAINED_TOPICS, 0, UINT64_MAX / 2},
    {"--max-retained-bytes", F_RETAINED_BYTES, 0, UINT64_MAX / 2},
    {"--drain-timeout-ms", F_DRAIN, 0, 86400000},
    {"--log-level", F_LOG_LEVEL, 0, 0},
};

/* Stores one flag's value; false (with a message) when it is bad. */
static bool apply(config_t *cfg, const flag_spec_t *spec, const char *val,
                  FILE *err) {
  uint64_t v = 0;
  switch (spec->id) {
  case F_HOST:
    /* Numeric addresses only: resolving names would block startup. */
    uint8_t addr[16];
    if (strlen(val) >= sizeof cfg->host ||
        (inet_pton(AF_INET, val, addr) != 1 &&
         inet_pton(AF_INET6, val, addr) != 1)) {
      fprintf(err,
              "ternd: invalid value for --host: '%s' (expected an IPv4 or "
              "IPv6 address)\n",
              val);
      return false;
    }
    snprintf(cfg->host, sizeof cfg->host, "%s", val);
    return true;
  case F_LOG_LEVEL: {
    int lvl = log_level_parse(val);
    if (lvl < 0) {
      fprintf(err,
              "ternd: invalid value for --log-level: '%s' (expected "
              "error, warn, info or debug)\n",
              val);
      return false;
    }
    cfg->log_level = lvl;
    return true;
  }
  default:
    break;
  }
  if (!parse_u64(val, spec->min, spec->max, &v)) {
    fprintf(err,
            "ternd: invalid value for %s: '%s' (expected an integer from "
            "%llu to %llu)\n",
            spec->name, val, (unsigned long long)spec->min,
            (unsigned long long)spec->max);
    return false;
  }
  switch (spec->id) {
  case F_PORT:
    cfg->port = (int)v;
    break;
  case F_READY_FD:
    cfg->ready_fd = (int)v;
    break;
  case F_MAX_PAYLOAD:
    cfg->max_payload = v;
    cfg->max_frame = v + TP_FRAME_OVERHEAD;
    break;
  case F_MAX_CONNS:
    cfg->max_connections = v;
    break;
  case F_MAX_SUBS:
    cfg->max_subs = v;
    break;
  case F_CONNECT_TIMEOUT:
    cfg->connect_timeout_ms = v;
    break;
  case F_HEARTBEAT:
    cfg->heartbeat_ms = v;
    break;
  case F_PENDING_MSGS:
    cfg->max_pending_msgs = v;
    break;
  case F_PENDING_BYTES:
    cfg->max_pending_bytes = v;
    break;
  case F_PENDING_TOTAL:
    cfg->max_pending_total = v;
    break;
  case F_STALL:
    cfg->stall_timeout_ms = v;
    break;
  case F_RETAINED_TOPICS:
    cfg->max_retained_topics = v;
    break;
  case F_RETAINED_BYTES:
    cfg->max_retained_bytes = v;
    break;
  case F_DRAIN:
    cfg->drain_timeout_ms = v;
    break;
  default:
    break;
  }
  return true;
}

int config_parse(config_t *cfg, int argc, char **argv, FILE *out, FILE *err) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      usage(out);
      return CONFIG_EXIT_OK;
    }
    if (strcmp(arg, "--version") == 0) {
      fprintf(out, "ternd %s\n", TERND_VERSION);
      return CONFIG_EXIT_OK;
    }
    const char *eq = strchr(arg, '=');
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    const flag_spec_t *spec = NULL;
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
      if (strlen(flags[k].name) == name_len &&
          strncmp(flags[k].name, arg, name_len) == 0) {
        spec = &flags[k];
        break;
      }
    }
    if (spec == NULL) {
      fprintf(err, "ternd: unknown option '%s' (try --help)\n", arg);
      return CONFIG_EXIT_USAGE;
    }
    const char *val;
    if (eq != NULL) {
      val = eq + 1;
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      fprintf(err, "ternd: option %s needs a value\n", spec->name);
      return CONFIG_EXIT_USAGE;
    }
    if (!apply(cfg, spec, val, err))
      return CONFIG_EXIT_USAGE;
  }
  return CONFIG_RUN;
}
