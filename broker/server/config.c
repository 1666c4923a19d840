/*
 * Command-line parsing for ternd. Every flag takes its value as the next
 * argument or after '=' (--port=0). Numbers are checked strictly: no sign,
 * no trailing garbage, within the flag's range.
 */
#include "base/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "session/auth.h"
#include "stream/stream_def.h"
#include "tern_proto/frame.h"

void config_defaults(config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->host, sizeof cfg->host, "%s", "127.0.0.1");
  cfg->port = TP_DEFAULT_PORT;
  cfg->ready_fd = -1;
  cfg->max_payload = TP_DEFAULT_MAX_PAYLOAD;
  cfg->max_frame = cfg->max_payload + TP_FRAME_OVERHEAD;
  cfg->max_connections = 0;
  /* 10,000 is far more than any client we know needs, and bounds what one
   * connection holds (with 1 KiB patterns: ~28 MiB instead of ~277 MiB per
   * 100,000); max_pattern_bytes bounds the patterns themselves. */
  cfg->max_subs = 10000;
  cfg->max_pattern_bytes = 1024u * 1024u;
  cfg->frame_timeout_ms = 15000;
  cfg->max_inbound_total = 0;
  cfg->connect_timeout_ms = 5000;
  cfg->heartbeat_ms = 30000;
  snprintf(cfg->cluster_name, sizeof cfg->cluster_name, "tern");
  cfg->route_resolve_ms = 5000;
  cfg->route_sync_ms = 2000;
  cfg->route_pending_msgs = 65536;
  cfg->route_pending_bytes = 64u * 1024 * 1024;
  cfg->max_pending_msgs = 65536;
  cfg->max_pending_bytes = 64u * 1024u * 1024u;
  cfg->stall_timeout_ms = 10000;
  cfg->max_retained_topics = 1000000;
  cfg->max_retained_bytes = 256u * 1024u * 1024u;
  cfg->drain_timeout_ms = 5000;
  cfg->max_topic = TP_DEFAULT_MAX_TOPIC;
  cfg->log_level = LOG_INFO;
  cfg->log_format = LOG_FORMAT_PLAIN;
  cfg->log_rate_limit = LOG_DEFAULT_RATE_LIMIT;
  cfg->http_timeout_ms = 5000;
  cfg->http_max_clients = 256;
  cfg->http_port = TERND_DEFAULT_HTTP_PORT;
  cfg->sys_interval_ms = 10000;
  cfg->workers = 1;
  cfg->auth_queue = 32;
  cfg->auth_fail_limit = 10;
  cfg->auth_fail_window_ms = 60000;
  cfg->auth_cache_size = 1024;
  cfg->auth_cache_ttl_ms = 600000;
  snprintf(cfg->http_open_paths, sizeof cfg->http_open_paths, "%s",
           "/healthz,/metrics");
  cfg->tls_detect_ms = 300;
}

void config_free(config_t *cfg) {
  auth_db_unref(cfg->users);
  cfg->users = NULL;
  stream_defs_free(cfg->streams);
  cfg->streams = NULL;
}

static void usage(FILE *out) {
  fprintf(
      out,
      "Usage: ternd [options]\n"
      "\n"
      "The tern publish/subscribe broker: routes messages between topic\n"
      "subscribers, each with a bounded queue and an overflow policy.\n"
      "\n"
      "Options:\n"
      "  --host H                 IPv4/IPv6 address to listen on (127.0.0.1)\n"
      "  --port P                 TCP port, 0 = ephemeral (7421)\n"
      "  --ready-fd N             write the bound port + \"\\n\" to fd N "
      "once listening, then close it\n"
      "  --max-payload BYTES      largest PUB payload (1048576)\n"
      "  --max-topic BYTES        longest topic or pattern, 1..1024 (1024)\n"
      "  --max-connections N      0 = unlimited (0)\n"
      "  --max-subs N             subscriptions per connection, 0 = "
      "unlimited (10000)\n"
      "  --max-pattern-bytes B    bytes of one connection's patterns and "
      "queue names,\n"
      "                           0 = unlimited (1048576)\n"
      "  --frame-timeout-ms MS    time a started frame has to arrive "
      "whole, 0 = no limit\n"
      "                           (15000)\n"
      "  --max-inbound-total B    all read buffers of the server; a frame "
      "past it is\n"
      "                           refused with ERR 5, 0 = max-pending-total/4 "
      "(0)\n"
      "  --connect-timeout-ms MS  time to send CONNECT (5000)\n"
      "  --heartbeat-ms MS        PING idle clients, 0 = never (30000)\n"
      "  --max-pending-msgs N     per-subscription queue default/cap "
      "(65536)\n"
      "  --max-pending-bytes B    per-subscription queue default/cap "
      "(67108864)\n"
      "  --max-pending-total B    all pending bytes of the server; from "
      "half of it the\n"
      "                           largest holders drop, disconnect or pause "
      "their\n"
      "                           publishers, 0 = min(1 GiB, memory/4),\n"
      "                           memory being RAM or the cgroup's limit (0)\n"
      "  --stall-timeout-ms MS    a full blocking queue this long is a "
      "slow consumer (10000)\n"
      "  --max-retained-topics N  topics with a retained message, 0 = "
      "unlimited (1000000)\n"
      "  --max-retained-bytes B   bytes of retained messages, 0 = unlimited "
      "(268435456)\n"
      "  --drain-timeout-ms MS    flush deadline at shutdown (5000)\n"
      "  --log-level L            error|warn|info|debug (info)\n"
      "  --log-format F           plain|json (plain)\n"
      "  --log-rate-limit N       lines a second from one place in the "
      "code before\n"
      "                           the rest are counted, 0 = no limit (20)\n"
      "  --http-host H            monitoring HTTP address (same as --host)\n"
      "  --http-port P            monitoring HTTP port, 0 = off, -1 = "
      "ephemeral (8421)\n"
      "  --http-timeout-ms MS     monitoring: time to send a request, and "
      "to read\n"
      "                           each part of the answer (5000)\n"
      "  --http-max-clients N     monitoring connections at once; when "
      "full the oldest\n"
      "                           one still sending its request makes room "
      "(256)\n"
      "  --auth-token T           require this token in CONNECT\n"
      "  --auth-queue N           logins waiting for a password hash; "
      "past it, or\n"
      "                           past the connect timeout, CONNECT gets "
      "ERR 11 (32)\n"
      "  --auth-fail-limit N      failed logins per address per window; "
      "past it\n"
      "                           its CONNECTs get ERR 2 unhashed, 0 = no "
      "limit (10)\n"
      "  --auth-fail-window-ms MS that window (60000)\n"
      "  --auth-cache-size N      verified logins remembered, 0 = none "
      "(1024)\n"
      "  --auth-cache-ttl-ms MS   for this long (600000)\n"
      "  --allow-anonymous        let clients in without authentication on "
      "a\n"
      "                           non-loopback host (else ternd refuses to "
      "start),\n"
      "                           and serve every monitoring page without "
      "a token\n"
      "  --http-token T           monitoring: the Bearer token (or Basic "
      "password)\n"
      "                           the pages not in --http-open-paths ask "
      "for\n"
      "  --http-open-paths LIST   monitoring pages served to anyone "
      "(/healthz,/metrics)\n"
      "  --http-tls-required [BOOL] with --tls-cert: the monitoring port "
      "answers plain\n"
      "                           HTTP with 400 (else it serves HTTPS and "
      "HTTP) (false)\n"
      "  --sys-interval-ms MS     $SYS.server.stats period, 0 = off "
      "(10000)\n"
      "  --workers N              event loops, one thread each (0 = one per "
      "CPU\n"
      "                           the process may use, from its affinity and "
      "cgroup\n"
      "                           CPU quota, at most 64; 1 = a single loop)\n"
      "  --cluster-port P         route port for other ternd nodes, 0 = "
      "no cluster (0)\n"
      "  --cluster-name NAME      nodes join only a cluster of this name "
      "(tern)\n"
      "  --routes SEEDS           host:port of other nodes, comma-separated;"
      " names are\n"
      "                           resolved again every route-resolve-ms "
      "(5000)\n"
      "  --cluster-token T        shared secret every route must present\n"
      "  --cluster-advertise H:P  where other nodes reach this route port\n"
      "  --cluster-tls-cert FILE  mutual TLS on routes: this node's PEM "
      "certificate,\n"
      "                           presented both ways (serverAuth and "
      "clientAuth)\n"
      "  --cluster-tls-key FILE   its PEM private key\n"
      "  --cluster-tls-ca FILE    PEM CAs a peer node's certificate must be "
      "signed by\n"
      "  --client-advertise URLS  client URLs told to clients in HELLO\n"
      "  --route-sync-ms MS       at start, serve no client before a peer's"
      " retained\n"
      "                           snapshot arrived, or this long (2000)\n"
      "  --route-pending-msgs N   queue of each remote interest on a route "
      "(65536)\n"
      "  --route-pending-bytes B  ... in bytes (67108864)\n"
      "  --tls-cert FILE          serve TLS with this PEM certificate chain "
      "(and\n"
      "                           plaintext on the same port, told apart by "
      "the\n"
      "                           client's first byte)\n"
      "  --tls-key FILE           the certificate's PEM private key\n"
      "  --tls-ca FILE            PEM CAs that sign client certificates\n"
      "  --tls-verify [BOOL]      require a client certificate signed by "
      "--tls-ca\n"
      "                           (mutual TLS) (false)\n"
      "  --tls-required [BOOL]    refuse plaintext clients with ERR 1 "
      "(false)\n"
      "  --tls-detect-ms MS       how long a TLS port waits for the "
      "client's first\n"
      "                           byte before it takes it for plaintext "
      "(300)\n"
      "  --tls-ciphers LIST       TLS 1.2 ciphers, OpenSSL's syntax (ECDHE "
      "with AEAD)\n"
      "  --tls-ciphersuites LIST  TLS 1.3 suites, OpenSSL's syntax (AES-128-"
      "GCM,\n"
      "                           AES-256-GCM, ChaCha20-Poly1305)\n"
      "  --data-dir DIR           keep durable streams (and retained "
      "messages) under DIR,\n"
      "                           \"\" = streams off (\"\")\n"
      "  --config FILE            read options (and [user NAME] sections) "
      "from FILE\n"
      "  --check-config FILE      validate FILE, print the effective "
      "configuration\n"
      "  --hash-password          read a password on stdin, print its hash\n"
      "  --help                   this text\n"
      "  --version                print the version\n"
      "\n"
      "Every option is also a file key (max_payload) and an environment\n"
      "variable (TERN_MAX_PAYLOAD). Flags win over the environment, the\n"
      "environment over the file, the file over the defaults.\n");
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
  K_U64,    /* uint64_t within [min, max] */
  K_INT,    /* int within [min, max] */
  K_HOST,   /* numeric IPv4/IPv6 address */
  K_HOST0,  /* the same, or "" */
  K_LEVEL,  /* log level name */
  K_FORMAT, /* log format name */
  K_SECRET, /* string, never printed */
  K_PATH,   /* string */
  K_BOOL,   /* true/false, yes/no, on/off, 1/0; a bare flag is true */
  K_PAGES   /* comma-separated monitoring paths, or "" */
} kind_t;

/* 1 true, 0 false, -1 neither. */
static int parse_bool(const char *s) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0)
      return 1;
    if (strcasecmp(s, no[i]) == 0)
      return 0;
  }
  return -1;
}

typedef struct opt_spec {
  const char *key; /* file spelling; the flag is --key with '-' for '_' */
  kind_t kind;
  size_t offset, size;
  uint64_t min, max;
  bool flag_only; /* not in the file (and not printed) */
} opt_spec_t;

#define OPT(k, kind, min, max)                                                 \
  {                                                                            \
#k, kind, offsetof(config_t, k), sizeof(((config_t *)0)->k), min, max,     \
        false                                                                  \
  }
#define OPT_FLAG(k, kind, min, max)                                            \
  {                                                                            \
#k, kind, offsetof(config_t, k), sizeof(((config_t *)0)->k), min, max,     \
        true                                                                   \
  }

/* max_payload is bounded so that max_frame still fits the 32-bit prefix. */
static const opt_spec_t opts[] = {
    OPT(host, K_HOST, 0, 0),
    OPT(port, K_INT, 0, 65535),
    OPT_FLAG(ready_fd, K_INT, 0, 1u << 20),
    OPT(max_payload, K_U64, 1, UINT32_MAX - TP_FRAME_OVERHEAD),
    /* Lowered only: libtern checks topics against the protocol's 1024
     * before sending, and HELLO does not announce a topic limit. */
    OPT(max_topic, K_U64, 1, TP_DEFAULT_MAX_TOPIC),
    OPT(max_connections, K_U64, 0, UINT32_MAX),
    OPT(max_subs, K_U64, 0, UINT32_MAX),
    OPT(max_pattern_bytes, K_U64, 0, UINT64_MAX / 2),
    OPT(frame_timeout_ms, K_U64, 0, 86400000),
    OPT(max_inbound_total, K_U64, 0, UINT64_MAX / 2),
    OPT(connect_timeout_ms, K_U64, 1, 86400000),
    OPT(heartbeat_ms, K_U64, 0, 86400000),
    OPT(max_pending_msgs, K_U64, 1, UINT32_MAX),
    OPT(max_pending_bytes, K_U64, 1, UINT64_MAX / 2),
    OPT(max_pending_total, K_U64, 0, UINT64_MAX / 2),
    OPT(stall_timeout_ms, K_U64, 1, 86400000),
    OPT(max_retained_topics, K_U64, 0, UINT64_MAX / 2),
    OPT(max_retained_bytes, K_U64, 0, UINT64_MAX / 2),
    OPT(drain_timeout_ms, K_U64, 0, 86400000),
    OPT(log_level, K_LEVEL, 0, 0),
    OPT(log_format, K_FORMAT, 0, 0),
    OPT(log_rate_limit, K_U64, 0, 1000000),
    OPT(http_host, K_HOST0, 0, 0),
    OPT(http_port, K_INT, 0, 65535),
    OPT(http_timeout_ms, K_U64, 1, 86400000),
    OPT(http_max_clients, K_U64, 1, 65536),
    OPT(auth_token, K_SECRET, 0, 0),
    OPT(auth_queue, K_U64, 1, 1000000),
    OPT(auth_fail_limit, K_U64, 0, 1000000),
    OPT(auth_fail_window_ms, K_U64, 1, 86400000),
    OPT(auth_cache_size, K_U64, 0, 1000000),
    OPT(auth_cache_ttl_ms, K_U64, 1, 86400000),
    OPT(allow_anonymous, K_BOOL, 0, 0),
    OPT(http_token, K_SECRET, 0, 0),
    OPT(http_open_paths, K_PAGES, 0, 0),
    OPT(http_tls_required, K_BOOL, 0, 0),
    OPT(sys_interval_ms, K_U64, 0, 86400000),
    OPT(workers, K_INT, 0, 64),
    OPT(cluster_port, K_INT, 0, 65535),
    OPT(cluster_name, K_PATH, 0, 0),
    OPT(routes, K_PATH, 0, 0),
    OPT(cluster_token, K_SECRET, 0, 0),
    OPT(cluster_advertise, K_PATH, 0, 0),
    OPT(cluster_tls_cert, K_PATH, 0, 0),
    OPT(cluster_tls_key, K_PATH, 0, 0),
    OPT(cluster_tls_ca, K_PATH, 0, 0),
    OPT(client_advertise, K_PATH, 0, 0),
    OPT(route_resolve_ms, K_U64, 100, 86400000),
    OPT(route_sync_ms, K_U64, 0, 86400000),
    OPT(route_pending_msgs, K_U64, 1, UINT32_MAX),
    OPT(route_pending_bytes, K_U64, 1, UINT64_MAX / 2),
    OPT_FLAG(config_file, K_PATH, 0, 0),
    OPT(tls_cert, K_PATH, 0, 0),
    OPT(tls_key, K_PATH, 0, 0),
    OPT(tls_ca, K_PATH, 0, 0),
    OPT(tls_verify, K_BOOL, 0, 0),
    OPT(tls_required, K_BOOL, 0, 0),
    OPT(tls_detect_ms, K_U64, 1, 60000),
    OPT(tls_ciphers, K_PATH, 0, 0),
    OPT(tls_ciphersuites, K_PATH, 0, 0),
    OPT(data_dir, K_PATH, 0, 0),
};
#define NOPTS (sizeof opts / sizeof opts[0])

static const opt_spec_t *find_opt(const char *key) {
  for (size_t i = 0; i < NOPTS; i++) {
    if (strcmp(opts[i].key, key) == 0)
      return &opts[i];
  }
  return NULL;
}

/* The pages of the monitoring port (server/http.c serves them). */
static const char *const http_pages[] = {
    "/healthz", "/metrics", "/varz", "/connz", "/subz", "/streamz", "/routez"};

/* Calls fn for each entry of a comma-separated list (spaces trimmed, empty
 * entries skipped); stops at the first nonzero result and returns it. */
static int each_path(const char *list, int (*fn)(const char *, size_t, void *),
                     void *ud) {
  for (const char *p = list;;) {
    size_t n = strcspn(p, ",");
    const char *b = p, *e = p + n;
    while (b < e && *b == ' ')
      b++;
    while (e > b && e[-1] == ' ')
      e--;
    if (e > b) {
      int rc = fn(b, (size_t)(e - b), ud);
      if (rc != 0)
        return rc;
    }
    if (p[n] == '\0')
      return 0;
    p += n + 1;
  }
}

static int page_known(const char *p, size_t n, void *ud) {
  (void)ud;
  for (size_t i = 0; i < sizeof http_pages / sizeof http_pages[0]; i++)
    if (strlen(http_pages[i]) == n && memcmp(http_pages[i], p, n) == 0)
      return 0;
  return 1;
}

static bool valid_ip(const char *val) {
  uint8_t addr[16];
  return inet_pton(AF_INET, val, addr) == 1 ||
         inet_pton(AF_INET6, val, addr) == 1;
}

int config_set(config_t *cfg, const char *key, const char *val, bool *known,
               char *err, size_t errlen) {
  const opt_spec_t *o = find_opt(key);
  *known = o != NULL;
  if (o == NULL) {
    snprintf(err, errlen, "unknown option '%s'", key);
    return -1;
  }
  char *field = (char *)cfg + o->offset;
  uint64_t v = 0;
  switch (o->kind) {
  case K_HOST:
  case K_HOST0:
    /* Numeric addresses only: resolving names would block startup. */
    if (strlen(val) >= o->size ||
        (!valid_ip(val) && !(o->kind == K_HOST0 && *val == '\0'))) {
      snprintf(err, errlen,
               "invalid value for %s: '%s' (expected an IPv4 or IPv6 "
               "address)",
               key, val);
      return -1;
    }
    snprintf(field, o->size, "%s", val);
    return 0;
  case K_LEVEL: {
    int lvl = log_level_parse(val);
    if (lvl < 0) {
      snprintf(err, errlen,
               "invalid value for %s: '%s' (expected error, warn, info or "
               "debug)",
               key, val);
      return -1;
    }
    cfg->log_level = lvl;
    return 0;
  }
  case K_FORMAT: {
    int fmt = log_format_parse(val);
    if (fmt < 0) {
      snprintf(err, errlen,
               "invalid value for %s: '%s' (expected plain or json)", key, val);
      return -1;
    }
    cfg->log_format = fmt;
    return 0;
  }
  case K_PAGES:
    if (strlen(val) < o->size && each_path(val, page_known, NULL) != 0) {
      snprintf(
          err, errlen,
          "invalid value for %s: '%s' (expected pages from /healthz, "
          "/metrics, /varz, /connz, /subz, /streamz, /routez, separated by "
          "commas)",
          key, val);
      return -1;
    }
    /* fall through */
  case K_SECRET:
  case K_PATH:
    if (strlen(val) >= o->size) {
      snprintf(err, errlen, "value for %s is too long (at most %zu bytes)", key,
               o->size - 1);
      return -1;
    }
    snprintf(field, o->size, "%s", val);
    return 0;
  case K_BOOL: {
    int b = parse_bool(val);
    if (b < 0) {
      snprintf(err, errlen,
               "invalid value for %s: '%s' (expected true or "
               "false)",
               key, val);
      return -1;
    }
    *(bool *)field = b == 1;
    return 0;
  }
  case K_U64:
  case K_INT:
    break;
  }
  /* The monitoring port alone may ask for an ephemeral port: 0 is off. */
  if (o->offset == offsetof(config_t, http_port) && strcmp(val, "-1") == 0) {
    cfg->http_port = -1;
    return 0;
  }
  if (!parse_u64(val, o->min, o->max, &v)) {
    snprintf(err, errlen,
             "invalid value for %s: '%s' (expected an integer from %llu to "
             "%llu)",
             key, val, (unsigned long long)o->min, (unsigned long long)o->max);
    return -1;
  }
  if (o->kind == K_INT)
    *(int *)field = (int)v;
  else
    *(uint64_t *)field = v;
  if (o->offset == offsetof(config_t, max_payload))
    cfg->max_frame = v + TP_FRAME_OVERHEAD;
  return 0;
}

int config_apply_env(config_t *cfg, char *err, size_t errlen) {
  for (size_t i = 0; i < NOPTS; i++) {
    char name[64] = "TERN_";
    size_t n = strlen(name);
    for (const char *k = opts[i].key; *k && n + 1 < sizeof name; k++)
      name[n++] = (char)toupper((unsigned char)*k);
    name[n] = '\0';
    const char *val = getenv(name);
    if (val == NULL)
      continue;
    bool known;
    char why[256];
    if (config_set(cfg, opts[i].key, val, &known, why, sizeof why) != 0) {
      snprintf(err, errlen, "environment %s: %s", name, why);
      return -1;
    }
  }
  return 0;
}

bool config_key_in_file(const char *key) {
  const opt_spec_t *o = find_opt(key);
  return o != NULL && !o->flag_only;
}

void config_print(const config_t *cfg, FILE *out) {
  for (size_t i = 0; i < NOPTS; i++) {
    const opt_spec_t *o = &opts[i];
    if (o->flag_only)
      continue;
    const char *field = (const char *)cfg + o->offset;
    fprintf(out, "%s = ", o->key);
    switch (o->kind) {
    case K_U64:
      fprintf(out, "%llu\n", (unsigned long long)*(const uint64_t *)field);
      break;
    case K_INT:
      fprintf(out, "%d\n", *(const int *)field);
      break;
    case K_LEVEL:
      fprintf(out, "%s\n", log_level_name(cfg->log_level));
      break;
    case K_FORMAT:
      fprintf(out, "%s\n", log_format_name(cfg->log_format));
      break;
    case K_BOOL:
      fprintf(out, "%s\n", *(const bool *)field ? "true" : "false");
      break;
    case K_SECRET:
      /* Say whether it is set, never what it is. */
      fprintf(out, "%s\n", *field ? "(set)" : "");
      break;
    default:
      fprintf(out, "%s\n", field);
      break;
    }
  }
  auth_db_print(cfg->users, out);
  for (size_t i = 0; cfg->streams != NULL && i < cfg->streams->n; i++)
    stream_def_print(&cfg->streams->v[i], out);
}

/* Flags that select a mode rather than set an option. */
static bool is_mode_flag(const char *name, size_t len, const char *flag) {
  return strlen(flag) == len && strncmp(flag, name, len) == 0;
}

int config_parse(config_t *cfg, int argc, char **argv, FILE *out, FILE *err) {
  int mode = CONFIG_RUN;
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
    if (strcmp(arg, "--hash-password") == 0) {
      mode = CONFIG_HASH_PASSWORD;
      continue;
    }
    const char *eq = strchr(arg, '=');
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    char key[64];
    bool check = is_mode_flag(arg, name_len, "--check-config");
    if (check || is_mode_flag(arg, name_len, "--config")) {
      snprintf(key, sizeof key, "config_file");
    } else if (name_len > 2 && name_len - 2 < sizeof key &&
               strncmp(arg, "--", 2) == 0) {
      for (size_t k = 2; k < name_len; k++)
        key[k - 2] = arg[k] == '-' ? '_' : arg[k];
      key[name_len - 2] = '\0';
      if (memchr(arg, '_', name_len) != NULL)
        key[0] = '\0'; /* --max_payload is not a flag */
    } else {
      key[0] = '\0';
    }
    if (key[0] == '\0' || find_opt(key) == NULL) {
      fprintf(err, "ternd: unknown option '%s' (try --help)\n", arg);
      return CONFIG_EXIT_USAGE;
    }
    const char *val;
    if (eq != NULL) {
      val = eq + 1;
    } else if (find_opt(key)->kind == K_BOOL) {
      /* A bare boolean flag is true; a value may follow it. */
      val = "true";
      if (i + 1 < argc && parse_bool(argv[i + 1]) >= 0)
        val = argv[++i];
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      fprintf(err, "ternd: option %.*s needs a value\n", (int)name_len, arg);
      return CONFIG_EXIT_USAGE;
    }
    bool known;
    char why[256];
    if (config_set(cfg, key, val, &known, why, sizeof why) != 0) {
      fprintf(err, "ternd: %.*s: %s\n", (int)name_len, arg, why);
      return CONFIG_EXIT_USAGE;
    }
    if (check)
      mode = CONFIG_CHECK;
  }
  return mode;
}

/* ---- secure by default ------------------------------------------------ */

bool config_is_loopback(const char *host) {
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

bool config_auth_required(const config_t *cfg) {
  return cfg->users != NULL || cfg->auth_token[0] != '\0' ||
         config_mtls_only(cfg);
}

bool config_mtls_only(const config_t *cfg) {
  return cfg->tls_cert[0] != '\0' && cfg->tls_verify && cfg->tls_required;
}

bool config_route_auth(const config_t *cfg) {
  return cfg->cluster_token[0] != '\0' || cfg->cluster_tls_cert[0] != '\0';
}

int config_check_exposure(const config_t *cfg, char *err, size_t errlen) {
  /* A route is trusted with everything (no permissions apply to it), so
   * allow_anonymous does not open a route port. */
  if (cfg->cluster_port != 0 && !config_route_auth(cfg) &&
      !config_is_loopback(cfg->host)) {
    snprintf(err, errlen,
             "refusing a route port (%d) on %s without route "
             "authentication: any host that reaches it could join the "
             "cluster and read every message. Set cluster_token "
             "(TERN_CLUSTER_TOKEN), or mutual TLS on routes "
             "(--cluster-tls-cert, --cluster-tls-key, --cluster-tls-ca), or "
             "listen on loopback (--host 127.0.0.1)",
             cfg->cluster_port, cfg->host);
    return -1;
  }
  if (cfg->allow_anonymous || config_auth_required(cfg) ||
      config_is_loopback(cfg->host))
    return 0;
  snprintf(err, errlen,
           "refusing to listen on %s without authentication: anyone who "
           "can reach it could publish and subscribe. Set auth_token "
           "(TERN_AUTH_TOKEN) or [user NAME] sections in a config file, "
           "or require client certificates (tls_verify and tls_required), "
           "listen on loopback (--host 127.0.0.1), or allow anonymous "
           "clients with --allow-anonymous (allow_anonymous = true, "
           "TERN_ALLOW_ANONYMOUS=true)",
           cfg->host);
  return -1;
}

typedef struct path_probe {
  const char *path;
  size_t len;
} path_probe_t;

static int path_eq(const char *p, size_t n, void *ud) {
  const path_probe_t *pp = ud;
  return n == pp->len && memcmp(p, pp->path, n) == 0;
}

bool config_http_path_open(const config_t *cfg, const char *path, size_t len) {
  path_probe_t pp = {path, len};
  return each_path(cfg->http_open_paths, path_eq, &pp) == 1;
}
