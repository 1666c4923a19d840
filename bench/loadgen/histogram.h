/*
 * A log-bucketed latency histogram (HdrHistogram's layout, much simplified).
 *
 * Values are unsigned 64-bit (the bench records nanoseconds). Values below
 * 2^HIST_SUB_BITS are counted exactly; above that, every power of two is
 * split into 2^HIST_SUB_BITS equal buckets, so a reported value is never more
 * than 1/2^HIST_SUB_BITS (0.8%) above the true one. Memory is fixed
 * (about 58 KiB) and recording is a few instructions: no allocation, no
 * sorting, so each thread keeps its own and the report merges them.
 *
 * Not thread-safe: one writer per histogram; merge after the writers stop.
 */
#ifndef TERN_BENCH_HISTOGRAM_H
#define TERN_BENCH_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64u - HIST_SUB_BITS + 1u) * HIST_SUB_COUNT)

typedef struct bench_hist {
  uint64_t count;
  uint64_t min;
  uint64_t max;
  uint64_t sum; /* wraps only after ~584 years of nanoseconds */
  uint64_t buckets[HIST_BUCKETS];
} bench_hist_t;

/* Empties h. A zeroed bench_hist_t is NOT valid (min must start high). */
void bench_hist_init(bench_hist_t *h);
/* Counts one value. */
void bench_hist_record(bench_hist_t *h, uint64_t v);
/* Adds every count of src into dst. */
void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src);
/*
 * The value at percentile q (0 < q <= 100): the upper edge of the bucket
 * holding the ceil(q% * count)-th smallest value, clamped to [min, max].
 * q >= 100 gives max exactly. 0 when the histogram is empty.
 */
uint64_t bench_hist_percentile(const bench_hist_t *h, double q);
/* Arithmetic mean of the recorded values (exact, from the running sum). */
double bench_hist_mean(const bench_hist_t *h);

/* Bucket arithmetic, exposed for the unit test. */
uint32_t bench_hist_index(uint64_t v);
uint64_t bench_hist_bucket_low(uint32_t idx);
uint64_t bench_hist_bucket_high(uint32_t idx);

#endif
