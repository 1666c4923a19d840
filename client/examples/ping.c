/*
 * ping: checks that a broker answers, end to end. Connects (HELLO, CONNECT,
 * OK), then flushes (PING, PONG): a broker whose loop is stuck fails this,
 * where a TCP connect alone would still succeed. Publishes nothing, so no
 * subscriber ever sees a health check.
 *
 *   ping [URL] [TIMEOUT_MS]
 *
 * Defaults: 127.0.0.1:7421, 2000. Exit status 0 when the PONG arrived within
 * the timeout, 1 otherwise. The container image's HEALTHCHECK runs it.
 */
/* tern.h includes uv.h, which needs POSIX types under -std=c11. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <tern/tern.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "127.0.0.1:7421";
  int timeout_ms = argc > 2 ? atoi(argv[2]) : 2000;
  tern_options_t opts;
  tern_client_t *cl;
  double start = now_ms();
  int rc;

  if (timeout_ms <= 0) {
    fprintf(stderr, "ping: TIMEOUT_MS must be positive\n");
    return 2;
  }
  tern_options_init(&opts);
  if (tern_options_set_url(&opts, url) != 0) {
    fprintf(stderr, "ping: bad URL '%s'\n", url);
    return 2;
  }
  opts.name = "ping";
  opts.connect_timeout_ms = (uint32_t)timeout_ms;
  rc = tern_client_connect(&cl, &opts);
  if (rc != 0) {
    fprintf(stderr, "ping: %s: %s\n", url, tern_strerror(rc));
    return 1;
  }
  rc = tern_client_flush(cl, timeout_ms);
  tern_client_close(cl);
  if (rc != 0) {
    fprintf(stderr, "ping: %s: %s\n", url, tern_strerror(rc));
    return 1;
  }
  printf("PONG from %s in %.1f ms\n", url, now_ms() - start);
  return 0;
}
