/*
 * The stream store's recovery (broker/store/README.md, "Recovery"): a torn
 * tail cut at every byte of the last record, flipped bytes at every byte
 * of a record in the middle, a damaged last record, a damaged segment
 * header, a zero-filled tail, a newer format version, and damage found
 * later by a read.
 */
#include "store_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/format.h"

TestSuite(store_recovery, .init = su_setup, .fini = su_teardown);

static char *seg_file(uint64_t first) {
  static char p[400];
  snprintf(p, sizeof p, "%s/%020" PRIu64 ".seg", su_log_dir(), first);
  return p;
}

static size_t file_size(const char *path) {
  struct stat sb;
  cr_assert_eq(stat(path, &sb), 0, "%s", path);
  return (size_t)sb.st_size;
}

static uint8_t *slurp(const char *path, size_t *n) {
  *n = file_size(path);
  uint8_t *b = malloc(*n ? *n : 1);
  int fd = open(path, O_RDONLY);
  cr_assert_geq(fd, 0);
  cr_assert_eq(read(fd, b, *n), (ssize_t)*n);
  close(fd);
  return b;
}

static void spill(const char *path, const uint8_t *b, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, b, n), (ssize_t)n);
  close(fd);
}

/* Removes the log's files but the first segment. */
static void clean_aside(void) {
  DIR *d = opendir(su_log_dir());
  struct dirent *de;
  char p[600];
  while ((de = readdir(d)) != NULL)
    if (strstr(de->d_name, ".corrupt")) {
      snprintf(p, sizeof p, "%s/%s", su_log_dir(), de->d_name);
      unlink(p);
    }
  closedir(d);
}

static int count_aside(void) {
  DIR *d = opendir(su_log_dir());
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d)) != NULL)
    n += strstr(de->d_name, ".corrupt") != NULL;
  closedir(d);
  return n;
}

/* Every record 1..n (but `missing`) holds message seq - 1. */
static void check_records(store_t *st, uint64_t n, uint64_t missing) {
  store_iter_t *it;
  cr_assert_eq(store_iter_open(st, 0, &it), 0);
  store_msg_t m;
  uint64_t want = 1;
  int rc;
  while ((rc = store_iter_next(it, &m)) == 1) {
    if (want == missing)
      want++;
    cr_assert_eq(m.seq, want);
    cr_assert(su_is(&m, (unsigned)(want - 1)), "record %" PRIu64, m.seq);
    want++;
  }
  cr_assert_eq(rc, 0);
  if (want == missing)
    want++;
  cr_assert_eq(want, n + 1, "read up to %" PRIu64 " of %" PRIu64, want - 1, n);
  store_iter_close(it);
}

Test(store_recovery, torn_tail_at_every_byte_of_the_last_record) {
  store_t *st = su_open(NULL, NULL);
  for (unsigned i = 0; i < 19; i++)
    su_put(st, i, 3, 30);
  store_close(st);
  size_t before = file_size(seg_file(1));
  st = su_open(NULL, NULL);
  su_put(st, 19, 3, 30);
  store_close(st);
  size_t n;
  uint8_t *whole = slurp(seg_file(1), &n);
  cr_assert_gt(n, before);
  for (size_t cut = before; cut < n; cut++) {
    spill(seg_file(1), whole, cut);
    store_recovery_t rec;
    st = su_open(NULL, &rec);
    cr_assert_eq(rec.records, 19, "cut at %zu", cut);
    cr_assert_eq(rec.torn_bytes, cut - before, "cut at %zu", cut);
    cr_assert_eq(rec.corrupt_spans, 0);
    cr_assert_eq(file_size(seg_file(1)), before, "the tail is cut off");
    check_records(st, 19, 0);
    /* The log goes on from there: the lost record's sequence again. */
    cr_assert_eq(su_put(st, 19, 3, 30), 20);
    store_close(st);
    st = su_open(NULL, &rec);
    cr_assert_eq(rec.records, 20);
    cr_assert_eq(rec.torn_bytes, 0);
    check_records(st, 20, 0);
    store_close(st);
    cr_assert_eq(count_aside(), 0, "a torn write is no damage to keep");
  }
  free(whole);
}

/* The offsets of record `seq` in the first segment (a log of messages
 * only). */
static void record_span(const uint8_t *b, size_t n, uint64_t seq, size_t *off,
                        size_t *len) {
  size_t o = FMT_SEG_HDR;
  while (o < n) {
    fmt_rec_t r;
    cr_assert_eq(fmt_rec_decode(b + o, n - o, &r), 0);
    if (r.kind == FMT_MSG && r.seq == seq) {
      *off = o;
      *len = r.len;
      return;
    }
    o += r.len;
  }
  cr_assert_fail("record %" PRIu64 " not found", seq);
}

Test(store_recovery, flipped_byte_at_every_offset_of_a_middle_record) {
  store_t *st = su_open(NULL, NULL);
  for (unsigned i = 0; i < 100; i++)
    su_put(st, i, 3, 20);
  store_close(st);
  size_t n, off, len;
  uint8_t *whole = slurp(seg_file(1), &n);
  record_span(whole, n, 50, &off, &len);
  for (size_t k = 0; k < len; k++) {
    whole[off + k] ^= 0x5a;
    spill(seg_file(1), whole, n);
    whole[off + k] ^= 0x5a;
    clean_aside();
    store_recovery_t rec;
    st = su_open(NULL, &rec);
    cr_assert_eq(rec.records, 99, "flip at +%zu", k);
    cr_assert_eq(rec.corrupt_spans, 1, "flip at +%zu", k);
    cr_assert_eq(rec.corrupt_bytes, len);
    cr_assert_eq(rec.lost_seqs, 1);
    cr_assert_eq(rec.torn_bytes, 0);
    store_msg_t m;
    cr_assert_eq(store_get(st, 50, &m), TERND_ESTORE_NOTFOUND);
    check_records(st, 100, 50);
    cr_assert_eq(count_aside(), 1, "the damaged bytes are kept aside");
    store_close(st);
  }
  /* The damage stays in place (reported at each open); appends go on. */
  st = su_open(NULL, NULL);
  cr_assert_eq(su_put(st, 100, 3, 20), 101);
  store_close(st);
  store_recovery_t rec;
  st = su_open(NULL, &rec);
  cr_assert_eq(rec.records, 100);
  cr_assert_eq(rec.corrupt_spans, 1);
  store_close(st);
  free(whole);
}

Test(store_recovery, damaged_last_record_cut_and_kept_aside) {
  store_t *st = su_open(NULL, NULL);
  for (unsigned i = 0; i < 10; i++)
    su_put(st, i, 3, 20);
  store_close(st);
  size_t n, off, len;
  uint8_t *whole = slurp(seg_file(1), &n);
  record_span(whole, n, 10, &off, &len);
  cr_assert_eq(off + len, n);
  whole[off + len - 1] ^= 1;
  spill(seg_file(1), whole, n);
  store_recovery_t rec;
  st = su_open(NULL, &rec);
  cr_assert_eq(rec.records, 9);
  cr_assert_eq(rec.torn_bytes, len);
  cr_assert_eq(count_aside(), 1);
  check_records(st, 9, 0);
  store_close(st);
  free(whole);
}

Test(store_recovery, zero_filled_tail) {
  store_t *st = su_open(NULL, NULL);
  for (unsigned i = 0; i < 10; i++)
    su_put(st, i, 3, 20);
  store_close(st);
  size_t n;
  uint8_t *whole = slurp(seg_file(1), &n);
  uint8_t *z = calloc(1, n + 4096);
  memcpy(z, whole, n);
  spill(seg_file(1), z, n + 4096);
  store_recovery_t rec;
  st = su_open(NULL, &rec);
  cr_assert_eq(rec.records, 10);
  cr_assert_eq(rec.torn_bytes, 4096);
  check_records(st, 10, 0);
  store_close(st);
  free(z);
  free(whole);
}

Test(store_recovery, damage_in_an_earlier_segment) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.segment_bytes = 4096;
  store_t *st = su_open(&cfg, NULL);
  for (unsigned i = 0; i < 1000; i++)
    su_put(st, i, 3, 20);
  store_close(st);
  /* The first segment's last record: damaged with nothing valid after it
   * in its file, the next segment holds on. */
  size_t n, off, len;
  uint8_t *b = slurp(seg_file(1), &n);
  size_t o = FMT_SEG_HDR;
  uint64_t last = 0;
  while (o < n) {
    fmt_rec_t r;
    cr_assert_eq(fmt_rec_decode(b + o, n - o, &r), 0);
    if (r.kind == FMT_MSG)
      last = r.seq;
    o += r.len;
  }
  record_span(b, n, last, &off, &len);
  b[off + FMT_REC_HDR] ^= 0xff;
  spill(seg_file(1), b, n);
  store_recovery_t rec;
  st = su_open(&cfg, &rec);
  cr_assert_eq(rec.records, 999);
  cr_assert_eq(rec.corrupt_spans, 1);
  cr_assert_eq(rec.torn_bytes, 0);
  check_records(st, 1000, last);
  store_close(st);
  /* A damaged header: the whole segment goes aside, the rest holds. */
  b[3] ^= 1;
  spill(seg_file(1), b, n);
  st = su_open(&cfg, &rec);
  cr_assert_eq(rec.records, 1000 - last);
  cr_assert_eq(store_first_seq(st), last + 1);
  cr_assert_eq(store_last_seq(st), 1000);
  store_close(st);
  free(b);
}

Test(store_recovery, newer_version_refused) {
  store_t *st = su_open(NULL, NULL);
  su_put(st, 0, 1, 0);
  store_close(st);
  size_t n;
  uint8_t *b = slurp(seg_file(1), &n);
  b[8] = 2; /* version 2, with its header checksum made right */
  uint32_t sum = fmt_checksum(b, 28);
  for (int i = 0; i < 4; i++)
    b[28 + i] = (uint8_t)(sum >> (8 * i));
  spill(seg_file(1), b, n);
  store_config_t cfg;
  store_config_init(&cfg);
  cr_assert_eq(store_open(g_env, su_log_dir(), &cfg, &st, NULL),
               TERND_ESTORE_FORMAT);
  cr_assert_eq(file_size(seg_file(1)), n, "left as it was");
  free(b);
}

Test(store_recovery, damage_found_by_a_read) {
  store_t *st = su_open(NULL, NULL);
  for (unsigned i = 0; i < 10; i++)
    su_put(st, i, 3, 20);
  cr_assert_eq(store_sync(st), 0);
  size_t n, off, len;
  uint8_t *b = slurp(seg_file(1), &n);
  record_span(b, n, 5, &off, &len);
  free(b);
  int fd = open(seg_file(1), O_WRONLY);
  cr_assert_eq(pwrite(fd, "Q", 1, (off_t)(off + len - 1)), 1);
  close(fd);
  store_msg_t m;
  cr_assert_eq(store_get(st, 5, &m), TERND_ESTORE_CORRUPT);
  cr_assert_eq(store_get(st, 6, &m), 0);
  store_iter_t *it;
  cr_assert_eq(store_iter_open(st, 4, &it), 0);
  cr_assert_eq(store_iter_next(it, &m), 1);
  cr_assert_eq(m.seq, 4);
  cr_assert_eq(store_iter_next(it, &m), TERND_ESTORE_CORRUPT);
  cr_assert_eq(store_iter_seq(it), 6, "the iterator goes on past it");
  cr_assert_eq(store_iter_next(it, &m), 1);
  cr_assert_eq(m.seq, 6);
  store_iter_close(it);
  store_close(st);
}

Test(store_recovery, iterator_moves_past_an_unreadable_record) {
  store_t *st = su_open(NULL, NULL);
  for (unsigned i = 0; i < 10; i++)
    su_put(st, i, 3, 20);
  cr_assert_eq(store_sync(st), 0);
  size_t n, off, len;
  uint8_t *b = slurp(seg_file(1), &n);
  record_span(b, n, 6, &off, &len);
  free(b);
  /* The file loses records 6..10 under the open log: reads of them fail
   * (a short read: an I/O error). */
  cr_assert_eq(truncate(seg_file(1), (off_t)off), 0);
  store_iter_t *it;
  cr_assert_eq(store_iter_open(st, 0, &it), 0);
  store_msg_t m;
  int ok = 0, errors = 0, rc = 1;
  for (int calls = 0; calls < 100 && rc != 0; calls++) {
    rc = store_iter_next(it, &m);
    ok += rc == 1;
    errors += rc < 0;
  }
  cr_assert_eq(rc, 0, "a loop that skips errors ends");
  cr_assert_eq(ok, 5);
  cr_assert_eq(errors, 5);
  store_iter_close(it);
  store_close(st);
}
