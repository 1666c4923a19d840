/*
 * Queue group acceptance tests in raw frames (PROTOCOL.md "Delivery"):
 * members sharing a queue name across connections get each message exactly
 * once between them, balanced; plain subscriptions still get everything.
 */
#include <criterion/criterion.h>

#include <poll.h>
#include <string.h>

#include "broker_proc.h"
#include "raw_client.h"

TT_BROKER_FIXTURE_DEFAULT(plain)

TestSuite(queue_groups, .init = plain_init, .fini = plain_fini, .timeout = 60);

#define MAX_MEMBERS 8
#define MAX_SEQ 1024

/* What each member received: counts and which sequence numbers. */
typedef struct tally {
  int count[MAX_MEMBERS];
  int owner[MAX_SEQ]; /* member index + 1 that got seq, 0 = nobody */
  int total;
} tally_t;

static uint32_t seq_of(const tp_frame_t *f) {
  cr_assert_eq(f->u.msg.payload.len, 4u);
  const uint8_t *b = f->u.msg.payload.ptr;
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         b[3];
}

/* Publishes n messages with 4-byte big-endian sequence payloads. */
static void publish_seq(tt_raw_t *p, const char *topic, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    uint8_t seq[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8),
                      (uint8_t)i};
    tp_frame_t f;
    tp_frame_init(&f, TP_PUB);
    f.u.pub.topic = tt_str(topic);
    f.u.pub.payload.ptr = seq;
    f.u.pub.payload.len = 4;
    tt_raw_queue(p, &f);
  }
  tt_raw_flush(p);
}

/*
 * Reads MSGs from all members until want messages arrived between them,
 * recording who got which. A duplicate fails at once; a shortfall fails
 * at the deadline. Heartbeat PINGs are not expected with the defaults.
 */
static void collect(tt_raw_t *m, int n, int want, tally_t *t) {
  memset(t, 0, sizeof *t);
  int64_t deadline = tt_now_ms() + TT_RECV_MS;
  while (t->total < want) {
    for (int i = 0; i < n; i++) {
      tp_frame_t f;
      int r;
      while ((r = tt_raw_recv(&m[i], &f, 0)) == 1) {
        cr_assert_eq(f.type, TP_MSG, "member %d got %s", i,
                     tp_frame_type_name(f.type));
        uint32_t seq = seq_of(&f);
        cr_assert_lt(seq, (uint32_t)MAX_SEQ);
        cr_assert_eq(t->owner[seq], 0, "message %u went to members %d and %d",
                     seq, t->owner[seq] - 1, i);
        t->owner[seq] = i + 1;
        t->count[i]++;
        t->total++;
      }
      cr_assert_neq(r, -1, "member %d closed", i);
    }
    if (t->total >= want)
      break;
    struct pollfd pf[MAX_MEMBERS];
    for (int i = 0; i < n; i++)
      pf[i] = (struct pollfd){.fd = m[i].fd, .events = POLLIN};
    int64_t left = deadline - tt_now_ms();
    cr_assert_gt(left, 0, "only %d of %d messages reached the group", t->total,
                 want);
    poll(pf, (nfds_t)n, (int)left);
  }
}

/* Every member answers a barrier with nothing pending before it. */
static void all_quiet(tt_raw_t *m, int n) {
  for (int i = 0; i < n; i++)
    tt_raw_barrier_strict(&m[i]);
}

Test(queue_groups, balanced_exactly_once) {
  enum { MEMBERS = 3, TOTAL = 300 };
  tt_raw_t m[MEMBERS], plainsub, p;
  for (int i = 0; i < MEMBERS; i++) {
    tt_raw_open(&m[i], tt_g_broker.port, true, true, false);
    tt_raw_sub(&m[i], 1, "work.x", "workers");
    tt_raw_barrier(&m[i]);
  }
  tt_raw_open(&plainsub, tt_g_broker.port, true, true, false);
  tt_raw_sub(&plainsub, 9, "work.*", NULL);
  tt_raw_barrier(&plainsub);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);

  publish_seq(&p, "work.x", TOTAL);
  tally_t t;
  collect(m, MEMBERS, TOTAL, &t);
  for (int i = 0; i < MEMBERS; i++)
    cr_assert_eq(t.count[i], TOTAL / MEMBERS, "member %d got %d of %d", i,
                 t.count[i], TOTAL);
  /* The plain subscription sees all of them, in order. */
  for (uint32_t i = 0; i < TOTAL; i++) {
    tp_frame_t f;
    tt_raw_expect(&plainsub, &f, TP_MSG, TT_RECV_MS);
    cr_assert_eq(f.u.msg.sid, 9u);
    cr_assert_eq(seq_of(&f), i);
  }
  all_quiet(m, MEMBERS);
  tt_raw_barrier_strict(&plainsub);
  for (int i = 0; i < MEMBERS; i++)
    tt_raw_close(&m[i]);
  tt_raw_close(&plainsub);
  tt_raw_close(&p);
}

Test(queue_groups, two_groups_each_get_every_message) {
  enum { TOTAL = 200 };
  tt_raw_t g1[2], g2[2], p;
  for (int i = 0; i < 2; i++) {
    tt_raw_open(&g1[i], tt_g_broker.port, true, true, false);
    tt_raw_open(&g2[i], tt_g_broker.port, true, true, false);
    /* A group spans patterns too: only the queue name joins members. */
    tt_raw_sub(&g1[i], 1, i == 0 ? "jobs.a" : "jobs.*", "alpha");
    tt_raw_sub(&g2[i], 1, "jobs.>", "beta");
    tt_raw_barrier(&g1[i]);
    tt_raw_barrier(&g2[i]);
  }
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  publish_seq(&p, "jobs.a", TOTAL);
  tally_t t1, t2;
  collect(g1, 2, TOTAL, &t1);
  collect(g2, 2, TOTAL, &t2);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(t1.count[i], TOTAL / 2, "alpha member %d got %d", i,
                 t1.count[i]);
    cr_assert_eq(t2.count[i], TOTAL / 2, "beta member %d got %d", i,
                 t2.count[i]);
  }
  all_quiet(g1, 2);
  all_quiet(g2, 2);
  for (int i = 0; i < 2; i++) {
    tt_raw_close(&g1[i]);
    tt_raw_close(&g2[i]);
  }
  tt_raw_close(&p);
}

Test(queue_groups, unsubscribed_member_gets_nothing) {
  enum { TOTAL = 100 };
  tt_raw_t m[2], p;
  for (int i = 0; i < 2; i++) {
    tt_raw_open(&m[i], tt_g_broker.port, true, true, false);
    tt_raw_sub(&m[i], 4, "leave.t", "crew");
    tt_raw_barrier(&m[i]);
  }
  tt_raw_unsub(&m[1], 4, 0);
  tt_raw_barrier(&m[1]);
  tt_raw_open(&p, tt_g_broker.port, true, true, false);
  publish_seq(&p, "leave.t", TOTAL);
  tally_t t;
  collect(m, 1, TOTAL, &t);
  cr_assert_eq(t.count[0], TOTAL);
  tt_raw_barrier_strict(&m[1]);
  tt_raw_barrier_strict(&m[0]);
  tt_raw_close(&m[0]);
  tt_raw_close(&m[1]);
  tt_raw_close(&p);
}
