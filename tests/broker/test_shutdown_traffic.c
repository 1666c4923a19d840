/*
 * Graceful shutdown with traffic in flight (PROTOCOL.md "Session" 6).
 * A publisher publishes without pause, every PUB with an ack,
 * while three subscribers read; SIGTERM arrives mid-stream.
 *
 * Each subscriber must see an unbroken sequence from the first message,
 * then GOAWAY, then the close, with no MSG after GOAWAY; and it must have
 * received every message the broker acknowledged as queued to it, since
 * what was accepted is flushed before the close. ternd exits 0 (its drain
 * deadline bounds the wait; the test asserts the exit status only).
 *
 * A second test leaves a subscriber's full queue unread: the drain
 * deadline closes it and ternd still exits 0.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "raw_client.h"
#include "wire.h"

TT_BROKER_FIXTURE(drain, "--drain-timeout-ms", "3000")
TT_BROKER_FIXTURE(short_drain, "--drain-timeout-ms", "300")

TestSuite(shutdown_traffic, .timeout = 120);

enum {
  NSUBS = 3,
  SIZE = 64,
  BATCH = 50,
  SIGNAL_AFTER = 5000, /* messages each subscriber has before SIGTERM */
  IO_MS = 30000
};

/* ---- the publisher thread ---------------------------------------------- */

typedef struct publisher {
  int port;
  tt_wire_t w;
  uint32_t sent;      /* PUBs written to the socket */
  uint32_t attempted; /* plus those of a batch cut short */
  int64_t max_acked;  /* highest seq acked with NSUBS receivers, or -1 */
  bool goaway;        /* GOAWAY seen */
  bool frame_after_goaway;
  char failure[160];
} publisher_t;

/* Reads whatever frames are ready within wait_ms; false once closed. */
static bool pub_read(publisher_t *p, int wait_ms) {
  static const uint8_t pong[] = {0, 0, 0, 2, 0x91, TP_PONG};
  for (;;) {
    tp_frame_t f;
    int r = tt_wire_recv(&p->w, &f, wait_ms);
    if (r == 0)
      return true;
    if (r < 0)
      return false;
    wait_ms = 0;
    if (p->goaway)
      p->frame_after_goaway = true;
    if (f.type == TP_PUBACK) {
      /* ack id = seq + 1 */
      if (f.u.puback.receivers != NSUBS && p->failure[0] == '\0')
        snprintf(p->failure, sizeof p->failure,
                 "PUBACK %llu: %llu receivers, expected %d",
                 (unsigned long long)f.u.puback.ack_id,
                 (unsigned long long)f.u.puback.receivers, NSUBS);
      if ((int64_t)f.u.puback.ack_id - 1 > p->max_acked)
        p->max_acked = (int64_t)f.u.puback.ack_id - 1;
    } else if (f.type == TP_GOAWAY) {
      p->goaway = true;
    } else if (f.type == TP_PING) {
      tt_send_try(p->w.fd, pong, sizeof pong, IO_MS);
    } else if (p->failure[0] == '\0') {
      snprintf(p->failure, sizeof p->failure, "publisher got %s",
               tp_frame_type_name(f.type));
    }
  }
}

/* Publishes batches until GOAWAY or the close, then reads to the end. */
static void *publisher_main(void *arg) {
  publisher_t *p = arg;
  tp_buf_t out;
  tp_buf_init(&out);
  uint8_t payload[SIZE];
  memset(payload, 'p', sizeof payload);
  bool open = true;
  while (open && !p->goaway) {
    tp_buf_reset(&out);
    for (int i = 0; i < BATCH; i++) {
      tt_put_seq(payload, p->sent + (uint32_t)i);
      tt_wire_encode_pub(&out, "drain.t", payload, sizeof payload,
                         p->sent + (uint32_t)i + 1);
    }
    /* Once the broker stops reading, the send times out or fails: that
     * ends publishing, and the frames in flight were never accepted. */
    p->attempted = p->sent + BATCH;
    if (tt_send_try(p->w.fd, out.data, out.len, 2000) != 0)
      break;
    p->sent += BATCH;
    open = pub_read(p, 0);
  }
  while (open)
    open = pub_read(p, IO_MS);
  tp_buf_free(&out);
  return NULL;
}

/* ---- the test ---------------------------------------------------------- */

typedef struct subscriber {
  tt_raw_t c;
  uint32_t next; /* next expected seq = messages received */
  bool goaway, closed;
} subscriber_t;

/* Handles every frame subscriber s has ready; cr_asserts the order. */
static void sub_read(subscriber_t *s) {
  tp_frame_t f;
  int r;
  while ((r = tt_raw_recv(&s->c, &f, 0)) == 1) {
    if (f.type == TP_PING) {
      tp_frame_t pong;
      tp_frame_init(&pong, TP_PONG);
      tt_raw_send(&s->c, &pong);
    } else if (f.type == TP_GOAWAY) {
      cr_assert_not(s->goaway, "two GOAWAYs");
      s->goaway = true;
    } else {
      cr_assert_eq(f.type, TP_MSG, "subscriber got %s",
                   tp_frame_type_name(f.type));
      cr_assert_not(s->goaway, "MSG %u after GOAWAY", s->next);
      uint32_t seq = tt_get_seq(f.u.msg.payload.ptr);
      cr_assert_eq(seq, s->next, "message %u arrived as number %u", seq,
                   s->next);
      s->next++;
    }
  }
  if (r < 0)
    s->closed = true;
}

Test(shutdown_traffic, sigterm_mid_stream_flushes_accepted_messages,
     .init = drain_init, .fini = drain_fini) {
  int port = tt_g_broker.port;
  subscriber_t subs[NSUBS];
  memset(subs, 0, sizeof subs);
  for (int i = 0; i < NSUBS; i++) {
    tt_raw_open(&subs[i].c, port, true, true, false);
    tt_raw_sub(&subs[i].c, 1, "drain.t", NULL);
    tt_raw_barrier_strict(&subs[i].c);
  }
  publisher_t p;
  memset(&p, 0, sizeof p);
  p.max_acked = -1;
  tt_raw_t pc;
  tt_raw_open(&pc, port, true, true, false);
  p.w.fd = pc.fd;
  p.w.reader = pc.reader;
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, publisher_main, &p), 0);

  bool signalled = false;
  int64_t deadline = tt_now_ms() + 60000;
  for (;;) {
    struct pollfd pf[NSUBS];
    int open = 0;
    uint32_t least = UINT32_MAX;
    for (int i = 0; i < NSUBS; i++) {
      pf[i].fd = subs[i].closed ? -1 : subs[i].c.fd;
      pf[i].events = POLLIN;
      open += !subs[i].closed;
      if (subs[i].next < least)
        least = subs[i].next;
    }
    if (open == 0)
      break;
    if (!signalled && least >= SIGNAL_AFTER) {
      cr_assert_eq(kill(tt_g_broker.pid, SIGTERM), 0);
      signalled = true;
    }
    cr_assert_lt(tt_now_ms(), deadline, "subscribers still open (%d)", open);
    int r = poll(pf, NSUBS, 1000);
    cr_assert(r >= 0 || errno == EINTR, "poll: %s", strerror(errno));
    for (int i = 0; i < NSUBS; i++) {
      if (!subs[i].closed && (pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
        sub_read(&subs[i]);
    }
  }
  pthread_join(th, NULL);
  int status = tt_broker_wait(&tt_g_broker);

  cr_log_info("shutdown under traffic: %u published, highest acked %lld, "
              "received %u / %u / %u",
              p.sent, (long long)p.max_acked, subs[0].next, subs[1].next,
              subs[2].next);
  cr_assert(signalled, "the subscribers never reached %d messages",
            SIGNAL_AFTER);
  cr_assert_str_empty(p.failure, "%s", p.failure);
  cr_assert(p.goaway, "publisher got no GOAWAY");
  cr_assert_not(p.frame_after_goaway, "publisher got frames after GOAWAY");
  cr_assert_geq(p.max_acked, SIGNAL_AFTER - 1);
  for (int i = 0; i < NSUBS; i++) {
    cr_assert(subs[i].goaway, "subscriber %d got no GOAWAY", i);
    cr_assert_gt((int64_t)subs[i].next, p.max_acked,
                 "subscriber %d: %u messages, but %lld was acked", i,
                 subs[i].next, (long long)p.max_acked);
    cr_assert_leq(subs[i].next, p.attempted);
    tt_raw_close(&subs[i].c);
  }
  cr_assert_eq(status, 0, "ternd exit status %d", status);
  tt_raw_close(&pc);
}

Test(shutdown_traffic, unread_queue_is_closed_at_the_drain_deadline,
     .init = short_drain_init, .fini = short_drain_fini) {
  enum { BIG = 8192, COUNT = 1000 };
  int port = tt_g_broker.port;
  tt_raw_t slow, reader, pub;
  tt_raw_open_ex(&slow, port, 4096, true, true, false);
  tt_raw_open(&reader, port, true, true, false);
  tt_raw_open(&pub, port, true, true, false);
  tp_frame_t f;
  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = 1;
  f.u.sub.pattern = tt_str("drain.slow");
  f.u.sub.max_msgs = 100;
  f.u.sub.overflow = TP_OVERFLOW_DROP_NEWEST;
  tt_raw_send(&slow, &f);
  tt_raw_barrier_strict(&slow);
  tt_raw_sub(&reader, 1, "drain.slow", NULL);
  tt_raw_barrier_strict(&reader);

  uint8_t *payload = calloc(1, BIG);
  cr_assert_not_null(payload);
  for (int i = 0; i < COUNT; i++) {
    tp_frame_t pf;
    tp_frame_init(&pf, TP_PUB);
    pf.u.pub.topic = tt_str("drain.slow");
    pf.u.pub.payload.ptr = payload;
    pf.u.pub.payload.len = BIG;
    tt_raw_queue(&pub, &pf);
    if (i % 50 == 49)
      tt_raw_flush(&pub);
  }
  tt_raw_flush(&pub);
  tt_raw_barrier(&pub);
  /* The reader has everything (its PONG comes after the MSGs); the slow
   * subscriber's queue is full and nobody reads it. */
  int got = 0;
  tp_frame_init(&f, TP_PING);
  tt_raw_send(&reader, &f);
  for (got = 0; got < COUNT; got++)
    tt_raw_expect(&reader, &f, TP_MSG, TT_RECV_MS);
  tt_raw_expect(&reader, &f, TP_PONG, TT_RECV_MS);

  cr_assert_eq(kill(tt_g_broker.pid, SIGTERM), 0);
  int status = tt_broker_wait(&tt_g_broker);
  cr_assert_eq(status, 0, "ternd exit status %d", status);
  /* Everything the slow subscriber still gets ends in a close. */
  cr_assert(tt_raw_wait_closed(&slow, TT_RECV_MS));
  cr_assert(tt_raw_wait_closed(&reader, TT_RECV_MS));
  free(payload);
  tt_raw_close(&slow);
  tt_raw_close(&reader);
  tt_raw_close(&pub);
}
