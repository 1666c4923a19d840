/*
 * Publish batches of the blocking client (client/src/pub_batch.c): plain
 * publishes from many threads keep per-thread order and stay behind the
 * subscribe/unsubscribe commands queued before them; a batch larger than the
 * outbound limit goes out in parts as a stopped broker resumes reading; and
 * publish_timeout_ms still ends in TERN_EWOULDBLOCK while it does not read.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "fixture.h"

/* A test that failed with the broker stopped must not leave it so. */
static void broker_cont_down(void) {
  kill(broker.pid, SIGCONT);
  broker_down();
}

TestSuite(client_pub_batch, .init = broker_up, .fini = broker_cont_down,
          .timeout = 120);

#define THREADS 4
#define ROUNDS 20
#define PER_ROUND 50

/* The payload of thread tid's message seq: both numbers, binary. */
typedef struct tagged {
  uint32_t tid, seq;
} tagged_t;

typedef struct worker {
  tern_client_t *cl;
  uint32_t tid;
  int failed_round; /* -1: every round received its messages */
  int rc;
} worker_t;

/*
 * Each round: subscribe to a topic of its own, publish PER_ROUND messages to
 * it and to the shared topic, then read them back through the subscription
 * (SUB before PUB: a publish after subscribe returned must be delivered)
 * and unsubscribe. The other threads do the same on the same client.
 */
static void worker_main(void *arg) {
  worker_t *w = arg;
  uint32_t seq = 0;
  char topic[64];
  w->failed_round = -1;
  for (int r = 0; r < ROUNDS && w->rc == 0; r++) {
    tern_sub_t *sub = NULL;
    snprintf(topic, sizeof(topic), "pb.own.%u.%d", w->tid, r);
    w->rc = tern_client_subscribe(w->cl, &sub, topic, NULL);
    for (uint32_t i = 0; i < PER_ROUND && w->rc == 0; i++) {
      tagged_t t = {w->tid, seq++};
      w->rc = tern_client_publish(w->cl, topic, &t, sizeof(t), NULL);
      if (w->rc == 0) {
        w->rc = tern_client_publish(w->cl, "pb.all", &t, sizeof(t), NULL);
      }
    }
    for (uint32_t i = 0; i < PER_ROUND && w->rc == 0; i++) {
      tern_msg_t *m = NULL;
      tagged_t t;
      if (tern_sub_next(sub, 10000, &m) != 0) {
        w->failed_round = r;
        break;
      }
      memcpy(&t, tern_msg_data(m), sizeof(t));
      if (tern_msg_len(m) != sizeof(t) || t.tid != w->tid ||
          t.seq != seq - PER_ROUND + i) {
        w->failed_round = r;
      }
      tern_msg_release(m);
    }
    if (sub != NULL) {
      if (w->rc == 0) {
        w->rc = tern_sub_unsubscribe(sub, 0);
      }
      tern_sub_destroy(sub);
    }
  }
}

Test(client_pub_batch, threads_keep_their_order_and_sub_before_pub) {
  tern_client_t *cl = test_client(NULL);
  tern_client_t *watch_cl = test_client(NULL);
  uint32_t next[THREADS] = {0};
  uv_thread_t th[THREADS];
  worker_t w[THREADS];
  tern_sub_opts_t so;
  tern_sub_t *all;
  tern_sub_opts_init(&so);
  so.queue_msgs = THREADS * ROUNDS * PER_ROUND;
  cr_assert_eq(tern_client_subscribe(watch_cl, &all, "pb.all", &so), 0);
  for (uint32_t i = 0; i < THREADS; i++) {
    w[i] = (worker_t){.cl = cl, .tid = i};
    cr_assert_eq(uv_thread_create(&th[i], worker_main, &w[i]), 0);
  }
  for (uint32_t i = 0; i < THREADS; i++) {
    uv_thread_join(&th[i]);
    cr_expect_eq(w[i].rc, 0, "thread %u: %s", i, tern_strerror(w[i].rc));
    cr_expect_eq(w[i].failed_round, -1, "thread %u lost or reordered round %d",
                 i, w[i].failed_round);
  }
  /* Every thread's messages, in that thread's order, none missing. */
  for (uint32_t n = 0; n < THREADS * ROUNDS * PER_ROUND; n++) {
    tern_msg_t *m = NULL;
    tagged_t t;
    cr_assert_eq(tern_sub_next(all, 10000, &m), 0, "message %u", n);
    memcpy(&t, tern_msg_data(m), sizeof(t));
    tern_msg_release(m);
    cr_assert_lt(t.tid, THREADS);
    cr_assert_eq(t.seq, next[t.tid], "thread %u: got %u, expected %u", t.tid,
                 t.seq, next[t.tid]);
    next[t.tid]++;
  }
  tern_client_close(cl);
  tern_client_close(watch_cl);
}

/* ---- a broker that does not read (SIGSTOP) ---- */

#define BIG 64 /* payload bytes: frames are a quarter larger */

static int publish_seq(tern_client_t *cl, uint32_t seq) {
  uint8_t payload[BIG];
  memset(payload, (int)(seq & 0xff), sizeof(payload));
  memcpy(payload, &seq, sizeof(seq));
  return tern_client_publish(cl, "pb.flow", payload, sizeof(payload), NULL);
}

/* Reads messages 0..n-1 in order, each intact. */
static void expect_seqs(tern_sub_t *sub, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    tern_msg_t *m = NULL;
    const uint8_t *p;
    uint32_t got;
    cr_assert_eq(tern_sub_next(sub, 10000, &m), 0, "message %u of %u", i, n);
    cr_assert_eq(tern_msg_len(m), BIG);
    p = tern_msg_data(m);
    memcpy(&got, p, sizeof(got));
    cr_assert_eq(got, i, "got message %u, expected %u", got, i);
    cr_assert_eq(p[BIG - 1], (uint8_t)(i & 0xff));
    tern_msg_release(m);
  }
}

/* A subscriber whose local queue takes every message of the test. */
static tern_sub_t *flow_subscriber(tern_client_t *cl) {
  tern_sub_opts_t so;
  tern_sub_t *sub;
  tern_sub_opts_init(&so);
  so.queue_msgs = 1u << 20;
  so.queue_bytes = 1u << 30;
  cr_assert_eq(tern_client_subscribe(cl, &sub, "pb.flow", &so), 0);
  return sub;
}

/*
 * A client with a 4096-byte outbound limit and a 20 ms publish timeout,
 * whose broker is then stopped (SIGSTOP): publishes until one gives up with
 * TERN_EWOULDBLOCK. *n gets the number accepted, all held, none lost.
 */
static tern_client_t *stalled_publisher(uint32_t *n) {
  tern_options_t o = test_opts();
  tern_client_t *cl;
  int rc;
  o.outbound_limit = 4096;
  o.publish_timeout_ms = 20;
  cl = test_client(&o);
  cr_assert_eq(kill(broker.pid, SIGSTOP), 0);
  *n = 0;
  /* Full means three timeouts in a row: on a loaded machine one 20 ms wait
   * can end while the loop thread is descheduled with room still left in
   * the socket, and the next publish then goes through. */
  for (int timeouts = 0; timeouts < 3;) {
    rc = publish_seq(cl, *n);
    if (rc == 0) {
      (*n)++;
      timeouts = 0;
    } else {
      cr_assert_eq(rc, TERN_EWOULDBLOCK, "%s", tern_err_name(rc));
      timeouts++;
    }
    /* Kernel buffers are a few MiB on loopback: far below this. */
    cr_assert_lt(*n, 1000000, "publishes are not held back");
  }
  return cl;
}

/*
 * Outbound limit 4096 with 64-byte payloads: the command queue holds 64
 * publishes (it counts payload bytes), whose frames take some 5 KiB: more
 * than the connection takes at once, so the loop thread hands each full
 * batch over in parts, keeping the rest for the drain callback. While the
 * broker is stopped the publisher fills the socket buffers until a publish
 * gives up after 20 ms; after SIGCONT it publishes on (retrying
 * TERN_EWOULDBLOCK) and every message arrives once, in order.
 */
Test(client_pub_batch, batch_larger_than_the_limit_goes_out_in_parts) {
  tern_client_t *sub_cl = test_client(NULL);
  tern_sub_t *sub = flow_subscriber(sub_cl);
  uint32_t n;
  int rc;
  /* Fill the socket buffers, the connection's buffer and the queue. */
  tern_client_t *cl = stalled_publisher(&n);
  cr_assert_eq(kill(broker.pid, SIGCONT), 0);
  /* Everything accepted was held, not lost; more can follow. */
  for (uint32_t end = n + 2000; n < end;) {
    rc = publish_seq(cl, n);
    if (rc == 0) {
      n++;
    } else {
      cr_assert_eq(rc, TERN_EWOULDBLOCK, "%s", tern_err_name(rc));
    }
  }
  expect_seqs(sub, n);
  tern_client_close(cl);
  tern_client_close(sub_cl);
}

/* publish_timeout_ms waits, then TERN_EWOULDBLOCK, as long as the broker
 * does not read; the memory the client holds stays bounded meanwhile. */
Test(client_pub_batch, publish_timeout_gives_ewouldblock_while_stopped) {
  tern_client_t *sub_cl = test_client(NULL);
  tern_sub_t *sub = flow_subscriber(sub_cl);
  uint32_t n;
  int rc;
  tern_client_t *cl = stalled_publisher(&n);
  for (int i = 0; i < 3; i++) {
    rc = publish_seq(cl, n);
    cr_expect_eq(rc, TERN_EWOULDBLOCK, "try %d: %s", i, tern_err_name(rc));
  }
  cr_assert_eq(kill(broker.pid, SIGCONT), 0);
  cr_assert_eq(tern_client_flush(cl, 10000), 0);
  cr_assert_eq(publish_seq(cl, n), 0);
  n++;
  expect_seqs(sub, n);
  tern_client_close(cl);
  tern_client_close(sub_cl);
}
