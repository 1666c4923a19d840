/*
 * The configuration file (INI, parsed by Debian's libinih) and the
 * precedence of the sources (see config_file.h).
 *
 * libinih calls its handler without a line number, so the file is read
 * through our own line reader, which counts lines: the handler then knows
 * the line it is looking at. The reader also refuses lines longer than
 * inih's buffer, which inih would otherwise split silently.
 */
#include "server/config_file.h"

#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

#include "session/auth.h"
#include "stream/stream_def.h"

typedef struct file_ctx {
  config_t *cfg;
  const char *path;
  FILE *fp;
  int line;      /* the line the parser is on */
  int err_line;  /* first error found by us; 0: none */
  char err[512]; /* its text */
} file_ctx_t;

static void note_error(file_ctx_t *ctx, const char *msg) {
  if (ctx->err_line == 0) {
    ctx->err_line = ctx->line;
    snprintf(ctx->err, sizeof ctx->err, "%s", msg);
  }
}

/* inih's fgets: one line per call, counted. */
static char *read_line(char *str, int num, void *stream) {
  file_ctx_t *ctx = stream;
  if (fgets(str, num, ctx->fp) == NULL)
    return NULL;
  ctx->line++;
  size_t len = strlen(str);
  if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(ctx->fp)) {
    note_error(ctx, "line too long");
    int ch;
    while ((ch = fgetc(ctx->fp)) != EOF && ch != '\n')
      ;
  }
  return str;
}

static int on_entry(void *user, const char *section, const char *name,
                    const char *value) {
  file_ctx_t *ctx = user;
  char why[400];
  if (section[0] == '\0' || strcmp(section, "server") == 0) {
    bool known = false;
    if (!config_key_in_file(name)) {
      snprintf(why, sizeof why, "unknown option '%s'", name);
      note_error(ctx, why);
      return 0;
    }
    if (config_set(ctx->cfg, name, value, &known, why, sizeof why) != 0) {
      note_error(ctx, why);
      return 0;
    }
    return 1;
  }
  if (strcmp(section, "cluster") == 0) {
    /* [cluster] port = 7422 is cluster_port = 7422; routes, route_* and
     * client_advertise keep their names. */
    char key[80];
    bool known = false;
    snprintf(key, sizeof key, "cluster_%s", name);
    if (!config_key_in_file(key)) {
      snprintf(key, sizeof key, "%s", name);
      if (!config_key_in_file(key) ||
          (strcmp(key, "routes") != 0 && strncmp(key, "route_", 6) != 0 &&
           strcmp(key, "client_advertise") != 0 &&
           strncmp(key, "cluster_", 8) != 0)) {
        snprintf(why, sizeof why, "unknown option '%s' in [cluster]", name);
        note_error(ctx, why);
        return 0;
      }
    }
    if (config_set(ctx->cfg, key, value, &known, why, sizeof why) != 0) {
      note_error(ctx, why);
      return 0;
    }
    return 1;
  }
  if (strncmp(section, "user ", 5) == 0) {
    if (ctx->cfg->users == NULL && auth_db_create(&ctx->cfg->users) != 0) {
      note_error(ctx, "out of memory");
      return 0;
    }
    const char *uname = section + 5;
    while (*uname == ' ')
      uname++;
    if (auth_db_set(ctx->cfg->users, uname, name, value, why, sizeof why) !=
        0) {
      note_error(ctx, why);
      return 0;
    }
    return 1;
  }
  if (strncmp(section, "stream ", 7) == 0) {
    const char *sname = section + 7;
    while (*sname == ' ')
      sname++;
    if (!stream_name_valid(sname, strlen(sname))) {
      snprintf(why, sizeof why,
               "invalid stream name '%s' (1 to 64 of A-Z a-z 0-9 _ -)", sname);
      note_error(ctx, why);
      return 0;
    }
    stream_def_t *d = stream_defs_get(&ctx->cfg->streams, sname);
    if (d == NULL || stream_def_set(d, name, value, why, sizeof why) != 0) {
      note_error(ctx, d == NULL ? "out of memory" : why);
      return 0;
    }
    return 1;
  }
  snprintf(why, sizeof why,
           "unknown section [%s] (expected [server], [cluster], [user NAME] "
           "or [stream NAME])",
           section);
  note_error(ctx, why);
  return 0;
}

int config_read_file(config_t *cfg, const char *path, char *err,
                     size_t errlen) {
  file_ctx_t ctx = {.cfg = cfg, .path = path};
  ctx.fp = fopen(path, "r");
  if (ctx.fp == NULL) {
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  int rc = ini_parse_stream(read_line, &ctx, on_entry, &ctx);
  fclose(ctx.fp);
  if (rc == 0 && ctx.err_line == 0) {
    char why[400];
    if (auth_db_validate(cfg->users, why, sizeof why) != 0) {
      snprintf(err, errlen, "%s: %s", path, why);
      return -1;
    }
    if (stream_defs_validate(cfg->streams, why, sizeof why) != 0) {
      snprintf(err, errlen, "%s: %s", path, why);
      return -1;
    }
    return 0;
  }
  if (rc < 0) {
    snprintf(err, errlen, "%s: cannot read (out of memory)", path);
  } else if (ctx.err_line != 0 && (rc == 0 || ctx.err_line <= rc)) {
    snprintf(err, errlen, "%s:%d: %s", path, ctx.err_line, ctx.err);
  } else {
    /* inih found it without asking us: a line that is neither a section,
     * a key = value, nor a comment. */
    snprintf(err, errlen,
             "%s:%d: syntax error (expected [section], key = value or a "
             "comment)",
             path, rc);
  }
  return -1;
}

/* The TLS options agree with each other; with load, the files are read
 * too (--check-config; the server reads them when it starts or reloads). */
static int check_tls(const config_t *cfg, bool load, char *err, size_t cap) {
  if (cfg->tls_cert[0] == '\0') {
    if (cfg->tls_key[0] || cfg->tls_ca[0] || cfg->tls_verify ||
        cfg->tls_required) {
      snprintf(err, cap,
               "tls_key, tls_ca, tls_verify and tls_required need "
               "tls_cert");
      return -1;
    }
    return 0;
  }
  if (cfg->tls_key[0] == '\0') {
    snprintf(err, cap, "tls_cert needs tls_key");
    return -1;
  }
  if (cfg->tls_verify && cfg->tls_ca[0] == '\0') {
    snprintf(err, cap,
             "tls_verify needs tls_ca (the CAs that sign client "
             "certificates)");
    return -1;
  }
  if (!load)
    return 0;
  tls_listener_t *l;
  char why[512];
  tls_listener_opts_t o = config_tls_opts(cfg);
  if (tls_listener_create(&l, &o, why, sizeof why) != 0) {
    snprintf(err, cap, "%s", why);
    return -1;
  }
  tls_listener_destroy(l);
  return 0;
}

/* Route TLS: all three files or none, on a cluster; with load, they are
 * read too. */
static int check_route_tls(const config_t *cfg, bool load, char *err,
                           size_t cap) {
  int n = (cfg->cluster_tls_cert[0] != '\0') +
          (cfg->cluster_tls_key[0] != '\0') + (cfg->cluster_tls_ca[0] != '\0');
  if (n == 0)
    return 0;
  if (n != 3) {
    snprintf(err, cap,
             "route TLS needs cluster_tls_cert, cluster_tls_key and "
             "cluster_tls_ca together");
    return -1;
  }
  if (!load)
    return 0;
  tls_listener_t *l;
  char why[512];
  tls_listener_opts_t o = {.cert_file = cfg->cluster_tls_cert,
                           .key_file = cfg->cluster_tls_key,
                           .ca_file = cfg->cluster_tls_ca,
                           .verify = true,
                           .required = true};
  if (tls_listener_create(&l, &o, why, sizeof why) != 0) {
    snprintf(err, cap, "route TLS: %s", why);
    return -1;
  }
  tls_listener_destroy(l);
  return 0;
}

int config_load(config_t *cfg, int argc, char **argv, FILE *out, FILE *err) {
  /* First pass over the flags: the mode, the file's name, flag errors. */
  config_t probe;
  config_defaults(&probe);
  int mode = config_parse(&probe, argc, argv, out, err);
  config_free(&probe);
  config_defaults(cfg);
  if (mode == CONFIG_EXIT_OK || mode == CONFIG_EXIT_USAGE)
    return mode;
  char why[1200];
  const char *path = probe.config_file;
  if (*path == '\0') {
    const char *env = getenv("TERN_CONFIG_FILE");
    path = env != NULL ? env : "";
  }
  if (*path != '\0' && config_read_file(cfg, path, why, sizeof why) != 0) {
    fprintf(err, "ternd: %s\n", why);
    return CONFIG_EXIT_USAGE;
  }
  if (config_apply_env(cfg, why, sizeof why) != 0) {
    fprintf(err, "ternd: %s\n", why);
    return CONFIG_EXIT_USAGE;
  }
  /* The flags parsed once already: this pass cannot fail. */
  mode = config_parse(cfg, argc, argv, out, err);
  snprintf(cfg->config_file, sizeof cfg->config_file, "%s", path);
  if (check_tls(cfg, mode == CONFIG_CHECK, why, sizeof why) != 0 ||
      check_route_tls(cfg, mode == CONFIG_CHECK, why, sizeof why) != 0) {
    fprintf(err, "ternd: %s\n", why);
    return CONFIG_EXIT_USAGE;
  }
  /* Secure by default: checked on the whole configuration, for a start,
   * --check-config and a reload alike. */
  if ((mode == CONFIG_RUN || mode == CONFIG_CHECK) &&
      config_check_exposure(cfg, why, sizeof why) != 0) {
    fprintf(err, "ternd: %s\n", why);
    return CONFIG_EXIT_USAGE;
  }
  return mode;
}
