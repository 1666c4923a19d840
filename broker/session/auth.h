/*
 * Authentication and permissions.
 *
 * The users database (auth_db_t) is built from the configuration file's
 * [user NAME] sections and is immutable once built; a reload builds a new
 * one. It is refcounted: the server holds one reference, every connection
 * that authenticated as one of its users holds another, so a reload never
 * changes the rights of a connection already in place (they apply to new
 * connections, as the limits do).
 *
 * Passwords are stored as libsodium crypto_pwhash_str strings (argon2id).
 * Verifying one costs tens of milliseconds and tens of megabytes on
 * purpose, so it runs on libuv's thread pool (auth_verify_start), never on
 * the loop.
 */
#ifndef TERND_AUTH_H
#define TERND_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

typedef struct auth_list {
  char **pats; /* owned, validated patterns */
  size_t n, cap;
} auth_list_t;

/* allow_responses: at most this many replies per request. */
#define AUTH_RESP_MAX_REPLIES 1000000u

typedef struct auth_user {
  char *name; /* owned */
  char *hash; /* owned, crypto_pwhash_str format, or NULL (invalid) */
  auth_list_t pub_allow, pub_deny, sub_allow, sub_deny;
  bool pub_allow_set, sub_allow_set; /* an allow list was given */
  /* allow_responses: it may publish to the reply topic of a request it
   * received, resp_max times within resp_ttl_ms; 0: not allowed. */
  uint32_t resp_max;
  uint64_t resp_ttl_ms;
  /* Certificate identity (mutual TLS): a client certificate whose subject
   * is cert_subject (RFC 2253: "CN=orders-service,O=acme") and that
   * carries the subject alternative name cert_san ("DNS:name",
   * "URI:spiffe://...", "email:...", "IP:..."), each when set, logs in as
   * this user with no credentials. Owned, NULL when unset. */
  char *cert_subject;
  char *cert_san;
} auth_user_t;

typedef struct auth_db {
  int refs;
  auth_user_t *users;
  size_t n, cap;
  /* An unknown user's password is hashed against this (the first user's
   * parameters, a random digest) so that it costs what a known one does;
   * made on first use. Owned. */
  char *standin;
} auth_db_t;

/* A new, empty database with one reference. 0 or -1 (no memory). */
int auth_db_create(auth_db_t **out);
auth_db_t *auth_db_ref(auth_db_t *db);
/* Drops a reference; NULL is ignored. */
void auth_db_unref(auth_db_t *db);
/* The user called name, or NULL. */
const auth_user_t *auth_db_find(const auth_db_t *db, const char *name,
                                size_t len);
/*
 * Sets one key of a [user NAME] section (password, publish, subscribe,
 * deny_publish, deny_subscribe, allow_responses, cert_subject, cert_san),
 * creating the user on first
 * use. Lists are separated by commas or spaces and add to what earlier lines
 * gave. 0, or -1 with a message in err.
 */
int auth_db_set(auth_db_t *db, const char *user, const char *key,
                const char *val, char *err, size_t errlen);
/*
 * The first user bound to a certificate (cert_subject, cert_san) that the
 * peer's matches: subject is its subject (RFC 2253), has_san(ctx, san)
 * says whether it carries san. NULL when none.
 */
const auth_user_t *
auth_db_find_cert(const auth_db_t *db, const char *subject,
                  bool (*has_san)(void *ctx, const char *san), void *ctx);
/* Checks that every user has a password or a certificate binding. 0, or
 * -1 with a message. */
int auth_db_validate(const auth_db_t *db, char *err, size_t errlen);
/* Writes the users as [user NAME] sections (hashes are not printed). */
void auth_db_print(const auth_db_t *db, FILE *out);

/*
 * Permissions of an authenticated user; NULL (auth off, or the shared
 * token) may do everything. Without an allow list a user may publish
 * anything and subscribe to anything except the server's '$' topics,
 * which need an allow entry that names them ("$SYS.>").
 */
bool auth_may_publish(const auth_user_t *u, const char *topic, size_t len);
bool auth_may_subscribe(const auth_user_t *u, const char *pattern, size_t len);
/* True when a deny_publish entry matches topic (allow_responses does not
 * override those). */
bool auth_pub_denied_explicitly(const auth_user_t *u, const char *topic,
                                size_t len);

/*
 * Hashes password into out (at least AUTH_HASH_MAX bytes) with the cost
 * ternd chooses for a broker: argon2id, AUTH_HASH_MEMLIMIT bytes and
 * AUTH_HASH_OPSLIMIT passes (OWASP's 19 MiB, t=2). Verifying a hash uses
 * the parameters written in it, so older, dearer hashes keep working.
 * 0 or -1.
 */
#define AUTH_HASH_MAX 128
#define AUTH_HASH_MEMLIMIT (19u * 1024u * 1024u)
#define AUTH_HASH_OPSLIMIT 2u
int auth_hash_password(const char *password, char *out, size_t cap);

/* ---- asynchronous verification ----------------------------------------- */

/*
 * The verifier owns everything a login may cost: at most
 * AUTH_CONCURRENCY password hashes run on the thread pool at once; the
 * logins behind them wait in a bounded FIFO queue (queue_max, and no
 * longer than max_wait_ms is expected to take at the hashes' recent
 * speed; past either a CONNECT is refused at once as busy); a closed
 * connection's waiting login leaves the queue unhashed; every address has a
 * budget of failed logins (fail_limit per fail_window_ms, a token bucket: past
 * it its CONNECTs are refused without hashing); and credentials verified in the
 * last cache_ttl_ms are remembered (as a keyed BLAKE2b digest of user and
 * password, never the password) so that they log in again without a hash.
 */
#define AUTH_CONCURRENCY 2

typedef struct auth_limits {
  uint64_t queue_max;      /* logins waiting for a hash */
  uint64_t max_wait_ms;    /* admit a login only if its verdict is expected
                              within this (the connect timeout); 0: any */
  uint64_t fail_limit;     /* failed logins per address per window; 0 off */
  uint64_t fail_window_ms; /* the window (and the bucket's refill time) */
  uint64_t cache_size;     /* verified credentials remembered; 0 off */
  uint64_t cache_ttl_ms;   /* how long one is trusted */
} auth_limits_t;

typedef struct auth_stats {
  uint64_t hashes;     /* password hashes computed (unknown users too) */
  uint64_t cache_hits; /* logins accepted from the cache, no hash */
  uint64_t skipped;    /* queued logins dropped: the client left first */
  uint64_t busy;       /* CONNECTs refused: the queue was full */
  uint64_t blocked;    /* CONNECTs refused: too many failures from there */
  uint64_t queued;     /* gauge: logins waiting now */
  uint64_t running;    /* gauge: hashes on the thread pool now */
} auth_stats_t;

typedef struct auth_verifier auth_verifier_t;
typedef struct auth_job auth_job_t;

/* 0 or -1 (no memory). */
int auth_verifier_create(uv_loop_t *loop, const auth_limits_t *lim,
                         auth_verifier_t **out);
/* New limits (a reload); the cache is emptied, since the users or their
 * passwords may have changed. */
void auth_verifier_configure(auth_verifier_t *v, const auth_limits_t *lim);
/* After uv_run returned (no job is in flight any more). NULL is a no-op. */
void auth_verifier_free(auth_verifier_t *v);
void auth_verifier_stats(const auth_verifier_t *v, auth_stats_t *out);

/* The verdict on a queued login. */
typedef enum auth_verdict {
  AUTH_GOOD, /* user: who (borrowed from db, which the callee may ref) */
  AUTH_BAD,  /* wrong credentials */
  AUTH_GONE  /* the client left before its turn: not hashed */
} auth_verdict_t;
typedef void (*auth_done_cb)(void *data, auth_verdict_t verdict, auth_db_t *db,
                             const auth_user_t *user);
/* Asked just before a queued login is hashed: is its client still there? */
typedef bool (*auth_alive_cb)(void *data);

/* What auth_verify_start decided. */
typedef enum auth_start {
  AUTH_PENDING = 0, /* queued: cb will run on the loop (unless cancelled) */
  AUTH_ACCEPT,      /* good now (token, or the cache): *user_out set */
  AUTH_REJECT,      /* bad now (wrong token, nothing to check) */
  AUTH_BLOCKED,     /* the address failed too often: refuse */
  AUTH_BUSY,        /* the queue is full: refuse, the client may retry */
  AUTH_NOMEM
} auth_start_t;

/*
 * Verifies credentials. db (may be NULL) and token (may be "") are what
 * the server accepts; user/pass/ctoken are what the client sent (NULL/0
 * when absent; copied); addr is the peer (its failures are counted). A
 * token is compared on the spot; a user's password is hashed on the
 * thread pool (an unknown user's against a stand-in of the same cost),
 * unless alive (may be NULL) says, when its turn comes, that the client
 * has gone.
 */
auth_start_t auth_verify_start(auth_verifier_t *v, auth_job_t **out,
                               auth_db_t *db, const char *token,
                               const char *user, size_t ulen, const char *pass,
                               size_t plen, const char *ctoken, size_t tlen,
                               const struct sockaddr_storage *addr,
                               const auth_user_t **user_out, auth_done_cb cb,
                               auth_alive_cb alive, void *data);
/* The requester is going away: cb will not be called. A job still queued
 * is dropped unhashed; one on the thread pool frees itself when done. */
void auth_verify_cancel(auth_job_t *job);

#endif
