/*
 * What the bench tools that talk to a running ternd share (conn_mem,
 * pressure_probe, mon_abuse): its memory from /proc, a monotonic clock,
 * blocking writes of whole frames, and dying with the tool's name. They
 * are measuring tools, not clients: any failure ends the run.
 */
#ifndef TERN_BENCH_PROBE_H
#define TERN_BENCH_PROBE_H

#include <stddef.h>

#include "tern_proto/buf.h"
#include "tern_proto/frame.h"

/* A "kB" field of /proc/PID/status ("VmRSS", "VmHWM"); -1 if unreadable. */
long probe_status_kib(long pid, const char *field);
/* Seconds on the monotonic clock. */
double probe_now_s(void);
/* Prints "TOOL: what: strerror(errno)" and exits 1. */
void probe_die(const char *what) __attribute__((noreturn));
/* Writes all n bytes to a blocking fd (dies on error). */
void probe_send_all(int fd, const void *p, size_t n);
/* Encodes f into b (reset first) and writes it whole. */
void probe_send_frame(int fd, tp_buf_t *b, const tp_frame_t *f);

#endif
