/*
 * Raising the open-file limit (see fdlimit.h).
 */
#include "fdlimit.h"

#include <sys/resource.h>

#include "log.h"

long fdlimit_raise(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -1;
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      LOG(LOG_WARN, "cannot raise the open-file limit from %llu",
          (unsigned long long)was);
      rl.rlim_cur = was;
    }
  }
  if (rl.rlim_cur == RLIM_INFINITY)
    return -1;
  return (long)rl.rlim_cur;
}
