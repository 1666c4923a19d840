/*
 * How much memory ternd may use: the machine's physical memory, or less
 * when a cgroup limits the process (a container's memory limit, a systemd
 * unit's MemoryMax). Defaults that scale with memory (max_pending_total)
 * take the smaller, so a broker in a 512 MiB pod on a 64 GiB node does not
 * size itself for 64 GiB and get OOM-killed before its own limits act.
 *
 * libuv's uv_get_constrained_memory reads only cgroup v1 in the version
 * Debian 12 ships, so the cgroup files are read here, v2 and v1.
 */
#ifndef TERND_MEMLIMIT_H
#define TERND_MEMLIMIT_H

#include <stdint.h>

typedef struct memlimit {
  uint64_t physical; /* uv_get_total_memory() */
  uint64_t cgroup;   /* the tightest cgroup limit on this process; 0: none */
} memlimit_t;

/* Reads both for this process (/proc/self/cgroup, /sys/fs/cgroup). */
void memlimit_read(memlimit_t *out);

/* min(physical, cgroup when there is one). */
uint64_t memlimit_effective(const memlimit_t *m);

/*
 * The tightest memory limit on the cgroup that proc_cgroup (the text of
 * /proc/PID/cgroup) names and on each of its ancestors, read under the
 * cgroup file system mounted at root: cgroup v1's memory controller
 * (ROOT/memory/PATH/memory.limit_in_bytes) when the process has one, else
 * cgroup v2 (ROOT/PATH/memory.max). 0 when no limit is set ("max", v1's
 * "unlimited" value, no such files, or text that does not parse).
 */
uint64_t memlimit_cgroup(const char *proc_cgroup, const char *root);

#endif
