/*
 * The load generator behind `tern bench`: one thread and one raw TCP
 * connection per publisher and subscriber, speaking tern's protocol or,
 * through the same code, NATS, Redis pub/sub or MQTT 3.1.1 (adapter.h), so
 * that a comparison measures the brokers rather than four clients. See
 * bench/README.md for what each figure means.
 *
 * It is a static library of its own (tern_loadgen) beside the benchmarks,
 * not part of libtern: the CLI links it for `tern bench` and reads the
 * command line into a bench_opts_t with its own option parser.
 */
#ifndef TERN_BENCH_LOADGEN_H
#define TERN_BENCH_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapter.h"

/* Bounds of the options, for the parser's messages. */
#define BENCH_MAX_CLIENTS 1000u       /* --pub, --sub */
#define BENCH_MAX_BYTES (64u << 20)   /* --size, --batch */
#define BENCH_MAX_SECONDS_OR_RATE 1e9 /* --rate, --timeout */

/* One run's settings; the strings are borrowed for the run. */
typedef struct bench_opts {
  const bench_adapter_t *ad;
  char host[256];
  int port;
  int pubs;            /* publishers (requesters with --req) */
  int subs;            /* subscribers (responders with --req) */
  uint64_t msgs;       /* per publisher */
  size_t size;         /* payload bytes */
  const char *queue;   /* queue group name, NULL: plain subscriptions */
  const char *subject; /* what publishers publish to */
  bool req;            /* request/reply latency */
  double rate; /* total msgs/s over all publishers; 0: as fast as possible */
  bool json;
  int timeout_ms; /* for setup, and for the tail after publishers finish */
  size_t batch;   /* bytes per write() in throughput mode */
  /* Subscribers connect to these ("HOST:PORT,..."; NULL: host:port), the
   * i-th subscriber to entry i mod n: nodes of a cluster. */
  const char *sub_servers;
  int settle_ms; /* pause between the subscriptions and the first publish */
  /* TLS (tern: from the first byte; nats: after INFO, as nats-server
   * 2.9 asks). tls_ca NULL: the system's CAs. */
  bool tls;
  const char *tls_ca, *tls_cert, *tls_key;
  /* Handshake mode: each publisher opens and closes this many connections
   * (TCP, TLS when on, CONNECT, ping/pong, close), nothing is published;
   * the report is connections per second. 0: off. */
  uint64_t connects;
  /* Handshake mode over TLS: each connection offers the session (ticket)
   * of the one before (TLS resumption). */
  bool tls_resume;
} bench_opts_t;

/* Fills o with the defaults: tern on 127.0.0.1:7421, one publisher, no
 * subscriber, 100,000 messages of 128 bytes to bench.t, 10 s tail, 64 KiB
 * writes. */
void bench_opts_init(bench_opts_t *o);

/*
 * Runs the benchmark o describes (checked by the caller: at least one
 * publisher, features the adapter has). Prints the report on stdout (one
 * JSON object with o->json), problems on stderr. Returns the process exit
 * status: 0 every message delivered, 1 the run failed or lost messages.
 */
int bench_run(const bench_opts_t *o);

#endif
