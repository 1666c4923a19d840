/*
 * reply: answers requests on a topic (the other half of request.c).
 *
 *   reply [URL] [TOPIC] [COUNT]
 *
 * Defaults: 127.0.0.1:7421, "time.now", 0 (= until SIGINT/SIGTERM).
 * Responders join the queue group "responders", so running several of them
 * spreads the requests instead of answering each one several times.
 */
/* sigaction, and the POSIX types uv.h (via tern.h) needs under -std=c11. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tern/tern.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

/* Publishes the answer to the request's reply topic. */
static int answer(tern_client_t *cl, const tern_msg_t *req) {
  char text[128];
  time_t now = time(NULL);
  struct tm tm;
  const char *to = tern_msg_reply(req);
  if (to == NULL) {
    return 0; /* a plain publish, not a request: nobody to answer */
  }
  gmtime_r(&now, &tm);
  strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return tern_client_publish(cl, to, text, strlen(text), NULL);
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "127.0.0.1:7421";
  const char *topic = argc > 2 ? argv[2] : "time.now";
  long count = argc > 3 ? strtol(argv[3], NULL, 10) : 0;
  struct sigaction sa = {.sa_handler = on_signal};
  tern_options_t opts;
  tern_sub_opts_t sub_opts;
  tern_client_t *cl;
  tern_sub_t *sub;
  long answered = 0;
  int rc;

  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  tern_options_init(&opts);
  if (tern_options_set_url(&opts, url) != 0) {
    fprintf(stderr, "reply: bad URL '%s'\n", url);
    return 2;
  }
  opts.name = "example-reply";
  rc = tern_client_connect(&cl, &opts);
  if (rc != 0) {
    fprintf(stderr, "reply: connect to %s: %s\n", url, tern_strerror(rc));
    return 1;
  }
  tern_sub_opts_init(&sub_opts);
  sub_opts.queue = "responders";
  rc = tern_client_subscribe(cl, &sub, topic, &sub_opts);
  if (rc != 0) {
    fprintf(stderr, "reply: subscribe %s: %s\n", topic, tern_strerror(rc));
    tern_client_close(cl);
    return 1;
  }
  printf("ready\n");
  fflush(stdout);

  while (!stop_requested && (count == 0 || answered < count)) {
    tern_msg_t *req;
    rc = tern_sub_next(sub, 500, &req);
    if (rc == TERN_ETIMEOUT) {
      continue;
    }
    if (rc != 0) {
      fprintf(stderr, "reply: %s\n", tern_strerror(rc));
      break;
    }
    rc = answer(cl, req);
    tern_msg_release(req);
    if (rc != 0) {
      fprintf(stderr, "reply: answer: %s\n", tern_strerror(rc));
      break;
    }
    answered++;
  }
  /* close flushes the last answer before it disconnects. */
  tern_client_close(cl);
  return (count == 0 || answered == count) ? 0 : 1;
}
