/*
 * Writes fuzz_segment's seed corpus: segment files as the store writes
 * them (messages with and without ids, tombstones, purge records), and the
 * same with a torn tail and a damaged record.
 *
 *   fuzz_gen_segment DIR   (files go to DIR/fuzz_segment/)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/format.h"

static uint8_t g_buf[1 << 16];

static size_t segment(uint64_t first, int msgs, int with_marks) {
  size_t n = 0;
  fmt_seg_header_encode(g_buf, first, 1700000000000000000LL);
  n = FMT_SEG_HDR;
  for (int i = 0; i < msgs; i++) {
    char topic[16], data[64];
    int tl = snprintf(topic, sizeof topic, "t.%d", i % 3);
    int dl = snprintf(data, sizeof data, "message %d", i);
    const char *id = i % 2 ? "id" : NULL;
    fmt_rec_encode(g_buf + n, FMT_MSG, first + (uint64_t)i,
                   1700000000000000000LL + i, topic, (size_t)tl, id, id ? 2 : 0,
                   data, (size_t)dl);
    n += fmt_rec_size((size_t)tl, id ? 2 : 0, (size_t)dl);
    if (with_marks && i == msgs / 2) {
      fmt_rec_encode(g_buf + n, FMT_DELETE, first + 1, 0, NULL, 0, NULL, 0,
                     NULL, 0);
      n += FMT_REC_HDR;
      fmt_rec_encode(g_buf + n, FMT_PURGE, first + 2, 0, NULL, 0, NULL, 0, NULL,
                     0);
      n += FMT_REC_HDR;
    }
  }
  return n;
}

static int put(const char *dir, const char *name, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/fuzz_segment/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(g_buf, 1, n, f) != n) {
    fprintf(stderr, "gen_segment: %s: %s\n", path, strerror(errno));
    return 1;
  }
  fclose(f);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz_gen_segment DIR\n");
    return 2;
  }
  char sub[4096];
  mkdir(argv[1], 0755);
  snprintf(sub, sizeof sub, "%s/fuzz_segment", argv[1]);
  mkdir(sub, 0755);
  int bad = 0;
  bad |= put(argv[1], "empty_segment", segment(1, 0, 0));
  bad |= put(argv[1], "messages", segment(1, 20, 0));
  bad |= put(argv[1], "messages_marks", segment(100, 20, 1));
  size_t n = segment(7, 10, 1);
  bad |= put(argv[1], "torn_tail", n - 5);
  g_buf[FMT_SEG_HDR + 40] ^= 0x40;
  bad |= put(argv[1], "damaged_record", n);
  return bad;
}
