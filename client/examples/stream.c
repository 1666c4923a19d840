/*
 * stream: a durable stream from libtern's blocking API. Makes the stream
 * EXAMPLE (topics "example.>"), stores a few messages with their stream
 * acks (one retried with the same message id), then reads them through
 * the durable consumer "reader" and acknowledges them. Needs a ternd
 * started with --data-dir.
 *
 *   stream [URL]
 */
/* tern.h includes uv.h, which needs POSIX types under -std=c11. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <tern/tern.h>

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "127.0.0.1:7421";
  tern_options_t opts;
  tern_client_t *cl;
  char err[256];
  int rc;

  tern_options_init(&opts);
  if (tern_options_set_url(&opts, url) != 0) {
    fprintf(stderr, "stream: bad URL '%s'\n", url);
    return 2;
  }
  rc = tern_client_connect(&cl, &opts);
  if (rc != 0) {
    fprintf(stderr, "stream: connect to %s: %s\n", url, tern_strerror(rc));
    return 1;
  }

  tern_stream_config_t sc;
  tern_stream_config_init(&sc);
  const char *topics[] = {"example.>"};
  sc.topics = topics;
  sc.topic_count = 1;
  sc.max_msgs = 1000;
  rc = tern_client_stream_add(cl, "EXAMPLE", &sc, 5000, err, sizeof err);
  if (rc != 0 && rc != TERN_EEXISTS) {
    fprintf(stderr, "stream: add: %s %s\n", tern_strerror(rc), err);
    tern_client_close(cl);
    return 1;
  }

  const char *ids[] = {"a", "b", "b"}; /* the second "b" is a retry */
  for (int i = 0; i < 3; i++) {
    uint64_t seq = 0;
    bool dup = false;
    char body[32];
    snprintf(body, sizeof body, "message %d", i);
    rc = tern_client_publish_stream(cl, "example.greeting", body, strlen(body),
                                    ids[i], 5000, &seq, &dup);
    if (rc != 0) {
      fprintf(stderr, "stream: publish: %s\n", tern_strerror(rc));
      break;
    }
    printf("stored '%s' as sequence %" PRIu64 "%s\n", body, seq,
           dup ? " (duplicate: not stored again)" : "");
  }

  tern_consumer_config_t cc;
  tern_consumer_config_init(&cc);
  if (rc == 0)
    rc = tern_client_consumer_add(cl, "EXAMPLE", "reader", &cc, NULL, 0, 5000,
                                  err, sizeof err);
  tern_msg_t *msgs[16];
  size_t n = 0;
  if (rc == 0)
    rc = tern_client_fetch(cl, "EXAMPLE", "reader", 16, 500, msgs, &n);
  for (size_t i = 0; i < n; i++) {
    uint64_t deliveries = 0, seq = 0;
    tern_msg_stream_seq(msgs[i], &deliveries, &seq);
    printf("read #%" PRIu64 " (delivery %" PRIu64 "): %.*s\n", seq, deliveries,
           (int)tern_msg_len(msgs[i]), (const char *)tern_msg_data(msgs[i]));
    tern_client_ack(cl, msgs[i]);
    tern_msg_release(msgs[i]);
  }
  if (rc != 0)
    fprintf(stderr, "stream: %s %s\n", tern_strerror(rc), err);
  tern_client_flush(cl, 5000);
  tern_client_close(cl);
  return rc == 0 ? 0 : 1;
}
