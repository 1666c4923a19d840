/*
 * The stream store against a model: thousands of random operations
 * (appends on a few topics, deletes, purges by sequence, topic and keep,
 * age expiry, compactions, flushes, reopens) on small segments under random
 * limits, each followed by the same operation on a plain array of live records;
 * after every step the log's figures, its records in order (through an
 * iterator), random reads and the last sequence of each topic must match
 * the model. A write failure is turned on in a second test with
 * RLIMIT_FSIZE: the log turns failed, never acknowledges what it did not
 * store, and a reopen keeps everything it did.
 */
#include "store_util.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <time.h>

TestSuite(store_model, .init = su_setup, .fini = su_teardown);

#define MAXREC 20000
#define TOPICS 5

typedef struct mrec {
  bool live;
  int topic;
  uint32_t len;
  int64_t time_ns;
} mrec_t;

static mrec_t g_m[MAXREC + 2]; /* by sequence */
static uint64_t g_last;

static uint64_t m_count(int topic) {
  uint64_t n = 0;
  for (uint64_t s = 1; s <= g_last; s++)
    n += g_m[s].live && (topic < 0 || g_m[s].topic == topic);
  return n;
}

static uint64_t m_oldest(int topic) {
  for (uint64_t s = 1; s <= g_last; s++)
    if (g_m[s].live && (topic < 0 || g_m[s].topic == topic))
      return s;
  return 0;
}

static uint64_t m_bytes(void) {
  uint64_t b = 0;
  for (uint64_t s = 1; s <= g_last; s++)
    if (g_m[s].live)
      b += 28 + 3 + g_m[s].len; /* header, topic "t.N", payload */
  return b;
}

static void m_enforce(const store_limits_t *l, int topic) {
  if (l->max_msgs_per_topic && topic >= 0)
    while (m_count(topic) > l->max_msgs_per_topic)
      g_m[m_oldest(topic)].live = false;
  if (l->discard == STORE_DISCARD_OLD) {
    while (l->max_msgs && m_count(-1) > l->max_msgs)
      g_m[m_oldest(-1)].live = false;
    while (l->max_bytes && m_bytes() > l->max_bytes && m_count(-1) > 1)
      g_m[m_oldest(-1)].live = false;
  }
}

static void check(store_t *st, const char *when, int step) {
  store_info_t in;
  store_info(st, &in);
  uint64_t n = m_count(-1);
  cr_assert_eq(in.msgs, n, "%s step %d: msgs %" PRIu64 " vs model %" PRIu64,
               when, step, in.msgs, n);
  cr_assert_eq(in.last_seq, g_last, "%s step %d: last", when, step);
  cr_assert_eq(in.bytes, m_bytes(), "%s step %d: bytes", when, step);
  uint64_t first = m_oldest(-1);
  cr_assert_eq(in.first_seq, first ? first : g_last + 1, "%s step %d: first",
               when, step);
  store_iter_t *it;
  cr_assert_eq(store_iter_open(st, 0, &it), 0);
  store_msg_t m;
  uint64_t s = 0;
  int rc;
  while ((rc = store_iter_next(it, &m)) == 1) {
    do
      s++;
    while (s <= g_last && !g_m[s].live);
    cr_assert_eq(m.seq, s,
                 "%s step %d: iterator at %" PRIu64 ", model %" PRIu64, when,
                 step, m.seq, s);
    cr_assert_eq(m.len, g_m[s].len);
    cr_assert_eq(m.time_ns, g_m[s].time_ns);
    cr_assert(m.topic_len == 3 && m.topic[2] == '0' + g_m[s].topic);
  }
  cr_assert_eq(rc, 0);
  store_iter_close(it);
  for (int t = 0; t < TOPICS; t++) {
    char name[4] = {'t', '.', (char)('0' + t), 0};
    uint64_t want = 0, got;
    for (uint64_t q = 1; q <= g_last; q++)
      if (g_m[q].live && g_m[q].topic == t)
        want = q;
    rc = store_last_for_topic(st, name, 3, &got);
    if (want) {
      cr_assert_eq(rc, 0, "%s step %d: topic %d", when, step, t);
      cr_assert_eq(got, want, "%s step %d: topic %d last", when, step, t);
    } else {
      cr_assert_eq(rc, TERND_ESTORE_NOTFOUND, "%s step %d: topic %d", when,
                   step, t);
    }
  }
  for (int k = 0; k < 5 && g_last; k++) {
    uint64_t q = 1 + (uint64_t)rand() % g_last;
    rc = store_get(st, q, &m);
    cr_assert_eq(rc, g_m[q].live ? 0 : TERND_ESTORE_NOTFOUND);
  }
}

static void run_model(unsigned seed, int steps) {
  srand(seed);
  memset(g_m, 0, sizeof g_m);
  g_last = 0;
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.segment_bytes = 2048 + (uint64_t)(rand() % 4) * 1024;
  cfg.sync = (store_sync_t)(rand() % 3);
  switch (rand() % 5) {
  case 0:
    break;
  case 1:
    cfg.limits.max_msgs = 20 + (uint64_t)(rand() % 200);
    break;
  case 2:
    cfg.limits.max_msgs_per_topic = 1 + (uint64_t)(rand() % 4);
    break;
  case 3:
    cfg.limits.max_msgs_per_topic = 1 + (uint64_t)(rand() % 4);
    cfg.limits.max_msgs = 5 + (uint64_t)(rand() % 10);
    break;
  default:
    cfg.limits.max_bytes = 2000 + (uint64_t)(rand() % 8000);
    break;
  }
  if (rand() % 3 == 0)
    cfg.limits.max_age_ms = 1000;
  store_t *st = su_open(&cfg, NULL);
  int64_t clock = 1000000000000LL;
  char data[256];
  memset(data, 'd', sizeof data);
  for (int step = 0; step < steps && g_last < MAXREC; step++) {
    int op = rand() % 100;
    if (op < 70) {
      int t = rand() % TOPICS;
      char name[4] = {'t', '.', (char)('0' + t), 0};
      uint32_t len = (uint32_t)(rand() % 200);
      clock += rand() % 50000000;
      store_rec_t r = {.topic = name,
                       .topic_len = 3,
                       .data = data,
                       .len = len,
                       .time_ns = clock};
      /* A 4-byte payload header keeps m_bytes simple: topic 3 + 1. */
      r.len = len + 1;
      uint64_t seq;
      int rc = store_append(st, &r, &seq);
      cr_assert_eq(rc, 0, "step %d append: %s", step, ternd_strerror(rc));
      cr_assert_eq(seq, g_last + 1);
      g_last = seq;
      g_m[seq] = (mrec_t){true, t, len + 1, clock};
      m_enforce(&cfg.limits, t);
    } else if (op < 78) {
      uint64_t q = g_last ? 1 + (uint64_t)rand() % g_last : 1;
      int rc = store_delete(st, q);
      cr_assert_eq(rc, g_m[q].live ? 0 : TERND_ESTORE_NOTFOUND,
                   "step %d delete %" PRIu64, step, q);
      g_m[q].live = false;
    } else if (op < 81) {
      uint64_t below = g_last ? 1 + (uint64_t)rand() % (g_last + 1) : 0;
      uint64_t keep = rand() % 2 ? (uint64_t)(rand() % 10) : 0;
      uint64_t purged;
      cr_assert_eq(store_purge(st, NULL, 0, below, keep, &purged), 0);
      uint64_t lim = below ? below : g_last + 1, kept = 0, n = 0;
      for (uint64_t q = lim - 1; q >= 1 && q < lim; q--)
        if (g_m[q].live && kept++ >= keep) {
          g_m[q].live = false;
          n++;
        }
      cr_assert_eq(purged, n, "step %d purge below %" PRIu64 " keep %" PRIu64,
                   step, below, keep);
    } else if (op < 84) {
      int t = rand() % TOPICS;
      char name[4] = {'t', '.', (char)('0' + t), 0};
      uint64_t below = rand() % 2 ? 0 : 1 + (uint64_t)rand() % (g_last + 1);
      uint64_t keep = (uint64_t)(rand() % 3);
      uint64_t purged;
      cr_assert_eq(store_purge(st, name, 3, below, keep, &purged), 0);
      uint64_t lim = below ? below : g_last + 1, kept = 0, n = 0;
      for (uint64_t q = lim - 1; q >= 1 && q < lim; q--)
        if (g_m[q].live && g_m[q].topic == t && kept++ >= keep) {
          g_m[q].live = false;
          n++;
        }
      cr_assert_eq(purged, n, "step %d topic purge", step);
    } else if (op < 87) {
      if (cfg.limits.max_age_ms) {
        int64_t now = clock + rand() % 500000000;
        int64_t n = store_expire(st, now);
        int64_t want = 0;
        int64_t cut = now - (int64_t)cfg.limits.max_age_ms * 1000000;
        for (uint64_t q = m_oldest(-1); q && g_m[q].time_ns < cut;
             q = m_oldest(-1)) {
          g_m[q].live = false;
          want++;
        }
        cr_assert_eq(n, want, "step %d expire", step);
      }
    } else if (op < 90) {
      int64_t freed = store_compact(st, rand() % 2 ? 0 : UINT64_MAX);
      cr_assert_geq(freed, 0, "step %d compact: %s", step,
                    ternd_strerror((int)freed));
    } else if (op < 95) {
      cr_assert_eq(store_flush(st), 0);
    } else {
      cr_assert_eq(store_close(st), 0);
      /* No expiry by the wall clock at open: the records' times are in
       * the past of this test's own clock. */
      store_config_t c2 = cfg;
      c2.limits.max_age_ms = 0;
      store_recovery_t rec;
      st = su_open(&c2, &rec);
      cr_assert_eq(rec.corrupt_spans + rec.torn_bytes, 0);
      check(st, "reopen", step);
      cr_assert_eq(store_reconfigure(st, &cfg), 0);
      /* reconfigure may expire by the wall clock: every record is older
       * than a second, so with an age limit everything goes. */
      if (cfg.limits.max_age_ms)
        for (uint64_t q = 1; q <= g_last; q++)
          g_m[q].live = false;
    }
    check(st, "step", step);
  }
  store_destroy(st);
}

Test(store_model, random_operations_match_the_model, .timeout = 300) {
  /* TERN_STORE_SEED repeats a run. */
  const char *env = getenv("TERN_STORE_SEED");
  unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
  cr_log_info("seed %u (TERN_STORE_SEED)", seed);
  for (int round = 0; round < 30; round++)
    run_model(seed + (unsigned)round, round % 5 ? 600 : 4000);
}

static atomic_int g_errors;
static void on_error(void *ctx, store_t *st, int err) {
  (void)ctx, (void)st, (void)err;
  atomic_fetch_add(&g_errors, 1);
}

Test(store_model, write_error_fails_the_log_and_loses_no_stored_record) {
  signal(SIGXFSZ, SIG_IGN);
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.on_error = on_error;
  store_t *st = su_open(&cfg, NULL);
  /* From here, no file may grow past 64 KiB: the pwrite that would fails
   * (EFBIG) after writing what fits. */
  struct rlimit rl = {64 << 10, 64 << 10}, old;
  cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
  rl.rlim_max = old.rlim_max;
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
  int rc = 0;
  unsigned i;
  for (i = 0; i < 1000 && rc == 0; i++) {
    su_put(st, i, 3, 500);
    if (i % 8 == 7)
      rc = store_flush(st);
  }
  cr_assert_neq(rc, 0, "the write past the limit failed");
  uint64_t stored = store_stored_seq(st);
  uint64_t last = store_last_seq(st);
  cr_assert_lt(stored, last);
  cr_assert_eq(atomic_load(&g_errors), 1);
  store_info_t in;
  store_info(st, &in);
  cr_assert(in.failed);
  store_rec_t r = {.topic = "a", .topic_len = 1, .data = "x", .len = 1};
  cr_assert_eq(store_append(st, &r, NULL), TERND_ESTORE_FAILED);
  cr_assert_eq(store_flush(st), TERND_ESTORE_FAILED);
  store_msg_t m;
  cr_assert_eq(store_get(st, 1, &m), 0, "reads go on");
  store_close(st);
  rl.rlim_cur = old.rlim_cur;
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
  store_recovery_t rec;
  st = su_open(&cfg, &rec);
  cr_assert_geq(store_last_seq(st), stored, "every stored record is there");
  cr_assert_lt(store_last_seq(st), last);
  cr_assert_eq(rec.corrupt_spans, 0);
  for (uint64_t q = 1; q <= store_last_seq(st); q++) {
    cr_assert_eq(store_get(st, q, &m), 0);
    cr_assert(su_is(&m, (unsigned)(q - 1)));
  }
  cr_assert_eq(su_put(st, 0, 3, 0), store_last_seq(st));
  store_close(st);
}
