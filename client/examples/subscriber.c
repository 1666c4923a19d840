/*
 * subscriber: receives messages with the blocking API's iterator.
 *
 *   subscriber [URL] [PATTERN] [COUNT]
 *
 * Defaults: 127.0.0.1:7421, "greet.>", 0 (= until SIGINT/SIGTERM). Prints
 * "ready" once the broker has registered the subscription (a publish made
 * after that line is delivered), then "TOPIC: PAYLOAD" per message.
 */
/* sigaction, and the POSIX types uv.h (via tern.h) needs under -std=c11. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <tern/tern.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "127.0.0.1:7421";
  const char *pattern = argc > 2 ? argv[2] : "greet.>";
  long count = argc > 3 ? strtol(argv[3], NULL, 10) : 0;
  struct sigaction sa = {.sa_handler = on_signal};
  tern_options_t opts;
  tern_client_t *cl;
  tern_sub_t *sub;
  long got = 0;
  int rc;

  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  tern_options_init(&opts);
  if (tern_options_set_url(&opts, url) != 0) {
    fprintf(stderr, "subscriber: bad URL '%s'\n", url);
    return 2;
  }
  opts.name = "example-subscriber";
  rc = tern_client_connect(&cl, &opts);
  if (rc != 0) {
    fprintf(stderr, "subscriber: connect to %s: %s\n", url, tern_strerror(rc));
    return 1;
  }
  rc = tern_client_subscribe(cl, &sub, pattern, NULL);
  if (rc != 0) {
    fprintf(stderr, "subscriber: subscribe %s: %s\n", pattern,
            tern_strerror(rc));
    tern_client_close(cl);
    return 1;
  }
  printf("ready\n");
  fflush(stdout);

  /* A bounded wait rather than -1 (forever), so a signal is noticed within
   * half a second: the handler only sets a flag. */
  while (!stop_requested && (count == 0 || got < count)) {
    tern_msg_t *msg;
    rc = tern_sub_next(sub, 500, &msg);
    if (rc == TERN_ETIMEOUT) {
      continue;
    }
    if (rc != 0) {
      fprintf(stderr, "subscriber: %s\n", tern_strerror(rc));
      break;
    }
    printf("%s: %.*s\n", tern_msg_topic(msg), (int)tern_msg_len(msg),
           (const char *)tern_msg_data(msg));
    fflush(stdout);
    tern_msg_release(msg);
    got++;
  }
  tern_client_close(cl); /* also destroys sub */
  return (count == 0 || got == count) ? 0 : 1;
}
