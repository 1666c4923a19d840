/*
 * async: the asynchronous API on the application's own libuv loop.
 *
 *   async [URL] [TOPIC] [COUNT]
 *
 * Defaults: 127.0.0.1:7421, "demo.async", 3. Connects, subscribes to TOPIC,
 * waits for a flush (so the broker has registered the subscription), then
 * publishes COUNT messages to it and prints each one as it comes back. Every
 * callback runs inside uv_run on this thread; nothing blocks. It ends by
 * closing every handle, so uv_loop_close succeeds: the shape an application
 * that already runs libuv would embed.
 */
#define _POSIX_C_SOURCE 200809L /* uv.h needs POSIX types under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>
#include <uv.h>

#define DEADLINE_MS 10000

typedef struct app {
  uv_loop_t loop;
  uv_timer_t deadline; /* gives up if the broker stops answering */
  uv_signal_t sigint;
  tern_conn_t *conn;
  const char *topic;
  long count;
  long sent;
  long received;
  int status; /* process exit status */
} app_t;

static void publish_some(app_t *app);

/* The connection is gone: the app's own handles are all that keep the loop
 * alive, so closing them lets uv_run return. */
static void on_conn_closed(tern_conn_t *conn, void *cb_data) {
  app_t *app = cb_data;
  (void)conn;
  uv_close((uv_handle_t *)&app->deadline, NULL);
  uv_close((uv_handle_t *)&app->sigint, NULL);
}

static void finish(app_t *app, int status) {
  if (app->conn == NULL) {
    return;
  }
  app->status = status;
  tern_conn_close(app->conn, on_conn_closed, app);
  app->conn = NULL;
}

static void on_message(tern_asub_t *sub, tern_msg_t *msg, void *cb_data) {
  app_t *app = cb_data;
  (void)sub;
  /* msg is borrowed for this call: print it, do not keep it. */
  printf("%s: %.*s\n", tern_msg_topic(msg), (int)tern_msg_len(msg),
         (const char *)tern_msg_data(msg));
  if (++app->received == app->count) {
    finish(app, 0);
  }
}

/* Publishes until COUNT or until the outbound buffer is full; in the latter
 * case the drain callback resumes. Backpressure is reported, never hidden. */
static void publish_some(app_t *app) {
  while (app->conn != NULL && app->sent < app->count) {
    char text[64];
    int n = snprintf(text, sizeof text, "message %ld of %ld", app->sent + 1,
                     app->count);
    int rc = tern_conn_publish(app->conn, app->topic, text, (size_t)n, NULL);
    if (rc == TERN_EWOULDBLOCK) {
      return;
    }
    if (rc != 0) {
      fprintf(stderr, "async: publish: %s\n", tern_strerror(rc));
      finish(app, 1);
      return;
    }
    app->sent++;
  }
}

static void on_drain(tern_conn_t *conn, void *cb_data) {
  (void)conn;
  publish_some(cb_data);
}

static void on_flushed(tern_conn_t *conn, int status, void *cb_data) {
  app_t *app = cb_data;
  (void)conn;
  if (status != 0) {
    fprintf(stderr, "async: flush: %s\n", tern_strerror(status));
    finish(app, 1);
    return;
  }
  publish_some(app);
}

static void on_connected(tern_conn_t *conn, int status, void *cb_data) {
  app_t *app = cb_data;
  int rc;
  if (status != 0) {
    fprintf(stderr, "async: connect: %s\n", tern_strerror(status));
    finish(app, 1); /* a failed connection must still be closed */
    return;
  }
  rc = tern_conn_subscribe(conn, NULL, app->topic, NULL, on_message, app);
  if (rc == 0) {
    rc = tern_conn_flush(conn, DEADLINE_MS, on_flushed, app);
  }
  if (rc != 0) {
    fprintf(stderr, "async: subscribe: %s\n", tern_strerror(rc));
    finish(app, 1);
  }
}

static void on_disconnect(tern_conn_t *conn, int reason, void *cb_data) {
  (void)conn;
  fprintf(stderr, "async: connection lost: %s\n", tern_strerror(reason));
  finish(cb_data, 1);
}

static void on_deadline(uv_timer_t *t) {
  app_t *app = t->data;
  fprintf(stderr, "async: %ld of %ld messages after %d ms, giving up\n",
          app->received, app->count, DEADLINE_MS);
  finish(app, 1);
}

static void on_sigint(uv_signal_t *s, int signum) {
  (void)signum;
  finish(s->data, 130);
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "127.0.0.1:7421";
  app_t app = {.topic = argc > 2 ? argv[2] : "demo.async",
               .count = argc > 3 ? strtol(argv[3], NULL, 10) : 3};
  tern_options_t opts;
  int rc;

  if (app.count < 1) {
    fprintf(stderr, "async: COUNT must be at least 1\n");
    return 2;
  }
  tern_options_init(&opts);
  if (tern_options_set_url(&opts, url) != 0) {
    fprintf(stderr, "async: bad URL '%s'\n", url);
    return 2;
  }
  opts.name = "example-async";
  opts.drain_cb = on_drain;
  opts.disconnect_cb = on_disconnect;
  opts.cb_data = &app;

  uv_loop_init(&app.loop);
  uv_timer_init(&app.loop, &app.deadline);
  app.deadline.data = &app;
  uv_timer_start(&app.deadline, on_deadline, DEADLINE_MS, 0);
  uv_signal_init(&app.loop, &app.sigint);
  app.sigint.data = &app;
  uv_signal_start_oneshot(&app.sigint, on_sigint, SIGINT);

  rc = tern_conn_connect(&app.conn, &app.loop, &opts, on_connected, &app);
  if (rc != 0) {
    /* No connection exists and on_connected never fires. */
    fprintf(stderr, "async: connect: %s\n", tern_strerror(rc));
    uv_close((uv_handle_t *)&app.deadline, NULL);
    uv_close((uv_handle_t *)&app.sigint, NULL);
    app.status = 1;
  }
  uv_run(&app.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&app.loop) != 0) {
    fprintf(stderr, "async: a handle was left open\n");
    return 1;
  }
  return app.status;
}
