/*
 * The stream store's on-disk format, version 1 (broker/store/README.md
 * draws it): a segment file's header, and its records, each with a
 * checksum. Encoding, checking, and the scan that reads a segment back and
 * tells complete records from damaged spans and a torn tail. No file I/O:
 * the scan works on bytes in memory (an mmap'ed segment at open, the
 * fuzzer's input).
 *
 * Every integer is little-endian. The checksum is the low 32 bits of XXH3
 * (64-bit, seed 0) over the record from its length field to its end.
 */
#ifndef TERND_STORE_FORMAT_H
#define TERND_STORE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FMT_VERSION 1u
#define FMT_SEG_MAGIC "TERNSEG\0"
#define FMT_SEG_HDR 32u /* segment header bytes */
#define FMT_REC_HDR 28u /* record header bytes */
/* Largest payload any record may hold, whatever a log's max_msg_size. */
#define FMT_PAYLOAD_MAX (256u << 20)
#define FMT_REC_MAX (FMT_REC_HDR + 65535u + 255u + FMT_PAYLOAD_MAX)

enum fmt_kind {
  FMT_MSG = 1,    /* a message: seq is its sequence */
  FMT_DELETE = 2, /* a tombstone: seq is the deleted message's sequence */
  FMT_PURGE = 3,  /* every message below seq is removed */
};

typedef struct fmt_rec {
  uint32_t len; /* whole record, header included */
  uint64_t seq;
  int64_t time_ns;
  uint16_t topic_len;
  uint8_t msgid_len;
  uint8_t kind;
  const uint8_t *topic; /* into the record */
  const uint8_t *msgid;
  const uint8_t *data;
  uint32_t data_len;
} fmt_rec_t;

uint32_t fmt_checksum(const uint8_t *p, size_t n);

static inline size_t fmt_rec_size(size_t topic_len, size_t msgid_len,
                                  size_t len) {
  return FMT_REC_HDR + topic_len + msgid_len + len;
}

/* Writes a record of fmt_rec_size(...) bytes at dst. */
void fmt_rec_encode(uint8_t *dst, unsigned kind, uint64_t seq, int64_t time_ns,
                    const void *topic, size_t topic_len, const void *msgid,
                    size_t msgid_len, const void *data, size_t len);

/* Reads the record at p (n bytes available). 0 and *out filled when a
 * whole, well-formed record with a good checksum is there; FMT_SHORT when
 * its header is plausible but runs past n; FMT_BAD otherwise. */
#define FMT_SHORT 1
#define FMT_BAD (-1)
int fmt_rec_decode(const uint8_t *p, size_t n, fmt_rec_t *out);

void fmt_seg_header_encode(uint8_t *dst, uint64_t first_seq, int64_t time_ns);
/* 0 and *first_seq; FMT_SHORT when n < FMT_SEG_HDR; FMT_BAD for a wrong
 * magic or checksum; FMT_NEWER for a version this build does not read. */
#define FMT_NEWER (-2)
int fmt_seg_header_decode(const uint8_t *p, size_t n, uint64_t *first_seq);

/* What a scan of one segment's records reports. */
typedef struct fmt_scan_ops {
  /* A complete record at `off`. Returns 0 to go on, non-zero to stop. */
  int (*record)(void *ctx, const fmt_rec_t *rec, size_t off);
  /* A damaged span [off, off + len) with a good record after it. */
  void (*corrupt)(void *ctx, size_t off, size_t len);
} fmt_scan_ops_t;

/*
 * Scans the records in p[0..n) (a segment's bytes after its header, or
 * any bytes). A record counts only if its checksum holds, it is
 * well-formed, and (for a message) its sequence is above the previous
 * message's (`last_seq` on entry: the one before the segment). At a bad
 * record the scan looks further for the next record that counts: found,
 * the bytes between are a corrupt span; not found, they are the tail.
 * Returns the end of the last record that counts (the torn tail, if any,
 * is [return, n)); *last_seq is the last message's sequence.
 */
size_t fmt_scan(const uint8_t *p, size_t n, uint64_t *last_seq,
                const fmt_scan_ops_t *ops, void *ctx);

#endif
