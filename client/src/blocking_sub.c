/*
 * Subscriptions of the blocking client. Each owns a bounded queue of
 * messages filled by the loop thread and emptied by tern_sub_next. When a
 * queue reaches its bounds the loop thread pauses reading the socket (the
 * broker's flow control then holds the publishers back); when the
 * application has taken it down to half, reading resumes. So memory stays
 * bounded by the limits, whatever the publishers do.
 */
#include <stdlib.h>
#include <string.h>

#include "blocking_internal.h"
#include "options_abi.h"
#include "tern_proto/topic.h"

/* Loop thread: a message for sub. Queue it, and pause reading if full. */
static void on_sub_msg(tern_asub_t *asub, tern_msg_t *msg, void *cb_data) {
  tern_sub_t *sub = cb_data;
  tern_client_t *cl = sub->cl;
  bool pause = false;
  uv_mutex_lock(&cl->mu);
  tern__msg_set_qnext(msg, NULL);
  tern_msg_retain(msg);
  if (sub->qtail != NULL) {
    tern__msg_set_qnext(sub->qtail, msg);
  } else {
    sub->qhead = msg;
  }
  sub->qtail = msg;
  sub->count++;
  sub->bytes += tern_msg_len(msg);
  if (sub->unsub_max != 0 && tern_asub_delivered(asub) >= sub->unsub_max) {
    sub->ended = true; /* the connection frees asub after we return */
    sub->asub = NULL;
  }
  if (!sub->paused &&
      (sub->count >= sub->max_msgs || sub->bytes >= sub->max_bytes)) {
    sub->paused = true;
    cl->paused_subs++;
    pause = true;
  }
  uv_cond_signal(&sub->cond);
  uv_mutex_unlock(&cl->mu);
  if (pause) {
    tern_conn_read_pause(tern_asub_conn(asub));
  }
}

static void on_sub_dropped(tern_asub_t *asub, uint64_t count, void *cb_data) {
  tern_sub_t *sub = cb_data;
  (void)asub;
  uv_mutex_lock(&sub->cl->mu);
  sub->dropped += count;
  uv_mutex_unlock(&sub->cl->mu);
}

/* Loop thread: the broker refused the SUB; the flush that follows it
 * reports that. */
static void on_sub_refused(tern_asub_t *asub, int err, const char *text,
                           void *cb_data) {
  tern_sub_t *sub = cb_data;
  (void)asub;
  (void)text;
  sub->refused = err;
}

static void on_sub_flushed(tern_conn_t *conn, int status, void *cb_data) {
  tern__cmd_t *cmd = cb_data;
  tern_sub_t *sub = cmd->sub;
  (void)conn;
  if (status == 0 && sub->refused != 0) {
    status = sub->refused;
  }
  if (status != 0 && sub->asub != NULL) {
    tern_asub_unsubscribe(sub->asub, 0);
    sub->asub = NULL;
  }
  tern__cmd_complete(sub->cl, cmd, status);
}

/* Loop thread: a subscription's queue no longer pauses the connection. */
static void unpause_locked(tern_client_t *cl, tern_sub_t *sub) {
  if (sub->paused) {
    sub->paused = false;
    if (--cl->paused_subs == 0) {
      cl->resume_wanted = true;
    }
  }
}

int tern__bsub_exec(tern_client_t *cl, tern__cmd_t *cmd) {
  tern_sub_t *sub = cmd->sub;
  int rc = 0;
  switch (cmd->kind) {
  case TERN__CMD_SUB:
    cmd->so.dropped_cb = on_sub_dropped;
    cmd->so.error_cb = on_sub_refused;
    cmd->so.queue = cmd->queue;
    rc = tern_conn_subscribe(cl->conn, &sub->asub, cmd->pattern, &cmd->so,
                             on_sub_msg, sub);
    if (rc == 0) {
      sub->sid = tern_asub_sid(sub->asub);
      /* Done when the broker has it: PONG follows SUB, and a refusal of
       * the SUB comes before it (on_sub_refused). This flush leaves other
       * refusals to the application's flushes. */
      rc = tern__flush(cl->conn, cl->connect_timeout_ms, on_sub_flushed, cmd,
                       false);
      if (rc == 0) {
        return TERN__EXEC_PENDING; /* on_sub_flushed completes it */
      }
      tern_asub_unsubscribe(sub->asub, 0);
      sub->asub = NULL;
    }
    break;
  case TERN__CMD_UNSUB:
    if (sub->asub == NULL) {
      rc = TERN_ECLOSED;
      break;
    }
    if (cmd->max_msgs != 0 && cmd->max_msgs > tern_asub_delivered(sub->asub)) {
      sub->unsub_max = cmd->max_msgs;
      rc = tern_asub_unsubscribe(sub->asub, cmd->max_msgs);
      break;
    }
    rc = tern_asub_unsubscribe(sub->asub, 0);
    sub->asub = NULL;
    uv_mutex_lock(&cl->mu);
    sub->ended = true;
    uv_cond_broadcast(&sub->cond);
    uv_mutex_unlock(&cl->mu);
    break;
  case TERN__CMD_SUB_DESTROY:
    if (sub->asub != NULL) {
      tern_asub_unsubscribe(sub->asub, 0);
      sub->asub = NULL;
    }
    uv_mutex_lock(&cl->mu);
    if (sub->prev != NULL) {
      sub->prev->next = sub->next;
    } else if (cl->subs == sub) {
      cl->subs = sub->next;
    }
    if (sub->next != NULL) {
      sub->next->prev = sub->prev;
    }
    sub->prev = sub->next = NULL;
    unpause_locked(cl, sub);
    uv_mutex_unlock(&cl->mu);
    tern__client_wake(cl); /* runs the resume, if it is wanted */
    break;
  default:
    break;
  }
  return rc;
}

void tern__bsub_end_all_locked(tern_client_t *cl) {
  for (tern_sub_t *s = cl->subs; s != NULL; s = s->next) {
    s->ended = true;
    uv_cond_broadcast(&s->cond);
  }
}

void tern__bsub_free(tern_sub_t *sub) {
  while (sub->qhead != NULL) {
    tern_msg_t *m = sub->qhead;
    sub->qhead = tern__msg_qnext(m);
    tern_msg_release(m);
  }
  uv_cond_destroy(&sub->cond);
  free(sub);
}

int tern_client_subscribe(tern_client_t *cl, tern_sub_t **out,
                          const char *pattern, const tern_sub_opts_t *opts) {
  tern_sub_opts_t own;
  size_t plen, qlen;
  tern_sub_t *sub;
  tern__cmd_t *cmd;
  bool lost;
  int rc;
  if (cl == NULL || out == NULL || pattern == NULL) {
    return TERN_EINVAL;
  }
  *out = NULL;
  if (opts != NULL) {
    if (tern__sub_opts_import(&own, opts) != 0) {
      return TERN_EINVAL;
    }
    opts = &own;
  }
  plen = strlen(pattern);
  if (tp_pattern_validate(pattern, plen, TP_DEFAULT_MAX_TOPIC) != 0) {
    return TERN_ETOPIC;
  }
  qlen = opts != NULL && opts->queue != NULL ? strlen(opts->queue) + 1 : 0;
  sub = calloc(1, sizeof(*sub));
  cmd = calloc(1, sizeof(*cmd) + plen + 1 + qlen);
  if (sub == NULL || cmd == NULL) {
    free(sub);
    free(cmd);
    return TERN_ENOMEM;
  }
  sub->cl = cl;
  sub->max_msgs = cl->sub_queue_msgs;
  sub->max_bytes = cl->sub_queue_bytes;
  tern_sub_opts_init(&cmd->so); /* the loop passes it to tern_conn_subscribe */
  if (opts != NULL) {
    cmd->so = *opts; /* library-sized: imported above */
    if (opts->queue_msgs != 0) {
      sub->max_msgs = opts->queue_msgs;
    }
    if (opts->queue_bytes != 0) {
      sub->max_bytes = opts->queue_bytes;
    }
  }
  uv_cond_init(&sub->cond);
  cmd->kind = TERN__CMD_SUB;
  cmd->sub = sub;
  cmd->pattern = memcpy((char *)(cmd + 1), pattern, plen + 1);
  if (qlen > 0) {
    cmd->queue = memcpy(cmd->pattern + plen + 1, opts->queue, qlen);
  }
  uv_mutex_lock(&cl->mu);
  lost = cl->lost;
  uv_mutex_unlock(&cl->mu);
  if (lost) {
    free(cmd);
    tern__bsub_free(sub);
    return TERN_ECLOSED;
  }
  cmd->refs = 2;
  tern__cmd_enqueue(cl, cmd);
  /* The loop bounds this wait: the PONG times out after connect_timeout_ms. */
  rc = tern__cmd_wait(cl, cmd, -1, NULL, NULL);
  if (rc != 0) {
    tern__bsub_free(sub);
    return rc;
  }
  uv_mutex_lock(&cl->mu);
  sub->next = cl->subs;
  if (cl->subs != NULL) {
    cl->subs->prev = sub;
  }
  cl->subs = sub;
  if (cl->lost) {
    sub->ended = true;
  }
  uv_mutex_unlock(&cl->mu);
  *out = sub;
  return 0;
}

int tern_sub_next(tern_sub_t *sub, int timeout_ms, tern_msg_t **out) {
  tern_client_t *cl;
  uint64_t deadline = 0;
  tern_msg_t *m;
  bool wake = false;
  if (sub == NULL || out == NULL) {
    return TERN_EINVAL;
  }
  *out = NULL;
  cl = sub->cl;
  if (timeout_ms >= 0) {
    deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
  }
  uv_mutex_lock(&cl->mu);
  while (sub->count == 0 && !sub->ended) {
    if (deadline == 0) {
      uv_cond_wait(&sub->cond, &cl->mu);
    } else {
      uint64_t now = uv_hrtime();
      if (now >= deadline) {
        break;
      }
      uv_cond_timedwait(&sub->cond, &cl->mu, deadline - now);
    }
  }
  if (sub->count == 0) {
    uv_mutex_unlock(&cl->mu);
    return sub->ended ? TERN_ECLOSED : TERN_ETIMEOUT;
  }
  m = sub->qhead;
  sub->qhead = tern__msg_qnext(m);
  if (sub->qhead == NULL) {
    sub->qtail = NULL;
  }
  tern__msg_set_qnext(m, NULL);
  sub->count--;
  sub->bytes -= tern_msg_len(m);
  if (sub->paused && sub->count <= sub->max_msgs / 2 &&
      sub->bytes <= sub->max_bytes / 2) {
    unpause_locked(cl, sub);
    wake = cl->resume_wanted;
  }
  uv_mutex_unlock(&cl->mu);
  if (wake) {
    tern__client_wake(cl);
  }
  *out = m;
  return 0;
}

int tern_sub_unsubscribe(tern_sub_t *sub, uint64_t max_msgs) {
  tern_client_t *cl;
  tern__cmd_t *cmd;
  bool ended;
  if (sub == NULL) {
    return TERN_EINVAL;
  }
  cl = sub->cl;
  uv_mutex_lock(&cl->mu);
  ended = sub->ended || cl->lost;
  uv_mutex_unlock(&cl->mu);
  if (ended) {
    return TERN_ECLOSED;
  }
  cmd = calloc(1, sizeof(*cmd));
  if (cmd == NULL) {
    return TERN_ENOMEM;
  }
  cmd->kind = TERN__CMD_UNSUB;
  cmd->sub = sub;
  cmd->max_msgs = max_msgs;
  cmd->refs = 2;
  tern__cmd_enqueue(cl, cmd);
  return tern__cmd_wait(cl, cmd, -1, NULL, NULL);
}

void tern_sub_destroy(tern_sub_t *sub) {
  tern_client_t *cl;
  tern__cmd_t *cmd;
  if (sub == NULL) {
    return;
  }
  cl = sub->cl;
  cmd = calloc(1, sizeof(*cmd));
  if (cmd == NULL) {
    return; /* left for tern_client_close to free */
  }
  cmd->kind = TERN__CMD_SUB_DESTROY;
  cmd->sub = sub;
  cmd->refs = 2;
  tern__cmd_enqueue(cl, cmd);
  tern__cmd_wait(cl, cmd, -1, NULL, NULL);
  tern__bsub_free(sub);
}

size_t tern_sub_pending(tern_sub_t *sub) {
  size_t n;
  uv_mutex_lock(&sub->cl->mu);
  n = sub->count;
  uv_mutex_unlock(&sub->cl->mu);
  return n;
}

uint64_t tern_sub_dropped(tern_sub_t *sub) {
  uint64_t n;
  uv_mutex_lock(&sub->cl->mu);
  n = sub->dropped;
  uv_mutex_unlock(&sub->cl->mu);
  return n;
}

uint64_t tern_sub_sid(const tern_sub_t *sub) {
  return sub->sid;
}
