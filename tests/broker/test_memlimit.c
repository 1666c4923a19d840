/*
 * memlimit_cgroup: the tightest cgroup memory limit on a process, read
 * from fake cgroup trees (v2, v1, hybrid, containers, unlimited, garbage).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/memlimit.h"

static char g_root[256];

static void make_root(void) {
  snprintf(g_root, sizeof g_root, "/tmp/tern-memlimit.XXXXXX");
  cr_assert_not_null(mkdtemp(g_root));
}

static void remove_tree(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(memlimit, .init = make_root, .fini = remove_tree);

/* Writes text to ROOT/rel, making the directories on the way. */
static void put(const char *rel, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", g_root, rel);
  for (char *p = path + strlen(g_root) + 1; *p != '\0'; p++) {
    if (*p == '/') {
      *p = '\0';
      cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s", path);
      *p = '/';
    }
  }
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "open %s", path);
  fputs(text, f);
  fclose(f);
}

Test(memlimit, v2_tightest_of_the_cgroup_and_its_ancestors) {
  put("memory.max", "max\n");
  put("kube/memory.max", "1073741824\n");
  put("kube/pod/memory.max", "536870912\n");
  put("kube/pod/ctr/memory.max", "max\n");
  cr_assert_eq(memlimit_cgroup("0::/kube/pod/ctr\n", g_root), 536870912u);
  /* A child's own limit below its parents' wins. */
  put("kube/pod/ctr/memory.max", "268435456\n");
  cr_assert_eq(memlimit_cgroup("0::/kube/pod/ctr\n", g_root), 268435456u);
}

Test(memlimit, v2_unlimited_is_zero) {
  put("memory.max", "max\n");
  put("a/memory.max", "max\n");
  cr_assert_eq(memlimit_cgroup("0::/a\n", g_root), 0u);
  cr_assert_eq(memlimit_cgroup("0::/\n", g_root), 0u);
}

Test(memlimit, container_with_its_cgroup_mounted_as_root) {
  /* Without a cgroup namespace the process sees the host's path, but the
   * container's own cgroup is what is mounted: the walk reaches it. */
  put("memory.max", "134217728\n");
  cr_assert_eq(memlimit_cgroup("0::/system.slice/docker-abc.scope\n", g_root),
               134217728u);
}

Test(memlimit, v1_memory_controller) {
  put("memory/memory.limit_in_bytes", "9223372036854771712\n");
  put("memory/docker/memory.limit_in_bytes", "9223372036854771712\n");
  put("memory/docker/abc/memory.limit_in_bytes", "209715200\n");
  const char *proc = "12:pids:/docker/abc\n"
                     "4:cpu,cpuacct:/docker/abc\n"
                     "3:memory:/docker/abc\n"
                     "1:name=systemd:/docker/abc\n";
  cr_assert_eq(memlimit_cgroup(proc, g_root), 209715200u);
}

Test(memlimit, hybrid_takes_the_v1_memory_controller) {
  put("memory.max", "1048576\n"); /* a v2 file that does not apply */
  put("memory/x/memory.limit_in_bytes", "4194304\n");
  const char *proc = "0::/x\n4:memory:/x\n";
  cr_assert_eq(memlimit_cgroup(proc, g_root), 4194304u);
  const char *reversed = "4:memory:/x\n0::/x\n";
  cr_assert_eq(memlimit_cgroup(reversed, g_root), 4194304u);
}

Test(memlimit, v1_memory_among_several_controllers) {
  put("memory/j/memory.limit_in_bytes", "8388608\n");
  cr_assert_eq(memlimit_cgroup("5:cpu,memory,pids:/j\n", g_root), 8388608u);
  /* "memoryx" is not "memory". */
  cr_assert_eq(memlimit_cgroup("5:memoryx:/j\n", g_root), 0u);
}

Test(memlimit, nothing_usable_is_zero) {
  put("memory.max", "garbage\n");
  put("a/memory.max", "12abc\n");
  put("b/memory.max", "\n");
  cr_assert_eq(memlimit_cgroup("0::/a\n", g_root), 0u);
  cr_assert_eq(memlimit_cgroup("0::/b\n", g_root), 0u);
  cr_assert_eq(memlimit_cgroup("0::/missing/deeper\n", g_root), 0u);
  cr_assert_eq(memlimit_cgroup("", g_root), 0u);
  cr_assert_eq(memlimit_cgroup("no colons here\n", g_root), 0u);
  cr_assert_eq(memlimit_cgroup("0::relative\n", g_root), 0u);
  cr_assert_eq(memlimit_cgroup("3:memory:\n", g_root), 0u);
}

Test(memlimit, effective_is_the_smaller) {
  memlimit_t m = {.physical = 8ull << 30, .cgroup = 0};
  cr_assert_eq(memlimit_effective(&m), 8ull << 30);
  m.cgroup = 512ull << 20;
  cr_assert_eq(memlimit_effective(&m), 512ull << 20);
  m.cgroup = 64ull << 30; /* a limit above the machine's memory */
  cr_assert_eq(memlimit_effective(&m), 8ull << 30);
  memlimit_t here;
  memlimit_read(&here);
  cr_assert_gt(here.physical, 0u);
  cr_assert_leq(memlimit_effective(&here), here.physical);
}
