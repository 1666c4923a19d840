/*
 * Crash safety of the stream store: a child process appends batches to a
 * log with sync ALWAYS and reports every stored sequence (what a broker
 * would acknowledge) through a pipe, from the sync thread's `on_stored`;
 * the parent kills it with SIGKILL at a random moment, opens the log, and
 * checks that every acknowledged record is there, in order, with no
 * duplicate and no corrupt record; then the next child goes on with the
 * same log. Dozens of rounds, with small segments so that kills land
 * around segment changes too.
 */
#include "store_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(store_crash, .init = su_setup, .fini = su_teardown);

#define ROUNDS 40

static int g_ack_fd = -1;

static void child_on_stored(void *ctx, store_t *st, uint64_t seq) {
  (void)ctx, (void)st;
  ssize_t w = write(g_ack_fd, &seq, sizeof seq);
  (void)w;
}

/* The payload of record seq: its sequence, then a pattern up to a length
 * that depends on it. */
static size_t payload(uint64_t seq, uint8_t *buf) {
  size_t len = 8 + (size_t)((seq * 2654435761u) % 1500);
  memcpy(buf, &seq, 8);
  for (size_t i = 8; i < len; i++)
    buf[i] = (uint8_t)(seq + i);
  return len;
}

static void child(int ack_fd, unsigned seed) {
  g_ack_fd = ack_fd;
  store_env_t *env;
  if (store_env_new(&env) != 0)
    _exit(2);
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.segment_bytes = 64 << 10;
  cfg.on_stored = child_on_stored;
  store_t *st;
  if (store_open(env, su_log_dir(), &cfg, &st, NULL) != 0)
    _exit(3);
  srand(seed);
  static uint8_t buf[2048];
  for (;;) {
    int batch = 1 + rand() % 64;
    for (int i = 0; i < batch; i++) {
      uint64_t seq = store_last_seq(st) + 1;
      size_t len = payload(seq, buf);
      store_rec_t r = {
          .topic = "crash", .topic_len = 5, .data = buf, .len = (uint32_t)len};
      uint64_t got;
      if (store_append(st, &r, &got) != 0 || got != seq)
        _exit(4);
    }
    if (store_flush(st) != 0)
      _exit(5);
    /* A window of one batch: the next batch is appended while this one
     * is synced, not before the previous one is (the log stays small). */
    uint64_t prev = store_last_seq(st) - (uint64_t)batch;
    while (store_stored_seq(st) < prev)
      usleep(50);
  }
}

static void check_log(uint64_t acked, uint64_t *last) {
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.segment_bytes = 64 << 10;
  store_recovery_t rec;
  store_t *st = NULL;
  int rc = store_open(g_env, su_log_dir(), &cfg, &st, &rec);
  cr_assert_eq(rc, 0, "open after kill: %s", ternd_strerror(rc));
  cr_assert_eq(rec.corrupt_spans, 0, "no damage in the middle");
  store_iter_t *it;
  cr_assert_eq(store_iter_open(st, 0, &it), 0);
  store_msg_t m;
  uint64_t want = 1;
  static uint8_t buf[2048];
  while ((rc = store_iter_next(it, &m)) == 1) {
    cr_assert_eq(m.seq, want, "in order, no gap, no duplicate");
    size_t len = payload(m.seq, buf);
    cr_assert_eq(m.len, len, "record %" PRIu64, m.seq);
    cr_assert_eq(memcmp(m.data, buf, len), 0, "record %" PRIu64, m.seq);
    want++;
  }
  cr_assert_eq(rc, 0, "no corrupt record: %s", ternd_strerror(rc));
  store_iter_close(it);
  cr_assert_geq(want - 1, acked,
                "acknowledged up to %" PRIu64 ", found up to %" PRIu64, acked,
                want - 1);
  *last = want - 1;
  store_close(st);
}

Test(store_crash, sigkill_during_appends_keeps_every_acked_record,
     .timeout = 300) {
  uint64_t acked_total = 0, last = 0;
  unsigned seed = (unsigned)time(NULL);
  cr_log_info("seed %u", seed);
  srand(seed);
  int killed_with_acks = 0;
  for (int round = 0; round < ROUNDS; round++) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
      close(p[0]);
      child(p[1], seed + (unsigned)round);
    }
    close(p[1]);
    /* Wait for the first ack, then kill after a random number more
     * (0..29), so kills land anywhere in the write/sync cycle. */
    int more = rand() % 30, seen = 0;
    uint64_t acked = 0, v;
    while (seen <= more) {
      ssize_t r = read(p[0], &v, sizeof v);
      if (r < 0 && errno == EINTR)
        continue;
      if (r != (ssize_t)sizeof v) {
        int status;
        waitpid(pid, &status, 0);
        cr_assert_fail("child died early: status %d (exit %d)", status,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
      }
      acked = v > acked ? v : acked;
      seen++;
    }
    usleep((useconds_t)(rand() % 2000)); /* into the next batch, or not */
    kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "child exited by itself: status %d", status);
    /* Acks written before the kill are still in the pipe. */
    ssize_t r;
    while ((r = read(p[0], &v, sizeof v)) == (ssize_t)sizeof v)
      acked = v > acked ? v : acked;
    close(p[0]);
    cr_assert_geq(acked, last, "acks go on from the last round");
    check_log(acked, &last);
    killed_with_acks += acked > acked_total;
    acked_total = acked;
  }
  cr_log_info("%d rounds, %" PRIu64 " records acknowledged, %" PRIu64
              " in the log",
              ROUNDS, acked_total, last);
  cr_assert_eq(killed_with_acks, ROUNDS);
}
