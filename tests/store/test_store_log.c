/*
 * The stream store's log (broker/store/store.h): append and read back, the
 * indexes (sequence, time, topic), segments, limits and discard rules,
 * deletes and purges that outlive a reopen, the sync policies' "stored"
 * sequence, the directory lock; and the state files (state.h).
 */
#include "store_util.h"

#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "store/state.h"

TestSuite(store_log, .init = su_setup, .fini = su_teardown);

static void check_all(store_t *st, unsigned from, unsigned to,
                      uint64_t first_seq) {
  store_iter_t *it;
  cr_assert_eq(store_iter_open(st, 0, &it), 0);
  store_msg_t m;
  unsigned i = from;
  uint64_t seq = first_seq;
  int rc;
  while ((rc = store_iter_next(it, &m)) == 1) {
    cr_assert(su_is(&m, i), "record %" PRIu64 " holds message %u", m.seq, i);
    cr_assert_eq(m.seq, seq);
    i++;
    seq++;
  }
  cr_assert_eq(rc, 0, "iter: %s", ternd_strerror(rc));
  cr_assert_eq(i, to, "read %u..%u, wanted up to %u", from, i, to);
  store_iter_close(it);
}

Test(store_log, append_get_iterate_reopen) {
  store_t *st = su_open(NULL, NULL);
  for (unsigned i = 0; i < 1000; i++)
    cr_assert_eq(su_put(st, i, 7, i % 300), i + 1);
  /* Readable at once, before any write. */
  store_msg_t m;
  cr_assert_eq(store_get(st, 500, &m), 0);
  cr_assert(su_is(&m, 499));
  cr_assert_eq(m.topic_len, 3);
  cr_assert_eq(memcmp(m.topic, "t.2", 3), 0);
  cr_assert_null(m.msgid);
  check_all(st, 0, 1000, 1);
  cr_assert_eq(store_sync(st), 0);
  cr_assert_eq(store_stored_seq(st), 1000);
  cr_assert_eq(store_synced_seq(st), 1000);
  check_all(st, 0, 1000, 1);
  store_info_t in;
  store_info(st, &in);
  cr_assert_eq(in.first_seq, 1);
  cr_assert_eq(in.last_seq, 1000);
  cr_assert_eq(in.msgs, 1000);
  cr_assert_eq(in.topics, 7);
  cr_assert_eq(in.deleted, 0);
  cr_assert_eq(store_get(st, 0, &m), TERND_ESTORE_NOTFOUND);
  cr_assert_eq(store_get(st, 1001, &m), TERND_ESTORE_NOTFOUND);
  uint64_t bytes = in.bytes;
  cr_assert_eq(store_close(st), 0);

  store_recovery_t rec;
  st = su_open(NULL, &rec);
  cr_assert_eq(rec.records, 1000);
  cr_assert_eq(rec.torn_bytes + rec.corrupt_spans, 0);
  store_info(st, &in);
  cr_assert_eq(in.msgs, 1000);
  cr_assert_eq(in.bytes, bytes);
  cr_assert_eq(in.topics, 7);
  check_all(st, 0, 1000, 1);
  cr_assert_eq(su_put(st, 1000, 7, 0), 1001);
  uint64_t seq;
  cr_assert_eq(store_last_for_topic(st, "t.6", 3, &seq), 0);
  cr_assert_eq(seq, 1001); /* message 1000's topic: t.(1000 % 7) */
  store_close(st);
}

Test(store_log, msgid_and_time_stored) {
  store_t *st = su_open(NULL, NULL);
  store_rec_t r = {.topic = "a",
                   .topic_len = 1,
                   .msgid = "id-1",
                   .msgid_len = 4,
                   .data = "hello",
                   .len = 5,
                   .time_ns = 123456789};
  uint64_t seq;
  cr_assert_eq(store_append(st, &r, &seq), 0);
  store_close(st);
  st = su_open(NULL, NULL);
  store_msg_t m;
  cr_assert_eq(store_get(st, seq, &m), 0);
  cr_assert_eq(m.msgid_len, 4);
  cr_assert_eq(memcmp(m.msgid, "id-1", 4), 0);
  cr_assert_eq(m.len, 5);
  cr_assert_eq(memcmp(m.data, "hello", 5), 0);
  cr_assert_eq(m.time_ns, 123456789);
  /* An earlier time is stored as the last one: times never go back. */
  r.time_ns = 5;
  r.msgid_len = 0;
  cr_assert_eq(store_append(st, &r, &seq), 0);
  cr_assert_eq(store_get(st, seq, &m), 0);
  cr_assert_eq(m.time_ns, 123456789);
  cr_assert_null(m.msgid);
  store_close(st);
}

Test(store_log, sizes_refused) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.limits.max_msg_size = 100;
  store_t *st = su_open(&cfg, NULL);
  char big[101] = {0};
  store_rec_t r = {.topic = "a", .topic_len = 1, .data = big, .len = 101};
  cr_assert_eq(store_append(st, &r, NULL), TERND_ESTORE_TOOBIG);
  r.len = 100;
  cr_assert_eq(store_append(st, &r, NULL), 0);
  r.topic_len = 0;
  cr_assert_eq(store_append(st, &r, NULL), TERND_ESTORE_TOOBIG);
  cr_assert_eq(store_last_seq(st), 1);
  store_close(st);
}

Test(store_log, segments_roll_and_reopen) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.segment_bytes = 4096;
  cfg.sync = STORE_SYNC_NEVER;
  store_t *st = su_open(&cfg, NULL);
  for (unsigned i = 0; i < 5000; i++)
    su_put(st, i, 13, 40);
  store_info_t in;
  store_info(st, &in);
  cr_assert_gt(in.segments, 50);
  check_all(st, 0, 5000, 1);
  store_close(st);
  st = su_open(&cfg, NULL);
  check_all(st, 0, 5000, 1);
  store_msg_t m;
  cr_assert_eq(store_get(st, 3333, &m), 0);
  cr_assert(su_is(&m, 3332));
  store_close(st);
}

Test(store_log, max_msgs_discard_old_removes_segments) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.segment_bytes = 4096;
  cfg.sync = STORE_SYNC_NEVER;
  cfg.limits.max_msgs = 100;
  store_t *st = su_open(&cfg, NULL);
  for (unsigned i = 0; i < 3000; i++)
    su_put(st, i, 0, 20);
  store_info_t in;
  store_info(st, &in);
  cr_assert_eq(in.msgs, 100);
  cr_assert_eq(in.first_seq, 2901);
  cr_assert_lt(in.segments, 10, "old segments removed: %" PRIu64, in.segments);
  check_all(st, 2900, 3000, 2901);
  store_close(st);
  /* Raised limit after a restart: nothing comes back. */
  cfg.limits.max_msgs = 0;
  st = su_open(&cfg, NULL);
  store_info(st, &in);
  cr_assert_eq(in.msgs, 100);
  cr_assert_eq(in.first_seq, 2901);
  check_all(st, 2900, 3000, 2901);
  cr_assert_eq(su_put(st, 3000, 0, 0), 3001);
  store_close(st);
}

Test(store_log, discard_new_refuses) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.limits.max_msgs = 10;
  cfg.limits.discard = STORE_DISCARD_NEW;
  store_t *st = su_open(&cfg, NULL);
  for (unsigned i = 0; i < 10; i++)
    su_put(st, i, 0, 0);
  store_rec_t r = {.topic = "a", .topic_len = 1, .data = "x", .len = 1};
  uint64_t seq = 99;
  cr_assert_eq(store_append(st, &r, &seq), TERND_ESTORE_FULL);
  cr_assert_eq(seq, 0);
  cr_assert_eq(store_last_seq(st), 10);
  cr_assert_eq(store_delete(st, 3), 0);
  cr_assert_eq(store_append(st, &r, &seq), 0);
  cr_assert_eq(seq, 11);
  store_close(st);
}

Test(store_log, max_bytes) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.limits.max_bytes = 10000;
  store_t *st = su_open(&cfg, NULL);
  for (unsigned i = 0; i < 1000; i++)
    su_put(st, i, 0, 100);
  store_info_t in;
  store_info(st, &in);
  cr_assert_leq(in.bytes, 10000);
  cr_assert_gt(in.bytes, 10000 - 200);
  cr_assert_eq(in.last_seq, 1000);
  store_close(st);
  cfg.limits.discard = STORE_DISCARD_NEW;
  st = su_open(&cfg, NULL);
  store_rec_t r = {.topic = "a", .topic_len = 1, .data = "x", .len = 100};
  cr_assert_eq(store_append(st, &r, NULL), TERND_ESTORE_FULL);
  store_close(st);
}

Test(store_log, last_value_per_topic) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.limits.max_msgs_per_topic = 1;
  cfg.segment_bytes = 4096;
  cfg.sync = STORE_SYNC_NEVER;
  store_t *st = su_open(&cfg, NULL);
  for (unsigned i = 0; i < 2000; i++)
    su_put(st, i, 10, 8);
  store_info_t in;
  store_info(st, &in);
  cr_assert_eq(in.msgs, 10);
  cr_assert_eq(in.topics, 10);
  cr_assert_lt(in.segments, 5, "superseded segments removed");
  for (unsigned k = 0; k < 10; k++) {
    char t[8];
    int n = snprintf(t, sizeof t, "t.%u", k);
    uint64_t seq;
    cr_assert_eq(store_last_for_topic(st, t, (uint32_t)n, &seq), 0);
    cr_assert_eq(seq, 1990 + k + 1);
  }
  store_close(st);
  cfg.limits.max_msgs_per_topic = 0;
  st = su_open(&cfg, NULL);
  store_info(st, &in);
  cr_assert_eq(in.msgs, 10, "after reopen: %" PRIu64, in.msgs);
  check_all(st, 1990, 2000, 1991);
  store_close(st);
}

Test(store_log, three_per_topic) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.limits.max_msgs_per_topic = 3;
  store_t *st = su_open(&cfg, NULL);
  for (unsigned i = 0; i < 100; i++)
    su_put(st, i, 4, 0);
  store_info_t in;
  store_info(st, &in);
  cr_assert_eq(in.msgs, 12);
  check_all(st, 88, 100, 89);
  store_close(st);
  st = su_open(&cfg, NULL);
  store_info(st, &in);
  cr_assert_eq(in.msgs, 12);
  check_all(st, 88, 100, 89);
  store_close(st);
}

Test(store_log, time_index_and_max_age) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.limits.max_age_ms = 1000;
  cfg.sync = STORE_SYNC_NEVER;
  store_t *st = su_open(&cfg, NULL);
  int64_t now;
  {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  }
  /* 100 records 100 ms apart, the last one now. */
  for (unsigned i = 0; i < 100; i++) {
    char d[8];
    int n = snprintf(d, sizeof d, "m%u", i);
    store_rec_t r = {.topic = "a",
                     .topic_len = 1,
                     .data = d,
                     .len = (uint32_t)n,
                     .time_ns = now - (int64_t)(99 - i) * 100000000};
    cr_assert_eq(store_append(st, &r, NULL), 0);
  }
  uint64_t seq;
  cr_assert_eq(store_seq_for_time(st, now - 20000000000LL, &seq), 0);
  cr_assert_eq(seq, 1, "seq %" PRIu64, seq);
  cr_assert_eq(store_seq_for_time(st, now - 50 * 100000000LL - 1, &seq), 0);
  cr_assert_eq(seq, 50);
  cr_assert_eq(store_seq_for_time(st, now + 1, &seq), TERND_ESTORE_NOTFOUND);
  cr_assert_eq(store_expire(st, now), 89);
  cr_assert_eq(store_first_seq(st), 90);
  cr_assert_eq(store_seq_for_time(st, now - 5000000000LL, &seq), 0);
  cr_assert_eq(seq, 90);
  store_close(st);
}

Test(store_log, delete_survives_reopen) {
  store_t *st = su_open(NULL, NULL);
  for (unsigned i = 0; i < 10; i++)
    su_put(st, i, 2, 0);
  cr_assert_eq(store_delete(st, 5), 0);
  cr_assert_eq(store_delete(st, 5), TERND_ESTORE_NOTFOUND);
  cr_assert_eq(store_delete(st, 1), 0);
  cr_assert_eq(store_delete(st, 10), 0);
  cr_assert_eq(store_delete(st, 11), TERND_ESTORE_NOTFOUND);
  store_info_t in;
  store_info(st, &in);
  cr_assert_eq(in.msgs, 7);
  cr_assert_eq(in.first_seq, 2);
  cr_assert_eq(in.deleted, 2); /* 5 and 10, between 2 and last_seq 10 */
  uint64_t seq;
  cr_assert_eq(store_last_for_topic(st, "t.1", 3, &seq), 0);
  cr_assert_eq(seq, 8); /* 10 (message 9, t.1) is gone */
  store_close(st);
  st = su_open(NULL, NULL);
  store_info(st, &in);
  cr_assert_eq(in.msgs, 7);
  store_msg_t m;
  cr_assert_eq(store_get(st, 5, &m), TERND_ESTORE_NOTFOUND);
  cr_assert_eq(store_get(st, 6, &m), 0);
  cr_assert_eq(store_last_for_topic(st, "t.1", 3, &seq), 0);
  cr_assert_eq(seq, 8);
  /* The sequence goes on after the deleted last one. */
  cr_assert_eq(su_put(st, 10, 2, 0), 11);
  store_close(st);
}

Test(store_log, purges) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.segment_bytes = 4096;
  store_t *st = su_open(&cfg, NULL);
  for (unsigned i = 0; i < 1000; i++)
    su_put(st, i, 3, 10);
  uint64_t n;
  /* Below 101: 100 records. */
  cr_assert_eq(store_purge(st, NULL, 0, 101, 0, &n), 0);
  cr_assert_eq(n, 100);
  cr_assert_eq(store_first_seq(st), 101);
  /* Keep the newest 500 of everything. */
  cr_assert_eq(store_purge(st, NULL, 0, 0, 500, &n), 0);
  cr_assert_eq(n, 400);
  cr_assert_eq(store_first_seq(st), 501);
  /* Topic t.0 (seqs 1, 4, 7, ...) keeping its newest 2. */
  cr_assert_eq(store_purge(st, "t.0", 3, 0, 2, &n), 0);
  store_info_t in;
  store_info(st, &in);
  cr_assert_eq(in.msgs, 500 - n);
  uint64_t last;
  cr_assert_eq(store_last_for_topic(st, "t.0", 3, &last), 0);
  cr_assert_eq(last, 1000);
  store_close(st);
  st = su_open(&cfg, NULL);
  store_info_t in2;
  store_info(st, &in2);
  cr_assert_eq(in2.msgs, in.msgs);
  cr_assert_eq(in2.first_seq, in.first_seq);
  /* Everything; the next sequence stays. */
  cr_assert_eq(store_purge(st, NULL, 0, 0, 0, &n), 0);
  cr_assert_eq(n, in.msgs);
  store_close(st);
  st = su_open(&cfg, NULL);
  store_info(st, &in);
  cr_assert_eq(in.msgs, 0);
  cr_assert_eq(in.last_seq, 1000);
  cr_assert_eq(in.first_seq, 1001);
  cr_assert_eq(su_put(st, 0, 3, 0), 1001);
  store_close(st);
}

Test(store_log, iterator_follows_and_skips) {
  store_t *st = su_open(NULL, NULL);
  store_iter_t *it;
  cr_assert_eq(store_iter_open(st, 0, &it), 0);
  store_msg_t m;
  cr_assert_eq(store_iter_next(it, &m), 0);
  for (unsigned i = 0; i < 5; i++)
    su_put(st, i, 0, 0);
  for (unsigned i = 0; i < 5; i++) {
    cr_assert_eq(store_iter_next(it, &m), 1);
    cr_assert(su_is(&m, i));
  }
  cr_assert_eq(store_iter_next(it, &m), 0);
  su_put(st, 5, 0, 0);
  su_put(st, 6, 0, 0);
  cr_assert_eq(store_flush(st), 0);
  su_put(st, 7, 0, 0);
  cr_assert_eq(store_delete(st, 7), 0);
  cr_assert_eq(store_iter_next(it, &m), 1);
  cr_assert(su_is(&m, 5));
  cr_assert_eq(store_iter_next(it, &m), 1);
  cr_assert(su_is(&m, 7));
  cr_assert_eq(store_iter_next(it, &m), 0);
  store_iter_seek(it, 2);
  cr_assert_eq(store_iter_next(it, &m), 1);
  cr_assert_eq(m.seq, 2);
  store_iter_close(it);
  store_close(st);
}

Test(store_log, directory_locked) {
  store_t *st = su_open(NULL, NULL);
  store_config_t cfg;
  store_config_init(&cfg);
  store_t *st2 = NULL;
  cr_assert_eq(store_open(g_env, su_log_dir(), &cfg, &st2, NULL),
               TERND_ESTORE_LOCKED);
  store_close(st);
  st = su_open(NULL, NULL);
  cr_assert_eq(store_destroy(st), 0);
  struct stat sb;
  cr_assert_neq(stat(su_log_dir(), &sb), 0);
}

static atomic_uint_fast64_t g_stored;
static atomic_int g_calls;
static void on_stored(void *ctx, store_t *st, uint64_t seq) {
  (void)ctx, (void)st;
  atomic_store(&g_stored, seq);
  atomic_fetch_add(&g_calls, 1);
}

static void wait_stored(uint64_t want) {
  /* A wait, not a timing assertion: give up after a long time. */
  for (int i = 0; i < 30000 && atomic_load(&g_stored) < want; i++)
    usleep(1000);
}

Test(store_log, stored_always_via_sync_thread) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.on_stored = on_stored;
  store_t *st = su_open(&cfg, NULL);
  for (unsigned i = 0; i < 100; i++)
    su_put(st, i, 0, 0);
  cr_assert_eq(store_stored_seq(st), 0, "nothing stored before a flush");
  cr_assert_eq(store_flush(st), 0);
  wait_stored(100);
  cr_assert_eq(atomic_load(&g_stored), 100);
  cr_assert_eq(store_stored_seq(st), 100);
  cr_assert_eq(store_synced_seq(st), 100);
  store_close(st);
}

Test(store_log, stored_never_at_flush) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.on_stored = on_stored;
  cfg.sync = STORE_SYNC_NEVER;
  store_t *st = su_open(&cfg, NULL);
  for (unsigned i = 0; i < 100; i++)
    su_put(st, i, 0, 0);
  cr_assert_eq(store_stored_seq(st), 0);
  cr_assert_eq(store_flush(st), 0);
  cr_assert_eq(store_stored_seq(st), 100);
  cr_assert_eq(atomic_load(&g_stored), 100);
  cr_assert_eq(atomic_load(&g_calls), 1);
  cr_assert_eq(store_synced_seq(st), 0);
  cr_assert_eq(store_sync(st), 0);
  cr_assert_eq(store_synced_seq(st), 100);
  store_close(st);
}

Test(store_log, interval_syncs_later) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.sync = STORE_SYNC_INTERVAL;
  cfg.sync_interval_ms = 10;
  store_t *st = su_open(&cfg, NULL);
  for (unsigned i = 0; i < 10; i++)
    su_put(st, i, 0, 0);
  cr_assert_eq(store_flush(st), 0);
  cr_assert_eq(store_stored_seq(st), 10);
  for (int i = 0; i < 30000 && store_synced_seq(st) < 10; i++)
    usleep(1000);
  cr_assert_eq(store_synced_seq(st), 10);
  store_close(st);
}

Test(store_log, reconfigure_applies_limits) {
  store_t *st = su_open(NULL, NULL);
  for (unsigned i = 0; i < 100; i++)
    su_put(st, i, 5, 0);
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.limits.max_msgs_per_topic = 2;
  cr_assert_eq(store_reconfigure(st, &cfg), 0);
  store_info_t in;
  store_info(st, &in);
  cr_assert_eq(in.msgs, 10);
  check_all(st, 90, 100, 91);
  cfg.limits.max_msgs_per_topic = 0;
  cfg.limits.max_msgs = 4;
  cr_assert_eq(store_reconfigure(st, &cfg), 0);
  check_all(st, 96, 100, 97);
  store_close(st);
  store_config_init(&cfg);
  st = su_open(&cfg, NULL);
  check_all(st, 96, 100, 97);
  store_close(st);
}

/* ---- state files ---- */

Test(store_log, state_file_put_get_remove) {
  store_state_t *s;
  cr_assert_eq(store_state_open(g_env, g_dir, "c1", &s), 0);
  uint8_t *d;
  size_t n;
  cr_assert_eq(store_state_get(s, &d, &n), TERND_ESTORE_NOTFOUND);
  for (int i = 0; i < 100; i++) {
    char buf[32];
    int k = snprintf(buf, sizeof buf, "state %d", i);
    cr_assert_eq(store_state_put(s, buf, (size_t)k), 0);
  }
  cr_assert_eq(store_state_close(s), 0);
  cr_assert_eq(store_state_open(g_env, g_dir, "c1", &s), 0);
  cr_assert_eq(store_state_get(s, &d, &n), 0);
  cr_assert_eq(n, 8);
  cr_assert_eq(memcmp(d, "state 99", 8), 0);
  free(d);
  cr_assert_eq(store_state_remove(s), 0);
  cr_assert_eq(store_state_open(g_env, g_dir, "c1", &s), 0);
  cr_assert_eq(store_state_get(s, &d, &n), TERND_ESTORE_NOTFOUND);
  store_state_close(s);
  cr_assert_eq(store_state_open(g_env, g_dir, "../x", &s), UV_EINVAL);
  cr_assert_eq(store_state_open(g_env, g_dir, ".x", &s), UV_EINVAL);
}

Test(store_log, state_file_damage_detected) {
  store_state_t *s;
  cr_assert_eq(store_state_open(g_env, g_dir, "c2", &s), 0);
  cr_assert_eq(store_state_put(s, "abcdefgh", 8), 0);
  cr_assert_eq(store_state_flush(s), 0);
  char path[400];
  snprintf(path, sizeof path, "%s/c2", g_dir);
  FILE *f = fopen(path, "r+b");
  cr_assert_not_null(f);
  fseek(f, 26, SEEK_SET);
  fputc('Z', f);
  fclose(f);
  uint8_t *d;
  size_t n;
  cr_assert_eq(store_state_get(s, &d, &n), TERND_ESTORE_CORRUPT);
  store_state_close(s);
}

Test(store_log, consumer_state_codec) {
  store_pending_t p[3] = {{10, 1, 111, 1}, {12, 3, 222, 4}, {15, 7, -1, 9}};
  store_consumer_state_t cs = {.delivered_stream_seq = 15,
                               .delivered_consumer_seq = 7,
                               .ack_floor_stream_seq = 9,
                               .ack_floor_consumer_seq = 0,
                               .npending = 3,
                               .pending = p};
  uint8_t *b;
  size_t n;
  cr_assert_eq(store_consumer_encode(&cs, &b, &n), 0);
  store_consumer_state_t back;
  cr_assert_eq(store_consumer_decode(b, n, &back), 0);
  cr_assert_eq(back.delivered_stream_seq, 15);
  cr_assert_eq(back.delivered_consumer_seq, 7);
  cr_assert_eq(back.ack_floor_stream_seq, 9);
  cr_assert_eq(back.npending, 3);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(back.pending[i].stream_seq, p[i].stream_seq);
    cr_assert_eq(back.pending[i].consumer_seq, p[i].consumer_seq);
    cr_assert_eq(back.pending[i].time_ns, p[i].time_ns);
    cr_assert_eq(back.pending[i].deliveries, p[i].deliveries);
  }
  store_consumer_state_free(&back);
  cr_assert_eq(store_consumer_decode(b, n - 1, &back), TERND_ESTORE_CORRUPT);
  b[40] = 0xff; /* a pending count the bytes cannot hold */
  cr_assert_eq(store_consumer_decode(b, n, &back), TERND_ESTORE_CORRUPT);
  b[0] = 2;
  cr_assert_eq(store_consumer_decode(b, n, &back), TERND_ESTORE_FORMAT);
  free(b);
}

Test(store_log, compaction_of_a_last_value_store) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.limits.max_msgs_per_topic = 1;
  cfg.segment_bytes = 4096;
  cfg.sync = STORE_SYNC_NEVER;
  store_t *st = su_open(&cfg, NULL);
  /* A cold key first, then hot keys updated over and over: the first
   * segment keeps one live record among dead ones. */
  store_rec_t cold = {.topic = "cold", .topic_len = 4, .data = "c", .len = 1};
  cr_assert_eq(store_append(st, &cold, NULL), 0);
  for (unsigned i = 0; i < 3000; i++)
    su_put(st, i, 3, 40);
  store_iter_t *it;
  cr_assert_eq(store_iter_open(st, 0, &it), 0);
  store_msg_t m;
  cr_assert_eq(store_iter_next(it, &m), 1);
  cr_assert_eq(m.seq, 1);
  store_info_t before, after;
  store_info(st, &before);
  int64_t freed = store_compact(st, UINT64_MAX);
  cr_assert_gt(freed, 3000, "freed %" PRId64, freed);
  store_info(st, &after);
  cr_assert_eq(after.disk_bytes, before.disk_bytes - (uint64_t)freed);
  cr_assert_eq(after.msgs, 4);
  cr_assert_eq(store_compact(st, UINT64_MAX), 0, "nothing left to gain");
  /* The iterator opened before goes on. */
  cr_assert_eq(store_iter_next(it, &m), 1);
  cr_assert_eq(m.seq, 3001 - 2);
  store_iter_close(it);
  cr_assert_eq(store_get(st, 1, &m), 0);
  cr_assert_eq(m.len, 1);
  cr_assert_eq(memcmp(m.data, "c", 1), 0);
  for (unsigned i = 2997; i < 3000; i++) {
    cr_assert_eq(store_get(st, i + 2, &m), 0);
    cr_assert(su_is(&m, i));
  }
  store_close(st);
  store_recovery_t rec;
  st = su_open(&cfg, &rec);
  cr_assert_eq(rec.corrupt_spans + rec.torn_bytes, 0);
  store_info(st, &after);
  cr_assert_eq(after.msgs, 4);
  cr_assert_eq(store_get(st, 1, &m), 0);
  cr_assert_eq(memcmp(m.data, "c", 1), 0);
  store_close(st);
}
