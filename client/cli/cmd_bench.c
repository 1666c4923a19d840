/*
 * tern bench: reads the command line into the load generator's options
 * (bench/loadgen) and runs it.
 *
 * Its -s/--server is its own rather than the common one: the default
 * address depends on --broker (tern 7421, nats 4222, redis 6379, mqtt
 * 1883), which the global default (TERN_SERVER, else 127.0.0.1:7421) would
 * override. Counts and sizes take a k (x1024) or m (x1024^2) suffix.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "loadgen.h"

enum {
  OPT_SERVER = CLI_OPT_FIRST_CMD,
  OPT_BROKER,
  OPT_PUB,
  OPT_SUB,
  OPT_MSGS,
  OPT_SIZE,
  OPT_QUEUE,
  OPT_REQ,
  OPT_RATE,
  OPT_SUBJECT,
  OPT_TIMEOUT,
  OPT_BATCH,
  OPT_SUB_SERVERS,
  OPT_SETTLE,
  OPT_JSON,
  OPT_TLS_CA,
  OPT_TLS_CERT,
  OPT_TLS_KEY,
  OPT_CONNECTS,
  OPT_TLS_RESUME
};

static const cli_opt_t bench_opts[] = {
    {"server", 's', true, OPT_SERVER, "HOST:PORT",
     "broker address (default 127.0.0.1:<broker's port>)"},
    {"broker", 'b', true, OPT_BROKER, "NAME",
     "tern | nats | redis | mqtt (default tern)"},
    {"pub", 'p', true, OPT_PUB, "N",
     "publishers, or requesters with --req (default 1)"},
    {"sub", 0, true, OPT_SUB, "M",
     "subscribers, or responders with --req (default 0; 1 with --req)"},
    {"msgs", 'n', true, OPT_MSGS, "COUNT",
     "messages per publisher (default 100000)"},
    {"size", 0, true, OPT_SIZE, "BYTES",
     "payload size, suffix k = KiB (default 128)"},
    {"queue", 0, true, OPT_QUEUE, "GROUP",
     "subscribers share the messages in a queue group (tern, nats)"},
    {"req", 0, false, OPT_REQ, NULL,
     "request/reply round-trip latency (tern, nats)"},
    {"rate", 0, true, OPT_RATE, "MSGS_PER_S",
     "publish at this total rate and measure latency (needs --size >= 8)"},
    {"subject", 0, true, OPT_SUBJECT, "SUBJECT",
     "subject to publish to (default bench.t)"},
    {"timeout", 0, true, OPT_TIMEOUT, "SECONDS",
     "wait this long for the tail (default 10)"},
    {"batch", 0, true, OPT_BATCH, "BYTES",
     "bytes per write() when flat out (default 64k)"},
    {"sub-servers", 0, true, OPT_SUB_SERVERS, "HOST:PORT,...",
     "subscribers connect to these in turn (other nodes of a cluster)"},
    {"settle-ms", 0, true, OPT_SETTLE, "MS",
     "wait this long after the subscriptions before publishing (0)"},
    {"json", 0, false, OPT_JSON, NULL, "print one JSON object instead of text"},
    {"tls-ca", 0, true, OPT_TLS_CA, "FILE",
     "TLS with the server checked against these PEM CAs (tern, nats)"},
    {"tls-cert", 0, true, OPT_TLS_CERT, "FILE", "TLS client certificate (PEM)"},
    {"tls-key", 0, true, OPT_TLS_KEY, "FILE", "its key (PEM)"},
    {"connects", 0, true, OPT_CONNECTS, "N",
     "each publisher connects (TLS handshake, CONNECT, ping/pong) and closes "
     "N times: connections per second, nothing published"},
    {"tls-resume", 0, false, OPT_TLS_RESUME, NULL,
     "with --connects over TLS: resume the previous connection's TLS session "
     "(ticket) rather than a full handshake"},
    {"help", 'h', false, CLI_OPT_HELP, NULL, "show this help and exit"},
    {0},
};

static const cli_command_info_t bench_info = {
    .name = "bench",
    .usage = "bench [options]",
    .summary =
        "Load generator for tern and, with the same code, for NATS, Redis "
        "pub/sub\nand MQTT 3.1.1 brokers. Each client has its own connection "
        "and thread.\n\nExit status: 0 all delivered, 1 failure or loss, 2 "
        "usage error.",
    .opts = bench_opts,
    .min_pos = 0,
    .max_pos = 0,
};

/* What the options say before the cross-checks: the broker and the server
 * are resolved last, since the default port depends on the broker. */
typedef struct bench_args {
  bench_opts_t o;
  const char *broker;
  const char *server; /* NULL: 127.0.0.1 and the broker's port */
} bench_args_t;

/* A count with an optional k/K (x1024) or m/M (x1024^2) suffix. */
static int parse_count(const char *s, uint64_t *v) {
  char *end;
  unsigned long long x;
  errno = 0;
  x = strtoull(s, &end, 10);
  if (errno != 0 || end == s || s[0] == '-') {
    return -1;
  }
  if (*end == 'k' || *end == 'K') {
    x *= 1024u;
    end++;
  } else if (*end == 'm' || *end == 'M') {
    x *= 1024u * 1024u;
    end++;
  }
  if (*end != '\0') {
    return -1;
  }
  *v = x;
  return 0;
}

/* A count for option opt in [min, max] into *v; a usage error otherwise. */
static int count_opt(const char *opt, const char *value, uint64_t min,
                     uint64_t max, uint64_t *v) {
  if (parse_count(value, v) != 0 || *v < min || *v > max) {
    return cli_usage_error(&bench_info, "bad %s '%s'", opt, value);
  }
  return 0;
}

/* A positive number of at most BENCH_MAX_SECONDS_OR_RATE for opt. */
static int positive_opt(const char *opt, const char *value, double *d) {
  char *end;
  *d = strtod(value, &end);
  if (end == value || *end != '\0' || !(*d > 0) ||
      *d > BENCH_MAX_SECONDS_OR_RATE) {
    return cli_usage_error(&bench_info, "bad %s '%s'", opt, value);
  }
  return 0;
}

/* "HOST" or "HOST:PORT" into o (the port keeps its default without one). */
static int parse_server(const char *s, bench_opts_t *o) {
  const char *colon = strrchr(s, ':');
  size_t hlen = colon ? (size_t)(colon - s) : strlen(s);
  if (hlen == 0 || hlen >= sizeof(o->host)) {
    return -1;
  }
  memcpy(o->host, s, hlen);
  o->host[hlen] = '\0';
  if (colon != NULL) {
    uint64_t port;
    if (parse_count(colon + 1, &port) != 0 || port == 0 || port > 65535) {
      return -1;
    }
    o->port = (int)port;
  }
  return 0;
}

static int on_opt(const cli_command_info_t *info, int id, const char *value,
                  void *ud) {
  bench_args_t *a = ud;
  bench_opts_t *o = &a->o;
  uint64_t v;
  double d;
  int rc = 0;
  switch (id) {
  case OPT_SERVER:
    a->server = value;
    break;
  case OPT_BROKER:
    a->broker = value;
    break;
  case OPT_PUB:
    if ((rc = count_opt("--pub", value, 0, BENCH_MAX_CLIENTS, &v)) == 0) {
      o->pubs = (int)v;
    }
    break;
  case OPT_SUB:
    if ((rc = count_opt("--sub", value, 0, BENCH_MAX_CLIENTS, &v)) == 0) {
      o->subs = (int)v;
    }
    break;
  case OPT_MSGS:
    rc = count_opt("--msgs", value, 0, UINT64_MAX, &o->msgs);
    break;
  case OPT_SIZE:
    if ((rc = count_opt("--size", value, 0, BENCH_MAX_BYTES, &v)) == 0) {
      o->size = (size_t)v;
    }
    break;
  case OPT_BATCH:
    if ((rc = count_opt("--batch", value, 1, BENCH_MAX_BYTES, &v)) == 0) {
      o->batch = (size_t)v;
    }
    break;
  case OPT_QUEUE:
    o->queue = value;
    break;
  case OPT_SUBJECT:
    o->subject = value;
    break;
  case OPT_REQ:
    o->req = true;
    break;
  case OPT_JSON:
    o->json = true;
    break;
  case OPT_SUB_SERVERS:
    o->sub_servers = value;
    break;
  case OPT_SETTLE:
    if ((rc = count_opt("--settle-ms", value, 0, 600000, &v)) == 0) {
      o->settle_ms = (int)v;
    }
    break;
  case OPT_TLS_CA:
    o->tls = true;
    o->tls_ca = value;
    break;
  case OPT_TLS_CERT:
    o->tls = true;
    o->tls_cert = value;
    break;
  case OPT_TLS_KEY:
    o->tls_key = value;
    break;
  case OPT_TLS_RESUME:
    o->tls_resume = true;
    break;
  case OPT_CONNECTS:
    if ((rc = count_opt("--connects", value, 1, 100000000, &v)) == 0) {
      o->connects = v;
    }
    break;
  case OPT_RATE:
    if ((rc = positive_opt("--rate", value, &d)) == 0) {
      o->rate = d;
    }
    break;
  case OPT_TIMEOUT:
    if ((rc = positive_opt("--timeout", value, &d)) == 0) {
      o->timeout_ms = (int)(d * 1000);
    }
    break;
  default:
    rc = cli_usage_error(info, "unhandled option");
  }
  return rc;
}

/* The checks that need every option: the broker, its port, and what the
 * chosen broker can do. */
static int finish(bench_args_t *a) {
  bench_opts_t *o = &a->o;
  o->ad = bench_adapter_find(a->broker);
  if (o->ad == NULL) {
    return cli_usage_error(&bench_info,
                           "unknown broker '%s' (tern, nats, redis, mqtt)",
                           a->broker);
  }
  o->port = o->ad->default_port;
  if (a->server != NULL && parse_server(a->server, o) != 0) {
    return cli_usage_error(&bench_info, "bad --server '%s' (HOST:PORT)",
                           a->server);
  }
  if (o->req && o->subs == 0) {
    o->subs = 1;
  }
  if (o->pubs < 1) {
    return cli_usage_error(&bench_info, "--pub must be at least 1");
  }
  if (o->req && !o->ad->has_reply) {
    return cli_usage_error(&bench_info, "%s has no request/reply", o->ad->name);
  }
  if (o->queue != NULL && !o->ad->has_queue) {
    return cli_usage_error(&bench_info, "%s has no queue groups", o->ad->name);
  }
  if (o->queue != NULL && o->subs == 0) {
    return cli_usage_error(&bench_info, "--queue needs --sub");
  }
  if (o->rate > 0 && o->size < sizeof(uint64_t)) {
    return cli_usage_error(&bench_info, "--rate needs --size of at least 8");
  }
  if (o->tls && strcmp(o->ad->name, "tern") != 0 &&
      strcmp(o->ad->name, "nats") != 0) {
    return cli_usage_error(&bench_info, "TLS is for tern and nats");
  }
  if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
    return cli_usage_error(&bench_info, "--tls-cert and --tls-key go together");
  }
  if (o->rate > 0 && o->req) {
    return cli_usage_error(&bench_info, "--rate and --req do not combine");
  }
  return 0;
}

int cli_cmd_bench(int argc, char **argv, cli_common_t *common) {
  bench_args_t a;
  size_t npos = 0;
  bench_opts_init(&a.o);
  a.broker = "tern";
  a.server = NULL;
  if (cli_args_parse(&bench_info, argc, argv, common, on_opt, &a, NULL,
                     &npos) != 0) {
    return CLI_EXIT_USAGE;
  }
  if (common->help) {
    cli_print_help(stdout, &bench_info);
    return CLI_EXIT_OK;
  }
  if (finish(&a) != 0) {
    return CLI_EXIT_USAGE;
  }
  return bench_run(&a.o);
}
