/*
 * libtern and a cluster (issue 18): HELLO's cluster_urls join the client's
 * server list, so a client given one node moves to another on GOAWAY or a
 * lost connection and resubscribes there; a rolling restart of all three
 * nodes loses no subscription.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <tern/tern.h>
#include <unistd.h>

#include "broker_proc.h"

#define WAIT_MS 20000

static tt_broker_t node[3];
static int cport[3], rport[3];

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static void start_node(int i) {
  char port[16], routes[128];
  snprintf(port, sizeof port, "%d", rport[i]);
  snprintf(routes, sizeof routes, "127.0.0.1:%d,127.0.0.1:%d",
           rport[(i + 1) % 3], rport[(i + 2) % 3]);
  tt_broker_start_on(&node[i], cport[i],
                     (const char *const[]){"--cluster-port", port, "--routes",
                                           routes, "--drain-timeout-ms", "500",
                                           NULL});
}

static tern_client_t *client_on(int i) {
  tern_options_t o;
  tern_options_init(&o);
  o.port = cport[i];
  o.reconnect_initial_ms = 10;
  o.reconnect_max_ms = 200;
  o.reconnect_max_attempts = -1;
  o.connect_timeout_ms = 2000;
  tern_client_t *cl = NULL;
  int rc = tern_client_connect(&cl, &o);
  cr_assert_eq(rc, 0, "connect to node %d: %s", i, tern_strerror(rc));
  return cl;
}

/* Publishes on a fresh client of node `via` until sub gets one. */
static void round_trip(tern_sub_t *sub, int via, const char *topic) {
  tern_client_t *pub = client_on(via);
  int64_t end = tt_now_ms() + WAIT_MS;
  for (;;) {
    cr_assert(tt_now_ms() < end, "nothing reached the subscriber via node %d",
              via);
    cr_assert_eq(tern_client_publish(pub, topic, "x", 1, NULL), 0);
    tern_msg_t *m = NULL;
    int rc = tern_sub_next(sub, 50, &m);
    if (rc == 0) {
      tern_msg_release(m);
      break;
    }
    cr_assert(rc == TERN_ETIMEOUT, "next: %s", tern_strerror(rc));
  }
  tern_client_close(pub);
  /* What else was published to it waits in sub: drop it. */
  tern_msg_t *m = NULL;
  while (tern_sub_next(sub, 0, &m) == 0)
    tern_msg_release(m);
}

Test(cluster_failover, rolling_restart_loses_no_subscription, .timeout = 240) {
  tt_ignore_sigpipe();
  for (int i = 0; i < 3; i++) {
    cport[i] = free_port();
    rport[i] = free_port();
  }
  for (int i = 0; i < 3; i++)
    start_node(i);
  /* The subscriber knows node 0 only; HELLO tells it the others once
   * routes are up: it reconnects until it has heard them. */
  tern_client_t *sub_cl = client_on(0);
  tern_sub_t *sub;
  cr_assert_eq(tern_client_subscribe(sub_cl, &sub, "fo.x", NULL), 0);
  cr_assert_eq(tern_client_flush(sub_cl, WAIT_MS), 0);
  round_trip(sub, 2, "fo.x");
  /* Every node in turn: SIGTERM (GOAWAY), back on its ports. */
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(tt_broker_stop(&node[i]), 0, "node %d did not exit 0", i);
    round_trip(sub, (i + 1) % 3, "fo.x");
    start_node(i);
    round_trip(sub, i, "fo.x");
  }
  tern_client_close(sub_cl);
  for (int i = 0; i < 3; i++)
    cr_expect_eq(tt_broker_stop(&node[i]), 0);
}
