/*
 * A full disk (broker/store/store.h, "Disk full"): on a 2 MiB tmpfs, appends
 * fail with UV_ENOSPC and change nothing, every record before stays
 * readable and survives a reopen, deletes still work, and appends succeed
 * again once space is freed. Needs root to mount (skipped otherwise).
 */
#include "store_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>
#include <uv.h>

static bool g_mounted;
static int g_mount_errno;
static char g_fs[200];

static void setup(void) {
  su_setup();
  snprintf(g_fs, sizeof g_fs, "%.190s/fs", g_dir);
  cr_assert_eq(mkdir(g_fs, 0755), 0);
  g_mounted = mount("tmpfs", g_fs, "tmpfs", 0, "size=2m") == 0;
  g_mount_errno = errno;
  if (g_mounted) /* the log lives on the small filesystem */
    snprintf(g_dir, sizeof g_dir, "%s", g_fs);
}

static void teardown(void) {
  if (g_mounted) {
    cr_assert_eq(umount(g_fs), 0);
    g_dir[strlen(g_dir) - 3] = '\0'; /* back to the parent directory */
  }
  su_teardown();
}

TestSuite(store_diskfull, .init = setup, .fini = teardown);

static void fill_file(const char *path, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  cr_assert_geq(fd, 0);
  char buf[4096];
  memset(buf, 'f', sizeof buf);
  for (size_t done = 0; done < n; done += sizeof buf)
    cr_assert_eq(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
  close(fd);
}

Test(store_diskfull, enospc_refuses_the_append_and_corrupts_nothing) {
  if (!g_mounted)
    cr_skip_test("cannot mount a tmpfs (needs root): %s",
                 strerror(g_mount_errno));
  char filler[400];
  snprintf(filler, sizeof filler, "%s/filler", g_fs);
  fill_file(filler, 512 << 10);
  store_config_t cfg;
  store_config_init(&cfg);
  cfg.segment_bytes = 256 << 10;
  store_t *st = su_open(&cfg, NULL);
  char data[1000];
  memset(data, 'd', sizeof data);
  uint64_t last = 0;
  int rc = 0;
  for (unsigned i = 0; i < 100000; i++) {
    int n = snprintf(data, sizeof data, "m%u", i);
    data[n] = 'x';
    store_rec_t r = {
        .topic = "full", .topic_len = 4, .data = data, .len = sizeof data};
    uint64_t seq;
    rc = store_append(st, &r, &seq);
    if (rc != 0)
      break;
    last = seq;
    if (i % 16 == 0)
      cr_assert_eq(store_flush(st), 0);
  }
  cr_assert_eq(rc, UV_ENOSPC, "append: %s", ternd_strerror(rc));
  cr_assert_gt(last, 100);
  cr_assert_eq(store_last_seq(st), last, "the refused append changed nothing");
  cr_assert_eq(store_sync(st), 0);
  cr_assert_eq(store_stored_seq(st), last);
  /* Refused again while full; deletes still work. */
  store_rec_t r = {
      .topic = "full", .topic_len = 4, .data = data, .len = sizeof data};
  cr_assert_eq(store_append(st, &r, NULL), UV_ENOSPC);
  cr_assert_eq(store_delete(st, 1), 0);
  store_info_t in;
  store_info(st, &in);
  cr_assert_not(in.failed);
  cr_assert_eq(store_close(st), 0);

  store_recovery_t rec;
  st = su_open(&cfg, &rec);
  cr_assert_eq(rec.corrupt_spans + rec.torn_bytes, 0);
  cr_assert_eq(rec.records, last);
  store_iter_t *it;
  cr_assert_eq(store_iter_open(st, 0, &it), 0);
  store_msg_t m;
  uint64_t want = 2;
  while ((rc = store_iter_next(it, &m)) == 1) {
    cr_assert_eq(m.seq, want);
    cr_assert(su_is(&m, (unsigned)(want - 1)));
    want++;
  }
  cr_assert_eq(rc, 0);
  cr_assert_eq(want, last + 1);
  store_iter_close(it);

  /* Space freed: appends go on. */
  cr_assert_eq(unlink(filler), 0);
  uint64_t seq;
  cr_assert_eq(store_append(st, &r, &seq), 0);
  cr_assert_eq(seq, last + 1);
  cr_assert_eq(store_sync(st), 0);
  cr_assert_eq(store_close(st), 0);
  st = su_open(&cfg, &rec);
  cr_assert_eq(store_last_seq(st), last + 1);
  store_close(st);
}
