/*
 * Replays inputs through a fuzz target without libFuzzer, so any compiler
 * (gcc in the regular test suite) runs the corpus and the regression inputs
 * through the very same LLVMFuzzerTestOneInput.
 *
 *   replay_<target> [--optional] PATH...
 *
 * Each PATH is a file or a directory whose regular files are all replayed
 * (not recursively, in name order so runs are repeatable). A missing PATH is
 * an error unless --optional precedes it: regression folders exist only once
 * a crash has been kept. Replaying no file at all is an error too, so a
 * wrong path cannot turn the test into one that always passes. A failed
 * property aborts, which fails the test.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  for (;;) {
    if (buf == NULL) {
      fclose(fp);
      fprintf(stderr, "replay: out of memory\n");
      return -1;
    }
    len += fread(buf + len, 1, cap - len, fp);
    if (len < cap)
      break;
    uint8_t *bigger = realloc(buf, cap * 2);
    if (bigger == NULL)
      free(buf);
    buf = bigger;
    cap *= 2;
  }
  int bad = ferror(fp);
  fclose(fp);
  if (bad) {
    free(buf);
    fprintf(stderr, "replay: %s: read error\n", path);
    return -1;
  }
  /* An exact-size copy lets ASan catch a read one byte past the input. */
  uint8_t *exact = malloc(len ? len : 1);
  if (exact == NULL) {
    free(buf);
    return -1;
  }
  memcpy(exact, buf, len);
  free(buf);
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file in dir; returns how many, or -1. */
static long replay_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  long rc = 0;
  while ((e = readdir(d)) != NULL) {
    size_t need = strlen(dir) + strlen(e->d_name) + 2;
    char *p = malloc(need);
    struct stat st;
    if (p == NULL)
      break;
    snprintf(p, need, "%s/%s", dir, e->d_name);
    if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
      free(p);
      continue;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **more = realloc(names, cap * sizeof(*names));
      if (more == NULL) {
        free(p);
        rc = -1;
        break;
      }
      names = more;
    }
    names[n++] = p;
  }
  closedir(d);
  if (n > 0)
    qsort(names, n, sizeof(*names), by_name);
  for (size_t i = 0; i < n; i++) {
    if (rc >= 0 && replay_file(names[i]) == 0)
      rc++;
    else
      rc = -1;
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  long total = 0;
  int optional = 0, failed = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--optional") == 0) {
      optional = 1;
      continue;
    }
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      if (!optional) {
        fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
        failed = 1;
      }
      optional = 0;
      continue;
    }
    optional = 0;
    long n = S_ISDIR(st.st_mode) ? replay_dir(argv[i])
                                 : (replay_file(argv[i]) == 0 ? 1 : -1);
    if (n < 0)
      failed = 1;
    else
      total += n;
  }
  if (total == 0) {
    fprintf(stderr, "replay: no input files found\n");
    failed = 1;
  }
  fprintf(stderr, "replay: %ld inputs, %s\n", total, failed ? "FAILED" : "ok");
  return failed ? 1 : 0;
}
