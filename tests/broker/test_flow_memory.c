/*
 * Memory stays bounded whatever the subscribers do (PROTOCOL.md "Flow
 * control and backpressure"): 4 subscribers stop reading while a
 * publisher floods, and the broker's peak resident memory (VmHWM of the
 * ternd child, from /proc) stays within the configured limits plus a fixed
 * overhead.
 *
 * The default run floods 256 MiB; TERN_FLOW_FULL=1 floods the full 1 GiB. Under
 * AddressSanitizer freed memory sits in ASan's quarantine (256 MiB by default),
 * so RSS says nothing about the broker: there the flows are still checked but
 * the RSS bound is not.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "flood.h"
#include "raw_client.h"

#if defined(__SANITIZE_ADDRESS__)
#define RSS_MEANINGFUL 0
#else
#define RSS_MEANINGFUL 1
#endif

#define MiB (1024ull * 1024ull)
enum { SIZE = 64 * 1024, NSUBS = 4, SLOW_RCVBUF = 4096 };

/* Fixed overhead over the RSS measured before the flood: the per-turn
 * write batch in flight per connection (1 MiB + a frame), each
 * connection's read buffer (up to a frame), malloc's free lists and
 * fragmentation. Stated in the report and PROTOCOL.md. */
#define OVERHEAD (16 * MiB)

/* Per-subscription limit for the first suite; total cap for the second. */
#define SUB_BYTES (4 * MiB)
#define TOTAL_CAP (8 * MiB)

TT_BROKER_FIXTURE(per_sub, "--max-pending-bytes", "4194304",
                  "--max-pending-msgs", "1000000", "--max-payload", "1048576")
TT_BROKER_FIXTURE(total, "--max-pending-bytes", "268435456",
                  "--max-pending-msgs", "1000000", "--max-pending-total",
                  "8388608", "--stall-timeout-ms", "300")

TestSuite(memory_per_sub, .init = per_sub_init, .fini = per_sub_fini,
          .timeout = 300);
TestSuite(memory_total, .init = total_init, .fini = total_fini, .timeout = 300);

/* A field of /proc/<pid>/status, in bytes. */
static uint64_t proc_status_kb(pid_t pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f, "cannot open %s", path);
  uint64_t kb = 0;
  size_t n = strlen(field);
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, field, n) == 0 && line[n] == ':') {
      kb = strtoull(line + n + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  cr_assert_gt(kb, 0u, "no %s in %s", field, path);
  return kb * 1024;
}

static uint32_t flood_count(void) {
  const char *full = getenv("TERN_FLOW_FULL");
  uint64_t bytes = full && *full == '1' ? 1024 * MiB : 256 * MiB;
  return (uint32_t)(bytes / SIZE);
}

static void check_rss(uint64_t baseline, uint64_t limits) {
  uint64_t hwm = proc_status_kb(tt_g_broker.pid, "VmHWM");
  cr_log_info("ternd VmRSS before the flood %llu KiB, peak %llu KiB, "
              "growth %llu KiB, allowed %llu KiB",
              (unsigned long long)(baseline / 1024),
              (unsigned long long)(hwm / 1024),
              (unsigned long long)((hwm - baseline) / 1024),
              (unsigned long long)((limits + OVERHEAD) / 1024));
  if (!RSS_MEANINGFUL)
    return;
  cr_assert_leq(hwm, baseline + limits + OVERHEAD,
                "peak RSS %llu KiB > %llu KiB before + %llu KiB limits + "
                "%llu KiB overhead",
                (unsigned long long)(hwm / 1024),
                (unsigned long long)(baseline / 1024),
                (unsigned long long)(limits / 1024),
                (unsigned long long)(OVERHEAD / 1024));
}

/*
 * Per-subscription limits: 2 drop_oldest and 2 drop_newest subscribers of
 * 4 MiB each never read; the whole flood goes through (the publisher's
 * PONG) and the peak stays within 4 x (4 MiB + one write in flight).
 */
Test(memory_per_sub, four_stopped_subscribers_and_a_flood) {
  tt_raw_t subs[NSUBS], p;
  for (int i = 0; i < NSUBS; i++) {
    tt_raw_open_ex(&subs[i], tt_g_broker.port, SLOW_RCVBUF, true, true, false);
    tt_raw_sub_policy(&subs[i], 1, "mem.flood", NULL, 0,
                      i % 2 ? TP_OVERFLOW_DROP_NEWEST
                            : TP_OVERFLOW_DROP_OLDEST);
  }
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_barrier_strict(&p);
  uint64_t baseline = proc_status_kb(tt_g_broker.pid, "VmRSS");

  tt_flood_t fl;
  uint32_t count = flood_count();
  tt_flood_start(&fl, p.fd, "mem.flood", 0, count, SIZE, true);
  cr_assert_eq(tt_flood_join(&fl), 0, "flood send failed: %d", fl.result);
  tp_frame_t f;
  tt_raw_expect(&p, &f, TP_PONG, TT_RECV_MS);
  check_rss(baseline, NSUBS * (SUB_BYTES + 1 * MiB + SIZE));

  /* Each subscriber: messages in increasing order. */
  for (int i = 0; i < NSUBS; i++) {
    tp_frame_init(&f, TP_PING);
    tt_raw_send(&subs[i], &f);
    uint64_t dropped = 0;
    int64_t last = -1;
    int r;
    while ((r = tt_raw_recv(&subs[i], &f, TT_RECV_MS)) == 1 &&
           f.type != TP_PONG) {
      if (f.type == TP_DROPPED) {
        dropped += f.u.dropped.count;
        continue;
      }
      int64_t seq = tt_flood_seq(&f, SIZE);
      cr_assert_gt(seq, last, "subscriber %d: %lld after %lld", i,
                   (long long)seq, (long long)last);
      last = seq;
    }
    cr_assert_eq(r, 1, "subscriber %d closed or silent", i);
    /* drop_newest reports its count before its next MSG, and no MSG
     * follows the flood; drop_oldest's notices sit before the survivors. */
    if (i % 2 == 0)
      cr_assert_gt(dropped, 0u, "subscriber %d: nothing dropped", i);
    tt_raw_close(&subs[i]);
  }
  tt_raw_close(&p);
}

/*
 * The total cap: 4 drop_newest subscribers with 256 MiB limits never read,
 * so only max_pending_total (8 MiB) holds. They asked to lose messages
 * rather than slow anyone, so under the cap's pressure they drop early
 * (pending_gate.h): the flood goes through without the publisher being
 * paused, memory stays within the cap, and once they read, each has a
 * prefix of the stream and a DROPPED count for exactly what is missing.
 */
Test(memory_total, total_cap_bounds_what_drop_newest_holds) {
  tt_raw_t subs[NSUBS], p;
  for (int i = 0; i < NSUBS; i++) {
    tt_raw_open_ex(&subs[i], tt_g_broker.port, SLOW_RCVBUF, true, true, false);
    tt_raw_sub_policy(&subs[i], 1, "mem.total", NULL, 0,
                      TP_OVERFLOW_DROP_NEWEST);
  }
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  tt_raw_barrier_strict(&p);
  uint64_t baseline = proc_status_kb(tt_g_broker.pid, "VmRSS");

  tt_flood_t fl;
  uint32_t count = flood_count() / 4; /* past the cap it goes to nobody */
  tt_flood_start(&fl, p.fd, "mem.total", 0, count, SIZE, true);
  cr_assert_eq(tt_flood_join(&fl), 0, "flood send failed: %d", fl.result);
  tp_frame_t f;
  tt_raw_expect(&p, &f, TP_PONG, TT_RECV_MS);
  /* The cap, overshot by at most one message per subscriber, plus one
   * write in flight per subscriber. */
  check_rss(baseline, TOTAL_CAP + NSUBS * (1 * MiB + 2 * SIZE));

  tt_gaps_t g[NSUBS];
  memset(g, 0, sizeof g);
  for (int i = 0; i < NSUBS; i++) {
    tp_frame_init(&f, TP_PING);
    tt_raw_send(&subs[i], &f);
    tt_flood_read_gaps(&subs[i], 1, SIZE, -1, &g[i]);
    cr_assert_lt(g[i].received, (uint64_t)count, "subscriber %d dropped none",
                 i);
  }
  /* One more message: each reports what it dropped before it. */
  tt_flood_start(&fl, p.fd, "mem.total", count, 1, SIZE, true);
  cr_assert_eq(tt_flood_join(&fl), 0, "flood send failed: %d", fl.result);
  tt_raw_expect(&p, &f, TP_PONG, TT_RECV_MS);
  for (int i = 0; i < NSUBS; i++) {
    tt_flood_read_gaps(&subs[i], 1, SIZE, count, &g[i]);
    cr_assert_eq(g[i].received + g[i].dropped, (uint64_t)count + 1,
                 "subscriber %d: %llu received + %llu dropped", i,
                 (unsigned long long)g[i].received,
                 (unsigned long long)g[i].dropped);
    tt_raw_close(&subs[i]);
  }
  tt_raw_check_pubsub(&p);
  tt_raw_close(&p);
}
