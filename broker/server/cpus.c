/*
 * The CPUs the process may use (see cpus.h).
 */
#define _GNU_SOURCE
#include "server/cpus.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

/* The cgroup v2 quota in CPUs (rounded up), or 0 for none. */
static int cgroup_quota(void) {
  /* The process's own cgroup: "0::/path" in /proc/self/cgroup. */
  char path[512] = "/sys/fs/cgroup/cpu.max";
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (f != NULL) {
    char line[400];
    while (fgets(line, sizeof line, f) != NULL) {
      if (strncmp(line, "0::", 3) == 0) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", line + 3);
        break;
      }
    }
    fclose(f);
  }
  f = fopen(path, "r");
  if (f == NULL)
    f = fopen("/sys/fs/cgroup/cpu.max", "r");
  if (f == NULL)
    return 0;
  char quota[32];
  unsigned long long period = 0, q = 0;
  int n = fscanf(f, "%31s %llu", quota, &period);
  fclose(f);
  if (n != 2 || strcmp(quota, "max") == 0 || period == 0 ||
      sscanf(quota, "%llu", &q) != 1 || q == 0)
    return 0;
  return (int)((q + period - 1) / period);
}

int cpus_available(int cap) {
  int n = 1;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    n = CPU_COUNT(&set);
  int quota = cgroup_quota();
  if (quota > 0 && quota < n)
    n = quota;
  if (n < 1)
    n = 1;
  if (n > cap)
    n = cap;
  return n;
}
