/*
 * Option defaults, URL parsing, and the connection's private copy of the
 * options (so the caller may free theirs once connect returns).
 */
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "options_abi.h"
#include "tern/options.h"

void tern__options_defaults(tern_options_t *o) {
  memset(o, 0, sizeof(*o));
  o->struct_size = sizeof(*o);
  strcpy(o->host, TERN_DEFAULT_HOST);
  o->port = TERN_DEFAULT_PORT;
  o->echo = true;
  o->verbose = false;
  o->connect_timeout_ms = 5000;
  o->outbound_limit = 8u * 1024u * 1024u;
  o->inbox_prefix = "_INBOX";
  o->max_inflight = 65536;
  o->publish_timeout_ms = 5000;
  o->sub_queue_msgs = 65536;
  o->sub_queue_bytes = 64u * 1024u * 1024u;
  o->reconnect = true;
  o->reconnect_initial_ms = 100;
  o->reconnect_max_ms = 5000;
  o->reconnect_max_attempts = 60;
  o->reconnect_jitter = 0.2;
  o->breaker_threshold = 0;
  o->breaker_cooldown_ms = 5000;
  o->breaker_max_topics = 1024;
}

/* Parses a decimal port 1..65535 spanning exactly [p, end). */
static int parse_port(const char *p, const char *end, int *port) {
  long v = 0;
  if (p == end || end - p > 5) {
    return TERN_EBADURL;
  }
  for (; p < end; p++) {
    if (*p < '0' || *p > '9') {
      return TERN_EBADURL;
    }
    v = v * 10 + (*p - '0');
  }
  if (v < 1 || v > 65535) {
    return TERN_EBADURL;
  }
  *port = (int)v;
  return 0;
}

int tern_options_set_url(tern_options_t *o, const char *url) {
  const char *host, *host_end, *colon = NULL;
  int port;
  if (o == NULL || url == NULL) {
    return TERN_EBADURL;
  }
  if (o->struct_size < TERN__OPTIONS_SIZE_V0) {
    return TERN_EINVAL; /* host and port are in every version's layout */
  }
  port = o->port;
  int tls = -1; /* no scheme: tls unchanged */
  if (strncmp(url, "tern://", 7) == 0) {
    url += 7;
    tls = 0;
  } else if (strncmp(url, "tls://", 6) == 0) {
    url += 6;
    tls = 1;
  }
  if (tls >= 0 &&
      o->struct_size < offsetof(tern_options_t, tls) + sizeof(bool)) {
    if (tls == 1) {
      return TERN_EINVAL; /* built against a header without TLS */
    }
    tls = -1;
  }
  if (url[0] == '[') { /* [v6]:port */
    host = url + 1;
    host_end = strchr(host, ']');
    if (host_end == NULL) {
      return TERN_EBADURL;
    }
    if (host_end[1] == ':') {
      colon = host_end + 1;
    } else if (host_end[1] != '\0') {
      return TERN_EBADURL;
    }
  } else {
    host = url;
    colon = strrchr(url, ':');
    if (colon != NULL && strchr(url, ':') != colon) {
      return TERN_EBADURL; /* a bare IPv6 literal needs brackets */
    }
    host_end = colon != NULL ? colon : url + strlen(url);
  }
  if (host_end == host || (size_t)(host_end - host) >= TERN_HOST_MAX) {
    return TERN_EBADURL;
  }
  if (colon != NULL &&
      parse_port(colon + 1, colon + 1 + strlen(colon + 1), &port) != 0) {
    return TERN_EBADURL;
  }
  memcpy(o->host, host, (size_t)(host_end - host));
  o->host[host_end - host] = '\0';
  o->port = port;
  if (tls >= 0) {
    o->tls = tls == 1;
  }
  return 0;
}

/* strdup that keeps NULL as NULL; *ok is cleared on allocation failure. */
static char *dup_opt(const char *s, bool *ok) {
  char *d;
  if (s == NULL) {
    return NULL;
  }
  d = strdup(s);
  if (d == NULL) {
    *ok = false;
  }
  return d;
}

/*
 * Deep-copies src into dst and points dst->o's strings at the copies, so the
 * connection never reads the caller's memory after connect returns.
 */
int tern__opts_copy(tern__opts_t *dst, const tern_options_t *src) {
  bool ok = true;
  memset(dst, 0, sizeof(*dst));
  dst->o = *src;
  dst->o.host[TERN_HOST_MAX - 1] = '\0';
  dst->name = dup_opt(src->name, &ok);
  dst->user = dup_opt(src->user, &ok);
  dst->pass = dup_opt(src->pass, &ok);
  dst->token = dup_opt(src->token, &ok);
  dst->inbox_prefix =
      dup_opt(src->inbox_prefix != NULL ? src->inbox_prefix : "_INBOX", &ok);
  dst->servers = dup_opt(src->servers, &ok);
  dst->tls_ca = dup_opt(src->tls_ca_file, &ok);
  dst->tls_cert = dup_opt(src->tls_cert_file, &ok);
  dst->tls_key = dup_opt(src->tls_key_file, &ok);
  dst->tls_name = dup_opt(src->tls_server_name, &ok);
  dst->o.tls_ca_file = dst->tls_ca;
  dst->o.tls_cert_file = dst->tls_cert;
  dst->o.tls_key_file = dst->tls_key;
  dst->o.tls_server_name = dst->tls_name;
  dst->o.name = dst->name;
  dst->o.user = dst->user;
  dst->o.pass = dst->pass;
  dst->o.token = dst->token;
  dst->o.inbox_prefix = dst->inbox_prefix;
  dst->o.servers = dst->servers;
  if (!ok) {
    tern__opts_free(dst);
    return TERN_ENOMEM;
  }
  return 0;
}

void tern__opts_free(tern__opts_t *o) {
  free(o->name);
  free(o->user);
  free(o->pass);
  free(o->token);
  free(o->inbox_prefix);
  free(o->servers);
  free(o->tls_ca);
  free(o->tls_cert);
  free(o->tls_key);
  free(o->tls_name);
  memset(o, 0, sizeof(*o));
}
