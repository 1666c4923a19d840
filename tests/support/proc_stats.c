/*
 * Test harness: /proc readings of a process (see proc_stats.h).
 */
#include "proc_stats.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The "Key:   N kB" line of /proc/pid/status, in KiB, or -1. */
static long status_kb(pid_t pid, const char *key) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  char line[256];
  size_t klen = strlen(key);
  long kb = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      kb = strtol(line + klen + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}

long tt_proc_rss_kb(pid_t pid) {
  return status_kb(pid, "VmRSS");
}

long tt_proc_hwm_kb(pid_t pid) {
  return status_kb(pid, "VmHWM");
}

int tt_proc_fd_count(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  if (d == NULL)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] != '.')
      n++;
  }
  closedir(d);
  return n;
}
