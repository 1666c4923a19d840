/*
 * The four kinds of worker thread of tern bench: publisher, subscriber,
 * requester and responder. Each owns one connection and follows the same
 * shape: set up (connect, subscribe, barrier), meet the others at the two
 * run barriers, run, and record its figures in its bench_worker_t for the
 * report. A worker that fails sets run->abort so that no one waits for it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_internal.h"
#include "tern_tls/tls.h"

/* Unwritten bytes above which a publisher waits instead of encoding more. */
#define OUT_HIGH_WATER (4u * 1024u * 1024u)
/* Poll interval of loops that also watch the clock or other threads. */
#define POLL_MS 20

static void worker_fail(bench_worker_t *w, const char *what) {
  if (!w->failed) {
    snprintf(w->err, sizeof(w->err), "%s %d: %s", w->is_pub ? "pub" : "sub",
             w->index, what);
  }
  w->failed = true;
  atomic_store(&w->run->abort, 1);
}

static void client_id(const bench_worker_t *w, char *buf, size_t n) {
  snprintf(buf, n, "tern-bench-%ld-%c%d", (long)getpid(), w->is_pub ? 'p' : 's',
           w->index);
}

/* Connects, optionally subscribes, and waits for the broker's pong. */
static bool setup(bench_worker_t *w, const char *sub_subject,
                  const char *queue) {
  const bench_opts_t *o = w->run->o;
  char id[64];
  client_id(w, id, sizeof(id));
  const char *host = o->host;
  int port = o->port;
  char hbuf[256];
  if (!w->is_pub && o->sub_servers != NULL) {
    /* Entry index mod n of the list. */
    int n = 1;
    for (const char *p = o->sub_servers; *p; p++)
      n += *p == ',';
    const char *p = o->sub_servers;
    for (int k = w->index % n; k > 0; k--)
      p = strchr(p, ',') + 1;
    size_t len = strcspn(p, ",");
    const char *colon = memchr(p, ':', len);
    if (colon != NULL && (size_t)(colon - p) < sizeof hbuf) {
      memcpy(hbuf, p, (size_t)(colon - p));
      hbuf[colon - p] = '\0';
      host = hbuf;
      port = atoi(colon + 1);
    }
  }
  if (bench_conn_open(&w->conn, o->ad, host, port, id, o->timeout_ms,
                      w->run->tls) != 0) {
    worker_fail(w, w->conn.err);
    return false;
  }
  if (sub_subject != NULL) {
    if (o->ad->encode_sub(&w->conn.out, sub_subject, 1, queue) != 0) {
      worker_fail(w, "cannot encode the subscription");
      return false;
    }
    if (bench_conn_barrier(&w->conn, o->timeout_ms, NULL) != 0) {
      worker_fail(w, w->conn.err);
      return false;
    }
  }
  return true;
}

/* Both run barriers; false when the run was aborted during setup. */
static bool meet(bench_worker_t *w) {
  pthread_barrier_wait(&w->run->ready);
  pthread_barrier_wait(&w->run->go);
  return atomic_load(&w->run->abort) == 0;
}

/* Reads and parses whatever arrived, without blocking; 0 or -1. */
static int drain(bench_worker_t *w) {
  bench_ev_t ev;
  long n;
  while ((n = bench_conn_read(&w->conn)) > 0) {
    int rc;
    while ((rc = bench_conn_next(&w->conn, &ev)) == 1) {
    }
    if (rc < 0) {
      return -1;
    }
    if ((size_t)n < 4096) {
      break; /* the socket is empty or nearly: go back to publishing */
    }
  }
  return n < 0 ? -1 : 0;
}

/* One encoded publish whose bytes are reused for every message. */
typedef struct pub_template {
  tp_buf_t bytes;
  size_t payload_off;
} pub_template_t;

static bool make_template(bench_worker_t *w, pub_template_t *t,
                          const char *reply) {
  const bench_opts_t *o = w->run->o;
  uint8_t *payload = malloc(o->size ? o->size : 1);
  if (payload == NULL) {
    return false;
  }
  for (size_t i = 0; i < o->size; i++) {
    payload[i] = (uint8_t)('a' + i % 26);
  }
  tp_buf_init(&t->bytes);
  int rc = o->ad->encode_pub(&t->bytes, o->subject, strlen(o->subject), reply,
                             reply ? strlen(reply) : 0, payload, o->size,
                             &t->payload_off);
  free(payload);
  return rc == 0;
}

static void mark_pub_done(bench_worker_t *w) {
  if (atomic_fetch_sub(&w->run->pubs_left, 1) == 1) {
    atomic_store(&w->run->pubs_done_ns, bench_now_ns());
  }
}

/* Waits while too much is unwritten; false on error or abort. */
static bool wait_writable(bench_worker_t *w) {
  while (bench_conn_pending(&w->conn) > OUT_HIGH_WATER) {
    if (atomic_load(&w->run->abort)) {
      return false;
    }
    if (bench_conn_poll(&w->conn, POLL_MS) != 0) {
      worker_fail(w, w->conn.err);
      return false;
    }
    bench_ev_t ev;
    int rc;
    while ((rc = bench_conn_next(&w->conn, &ev)) == 1) {
    }
    if (rc < 0) {
      worker_fail(w, w->conn.err);
      return false;
    }
  }
  return true;
}

/*
 * Throughput: `batch` bytes of identical commands are built once and
 * appended with one memcpy per write, so the generator spends its time in
 * write(), not in encoding.
 */
static void publish_flat_out(bench_worker_t *w, const pub_template_t *t) {
  const bench_opts_t *o = w->run->o;
  size_t per = t->bytes.len;
  uint64_t k = o->batch / per ? o->batch / per : 1;
  tp_buf_t block;
  tp_buf_init(&block);
  for (uint64_t i = 0; i < k; i++) {
    if (tp_buf_append(&block, t->bytes.data, per) != 0) {
      worker_fail(w, "out of memory");
      tp_buf_free(&block);
      return;
    }
  }
  uint64_t sent = 0;
  while (sent < o->msgs) {
    if (!wait_writable(w)) {
      break;
    }
    uint64_t n = o->msgs - sent < k ? o->msgs - sent : k;
    if (tp_buf_append(&w->conn.out, block.data, n * per) != 0) {
      worker_fail(w, "out of memory");
      break;
    }
    sent += n;
    if (bench_conn_flush(&w->conn) != 0 || drain(w) != 0) {
      worker_fail(w, w->conn.err);
      break;
    }
  }
  tp_buf_free(&block);
  w->msgs = sent;
}

/*
 * Fixed rate: message j is due at start + j * interval and carries that
 * intended time, not the time it was written. A generator that falls behind
 * thus shows up as latency instead of being hidden (coordinated omission).
 */
static void publish_paced(bench_worker_t *w, const pub_template_t *t) {
  const bench_opts_t *o = w->run->o;
  uint64_t start = w->run->start_ns;
  double interval = 1e9 * (double)o->pubs / o->rate;
  uint64_t offset = (uint64_t)(interval * w->index / o->pubs);
  size_t per = t->bytes.len;
  uint64_t sent = 0;
  while (sent < o->msgs && !atomic_load(&w->run->abort)) {
    uint64_t now = bench_now_ns();
    uint64_t next_due = start + offset + (uint64_t)(interval * (double)sent);
    if (now < next_due) {
      uint64_t wait = next_due - now;
      if (wait > 2000000u) {
        if (bench_conn_poll(&w->conn, 1) != 0 || drain(w) != 0) {
          worker_fail(w, w->conn.err);
          break;
        }
      } else {
        struct timespec ts = {(time_t)(next_due / 1000000000u),
                              (long)(next_due % 1000000000u)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
      }
      continue;
    }
    if (!wait_writable(w)) {
      break;
    }
    while (sent < o->msgs) {
      uint64_t due = start + offset + (uint64_t)(interval * (double)sent);
      if (due > now) {
        break;
      }
      size_t at = w->conn.out.len;
      if (tp_buf_append(&w->conn.out, t->bytes.data, per) != 0) {
        worker_fail(w, "out of memory");
        return;
      }
      memcpy(w->conn.out.data + at + t->payload_off, &due, sizeof(due));
      sent++;
    }
    if (bench_conn_flush(&w->conn) != 0 || drain(w) != 0) {
      worker_fail(w, w->conn.err);
      break;
    }
  }
  w->msgs = sent;
}

void *bench_pub_thread(void *arg) {
  bench_worker_t *w = arg;
  const bench_opts_t *o = w->run->o;
  pub_template_t t;
  tp_buf_init(&t.bytes);
  bool ok = setup(w, NULL, NULL);
  if (ok && !make_template(w, &t, NULL)) {
    worker_fail(w, "cannot encode the publish");
    ok = false;
  }
  if (meet(w) && ok) {
    if (o->rate > 0) {
      publish_paced(w, &t);
    } else {
      publish_flat_out(w, &t);
    }
    w->bytes = w->msgs * o->size;
    /* The closing barrier: every publish has been taken in by the broker. */
    if (!w->failed && bench_conn_barrier(&w->conn, o->timeout_ms * 3, NULL)) {
      worker_fail(w, w->conn.err);
    }
    w->t_last = bench_now_ns();
  }
  mark_pub_done(w);
  tp_buf_free(&t.bytes);
  return NULL;
}

static bool sub_finished(bench_worker_t *w) {
  bench_run_t *run = w->run;
  if (atomic_load(&run->abort)) {
    return true;
  }
  if (run->o->queue != NULL) {
    if (atomic_load(&run->received) >= run->expected_total) {
      return true;
    }
  } else if (w->msgs >= run->expected_per_sub) {
    return true;
  }
  uint64_t done = atomic_load(&run->pubs_done_ns);
  return done != 0 &&
         bench_now_ns() > done + (uint64_t)run->o->timeout_ms * 1000000u;
}

void *bench_sub_thread(void *arg) {
  bench_worker_t *w = arg;
  const bench_opts_t *o = w->run->o;
  bool timed = o->rate > 0;
  bool ok = setup(w, o->subject, o->queue);
  if (meet(w) && ok) {
    while (!sub_finished(w)) {
      if (bench_conn_poll(&w->conn, POLL_MS) != 0) {
        worker_fail(w, w->conn.err);
        break;
      }
      uint64_t now = bench_now_ns();
      uint64_t got = 0;
      bench_ev_t ev;
      int rc;
      while ((rc = bench_conn_next(&w->conn, &ev)) == 1) {
        if (ev.type != BENCH_EV_MSG) {
          continue;
        }
        got++;
        w->bytes += ev.payload_len;
        if (timed && ev.payload_len >= sizeof(uint64_t)) {
          uint64_t sent;
          memcpy(&sent, ev.payload, sizeof(sent));
          bench_hist_record(w->hist, now > sent ? now - sent : 0);
        }
      }
      if (rc < 0) {
        worker_fail(w, w->conn.err);
        break;
      }
      if (got > 0) {
        w->msgs += got;
        w->t_last = now;
        atomic_fetch_add(&w->run->received, got);
      }
      /* Answers to server pings queued by bench_conn_next. */
      if (bench_conn_pending(&w->conn) && bench_conn_flush(&w->conn) != 0) {
        worker_fail(w, w->conn.err);
        break;
      }
    }
  }
  return NULL;
}

/* Request/reply: one request in flight per requester; the RTT is sampled. */
void *bench_req_thread(void *arg) {
  bench_worker_t *w = arg;
  const bench_opts_t *o = w->run->o;
  char inbox[96];
  snprintf(inbox, sizeof(inbox), "bench.inbox.%ld.%d", (long)getpid(),
           w->index);
  pub_template_t t;
  tp_buf_init(&t.bytes);
  bool ok = setup(w, inbox, NULL);
  if (ok && !make_template(w, &t, inbox)) {
    worker_fail(w, "cannot encode the request");
    ok = false;
  }
  if (meet(w) && ok) {
    for (uint64_t i = 0; i < o->msgs && !atomic_load(&w->run->abort); i++) {
      uint64_t t0 = bench_now_ns();
      if (tp_buf_append(&w->conn.out, t.bytes.data, t.bytes.len) != 0 ||
          bench_conn_flush(&w->conn) != 0) {
        worker_fail(w, "cannot send the request");
        break;
      }
      bench_ev_t ev;
      int rc = bench_conn_wait_msg(&w->conn, &ev, o->timeout_ms);
      if (rc <= 0) {
        worker_fail(w, rc == 0 ? "request timed out" : w->conn.err);
        break;
      }
      uint64_t t1 = bench_now_ns();
      bench_hist_record(w->hist, t1 - t0);
      w->msgs++;
      w->bytes += o->size;
    }
    w->t_last = bench_now_ns();
  }
  mark_pub_done(w);
  tp_buf_free(&t.bytes);
  return NULL;
}

/* Responder: echoes each request's payload to its reply subject. */
void *bench_rep_thread(void *arg) {
  bench_worker_t *w = arg;
  const bench_opts_t *o = w->run->o;
  /* Several responders share the requests, as a service's instances do. */
  bool ok = setup(w, o->subject, o->ad->has_queue ? "bench.responders" : NULL);
  if (meet(w) && ok) {
    while (atomic_load(&w->run->pubs_left) > 0 &&
           !atomic_load(&w->run->abort)) {
      if (bench_conn_poll(&w->conn, POLL_MS) != 0) {
        worker_fail(w, w->conn.err);
        break;
      }
      bench_ev_t ev;
      int rc;
      while ((rc = bench_conn_next(&w->conn, &ev)) == 1) {
        if (ev.type != BENCH_EV_MSG || ev.reply == NULL) {
          continue;
        }
        if (o->ad->encode_pub(&w->conn.out, ev.reply, ev.reply_len, NULL, 0,
                              ev.payload, ev.payload_len, NULL) != 0) {
          rc = -1;
          snprintf(w->conn.err, sizeof(w->conn.err), "cannot encode a reply");
          break;
        }
        w->msgs++;
        w->bytes += ev.payload_len;
        w->t_last = bench_now_ns();
      }
      if (rc < 0 || bench_conn_flush(&w->conn) != 0) {
        worker_fail(w, w->conn.err);
        break;
      }
    }
  }
  return NULL;
}

/* Handshake mode: open (TCP, TLS, CONNECT, ping/pong) and close, again and
 * again; the run's clock covers them all. */
void *bench_connect_thread(void *arg) {
  bench_worker_t *w = arg;
  const bench_opts_t *o = w->run->o;
  char id[64];
  client_id(w, id, sizeof(id));
  if (!meet(w)) {
    return NULL;
  }
  ttls_session_t *sess = NULL;
  for (uint64_t i = 0; i < o->connects; i++) {
    if (bench_conn_open_resume(&w->conn, o->ad, o->host, o->port, id,
                               o->timeout_ms, w->run->tls, sess) != 0) {
      worker_fail(w, w->conn.err);
      bench_conn_close(&w->conn);
      break;
    }
    if (o->tls_resume) {
      if (bench_conn_resumed(&w->conn)) {
        w->resumed++;
      }
      /* The newest ticket (TLS 1.3 sends it after the handshake; it has
       * come by the pong). */
      ttls_session_t *next = bench_conn_session(&w->conn);
      if (next != NULL) {
        ttls_session_free(sess);
        sess = next;
      }
    }
    bench_conn_close(&w->conn);
    w->msgs++;
  }
  ttls_session_free(sess);
  uint64_t now = bench_now_ns();
  atomic_store(&w->run->pubs_done_ns, now);
  return NULL;
}
