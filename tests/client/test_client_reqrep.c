/* Request/reply: a responder thread on its own blocking client. */
#include <pthread.h>
#include <string.h>

#include "fixture.h"

TestSuite(client_reqrep, .init = broker_up, .fini = broker_down, .timeout = 60);

typedef struct responder {
  tern_client_t *cl;
  tern_sub_t *sub;
  int answer; /* 0: stay silent */
  int served;
  pthread_t thread;
} responder_t;

/* Answers "echo:<payload>" to every request until its subscription ends. */
static void *respond(void *arg) {
  responder_t *r = arg;
  tern_msg_t *m;
  char out[128];
  while (tern_sub_next(r->sub, -1, &m) == 0) {
    int n = snprintf(out, sizeof(out), "echo:%.*s", (int)tern_msg_len(m),
                     (const char *)tern_msg_data(m));
    if (r->answer && tern_msg_reply(m) != NULL) {
      tern_client_publish(r->cl, tern_msg_reply(m), out, (size_t)n, NULL);
    }
    r->served++;
    tern_msg_release(m);
  }
  return NULL;
}

static void responder_start(responder_t *r, const char *topic, int answer) {
  r->cl = test_client(NULL);
  r->answer = answer;
  cr_assert_eq(tern_client_subscribe(r->cl, &r->sub, topic, NULL), 0);
  cr_assert_eq(pthread_create(&r->thread, NULL, respond, r), 0);
}

static void responder_stop(responder_t *r) {
  tern_sub_unsubscribe(r->sub, 0); /* next() then answers TERN_ECLOSED */
  pthread_join(r->thread, NULL);
  tern_client_close(r->cl);
}

Test(client_reqrep, request_gets_the_reply) {
  responder_t r = {0};
  tern_client_t *cl;
  responder_start(&r, "svc.echo", 1);
  cl = test_client(NULL);
  for (int i = 0; i < 20; i++) {
    char in[16], want[32];
    tern_msg_t *reply = NULL;
    int n = snprintf(in, sizeof(in), "hi%d", i);
    int rc = tern_client_request(cl, "svc.echo", in, (size_t)n, 5000, &reply);
    cr_assert_eq(rc, 0, "request %d: %s", i, tern_strerror(rc));
    snprintf(want, sizeof(want), "echo:%s", in);
    cr_expect_str_eq((const char *)tern_msg_data(reply), want);
    cr_expect_eq(strncmp(tern_msg_topic(reply), "_INBOX.", 7), 0);
    tern_msg_release(reply);
  }
  tern_client_close(cl);
  responder_stop(&r);
  cr_expect_eq(r.served, 20);
}

Test(client_reqrep, no_responders) {
  tern_client_t *cl = test_client(NULL);
  tern_msg_t *reply = NULL;
  int rc = tern_client_request(cl, "svc.none", "x", 1, 5000, &reply);
  cr_expect_eq(rc, TERN_ENORESPONDERS, "%s", tern_err_name(rc));
  cr_expect_null(reply);
  tern_client_close(cl);
}

Test(client_reqrep, silent_responder_times_out) {
  responder_t r = {0};
  tern_client_t *cl;
  tern_msg_t *reply = NULL;
  int rc;
  responder_start(&r, "svc.silent", 0);
  cl = test_client(NULL);
  rc = tern_client_request(cl, "svc.silent", "x", 1, 100, &reply);
  cr_expect_eq(rc, TERN_ETIMEOUT, "%s", tern_err_name(rc));
  cr_expect_null(reply);
  tern_client_close(cl);
  responder_stop(&r);
}

Test(client_reqrep, custom_inbox_prefix) {
  responder_t r = {0};
  tern_options_t o = test_opts();
  tern_client_t *cl;
  tern_msg_t *reply = NULL;
  o.inbox_prefix = "_R.mine";
  responder_start(&r, "svc.echo2", 1);
  cl = test_client(&o);
  cr_assert_eq(tern_client_request(cl, "svc.echo2", "q", 1, 5000, &reply), 0);
  cr_expect_eq(strncmp(tern_msg_topic(reply), "_R.mine.", 8), 0);
  cr_expect_str_eq((const char *)tern_msg_data(reply), "echo:q");
  tern_msg_release(reply);
  tern_client_close(cl);
  responder_stop(&r);
}
