/*
 * ternd under valgrind memcheck: one broker runs under
 *
 *   valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect
 *            --error-exitcode=99
 *
 * through a workload that visits every path that allocates or frees:
 * connect timeout, plain and queue-group subscribers, a slow consumer of
 * each overflow policy (block until the stall timeout, drop_oldest,
 * drop_newest with its DROPPED notice, disconnect), PUB with ack, UNSUB,
 * malformed frames (ERR 1, ERR 5, ERR 13), disconnects mid-frame with FIN
 * and with RST, and finally SIGTERM with a subscriber that never reads, so
 * the drain deadline closes it. ternd must exit 0: valgrind turns any
 * memory error or definite/indirect leak into exit status 99.
 *
 * Registered (label `valgrind`) only when CMake finds valgrind and the
 * build is not sanitized.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "broker_proc.h"
#include "raw_client.h"
#include "wire.h"

#ifndef TERN_VALGRIND_PATH
#define TERN_VALGRIND_PATH "/usr/bin/valgrind"
#endif

enum {
  TOTAL = 2000,
  SIZE = 2048, /* 4 MiB in all: more than kernel buffers hide */
  BATCH = 100,
  SLOW_RCVBUF = 4096,
  SLOW_MAX = 10,
  /* Under valgrind ternd runs tens of times slower. */
  WAIT_MS = 60000
};

TestSuite(valgrind, .timeout = 600);

/* Reads until the broker closes c; the code of the last ERR (0: none). */
static int last_err_before_close(tt_raw_t *c) {
  int code = 0;
  for (;;) {
    tp_frame_t f;
    int r = tt_raw_recv(c, &f, WAIT_MS);
    cr_assert_neq(r, 0, "broker did not close the connection");
    if (r < 0)
      return code;
    if (f.type == TP_ERR)
      code = (int)f.u.err.code;
  }
}

/* Reads MSGs until the PONG of a PING sent now: how many. With next set,
 * checks their order (next expected sequence in *next); DROPPED counts
 * are added to *dropped. */
static int drain(tt_raw_t *c, uint32_t *next, uint64_t *dropped) {
  tp_frame_t f;
  tp_frame_init(&f, TP_PING);
  tt_raw_send(c, &f);
  int n = 0;
  for (;;) {
    int r = tt_raw_recv(c, &f, WAIT_MS);
    cr_assert_eq(r, 1, "subscriber: %s", r == 0 ? "timeout" : "closed");
    if (f.type == TP_PONG)
      return n;
    if (f.type == TP_PING) {
      tp_frame_init(&f, TP_PONG);
      tt_raw_send(c, &f);
      continue;
    }
    if (f.type == TP_DROPPED && dropped != NULL) {
      *dropped += f.u.dropped.count;
      continue;
    }
    cr_assert_eq(f.type, TP_MSG, "got %s", tp_frame_type_name(f.type));
    if (next != NULL) {
      uint32_t seq = tt_get_seq(f.u.msg.payload.ptr);
      cr_assert_eq(seq, *next, "message %u arrived as number %u", seq, *next);
      (*next)++;
    }
    n++;
  }
}

/* Reads whatever comes until the peer closes fd: true when it did within
 * WAIT_MS. */
static bool bytes_until_close(int fd) {
  int64_t end = tt_now_ms() + WAIT_MS;
  char buf[4096];
  while (tt_now_ms() < end) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0)
      continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      return true;
  }
  return false;
}

/* After SIGTERM: each of the n live clients gets GOAWAY and then the
 * close; ternd exits 0 (valgrind found nothing); the clients are closed. */
static void expect_goaway_then_exit(tt_broker_t *b, tt_raw_t **live, size_t n) {
  tp_frame_t f;
  for (size_t i = 0; i < n; i++) {
    bool goaway = false;
    for (;;) {
      int r = tt_raw_recv(live[i], &f, WAIT_MS);
      cr_assert_neq(r, 0, "client %zu: still open after SIGTERM", i);
      if (r < 0)
        break;
      if (f.type == TP_GOAWAY)
        goaway = true;
    }
    cr_assert(goaway, "client %zu: no GOAWAY", i);
  }
  int status = tt_broker_wait(b);
  cr_assert_eq(status, 0,
               "ternd under valgrind exited %d (99: memcheck found errors or "
               "leaks; see its report above)",
               status);
  for (size_t i = 0; i < n; i++)
    tt_raw_close(live[i]);
}

Test(valgrind, ternd_clean_under_memcheck) {
  static const char *const wrapper[] = {TERN_VALGRIND_PATH,
                                        "--quiet",
                                        "--leak-check=full",
                                        "--show-leak-kinds=definite,indirect",
                                        "--errors-for-leak-kinds=definite,"
                                        "indirect",
                                        "--error-exitcode=99",
                                        NULL};
  static const char *const args[] = {"--max-payload",
                                     "4096",
                                     "--stall-timeout-ms",
                                     "1000",
                                     "--drain-timeout-ms",
                                     "1000",
                                     "--connect-timeout-ms",
                                     "1000",
                                     NULL};
  tt_broker_t b;
  tt_broker_start_wrapped(&b, wrapper, args);
  int port = b.port;

  /* A client that never sends CONNECT: ERR 7 later. */
  tt_raw_t idle;
  tt_raw_open(&idle, port, false, true, false);

  tt_raw_t all, q1, q2, pub;
  tt_raw_open(&all, port, true, true, false);
  tt_raw_open(&q1, port, true, true, false);
  tt_raw_open(&q2, port, true, true, false);
  tt_raw_open(&pub, port, true, true, false);
  tt_raw_sub_policy(&all, 1, "vg.>", NULL, 0, TP_OVERFLOW_UNSET);
  tt_raw_sub_policy(&q1, 1, "vg.t", "grp", 0, TP_OVERFLOW_UNSET);
  tt_raw_sub_policy(&q2, 1, "vg.t", "grp", 0, TP_OVERFLOW_UNSET);

  /* Slow consumers, one per policy, plus one left unread at shutdown. */
  enum { BLOCK, DROP_OLDEST, DROP_NEWEST, DISCONNECT, UNREAD, NSLOW };
  static const int policy[NSLOW] = {
      TP_OVERFLOW_BLOCK, TP_OVERFLOW_DROP_OLDEST, TP_OVERFLOW_DROP_NEWEST,
      TP_OVERFLOW_DISCONNECT, TP_OVERFLOW_DROP_NEWEST};
  tt_raw_t slow[NSLOW];
  for (int i = 0; i < NSLOW; i++) {
    tt_raw_open_ex(&slow[i], port, SLOW_RCVBUF, true, true, false);
    tt_raw_sub_policy(&slow[i], 5, "vg.t", NULL, SLOW_MAX, policy[i]);
  }

  /* The flood. The block subscriber stalls the publisher until the stall
   * timeout closes it (ERR 6). Every 100th PUB asks for an ack. */
  uint8_t *payload = calloc(1, 4097); /* 4097: one over max_payload */
  cr_assert_not_null(payload);
  for (uint32_t sent = 0; sent < TOTAL; sent += BATCH) {
    for (uint32_t i = sent; i < sent + BATCH; i++) {
      tt_put_seq(payload, i);
      tp_frame_t f;
      tp_frame_init(&f, TP_PUB);
      f.u.pub.topic = tt_str("vg.t");
      f.u.pub.payload.ptr = payload;
      f.u.pub.payload.len = SIZE;
      f.u.pub.has_ack = i % 100 == 0;
      f.u.pub.ack = i + 1;
      tt_raw_queue(&pub, &f);
    }
    int r = tt_send_try(pub.fd, pub.out.data, pub.out.len, WAIT_MS);
    cr_assert_eq(r, 0, "publisher: %s", strerror(-r));
    tp_buf_reset(&pub.out);
  }
  tt_raw_barrier(&pub);

  uint32_t next = 0;
  cr_assert_eq(drain(&all, &next, NULL), TOTAL);
  int n1 = drain(&q1, NULL, NULL), n2 = drain(&q2, NULL, NULL);
  cr_assert_eq(n1 + n2, TOTAL, "queue group got %d + %d", n1, n2);
  cr_assert_eq(last_err_before_close(&slow[BLOCK]), 6);
  cr_assert_eq(last_err_before_close(&slow[DISCONNECT]), 6);

  /* drop_newest: after the backlog, a gap is announced before the next
   * message. */
  uint64_t dropped = 0;
  drain(&slow[DROP_NEWEST], NULL, &dropped);
  tt_raw_pub(&pub, "vg.t", "mark", 4);
  tp_frame_t f;
  if (dropped == 0) {
    tt_raw_expect(&slow[DROP_NEWEST], &f, TP_DROPPED, WAIT_MS);
    dropped = f.u.dropped.count;
  }
  cr_assert_gt(dropped, 0u);
  tt_raw_expect(&slow[DROP_NEWEST], &f, TP_MSG, WAIT_MS);

  /* Malformed input: ERR 1, ERR 5 (both fatal), ERR 13 (not). */
  tt_raw_t bad;
  static const uint8_t garbage[] = {0, 0, 0, 3, 0xa2, 'h', 'i'};
  tt_raw_open(&bad, port, true, true, false);
  tt_raw_send_bytes(&bad, garbage, sizeof garbage);
  cr_assert_eq(last_err_before_close(&bad), 1);
  tt_raw_close(&bad);
  static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
  tt_raw_open(&bad, port, true, true, false);
  tt_raw_send_bytes(&bad, huge, sizeof huge);
  cr_assert_eq(last_err_before_close(&bad), 5);
  tt_raw_close(&bad);
  tt_raw_pub(&pub, "vg.big", payload, 4097);
  tt_raw_expect_err(&pub, 13, WAIT_MS);

  /* Disconnects in the middle of a frame: FIN, then RST. */
  static const uint8_t half[] = {0, 0, 0, 40, 0x93, TP_PUB, 0xa4, 'v'};
  tt_raw_open(&bad, port, true, true, false);
  tt_raw_send_bytes(&bad, half, sizeof half);
  tt_raw_close(&bad);
  tt_raw_open(&bad, port, true, true, false);
  tt_raw_send_bytes(&bad, half, sizeof half);
  tt_wire_reset(bad.fd);
  bad.fd = -1;
  tt_raw_close(&bad);
  /* A reset with a full queue of messages behind it. */
  tt_wire_reset(slow[DROP_OLDEST].fd);
  slow[DROP_OLDEST].fd = -1;

  /* UNSUB now and UNSUB after one more message. */
  tt_raw_unsub(&all, 1, 0);
  tt_raw_unsub(&q1, 1, 1);
  tt_raw_barrier(&all);
  tt_raw_barrier(&q1);

  tt_raw_expect_err(&idle, 7, WAIT_MS);
  tt_raw_close(&idle);

  /* SIGTERM: GOAWAY for everyone; slow[UNREAD] never reads its queue, so
   * the drain deadline closes it. */
  cr_assert_eq(kill(b.pid, SIGTERM), 0);
  tt_raw_t *live[] = {&all, &q1, &q2, &pub, &slow[DROP_NEWEST]};
  expect_goaway_then_exit(&b, live, sizeof live / sizeof live[0]);
  for (int i = 0; i < NSLOW; i++) {
    if (i != DROP_NEWEST)
      tt_raw_close(&slow[i]);
  }
  free(payload);
}

/*
 * The same under TLS: ternd speaks TLS only and the raw clients reach it
 * through the test TLS proxy (broker_proc.c), so every TLS path that
 * allocates runs under memcheck: handshakes, records both ways, a slow
 * consumer's held write, a plaintext client refused, a handshake left
 * unfinished (connect timeout) and one that fails (a broken ClientHello),
 * a SIGHUP that reloads the certificate, and SIGTERM with TLS clients
 * still connected.
 */
Test(valgrind, ternd_tls_clean_under_memcheck) {
  setenv("TERN_TEST_TLS",
         getenv("TERN_TEST_CERTS") ? getenv("TERN_TEST_CERTS") : "", 1);
  cr_assert(tt_tls_dir() != NULL, "TERN_TEST_CERTS is not set (ctest sets it)");
  static const char *const wrapper[] = {TERN_VALGRIND_PATH,
                                        "--quiet",
                                        "--leak-check=full",
                                        "--show-leak-kinds=definite,indirect",
                                        "--errors-for-leak-kinds=definite,"
                                        "indirect",
                                        "--error-exitcode=99",
                                        NULL};
  static const char *const args[] = {"--max-payload",
                                     "4096",
                                     "--drain-timeout-ms",
                                     "1000",
                                     "--connect-timeout-ms",
                                     "3000",
                                     NULL};
  tt_broker_t b;
  tt_broker_start_wrapped(&b, wrapper, args);

  tt_raw_t sub, pub, slow;
  tt_raw_open(&sub, b.port, true, true, false);
  tt_raw_open(&pub, b.port, true, true, false);
  tt_raw_open_ex(&slow, b.port, SLOW_RCVBUF, true, true, false);
  tt_raw_sub_policy(&sub, 1, "vgt.>", NULL, 0, TP_OVERFLOW_UNSET);
  tt_raw_sub_policy(&slow, 1, "vgt.>", NULL, SLOW_MAX, TP_OVERFLOW_DROP_NEWEST);
  uint8_t *payload = calloc(1, SIZE);
  cr_assert_not_null(payload);
  for (int i = 0; i < 200; i++)
    tt_raw_pub(&pub, "vgt.x", payload, SIZE);
  tt_raw_barrier(&pub);
  tp_frame_t f;
  for (int got = 0; got < 200;) {
    cr_assert_eq(tt_raw_recv(&sub, &f, WAIT_MS), 1, "sub got %d of 200", got);
    if (f.type == TP_MSG)
      got++;
  }

  /* Straight to ternd, past the proxy: plaintext refused with ERR 1. */
  tt_raw_t plain;
  tt_raw_attach(&plain, tt_connect(b.ternd_port));
  tt_raw_expect_err(&plain, 1, WAIT_MS);
  tt_raw_close(&plain);
  /* A ClientHello that is not one: the handshake fails. */
  tt_raw_t broken;
  tt_raw_attach(&broken, tt_connect(b.ternd_port));
  static const unsigned char bad[] = {0x16, 0x03, 0x01, 0x00, 0x05,
                                      'h',  'e',  'l',  'l',  'o'};
  tt_send_all(broken.fd, bad, sizeof bad);
  cr_assert(bytes_until_close(broken.fd)); /* a TLS alert, not frames */
  tt_raw_close(&broken);
  /* Half a ClientHello: closed at the connect timeout. */
  tt_raw_t half;
  tt_raw_attach(&half, tt_connect(b.ternd_port));
  tt_send_all(half.fd, bad, 3);
  cr_assert(bytes_until_close(half.fd));
  tt_raw_close(&half);

  /* A reload swaps the context; clients go on. */
  cr_assert_eq(kill(b.pid, SIGHUP), 0);
  tt_raw_barrier(&sub);
  tt_raw_t late;
  tt_raw_open(&late, b.port, true, true, false);
  tt_raw_barrier(&late);

  cr_assert_eq(kill(b.pid, SIGTERM), 0);
  tt_raw_t *live[] = {&sub, &pub, &late};
  expect_goaway_then_exit(&b, live, sizeof live / sizeof live[0]);
  tt_raw_close(&slow);
  free(payload);
}
