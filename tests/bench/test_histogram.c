/*
 * The bench's latency histogram: bucket arithmetic, the error bound it
 * promises, percentiles against sorted exact values, merge.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "histogram.h"

static bench_hist_t *new_hist(void) {
  bench_hist_t *h = malloc(sizeof(*h));
  cr_assert_not_null(h);
  bench_hist_init(h);
  return h;
}

Test(histogram, small_values_are_exact) {
  for (uint64_t v = 0; v < HIST_SUB_COUNT; v++) {
    uint32_t i = bench_hist_index(v);
    cr_assert_eq(bench_hist_bucket_low(i), v);
    cr_assert_eq(bench_hist_bucket_high(i), v);
  }
}

Test(histogram, every_value_falls_inside_its_bucket) {
  uint64_t vs[] = {128, 129, 255, 256, 1000, 4095, 4096, 123456789,
                   1ull << 40, (1ull << 63) + 12345, UINT64_MAX};
  for (size_t k = 0; k < sizeof(vs) / sizeof(vs[0]); k++) {
    uint32_t i = bench_hist_index(vs[k]);
    cr_assert_lt(i, HIST_BUCKETS);
    cr_assert_leq(bench_hist_bucket_low(i), vs[k], "v=%llu",
                  (unsigned long long)vs[k]);
    cr_assert_geq(bench_hist_bucket_high(i), vs[k], "v=%llu",
                  (unsigned long long)vs[k]);
  }
  cr_assert_eq(bench_hist_index(UINT64_MAX), HIST_BUCKETS - 1);
  cr_assert_eq(bench_hist_bucket_high(HIST_BUCKETS - 1), UINT64_MAX);
}

Test(histogram, buckets_are_contiguous_and_within_the_error_bound) {
  for (uint32_t i = 1; i < HIST_BUCKETS; i++) {
    cr_assert_eq(bench_hist_bucket_low(i), bench_hist_bucket_high(i - 1) + 1,
                 "gap at bucket %u", i);
    if (i < HIST_SUB_COUNT) {
      continue; /* exact buckets: width 1 */
    }
    uint64_t lo = bench_hist_bucket_low(i);
    uint64_t width = bench_hist_bucket_high(i) - lo + 1;
    /* width / lo <= 1 / 2^SUB_BITS: the promised relative error. */
    cr_assert_leq((long double)width / (long double)lo,
                  1.0L / HIST_SUB_COUNT + 1e-12L, "bucket %u", i);
  }
}

Test(histogram, empty_reports_zero) {
  bench_hist_t *h = new_hist();
  cr_assert_eq(bench_hist_percentile(h, 50), 0);
  cr_assert_eq(bench_hist_percentile(h, 100), 0);
  cr_assert_eq(h->count, 0);
  cr_assert_float_eq(bench_hist_mean(h), 0.0, 1e-9);
  free(h);
}

Test(histogram, percentiles_of_a_uniform_range) {
  bench_hist_t *h = new_hist();
  /* 1..100000 ns in a shuffled order. */
  for (uint64_t k = 0; k < 100000; k++) {
    bench_hist_record(h, (k * 7919) % 100000 + 1);
  }
  cr_assert_eq(h->count, 100000);
  cr_assert_eq(h->min, 1);
  cr_assert_eq(h->max, 100000);
  double qs[] = {50, 90, 99, 99.9};
  uint64_t exact[] = {50000, 90000, 99000, 99900};
  for (int i = 0; i < 4; i++) {
    uint64_t got = bench_hist_percentile(h, qs[i]);
    cr_assert_geq(got, exact[i], "p%g", qs[i]);
    cr_assert_leq((double)got, exact[i] * (1.0 + 1.0 / HIST_SUB_COUNT),
                  "p%g = %llu", qs[i], (unsigned long long)got);
  }
  cr_assert_eq(bench_hist_percentile(h, 100), 100000);
  cr_assert_float_eq(bench_hist_mean(h), 50000.5, 1e-6);
  free(h);
}

Test(histogram, a_single_outlier_is_the_max_not_the_p99) {
  bench_hist_t *h = new_hist();
  for (int i = 0; i < 999; i++) {
    bench_hist_record(h, 1000);
  }
  bench_hist_record(h, 5000000);
  /* A percentile is its bucket's upper edge: at most 1/128 above. */
  uint64_t edge = bench_hist_bucket_high(bench_hist_index(1000));
  cr_assert_leq(edge, 1000 + 1000 / HIST_SUB_COUNT);
  cr_assert_eq(bench_hist_percentile(h, 50), edge);
  cr_assert_eq(bench_hist_percentile(h, 99), edge);
  cr_assert_eq(bench_hist_percentile(h, 99.9), edge);
  cr_assert_eq(bench_hist_percentile(h, 99.95), 5000000);
  cr_assert_eq(bench_hist_percentile(h, 100), 5000000);
  free(h);
}

Test(histogram, percentiles_never_exceed_max_nor_fall_below_min) {
  bench_hist_t *h = new_hist();
  /* Both values share one bucket whose upper edge lies above max. */
  bench_hist_record(h, 1000001);
  bench_hist_record(h, 1000002);
  cr_assert_gt(bench_hist_bucket_high(bench_hist_index(1000002)), 1000002);
  cr_assert_eq(bench_hist_percentile(h, 1), 1000002);
  cr_assert_eq(bench_hist_percentile(h, 99.9), 1000002);
  /* A lone small value below a wide bucket is never reported under min. */
  bench_hist_t *one = new_hist();
  bench_hist_record(one, 77);
  cr_assert_eq(bench_hist_percentile(one, 50), 77);
  free(one);
  free(h);
}

Test(histogram, merge_adds_counts_and_extremes) {
  bench_hist_t *a = new_hist();
  bench_hist_t *b = new_hist();
  bench_hist_t *empty = new_hist();
  for (uint64_t v = 1; v <= 100; v++) {
    bench_hist_record(a, v);
    bench_hist_record(b, v + 100);
  }
  bench_hist_merge(a, b);
  bench_hist_merge(a, empty);
  cr_assert_eq(a->count, 200);
  cr_assert_eq(a->min, 1);
  cr_assert_eq(a->max, 200);
  cr_assert_eq(bench_hist_percentile(a, 50), 100);
  cr_assert_float_eq(bench_hist_mean(a), 100.5, 1e-9);
  bench_hist_merge(empty, a);
  cr_assert_eq(empty->min, 1);
  cr_assert_eq(empty->count, 200);
  free(a);
  free(b);
  free(empty);
}
