/*
 * Micro-benchmark of the subject index (not a test; numbers vary by machine).
 *
 *   sublist_bench [subs] [matches]      defaults: 100000 1000000
 *
 * Inserts `subs` subscriptions in four shapes over "svc.<id>.<verb>"
 * (literal, '*' last, '*' middle, '>' last), reports the heap they take,
 * then times `matches` matches:
 *   cached    - 1000 hot topics, answered from the cache after the first;
 *   uncached  - a cache of one entry and alternating topics, so every match
 *               walks the trie and builds its result;
 *   spread    - topics drawn from 200,000 distinct ones with the default
 *               cache (4096), the hit rate a wide topic space gets.
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/sublist.h"

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pattern_of(char *out, size_t cap, long i) {
  static const char *const shapes[] = {"svc.%ld.req", "svc.%ld.*", "svc.*.%ld",
                                       "svc.%ld.>"};
  snprintf(out, cap, shapes[i % 4], i / 4);
}

static void topic_of(char *out, size_t cap, long i, long space) {
  /* half of the topics end in "req", half in a number */
  if (i % 2)
    snprintf(out, cap, "svc.%ld.req", (i / 2) % space);
  else
    snprintf(out, cap, "svc.%ld.%ld", (i / 2) % space, (i * 7) % space);
}

static sublist_t *populate(long nsubs, size_t cache_max, char *subs) {
  sublist_t *sl;
  char pat[64];
  if (sublist_create(&sl, cache_max) < 0)
    exit(1);
  for (long i = 0; i < nsubs; i++) {
    pattern_of(pat, sizeof(pat), i);
    if (sublist_insert(sl, pat, strlen(pat), NULL, 0, &subs[i]) < 0)
      exit(1);
  }
  return sl;
}

/* Runs n matches over topics[i % ntopics]; returns seconds. */
static double run(sublist_t *sl, char (*topics)[64], long ntopics, long n,
                  uint64_t *delivered) {
  double t0 = now_sec();
  for (long i = 0; i < n; i++) {
    const sublist_result_t *r;
    const char *t = topics[i % ntopics];
    if (sublist_match(sl, t, strlen(t), &r) < 0)
      exit(1);
    *delivered += r->nplain;
  }
  return now_sec() - t0;
}

static void report(const char *name, sublist_t *sl, long n, double sec) {
  sublist_stats_t st;
  sublist_get_stats(sl, &st);
  printf("%-9s %8ld matches  %7.3f s  %7.1f ns/match  hit rate %5.1f%%\n", name,
         n, sec, sec * 1e9 / (double)n,
         st.matches ? 100.0 * (double)st.cache_hits / (double)st.matches : 0);
}

int main(int argc, char **argv) {
  long nsubs = argc > 1 ? atol(argv[1]) : 100000;
  long nmatch = argc > 2 ? atol(argv[2]) : 1000000;
  if (nsubs < 4 || nmatch < 1)
    return 2;
  char *subs = malloc((size_t)nsubs);
  long space = nsubs / 4;

  /* Heap in use before and after: what the index costs per subscription
   * (glibc's mallinfo2 counts chunk overheads too). */
  size_t heap0 = mallinfo2().uordblks;
  double t0 = now_sec();
  sublist_t *sl = populate(nsubs, 0, subs);
  double ins = now_sec() - t0;
  size_t heap1 = mallinfo2().uordblks;
  sublist_stats_t st;
  sublist_get_stats(sl, &st);
  printf("insert    %8ld subs     %7.3f s  %7.1f ns/insert  (%" PRIu64
         " trie nodes)\n",
         nsubs, ins, ins * 1e9 / (double)nsubs, st.nodes);
  printf("memory    %8.1f bytes/sub in the index (heap in use)\n",
         (double)(heap1 - heap0) / (double)nsubs);

  enum { HOT = 1000, SPREAD = 200000 };
  char(*topics)[64] = malloc(sizeof(*topics) * SPREAD);
  uint64_t delivered = 0;

  for (long i = 0; i < HOT; i++)
    topic_of(topics[i], 64, i, space);
  report("cached", sl, nmatch, run(sl, topics, HOT, nmatch, &delivered));
  sublist_destroy(sl);

  sl = populate(nsubs, 1, subs);
  report("uncached", sl, nmatch, run(sl, topics, HOT, nmatch, &delivered));
  sublist_destroy(sl);

  sl = populate(nsubs, 0, subs);
  for (long i = 0; i < SPREAD; i++)
    topic_of(topics[i], 64, i * 7919, space);
  report("spread", sl, nmatch, run(sl, topics, SPREAD, nmatch, &delivered));
  sublist_destroy(sl);

  printf("(%" PRIu64 " deliveries counted)\n", delivered);
  free(topics);
  free(subs);
  return 0;
}
