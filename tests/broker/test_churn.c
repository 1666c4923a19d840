/*
 * Connection churn: 10,000 connect / subscribe / disconnect
 * cycles, 250 sockets at a time, ending four ways: a clean close after the
 * subscription is live, a reset with a frame cut midway, a reset before the
 * broker has even answered, and a close in the middle of a SUB frame.
 *
 * Afterwards ternd holds no descriptor more than before (/proc/PID/fd), its
 * resident memory is back near where it started, and no subscription
 * survives: a PUB with ack to the churned topic reports 0 receivers.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_proc.h"
#include "proc_stats.h"
#include "raw_client.h"
#include "wire.h"

TT_BROKER_FIXTURE_DEFAULT(plain)

TestSuite(churn, .init = plain_init, .fini = plain_fini, .timeout = 240);

enum { CYCLES = 10000, BATCH = 250, IO_MS = 30000, SETTLE_MS = 30000 };

/* Growth of ternd's RSS allowed after the churn. 250 live connections at
 * a time cost ~6 MiB that the allocator keeps (the same after 40,000
 * cycles); a leaked read buffer (16 KiB) per cycle would be 160 MiB.
 * Under ASan the quarantine of freed blocks alone reaches 256 MiB: there
 * LeakSanitizer, at ternd's exit, is the memory check. */
#define RSS_SLACK_KB (TT_ASAN ? 512L * 1024 : 16L * 1024)

typedef enum ending {
  END_CLOSE,       /* PONG seen (subscription live), then FIN */
  END_RESET_FRAME, /* PONG seen, half a PUB, then RST */
  END_RESET_NOW,   /* RST straight after sending, nothing read */
  END_CUT_SUB,     /* half of a second SUB, then FIN */
  END_COUNT
} ending_t;

/* The frames cycle i sends: CONNECT, a SUB to the churned topic (every
 * other one in a queue group, all overflow policies in turn), PING. */
static void cycle_frames(tp_buf_t *out, int i) {
  static const int policies[] = {
      TP_OVERFLOW_UNSET, TP_OVERFLOW_BLOCK, TP_OVERFLOW_DROP_OLDEST,
      TP_OVERFLOW_DROP_NEWEST, TP_OVERFLOW_DISCONNECT};
  tp_buf_reset(out);
  tt_wire_encode_connect(out, true);
  tt_wire_encode_sub(out, 1, "churn.t", (i / END_COUNT) % 2 ? "churn.q" : NULL,
                     (uint64_t)(i % 7) * 10, policies[(i / 2) % 5]);
  tt_wire_encode_sub(out, 2, "churn.>", NULL, 0, TP_OVERFLOW_UNSET);
  if ((ending_t)(i % END_COUNT) == END_CUT_SUB) {
    tp_buf_t sub;
    tp_buf_init(&sub);
    tt_wire_encode_sub(&sub, 3, "churn.cut", NULL, 0, TP_OVERFLOW_UNSET);
    tp_buf_append(out, sub.data, sub.len / 2);
    tp_buf_free(&sub);
  } else {
    tt_wire_encode_ping(out);
  }
}

/* Barriers on c until ternd's descriptor count is back to want (each
 * barrier is a loop turn of the broker). The last count seen. */
static int settle_fds(tt_raw_t *c, pid_t pid, int want) {
  int64_t deadline = tt_now_ms() + SETTLE_MS;
  int n;
  while ((n = tt_proc_fd_count(pid)) != want && tt_now_ms() < deadline)
    tt_raw_barrier(c);
  return n;
}

Test(churn, ten_thousand_cycles_leave_nothing_behind) {
  int port = tt_g_broker.port;
  pid_t pid = tt_g_broker.pid;
  tt_raw_t ctl;
  tt_raw_open(&ctl, port, true, true, false);
  tt_raw_barrier_strict(&ctl);
  int fds_before = tt_proc_fd_count(pid);
  long rss_before = tt_proc_rss_kb(pid);
  cr_assert_gt(fds_before, 0, "cannot read /proc/%d/fd", (int)pid);

  tp_buf_t out;
  tp_buf_init(&out);
  tt_wire_t batch[BATCH];
  int endings[END_COUNT] = {0};
  for (int first = 0; first < CYCLES; first += BATCH) {
    for (int k = 0; k < BATCH; k++) {
      int fd = tt_wire_connect(port, 0);
      cr_assert_geq(fd, 0, "cycle %d: connect: %s", first + k, strerror(-fd));
      cr_assert_eq(tt_wire_init(&batch[k], fd), 0);
      cycle_frames(&out, first + k);
      int r = tt_send_try(fd, out.data, out.len, IO_MS);
      cr_assert_eq(r, 0, "cycle %d: send: %s", first + k, strerror(-r));
    }
    for (int k = 0; k < BATCH; k++) {
      int i = first + k;
      tt_wire_t *w = &batch[k];
      ending_t how = (ending_t)(i % END_COUNT);
      endings[how]++;
      if (how == END_CLOSE || how == END_RESET_FRAME) {
        int err = 0;
        int r = tt_wire_wait_pong(w, IO_MS, &err);
        cr_assert_eq(r, 1, "cycle %d: no PONG (%d)", i, r);
        cr_assert_eq(err, 0, "cycle %d: ERR %d", i, err);
      }
      if (how == END_RESET_FRAME) {
        static const uint8_t half[] = {0, 0, 0, 30, 0x93, TP_PUB, 0xa7};
        tt_send_try(w->fd, half, sizeof half, IO_MS);
      }
      if (how == END_RESET_FRAME || how == END_RESET_NOW) {
        tt_wire_reset(w->fd);
        w->fd = -1;
      }
      tt_wire_free(w);
    }
  }
  tp_buf_free(&out);

  int fds_after = settle_fds(&ctl, pid, fds_before);
  long rss_after = tt_proc_rss_kb(pid);
  cr_log_info("churn: %d cycles (%d close, %d reset mid-frame, %d reset at "
              "once, %d cut SUB); ternd fds %d -> %d, RSS %ld -> %ld KiB, "
              "VmHWM %ld KiB",
              CYCLES, endings[END_CLOSE], endings[END_RESET_FRAME],
              endings[END_RESET_NOW], endings[END_CUT_SUB], fds_before,
              fds_after, rss_before, rss_after, tt_proc_hwm_kb(pid));
  cr_assert_eq(fds_after, fds_before, "ternd has %d fds, had %d", fds_after,
               fds_before);
  cr_assert_lt(rss_after, rss_before + RSS_SLACK_KB,
               "ternd RSS %ld KiB after churn, %ld KiB before", rss_after,
               rss_before);

  /* No subscription survived: nobody receives a publish to the topic. */
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = tt_str("churn.t");
  f.u.pub.payload.ptr = (const uint8_t *)"x";
  f.u.pub.payload.len = 1;
  f.u.pub.has_ack = true;
  f.u.pub.ack = 77;
  tt_raw_send(&ctl, &f);
  tt_raw_expect(&ctl, &f, TP_PUBACK, TT_RECV_MS);
  cr_assert_eq(f.u.puback.ack_id, 77u);
  cr_assert_eq(f.u.puback.receivers, 0u,
               "%llu subscriptions outlived their connections",
               (unsigned long long)f.u.puback.receivers);
  tt_raw_check_pubsub(&ctl);
  tt_raw_close(&ctl);
}
