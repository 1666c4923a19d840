/*
 * tern_soak: mixed load against a running ternd for a bounded time, then
 * an accounting of every message (scripts/soak.sh starts ternd and this).
 *
 *   tern_soak PORT TERND_PID SECONDS RSS_LIMIT_MB
 *
 * Load: three publishers (one topic each), `block` subscribers (one on
 * every topic by wildcard, one slow reader), a queue group of three,
 * slow drop_oldest and drop_newest subscribers, a slow `disconnect`
 * subscriber that is cut off and comes back, and a churn thread that
 * connects, subscribes and disconnects (FIN or RST) without pause.
 *
 * At the end, after the publishers' last PUB is acknowledged by a PING
 * barrier: every block subscription received every message of its topics
 * in order; the queue group received each message exactly once; every
 * drop subscription's received + DROPPED equals sent; ternd's RSS never
 * passed the limit. Exit 0 when all hold, 1 otherwise.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker_proc.h"
#include "proc_stats.h"
#include "wire.h"

enum { NPUB = 3, PUB_BATCH = 50, IO_MS = 30000 };

static int g_port;
static atomic_int g_phase;    /* 0 run, 1 publishers stop, 2 drain */
static uint32_t g_sent[NPUB]; /* final counts, set before phase 2 */
static atomic_int g_drained;  /* consumers done with their barrier */
static atomic_int g_markers;  /* 1 once the end markers are published */
static atomic_int g_ready;    /* consumers subscribed; publishers wait */

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static int open_conn(tt_wire_t *w, int rcvbuf, tp_buf_t *frames) {
  int fd = tt_wire_connect(g_port, rcvbuf);
  if (fd < 0 || tt_wire_init(w, fd) != 0)
    return -1;
  return tt_send_try(fd, frames->data, frames->len, IO_MS) == 0 ? 0 : -1;
}

/* ---- publishers -------------------------------------------------------- */

typedef struct publisher {
  int id;
  uint32_t sent;
  int ok;
} publisher_t;

static void *publisher_main(void *arg) {
  publisher_t *p = arg;
  char topic[32];
  snprintf(topic, sizeof topic, "soak.p%d", p->id);
  tp_buf_t out;
  tp_buf_init(&out);
  tt_wire_encode_connect(&out, true);
  tt_wire_t w;
  if (open_conn(&w, 0, &out) != 0)
    return NULL;
  uint8_t payload[512];
  memset(payload, 'p', sizeof payload);
  while (atomic_load(&g_phase) == 0) {
    tp_buf_reset(&out);
    for (int i = 0; i < PUB_BATCH; i++) {
      uint32_t seq = p->sent + (uint32_t)i;
      tt_put_seq(payload, seq);
      tt_wire_encode_pub(&out, topic, payload, 16 + seq % 480, 0);
    }
    if (tt_send_try(w.fd, out.data, out.len, IO_MS) != 0)
      break;
    p->sent += PUB_BATCH;
    sleep_us(1000);
  }
  tp_buf_reset(&out);
  tt_wire_encode_ping(&out);
  int err = 0;
  p->ok = tt_send_try(w.fd, out.data, out.len, IO_MS) == 0 &&
          tt_wire_wait_pong(&w, IO_MS, &err) == 1 && err == 0;
  tt_wire_free(&w);
  tp_buf_free(&out);
  return NULL;
}

/* ---- consumers --------------------------------------------------------- */

typedef enum ckind { C_BLOCK, C_DROP, C_GROUP, C_DISCONNECT } ckind_t;

typedef struct consumer {
  const char *name;
  ckind_t kind;
  const char *pattern;
  const char *queue;
  int policy;
  uint64_t max_msgs;
  long slow_us;         /* pause per message while running */
  int topics[NPUB];     /* 1 for each publisher the pattern matches */
  uint64_t got[NPUB];   /* messages received per publisher */
  int64_t last[NPUB];   /* last sequence per publisher */
  uint64_t dropped;     /* DROPPED counts */
  uint64_t gap;         /* DROPPED counts since the last MSG */
  uint64_t disconnects; /* ERR 6 received (C_DISCONNECT) */
  char failure[200];
} consumer_t;

static void fail(consumer_t *c, const char *fmt, uint32_t a, uint32_t b) {
  if (c->failure[0] == '\0')
    snprintf(c->failure, sizeof c->failure, fmt, a, b);
}

static int subscribe(consumer_t *c, tt_wire_t *w) {
  tp_buf_t out;
  tp_buf_init(&out);
  tt_wire_encode_connect(&out, true);
  tt_wire_encode_sub(&out, 1, c->pattern, c->queue, c->max_msgs, c->policy);
  tt_wire_encode_ping(&out);
  int rc = open_conn(w, c->slow_us > 0 ? 16384 : 0, &out);
  tp_buf_free(&out);
  int err = 0;
  if (rc == 0 && (tt_wire_wait_pong(w, IO_MS, &err) != 1 || err != 0))
    rc = -1;
  return rc;
}

/* One frame: checks order per publisher. 1 MSG, 0 other, -1 closed. */
static int consume(consumer_t *c, tt_wire_t *w, int timeout_ms, int *pub,
                   uint32_t *seq) {
  static const uint8_t pong[] = {0, 0, 0, 2, 0x91, TP_PONG};
  tp_frame_t f;
  int r = tt_wire_recv(w, &f, timeout_ms);
  if (r == 0)
    return 0;
  if (r < 0)
    return -1;
  switch (f.type) {
  case TP_PING:
    tt_send_try(w->fd, pong, sizeof pong, IO_MS);
    return 0;
  case TP_DROPPED:
    c->dropped += f.u.dropped.count;
    c->gap += f.u.dropped.count;
    return 0;
  case TP_ERR:
    if (f.u.err.code == 6 && c->kind == C_DISCONNECT)
      c->disconnects++;
    else
      fail(c, "ERR %u (%u)", f.u.err.code, 0);
    return 0;
  case TP_PONG:
    return 2;
  case TP_MSG:
    break;
  default:
    return 0;
  }
  int k = f.u.msg.topic.ptr[f.u.msg.topic.len - 1] - '0';
  if (k < 0 || k >= NPUB || f.u.msg.payload.len < 4) {
    fail(c, "bad MSG (%u %u)", (uint32_t)k, f.u.msg.payload.len);
    return 0;
  }
  uint32_t s = tt_get_seq(f.u.msg.payload.ptr);
  if (c->kind == C_BLOCK && (int64_t)s != c->last[k] + 1)
    fail(c, "block: message %u after %u", s, (uint32_t)c->last[k]);
  else if (c->kind == C_DROP && (int64_t)s != c->last[k] + 1 + (int64_t)c->gap)
    /* One publisher per drop consumer: each DROPPED must sit exactly at
     * its gap (PROTOCOL.md 7.1), for drop_oldest as for drop_newest. */
    fail(c, "gap: message %u after %u without its DROPPED just before", s,
         (uint32_t)c->last[k]);
  else if ((int64_t)s <= c->last[k] && c->kind != C_DISCONNECT)
    fail(c, "out of order: %u after %u", s, (uint32_t)c->last[k]);
  c->last[k] = s;
  c->gap = 0;
  c->got[k]++;
  *pub = k;
  *seq = s;
  return 1;
}

static void *consumer_main(void *arg) {
  consumer_t *c = arg;
  for (int k = 0; k < NPUB; k++)
    c->last[k] = -1;
  tt_wire_t w;
  if (subscribe(c, &w) != 0) {
    fail(c, "cannot subscribe", 0, 0);
    atomic_fetch_add(&g_ready, 1);
    atomic_fetch_add(&g_drained, 1);
    return NULL;
  }
  atomic_fetch_add(&g_ready, 1);
  int pub;
  uint32_t seq;
  while (atomic_load(&g_phase) < 2) {
    int r = consume(c, &w, 100, &pub, &seq);
    if (r == -1) {
      tt_wire_free(&w);
      if (c->kind != C_DISCONNECT || subscribe(c, &w) != 0) {
        fail(c, "connection lost", 0, 0);
        atomic_fetch_add(&g_drained, 1);
        return NULL;
      }
      continue;
    }
    if (r == 1 && c->slow_us > 0)
      sleep_us(c->slow_us);
  }
  if (c->kind == C_DISCONNECT) {
    /* It may be cut off again at any moment: nothing to account for. */
    tt_wire_free(&w);
    atomic_fetch_add(&g_drained, 1);
    return NULL;
  }
  /* Drain: everything queued before this PING comes before its PONG. */
  tp_buf_t out;
  tp_buf_init(&out);
  tt_wire_encode_ping(&out);
  tt_send_try(w.fd, out.data, out.len, IO_MS);
  tp_buf_free(&out);
  int r;
  int64_t deadline = tt_now_ms() + IO_MS;
  while ((r = consume(c, &w, IO_MS, &pub, &seq)) != 2) {
    if (r == -1 || tt_now_ms() > deadline) {
      fail(c, "no PONG while draining", 0, 0);
      break;
    }
  }
  atomic_fetch_add(&g_drained, 1);
  if (c->kind == C_DROP) {
    /* The end marker (seq == sent) comes after any last DROPPED. */
    while (!atomic_load(&g_markers))
      sleep_us(1000);
    for (;;) {
      r = consume(c, &w, IO_MS, &pub, &seq);
      if (r == -1) {
        fail(c, "closed before the end marker", 0, 0);
        break;
      }
      if (r == 1 && seq == g_sent[pub])
        break;
    }
  }
  tt_wire_free(&w);
  return NULL;
}

/* ---- churn and memory -------------------------------------------------- */

static atomic_ullong g_churn;

static void *churn_main(void *arg) {
  (void)arg;
  tp_buf_t out;
  tp_buf_init(&out);
  tt_wire_encode_connect(&out, true);
  tt_wire_encode_sub(&out, 1, "soak.>", NULL, 10, TP_OVERFLOW_DROP_NEWEST);
  tt_wire_encode_sub(&out, 2, "churn.x", "q", 0, TP_OVERFLOW_UNSET);
  tt_wire_encode_ping(&out);
  for (uint64_t i = 0; atomic_load(&g_phase) == 0; i++) {
    tt_wire_t w;
    if (open_conn(&w, 0, &out) != 0)
      break;
    if (i % 3 != 2)
      tt_wire_wait_pong(&w, IO_MS, NULL);
    if (i % 2) {
      tt_wire_reset(w.fd);
      w.fd = -1;
    }
    tt_wire_free(&w);
    atomic_fetch_add(&g_churn, 1);
  }
  tp_buf_free(&out);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: tern_soak PORT TERND_PID SECONDS RSS_LIMIT_MB\n");
    return 2;
  }
  tt_ignore_sigpipe();
  g_port = atoi(argv[1]);
  pid_t pid = (pid_t)atoi(argv[2]);
  int seconds = atoi(argv[3]);
  long limit_kb = atol(argv[4]) * 1024;

  consumer_t cons[] = {
      {.name = "block-all", .kind = C_BLOCK, .pattern = "soak.>"},
      {.name = "block-slow-p0",
       .kind = C_BLOCK,
       .pattern = "soak.p0",
       .slow_us = 20},
      {.name = "group-1", .kind = C_GROUP, .pattern = "soak.p1", .queue = "g"},
      {.name = "group-2", .kind = C_GROUP, .pattern = "soak.p1", .queue = "g"},
      {.name = "group-3",
       .kind = C_GROUP,
       .pattern = "soak.p1",
       .queue = "g",
       .slow_us = 10},
      {.name = "drop_oldest-p1",
       .kind = C_DROP,
       .pattern = "soak.p1",
       .policy = TP_OVERFLOW_DROP_OLDEST,
       .max_msgs = 200,
       .slow_us = 200},
      {.name = "drop_newest-p2",
       .kind = C_DROP,
       .pattern = "soak.p2",
       .policy = TP_OVERFLOW_DROP_NEWEST,
       .max_msgs = 200,
       .slow_us = 200},
      {.name = "disconnect-p2",
       .kind = C_DISCONNECT,
       .pattern = "soak.p2",
       .policy = TP_OVERFLOW_DISCONNECT,
       .max_msgs = 100,
       .slow_us = 500},
  };
  enum { NCONS = sizeof cons / sizeof cons[0] };
  for (int i = 0; i < NCONS; i++) {
    for (int k = 0; k < NPUB; k++) {
      char t[16];
      snprintf(t, sizeof t, "soak.p%d", k);
      cons[i].topics[k] = strcmp(cons[i].pattern, "soak.>") == 0 ||
                          strcmp(cons[i].pattern, t) == 0;
    }
  }
  pthread_t cth[NCONS], pth[NPUB], churn;
  for (int i = 0; i < NCONS; i++)
    pthread_create(&cth[i], NULL, consumer_main, &cons[i]);
  /* Every subscription is live before the first PUB. */
  while (atomic_load(&g_ready) < NCONS)
    sleep_us(1000);
  publisher_t pubs[NPUB];
  memset(pubs, 0, sizeof pubs);
  for (int k = 0; k < NPUB; k++) {
    pubs[k].id = k;
    pthread_create(&pth[k], NULL, publisher_main, &pubs[k]);
  }
  pthread_create(&churn, NULL, churn_main, NULL);

  long rss_max = 0;
  for (int s = 0; s < seconds; s++) {
    sleep(1);
    long rss = tt_proc_rss_kb(pid);
    if (rss > rss_max)
      rss_max = rss;
    if (s % 30 == 29)
      printf("soak: %ds, ternd RSS %ld KiB (max %ld), churn cycles %llu\n",
             s + 1, rss, rss_max, (unsigned long long)atomic_load(&g_churn));
    fflush(stdout);
  }
  atomic_store(&g_phase, 1);
  int ok = 1;
  for (int k = 0; k < NPUB; k++) {
    pthread_join(pth[k], NULL);
    g_sent[k] = pubs[k].sent;
    if (!pubs[k].ok) {
      printf("FAIL publisher %d: no final PONG\n", k);
      ok = 0;
    }
  }
  pthread_join(churn, NULL);
  atomic_store(&g_phase, 2);
  while (atomic_load(&g_drained) < NCONS)
    sleep_us(1000);
  /* End markers, one per topic: seq == sent, so g_sent counts them too. */
  tp_buf_t out;
  tp_buf_init(&out);
  tt_wire_encode_connect(&out, true);
  uint8_t marker[16] = {0};
  for (int k = 0; k < NPUB; k++) {
    char t[16];
    snprintf(t, sizeof t, "soak.p%d", k);
    tt_put_seq(marker, g_sent[k]);
    tt_wire_encode_pub(&out, t, marker, sizeof marker, 0);
  }
  tt_wire_encode_ping(&out);
  tt_wire_t ctl;
  if (open_conn(&ctl, 0, &out) != 0 ||
      tt_wire_wait_pong(&ctl, IO_MS, NULL) != 1)
    ok = 0;
  atomic_store(&g_markers, 1);
  for (int i = 0; i < NCONS; i++)
    pthread_join(cth[i], NULL);
  tt_wire_free(&ctl);
  tp_buf_free(&out);

  printf("soak: %d s; sent p0 %u, p1 %u, p2 %u; churn cycles %llu; ternd "
         "RSS max %ld KiB (limit %ld KiB), VmHWM %ld KiB\n",
         seconds, g_sent[0], g_sent[1], g_sent[2],
         (unsigned long long)atomic_load(&g_churn), rss_max, limit_kb,
         tt_proc_hwm_kb(pid));
  uint64_t group = 0;
  for (int i = 0; i < NCONS; i++) {
    consumer_t *c = &cons[i];
    uint64_t got = 0, want = 0;
    for (int k = 0; k < NPUB; k++) {
      got += c->got[k];
      want += c->topics[k] ? g_sent[k] : 0;
    }
    const char *verdict = "ok";
    if (c->failure[0] != '\0') {
      verdict = c->failure;
    } else if (c->kind == C_BLOCK && got != want) {
      verdict = "block subscription missed messages";
    } else if (c->kind == C_DROP && got + c->dropped != want + 1) {
      verdict = "received + dropped != sent";
    }
    if (c->kind == C_GROUP)
      group += got;
    if (strcmp(verdict, "ok") != 0)
      ok = 0;
    printf("  %-16s received %10llu dropped %9llu sent %10llu "
           "disconnects %llu: %s\n",
           c->name, (unsigned long long)got, (unsigned long long)c->dropped,
           (unsigned long long)want, (unsigned long long)c->disconnects,
           verdict);
  }
  printf("  %-16s received %10llu sent %10u: %s\n", "queue group",
         (unsigned long long)group, g_sent[1],
         group == g_sent[1] ? "ok" : "each message not exactly once");
  if (group != g_sent[1])
    ok = 0;
  if (rss_max > limit_kb) {
    printf("FAIL ternd RSS %ld KiB over the limit\n", rss_max);
    ok = 0;
  }
  printf("soak: %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
