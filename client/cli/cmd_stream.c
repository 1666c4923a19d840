/*
 * tern stream add|ls|info|rm: durable streams (protocol/PROTOCOL.md
 * section 8) through libtern's stream API.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

#include "args.h"
#include "commands.h"
#include "connect.h"
#include "tern_proto/mp.h"

#define CMD "stream"
#define TIMEOUT_MS 10000

enum {
  OPT_TOPICS = CLI_OPT_FIRST_CMD,
  OPT_MAX_MSGS,
  OPT_MAX_BYTES,
  OPT_MAX_AGE,
  OPT_MAX_PER_TOPIC,
  OPT_DISCARD,
  OPT_SYNC,
  OPT_SYNC_INTERVAL,
  OPT_DEDUP,
};

static const cli_opt_t stream_opts[] = {
    CLI_COMMON_OPTS,
    {"topics", 0, true, OPT_TOPICS, "P1,P2",
     "add: topic patterns the stream captures"},
    {"max-msgs", 0, true, OPT_MAX_MSGS, "N", "add: most messages kept"},
    {"max-bytes", 0, true, OPT_MAX_BYTES, "BYTES", "add: most bytes kept"},
    {"max-age-ms", 0, true, OPT_MAX_AGE, "MS", "add: oldest message kept"},
    {"max-msgs-per-topic", 0, true, OPT_MAX_PER_TOPIC, "N",
     "add: messages kept per topic (1: last value)"},
    {"discard", 0, true, OPT_DISCARD, "old|new",
     "add: when full, drop the oldest (default) or refuse new ones"},
    {"sync", 0, true, OPT_SYNC, "always|interval|never",
     "add: fsync before each ack (default), every interval, or never"},
    {"sync-interval-ms", 0, true, OPT_SYNC_INTERVAL, "MS",
     "add: with --sync interval"},
    {"dedup-window-ms", 0, true, OPT_DEDUP, "MS",
     "add: how long a --msg-id is remembered"},
    {0},
};

static const cli_command_info_t stream_info = {
    .name = CMD,
    .usage = "stream [options] add NAME --topics P1,P2 | ls | info NAME | "
             "rm NAME",
    .summary = "Manages durable streams: add (or change) one, list them,\n"
               "show one, remove one (with its messages and consumers).",
    .opts = stream_opts,
    .min_pos = 1,
    .max_pos = 2,
};

typedef struct stream_args {
  tern_stream_config_t cfg;
  char *topics_copy;
  const char *topics[64];
} stream_args_t;

static int on_opt(const cli_command_info_t *info, int id, const char *value,
                  void *ud) {
  stream_args_t *a = ud;
  tern_stream_config_t *c = &a->cfg;
  switch (id) {
  case OPT_TOPICS: {
    free(a->topics_copy);
    a->topics_copy = strdup(value);
    if (a->topics_copy == NULL)
      return cli_usage_error(info, "out of memory");
    c->topic_count = 0;
    for (char *save = NULL, *t = strtok_r(a->topics_copy, ", ", &save);
         t != NULL && c->topic_count < 64; t = strtok_r(NULL, ", ", &save))
      a->topics[c->topic_count++] = t;
    c->topics = a->topics;
    return 0;
  }
  case OPT_MAX_MSGS:
    return cli_parse_u64(info, "--max-msgs", value, 0, UINT64_MAX,
                         &c->max_msgs);
  case OPT_MAX_BYTES:
    return cli_parse_u64(info, "--max-bytes", value, 0, UINT64_MAX,
                         &c->max_bytes);
  case OPT_MAX_AGE:
    return cli_parse_u64(info, "--max-age-ms", value, 0, UINT64_MAX,
                         &c->max_age_ms);
  case OPT_MAX_PER_TOPIC:
    return cli_parse_u64(info, "--max-msgs-per-topic", value, 0, UINT64_MAX,
                         &c->max_msgs_per_topic);
  case OPT_SYNC_INTERVAL:
    return cli_parse_u64(info, "--sync-interval-ms", value, 1, UINT32_MAX,
                         &c->sync_interval_ms);
  case OPT_DEDUP:
    return cli_parse_u64(info, "--dedup-window-ms", value, 0, UINT64_MAX,
                         &c->dedup_window_ms);
  case OPT_DISCARD:
    if (strcmp(value, "old") == 0)
      c->discard = TERN_DISCARD_OLD;
    else if (strcmp(value, "new") == 0)
      c->discard = TERN_DISCARD_NEW;
    else
      return cli_usage_error(info, "--discard is old or new, not '%s'", value);
    return 0;
  case OPT_SYNC:
    if (strcmp(value, "always") == 0)
      c->sync = TERN_SYNC_ALWAYS;
    else if (strcmp(value, "interval") == 0)
      c->sync = TERN_SYNC_INTERVAL;
    else if (strcmp(value, "never") == 0)
      c->sync = TERN_SYNC_NEVER;
    else
      return cli_usage_error(info, "--sync is always, interval or never");
    return 0;
  default:
    return cli_usage_error(info, "unhandled option");
  }
}

/* Prints one "stream" info map (config, state) as one line. */
static void print_info(tp_mp_cur_t *c) {
  uint32_t n;
  if (tp_mp_read_map(c, &n) != 0)
    return;
  for (uint32_t i = 0; i < n; i++) {
    tp_str_t k;
    uint32_t m;
    if (tp_mp_read_str(c, &k) != 0 || tp_mp_read_map(c, &m) != 0)
      return;
    for (uint32_t j = 0; j < m; j++) {
      tp_str_t kk, v;
      uint64_t u;
      uint32_t an;
      if (tp_mp_read_str(c, &kk) != 0)
        return;
      printf("%s%.*s=", i + j ? " " : "", (int)kk.len, kk.ptr);
      switch (tp_mp_peek(c)) {
      case TP_MP_T_STR:
        tp_mp_read_str(c, &v);
        printf("%.*s", (int)v.len, v.ptr);
        break;
      case TP_MP_T_UINT:
        tp_mp_read_uint(c, &u);
        printf("%llu", (unsigned long long)u);
        break;
      case TP_MP_T_ARRAY:
        tp_mp_read_array(c, &an);
        for (uint32_t x = 0; x < an; x++) {
          if (tp_mp_read_str(c, &v) != 0)
            return;
          printf("%s%.*s", x ? "," : "", (int)v.len, v.ptr);
        }
        break;
      default:
        if (tp_mp_skip(c) != 0)
          return;
        printf("?");
      }
    }
  }
  printf("\n");
}

static int run(stream_args_t *a, const cli_common_t *common, const char *verb,
               const char *name) {
  tern_options_t o;
  tern_client_t *cl = NULL;
  char err[256] = "";
  char api[160];
  int rc;
  bool needs_name = strcmp(verb, "ls") != 0;
  if ((needs_name && name == NULL) || (!needs_name && name != NULL)) {
    cli_usage_error(&stream_info, "%s",
                    needs_name ? "missing NAME" : "ls takes no NAME");
    return CLI_EXIT_USAGE;
  }
  if (strcmp(verb, "add") == 0 && a->cfg.topic_count == 0) {
    cli_usage_error(&stream_info, "add needs --topics");
    return CLI_EXIT_USAGE;
  }
  if (cli_options(&stream_info, common, &o) != 0)
    return CLI_EXIT_USAGE;
  if (cli_connect(CMD, &o, &cl) != 0)
    return CLI_EXIT_FAIL;
  tern_msg_t *m = NULL;
  if (strcmp(verb, "add") == 0) {
    rc = tern_client_stream_add(cl, name, &a->cfg, TIMEOUT_MS, err, sizeof err);
    if (rc == TERN_EEXISTS)
      rc = tern_client_stream_update(cl, name, &a->cfg, TIMEOUT_MS, err,
                                     sizeof err);
    if (rc == 0)
      snprintf(api, sizeof api, "STREAM.INFO.%s", name);
  } else if (strcmp(verb, "ls") == 0) {
    rc = 0;
    snprintf(api, sizeof api, "STREAM.LIST");
  } else if (strcmp(verb, "info") == 0) {
    rc = 0;
    snprintf(api, sizeof api, "STREAM.INFO.%s", name);
  } else if (strcmp(verb, "rm") == 0) {
    rc = tern_client_stream_delete(cl, name, TIMEOUT_MS, err, sizeof err);
    if (rc == 0)
      printf("stream %s removed\n", name);
    api[0] = '\0';
  } else {
    tern_client_close(cl);
    cli_usage_error(&stream_info, "unknown stream command '%s'", verb);
    return CLI_EXIT_USAGE;
  }
  if (rc == 0 && api[0] != '\0')
    rc = tern_client_stream_request(cl, api, NULL, 0, TIMEOUT_MS, &m, err,
                                    sizeof err);
  if (rc == 0 && m != NULL) {
    tp_mp_cur_t c;
    uint32_t n, an;
    tp_str_t k;
    tp_mp_cur_init(&c, tern_msg_data(m), tern_msg_len(m));
    if (tp_mp_read_map(&c, &n) == 0 && n == 1 && tp_mp_read_str(&c, &k) == 0) {
      if (tp_str_is(k, "streams") && tp_mp_read_array(&c, &an) == 0) {
        for (uint32_t i = 0; i < an; i++)
          print_info(&c);
      } else {
        print_info(&c);
      }
    }
    tern_msg_release(m);
  }
  if (rc == TERN_ENORESPONDERS)
    cli_error(CMD, "the broker runs without streams (start it with "
                   "--data-dir)");
  else if (rc != 0)
    cli_error(CMD, "%s: %s", tern_strerror(rc), err[0] ? err : "");
  tern_client_close(cl);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_cmd_stream(int argc, char **argv, cli_common_t *common) {
  stream_args_t a;
  const char *pos[2] = {NULL, NULL};
  size_t npos = 0;
  memset(&a, 0, sizeof a);
  tern_stream_config_init(&a.cfg);
  int status;
  if (cli_args_parse(&stream_info, argc, argv, common, on_opt, &a, pos,
                     &npos) != 0)
    status = CLI_EXIT_USAGE;
  else if (common->help) {
    cli_print_help(stdout, &stream_info);
    status = CLI_EXIT_OK;
  } else
    status = run(&a, common, pos[0], pos[1]);
  free(a.topics_copy);
  return status;
}
