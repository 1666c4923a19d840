/*
 * tern pub: publishes one message, one message per line of stdin, or a
 * run of generated messages (--count/--size) for watching flow control.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

#include "args.h"
#include "commands.h"
#include "connect.h"

#define CMD "pub"
#define ACK_TIMEOUT_MS 10000
/* How long one publish waits for room before we say that we are waiting. */
#define STALL_NOTICE_MS 1000
#define MAX_GENERATED_SIZE (1u << 30)

enum {
  OPT_REPLY = CLI_OPT_FIRST_CMD,
  OPT_HEADER,
  OPT_ACK,
  OPT_COUNT,
  OPT_SIZE,
  OPT_RETAIN,
  OPT_TTL,
  OPT_RECONNECT,
  OPT_STREAM_ACK,
  OPT_MSG_ID,
};

static const cli_opt_t pub_opts[] = {
    CLI_COMMON_OPTS,
    {"reply", 0, true, OPT_REPLY, "TOPIC", "reply topic to send along"},
    {"header", 'H', true, OPT_HEADER, "KEY=VALUE", "add a header (repeatable)"},
    {"ack", 0, false, OPT_ACK, NULL,
     "wait for the broker's PUBACK and print how many got it"},
    {"count", 0, true, OPT_COUNT, "N",
     "publish N messages (MESSAGE each time, or generated ones)"},
    {"size", 0, true, OPT_SIZE, "BYTES",
     "size of each generated message (default 16)"},
    {"retain", 0, false, OPT_RETAIN, NULL,
     "keep as the topic's retained message (an empty MESSAGE deletes it)"},
    {"reconnect", 0, false, OPT_RECONNECT, NULL,
     "ride out broker restarts: reconnect, then go on publishing"},
    {"ttl", 0, true, OPT_TTL, "MS",
     "with --retain: the retained message expires after MS milliseconds"},
    {"stream-ack", 0, false, OPT_STREAM_ACK, NULL,
     "wait until a stream has stored each message; print its sequence"},
    {"msg-id", 0, true, OPT_MSG_ID, "ID",
     "with --stream-ack: de-duplication id (Tern-Msg-Id)"},
    {0},
};

static const cli_command_info_t pub_info = {
    .name = CMD,
    .usage = "pub [options] TOPIC [MESSAGE]",
    .summary =
        "Publishes MESSAGE to TOPIC. Without MESSAGE, publishes one message\n"
        "per line of standard input (without the newline). With --count or\n"
        "--size, publishes N messages of BYTES bytes; when the broker holds\n"
        "the publisher back (flow control), says so on stderr and waits.\n"
        "A publish the broker refuses (permission denied) ends the command\n"
        "with the broker's reason (exit 1).",
    .opts = pub_opts,
    .min_pos = 1,
    .max_pos = 2,
};

typedef struct pub_args {
  const char *reply;
  /* Headers: keys point into one copy per -H value (split at '='). */
  char **header_copies;
  const char **header_keys;
  const char **header_values;
  size_t header_count;
  bool ack;
  bool retain;
  uint64_t ttl_ms;
  uint64_t count;
  uint64_t size;
  bool generate; /* --count or --size given */
  bool size_set;
  bool reconnect;
  bool stream_ack;
  const char *msg_id;
} pub_args_t;

typedef struct pub_state {
  tern_client_t *cl;
  tern_pub_opts_t popts;
  bool ack;
  bool stream_ack;
  const char *msg_id;
  uint64_t sent;
  int refused; /* the broker refused a publish (cli_watch) */
} pub_state_t;

static int add_header(const cli_command_info_t *info, pub_args_t *a,
                      const char *kv) {
  char *copy;
  char *eq = strchr(kv, '=');
  if (eq == NULL || eq == kv) {
    return cli_usage_error(info, "-H expects KEY=VALUE, not '%s'", kv);
  }
  copy = strdup(kv);
  if (copy == NULL) {
    return cli_usage_error(info, "out of memory");
  }
  copy[eq - kv] = '\0';
  a->header_copies[a->header_count] = copy;
  a->header_keys[a->header_count] = copy;
  a->header_values[a->header_count] = copy + (eq - kv) + 1;
  a->header_count++;
  return 0;
}

static int on_opt(const cli_command_info_t *info, int id, const char *value,
                  void *ud) {
  pub_args_t *a = ud;
  switch (id) {
  case OPT_REPLY:
    a->reply = value;
    return 0;
  case OPT_HEADER:
    return add_header(info, a, value);
  case OPT_ACK:
    a->ack = true;
    return 0;
  case OPT_RETAIN:
    a->retain = true;
    return 0;
  case OPT_RECONNECT:
    a->reconnect = true;
    return 0;
  case OPT_STREAM_ACK:
    a->stream_ack = true;
    return 0;
  case OPT_MSG_ID:
    a->msg_id = value;
    return 0;
  case OPT_TTL:
    return cli_parse_u64(info, "--ttl", value, 1, UINT64_MAX, &a->ttl_ms);
  case OPT_COUNT:
    a->generate = true;
    return cli_parse_u64(info, "--count", value, 1, UINT64_MAX, &a->count);
  case OPT_SIZE:
    a->generate = true;
    a->size_set = true;
    return cli_parse_u64(info, "--size", value, 0, MAX_GENERATED_SIZE,
                         &a->size);
  default:
    return cli_usage_error(info, "unhandled option");
  }
}

static void pub_args_free(pub_args_t *a) {
  for (size_t i = 0; i < a->header_count; i++) {
    free(a->header_copies[i]);
  }
  free(a->header_copies);
  free(a->header_keys);
  free(a->header_values);
}

/* Says why a publish failed, with the broker's limit for TERN_ETOOLARGE. */
static void report_publish_error(pub_state_t *st, const char *topic, int rc) {
  if (rc == TERN_ETOOLARGE) {
    cli_error(CMD,
              "message #%llu too large: the broker takes at "
              "most %llu bytes",
              (unsigned long long)st->sent + 1,
              (unsigned long long)tern_client_max_payload(st->cl));
  } else if (rc == TERN_ETOPIC) {
    cli_error(CMD, "invalid topic '%s'", topic);
  } else if (rc == TERN_ECLOSED && cli_lost_reason() != 0) {
    cli_report_lost(CMD, st->cl, NULL, rc);
  } else {
    cli_report(CMD, st->cl, "publish failed", rc);
  }
}

/*
 * Publishes one message. A full outbound buffer is the broker's flow
 * control reaching us, not an error: we wait (forever, like a blocked
 * writer on a pipe) and say so once per stall on stderr. Returns 0 or the
 * error, already reported.
 */
static int publish_one(pub_state_t *st, const char *topic, const void *data,
                       size_t len) {
  bool stalled = false;
  int rc;
  for (;;) {
    if (st->stream_ack) {
      uint64_t seq = 0;
      bool dup = false;
      rc = tern_client_publish_stream(st->cl, topic, data, len, st->msg_id,
                                      ACK_TIMEOUT_MS, &seq, &dup);
      if (rc == 0) {
        printf("stored as sequence %llu%s\n", (unsigned long long)seq,
               dup ? " (duplicate)" : "");
        fflush(stdout);
      } else if (rc == TERN_ENORESPONDERS) {
        cli_error(CMD, "no stream captures '%s'", topic);
        return rc;
      } else if (rc == TERN_EFULL) {
        cli_error(CMD, "refused: %s", tern_strerror(rc));
        return rc;
      }
    } else if (st->ack) {
      uint64_t receivers = 0;
      rc = tern_client_publish_ack(st->cl, topic, data, len, &st->popts,
                                   ACK_TIMEOUT_MS, &receivers);
      if (rc == 0) {
        printf("delivered to %llu subscriber%s\n",
               (unsigned long long)receivers, receivers == 1 ? "" : "s");
        fflush(stdout);
      }
    } else {
      rc = tern_client_publish(st->cl, topic, data, len, &st->popts);
    }
    if (rc != TERN_EWOULDBLOCK) {
      break;
    }
    if (!stalled) {
      cli_error(CMD,
                "outbound buffer full after %llu messages: waiting for "
                "the broker (flow control)",
                (unsigned long long)st->sent);
      stalled = true;
    }
  }
  if (rc == TERN_ETIMEOUT && (st->ack || st->stream_ack)) {
    cli_error(CMD, "no acknowledgement from the broker within %d ms",
              ACK_TIMEOUT_MS);
    return rc;
  }
  if (rc != 0) {
    report_publish_error(st, topic, rc);
    return rc;
  }
  st->sent++;
  /* A refusal of a plain publish comes later, on the background thread:
   * stop at the first one (run() reports it). */
  st->refused = cli_watch_refused();
  return st->refused;
}

/* One message per line of stdin; a last line without newline counts. */
static int publish_lines(pub_state_t *st, const char *topic) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int rc = 0;
  while ((n = getline(&line, &cap, stdin)) >= 0) {
    if (n > 0 && line[n - 1] == '\n') {
      n--;
    }
    rc = publish_one(st, topic, line, (size_t)n);
    if (rc != 0) {
      break;
    }
  }
  if (rc == 0 && ferror(stdin)) {
    cli_error(CMD, "reading stdin: %s", strerror(errno));
    rc = -1;
  }
  free(line);
  return rc;
}

/*
 * Writes message seq's generated payload into buf: "#seq " then 'x' up to
 * size bytes (cut short when size is smaller), readable in `tern sub`. buf
 * already holds 'x' after the head of the previous message, whose head is
 * never longer (seq only grows), so only the head is written.
 */
static void fill_generated(char *buf, size_t size, uint64_t seq) {
  char head[24];
  size_t hn = sizeof(head);
  head[--hn] = ' ';
  do {
    head[--hn] = (char)('0' + seq % 10);
    seq /= 10;
  } while (seq > 0);
  head[--hn] = '#';
  memcpy(buf, head + hn, sizeof(head) - hn < size ? sizeof(head) - hn : size);
}

static int publish_generated(pub_state_t *st, const char *topic,
                             const char *message, uint64_t count,
                             uint64_t size) {
  char *buf = NULL;
  int rc = 0;
  if (message == NULL) {
    buf = malloc(size > 0 ? size : 1);
    if (buf == NULL) {
      cli_error(CMD, "out of memory for %llu-byte messages",
                (unsigned long long)size);
      return TERN_ENOMEM;
    }
    memset(buf, 'x', size);
  }
  for (uint64_t i = 1; i <= count && rc == 0; i++) {
    if (message != NULL) {
      rc = publish_one(st, topic, message, strlen(message));
    } else {
      fill_generated(buf, size, i);
      rc = publish_one(st, topic, buf, size);
    }
  }
  free(buf);
  return rc;
}

static int run(const pub_args_t *a, const cli_common_t *common,
               const char *topic, const char *message) {
  tern_options_t o;
  pub_state_t st;
  int rc;
  memset(&st, 0, sizeof(st));
  if (a->ttl_ms != 0 && !a->retain) {
    cli_usage_error(&pub_info, "--ttl only applies with --retain");
    return CLI_EXIT_USAGE;
  }
  if (cli_options(&pub_info, common, &o) != 0) {
    return CLI_EXIT_USAGE;
  }
  o.publish_timeout_ms = STALL_NOTICE_MS;
  if (a->reconnect) {
    o.reconnect = true;
    o.reconnect_max_attempts = -1; /* until stopped */
  }
  cli_watch(&o, CMD, "", true);
  if (cli_connect(CMD, &o, &st.cl) != 0) {
    return CLI_EXIT_FAIL;
  }
  tern_pub_opts_init(&st.popts);
  st.popts.reply = a->reply;
  st.popts.header_keys = a->header_keys;
  st.popts.header_values = a->header_values;
  st.popts.header_count = a->header_count;
  st.popts.retain = a->retain;
  st.popts.ttl_ms = a->ttl_ms;
  st.ack = a->ack;
  st.stream_ack = a->stream_ack;
  st.msg_id = a->msg_id;
  if (a->msg_id != NULL && !a->stream_ack) {
    cli_usage_error(&pub_info, "--msg-id only applies with --stream-ack");
    tern_client_close(st.cl);
    return CLI_EXIT_USAGE;
  }
  if (a->generate) {
    rc = publish_generated(&st, topic, message, a->count, a->size);
  } else if (message != NULL) {
    rc = publish_one(&st, topic, message, strlen(message));
  } else {
    rc = publish_lines(&st, topic);
  }
  if (rc == 0 || st.refused != 0) {
    /* PING/PONG: the broker has processed every PUB before we exit, and
     * the flush returns a refusal of a plain publish (permission denied). */
    int frc = tern_client_flush(st.cl, -1);
    if (frc == 0 && st.refused != 0) {
      frc = st.refused;
    }
    if (frc != 0) {
      cli_report(CMD, st.cl,
                 cli_is_refusal(frc) ? "refused by the broker" : "flush failed",
                 frc);
      rc = frc;
    }
  }
  if (rc == 0 && a->generate) {
    fprintf(stderr, "tern pub: published %llu messages\n",
            (unsigned long long)st.sent);
  }
  tern_client_close(st.cl);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_cmd_pub(int argc, char **argv, cli_common_t *common) {
  pub_args_t a;
  const char *pos[2] = {NULL, NULL};
  size_t npos = 0;
  int status;
  memset(&a, 0, sizeof(a));
  a.count = 1;
  a.size = 16;
  /* At most one header per remaining word. */
  a.header_copies = calloc((size_t)argc + 1, sizeof(char *));
  a.header_keys = calloc((size_t)argc + 1, sizeof(char *));
  a.header_values = calloc((size_t)argc + 1, sizeof(char *));
  if (a.header_copies == NULL || a.header_keys == NULL ||
      a.header_values == NULL) {
    pub_args_free(&a);
    cli_error(CMD, "out of memory");
    return CLI_EXIT_FAIL;
  }
  if (cli_args_parse(&pub_info, argc, argv, common, on_opt, &a, pos, &npos) !=
      0) {
    status = CLI_EXIT_USAGE;
  } else if (common->help) {
    cli_print_help(stdout, &pub_info);
    status = CLI_EXIT_OK;
  } else if (a.size_set && pos[1] != NULL) {
    cli_usage_error(&pub_info, "--size generates the messages: give no "
                               "MESSAGE with it");
    status = CLI_EXIT_USAGE;
  } else {
    status = run(&a, common, pos[0], pos[1]);
  }
  pub_args_free(&a);
  return status;
}
