/*
 * Log-bucketed histogram: see histogram.h for the layout and its error bound.
 *
 * Index of v >= 2^S (S = HIST_SUB_BITS): with e the position of v's top bit,
 * the S bits below it pick the sub-bucket, and the band (e - S + 1) picks a
 * block of 2^S buckets. Band 0 is the exact range [0, 2^S), so the indices
 * run on without a gap from exact values into log buckets.
 */
#include "histogram.h"

#include <string.h>

static unsigned top_bit(uint64_t v) {
  return 63u - (unsigned)__builtin_clzll(v);
}

uint32_t bench_hist_index(uint64_t v) {
  if (v < HIST_SUB_COUNT) {
    return (uint32_t)v;
  }
  unsigned e = top_bit(v);
  uint32_t sub = (uint32_t)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB_COUNT - 1u);
  return (e - HIST_SUB_BITS + 1u) * HIST_SUB_COUNT + sub;
}

uint64_t bench_hist_bucket_low(uint32_t idx) {
  uint32_t band = idx / HIST_SUB_COUNT;
  uint32_t sub = idx % HIST_SUB_COUNT;
  if (band == 0) {
    return sub;
  }
  return ((uint64_t)HIST_SUB_COUNT + sub) << (band - 1u);
}

uint64_t bench_hist_bucket_high(uint32_t idx) {
  uint32_t band = idx / HIST_SUB_COUNT;
  if (band == 0) {
    return idx;
  }
  /* low + width - 1 does not overflow: the last bucket ends at UINT64_MAX. */
  return bench_hist_bucket_low(idx) + ((uint64_t)1 << (band - 1u)) - 1u;
}

void bench_hist_init(bench_hist_t *h) {
  memset(h, 0, sizeof(*h));
  h->min = UINT64_MAX;
}

void bench_hist_record(bench_hist_t *h, uint64_t v) {
  h->buckets[bench_hist_index(v)]++;
  h->count++;
  h->sum += v;
  if (v < h->min) {
    h->min = v;
  }
  if (v > h->max) {
    h->max = v;
  }
}

void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src) {
  if (src->count == 0) {
    return;
  }
  for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
    dst->buckets[i] += src->buckets[i];
  }
  dst->count += src->count;
  dst->sum += src->sum;
  if (src->min < dst->min) {
    dst->min = src->min;
  }
  if (src->max > dst->max) {
    dst->max = src->max;
  }
}

/*
 * Reporting the bucket's upper edge errs on the pessimistic side, the right
 * side for a latency figure; clamping to max keeps p99.9 <= max when the
 * top bucket is wide.
 */
uint64_t bench_hist_percentile(const bench_hist_t *h, double q) {
  if (h->count == 0) {
    return 0;
  }
  if (q >= 100.0) {
    return h->max;
  }
  if (q < 0.0) {
    q = 0.0;
  }
  /* 99.9 is not exact in binary: 99.9% of 1000 must be rank 999, not
   * 1000, so the ceiling forgives a relative error far below one rank. */
  double exact = q / 100.0 * (double)h->count;
  exact -= exact * 1e-12;
  uint64_t rank = (uint64_t)exact;
  if ((double)rank < exact || rank == 0) {
    rank++;
  }
  uint64_t seen = 0;
  for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
    seen += h->buckets[i];
    if (seen >= rank) {
      uint64_t v = bench_hist_bucket_high(i);
      if (v > h->max) {
        v = h->max;
      }
      if (v < h->min) {
        v = h->min;
      }
      return v;
    }
  }
  return h->max;
}

double bench_hist_mean(const bench_hist_t *h) {
  return h->count ? (double)h->sum / (double)h->count : 0.0;
}
