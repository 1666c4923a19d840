/*
 * Authentication and permissions (see auth.h).
 */
#include "auth.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "tern_proto/topic.h"

/* Patterns in a permission list are bounded like subscriptions are. */
#define AUTH_MAX_PATTERN 1024

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
  if (db != NULL)
    db->refs++;
  return db;
}

static void list_free(auth_list_t *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->pats[i]);
  free(l->pats);
}

void auth_db_unref(auth_db_t *db) {
  if (db == NULL || --db->refs > 0)
    return;
  for (size_t i = 0; i < db->n; i++) {
    auth_user_t *u = &db->users[i];
    free(u->name);
    if (u->hash != NULL) {
      sodium_memzero(u->hash, strlen(u->hash));
      free(u->hash);
    }
    list_free(&u->pub_allow);
    list_free(&u->pub_deny);
    list_free(&u->sub_allow);
    list_free(&u->sub_deny);
  }
  free(db->users);
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
  snprintf(err, errlen,
           "unknown key '%s' in [user %s] (expected password, publish, "
           "subscribe, deny_publish or deny_subscribe)",
           key, user);
  return -1;
}

int auth_db_validate(const auth_db_t *db, char *err, size_t errlen) {
  for (size_t i = 0; db != NULL && i < db->n; i++) {
    if (db->users[i].hash == NULL) {
      snprintf(err, errlen, "user '%s' has no password", db->users[i].name);
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
    fprintf(out, "\n[user %s]\npassword = (hash)\n", u->name);
    print_list(out, "publish", &u->pub_allow);
    print_list(out, "subscribe", &u->sub_allow);
    print_list(out, "deny_publish", &u->pub_deny);
    print_list(out, "deny_subscribe", &u->sub_deny);
  }
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

/* ---- hashing and verification ------------------------------------------ */

int auth_hash_password(const char *password, char *out, size_t cap) {
  if (cap < crypto_pwhash_STRBYTES)
    return -1;
  return crypto_pwhash_str(out, password, strlen(password),
                           crypto_pwhash_OPSLIMIT_INTERACTIVE,
                           crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0
             ? 0
             : -1;
}

struct auth_job {
  uv_work_t req;
  auth_db_t *db; /* a reference */
  char *token;   /* the server's, copied */
  char *user;    /* the client's, copied */
  char *pass;    /* copied, wiped */
  char *ctoken;  /* copied, wiped */
  const auth_user_t *found;
  bool ok;
  auth_done_cb cb;
  void *data; /* NULL once cancelled */
};

static char *dup_n(const char *s, size_t n) {
  if (s == NULL)
    return NULL;
  char *d = malloc(n + 1);
  if (d != NULL) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

static void free_secret(char *s) {
  if (s != NULL) {
    sodium_memzero(s, strlen(s));
    free(s);
  }
}

static void job_free(auth_job_t *job) {
  auth_db_unref(job->db);
  free_secret(job->token);
  free(job->user);
  free_secret(job->pass);
  free_secret(job->ctoken);
  free(job);
}

/* On the thread pool: touches only the job and the immutable db. */
static void on_work(uv_work_t *req) {
  auth_job_t *job = req->data;
  job->ok = false;
  if (job->ctoken != NULL && job->token != NULL && job->token[0] != '\0') {
    size_t a = strlen(job->ctoken), b = strlen(job->token);
    /* Length first; the bytes in constant time. */
    job->ok = a == b && sodium_memcmp(job->ctoken, job->token, a) == 0;
    if (job->ok)
      return;
  }
  if (job->user == NULL || job->pass == NULL)
    return;
  const auth_user_t *u = auth_db_find(job->db, job->user, strlen(job->user));
  if (u == NULL || u->hash == NULL)
    return;
  if (crypto_pwhash_str_verify(u->hash, job->pass, strlen(job->pass)) == 0) {
    job->ok = true;
    job->found = u;
  }
}

static void on_after_work(uv_work_t *req, int status) {
  auth_job_t *job = req->data;
  if (job->data != NULL)
    job->cb(job->data, status == 0 && job->ok, job->db, job->found);
  job_free(job);
}

int auth_verify_start(uv_loop_t *loop, auth_job_t **out, auth_db_t *db,
                      const char *token, const char *user, size_t ulen,
                      const char *pass, size_t plen, const char *ctoken,
                      size_t tlen, auth_done_cb cb, void *data) {
  auth_job_t *job = calloc(1, sizeof *job);
  if (job == NULL)
    return UV_ENOMEM;
  job->db = auth_db_ref(db);
  job->token = dup_n(token, token ? strlen(token) : 0);
  job->user = dup_n(user, ulen);
  job->pass = dup_n(pass, plen);
  job->ctoken = dup_n(ctoken, tlen);
  job->cb = cb;
  job->data = data;
  job->req.data = job;
  if ((token && !job->token) || (user && !job->user) || (pass && !job->pass) ||
      (ctoken && !job->ctoken)) {
    job_free(job);
    return UV_ENOMEM;
  }
  int rc = uv_queue_work(loop, &job->req, on_work, on_after_work);
  if (rc != 0) {
    job_free(job);
    return rc;
  }
  *out = job;
  return 0;
}

void auth_verify_cancel(auth_job_t *job) {
  job->data = NULL;
}
