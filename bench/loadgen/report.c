/*
 * The report of one run: per side (publishers, subscribers) the aggregate
 * rate over the run's wall time from the common start, the spread of the
 * per-client rates, the loss, and latency percentiles; as text or as one
 * JSON object for scripts (bench/run-peers.sh reads it with jq).
 *
 * Rates are measured from the moment every client was ready to the last
 * event of that side: a publisher's closing pong (the broker has taken in
 * everything it sent) or a subscriber's last message. MB is 10^6 bytes.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bench_internal.h"

typedef struct side_stats {
  int clients;
  uint64_t msgs;
  uint64_t bytes;
  double secs;
  double rate_min, rate_avg, rate_max; /* per client, msgs/s */
} side_stats_t;

static void side(const bench_run_t *run, const bench_worker_t *ws, int n,
                 side_stats_t *s) {
  memset(s, 0, sizeof(*s));
  s->clients = n;
  uint64_t last = run->start_ns;
  double sum = 0;
  for (int i = 0; i < n; i++) {
    const bench_worker_t *w = &ws[i];
    s->msgs += w->msgs;
    s->bytes += w->bytes;
    double secs = w->t_last > run->start_ns
                      ? (double)(w->t_last - run->start_ns) / 1e9
                      : 0.0;
    double r = secs > 0 ? (double)w->msgs / secs : 0.0;
    if (i == 0 || r < s->rate_min) {
      s->rate_min = r;
    }
    if (r > s->rate_max) {
      s->rate_max = r;
    }
    sum += r;
    if (w->t_last > last) {
      last = w->t_last;
    }
  }
  s->rate_avg = n ? sum / n : 0.0;
  s->secs = (double)(last - run->start_ns) / 1e9;
}

static double per_s(uint64_t x, double secs) {
  return secs > 0 ? (double)x / secs : 0.0;
}

static void text_side(FILE *out, const char *label, const side_stats_t *s) {
  fprintf(out, "  %-5s %12.0f msgs/s %9.2f MB/s  %" PRIu64 " msgs in %.3f s",
          label, per_s(s->msgs, s->secs), per_s(s->bytes, s->secs) / 1e6,
          s->msgs, s->secs);
  if (s->clients > 1) {
    fprintf(out, "  (per client min/avg/max %.0f/%.0f/%.0f msgs/s)",
            s->rate_min, s->rate_avg, s->rate_max);
  }
  fputc('\n', out);
}

/*
 * Writes s as a JSON string, quotes included: the host and the queue group
 * come from the command line and may hold any byte. Quote, backslash and
 * control characters are escaped; other bytes pass as they are.
 */
static void json_str(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      fputc('\\', out);
      fputc(c, out);
    } else if (c < 0x20) {
      fprintf(out, "\\u%04x", c);
    } else {
      fputc(c, out);
    }
  }
  fputc('"', out);
}

static void json_side(FILE *out, const char *label, const side_stats_t *s) {
  fprintf(out,
          "\"%s\":{\"clients\":%d,\"msgs\":%" PRIu64 ",\"bytes\":%" PRIu64
          ",\"secs\":%.6f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,"
          "\"client_msgs_per_s\":{\"min\":%.1f,\"avg\":%.1f,\"max\":%.1f}}",
          label, s->clients, s->msgs, s->bytes, s->secs,
          per_s(s->msgs, s->secs), per_s(s->bytes, s->secs) / 1e6, s->rate_min,
          s->rate_avg, s->rate_max);
}

static const char *scenario(const bench_opts_t *o) {
  if (o->req) {
    return "reqrep";
  }
  if (o->subs == 0) {
    return "pub";
  }
  if (o->queue != NULL) {
    return "queue";
  }
  return o->rate > 0 ? "latency" : "pubsub";
}

static const double pcts[] = {50, 90, 99, 99.9};
static const char *const pct_names[] = {"p50", "p90", "p99", "p99_9"};

int bench_report(const bench_run_t *run, FILE *out) {
  const bench_opts_t *o = run->o;
  if (run->setup_failed) {
    /* Nothing was measured: only say why. */
    for (int i = 0; i < o->pubs + o->subs; i++) {
      const bench_worker_t *w =
          i < o->pubs ? &run->pubs[i] : &run->subs[i - o->pubs];
      if (w->failed) {
        fprintf(stderr, "tern bench: %s\n", w->err);
      }
    }
    return 1;
  }
  side_stats_t ps, ss;
  side(run, run->pubs, o->pubs, &ps);
  side(run, run->subs, o->subs, &ss);
  bench_hist_t *lat = malloc(sizeof(*lat));
  if (lat == NULL) {
    return 1;
  }
  bench_hist_init(lat);
  const bench_worker_t *lw = o->req ? run->pubs : run->subs;
  int ln = o->req ? o->pubs : o->subs;
  for (int i = 0; i < ln; i++) {
    if (lw[i].hist != NULL) {
      bench_hist_merge(lat, lw[i].hist);
    }
  }
  uint64_t expected =
      o->req ? (uint64_t)o->pubs * o->msgs : run->expected_total;
  uint64_t got = o->req ? ps.msgs : ss.msgs;
  uint64_t lost = got < expected ? expected - got : 0;
  if (o->subs == 0 && !o->req) {
    lost = 0;
    expected = 0;
  }
  double tsecs = ps.secs > ss.secs ? ps.secs : ss.secs;
  uint64_t tmsgs = o->req ? ps.msgs : ps.msgs + ss.msgs;
  uint64_t tbytes = o->req ? ps.bytes : ps.bytes + ss.bytes;
  int failed = 0;
  for (int i = 0; i < o->pubs + o->subs; i++) {
    const bench_worker_t *w =
        i < o->pubs ? &run->pubs[i] : &run->subs[i - o->pubs];
    if (w->failed) {
      failed++;
    }
  }

  if (o->json) {
    char server[sizeof(o->host) + 8];
    snprintf(server, sizeof(server), "%s:%d", o->host, o->port);
    fprintf(out, "{\"broker\":\"%s\",\"server\":", o->ad->name);
    json_str(out, server);
    fprintf(out,
            ",\"scenario\":\"%s\",\"pubs\":%d,\"subs\":%d,\"msgs\":%" PRIu64
            ",\"size\":%zu,\"rate\":%.1f,\"queue\":",
            scenario(o), o->pubs, o->subs, o->msgs, o->size, o->rate);
    if (o->queue != NULL) {
      json_str(out, o->queue);
    } else {
      fputs("null", out);
    }
    fputc(',', out);
    json_side(out, "pub", &ps);
    fputc(',', out);
    json_side(out, "sub", &ss);
    fprintf(out,
            ",\"total\":{\"msgs\":%" PRIu64 ",\"secs\":%.6f,"
            "\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f},"
            "\"expected\":%" PRIu64 ",\"received\":%" PRIu64
            ",\"lost\":%" PRIu64 ",\"failed_clients\":%d",
            tmsgs, tsecs, per_s(tmsgs, tsecs), per_s(tbytes, tsecs) / 1e6,
            expected, got, lost, failed);
    fprintf(out, ",\"latency_us\":");
    if (lat->count == 0) {
      fprintf(out, "null");
    } else {
      fprintf(out, "{\"count\":%" PRIu64 ",\"min\":%.3f,\"mean\":%.3f",
              lat->count, lat->min / 1e3, bench_hist_mean(lat) / 1e3);
      for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        fprintf(out, ",\"%s\":%.3f", pct_names[i],
                bench_hist_percentile(lat, pcts[i]) / 1e3);
      }
      fprintf(out, ",\"max\":%.3f}", lat->max / 1e3);
    }
    fprintf(out, "}\n");
  } else {
    fprintf(out,
            "tern bench: %s at %s:%d, %s, %d pub -> %d sub%s%s, %" PRIu64
            " msgs x %zu B",
            o->ad->name, o->host, o->port, scenario(o), o->pubs, o->subs,
            o->queue ? " queue " : "", o->queue ? o->queue : "", o->msgs,
            o->size);
    if (o->rate > 0) {
      fprintf(out, " at %.0f msgs/s", o->rate);
    }
    fputc('\n', out);
    text_side(out, o->req ? "req" : "pub", &ps);
    if (o->subs > 0) {
      text_side(out, o->req ? "rep" : "sub", &ss);
    }
    if (o->subs > 0 && !o->req) {
      fprintf(out, "  total %12.0f msgs/s %9.2f MB/s\n", per_s(tmsgs, tsecs),
              per_s(tbytes, tsecs) / 1e6);
    }
    if (expected > 0) {
      fprintf(out, "  received %" PRIu64 "/%" PRIu64 ", lost %" PRIu64 "\n",
              got, expected, lost);
    }
    if (lat->count > 0) {
      fprintf(out, "  latency (us, %" PRIu64 " samples): min %.1f", lat->count,
              lat->min / 1e3);
      for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        fprintf(out, "  p%g %.1f", pcts[i],
                bench_hist_percentile(lat, pcts[i]) / 1e3);
      }
      fprintf(out, "  max %.1f  mean %.1f\n", lat->max / 1e3,
              bench_hist_mean(lat) / 1e3);
    }
  }
  for (int i = 0; i < o->pubs + o->subs; i++) {
    const bench_worker_t *w =
        i < o->pubs ? &run->pubs[i] : &run->subs[i - o->pubs];
    if (w->failed) {
      fprintf(stderr, "tern bench: %s\n", w->err);
    }
  }
  free(lat);
  return failed > 0 || lost > 0 ? 1 : 0;
}
