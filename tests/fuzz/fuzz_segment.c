/*
 * Fuzz target: the stream store's segment reader (broker/store/format.h),
 * what recovery runs over every segment file at open.
 *
 * Input: a segment file's bytes (header, then records). The header is
 * decoded (any result), and the bytes after it (or all of them when there
 * is no valid header) are scanned. Properties, whatever the bytes:
 *   - the scan ends inside the input, at the end of the last record it
 *     reported; records and damaged spans come in file order, never
 *     overlap, and leave no byte unaccounted before the end;
 *   - every record reported decodes again at its offset, its parts lie
 *     inside it, messages' sequences strictly increase from the one given;
 *   - re-encoding a record from its fields gives the same bytes;
 *   - scanning only the bytes up to the end gives the same records and
 *     the same end (a torn tail never changes what precedes it).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static _Noreturn void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fuzz property failed: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

typedef struct seen {
  const uint8_t *p;
  size_t n;
  size_t at; /* everything before is accounted for */
  uint64_t last_seq;
  size_t records;
  uint8_t *scratch;
} seen_t;

static int on_record(void *ctx, const fmt_rec_t *r, size_t off) {
  seen_t *s = ctx;
  if (off != s->at)
    fail("record at %zu, expected at %zu", off, s->at);
  if (off + r->len > s->n || r->len < FMT_REC_HDR)
    fail("record [%zu, +%u) outside %zu bytes", off, r->len, s->n);
  fmt_rec_t again;
  if (fmt_rec_decode(s->p + off, s->n - off, &again) != 0 ||
      again.len != r->len || again.seq != r->seq)
    fail("record at %zu does not decode again", off);
  if (r->topic < s->p + off || r->data + r->data_len > s->p + off + r->len)
    fail("record at %zu: parts outside it", off);
  if (r->kind == FMT_MSG) {
    if (r->seq <= s->last_seq)
      fail("sequence %llu after %llu", (unsigned long long)r->seq,
           (unsigned long long)s->last_seq);
    s->last_seq = r->seq;
  }
  fmt_rec_encode(s->scratch, r->kind, r->seq, r->time_ns, r->topic,
                 r->topic_len, r->msgid, r->msgid_len, r->data, r->data_len);
  if (memcmp(s->scratch, s->p + off, r->len) != 0)
    fail("record at %zu does not re-encode to its bytes", off);
  s->at = off + r->len;
  s->records++;
  return 0;
}

static void on_corrupt(void *ctx, size_t off, size_t len) {
  seen_t *s = ctx;
  if (off != s->at || len == 0 || off + len > s->n)
    fail("damaged span [%zu, +%zu) (accounted up to %zu)", off, len, s->at);
  s->at = off + len;
}

static size_t scan(const uint8_t *p, size_t n, uint64_t first, seen_t *s,
                   uint8_t *scratch) {
  *s = (seen_t){.p = p, .n = n, .last_seq = first, .scratch = scratch};
  fmt_scan_ops_t ops = {on_record, on_corrupt};
  uint64_t last = first;
  size_t end = fmt_scan(p, n, &last, &ops, s);
  if (end > n)
    fail("end %zu past %zu bytes", end, n);
  if (end != s->at && !(end == 0 && s->records == 0))
    fail("end %zu, last record ends at %zu", end, s->at);
  if (last != s->last_seq)
    fail("last sequence differs");
  return end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t first = 0;
  int h = fmt_seg_header_decode(data, size, &first);
  const uint8_t *body = data;
  size_t n = size;
  if (h == 0) {
    body += FMT_SEG_HDR;
    n -= FMT_SEG_HDR;
    first -= 1;
  } else {
    first = 0;
  }
  uint8_t *scratch = malloc(n ? n : 1);
  seen_t a, b;
  size_t end = scan(body, n, first, &a, scratch);
  size_t end2 = scan(body, end, first, &b, scratch);
  if (end2 != end || b.records != a.records)
    fail("the bytes up to the end scan differently: %zu/%zu records, "
         "end %zu/%zu",
         b.records, a.records, end2, end);
  free(scratch);
  return 0;
}
