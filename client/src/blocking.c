/*
 * The blocking client: a private uv loop on a background thread running one
 * asynchronous connection, driven by a mutex-protected command queue and a
 * uv_async_t.
 *
 * Publishes are fire-and-forget: the caller returns once its frame is
 * encoded into a publish batch command at the queue's tail (pub_batch.c).
 * The queue holds at most outbound_limit payload bytes; a
 * publisher waits (publish_timeout_ms) for room, and the loop thread stops
 * taking publishes off the queue while the connection's own buffer answers
 * TERN_EWOULDBLOCK, until its drain callback. So a broker that stops reading
 * us holds our publishers back instead of growing memory.
 */
#include <stdlib.h>
#include <string.h>

#include "blocking_internal.h"
#include "options_abi.h"
#include "tern_proto/topic.h"

static uint64_t now_ns(void) {
  return uv_hrtime();
}

/* Waits on cond until *deadline_ns (0 = forever). False once it passed. */
static bool wait_until(uv_cond_t *cond, uv_mutex_t *mu, uint64_t deadline_ns) {
  uint64_t now;
  if (deadline_ns == 0) {
    uv_cond_wait(cond, mu);
    return true;
  }
  now = now_ns();
  if (now >= deadline_ns) {
    return false;
  }
  uv_cond_timedwait(cond, mu, deadline_ns - now);
  return true;
}

static uint64_t deadline_after(int timeout_ms) {
  return timeout_ms < 0 ? 0 : now_ns() + (uint64_t)timeout_ms * 1000000u + 1;
}

/* The blocking layer sets itself as the connection's cb_data. */
static tern_client_t *client_of(tern_conn_t *conn) {
  return conn->opts.o.cb_data;
}

static void cmd_free(tern__cmd_t *cmd) {
  tern_msg_release(cmd->reply);
  free(cmd);
}

/* Drops one reference with mu held; frees on the last. */
static void cmd_unref_locked(tern__cmd_t *cmd) {
  if (--cmd->refs == 0) {
    cmd_free(cmd);
  }
}

void tern__cmd_enqueue(tern_client_t *cl, tern__cmd_t *cmd) {
  uv_mutex_lock(&cl->mu);
  if (cl->tail != NULL) {
    cl->tail->next = cmd;
  } else {
    cl->head = cmd;
  }
  cl->tail = cmd;
  uv_mutex_unlock(&cl->mu);
  uv_async_send(&cl->wake);
}

void tern__client_wake(tern_client_t *cl) {
  uv_async_send(&cl->wake);
}

void tern__cmd_complete(tern_client_t *cl, tern__cmd_t *cmd, int result) {
  if (result == TERN_ENOTCONN) {
    result = TERN_ECLOSED;
  }
  uv_mutex_lock(&cl->mu);
  cmd->result = result;
  cmd->done = true;
  cmd_unref_locked(cmd);
  uv_cond_broadcast(&cl->cond);
  uv_mutex_unlock(&cl->mu);
}

int tern__cmd_wait(tern_client_t *cl, tern__cmd_t *cmd, int timeout_ms,
                   tern_msg_t **reply, uint64_t *receivers) {
  uint64_t deadline = deadline_after(timeout_ms);
  int rc;
  uv_mutex_lock(&cl->mu);
  while (!cmd->done && wait_until(&cl->cond, &cl->mu, deadline)) {
  }
  rc = cmd->done ? cmd->result : TERN_ETIMEOUT;
  if (cmd->done && reply != NULL) {
    *reply = cmd->reply;
    cmd->reply = NULL;
  }
  if (cmd->done && receivers != NULL) {
    *receivers = cmd->receivers;
  }
  cmd_unref_locked(cmd);
  uv_mutex_unlock(&cl->mu);
  return rc;
}

/*
 * Builds a publish or request command holding its own copies of topic,
 * payload, reply and headers in one allocation.
 */
static tern__cmd_t *cmd_pub_create(tern__cmd_kind_t kind, const char *topic,
                             const void *payload, size_t len,
                             const tern_pub_opts_t *opts) {
  size_t n = opts != NULL ? opts->header_count : 0;
  size_t size =
      sizeof(tern__cmd_t) + strlen(topic) + 1 + len + 2 * n * sizeof(char *);
  tern__cmd_t *cmd;
  char *cur;
  char **keys, **vals;
  if (opts != NULL && opts->reply != NULL) {
    size += strlen(opts->reply) + 1;
  }
  for (size_t i = 0; i < n; i++) {
    size += strlen(opts->header_keys[i]) + strlen(opts->header_values[i]) + 2;
  }
  cmd = calloc(1, size);
  if (cmd == NULL) {
    return NULL;
  }
  cmd->kind = kind;
  keys = (char **)(cmd + 1);
  vals = keys + n;
  cur = (char *)(vals + n);
  if (len > 0) {
    memcpy(cur, payload, len);
  }
  cmd->payload = cur;
  cmd->len = len;
  cur += len;
  cmd->topic = strcpy(cur, topic);
  cur += strlen(topic) + 1;
  tern_pub_opts_init(&cmd->po);
  if (opts != NULL) {
    cmd->po.retain = opts->retain;
    cmd->po.ttl_ms = opts->ttl_ms;
    if (opts->reply != NULL) {
      cmd->po.reply = strcpy(cur, opts->reply);
      cur += strlen(opts->reply) + 1;
    }
    for (size_t i = 0; i < n; i++) {
      keys[i] = strcpy(cur, opts->header_keys[i]);
      cur += strlen(cur) + 1;
      vals[i] = strcpy(cur, opts->header_values[i]);
      cur += strlen(cur) + 1;
    }
    cmd->po.header_keys = (const char *const *)keys;
    cmd->po.header_values = (const char *const *)vals;
    cmd->po.header_count = n;
  }
  return cmd;
}

static void on_cmd_ack(tern_conn_t *conn, int status, uint64_t receivers,
                       void *cb_data) {
  tern__cmd_t *cmd = cb_data;
  tern_client_t *cl = client_of(conn);
  uv_mutex_lock(&cl->mu);
  cmd->receivers = receivers;
  uv_mutex_unlock(&cl->mu);
  tern__cmd_complete(cl, cmd, status);
}

static void on_cmd_reply(tern_conn_t *conn, int status, tern_msg_t *reply,
                         void *cb_data) {
  tern__cmd_t *cmd = cb_data;
  tern_client_t *cl = client_of(conn);
  if (reply != NULL) {
    uv_mutex_lock(&cl->mu);
    cmd->reply = tern_msg_retain(reply);
    uv_mutex_unlock(&cl->mu);
  }
  tern__cmd_complete(cl, cmd, status);
}

static void on_cmd_flushed(tern_conn_t *conn, int status, void *cb_data) {
  tern__cmd_complete(client_of(conn), cb_data, status);
}

static void on_conn_closed(tern_conn_t *conn, void *cb_data) {
  tern_client_t *cl = cb_data;
  (void)conn;
  uv_close((uv_handle_t *)&cl->wake, NULL); /* the loop then ends */
}

/* Runs one command on the loop thread. */
static int exec(tern_client_t *cl, tern__cmd_t *cmd, bool closing) {
  tern_conn_t *c = cl->conn;
  int rc;
  switch (cmd->kind) {
  case TERN__CMD_PUB_BATCH: /* process_queue runs batches */
    return TERN_EINVAL;
  case TERN__CMD_PUB_ACK:
  case TERN__CMD_REQ:
    if (cmd->kind == TERN__CMD_PUB_ACK) {
      cmd->po.ack_cb = on_cmd_ack;
      cmd->po.ack_cb_data = cmd;
    }
    if (cmd->kind == TERN__CMD_REQ) {
      rc =
          tern__conn_request_hdrs(c, cmd->topic, cmd->payload, cmd->len,
                                  &cmd->po, cmd->timeout_ms, on_cmd_reply, cmd);
    } else {
      rc = tern_conn_publish(c, cmd->topic, cmd->payload, cmd->len, &cmd->po);
    }
    if (rc == TERN_EWOULDBLOCK && !closing && tern_conn_outbound_bytes(c) > 0) {
      return TERN__EXEC_RETRY;
    }
    if (rc != 0) {
      uv_mutex_lock(&cl->mu);
      strncpy(cl->last_error, tern_strerror(rc), sizeof(cl->last_error) - 1);
      uv_mutex_unlock(&cl->mu);
    }
    return rc != 0 ? rc : TERN__EXEC_PENDING;
  case TERN__CMD_FLUSH:
    rc = tern_conn_flush(c, cmd->timeout_ms, on_cmd_flushed, cmd);
    return rc != 0 ? rc : TERN__EXEC_PENDING;
  case TERN__CMD_SUB:
  case TERN__CMD_UNSUB:
  case TERN__CMD_SUB_DESTROY:
    return tern__bsub_exec(cl, cmd);
  case TERN__CMD_CLOSE:
    tern_conn_close(c, on_conn_closed, cl);
    return 0;
  }
  return TERN_EINVAL;
}

/*
 * Loop thread: runs queued commands in order until the queue is empty or
 * the head publish must wait for the drain callback. A command leaves the
 * queue before it is completed, since completing may free it.
 */
static void process_queue(tern_client_t *cl) {
  bool resume, closing;
  tern__cmd_kind_t kind;
  uint64_t left;
  tern__cmd_t *cmd;
  int rc;
  uv_mutex_lock(&cl->mu);
  resume = cl->resume_wanted && cl->paused_subs == 0;
  cl->resume_wanted = false;
  uv_mutex_unlock(&cl->mu);
  if (resume) {
    tern_conn_read_resume(cl->conn);
  }
  while (!cl->blocked) {
    uv_mutex_lock(&cl->mu);
    cmd = cl->head;
    closing = cl->closing;
    if (cmd != NULL && cmd->kind == TERN__CMD_PUB_BATCH) {
      ((tern__pub_batch_t *)cmd)->sealed = true; /* its bytes are ours */
    }
    uv_mutex_unlock(&cl->mu);
    if (cmd == NULL) {
      break;
    }
    /* Only this thread removes commands, so the head stays ours. */
    left = 0;
    if (cmd->kind == TERN__CMD_PUB_BATCH) {
      rc = tern__pub_batch_exec(cl, (tern__pub_batch_t *)cmd, closing, &left);
    } else {
      rc = exec(cl, cmd, closing);
    }
    if (rc == TERN__EXEC_RETRY) {
      uv_mutex_lock(&cl->mu);
      cl->queued_bytes -= left;
      uv_cond_broadcast(&cl->cond); /* room for a waiting publisher */
      uv_mutex_unlock(&cl->mu);
      cl->blocked = true;
      break;
    }
    kind = cmd->kind;
    uv_mutex_lock(&cl->mu);
    cl->head = cmd->next;
    if (cl->head == NULL) {
      cl->tail = NULL;
    }
    if (kind == TERN__CMD_PUB_BATCH) {
      cl->queued_bytes -= left;
      tern__pub_batch_release_locked(cl, (tern__pub_batch_t *)cmd);
      uv_cond_broadcast(&cl->cond); /* room for a waiting publisher */
      uv_mutex_unlock(&cl->mu);
      continue;
    }
    uv_mutex_unlock(&cl->mu);
    if (rc != TERN__EXEC_PENDING) {
      tern__cmd_complete(cl, cmd, rc);
    }
    if (kind == TERN__CMD_CLOSE) {
      break;
    }
  }
}

static void on_wake(uv_async_t *a) {
  process_queue(a->data);
}

static void b_error(tern_conn_t *conn, int err, int wire_code, const char *text,
                    void *cb_data) {
  tern_client_t *cl = cb_data;
  uv_mutex_lock(&cl->mu);
  strncpy(cl->last_error, text, sizeof(cl->last_error) - 1);
  uv_mutex_unlock(&cl->mu);
  if (cl->user.error_cb != NULL) {
    cl->user.error_cb(conn, err, wire_code, text, cl->user.cb_data);
  }
}

static void b_drain(tern_conn_t *conn, void *cb_data) {
  tern_client_t *cl = cb_data;
  if (cl->user.drain_cb != NULL) {
    cl->user.drain_cb(conn, cl->user.cb_data);
  }
  cl->blocked = false;
  process_queue(cl);
}

static void b_disconnect(tern_conn_t *conn, int reason, void *cb_data) {
  tern_client_t *cl = cb_data;
  uv_mutex_lock(&cl->mu);
  cl->lost = true;
  strncpy(cl->last_error, tern_conn_last_error(conn),
          sizeof(cl->last_error) - 1);
  tern__bsub_end_all_locked(cl);
  uv_cond_broadcast(&cl->cond);
  uv_mutex_unlock(&cl->mu);
  if (cl->user.disconnect_cb != NULL) {
    cl->user.disconnect_cb(conn, reason, cl->user.cb_data);
  }
  cl->blocked = false; /* queued commands now fail at once */
  process_queue(cl);
}

/* Status transitions go to the application as they are. A reconnect needs
 * nothing from this layer: subscriptions live in the connection, and the
 * drain callback restarts a publish queue held up while disconnected. */
static void b_status(tern_conn_t *conn, tern_status_t st, int reason,
                     void *cb_data) {
  tern_client_t *cl = cb_data;
  if (cl->user.status_cb != NULL) {
    cl->user.status_cb(conn, st, reason, cl->user.cb_data);
  }
}

/* The same with the figures: publishes that timed out in this layer while
 * disconnected count as refused too (they never reached the connection). */
static void b_status_event(tern_conn_t *conn, const tern_status_event_t *ev,
                           void *cb_data) {
  tern_client_t *cl = cb_data;
  tern_status_event_t e = *ev;
  uv_mutex_lock(&cl->mu);
  if (ev->status == TERN_STATUS_DISCONNECTED) {
    cl->offline = true;
    cl->offline_refused = 0;
  }
  e.pubs_refused += cl->offline_refused;
  if (ev->status == TERN_STATUS_CONNECTED) {
    cl->offline = false;
    cl->offline_refused = 0;
  }
  uv_mutex_unlock(&cl->mu);
  if (cl->user.status_event_cb != NULL) {
    cl->user.status_event_cb(conn, &e, cl->user.cb_data);
  }
}

static void on_connected(tern_conn_t *conn, int status, void *cb_data) {
  tern_client_t *cl = cb_data;
  uv_mutex_lock(&cl->mu);
  cl->connect_status = status;
  cl->connect_done = true;
  cl->max_payload = tern_conn_max_payload(conn);
  if (status != 0) {
    cl->lost = true;
    strncpy(cl->last_error, tern_conn_last_error(conn),
            sizeof(cl->last_error) - 1);
  }
  uv_cond_broadcast(&cl->cond);
  uv_mutex_unlock(&cl->mu);
}

static void thread_main(void *arg) {
  tern_client_t *cl = arg;
  uv_run(&cl->loop, UV_RUN_DEFAULT);
}

static void client_free(tern_client_t *cl) {
  while (cl->subs != NULL) {
    tern_sub_t *s = cl->subs;
    cl->subs = s->next;
    tern__bsub_free(s);
  }
  while (cl->head != NULL) { /* only if the loop never ran them */
    tern__cmd_t *cmd = cl->head;
    cl->head = cmd->next;
    if (cmd->kind == TERN__CMD_PUB_BATCH) {
      tern__pub_batch_release_locked(cl, (tern__pub_batch_t *)cmd);
    } else {
      cmd_free(cmd);
    }
  }
  tern__pub_batches_free(cl);
  uv_loop_close(&cl->loop);
  uv_cond_destroy(&cl->cond);
  uv_mutex_destroy(&cl->mu);
  free(cl);
}

int tern_client_connect(tern_client_t **out, const tern_options_t *opts) {
  return tern_client_connect_why(out, opts, NULL, 0);
}

int tern_client_connect_why(tern_client_t **out, const tern_options_t *opts,
                            char *why, size_t n) {
  tern_options_t o;
  tern_client_t *cl;
  int rc;
  if (out == NULL) {
    return TERN_EINVAL;
  }
  *out = NULL;
  if (opts == NULL) {
    tern_options_init(&o);
  } else if (tern__options_import(&o, opts) != 0) {
    return TERN_EINVAL;
  }
  cl = calloc(1, sizeof(*cl));
  if (cl == NULL) {
    return TERN_ENOMEM;
  }
  cl->user = o;
  cl->limit = o.outbound_limit;
  cl->publish_timeout_ms = o.publish_timeout_ms;
  cl->connect_timeout_ms = o.connect_timeout_ms;
  cl->sub_queue_msgs = o.sub_queue_msgs ? o.sub_queue_msgs : 65536;
  cl->sub_queue_bytes = o.sub_queue_bytes ? o.sub_queue_bytes : 64u << 20;
  o.error_cb = b_error;
  o.drain_cb = b_drain;
  o.disconnect_cb = b_disconnect;
  o.status_cb = b_status;
  o.status_event_cb = b_status_event;
  o.cb_data = cl;
  rc = uv_loop_init(&cl->loop);
  if (rc != 0) {
    free(cl);
    return rc;
  }
  uv_mutex_init(&cl->mu);
  uv_cond_init(&cl->cond);
  uv_async_init(&cl->loop, &cl->wake, on_wake);
  cl->wake.data = cl;
  rc = tern_conn_connect(&cl->conn, &cl->loop, &o, on_connected, cl);
  if (rc == 0) {
    rc = uv_thread_create(&cl->thread, thread_main, cl);
    if (rc != 0) {
      tern_conn_close(cl->conn, NULL, NULL);
    }
  }
  if (rc != 0) {
    uv_close((uv_handle_t *)&cl->wake, NULL);
    uv_run(&cl->loop, UV_RUN_DEFAULT); /* let the closes finish */
    client_free(cl);
    return rc;
  }
  uv_mutex_lock(&cl->mu);
  while (!cl->connect_done) {
    uv_cond_wait(&cl->cond, &cl->mu);
  }
  rc = cl->connect_status;
  uv_mutex_unlock(&cl->mu);
  if (rc != 0) {
    if (why != NULL && n > 0) {
      snprintf(why, n, "%s", cl->last_error);
    }
    tern_client_close(cl);
    return rc;
  }
  *out = cl;
  return 0;
}

void tern_client_close(tern_client_t *cl) {
  tern__cmd_t *cmd;
  if (cl == NULL) {
    return;
  }
  cmd = calloc(1, sizeof(*cmd));
  uv_mutex_lock(&cl->mu);
  cl->closing = true;
  uv_mutex_unlock(&cl->mu);
  if (cmd != NULL) {
    cmd->kind = TERN__CMD_CLOSE;
    cmd->refs = 1;
    tern__cmd_enqueue(cl, cmd);
  }
  uv_thread_join(&cl->thread);
  client_free(cl);
}

/* Points *opts at own, the caller's struct imported at the library's size. */
static int import_pub(const tern_pub_opts_t **opts, tern_pub_opts_t *own) {
  if (*opts != NULL) {
    if (tern__pub_opts_import(own, *opts) != 0) {
      return TERN_EINVAL;
    }
    *opts = own;
  }
  return 0;
}

/*
 * The checks of every blocking publish, done on the caller's thread so that
 * errors come back synchronously. On success p holds the frame, to be let go
 * with tern__pub_done.
 */
static int check_pub(tern_client_t *cl, tern__pub_t *p, const char *topic,
                     const void *payload, size_t len,
                     const tern_pub_opts_t *opts) {
  int rc;
  if (cl == NULL) {
    return TERN_EINVAL;
  }
  rc = tern__pub_check(p, topic, payload, len, cl->max_payload);
  if (rc != 0) {
    return rc;
  }
  /* A PUBACK callback belongs to the asynchronous API. */
  if (opts != NULL && opts->ack_cb != NULL) {
    return TERN_EINVAL;
  }
  rc = tern__pub_prepare(p, opts);
  if (rc != 0) {
    tern__pub_done(p);
  }
  return rc;
}

int tern_client_publish(tern_client_t *cl, const char *topic,
                        const void *payload, size_t len,
                        const tern_pub_opts_t *opts) {
  tern_pub_opts_t own;
  tern__pub_t p;
  uint64_t deadline = 0;
  bool wake = false;
  int rc = import_pub(&opts, &own);
  if (rc == 0) {
    rc = check_pub(cl, &p, topic, payload, len, opts);
  }
  if (rc != 0) {
    return rc;
  }
  uv_mutex_lock(&cl->mu);
  while (!cl->lost && cl->queued_bytes > 0 &&
         cl->queued_bytes + len > cl->limit) {
    if (deadline == 0) {
      deadline = now_ns() + (uint64_t)cl->publish_timeout_ms * 1000000u;
    }
    if (cl->publish_timeout_ms == 0 ||
        !wait_until(&cl->cond, &cl->mu, deadline)) {
      rc = TERN_EWOULDBLOCK;
      break;
    }
  }
  if (rc == 0) {
    rc = cl->lost ? TERN_ECLOSED : tern__pub_batch_add_locked(cl, &p, &wake);
  } else if (cl->offline) {
    cl->offline_refused++;
  }
  uv_mutex_unlock(&cl->mu);
  tern__pub_done(&p);
  if (wake) {
    uv_async_send(&cl->wake);
  }
  return rc;
}

/* Queues a waited-on command unless the connection is already gone. */
static int submit(tern_client_t *cl, tern__cmd_t *cmd) {
  bool lost;
  uv_mutex_lock(&cl->mu);
  lost = cl->lost;
  uv_mutex_unlock(&cl->mu);
  if (lost) {
    cmd_free(cmd);
    return TERN_ECLOSED;
  }
  cmd->refs = 2;
  tern__cmd_enqueue(cl, cmd);
  return 0;
}

int tern_client_publish_ack(tern_client_t *cl, const char *topic,
                            const void *payload, size_t len,
                            const tern_pub_opts_t *opts, int timeout_ms,
                            uint64_t *receivers) {
  tern_pub_opts_t own;
  tern__pub_t p;
  tern__cmd_t *cmd;
  int rc = import_pub(&opts, &own);
  if (rc == 0) {
    rc = check_pub(cl, &p, topic, payload, len, opts);
  }
  if (rc != 0) {
    return rc;
  }
  tern__pub_done(&p); /* the command keeps its own copy */
  cmd = cmd_pub_create(TERN__CMD_PUB_ACK, topic, payload, len, opts);
  if (cmd == NULL) {
    return TERN_ENOMEM;
  }
  rc = submit(cl, cmd);
  return rc != 0 ? rc : tern__cmd_wait(cl, cmd, timeout_ms, NULL, receivers);
}

int tern_client_request(tern_client_t *cl, const char *topic,
                        const void *payload, size_t len, int timeout_ms,
                        tern_msg_t **reply) {
  return tern__client_request_hdrs(cl, topic, payload, len, NULL, timeout_ms,
                                   reply);
}

int tern__client_request_hdrs(tern_client_t *cl, const char *topic,
                              const void *payload, size_t len,
                              const tern_pub_opts_t *hdrs, int timeout_ms,
                              tern_msg_t **reply) {
  tern__pub_t p;
  tern__cmd_t *cmd;
  int rc = check_pub(cl, &p, topic, payload, len, NULL);
  if (rc != 0) {
    return rc;
  }
  tern__pub_done(&p); /* the command keeps its own copy */
  if (reply == NULL) {
    return TERN_EINVAL;
  }
  *reply = NULL;
  cmd = cmd_pub_create(TERN__CMD_REQ, topic, payload, len, hdrs);
  if (cmd == NULL) {
    return TERN_ENOMEM;
  }
  cmd->timeout_ms = timeout_ms < 0 ? UINT32_MAX : (uint32_t)timeout_ms;
  rc = submit(cl, cmd);
  return rc != 0 ? rc : tern__cmd_wait(cl, cmd, timeout_ms, reply, NULL);
}

int tern_client_flush(tern_client_t *cl, int timeout_ms) {
  tern__cmd_t *cmd;
  int rc;
  if (cl == NULL) {
    return TERN_EINVAL;
  }
  cmd = calloc(1, sizeof(*cmd));
  if (cmd == NULL) {
    return TERN_ENOMEM;
  }
  cmd->kind = TERN__CMD_FLUSH;
  cmd->timeout_ms = timeout_ms < 0 ? 0 : (uint32_t)timeout_ms;
  rc = submit(cl, cmd);
  return rc != 0 ? rc : tern__cmd_wait(cl, cmd, timeout_ms, NULL, NULL);
}

void tern_client_last_error(tern_client_t *cl, char *buf, size_t n) {
  if (n == 0) {
    return;
  }
  uv_mutex_lock(&cl->mu);
  strncpy(buf, cl->last_error, n - 1);
  buf[n - 1] = '\0';
  uv_mutex_unlock(&cl->mu);
}

uint64_t tern_client_max_payload(tern_client_t *cl) {
  return cl->max_payload;
}
