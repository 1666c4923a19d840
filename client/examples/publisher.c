/*
 * publisher: publishes messages with the blocking API.
 *
 *   publisher [URL] [TOPIC] [MESSAGE] [COUNT]
 *
 * Defaults: 127.0.0.1:7421, "greet.world", "hello", 1. The last message asks
 * for a PUBACK, so the program knows how many subscriptions received it
 * before it exits (tern_client_publish alone returns once the frame is
 * queued locally).
 */
/* tern.h includes uv.h, which needs POSIX types under -std=c11. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "127.0.0.1:7421";
  const char *topic = argc > 2 ? argv[2] : "greet.world";
  const char *text = argc > 3 ? argv[3] : "hello";
  long count = argc > 4 ? strtol(argv[4], NULL, 10) : 1;
  tern_options_t opts;
  tern_client_t *cl;
  uint64_t receivers = 0;
  int rc;

  if (count < 1) {
    fprintf(stderr, "publisher: COUNT must be at least 1\n");
    return 2;
  }
  tern_options_init(&opts);
  if (tern_options_set_url(&opts, url) != 0) {
    fprintf(stderr, "publisher: bad URL '%s'\n", url);
    return 2;
  }
  opts.name = "example-publisher";
  rc = tern_client_connect(&cl, &opts);
  if (rc != 0) {
    fprintf(stderr, "publisher: connect to %s: %s\n", url, tern_strerror(rc));
    return 1;
  }
  for (long i = 0; i < count - 1 && rc == 0; i++) {
    /* Waits up to publish_timeout_ms when the outbound buffer is full. */
    rc = tern_client_publish(cl, topic, text, strlen(text), NULL);
  }
  if (rc == 0) {
    rc = tern_client_publish_ack(cl, topic, text, strlen(text), NULL, 5000,
                                 &receivers);
  }
  if (rc != 0) {
    char why[256];
    tern_client_last_error(cl, why, sizeof why);
    fprintf(stderr, "publisher: publish: %s%s%s\n", tern_strerror(rc),
            why[0] ? ": " : "", why);
    tern_client_close(cl);
    return 1;
  }
  printf("published %ld to %s (last one reached %llu subscriptions)\n", count,
         topic, (unsigned long long)receivers);
  tern_client_close(cl);
  return 0;
}
