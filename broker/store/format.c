#include "store/format.h"

#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static inline void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t get16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t get32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}
static inline uint64_t get64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

uint32_t fmt_checksum(const uint8_t *p, size_t n) {
  return (uint32_t)XXH3_64bits(p, n);
}

/* Record layout (FMT_REC_HDR = 28 bytes, then the variable parts):
 *   0 u32 checksum of bytes [4, len)
 *   4 u32 len
 *   8 u64 seq
 *  16 i64 time_ns
 *  24 u16 topic_len
 *  26 u8  msgid_len
 *  27 u8  kind
 *  28 topic, msgid, payload */
void fmt_rec_encode(uint8_t *dst, unsigned kind, uint64_t seq, int64_t time_ns,
                    const void *topic, size_t topic_len, const void *msgid,
                    size_t msgid_len, const void *data, size_t len) {
  size_t total = fmt_rec_size(topic_len, msgid_len, len);
  put32(dst + 4, (uint32_t)total);
  put64(dst + 8, seq);
  put64(dst + 16, (uint64_t)time_ns);
  put16(dst + 24, (uint16_t)topic_len);
  dst[26] = (uint8_t)msgid_len;
  dst[27] = (uint8_t)kind;
  uint8_t *q = dst + FMT_REC_HDR;
  if (topic_len)
    memcpy(q, topic, topic_len);
  q += topic_len;
  if (msgid_len)
    memcpy(q, msgid, msgid_len);
  q += msgid_len;
  if (len)
    memcpy(q, data, len);
  put32(dst, fmt_checksum(dst + 4, total - 4));
}

/* The header's own checks, before any checksum is computed. */
static int rec_plausible(const uint8_t *p, size_t n, fmt_rec_t *r) {
  if (n < FMT_REC_HDR)
    return n >= 8 && (get32(p + 4) < FMT_REC_HDR || get32(p + 4) > FMT_REC_MAX)
               ? FMT_BAD
               : FMT_SHORT;
  r->len = get32(p + 4);
  r->seq = get64(p + 8);
  r->time_ns = (int64_t)get64(p + 16);
  r->topic_len = get16(p + 24);
  r->msgid_len = p[26];
  r->kind = p[27];
  if (r->len < FMT_REC_HDR || r->len > FMT_REC_MAX)
    return FMT_BAD;
  size_t var = (size_t)r->topic_len + r->msgid_len;
  if (FMT_REC_HDR + var > r->len)
    return FMT_BAD;
  switch (r->kind) {
  case FMT_MSG:
    if (r->topic_len == 0 || r->seq == 0)
      return FMT_BAD;
    break;
  case FMT_DELETE:
  case FMT_PURGE:
    if (r->len != FMT_REC_HDR || r->seq == 0)
      return FMT_BAD;
    break;
  default:
    return FMT_BAD;
  }
  if (r->len > n)
    return FMT_SHORT;
  return 0;
}

int fmt_rec_decode(const uint8_t *p, size_t n, fmt_rec_t *out) {
  int rc = rec_plausible(p, n, out);
  if (rc != 0)
    return rc;
  if (get32(p) != fmt_checksum(p + 4, out->len - 4))
    return FMT_BAD;
  out->topic = p + FMT_REC_HDR;
  out->msgid = out->topic + out->topic_len;
  out->data = out->msgid + out->msgid_len;
  out->data_len = out->len - FMT_REC_HDR - out->topic_len - out->msgid_len;
  return 0;
}

/* Segment header (FMT_SEG_HDR = 32 bytes):
 *   0 magic "TERNSEG\0"
 *   8 u32 version
 *  12 u32 header size (32)
 *  16 u64 first sequence the segment was made for
 *  24 u32 creation time, seconds since the epoch (informative)
 *  28 u32 checksum of bytes [0, 28) */
void fmt_seg_header_encode(uint8_t *dst, uint64_t first_seq, int64_t time_ns) {
  memcpy(dst, FMT_SEG_MAGIC, 8);
  put32(dst + 8, FMT_VERSION);
  put32(dst + 12, FMT_SEG_HDR);
  put64(dst + 16, first_seq);
  put32(dst + 24, (uint32_t)(time_ns / 1000000000));
  put32(dst + 28, fmt_checksum(dst, 28));
}

int fmt_seg_header_decode(const uint8_t *p, size_t n, uint64_t *first_seq) {
  if (n < FMT_SEG_HDR)
    return FMT_SHORT;
  if (memcmp(p, FMT_SEG_MAGIC, 8) != 0)
    return FMT_BAD;
  if (get32(p + 28) != fmt_checksum(p, 28))
    return FMT_BAD;
  if (get32(p + 8) != FMT_VERSION || get32(p + 12) != FMT_SEG_HDR)
    return FMT_NEWER;
  *first_seq = get64(p + 16);
  return *first_seq ? 0 : FMT_BAD;
}

/* Does a record that counts start at p? (see fmt_scan) */
static bool counts(const uint8_t *p, size_t n, uint64_t last_seq,
                   fmt_rec_t *r) {
  if (fmt_rec_decode(p, n, r) != 0)
    return false;
  return r->kind != FMT_MSG || r->seq > last_seq;
}

size_t fmt_scan(const uint8_t *p, size_t n, uint64_t *last_seq,
                const fmt_scan_ops_t *ops, void *ctx) {
  size_t off = 0, end = 0;
  fmt_rec_t r;
  while (off < n) {
    if (!counts(p + off, n - off, *last_seq, &r)) {
      /* Look for the next record that counts. */
      size_t q = off + 1;
      while (q + FMT_REC_HDR <= n && !counts(p + q, n - q, *last_seq, &r))
        q++;
      if (q + FMT_REC_HDR > n)
        return end; /* nothing after: the tail */
      if (ops && ops->corrupt)
        ops->corrupt(ctx, off, q - off);
      off = q;
    }
    if (r.kind == FMT_MSG)
      *last_seq = r.seq;
    off += r.len;
    end = off;
    if (ops && ops->record && ops->record(ctx, &r, off - r.len) != 0)
      return end;
  }
  return end;
}
