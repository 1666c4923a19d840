/*
 * Writes the seed corpus of the three fuzz targets:
 *
 *   gen_corpus OUTDIR   ->  OUTDIR/{fuzz_reader,fuzz_decode,fuzz_topic}/NAME
 *
 * Valid frames of all 13 types (with and without options) come from the
 * library's own encoder, so the seeds follow the protocol as implemented;
 * the hostile inputs are written out byte by byte, because no encoder would
 * produce them. The committed tests/fuzz/corpus is this program's output.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tern_proto/buf.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"

static const char *outdir;
static int failed;

static void make_dir(const char *path) {
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "gen_corpus: mkdir %s: %s\n", path, strerror(errno));
    exit(1);
  }
}

static void write_file(const char *target, const char *name, const uint8_t *a,
                       size_t an, const uint8_t *b, size_t bn) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
  FILE *fp = fopen(path, "wb");
  if (fp == NULL || fwrite(a, 1, an, fp) != an ||
      (bn > 0 && fwrite(b, 1, bn, fp) != bn) || fclose(fp) != 0) {
    fprintf(stderr, "gen_corpus: writing %s failed\n", path);
    failed = 1;
  }
}

static tp_str_t str(const char *s) {
  tp_str_t r = {s, (uint32_t)strlen(s)};
  return r;
}

static tp_bytes_t bytes(const void *p, size_t n) {
  tp_bytes_t b = {(const uint8_t *)p, (uint32_t)n};
  return b;
}

/* Every valid frame is also appended here: one multi-frame stream seed. */
static tp_buf_t stream;
static unsigned nframes;

/*
 * One valid frame: the body seeds fuzz_decode; prefix + body, behind a
 * reader header that varies with the frame, seeds fuzz_reader.
 */
static void emit(const char *name, const tp_frame_t *f) {
  tp_buf_t b;
  tp_buf_init(&b);
  int rc = tp_frame_encode(&b, f);
  if (rc != 0) {
    fprintf(stderr, "gen_corpus: encoding %s: %s\n", name, tp_strerror(rc));
    failed = 1;
    return;
  }
  write_file("fuzz_decode", name, b.data + TP_LEN_PREFIX, b.len - TP_LEN_PREFIX,
             NULL, 0);
  /* Alternate the API (bit 0) and walk through chunk ceilings and caps. */
  uint8_t hdr[3] = {(uint8_t)(nframes * 0x13u), 0, (uint8_t)(nframes + 1)};
  write_file("fuzz_reader", name, hdr, sizeof(hdr), b.data, b.len);
  if (tp_buf_append(&stream, b.data, b.len) != 0)
    failed = 1;
  nframes++;
  tp_buf_free(&b);
}

static void valid_frames(void) {
  tp_frame_t f;
  static const uint8_t payload[300] = {1, 2, 3, 0xC1, 0xFF};

  tp_frame_init(&f, TP_HELLO);
  f.u.hello.server = str("ternd/0.1.0");
  f.u.hello.server_id = str("n1");
  f.u.hello.auth_required = true;
  f.u.hello.heartbeat_ms = 30000;
  emit("hello", &f);

  tp_frame_init(&f, TP_CONNECT);
  emit("connect_min", &f);
  f.u.connect.name = str("app");
  f.u.connect.user = str("u");
  f.u.connect.pass = str("p\xC3\xA9");
  f.u.connect.token = str("");
  f.u.connect.echo = false;
  f.u.connect.verbose = true;
  emit("connect_all", &f);

  tp_frame_init(&f, TP_PUB);
  f.u.pub.topic = str("a.b");
  f.u.pub.payload = bytes("hi", 2);
  emit("pub", &f);
  f.u.pub.payload = bytes(NULL, 0);
  emit("pub_empty", &f);
  /* A repeated key: headers are multi-valued and kept in order. */
  tp_buf_t hb;
  tp_headers_t headers = {NULL, 0, 0};
  tp_buf_init(&hb);
  tp_str_t keys[2] = {str("k"), str("k")};
  tp_str_t vals[2] = {str("v"), str("\xE2\x82\xAC")};
  if (tp_headers_build(&hb, keys, vals, 2, &headers) != 0)
    failed = 1;
  f.u.pub.headers = headers;
  f.u.pub.topic = str("orders.eu.\xC3\xA9t\xC3\xA9");
  f.u.pub.payload = bytes(payload, sizeof(payload));
  f.u.pub.reply = str("_INBOX.1");
  f.u.pub.has_ack = true;
  f.u.pub.ack = 0;
  f.u.pub.retain = true;
  f.u.pub.ttl_ms = 60000;
  emit("pub_opts", &f);

  tp_frame_init(&f, TP_SUB);
  f.u.sub.sid = 1;
  f.u.sub.pattern = str("a.*");
  emit("sub", &f);
  f.u.sub.sid = 70000;
  f.u.sub.pattern = str("$SYS.>");
  f.u.sub.queue = str("q");
  f.u.sub.max_msgs = 100;
  f.u.sub.max_bytes = 1u << 20;
  for (int o = TP_OVERFLOW_BLOCK; o <= TP_OVERFLOW_DISCONNECT; o++) {
    char name[32];
    f.u.sub.overflow = o;
    snprintf(name, sizeof(name), "sub_%s", tp_overflow_name(o));
    emit(name, &f);
  }

  tp_frame_init(&f, TP_UNSUB);
  f.u.unsub.sid = 1;
  emit("unsub", &f);
  f.u.unsub.has_max = true;
  f.u.unsub.max_msgs = 10;
  emit("unsub_max", &f);

  tp_frame_init(&f, TP_MSG);
  f.u.msg.sid = 1;
  f.u.msg.topic = str("a.b");
  f.u.msg.payload = bytes("hi", 2);
  emit("msg", &f);
  f.u.msg.sid = UINT64_MAX;
  f.u.msg.reply = str("r");
  f.u.msg.headers = headers;
  f.u.msg.retained = true;
  emit("msg_opts", &f);
  tp_buf_free(&hb);

  static const struct {
    int type;
    const char *name;
  } bare[] = {{TP_PING, "ping"}, {TP_PONG, "pong"}, {TP_OK, "ok"}};
  for (size_t i = 0; i < 3; i++) {
    tp_frame_init(&f, bare[i].type);
    emit(bare[i].name, &f);
  }

  tp_frame_init(&f, TP_ERR);
  f.u.err.code = TP_WIRE_INVALID_TOPIC;
  f.u.err.message = str("invalid topic");
  emit("err", &f);

  tp_frame_init(&f, TP_PUBACK);
  f.u.puback.ack_id = 7;
  f.u.puback.receivers = 2;
  emit("puback", &f);

  tp_frame_init(&f, TP_DROPPED);
  f.u.dropped.sid = 1;
  f.u.dropped.count = 300;
  emit("dropped", &f);

  tp_frame_init(&f, TP_GOAWAY);
  f.u.goaway.reason = str("shutdown");
  emit("goaway", &f);
}

/* Bodies no encoder writes: each must be refused (or, last, accepted). */
static const struct {
  const char *name;
  const char *hex;
} hostile[] = {
    /* An array32 claiming ~2.47e9 elements in 7 bytes: msgpack-c would
     * reserve ~59 GB for it before reading one element. */
    {"array32_huge", "dd938585858585"},
    {"map32_huge", "92 03 df ffffffff"},
    {"str32_huge", "93 03 db ffffffff 00"},
    {"bin32_huge", "93 03 a161 c6 ffffffff"},
    {"ext32_huge", "92 03 c9 ffffffff 01"},
    {"array16_short", "dc 0010 07"},
    {"nest33", "91919191919191919191919191919191919191919191919191919191919191"
               "919107"},
    {"byte_c1", "92 07 c1"},
    {"trailing_byte", "91 07 c0"},
    {"truncated", "93 03 a3 61 2e"},
    {"empty_array", "90"},
    {"not_array", "07"},
    {"type_zero", "91 00"},
    {"type_99", "91 63"},
    {"type_negative", "91 ff"},
    {"type_float", "91 cb 4000000000000000"},
    {"pub_str_payload", "93 03 a3 612e62 a2 6869"},
    {"pub_bad_utf8", "93 03 a2 c0af c4 00"},
    {"pub_surrogate", "93 03 a3 eda080 c4 00"},
    {"pub_missing_payload", "92 03 a3 612e62"},
    {"pub_dup_key", "94 03 a1 61 c4 00 82 a6 72657461696e c3 a6 726574616"
                    "96e c2"},
    {"pub_headers_not_str", "94 03 a1 61 c4 00 81 a7 68656164657273 81 01 02"},
    {"sub_bad_overflow", "94 04 01 a1 61 81 a8 6f766572666c6f77 a3 666f6f"},
    {"sub_negative_sid", "93 04 ff a1 61"},
    {"connect_nil_proto", "92 02 81 a5 70726f746f c0"},
    {"err_code_too_big", "93 0a cf 0000000100000000 a0"},
    /* Accepted: nil options, unknown keys and a trailing unknown element. */
    {"pub_nil_unknown", "95 03 a1 61 c4 00 82 a5 7265706c79 c0 a3 78797a 01 "
                        "d4 01 02"},
};

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
  size_t n = 0;
  for (const char *p = hex; *p != '\0';) {
    unsigned v;
    if (*p == ' ') {
      p++;
      continue;
    }
    if (n == cap || sscanf(p, "%2x", &v) != 1) {
      fprintf(stderr, "gen_corpus: bad hex near \"%s\"\n", p);
      exit(1);
    }
    out[n++] = (uint8_t)v;
    p += 2;
  }
  return n;
}

static void hostile_inputs(void) {
  uint8_t body[128];
  for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
    size_t n = unhex(hostile[i].hex, body, sizeof(body));
    uint8_t pre[3 + TP_LEN_PREFIX] = {
        (uint8_t)(i * 0x25u), 0, (uint8_t)i, 0, 0, 0, (uint8_t)n};
    write_file("fuzz_decode", hostile[i].name, body, n, NULL, 0);
    write_file("fuzz_reader", hostile[i].name, pre, sizeof(pre), body, n);
  }
  /* Length prefixes: above a 64 KiB max_frame, zero, and just at it. */
  static const uint8_t too_big[] = {1, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF};
  static const uint8_t zero[] = {1, 0, 0, 0, 0, 0, 0, 0x91, 0x07};
  static const uint8_t at_max[] = {1, 0, 0, 0, 1, 0, 0};
  write_file("fuzz_reader", "prefix_too_big", too_big, sizeof(too_big), NULL,
             0);
  write_file("fuzz_reader", "prefix_zero", zero, sizeof(zero), NULL, 0);
  write_file("fuzz_reader", "prefix_at_max", at_max, sizeof(at_max), NULL, 0);
}

static void streams(void) {
  /* Byte at a time (feed), then big chunks through space/commit. */
  static const uint8_t by_byte[3] = {0x00, 0x12, 0x34};
  static const uint8_t chunky[3] = {0x7F, 0x56, 0x78};
  write_file("fuzz_reader", "stream_by_byte", by_byte, 3, stream.data,
             stream.len);
  write_file("fuzz_reader", "stream_chunky", chunky, 3, stream.data,
             stream.len);
  /* A whole stream that ends half-way through a frame. */
  write_file("fuzz_reader", "stream_cut", chunky, 3, stream.data,
             stream.len - 3);
}

/* byte 0 picks max_len (0 = default); pattern 0xFF topic. */
static void topics(void) {
  static const struct {
    const char *name;
    uint8_t max;
    const char *pattern, *topic;
  } t[] = {
      {"star", 0, "a.*", "a.b"},
      {"gt", 0, "a.>", "a.b.c"},
      {"gt_root", 0, ">", "x"},
      {"sys_gt", 0, ">", "$SYS.x"},
      {"sys_explicit", 0, "$SYS.>", "$SYS.conn.1"},
      {"sys_inner", 0, "a.*", "a.$b"},
      {"gt_not_last", 0, "a.>.b", "a.x.b"},
      {"partial_wild", 0, "a*.b", "a*.b"},
      {"empty_token", 0, "a..b", "a..b"},
      {"trailing_dot", 0, "a.", ".a"},
      {"space", 0, "a b", "a\tb"},
      {"del", 0, "a\x7F", "a\x7F"},
      {"utf8", 0, "caf\xC3\xA9.*", "caf\xC3\xA9.cr\xC3\xA8me"},
      {"nbsp", 0,
       "a\xC2\xA0"
       "b",
       "a\xC2\xA0"
       "b"},
      {"overlong", 0, "\xC0\xAE", "\xE0\x80\xAE"},
      {"surrogate", 0, "\xED\xA0\x80", "\xF4\x90\x80\x80"},
      {"limit_small", 1, "a.b.c", "a.b.c.d"},
      {"many_tokens", 255, "*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.>",
       "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t"},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    uint8_t buf[256];
    size_t pn = strlen(t[i].pattern), tn = strlen(t[i].topic);
    buf[0] = t[i].max;
    memcpy(buf + 1, t[i].pattern, pn);
    buf[1 + pn] = 0xFF;
    memcpy(buf + 2 + pn, t[i].topic, tn);
    write_file("fuzz_topic", t[i].name, buf, 2 + pn + tn, NULL, 0);
  }
  /* One topic of exactly the default 1024 bytes, and one byte over. */
  uint8_t big[1 + 1025];
  big[0] = 0;
  for (size_t i = 0; i < 1025; i++)
    big[1 + i] = i % 2 ? '.' : 'x';
  big[1024] = 'y';
  write_file("fuzz_topic", "len_1024", big, 1 + 1024, NULL, 0);
  write_file("fuzz_topic", "len_1025", big, 1 + 1025, NULL, 0);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: gen_corpus OUTDIR\n");
    return 2;
  }
  outdir = argv[1];
  char path[512];
  make_dir(outdir);
  static const char *const targets[] = {"fuzz_reader", "fuzz_decode",
                                        "fuzz_topic"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(path, sizeof(path), "%s/%s", outdir, targets[i]);
    make_dir(path);
  }
  tp_buf_init(&stream);
  valid_frames();
  hostile_inputs();
  streams();
  topics();
  tp_buf_free(&stream);
  if (nframes < 13)
    failed = 1;
  fprintf(stderr, "gen_corpus: %u valid frames%s\n", nframes,
          failed ? ", FAILED" : "");
  return failed;
}
