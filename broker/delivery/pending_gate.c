/*
 * The server-wide cap on pending bytes and memory pressure (see
 * pending_gate.h).
 */
#include "delivery/pending_gate.h"

#include <string.h>
#include <uv.h>

#include "base/log.h"
#include "base/memlimit.h"
#include "tern_proto/errors.h"

#define DEFAULT_CAP_MAX (1024ull * 1024ull * 1024ull)

void pending_gate_init(pending_gate_t *g, uint64_t cap) {
  if (cap == 0) {
    /* A quarter of memory leaves room for the kernel's socket buffers, the
     * read buffers and everything else on a small machine; in a container
     * the memory is its cgroup's limit, not the host's RAM. */
    memlimit_t m;
    memlimit_read(&m);
    uint64_t mem = memlimit_effective(&m);
    uint64_t quarter = mem / 4;
    cap = quarter > 0 && quarter < DEFAULT_CAP_MAX ? quarter : DEFAULT_CAP_MAX;
    LOG(LOG_INFO,
        "max_pending_total %llu MiB: min(1 GiB, a quarter of %llu MiB, the "
        "%s)",
        (unsigned long long)(cap >> 20), (unsigned long long)(mem >> 20),
        mem == m.physical ? "physical memory" : "cgroup's memory limit");
  }
  memset(g, 0, sizeof *g);
  g->high = cap;
  g->soft = cap / 2;
}
