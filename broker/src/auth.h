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
#include <stdio.h>
#include <uv.h>

typedef struct auth_list {
  char **pats; /* owned, validated patterns */
  size_t n, cap;
} auth_list_t;

typedef struct auth_user {
  char *name; /* owned */
  char *hash; /* owned, crypto_pwhash_str format, or NULL (invalid) */
  auth_list_t pub_allow, pub_deny, sub_allow, sub_deny;
  bool pub_allow_set, sub_allow_set; /* an allow list was given */
} auth_user_t;

typedef struct auth_db {
  int refs;
  auth_user_t *users;
  size_t n, cap;
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
 * deny_publish, deny_subscribe), creating the user on first use. Lists are
 * separated by commas or spaces and add to what earlier lines gave. 0, or
 * -1 with a message in err.
 */
int auth_db_set(auth_db_t *db, const char *user, const char *key,
                const char *val, char *err, size_t errlen);
/* Checks that every user has a password. 0, or -1 with a message. */
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

/* Hashes password (argon2id, libsodium's interactive limits) into out
 * (at least AUTH_HASH_MAX bytes). 0 or -1. */
#define AUTH_HASH_MAX 128
int auth_hash_password(const char *password, char *out, size_t cap);

/* ---- asynchronous verification ----------------------------------------- */

typedef struct auth_job auth_job_t;
/* ok: the credentials are good; user: who they belong to (NULL for the
 * shared token), borrowed from db, which the callee may ref. */
typedef void (*auth_done_cb)(void *data, bool ok, auth_db_t *db,
                             const auth_user_t *user);

/*
 * Verifies credentials on the thread pool. db (may be NULL) and token (may
 * be "") are what the server accepts; user/pass/ctoken are what the client
 * sent (NULL/0 when absent; copied). cb runs on the loop, unless the job
 * was cancelled first. 0, or a libuv error (cb never runs).
 */
int auth_verify_start(uv_loop_t *loop, auth_job_t **out, auth_db_t *db,
                      const char *token, const char *user, size_t ulen,
                      const char *pass, size_t plen, const char *ctoken,
                      size_t tlen, auth_done_cb cb, void *data);
/* The requester is going away: cb will not be called; the job frees
 * itself when the pool is done with it. */
void auth_verify_cancel(auth_job_t *job);

#endif
