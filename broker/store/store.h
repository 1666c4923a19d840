/*
 * The stream store: one stream's messages in an append-only log of segment
 * files in a directory of its own, with its limits and its sync policy.
 *
 * A layer of its own (broker/store/, above data/ and base/, below
 * delivery/): it knows files, records and sequences, nothing of
 * connections, subscriptions or the protocol. broker/store/README.md
 * describes the on-disk format (version 1), recovery, and how the log maps
 * onto a replicated (raft) log later.
 *
 * Two objects:
 *   - store_env_t: what every log of the process shares, that is the sync
 *     thread (fdatasync of segments, writes of state files). One per
 *     process (or per test);
 *   - store_t: one stream's log, opened on a directory with a store_config_t.
 *
 * Threads. A store_t is single-threaded: every store_* call on one log (and
 * on its iterators) must come from one thread, the broker's loop that owns
 * the stream. The env's sync thread works beside it on its own: it fsyncs
 * what the owner thread wrote and then calls `on_stored` (from the sync
 * thread; see below). Two logs may be used from two different threads.
 * Nothing here calls into libuv: the broker turns `on_stored` into a
 * uv_async_send to its loop.
 *
 * Append path. store_append copies the record into the log's write buffer
 * (a memcpy: no system call, no allocation in the steady state) and
 * returns its sequence at once. The buffer goes to the file with one
 * write() per batch: in store_flush, which the owner calls once per loop
 * turn after a batch of appends (uv_check or after a read callback), and
 * by store_append itself when the buffer passes its size (256 KiB).
 * Space is reserved ahead with fallocate(FALLOC_FL_KEEP_SIZE) in chunks,
 * inside store_append, so a full disk is met there: the append returns
 * UV_ENOSPC and nothing is written (see "Disk full" below).
 *
 * Durability: "stored" is what may be acknowledged under the sync policy.
 *   - STORE_SYNC_ALWAYS: stored once fdatasync'ed. After a flush the sync
 *     thread runs one fdatasync for every record written since the last one
 *     (group commit), then publishes the new stored sequence and calls
 *     `on_stored`. Survives a crash of the process and of the machine.
 *   - STORE_SYNC_INTERVAL: stored once written to the kernel (write()
 *     returned, in store_flush); the sync thread fdatasyncs every
 *     `sync_interval_ms`. Survives a crash of the process; the machine's
 *     crash loses at most the last interval.
 *   - STORE_SYNC_NEVER: stored once written to the kernel; fdatasync only
 *     at close and segment change. Survives a crash of the process.
 * store_stored_seq() reads the stored sequence at any time (an atomic
 * load); acknowledge every publish whose sequence is <= it. With INTERVAL
 * and NEVER it advances inside store_flush, and `on_stored` is then called
 * on the owner's thread from inside store_flush; with ALWAYS it advances on
 * the sync thread. So `on_stored` must be safe from any thread and cheap:
 * uv_async_send is both. Acks never wait on the loop: the loop never
 * fsyncs.
 *
 * Write errors. A write() or an fdatasync() that fails (EIO; ENOSPC only
 * where fallocate is not supported) turns the log failed: the records not
 * yet stored are never acknowledged (store_stored_seq() stays below
 * them), every later append returns TERND_ESTORE_FAILED, `on_error` is
 * called once (on the thread that met the error), reads go on. A failed
 * fdatasync cannot be retried safely (the kernel may have dropped the
 * dirty pages), so nothing is retried: close the log and open it again,
 * and recovery keeps every complete record that reached the file. The
 * owner refuses (nacks) every publish whose sequence is above
 * store_stored_seq().
 *
 * Disk full. store_append returns UV_ENOSPC when the space for its record
 * cannot be reserved; the log is unchanged and usable, and appends
 * succeed again once space is freed. Reads, deletes and purges keep
 * working on a full disk.
 *
 * Sequences start at 1, grow by one per appended message and are never
 * reused once stored (a purge keeps the next sequence). Deleted records
 * leave gaps. 0 means "none" everywhere.
 *
 * Errors: 0 or a negative int, as everywhere in the broker: negated errno
 * (UV_E*) for system calls, TERND_ESTORE_* (base/errors.h) for the store's
 * own; ternd_strerror names both.
 */
#ifndef TERND_STORE_STORE_H
#define TERND_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store_env store_env_t;
typedef struct store store_t;
typedef struct store_iter store_iter_t;

/* Largest topic and message id a record holds. */
#define STORE_TOPIC_MAX 65535u
#define STORE_MSGID_MAX 255u
/* Default largest payload (store_limits_t.max_msg_size 0). */
#define STORE_MSG_MAX_DEFAULT (64u << 20)
/* Default segment size (store_config_t.segment_bytes 0). */
#define STORE_SEGMENT_DEFAULT (64u << 20)

typedef enum store_sync {
  STORE_SYNC_ALWAYS = 0, /* fdatasync before a record counts as stored */
  STORE_SYNC_INTERVAL,   /* stored when written; fdatasync every interval */
  STORE_SYNC_NEVER,      /* stored when written; fdatasync at close only */
} store_sync_t;

typedef enum store_discard {
  STORE_DISCARD_OLD = 0, /* a full log removes its oldest records */
  STORE_DISCARD_NEW,     /* a full log refuses the append (ESTORE_FULL) */
} store_discard_t;

/* Limits; 0 is "no limit" for each. They count live records (not deleted
 * ones) and their record bytes (as stored: header, topic, id, payload). */
typedef struct store_limits {
  uint64_t max_msgs;
  uint64_t max_bytes;
  uint64_t max_age_ms; /* records older are removed by store_expire */
  /* Live records per topic; the oldest of a topic goes first whatever
   * `discard` says (1 gives a last-value store). */
  uint64_t max_msgs_per_topic;
  uint32_t max_msg_size; /* payload bytes; 0 = STORE_MSG_MAX_DEFAULT */
  store_discard_t discard;
} store_limits_t;

/* Called when store_stored_seq() advanced (ALWAYS: on the sync thread;
 * INTERVAL, NEVER: inside store_flush on the owner's thread). Must be
 * thread-safe and must not call back into the store: uv_async_send. */
typedef void (*store_stored_cb)(void *ctx, store_t *st, uint64_t stored_seq);
/* Called once when the log turns failed (a write or an fdatasync failed),
 * on the thread that met the error. Same rules as store_stored_cb. */
typedef void (*store_error_cb)(void *ctx, store_t *st, int err);

typedef struct store_config {
  store_limits_t limits;
  store_sync_t sync;
  uint32_t sync_interval_ms; /* STORE_SYNC_INTERVAL; 0 = 1000 */
  uint64_t segment_bytes;    /* a segment is sealed past this; 0 = default */
  store_stored_cb on_stored; /* may be NULL: poll store_stored_seq */
  store_error_cb on_error;   /* may be NULL */
  void *ctx;
} store_config_t;

/* Fills `cfg` with the defaults: no limits, discard old, sync ALWAYS. */
void store_config_init(store_config_t *cfg);

/* What store_open found and did, for the log line and the tests. */
typedef struct store_recovery {
  uint64_t records;       /* complete records read */
  uint64_t torn_bytes;    /* cut from the last segment's torn tail */
  uint64_t corrupt_spans; /* damaged spans skipped in the middle */
  uint64_t corrupt_bytes; /* their bytes (copied aside to *.corrupt) */
  uint64_t lost_seqs;     /* sequences those spans held (now gaps) */
  uint64_t expired;       /* removed at open by the limits */
} store_recovery_t;

/* One record as read back. Pointers are borrowed: valid until the next
 * call on the same iterator (or the next store_get), or until the log
 * changes (append, flush, delete, purge) for store_get. */
typedef struct store_msg {
  uint64_t seq;
  int64_t time_ns; /* wall clock at append, ns since the epoch */
  const char *topic;
  uint32_t topic_len;
  const char *msgid; /* NULL when the record has none */
  uint32_t msgid_len;
  const uint8_t *data;
  uint32_t len;
} store_msg_t;

/* What store_append takes. The store copies everything before it returns. */
typedef struct store_rec {
  const char *topic; /* not NUL-terminated; 1..STORE_TOPIC_MAX bytes */
  uint32_t topic_len;
  const char *msgid; /* optional de-duplication id, 0..STORE_MSGID_MAX */
  uint32_t msgid_len;
  const void *data;
  uint32_t len;
  /* 0: now (CLOCK_REALTIME). Times never go back in a log: an earlier time
   * is stored as the last record's time. */
  int64_t time_ns;
} store_rec_t;

/* The log's figures (store_info). */
typedef struct store_info {
  uint64_t first_seq; /* oldest live record; last_seq + 1 when empty */
  uint64_t last_seq;  /* newest appended (stored or not yet) */
  uint64_t stored_seq;
  uint64_t msgs;                       /* live records */
  uint64_t bytes;                      /* their record bytes */
  uint64_t deleted;                    /* gaps between first_seq and last_seq */
  uint64_t topics;                     /* topics with a live record */
  int64_t first_time_ns, last_time_ns; /* 0 when empty */
  uint64_t segments;
  uint64_t disk_bytes; /* segment files' sizes */
  bool failed;
} store_info_t;

/* ---- the environment (sync thread) ---- */

/* Starts the sync thread. */
int store_env_new(store_env_t **out);
/* Stops it; every log opened on it must be closed first. */
void store_env_free(store_env_t *env);

/* ---- open, close ---- */

/* Opens (creating it if absent, with its parents' last level) the log in
 * `dir`, recovering what a crash left (recovery may be NULL): a torn tail
 * of the last segment is cut off; a damaged record elsewhere is skipped,
 * its bytes copied aside and its sequences become gaps; then the limits
 * apply. Takes an exclusive lock on the directory (TERND_ESTORE_LOCKED if
 * another open holds it, in this process or another). TERND_ESTORE_FORMAT
 * for a segment of an unknown version. `cfg` is copied. */
int store_open(store_env_t *env, const char *dir, const store_config_t *cfg,
               store_t **out, store_recovery_t *recovery);

/* Writes what is buffered, fdatasyncs it (all policies), and frees the log.
 * Returns the first error met, TERND_ESTORE_FAILED for a failed log (the
 * log is freed anyway). */
int store_close(store_t *st);

/* Closes the log and removes its directory and everything in it. */
int store_destroy(store_t *st);

/* Changes limits, sync policy and callbacks (not segment_bytes); the new
 * limits apply at once (records may be removed). */
int store_reconfigure(store_t *st, const store_config_t *cfg);

/* ---- append, flush, durability ---- */

/* Appends one record and sets *seq (may be NULL) to its sequence. Returns
 * at once (see "Append path"); the record is readable at once and stored
 * (acknowledgeable) when store_stored_seq() reaches *seq. Errors:
 * TERND_ESTORE_TOOBIG (payload over max_msg_size, topic or id too long,
 * empty topic), TERND_ESTORE_FULL (a limit reached with discard new),
 * UV_ENOSPC (disk full; nothing changed), TERND_ESTORE_FAILED, or the
 * error of the write it made past the buffer's size (the record was
 * appended, *seq is set, the log is failed: see "Write errors"). With
 * discard old, the limits remove the oldest records here (whole segments
 * are unlinked). */
int store_append(store_t *st, const store_rec_t *rec, uint64_t *seq);

/* Writes the buffered records with one write() and, with ALWAYS, hands the
 * fdatasync to the sync thread. Cheap when nothing is buffered. */
int store_flush(store_t *st);

/* Writes, fdatasyncs on the calling thread and waits: every appended record
 * is stored and synced when it returns 0 (for tests, close, and rare
 * operations; it blocks). */
int store_sync(store_t *st);

/* Highest sequence stored under the policy (acknowledgeable). Any thread. */
uint64_t store_stored_seq(const store_t *st);
/* Highest sequence known fdatasync'ed. Any thread. */
uint64_t store_synced_seq(const store_t *st);

/* ---- read ---- */

/* Reads the record `seq` (pread from its segment, or the write buffer).
 * TERND_ESTORE_NOTFOUND when below first_seq, above last_seq or deleted;
 * TERND_ESTORE_CORRUPT when its checksum fails now. */
int store_get(store_t *st, uint64_t seq, store_msg_t *out);

/* The last live record of `topic`: *seq = its sequence, or
 * TERND_ESTORE_NOTFOUND. */
int store_last_for_topic(store_t *st, const char *topic, uint32_t topic_len,
                         uint64_t *seq);

/* The first live record whose time is >= time_ns: *seq, or
 * TERND_ESTORE_NOTFOUND when every record is older. */
int store_seq_for_time(store_t *st, int64_t time_ns, uint64_t *seq);

/* An iterator reads live records in sequence order from `start_seq` (0 or
 * below first_seq: from the first), through large block reads (replay at
 * memory speed). It follows the log as it grows: at the end,
 * store_iter_next returns 0, and more records later. Records removed
 * behind it are skipped. Iterators belong to the log's thread and must be
 * closed before the log. */
int store_iter_open(store_t *st, uint64_t start_seq, store_iter_t **out);
/* 1 and *out filled, 0 at the end (nothing more now), or a negative error
 * for a record that could not be read (TERND_ESTORE_CORRUPT: it failed its
 * checksum; or an I/O error, UV_ENOMEM): the iterator has moved past it,
 * so the next call goes on with the following record. */
int store_iter_next(store_iter_t *it, store_msg_t *out);
/* The sequence the next store_iter_next starts from. */
uint64_t store_iter_seq(const store_iter_t *it);
void store_iter_seek(store_iter_t *it, uint64_t seq);
void store_iter_close(store_iter_t *it);

/* ---- figures ---- */

void store_info(const store_t *st, store_info_t *out);
uint64_t store_first_seq(const store_t *st);
uint64_t store_last_seq(const store_t *st);

/* ---- removal ---- */

/* Deletes one record (a tombstone record is appended so the delete
 * survives a restart). TERND_ESTORE_NOTFOUND if not live. */
int store_delete(store_t *st, uint64_t seq);

/* Removes live records with sequence < `below_seq` (0: all), only those
 * of `topic` when topic is not NULL, and keeping the newest `keep` of
 * them when keep > 0 (per topic when topic is given). *purged (may be
 * NULL) gets the count. Survives a restart (a purge record is appended,
 * whole segments unlinked). The next sequence does not change. */
int store_purge(store_t *st, const char *topic, uint32_t topic_len,
                uint64_t below_seq, uint64_t keep, uint64_t *purged);

/* Rewrites sealed segments whose live records take less than half their
 * file (a last-value store's or a deleted-from log's old segments, which a
 * live record keeps on disk) without their dead records: copied to
 * NAME.compact, fdatasync'ed, renamed over the segment. Runs on the
 * calling thread and blocks (it reads and writes the segment and
 * fdatasyncs): call it from a timer when the disk is worth it, or with a
 * small segment_bytes. Stops once `budget` bytes were rewritten (0: after
 * one segment). Returns the bytes freed, or a negative error
 * (TERND_ESTORE_CORRUPT: a record no longer matches its checksum; that
 * segment is left as it was). Iterators go on unaffected. */
int64_t store_compact(store_t *st, uint64_t budget);

/* Applies max_age at `now_ns` (0: now): removes the records older than
 * max_age_ms. The owner calls it from a timer (e.g. every second); returns
 * the count removed or a negative error. */
int64_t store_expire(store_t *st, int64_t now_ns);

#endif
