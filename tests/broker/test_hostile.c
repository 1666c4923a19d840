/*
 * Hostile input beside real traffic: while a well-behaved
 * publisher sends 100,000 messages to a well-behaved subscriber, a worker
 * thread keeps opening connections that send random bytes, huge length
 * prefixes, deeply nested or over-declared msgpack, frames cut off midway,
 * oversized payloads, and subscribers that stop reading and then reset.
 *
 * The good subscriber must receive all 100,000 in order with no DROPPED;
 * each hostile connection owed an ERR (1, 5 or 13) must get exactly that
 * code, as its last frame before the broker closes; ternd keeps answering
 * PING, its resident memory stays under a stated bound, and it exits 0.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_proc.h"
#include "proc_stats.h"
#include "raw_client.h"
#include "tern_proto/errors.h"
#include "wire.h"

/* A small max_payload keeps "oversized" frames cheap to send. */
#define MAX_PAYLOAD 4096u
#define MAX_FRAME (MAX_PAYLOAD + TP_FRAME_OVERHEAD)
TT_BROKER_FIXTURE(hostile, "--max-payload", "4096")

TestSuite(hostile, .init = hostile_init, .fini = hostile_fini, .timeout = 240);

enum {
  GOOD_TOTAL = 100000,
  GOOD_SIZE = 32,
  GOOD_BATCH = 1000,
  MIN_ROUNDS = 3,  /* hostile rounds, at least... */
  MAX_ROUNDS = 60, /* ...and at most */
  PER_KIND = 2,    /* connections of each kind per round */
  IO_MS = 30000    /* any single wait: generous for sanitizer builds */
};

/* The stated bound on ternd's resident memory during the test. Without
 * sanitizers the broker needs a few MiB here; ASan's shadow memory and
 * quarantine of freed blocks make its figure much larger. */
#define RSS_BOUND_KB (TT_ASAN ? 256L * 1024 : 64L * 1024)

/* ---- what a hostile connection sends and is owed ---------------------- */

typedef enum kind {
  K_RANDOM,          /* random bytes before CONNECT */
  K_HUGE_PREFIX,     /* 0xffffffff length prefix */
  K_PREFIX_OVER,     /* prefix max_frame + 1, with some body */
  K_NESTED,          /* [3, [[[[...]]]]] 3000 levels deep */
  K_DECLARED_HUGE,   /* array32 claiming 2^31 elements in a small frame */
  K_BIN_HUGE,        /* PUB whose bin32 claims 1 GiB */
  K_PAYLOAD_TOO_BIG, /* PUB payload > max_payload: ERR 13, then garbage */
  K_TRUNCATED,       /* half a PUB, then FIN */
  K_MIDFRAME_RESET,  /* half a SUB, then RST */
  K_BLOCKED_RESET,   /* SUB good topic (block, 50 msgs), never read, RST */
  K_DROPPER_RESET,   /* SUB good topic (drop_oldest, 5 msgs), RST */
  K_COUNT
} kind_t;

static const char *const kind_names[K_COUNT] = {
    "random",         "huge_prefix",   "prefix_over",     "nested",
    "declared_huge",  "bin_huge",      "payload_too_big", "truncated",
    "midframe_reset", "blocked_reset", "dropper_reset"};

typedef struct hostile_conn {
  kind_t kind;
  tt_wire_t w;
  int owed_err; /* ERR code owed before close; 0: none */
} hostile_conn_t;

/* xorshift64*: reproducible bytes from a printed seed. */
static uint64_t rng_next(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ull;
}

static void put_be32(uint8_t *p, uint32_t v) {
  tt_put_seq(p, v);
}

/*
 * Random bytes whose fate a local reader with the broker's max_frame can
 * predict: the ERR code it owes (1 or 5), or 0 when the bytes only make an
 * unfinished frame. Inputs that happen to decode to a frame are redrawn.
 * Half the inputs get a length prefix that fits, so the body itself is
 * what must be rejected.
 */
static size_t random_input(uint64_t *seed, uint8_t *buf, size_t cap,
                           int *owed) {
  for (;;) {
    size_t n = 8 + rng_next(seed) % (cap - 8);
    for (size_t i = 0; i < n; i++)
      buf[i] = (uint8_t)rng_next(seed);
    if (rng_next(seed) & 1)
      put_be32(buf, (uint32_t)(n - 4));
    tp_reader_t *r = NULL;
    if (tp_reader_create(&r, MAX_FRAME, 1024) != 0)
      return 0;
    tp_frame_t f;
    int rc = tp_reader_feed(r, buf, n);
    if (rc == 0)
      rc = tp_reader_next(r, &f);
    tp_reader_destroy(r);
    if (rc == 1)
      continue;
    *owed = rc == 0 ? 0 : tp_err_wire_code(rc);
    return n;
  }
}

/* Appends the bytes kind k sends to out; sets the ERR it is owed. */
static void build_input(kind_t k, uint64_t *seed, tp_buf_t *out, int *owed) {
  uint8_t tmp[600];
  tp_buf_t frame;
  tp_buf_init(&frame);
  *owed = 0;
  switch (k) {
  case K_RANDOM: {
    size_t n = random_input(seed, tmp, sizeof tmp, owed);
    tp_buf_append(out, tmp, n);
    break;
  }
  case K_HUGE_PREFIX:
    memset(tmp, 0xff, 4);
    tp_buf_append(out, tmp, 4);
    *owed = TP_WIRE_FRAME_TOO_LARGE;
    break;
  case K_PREFIX_OVER:
    tt_wire_encode_connect(out, true);
    put_be32(tmp, MAX_FRAME + 1);
    memset(tmp + 4, 0x90, 256);
    tp_buf_append(out, tmp, 4 + 256);
    *owed = TP_WIRE_FRAME_TOO_LARGE;
    break;
  case K_NESTED: {
    enum { DEPTH = 3000 };
    uint8_t *body = malloc(DEPTH + 2);
    body[0] = 0x92; /* [3, [[[...]]]] */
    body[1] = TP_PUB;
    memset(body + 2, 0x91, DEPTH - 1);
    body[DEPTH + 1] = 0x90;
    put_be32(tmp, DEPTH + 2);
    tt_wire_encode_connect(out, true);
    tp_buf_append(out, tmp, 4);
    tp_buf_append(out, body, DEPTH + 2);
    free(body);
    *owed = TP_WIRE_PROTOCOL;
    break;
  }
  case K_DECLARED_HUGE: {
    static const uint8_t b[] = {0, 0, 0, 7, 0xdd, 0x7f, 0xff, 0xff, 0xff, 3, 3};
    tp_buf_append(out, b, sizeof b);
    *owed = TP_WIRE_PROTOCOL;
    break;
  }
  case K_BIN_HUGE: {
    /* [3, "t", bin32 of 1 GiB] with 3 payload bytes present. */
    static const uint8_t b[] = {0,    0,    0, 12, 0x93, TP_PUB, 0xa1, 't',
                                0xc6, 0x40, 0, 0,  0,    'x',    'y',  'z'};
    tt_wire_encode_connect(out, true);
    tp_buf_append(out, b, sizeof b);
    *owed = TP_WIRE_PROTOCOL;
    break;
  }
  case K_PAYLOAD_TOO_BIG: {
    /* ERR 13 is not fatal: the PONG proves the session went on; then
     * a body that is not an array is (ERR 1). */
    static uint8_t big[MAX_PAYLOAD + 100];
    static const uint8_t garbage[] = {0, 0, 0, 3, 0xa2, 'h', 'i'};
    tt_wire_encode_connect(out, true);
    tt_wire_encode_pub(out, "hostile.big", big, sizeof big, 0);
    tt_wire_encode_ping(out);
    tp_buf_append(out, garbage, sizeof garbage);
    *owed = TP_WIRE_PROTOCOL;
    break;
  }
  case K_TRUNCATED:
    memset(tmp, 'c', 300);
    tt_wire_encode_connect(out, true);
    tt_wire_encode_pub(&frame, "hostile.cut", tmp, 300, 0);
    tp_buf_append(out, frame.data, frame.len / 2);
    break;
  case K_MIDFRAME_RESET:
    tt_wire_encode_connect(out, true);
    tt_wire_encode_sub(&frame, 99, "good.t", NULL, 0, TP_OVERFLOW_UNSET);
    tp_buf_append(out, frame.data, frame.len - 3);
    break;
  case K_BLOCKED_RESET:
    tt_wire_encode_connect(out, true);
    tt_wire_encode_sub(out, 1, "good.t", NULL, 50, TP_OVERFLOW_BLOCK);
    tt_wire_encode_ping(out);
    break;
  case K_DROPPER_RESET:
    tt_wire_encode_connect(out, true);
    tt_wire_encode_sub(out, 1, "good.t", NULL, 5, TP_OVERFLOW_DROP_OLDEST);
    tt_wire_encode_ping(out);
    break;
  case K_COUNT:
    break;
  }
  tp_buf_free(&frame);
}

/* ---- the hostile worker ------------------------------------------------ */

typedef struct hostile_ctx {
  int port;
  uint64_t seed;
  atomic_bool good_done; /* the good pair has finished */
  /* Results, read by the main thread after join. */
  int conns, rounds;
  int errs_checked; /* connections that got their owed ERR */
  int by_kind[K_COUNT];
  char failure[256]; /* first failure, or "" */
} hostile_ctx_t;

static void fail_once(hostile_ctx_t *h, const char *kind, const char *what,
                      int value) {
  if (h->failure[0] == '\0')
    snprintf(h->failure, sizeof h->failure, "hostile %s connection: %s (%d)",
             kind, what, value);
}

/* Reads until the broker closes; the last frame must be ERR owed (or, if
 * nothing is owed, no ERR at all). */
static void expect_close(hostile_ctx_t *h, hostile_conn_t *c) {
  const char *name = kind_names[c->kind];
  int last_err = 0;
  bool frame_after_err = false;
  for (;;) {
    tp_frame_t f;
    int r = tt_wire_recv(&c->w, &f, IO_MS);
    if (r == 0) {
      fail_once(h, name, "broker did not close it", 0);
      return;
    }
    if (r < 0 && r != -1) {
      fail_once(h, name, "undecodable frame from the broker", r);
      return;
    }
    if (r == -1)
      break;
    if (last_err != 0)
      frame_after_err = true;
    if (f.type == TP_ERR) {
      if (last_err != 0 && !(last_err == TP_WIRE_PAYLOAD_TOO_LARGE))
        fail_once(h, name, "two fatal ERRs", (int)f.u.err.code);
      last_err = (int)f.u.err.code;
      frame_after_err = false;
    }
  }
  if (last_err != c->owed_err)
    fail_once(h, name, "wrong ERR before close, got", last_err);
  else if (frame_after_err)
    fail_once(h, name, "frames after the fatal ERR", last_err);
  else if (c->owed_err != 0)
    h->errs_checked++;
}

/* ERR 13 first (non-fatal), PONG, then the fatal ERR 1 and the close. */
static void expect_payload_too_big(hostile_ctx_t *h, hostile_conn_t *c) {
  int err = 0;
  int r = tt_wire_wait_pong(&c->w, IO_MS, &err);
  if (r != 1) {
    fail_once(h, "payload_too_big", "no PONG after ERR 13", r);
    return;
  }
  if (err != TP_WIRE_PAYLOAD_TOO_LARGE) {
    fail_once(h, "payload_too_big", "expected ERR 13, got", err);
    return;
  }
  expect_close(h, c);
}

static void finish(hostile_ctx_t *h, hostile_conn_t *c) {
  switch (c->kind) {
  case K_RANDOM:
    /* An unfinished frame is owed nothing: end it, the broker closes. */
    if (c->owed_err == 0)
      shutdown(c->w.fd, SHUT_WR);
    expect_close(h, c);
    break;
  case K_TRUNCATED:
    shutdown(c->w.fd, SHUT_WR);
    expect_close(h, c);
    break;
  case K_PAYLOAD_TOO_BIG:
    expect_payload_too_big(h, c);
    break;
  case K_MIDFRAME_RESET:
    tt_wire_reset(c->w.fd);
    c->w.fd = -1;
    break;
  case K_BLOCKED_RESET:
  case K_DROPPER_RESET: {
    /* Subscribed (the PONG proves it); it never reads the MSGs. Cut a
     * frame short and reset, with its queue full of good traffic. */
    int err = 0;
    int r = tt_wire_wait_pong(&c->w, IO_MS, &err);
    if (r != 1 || err != 0)
      fail_once(h, kind_names[c->kind], "no PONG after SUB", r == 1 ? err : r);
    static const uint8_t half[] = {0, 0, 0, 40, 0x93, TP_PUB};
    tt_send_try(c->w.fd, half, sizeof half, IO_MS);
    tt_wire_reset(c->w.fd);
    c->w.fd = -1;
    break;
  }
  default:
    expect_close(h, c);
    break;
  }
}

/*
 * Rounds of K_COUNT * PER_KIND connections, all opened and fed before any
 * is checked, so they are live at once. Runs until the good pair is done
 * (at least MIN_ROUNDS, at most MAX_ROUNDS).
 */
static void *hostile_main(void *arg) {
  hostile_ctx_t *h = arg;
  enum { N = K_COUNT * PER_KIND };
  hostile_conn_t conns[N];
  tp_buf_t in;
  tp_buf_init(&in);
  uint64_t seed = h->seed;
  while (h->failure[0] == '\0' && h->rounds < MAX_ROUNDS &&
         (h->rounds < MIN_ROUNDS || !atomic_load(&h->good_done))) {
    size_t open = 0;
    for (size_t i = 0; i < N; i++) {
      hostile_conn_t *c = &conns[open];
      c->kind = (kind_t)(i % K_COUNT);
      int fd = tt_wire_connect(
          h->port,
          c->kind == K_BLOCKED_RESET || c->kind == K_DROPPER_RESET ? 4096 : 0);
      if (fd < 0) {
        fail_once(h, kind_names[c->kind], "connect failed", fd);
        break;
      }
      if (tt_wire_init(&c->w, fd) != 0) {
        close(fd);
        fail_once(h, kind_names[c->kind], "out of memory", 0);
        break;
      }
      open++;
      tp_buf_reset(&in);
      build_input(c->kind, &seed, &in, &c->owed_err);
      int r = tt_send_try(fd, in.data, in.len, IO_MS);
      /* The broker may close before reading everything (ERR 5). */
      if (r != 0 && r != -EPIPE && r != -ECONNRESET)
        fail_once(h, kind_names[c->kind], "send failed", r);
      h->conns++;
      h->by_kind[c->kind]++;
    }
    for (size_t i = 0; i < open; i++) {
      finish(h, &conns[i]);
      tt_wire_free(&conns[i].w);
    }
    h->rounds++;
  }
  tp_buf_free(&in);
  return NULL;
}

/* ---- the good pair ----------------------------------------------------- */

typedef struct good_sub {
  tt_wire_t w;
  uint32_t received;
  char failure[160];
} good_sub_t;

/* Reads GOOD_TOTAL MSGs, which must come in publish order. */
static void *good_sub_main(void *arg) {
  good_sub_t *s = arg;
  static const uint8_t pong[] = {0, 0, 0, 2, 0x91, TP_PONG};
  while (s->received < GOOD_TOTAL) {
    tp_frame_t f;
    int r = tt_wire_recv(&s->w, &f, IO_MS);
    if (r != 1) {
      snprintf(s->failure, sizeof s->failure,
               "good subscriber: %s after %u messages",
               r == 0 ? "timeout" : "closed or bad frame", s->received);
      return NULL;
    }
    if (f.type == TP_PING) {
      tt_send_try(s->w.fd, pong, sizeof pong, IO_MS);
      continue;
    }
    if (f.type != TP_MSG || f.u.msg.sid != 1 ||
        f.u.msg.payload.len != GOOD_SIZE) {
      snprintf(s->failure, sizeof s->failure,
               "good subscriber: unexpected %s (ERR code %u) after %u",
               tp_frame_type_name(f.type), f.type == TP_ERR ? f.u.err.code : 0u,
               s->received);
      return NULL;
    }
    uint32_t seq = tt_get_seq(f.u.msg.payload.ptr);
    if (seq != s->received) {
      snprintf(s->failure, sizeof s->failure,
               "good subscriber: message %u arrived as number %u", seq,
               s->received);
      return NULL;
    }
    s->received++;
  }
  return NULL;
}

Test(hostile, good_pair_unharmed_by_hostile_connections) {
  int port = tt_g_broker.port;
  pid_t pid = tt_g_broker.pid;
  long rss_start = tt_proc_rss_kb(pid);

  tt_raw_t sub, pub;
  tt_raw_open(&sub, port, true, true, false);
  tt_raw_open(&pub, port, true, true, false);
  tt_raw_sub(&sub, 1, "good.t", NULL);
  tt_raw_barrier_strict(&sub);

  good_sub_t gs = {0};
  /* The worker thread reads the subscriber's socket from here on. */
  gs.w.fd = sub.fd;
  gs.w.reader = sub.reader;
  pthread_t sub_thread, hostile_thread;
  cr_assert_eq(pthread_create(&sub_thread, NULL, good_sub_main, &gs), 0);

  hostile_ctx_t h;
  memset(&h, 0, sizeof h);
  h.port = port;
  h.seed = 0x7e57a11ce5ull;
  atomic_init(&h.good_done, false);
  cr_log_info("hostile seed 0x%llx", (unsigned long long)h.seed);
  cr_assert_eq(pthread_create(&hostile_thread, NULL, hostile_main, &h), 0);

  uint8_t payload[GOOD_SIZE];
  memset(payload, 'g', sizeof payload);
  long rss_max = rss_start;
  for (uint32_t sent = 0; sent < GOOD_TOTAL; sent += GOOD_BATCH) {
    for (uint32_t i = sent; i < sent + GOOD_BATCH; i++) {
      tt_put_seq(payload, i);
      tp_frame_t f;
      tp_frame_init(&f, TP_PUB);
      f.u.pub.topic = tt_str("good.t");
      f.u.pub.payload.ptr = payload;
      f.u.pub.payload.len = GOOD_SIZE;
      tt_raw_queue(&pub, &f);
    }
    int r = tt_send_try(pub.fd, pub.out.data, pub.out.len, IO_MS);
    tp_buf_reset(&pub.out);
    if (r != 0)
      break; /* the joins below report why */
    long rss = tt_proc_rss_kb(pid);
    if (rss > rss_max)
      rss_max = rss;
  }
  pthread_join(sub_thread, NULL);
  atomic_store(&h.good_done, true);
  pthread_join(hostile_thread, NULL);

  cr_log_info("hostile: %d connections in %d rounds, %d owed ERRs checked; "
              "ternd RSS %ld KiB at start, %ld KiB max sampled, VmHWM %ld "
              "KiB (bound %ld KiB)",
              h.conns, h.rounds, h.errs_checked, rss_start, rss_max,
              tt_proc_hwm_kb(pid), RSS_BOUND_KB);
  cr_assert_str_empty(gs.failure, "%s", gs.failure);
  cr_assert_eq(gs.received, (uint32_t)GOOD_TOTAL);
  cr_assert_str_empty(h.failure, "%s", h.failure);
  cr_assert_geq(h.conns, 50, "only %d hostile connections", h.conns);
  for (int k = 0; k < K_COUNT; k++)
    cr_assert_gt(h.by_kind[k], 0, "no %s connection ran", kind_names[k]);

  /* Still serving: PING answered, a fresh pub/sub round trip works. */
  tt_raw_barrier_strict(&pub);
  tt_raw_check_pubsub(&pub);
  long hwm = tt_proc_hwm_kb(pid);
  cr_assert_lt(rss_max, RSS_BOUND_KB, "ternd RSS %ld KiB", rss_max);
  cr_assert_lt(hwm, RSS_BOUND_KB, "ternd peak RSS %ld KiB", hwm);
  tt_raw_close(&sub);
  tt_raw_close(&pub);
}
