/*
 * Test harness: a flooding publisher thread (see flood.h).
 */
#include "flood.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"

/* Bytes generated per send: large enough to keep the socket busy. */
#define CHUNK_BYTES (256u * 1024u)
/* A blocked broker may hold the flood for a long time (stall timeouts,
 * slow sanitizer runs); the test's own timeout bounds it. */
#define SEND_TIMEOUT_MS (10 * 60 * 1000)

static void put_seq(uint8_t *p, uint32_t seq) {
  p[0] = (uint8_t)(seq >> 24);
  p[1] = (uint8_t)(seq >> 16);
  p[2] = (uint8_t)(seq >> 8);
  p[3] = (uint8_t)seq;
}

/*
 * Encodes one PUB, then copies it over and over with the sequence number
 * patched in: the payload is the frame's last `size` bytes.
 */
static void *flood_main(void *arg) {
  tt_flood_t *fl = arg;
  uint8_t *payload = calloc(1, fl->size);
  tp_buf_t frame, chunk;
  tp_buf_init(&frame);
  tp_buf_init(&chunk);
  tp_frame_t f;
  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic.ptr = fl->topic;
  f.u.pub.topic.len = (uint32_t)strlen(fl->topic);
  f.u.pub.payload.ptr = payload;
  f.u.pub.payload.len = (uint32_t)fl->size;
  f.u.pub.retain = fl->retain;
  if (payload == NULL || tp_frame_encode(&frame, &f) != 0) {
    fl->result = -ENOMEM;
    goto out;
  }
  /* The payload ends the frame unless an opts map follows it: its offset
   * is that of the same frame without opts (same one-byte array header). */
  size_t at = frame.len - fl->size;
  if (fl->retain) {
    tp_buf_t bare;
    tp_buf_init(&bare);
    f.u.pub.retain = false;
    if (tp_frame_encode(&bare, &f) == 0)
      at = bare.len - fl->size;
    tp_buf_free(&bare);
  }
  for (uint32_t i = 0; i < fl->count && fl->result == 0;) {
    tp_buf_reset(&chunk);
    while (i < fl->count && chunk.len < CHUNK_BYTES) {
      put_seq(frame.data + at, fl->first + i);
      if (tp_buf_append(&chunk, frame.data, frame.len) != 0) {
        fl->result = -ENOMEM;
        break;
      }
      i++;
    }
    if (fl->result == 0)
      fl->result = tt_send_try(fl->fd, chunk.data, chunk.len, SEND_TIMEOUT_MS);
  }
  if (fl->result == 0 && fl->ping_after) {
    static const uint8_t ping[] = {0, 0, 0, 2, 0x91, TP_PING};
    fl->result = tt_send_try(fl->fd, ping, sizeof ping, SEND_TIMEOUT_MS);
  }
out:
  tp_buf_free(&frame);
  tp_buf_free(&chunk);
  free(payload);
  return NULL;
}

static void start(tt_flood_t *fl, int fd, const char *topic, uint32_t first,
                  uint32_t count, size_t size, bool ping_after, bool retain) {
  memset(fl, 0, sizeof *fl);
  fl->retain = retain;
  cr_assert_geq(size, 4u);
  cr_assert_lt(strlen(topic), sizeof fl->topic);
  fl->fd = fd;
  strcpy(fl->topic, topic);
  fl->first = first;
  fl->count = count;
  fl->size = size;
  fl->ping_after = ping_after;
  int r = pthread_create(&fl->thread, NULL, flood_main, fl);
  cr_assert_eq(r, 0, "pthread_create: %s", strerror(r));
  fl->running = true;
}

void tt_flood_start(tt_flood_t *fl, int fd, const char *topic, uint32_t first,
                    uint32_t count, size_t size, bool ping_after) {
  start(fl, fd, topic, first, count, size, ping_after, false);
}

void tt_flood_start_retained(tt_flood_t *fl, int fd, const char *topic,
                             uint32_t first, uint32_t count, size_t size,
                             bool ping_after) {
  start(fl, fd, topic, first, count, size, ping_after, true);
}

int tt_flood_join(tt_flood_t *fl) {
  if (fl->running) {
    pthread_join(fl->thread, NULL);
    fl->running = false;
  }
  return fl->result;
}

uint32_t tt_flood_seq(const tp_frame_t *msg, size_t size) {
  cr_assert_eq(msg->type, TP_MSG, "expected MSG, got %s",
               tp_frame_type_name(msg->type));
  cr_assert_eq(msg->u.msg.payload.len, (uint32_t)size);
  const uint8_t *b = msg->u.msg.payload.ptr;
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         b[3];
}

void tt_flood_expect_held(tt_raw_t *p, int wait_ms) {
  tp_frame_t f;
  int r = tt_raw_recv(p, &f, wait_ms);
  cr_assert_eq(r, 0, "the publisher got %s while its subscriber slept",
               r == 1 ? tp_frame_type_name(f.type) : "a close");
}

void tt_flood_expect_done(tt_raw_t *p, tt_flood_t *fl) {
  cr_assert_eq(tt_flood_join(fl), 0, "flood send failed: %d", fl->result);
  tp_frame_t f;
  tt_raw_expect(p, &f, TP_PONG, TT_RECV_MS);
}

void tt_flood_read_in_order(tt_raw_t *s, uint64_t sid, uint32_t first,
                            uint32_t n, size_t size) {
  for (uint32_t i = first; i < first + n; i++) {
    tp_frame_t f;
    tt_raw_expect(s, &f, TP_MSG, TT_RECV_MS);
    cr_assert_eq(f.u.msg.sid, sid);
    cr_assert_eq(tt_flood_seq(&f, size), i, "expected message %u", i);
  }
}

void tt_flood_read_gaps(tt_raw_t *s, uint64_t sid, size_t size, int64_t last,
                        tt_gaps_t *g) {
  for (;;) {
    tp_frame_t f;
    int r = tt_raw_recv(s, &f, TT_RECV_MS);
    cr_assert_eq(r, 1, "sid %llu: %s before message %lld",
                 (unsigned long long)sid, r == 0 ? "timeout" : "close",
                 (long long)last);
    if (f.type == TP_PING) {
      tp_frame_t pong;
      tp_frame_init(&pong, TP_PONG);
      tt_raw_send(s, &pong);
      continue;
    }
    if (f.type == TP_PONG && last < 0)
      return;
    if (f.type == TP_DROPPED) {
      cr_assert_eq(f.u.dropped.sid, sid);
      cr_assert_gt(f.u.dropped.count, 0u, "DROPPED with count 0");
      g->announced += f.u.dropped.count;
      g->dropped += f.u.dropped.count;
      continue;
    }
    cr_assert_eq(f.type, TP_MSG, "sid %llu: got %s", (unsigned long long)sid,
                 tp_frame_type_name(f.type));
    cr_assert_eq(f.u.msg.sid, sid);
    uint32_t seq = tt_flood_seq(&f, size);
    cr_assert_geq(seq, g->expect, "sid %llu: message %u after %u",
                  (unsigned long long)sid, seq, g->expect);
    cr_assert_eq((uint64_t)(seq - g->expect), g->announced,
                 "sid %llu: %u messages missing before %u, DROPPED said %llu",
                 (unsigned long long)sid, seq - g->expect, seq,
                 (unsigned long long)g->announced);
    g->announced = 0;
    g->expect = seq + 1;
    g->received++;
    if ((int64_t)seq == last)
      return;
  }
}
