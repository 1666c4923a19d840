/*
 * tern bench: options, the run's orchestration, and the exit status.
 *
 * A run: every subscriber connects, subscribes and sees its broker's pong
 * (so its subscription is live); every publisher connects; all meet at the
 * `ready` barrier; the main thread stamps the start and releases them at
 * `go`. Publishers then send as fast as the socket takes it (or at --rate),
 * and end with a ping/pong so that their time covers the broker taking the
 * messages in. Subscribers stop at their expected count, or --timeout after
 * the last publisher finished, and the shortfall is reported as loss.
 */
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bench_internal.h"

static const char usage_text[] =
    "usage: tern bench [options]\n"
    "\n"
    "Load generator for tern and, with the same code, for NATS, Redis pub/sub\n"
    "and MQTT 3.1.1 brokers. Each client has its own connection and thread.\n"
    "\n"
    "  -s, --server HOST:PORT  broker address (default 127.0.0.1:<broker's port>)\n"
    "  -b, --broker NAME       tern | nats | redis | mqtt (default tern)\n"
    "  -p, --pub N             publishers, or requesters with --req (default 1)\n"
    "      --sub M             subscribers, or responders with --req (default 0;\n"
    "                          1 with --req)\n"
    "  -n, --msgs COUNT        messages per publisher (default 100000)\n"
    "      --size BYTES        payload size, suffix k = KiB (default 128)\n"
    "      --queue GROUP       subscribers share the messages in a queue group\n"
    "                          (tern, nats)\n"
    "      --req               request/reply round-trip latency (tern, nats)\n"
    "      --rate MSGS_PER_S   publish at this total rate and measure latency\n"
    "                          (the send time travels in the payload's first\n"
    "                          8 bytes: --size >= 8)\n"
    "      --subject SUBJECT   subject to publish to (default bench.t)\n"
    "      --timeout SECONDS   wait this long for the tail (default 10)\n"
    "      --batch BYTES       bytes per write() when flat out (default 64k)\n"
    "      --json              print one JSON object instead of text\n"
    "  -h, --help              this help\n"
    "\n"
    "Exit status: 0 all delivered, 1 failure or loss, 2 usage error.\n";

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "tern bench: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nRun 'tern bench --help' for the options.\n");
  return 2;
}

/* A count with an optional k/K (x1024) or m/M (x1024^2) suffix. */
static int parse_count(const char *s, uint64_t *v) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 10);
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

/* Fills o from argv; 0, 1 for --help, or 2 after printing a usage error. */
static int parse_args(int argc, char **argv, bench_opts_t *o) {
  const char *server = NULL;
  const char *broker = "tern";
  uint64_t v;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    char name[32];
    const char *eq = strchr(a, '=');
    if (strncmp(a, "--", 2) == 0 && eq != NULL &&
        (size_t)(eq - a) < sizeof(name)) {
      memcpy(name, a, (size_t)(eq - a));
      name[eq - a] = '\0';
      a = name;
      val = eq + 1;
    }
#define FLAG(s, l) (strcmp(a, l) == 0 || strcmp(a, s) == 0)
#define VALUE()                                                              \
  do {                                                                       \
    if (val == NULL) {                                                       \
      if (i + 1 >= argc) {                                                   \
        return usage_error("%s needs a value", a);                           \
      }                                                                      \
      val = argv[++i];                                                       \
    }                                                                        \
  } while (0)
    if (FLAG("-h", "--help")) {
      fputs(usage_text, stdout);
      return 1;
    } else if (FLAG("-s", "--server")) {
      VALUE();
      server = val;
    } else if (FLAG("-b", "--broker")) {
      VALUE();
      broker = val;
    } else if (FLAG("-p", "--pub")) {
      VALUE();
      if (parse_count(val, &v) != 0 || v > 1000) {
        return usage_error("bad --pub '%s'", val);
      }
      o->pubs = (int)v;
    } else if (FLAG("", "--sub")) {
      VALUE();
      if (parse_count(val, &v) != 0 || v > 1000) {
        return usage_error("bad --sub '%s'", val);
      }
      o->subs = (int)v;
    } else if (FLAG("-n", "--msgs")) {
      VALUE();
      if (parse_count(val, &o->msgs) != 0) {
        return usage_error("bad --msgs '%s'", val);
      }
    } else if (FLAG("", "--size")) {
      VALUE();
      if (parse_count(val, &v) != 0 || v > 64u * 1024u * 1024u) {
        return usage_error("bad --size '%s'", val);
      }
      o->size = (size_t)v;
    } else if (FLAG("", "--batch")) {
      VALUE();
      if (parse_count(val, &v) != 0 || v == 0 || v > 64u * 1024u * 1024u) {
        return usage_error("bad --batch '%s'", val);
      }
      o->batch = (size_t)v;
    } else if (FLAG("", "--queue")) {
      VALUE();
      o->queue = val;
    } else if (FLAG("", "--subject")) {
      VALUE();
      o->subject = val;
    } else if (FLAG("", "--req")) {
      o->req = true;
    } else if (FLAG("", "--json")) {
      o->json = true;
    } else if (FLAG("", "--rate") || FLAG("", "--timeout")) {
      bool rate = strcmp(a, "--rate") == 0;
      VALUE();
      char *end;
      double d = strtod(val, &end);
      if (end == val || *end != '\0' || !(d > 0) || d > 1e9) {
        return usage_error(rate ? "bad --rate '%s'" : "bad --timeout '%s'",
                           val);
      }
      if (rate) {
        o->rate = d;
      } else {
        o->timeout_ms = (int)(d * 1000);
      }
    } else {
      return usage_error("unknown option '%s'", argv[i]);
    }
#undef FLAG
#undef VALUE
  }
  o->ad = bench_adapter_find(broker);
  if (o->ad == NULL) {
    return usage_error("unknown broker '%s' (tern, nats, redis, mqtt)", broker);
  }
  o->port = o->ad->default_port;
  if (server != NULL && parse_server(server, o) != 0) {
    return usage_error("bad --server '%s' (HOST:PORT)", server);
  }
  if (o->req && o->subs == 0) {
    o->subs = 1;
  }
  if (o->pubs < 1) {
    return usage_error("%s", "--pub must be at least 1");
  }
  if (o->req && !o->ad->has_reply) {
    return usage_error("%s has no request/reply", o->ad->name);
  }
  if (o->queue != NULL && !o->ad->has_queue) {
    return usage_error("%s has no queue groups", o->ad->name);
  }
  if (o->queue != NULL && o->subs == 0) {
    return usage_error("%s", "--queue needs --sub");
  }
  if (o->rate > 0 && o->size < sizeof(uint64_t)) {
    return usage_error("%s", "--rate needs --size of at least 8");
  }
  if (o->rate > 0 && o->req) {
    return usage_error("%s", "--rate and --req do not combine");
  }
  return 0;
}

static void init_workers(bench_run_t *run, bench_worker_t *ws, int n,
                         bool is_pub, bool timed) {
  for (int i = 0; i < n; i++) {
    ws[i].run = run;
    ws[i].index = i;
    ws[i].is_pub = is_pub;
    ws[i].conn.fd = -1;
    if (timed) {
      ws[i].hist = malloc(sizeof(bench_hist_t));
      if (ws[i].hist != NULL) {
        bench_hist_init(ws[i].hist);
      }
    }
  }
}

static void free_workers(bench_worker_t *ws, int n) {
  for (int i = 0; i < n; i++) {
    bench_conn_close(&ws[i].conn);
    free(ws[i].hist);
  }
  free(ws);
}

static int run_bench(const bench_opts_t *o) {
  bench_run_t run;
  memset(&run, 0, sizeof(run));
  run.o = o;
  atomic_init(&run.abort, 0);
  atomic_init(&run.pubs_left, o->pubs);
  atomic_init(&run.pubs_done_ns, 0);
  atomic_init(&run.received, 0);
  run.expected_per_sub = (uint64_t)o->pubs * o->msgs;
  run.expected_total =
      o->queue ? run.expected_per_sub : run.expected_per_sub * (uint64_t)o->subs;
  run.pubs = calloc((size_t)o->pubs, sizeof(bench_worker_t));
  run.subs = calloc((size_t)o->subs + 1, sizeof(bench_worker_t));
  if (run.pubs == NULL || run.subs == NULL) {
    fprintf(stderr, "tern bench: out of memory\n");
    free(run.pubs);
    free(run.subs);
    return 1;
  }
  init_workers(&run, run.pubs, o->pubs, true, o->req);
  init_workers(&run, run.subs, o->subs, false, o->rate > 0);
  unsigned parties = (unsigned)(o->pubs + o->subs + 1);
  pthread_barrier_init(&run.ready, NULL, parties);
  pthread_barrier_init(&run.go, NULL, parties);

  void *(*pub_fn)(void *) = o->req ? bench_req_thread : bench_pub_thread;
  void *(*sub_fn)(void *) = o->req ? bench_rep_thread : bench_sub_thread;
  int rc = 0;
  for (int i = 0; i < o->subs + o->pubs; i++) {
    bool pub = i >= o->subs;
    bench_worker_t *w = pub ? &run.pubs[i - o->subs] : &run.subs[i];
    if (pthread_create(&w->thread, NULL, pub ? pub_fn : sub_fn, w) != 0) {
      /* Barriers count every party: without a thread, nobody may wait. */
      fprintf(stderr, "tern bench: cannot start thread %d\n", i);
      exit(1);
    }
    w->started = true;
  }
  pthread_barrier_wait(&run.ready);
  run.setup_failed = atomic_load(&run.abort) != 0;
  run.start_ns = bench_now_ns();
  pthread_barrier_wait(&run.go);
  for (int i = 0; i < o->pubs; i++) {
    pthread_join(run.pubs[i].thread, NULL);
  }
  for (int i = 0; i < o->subs; i++) {
    pthread_join(run.subs[i].thread, NULL);
  }
  rc = bench_report(&run, stdout);
  fflush(stdout);
  pthread_barrier_destroy(&run.ready);
  pthread_barrier_destroy(&run.go);
  free_workers(run.pubs, o->pubs);
  free_workers(run.subs, o->subs);
  return rc;
}

int tern_bench_main(int argc, char **argv) {
  bench_opts_t o;
  memset(&o, 0, sizeof(o));
  strcpy(o.host, "127.0.0.1");
  o.pubs = 1;
  o.subs = 0;
  o.msgs = 100000;
  o.size = 128;
  o.subject = "bench.t";
  o.timeout_ms = 10000;
  o.batch = 64u * 1024u;
  int rc = parse_args(argc, argv, &o);
  if (rc != 0) {
    return rc == 1 ? 0 : rc;
  }
  return run_bench(&o);
}
