/*
 * ternd's configuration: one struct with defaults, filled from the command
 * line. Every limit the broker enforces lives here.
 */
#ifndef TERND_CONFIG_H
#define TERND_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TERND_DEFAULT_HTTP_PORT 8421

#ifndef TERND_VERSION
#define TERND_VERSION "0.0.0"
#endif

typedef struct config {
  char host[256];
  int port;
  int ready_fd; /* -1: none */
  uint64_t max_payload;
  uint64_t max_frame;         /* derived: max_payload + TP_FRAME_OVERHEAD */
  uint64_t max_connections;   /* 0: unlimited */
  uint64_t max_subs;          /* per connection; 0: unlimited */
  uint64_t max_pattern_bytes; /* patterns + queue names per connection; 0:
                                 unlimited */
  uint64_t frame_timeout_ms;  /* an unfinished frame's deadline; 0: none */
  uint64_t max_inbound_total; /* all read buffers; 0: auto (server_init) */
  uint64_t connect_timeout_ms;
  uint64_t heartbeat_ms;      /* 0: no heartbeats */
  uint64_t max_pending_msgs;  /* per subscription: default and cap */
  uint64_t max_pending_bytes; /* per subscription: default and cap */
  uint64_t max_pending_total; /* all pending bytes; 0: auto (server_init) */
  uint64_t stall_timeout_ms;
  uint64_t max_retained_topics; /* 0: unlimited */
  uint64_t max_retained_bytes;  /* encoded bodies; 0: unlimited */
  uint64_t drain_timeout_ms;
  uint64_t max_topic; /* bytes of a topic or pattern, at most 1024 */
  int log_level;
  int log_format;               /* LOG_FORMAT_PLAIN or LOG_FORMAT_JSON */
  uint64_t log_rate_limit;      /* lines/s per call site, 0 = no limit */
  uint64_t http_timeout_ms;     /* monitoring: request head, each write */
  uint64_t http_max_clients;    /* monitoring connections at once */
  char http_host[256];          /* monitoring address; "" = same as host */
  int http_port;                /* monitoring HTTP port, 0 = off */
  char auth_token[256];         /* shared token; "" = none */
  uint64_t auth_queue;          /* logins waiting for a password hash */
  uint64_t auth_fail_limit;     /* failed logins per address; 0 = no limit */
  uint64_t auth_fail_window_ms; /* ... per this window */
  uint64_t auth_cache_size;     /* verified logins remembered; 0 = none */
  uint64_t auth_cache_ttl_ms;   /* ... for this long */
  /* Secure by default (issue 16): on a non-loopback address ternd refuses
   * to start without authentication unless allow_anonymous is set, and
   * serves the monitoring pages that list clients only with http_token
   * (or on loopback, or with allow_anonymous). */
  bool allow_anonymous;
  char http_token[256];      /* monitoring: Bearer token; "" = none */
  char http_open_paths[128]; /* monitoring pages never asking for it */
  bool http_tls_required;    /* with TLS: the monitoring port refuses HTTP */
  uint64_t sys_interval_ms;  /* $SYS stats period, 0 = off */
  int workers; /* event loops (threads); 0: one per CPU the process may use */
  char config_file[1024]; /* --config FILE, "" = none */
  /* Clustering (broker/cluster/): the route port (0: no cluster), the
   * cluster's name, the seeds (host:port[,host:port...], names resolved
   * again every route_resolve_ms), the routes' shared token, the
   * host:port other nodes reach this one's route port by, and the
   * client URLs this node tells clients (comma-separated; "" = derived). */
  int cluster_port;
  char cluster_name[64];
  char routes[1024];
  char cluster_token[256];
  char cluster_advertise[256];
  char client_advertise[256];
  uint64_t route_resolve_ms;
  uint64_t route_sync_ms;      /* longest wait for a peer's snapshot at start */
  uint64_t route_pending_msgs; /* per remote interest on a route */
  uint64_t route_pending_bytes; /* ... bytes */
  /* Mutual TLS on routes: this node's certificate (presented both ways:
   * as the route port's server and as the dialer's client), its key, and
   * the CAs a peer's certificate must be signed by. All three or none;
   * with them the route port takes TLS only, with a peer certificate. */
  char cluster_tls_cert[1024];
  char cluster_tls_key[1024];
  char cluster_tls_ca[1024];
  /* TLS on the client port (transport/tls.h): on when tls_cert is set. */
  char tls_cert[1024];    /* PEM certificate chain, "" = no TLS */
  char tls_key[1024];     /* its PEM private key */
  char tls_ca[1024];      /* CAs for client certificates, "" = none */
  bool tls_verify;        /* client certificates required (mutual TLS) */
  bool tls_required;      /* plaintext clients refused */
  uint64_t tls_detect_ms; /* wait for a first byte before HELLO */
  char tls_ciphers[512];  /* TLS 1.2 cipher list, "" = the default */
  char tls_ciphersuites[256]; /* TLS 1.3 suites, "" = the default */
  /* Users and permissions from the file's [user NAME] sections; owned,
   * freed by config_free (see auth.h). */
  struct auth_db *users;
  /* Durable streams (issue 19): where they are kept ("" = streams off)
   * and the [stream NAME] sections of the file (stream/stream_def.h;
   * owned, NULL = none). */
  char data_dir[1024];
  struct stream_defs *streams;
} config_t;

struct auth_db;
struct stream_defs;

/* Fills cfg with the defaults. */
void config_defaults(config_t *cfg);
/* Frees what cfg owns (the users), leaving the defaults' shape. */
void config_free(config_t *cfg);

/*
 * Sets one option by its name in the configuration file's spelling
 * (max_payload; the flag is --max-payload, the environment variable
 * TERN_MAX_PAYLOAD). 0, or -1 with a message in err: "unknown option"
 * when known is false afterwards, else a bad value.
 */
int config_set(config_t *cfg, const char *key, const char *val, bool *known,
               char *err, size_t errlen);
/* Applies every TERN_<KEY> environment variable set. 0, or -1 with a
 * message naming the variable in err. */
int config_apply_env(config_t *cfg, char *err, size_t errlen);
/* True when key may appear in a configuration file. */
bool config_key_in_file(const char *key);
/* Writes the effective configuration in the file's format (no secrets). */
void config_print(const config_t *cfg, FILE *out);

/* Whether host is a loopback address: 127.0.0.0/8 or ::1. */
bool config_is_loopback(const char *host);
/* Whether clients must authenticate: a token or users are configured, or
 * every client needs a certificate (config_mtls_only). */
bool config_auth_required(const config_t *cfg);
/* Whether every client must show a certificate signed by tls_ca: TLS with
 * tls_verify and tls_required (no plaintext). */
bool config_mtls_only(const config_t *cfg);
/*
 * The secure-by-default rule: clients on a non-loopback host without
 * authentication need allow_anonymous, and a route port there needs route
 * authentication (allow_anonymous does not open it). 0, or -1 with the refusal
 * and what to do about it in err. config_load applies it to every start, check
 * and reload.
 */
int config_check_exposure(const config_t *cfg, char *err, size_t errlen);
/* Whether routes must authenticate (a cluster token, or route mTLS). */
bool config_route_auth(const config_t *cfg);
/* Whether the monitoring page path ("/connz") is in http_open_paths. */
bool config_http_path_open(const config_t *cfg, const char *path, size_t len);

/* What config_parse asks the caller to do. */
enum {
  CONFIG_RUN = 0,
  CONFIG_EXIT_OK = 1,
  CONFIG_EXIT_USAGE = 2,
  CONFIG_CHECK = 3,        /* --check-config FILE: print, exit */
  CONFIG_HASH_PASSWORD = 4 /* --hash-password: read stdin, print a hash */
};

/*
 * Parses argv into cfg (which must hold the defaults). --help and --version
 * print to out and return CONFIG_EXIT_OK; a bad flag or value prints a
 * message to err and returns CONFIG_EXIT_USAGE; --check-config and
 * --hash-password return their mode; otherwise CONFIG_RUN. The file and the
 * environment come first: see config_load (config_file.h).
 */
int config_parse(config_t *cfg, int argc, char **argv, FILE *out, FILE *err);

#endif
