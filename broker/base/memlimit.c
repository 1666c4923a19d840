/*
 * The memory a cgroup allows this process (see memlimit.h).
 */
#include "base/memlimit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* v1 reports "no limit" as a huge page-rounded number: anything this big
 * is no limit. */
#define NO_LIMIT_FLOOR (1ull << 62)
#define PATH_MAX_LEN 4096

/* The limit in the file `path`: a decimal byte count, or 0 ("max", none,
 * unreadable, or no limit). */
static uint64_t read_limit(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  char line[64];
  bool ok = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  if (!ok || line[0] < '0' || line[0] > '9')
    return 0;
  char *end;
  unsigned long long v = strtoull(line, &end, 10);
  if (*end != '\0' && *end != '\n')
    return 0;
  return v >= NO_LIMIT_FLOOR ? 0 : (uint64_t)v;
}

/*
 * Copies the cgroup path of the v1 memory controller's line of proc
 * ("ID:memory,...:/path"), or failing that the v2 line ("0::/path"), into
 * out. Returns 1 for v1, 2 for v2, 0 when neither is there.
 */
static int find_path(const char *proc, char *out, size_t cap) {
  int found = 0;
  for (const char *line = proc; *line != '\0';) {
    const char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    const char *c1 = memchr(line, ':', len);
    const char *c2 =
        c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
    if (c2 != NULL) {
      const char *ctl = c1 + 1;
      size_t ctl_len = (size_t)(c2 - ctl);
      const char *path = c2 + 1;
      size_t path_len = len - (size_t)(path - line);
      int kind = 0;
      if (ctl_len == 0 && c1 - line == 1 && line[0] == '0') {
        kind = 2;
      } else {
        /* Is "memory" one of the comma-separated controllers? */
        for (const char *p = ctl; p < c2;) {
          const char *comma = memchr(p, ',', (size_t)(c2 - p));
          size_t n = comma ? (size_t)(comma - p) : (size_t)(c2 - p);
          if (n == 6 && memcmp(p, "memory", 6) == 0)
            kind = 1;
          p += n + 1;
        }
      }
      /* v1's memory controller wins over v2 (hybrid hierarchies). */
      if (kind != 0 && (found == 0 || kind == 1) && path_len > 0 &&
          path[0] == '/' && path_len < cap) {
        memcpy(out, path, path_len);
        out[path_len] = '\0';
        found = kind;
      }
    }
    line += len + (eol != NULL);
  }
  return found;
}

uint64_t memlimit_cgroup(const char *proc_cgroup, const char *root) {
  char cg[PATH_MAX_LEN];
  int kind = find_path(proc_cgroup, cg, sizeof cg);
  if (kind == 0)
    return 0;
  const char *dir = kind == 1 ? "/memory" : "";
  const char *file = kind == 1 ? "memory.limit_in_bytes" : "memory.max";
  uint64_t best = 0;
  /* From the process's cgroup up to the root: a parent's limit binds its
   * children too. Inside a container the named path may not exist (its
   * cgroup is mounted as the root); the walk then ends at the root, which
   * is the container's own. */
  size_t len = strlen(cg);
  for (;;) {
    char path[PATH_MAX_LEN + 64];
    int n = snprintf(path, sizeof path, "%s%s%.*s/%s", root, dir,
                     (int)(len == 1 ? 0 : len), cg, file);
    if (n > 0 && (size_t)n < sizeof path) {
      uint64_t v = read_limit(path);
      if (v != 0 && (best == 0 || v < best))
        best = v;
    }
    if (len <= 1)
      break;
    while (len > 1 && cg[len - 1] != '/')
      len--;
    if (len > 1)
      len--; /* drop the '/' too, unless it is the root's */
  }
  return best;
}

void memlimit_read(memlimit_t *out) {
  out->physical = uv_get_total_memory();
  out->cgroup = 0;
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (f == NULL)
    return;
  char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  out->cgroup = memlimit_cgroup(buf, "/sys/fs/cgroup");
}

uint64_t memlimit_effective(const memlimit_t *m) {
  if (m->cgroup != 0 && (m->physical == 0 || m->cgroup < m->physical))
    return m->cgroup;
  return m->physical;
}
