/*
 * Authentication and permissions (see auth.h).
 */
#include "session/auth.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/list.h"
#include "base/log.h"

#include "tern_proto/topic.h"

/* Patterns in a permission list are bounded like subscriptions are. */
#define AUTH_MAX_PATTERN 1024
#define AUTH_RESP_TTL_DEFAULT_MS 120000ull

/* ---- the database ------------------------------------------------------ */

int auth_db_create(auth_db_t **out) {
  auth_db_t *db = calloc(1, sizeof *db);
  if (db == NULL)
    return -1;
  db->refs = 1;
  *out = db;
  return 0;
}

auth_db_t *auth_db_ref(auth_db_t *db) {
  /* Atomic: connections of every worker hold the database. */
  if (db != NULL)
    __atomic_add_fetch(&db->refs, 1, __ATOMIC_RELAXED);
  return db;
}

static void list_free(auth_list_t *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->pats[i]);
  free(l->pats);
}

void auth_db_unref(auth_db_t *db) {
  if (db == NULL || __atomic_sub_fetch(&db->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  for (size_t i = 0; i < db->n; i++) {
    auth_user_t *u = &db->users[i];
    free(u->name);
    if (u->hash != NULL) {
      sodium_memzero(u->hash, strlen(u->hash));
      free(u->hash);
    }
    free(u->cert_subject);
    free(u->cert_san);
    list_free(&u->pub_allow);
    list_free(&u->pub_deny);
    list_free(&u->sub_allow);
    list_free(&u->sub_deny);
  }
  free(db->users);
  free(db->standin);
  free(db);
}

const auth_user_t *auth_db_find(const auth_db_t *db, const char *name,
                                size_t len) {
  if (db == NULL || name == NULL)
    return NULL;
  for (size_t i = 0; i < db->n; i++) {
    if (strlen(db->users[i].name) == len &&
        memcmp(db->users[i].name, name, len) == 0)
      return &db->users[i];
  }
  return NULL;
}

static auth_user_t *get_or_add(auth_db_t *db, const char *name) {
  auth_user_t *u = (auth_user_t *)auth_db_find(db, name, strlen(name));
  if (u != NULL)
    return u;
  if (db->n == db->cap) {
    size_t cap = db->cap ? db->cap * 2 : 4;
    auth_user_t *a = realloc(db->users, cap * sizeof *a);
    if (a == NULL)
      return NULL;
    db->users = a;
    db->cap = cap;
  }
  u = &db->users[db->n];
  memset(u, 0, sizeof *u);
  u->name = strdup(name);
  if (u->name == NULL)
    return NULL;
  db->n++;
  return u;
}

/* Adds each comma- or space-separated pattern of val to l. */
static int list_add(auth_list_t *l, const char *val, char *err, size_t errlen) {
  const char *p = val;
  for (;;) {
    while (*p == ',' || *p == ' ' || *p == '\t')
      p++;
    if (*p == '\0')
      return 0;
    size_t len = strcspn(p, ", \t");
    if (tp_pattern_validate(p, len, AUTH_MAX_PATTERN) != 0) {
      snprintf(err, errlen, "invalid pattern '%.*s'", (int)len, p);
      return -1;
    }
    if (l->n == l->cap) {
      size_t cap = l->cap ? l->cap * 2 : 4;
      char **a = realloc(l->pats, cap * sizeof *a);
      if (a == NULL)
        goto oom;
      l->pats = a;
      l->cap = cap;
    }
    l->pats[l->n] = strndup(p, len);
    if (l->pats[l->n] == NULL)
      goto oom;
    l->n++;
    p += len;
  }
oom:
  snprintf(err, errlen, "out of memory");
  return -1;
}

/*
 * allow_responses = true | false | N | N, MS: N replies (true: 1) to each
 * request received, within MS milliseconds (default 2 minutes, as NATS).
 */
static int parse_responses(auth_user_t *u, const char *val, char *err,
                           size_t errlen) {
  unsigned long long n = 0, ms = AUTH_RESP_TTL_DEFAULT_MS;
  char extra = 0;
  if (strcmp(val, "true") == 0) {
    n = 1;
  } else if (strcmp(val, "false") == 0) {
    n = 0;
  } else {
    int got = sscanf(val, "%llu , %llu %c", &n, &ms, &extra);
    if ((got != 1 && got != 2) || val[0] < '0' || val[0] > '9' || n < 1 ||
        n > AUTH_RESP_MAX_REPLIES || ms < 1 || ms > 86400000ull) {
      snprintf(err, errlen,
               "invalid allow_responses '%s' (expected true, false, N or "
               "N, MS with N from 1 to %u and MS from 1 to 86400000)",
               val, AUTH_RESP_MAX_REPLIES);
      return -1;
    }
  }
  u->resp_max = (uint32_t)n;
  u->resp_ttl_ms = ms;
  return 0;
}

int auth_db_set(auth_db_t *db, const char *user, const char *key,
                const char *val, char *err, size_t errlen) {
  if (*user == '\0') {
    snprintf(err, errlen, "a [user NAME] section needs a name");
    return -1;
  }
  auth_user_t *u = get_or_add(db, user);
  if (u == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (strcmp(key, "password") == 0) {
    /* Only hashes: a plain password in a file is a mistake to refuse. */
    if (strncmp(val, "$argon2", 7) != 0) {
      snprintf(err, errlen,
               "password of user '%s' is not a hash (make one with "
               "ternd --hash-password)",
               user);
      return -1;
    }
    free(u->hash);
    u->hash = strdup(val);
    if (u->hash == NULL) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    return 0;
  }
  if (strcmp(key, "publish") == 0) {
    u->pub_allow_set = true;
    return list_add(&u->pub_allow, val, err, errlen);
  }
  if (strcmp(key, "subscribe") == 0) {
    u->sub_allow_set = true;
    return list_add(&u->sub_allow, val, err, errlen);
  }
  if (strcmp(key, "deny_publish") == 0)
    return list_add(&u->pub_deny, val, err, errlen);
  if (strcmp(key, "deny_subscribe") == 0)
    return list_add(&u->sub_deny, val, err, errlen);
  if (strcmp(key, "allow_responses") == 0)
    return parse_responses(u, val, err, errlen);
  if (strcmp(key, "cert_subject") == 0 || strcmp(key, "cert_san") == 0) {
    bool san = key[5] == 's' && key[6] == 'a';
    if (san && strncasecmp(val, "DNS:", 4) != 0 &&
        strncasecmp(val, "URI:", 4) != 0 &&
        strncasecmp(val, "email:", 6) != 0 && strncasecmp(val, "IP:", 3) != 0) {
      snprintf(err, errlen,
               "cert_san of user '%s' must start with DNS:, URI:, email: or "
               "IP:",
               user);
      return -1;
    }
    if (*val == '\0') {
      snprintf(err, errlen, "%s of user '%s' is empty", key, user);
      return -1;
    }
    char **field = san ? &u->cert_san : &u->cert_subject;
    free(*field);
    *field = strdup(val);
    if (*field == NULL) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    return 0;
  }
  snprintf(err, errlen,
           "unknown key '%s' in [user %s] (expected password, publish, "
           "subscribe, deny_publish, deny_subscribe, allow_responses, "
           "cert_subject or cert_san)",
           key, user);
  return -1;
}

int auth_db_validate(const auth_db_t *db, char *err, size_t errlen) {
  for (size_t i = 0; db != NULL && i < db->n; i++) {
    const auth_user_t *u = &db->users[i];
    if (u->hash == NULL && u->cert_subject == NULL && u->cert_san == NULL) {
      snprintf(err, errlen,
               "user '%s' has no password (nor cert_subject or cert_san)",
               u->name);
      return -1;
    }
  }
  return 0;
}

static void print_list(FILE *out, const char *key, const auth_list_t *l) {
  if (l->n == 0)
    return;
  fprintf(out, "%s = ", key);
  for (size_t i = 0; i < l->n; i++)
    fprintf(out, "%s%s", i ? ", " : "", l->pats[i]);
  fputc('\n', out);
}

void auth_db_print(const auth_db_t *db, FILE *out) {
  for (size_t i = 0; db != NULL && i < db->n; i++) {
    const auth_user_t *u = &db->users[i];
    fprintf(out, "\n[user %s]\n", u->name);
    if (u->hash != NULL)
      fprintf(out, "password = (hash)\n");
    if (u->cert_subject != NULL)
      fprintf(out, "cert_subject = %s\n", u->cert_subject);
    if (u->cert_san != NULL)
      fprintf(out, "cert_san = %s\n", u->cert_san);
    print_list(out, "publish", &u->pub_allow);
    print_list(out, "subscribe", &u->sub_allow);
    print_list(out, "deny_publish", &u->pub_deny);
    print_list(out, "deny_subscribe", &u->sub_deny);
    if (u->resp_max > 0)
      fprintf(out, "allow_responses = %u, %llu\n", u->resp_max,
              (unsigned long long)u->resp_ttl_ms);
  }
}

const auth_user_t *
auth_db_find_cert(const auth_db_t *db, const char *subject,
                  bool (*has_san)(void *ctx, const char *san), void *ctx) {
  for (size_t i = 0; db != NULL && i < db->n; i++) {
    const auth_user_t *u = &db->users[i];
    if (u->cert_subject == NULL && u->cert_san == NULL)
      continue;
    if (u->cert_subject != NULL && strcmp(u->cert_subject, subject) != 0)
      continue;
    if (u->cert_san != NULL && !has_san(ctx, u->cert_san))
      continue;
    return u;
  }
  return NULL;
}

/* ---- permissions ------------------------------------------------------- */

static bool is_wild(const char *t, size_t n) {
  return n == 1 && (t[0] == '*' || t[0] == '>');
}

/*
 * True when every topic that sub matches is matched by allow (allow
 * "covers" sub). A wildcard-first allow covers no '$' pattern, as it
 * matches no '$' topic.
 */
static bool covers(const char *allow, const char *sub, size_t slen) {
  tp_token_iter_t a, s;
  tp_token_iter_init(&a, allow, strlen(allow));
  tp_token_iter_init(&s, sub, slen);
  const char *at, *st;
  size_t an, sn;
  bool first = true;
  for (;;) {
    int ha = tp_token_next(&a, &at, &an);
    int hs = tp_token_next(&s, &st, &sn);
    if (!ha || !hs)
      return !ha && !hs;
    if (first && sn > 0 && st[0] == '$' && is_wild(at, an))
      return false;
    first = false;
    if (an == 1 && at[0] == '>')
      return true;
    if (an == 1 && at[0] == '*') {
      if (sn == 1 && st[0] == '>')
        return false;
      continue;
    }
    if (is_wild(st, sn) || an != sn || memcmp(at, st, an) != 0)
      return false;
  }
}

/* True when some topic is matched by both patterns. */
static bool overlaps(const char *p, const char *q, size_t qlen) {
  tp_token_iter_t a, b;
  tp_token_iter_init(&a, p, strlen(p));
  tp_token_iter_init(&b, q, qlen);
  const char *at, *bt;
  size_t an, bn;
  bool first = true;
  for (;;) {
    int ha = tp_token_next(&a, &at, &an);
    int hb = tp_token_next(&b, &bt, &bn);
    if (!ha || !hb)
      return !ha && !hb;
    if (first && ((at[0] == '$' && is_wild(bt, bn)) ||
                  (bt[0] == '$' && is_wild(at, an))))
      return false;
    first = false;
    if ((an == 1 && at[0] == '>') || (bn == 1 && bt[0] == '>'))
      return true;
    if (is_wild(at, an) || is_wild(bt, bn))
      continue;
    if (an != bn || memcmp(at, bt, an) != 0)
      return false;
  }
}

bool auth_pub_denied_explicitly(const auth_user_t *u, const char *topic,
                                size_t len) {
  for (size_t i = 0; u != NULL && i < u->pub_deny.n; i++) {
    const char *p = u->pub_deny.pats[i];
    if (tp_pattern_match(p, strlen(p), topic, len))
      return true;
  }
  return false;
}

bool auth_may_publish(const auth_user_t *u, const char *topic, size_t len) {
  if (u == NULL)
    return true;
  for (size_t i = 0; i < u->pub_deny.n; i++) {
    const char *p = u->pub_deny.pats[i];
    if (tp_pattern_match(p, strlen(p), topic, len))
      return false;
  }
  if (!u->pub_allow_set)
    return true;
  for (size_t i = 0; i < u->pub_allow.n; i++) {
    const char *p = u->pub_allow.pats[i];
    if (tp_pattern_match(p, strlen(p), topic, len))
      return true;
  }
  return false;
}

/*
 * A deny entry refuses every subscription that could receive one of its
 * topics: the broker filters nothing at delivery time, so a subscription
 * is all or nothing.
 */
bool auth_may_subscribe(const auth_user_t *u, const char *pattern, size_t len) {
  if (u == NULL)
    return true;
  for (size_t i = 0; i < u->sub_deny.n; i++) {
    if (overlaps(u->sub_deny.pats[i], pattern, len))
      return false;
  }
  if (!u->sub_allow_set)
    return !tp_topic_is_system(pattern, len);
  for (size_t i = 0; i < u->sub_allow.n; i++) {
    if (covers(u->sub_allow.pats[i], pattern, len))
      return true;
  }
  return false;
}

/* ---- hashing ------------------------------------------------------------ */

int auth_hash_password(const char *password, char *out, size_t cap) {
  if (cap < crypto_pwhash_STRBYTES)
    return -1;
  return crypto_pwhash_str_alg(out, password, strlen(password),
                               AUTH_HASH_OPSLIMIT, AUTH_HASH_MEMLIMIT,
                               crypto_pwhash_ALG_ARGON2ID13) == 0
             ? 0
             : -1;
}

/*
 * The stand-in for unknown users: the first user's hash string (its
 * algorithm, parameters and salt) with the digest after the last '$'
 * replaced by random base64 of the same length. Verifying a password
 * against it does all the work a real hash does and never matches.
 */
static const char *standin(auth_db_t *db) {
  const char *h = NULL;
  for (size_t i = 0; i < db->n && h == NULL; i++)
    h = db->users[i].hash;
  if (db->standin != NULL || h == NULL)
    return db->standin;
  const char *tail = strrchr(h, '$');
  if (tail == NULL)
    return NULL;
  size_t keep = (size_t)(tail - h) + 1, n = strlen(tail + 1);
  char *s = malloc(keep + n + 1);
  if (s == NULL)
    return NULL;
  memcpy(s, h, keep);
  static const char b64[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i++)
    s[keep + i] = b64[randombytes_uniform(64)];
  /* The last character of unpadded base64 carries only some bits: keep
   * the original one, so that the string still decodes. */
  if (n > 0)
    s[keep + n - 1] = tail[n];
  s[keep + n] = '\0';
  db->standin = s;
  return s;
}

/* ---- the verifier -------------------------------------------------------- */

/* Failed logins of one address (IPv4, or the /64 of an IPv6 address). */
typedef struct addr_slot {
  uint8_t key[16];
  bool used;
  bool logged;     /* its blocking was logged */
  uint64_t tokens; /* thousandths of a login attempt left */
  uint64_t last;   /* loop time of the last refill, ms */
} addr_slot_t;
#define ADDR_SLOTS 4096u /* a power of two */
#define ADDR_PROBE 8u

/* A remembered good login. */
typedef struct cache_slot {
  uint8_t digest[crypto_generichash_BYTES];
  uint64_t expires; /* loop time, ms; 0: empty */
} cache_slot_t;
#define CACHE_PROBE 4u

struct auth_verifier {
  uv_loop_t *loop;
  auth_limits_t lim;
  auth_stats_t st;
  uint64_t hash_ns;  /* recent hash duration, a moving average; 0: none yet */
  list_node_t queue; /* auth_job_t.link, FIFO */
  uint8_t addr_key[crypto_shorthash_KEYBYTES];
  addr_slot_t *addrs; /* ADDR_SLOTS, made at the first failure */
  uint8_t cache_key[crypto_generichash_KEYBYTES];
  cache_slot_t *cache; /* lim.cache_size slots */
};

struct auth_job {
  uv_work_t req;
  list_node_t link; /* in the verifier's queue until it runs */
  auth_verifier_t *v;
  auth_db_t *db;           /* a reference */
  const char *hash;        /* in db: the user's, or the stand-in */
  char *pass;              /* copied, wiped */
  const auth_user_t *user; /* NULL: unknown, fails whatever the hash says */
  uint8_t addr[16];
  uint8_t digest[crypto_generichash_BYTES]; /* the cache's key */
  _Atomic bool cancelled;
  bool running; /* on the thread pool */
  bool ok;
  bool hashed;
  uint64_t ns; /* how long the hash took */
  auth_done_cb cb;
  auth_alive_cb alive;
  void *data;
};

static void cache_alloc(auth_verifier_t *v) {
  free(v->cache);
  v->cache = NULL;
  if (v->lim.cache_size > 0)
    v->cache = calloc(v->lim.cache_size, sizeof *v->cache);
  randombytes_buf(v->cache_key, sizeof v->cache_key);
}

int auth_verifier_create(uv_loop_t *loop, const auth_limits_t *lim,
                         auth_verifier_t **out) {
  auth_verifier_t *v = calloc(1, sizeof *v);
  if (v == NULL)
    return -1;
  v->loop = loop;
  v->lim = *lim;
  list_init(&v->queue);
  randombytes_buf(v->addr_key, sizeof v->addr_key);
  cache_alloc(v);
  if (v->lim.cache_size > 0 && v->cache == NULL) {
    free(v);
    return -1;
  }
  *out = v;
  return 0;
}

void auth_verifier_configure(auth_verifier_t *v, const auth_limits_t *lim) {
  if (v->cache != NULL)
    sodium_memzero(v->cache, sizeof *v->cache * v->lim.cache_size);
  v->lim = *lim;
  cache_alloc(v); /* a new key too: nothing old can match */
}

void auth_verifier_free(auth_verifier_t *v) {
  if (v == NULL)
    return;
  free(v->addrs);
  free(v->cache);
  free(v);
}

void auth_verifier_stats(const auth_verifier_t *v, auth_stats_t *out) {
  *out = v->st;
}

/* The address's key: IPv4 as is, IPv6 by its /64 (one host owns those). */
static void addr_key(const struct sockaddr_storage *ss, uint8_t key[16]) {
  memset(key, 0, 16);
  if (ss == NULL)
    return;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    key[0] = 4;
    memcpy(key + 1, &a->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    memcpy(key, &a->sin6_addr, 8);
    key[8] = 6;
  }
}

/* The bucket of addr refilled to now, or NULL (none: a full bucket). With
 * create, a slot is made (or the fullest of its probe window reused). */
static addr_slot_t *addr_find(auth_verifier_t *v, const uint8_t addr[16],
                              bool create) {
  if (v->addrs == NULL) {
    if (!create)
      return NULL;
    v->addrs = calloc(ADDR_SLOTS, sizeof *v->addrs);
    if (v->addrs == NULL)
      return NULL;
  }
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, addr, 16, v->addr_key);
  uint64_t at;
  memcpy(&at, h, sizeof at);
  uint64_t now = uv_now(v->loop), full = v->lim.fail_limit * 1000u;
  uint64_t window = v->lim.fail_window_ms ? v->lim.fail_window_ms : 1;
  addr_slot_t *spare = NULL;
  for (unsigned i = 0; i < ADDR_PROBE; i++) {
    addr_slot_t *s = &v->addrs[(at + i) & (ADDR_SLOTS - 1)];
    if (s->used) {
      /* Refill: fail_limit attempts per window. */
      uint64_t add = (now - s->last) * full / window;
      s->tokens = s->tokens + add > full ? full : s->tokens + add;
      if (add > 0)
        s->last = now;
      if (s->tokens >= 1000u)
        s->logged = false;
      if (memcmp(s->key, addr, 16) == 0)
        return s;
    }
    /* A new address takes a free slot, else the least suspicious one. */
    if (!s->used) {
      if (spare == NULL || spare->used)
        spare = s;
    } else if (spare == NULL || (spare->used && s->tokens > spare->tokens)) {
      spare = s;
    }
  }
  if (!create || spare == NULL)
    return NULL;
  memcpy(spare->key, addr, 16);
  spare->used = true;
  spare->logged = false;
  spare->tokens = full;
  spare->last = now;
  return spare;
}

static bool addr_blocked(auth_verifier_t *v, const uint8_t addr[16]) {
  if (v->lim.fail_limit == 0)
    return false;
  addr_slot_t *s = addr_find(v, addr, false);
  return s != NULL && s->tokens < 1000u;
}

static void addr_failed(auth_verifier_t *v, const uint8_t addr[16]) {
  if (v->lim.fail_limit == 0)
    return;
  addr_slot_t *s = addr_find(v, addr, true);
  if (s == NULL)
    return;
  s->tokens = s->tokens >= 1000u ? s->tokens - 1000u : 0;
  if (s->tokens < 1000u && !s->logged) {
    s->logged = true;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (addr[0] == 4)
      inet_ntop(AF_INET, addr + 1, ip, sizeof ip);
    else if (addr[8] == 6) {
      uint8_t a6[16] = {0};
      memcpy(a6, addr, 8);
      inet_ntop(AF_INET6, a6, ip, sizeof ip);
    }
    LOG(LOG_WARN,
        "%s%s: %llu failed logins within %llu ms; its CONNECTs are refused "
        "until it waits",
        ip, addr[8] == 6 ? "/64" : "", (unsigned long long)v->lim.fail_limit,
        (unsigned long long)v->lim.fail_window_ms);
  }
}

/* The cache's key for user and pass: keyed BLAKE2b, the key random per
 * process and per reload. */
static void cred_digest(const auth_verifier_t *v, const char *user, size_t ulen,
                        const char *pass, size_t plen,
                        uint8_t out[crypto_generichash_BYTES]) {
  crypto_generichash_state st;
  uint8_t len[8];
  for (int i = 0; i < 8; i++)
    len[i] = (uint8_t)((uint64_t)ulen >> (8 * i));
  crypto_generichash_init(&st, v->cache_key, sizeof v->cache_key,
                          crypto_generichash_BYTES);
  crypto_generichash_update(&st, len, sizeof len);
  crypto_generichash_update(&st, (const uint8_t *)user, ulen);
  crypto_generichash_update(&st, (const uint8_t *)pass, plen);
  crypto_generichash_final(&st, out, crypto_generichash_BYTES);
}

static cache_slot_t *cache_find(auth_verifier_t *v, const uint8_t *d,
                                bool for_insert) {
  if (v->cache == NULL)
    return NULL;
  uint64_t at, now = uv_now(v->loop), n = v->lim.cache_size;
  memcpy(&at, d, sizeof at);
  cache_slot_t *oldest = NULL;
  for (unsigned i = 0; i < CACHE_PROBE && i < n; i++) {
    cache_slot_t *s = &v->cache[(at + i) % n];
    if (s->expires > now && sodium_memcmp(s->digest, d, sizeof s->digest) == 0)
      return s;
    if (oldest == NULL || s->expires < oldest->expires)
      oldest = s;
  }
  return for_insert ? oldest : NULL;
}

/* Starts queued jobs while there is room on the thread pool. */
static void on_work(uv_work_t *req);
static void on_after_work(uv_work_t *req, int status);

static void job_free(auth_job_t *job) {
  auth_db_unref(job->db);
  if (job->pass != NULL) {
    sodium_memzero(job->pass, strlen(job->pass));
    free(job->pass);
  }
  free(job);
}

static void pump(auth_verifier_t *v) {
  while (v->st.running < AUTH_CONCURRENCY && !list_empty(&v->queue)) {
    auth_job_t *job = LIST_ENTRY(list_first(&v->queue), auth_job_t, link);
    list_remove(&job->link);
    v->st.queued--;
    if (job->alive != NULL && !job->alive(job->data)) {
      v->st.skipped++;
      job->cb(job->data, AUTH_GONE, job->db, NULL);
      job_free(job);
      continue;
    }
    /* Its address ran out of failures while it waited: refused unhashed,
     * like the CONNECTs that come after. */
    if (addr_blocked(v, job->addr)) {
      v->st.blocked++;
      job->cb(job->data, AUTH_BAD, job->db, NULL);
      job_free(job);
      continue;
    }
    job->running = true;
    v->st.running++;
    /* Fails only without a work callback. */
    (void)uv_queue_work(v->loop, &job->req, on_work, on_after_work);
  }
}

/* On the thread pool: touches only the job and the immutable db. */
static void on_work(uv_work_t *req) {
  auth_job_t *job = req->data;
  if (atomic_load(&job->cancelled))
    return;
  job->hashed = true;
  uint64_t t0 = uv_hrtime();
  int rc = crypto_pwhash_str_verify(job->hash, job->pass, strlen(job->pass));
  job->ns = uv_hrtime() - t0;
  job->ok = rc == 0 && job->user != NULL;
}

static void on_after_work(uv_work_t *req, int status) {
  auth_job_t *job = req->data;
  auth_verifier_t *v = job->v;
  v->st.running--;
  bool ok = status == 0 && job->ok;
  if (job->hashed) {
    v->st.hashes++;
    /* What a hash takes now, load included (7/8 old, 1/8 new). */
    v->hash_ns = v->hash_ns == 0 ? job->ns : (7 * v->hash_ns + job->ns) / 8;
    if (ok) {
      cache_slot_t *s = cache_find(v, job->digest, true);
      if (s != NULL) {
        memcpy(s->digest, job->digest, sizeof s->digest);
        s->expires = uv_now(v->loop) + v->lim.cache_ttl_ms;
      }
    } else {
      addr_failed(v, job->addr); /* counted even if the client left */
    }
  } else {
    v->st.skipped++;
  }
  if (!atomic_load(&job->cancelled))
    job->cb(job->data, ok ? AUTH_GOOD : AUTH_BAD, job->db, job->user);
  job_free(job);
  pump(v);
}

static bool db_has_hash(const auth_db_t *db) {
  for (size_t i = 0; i < db->n; i++)
    if (db->users[i].hash != NULL)
      return true;
  return false;
}

auth_start_t auth_verify_start(auth_verifier_t *v, auth_job_t **out,
                               auth_db_t *db, const char *token,
                               const char *user, size_t ulen, const char *pass,
                               size_t plen, const char *ctoken, size_t tlen,
                               const struct sockaddr_storage *addr,
                               const auth_user_t **user_out, auth_done_cb cb,
                               auth_alive_cb alive, void *data) {
  uint8_t akey[16];
  addr_key(addr, akey);
  *user_out = NULL;
  if (addr_blocked(v, akey)) {
    v->st.blocked++;
    return AUTH_BLOCKED;
  }
  if (ctoken != NULL && token != NULL && token[0] != '\0') {
    /* Length first; the bytes in constant time. */
    size_t n = strlen(token);
    if (tlen == n && sodium_memcmp(ctoken, token, n) == 0)
      return AUTH_ACCEPT;
  }
  if (user == NULL || pass == NULL || db == NULL) {
    addr_failed(v, akey);
    return AUTH_REJECT;
  }
  const auth_user_t *u = auth_db_find(db, user, ulen);
  uint8_t digest[crypto_generichash_BYTES];
  cred_digest(v, user, ulen, pass, plen, digest);
  if (u != NULL && cache_find(v, digest, false) != NULL) {
    v->st.cache_hits++;
    *user_out = u;
    return AUTH_ACCEPT;
  }
  /* A user bound to a certificate alone has no password to give. */
  const char *hash = u != NULL && u->hash != NULL ? u->hash : standin(db);
  if (hash == NULL && !db_has_hash(db)) {
    addr_failed(v, akey);
    return AUTH_REJECT;
  }
  if (hash == NULL)
    return AUTH_NOMEM;
  /* Admitted only if its verdict can be expected within max_wait_ms:
   * the logins ahead of it, AUTH_CONCURRENCY at a time, at the cost a
   * hash has lately had. */
  uint64_t ahead = v->st.queued + v->st.running + 1;
  if (v->st.queued >= v->lim.queue_max ||
      (v->lim.max_wait_ms > 0 &&
       ahead * v->hash_ns / AUTH_CONCURRENCY > v->lim.max_wait_ms * 1000000u)) {
    v->st.busy++;
    return AUTH_BUSY;
  }
  auth_job_t *job = calloc(1, sizeof *job);
  if (job == NULL)
    return AUTH_NOMEM;
  job->pass = malloc(plen + 1);
  if (job->pass == NULL) {
    free(job);
    return AUTH_NOMEM;
  }
  memcpy(job->pass, pass, plen);
  job->pass[plen] = '\0';
  job->v = v;
  job->db = auth_db_ref(db);
  job->hash = hash;
  job->user = u;
  memcpy(job->addr, akey, sizeof akey);
  memcpy(job->digest, digest, sizeof digest);
  atomic_init(&job->cancelled, false);
  job->cb = cb;
  job->alive = alive;
  job->data = data;
  job->req.data = job;
  list_insert_tail(&v->queue, &job->link);
  v->st.queued++;
  *out = job;
  pump(v);
  return AUTH_PENDING;
}

void auth_verify_cancel(auth_job_t *job) {
  auth_verifier_t *v = job->v;
  if (!job->running) {
    list_remove(&job->link);
    v->st.queued--;
    v->st.skipped++;
    job_free(job);
    return;
  }
  atomic_store(&job->cancelled, true);
  /* Not started yet: libuv calls on_after_work with UV_ECANCELED. */
  uv_cancel((uv_req_t *)&job->req);
}
