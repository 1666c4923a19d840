/*
 * request: sends one request and prints the reply (run reply first).
 *
 *   request [URL] [TOPIC] [PAYLOAD] [TIMEOUT_MS]
 *
 * Defaults: 127.0.0.1:7421, "time.now", "what time is it?", 2000.
 * Exit status 1 with "no responders" when nobody subscribes to TOPIC: the
 * broker says so at once instead of letting the request time out.
 */
/* tern.h includes uv.h, which needs POSIX types under -std=c11. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "127.0.0.1:7421";
  const char *topic = argc > 2 ? argv[2] : "time.now";
  const char *payload = argc > 3 ? argv[3] : "what time is it?";
  int timeout_ms = argc > 4 ? atoi(argv[4]) : 2000;
  tern_options_t opts;
  tern_client_t *cl;
  tern_msg_t *reply;
  int rc;

  tern_options_init(&opts);
  if (tern_options_set_url(&opts, url) != 0) {
    fprintf(stderr, "request: bad URL '%s'\n", url);
    return 2;
  }
  opts.name = "example-request";
  rc = tern_client_connect(&cl, &opts);
  if (rc != 0) {
    fprintf(stderr, "request: connect to %s: %s\n", url, tern_strerror(rc));
    return 1;
  }
  rc = tern_client_request(cl, topic, payload, strlen(payload), timeout_ms,
                           &reply);
  if (rc != 0) {
    fprintf(stderr, "request: %s: %s\n", topic, tern_strerror(rc));
    tern_client_close(cl);
    return 1;
  }
  printf("%.*s\n", (int)tern_msg_len(reply),
         (const char *)tern_msg_data(reply));
  tern_msg_release(reply);
  tern_client_close(cl);
  return 0;
}
