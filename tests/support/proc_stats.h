/*
 * Test harness: what /proc says about a process (the ternd child), for
 * tests that bound its memory and prove it leaks no descriptor.
 */
#ifndef TERN_TESTS_PROC_STATS_H
#define TERN_TESTS_PROC_STATS_H

#include <sys/types.h>

/* Resident set size in KiB (VmRSS of /proc/pid/status), or -1. */
long tt_proc_rss_kb(pid_t pid);
/* Peak resident set size in KiB (VmHWM), or -1. */
long tt_proc_hwm_kb(pid_t pid);
/* Open descriptors (entries of /proc/pid/fd), or -1. */
int tt_proc_fd_count(pid_t pid);

/* AddressSanitizer keeps freed memory in quarantine (256 MiB by default)
 * and shadows every byte, so memory bounds in tests are scaled under it:
 * the leak check at ternd's exit is what catches leaks there. */
#if defined(__SANITIZE_ADDRESS__)
#define TT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TT_ASAN 1
#endif
#endif
#ifndef TT_ASAN
#define TT_ASAN 0
#endif

#endif
