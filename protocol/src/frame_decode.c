/*
 * Frame decoder: one untrusted body -> a tp_frame_t of views into it.
 *
 * Plain PUB and MSG frames take a one-walk fast path (frame_hot.c). The
 * rest takes three steps: the bounded guard walk (msgpack_guard.c),
 * msgpack_unpack into a zone reused between frames (str/bin objects point
 * into the body, nothing is copied), then a strict mapping of the
 * msgpack_object onto the frame layout of PROTOCOL.md with a precise reason
 * for every refusal.
 */
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_internal.h"
#include "tern_proto/errors.h"
#include "tern_proto/frame.h"

struct tp_decoder {
  msgpack_zone zone;
  char errmsg[160];
};

int tp_decoder_create(tp_decoder_t **out) {
  tp_decoder_t *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return TP_ENOMEM;
  if (!msgpack_zone_init(&d->zone, 8192)) {
    free(d);
    return TP_ENOMEM;
  }
  *out = d;
  return 0;
}

void tp_decoder_destroy(tp_decoder_t *d) {
  if (d == NULL)
    return;
  msgpack_zone_destroy(&d->zone);
  free(d);
}

const char *tp_decoder_errmsg(const tp_decoder_t *d) {
  return d->errmsg;
}

/* State of one decode: what the error messages and the headers need. */
typedef struct ctx {
  tp_decoder_t *d;
  const uint8_t *body;
  size_t len;
  const char *frame; /* "PUB", ... for messages */
  uint32_t opts_index;
} ctx_t;

__attribute__((format(printf, 3, 4))) static int fail(ctx_t *c, int rc,
                                                      const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->d->errmsg, sizeof(c->d->errmsg), fmt, ap);
  va_end(ap);
  return rc;
}

static int get_uint(ctx_t *c, const msgpack_object *o, const char *what,
                    uint64_t *v) {
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    *v = o->via.u64;
    return 0;
  }
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
    return fail(c, TP_EPROTO, "%s %s must not be negative", c->frame, what);
  return fail(c, TP_EPROTO, "%s %s must be an unsigned integer", c->frame,
              what);
}

static int get_u32(ctx_t *c, const msgpack_object *o, const char *what,
                   uint32_t *v) {
  uint64_t u = 0;
  int rc = get_uint(c, o, what, &u);
  if (rc != 0)
    return rc;
  if (u > UINT32_MAX)
    return fail(c, TP_EPROTO, "%s %s is out of range", c->frame, what);
  *v = (uint32_t)u;
  return 0;
}

static int get_str(ctx_t *c, const msgpack_object *o, const char *what,
                   tp_str_t *s) {
  if (o->type != MSGPACK_OBJECT_STR)
    return fail(c, TP_EPROTO, "%s %s must be str", c->frame, what);
  if (!tp__utf8_valid((const uint8_t *)o->via.str.ptr, o->via.str.size))
    return fail(c, TP_EUTF8, "%s %s is not valid UTF-8", c->frame, what);
  /* A present empty str must stay distinguishable from an absent one. */
  s->ptr = o->via.str.size ? o->via.str.ptr : "";
  s->len = o->via.str.size;
  return 0;
}

static int get_bin(ctx_t *c, const msgpack_object *o, const char *what,
                   tp_bytes_t *b) {
  if (o->type != MSGPACK_OBJECT_BIN)
    return fail(c, TP_EPROTO, "%s %s must be bin", c->frame, what);
  b->ptr = (const uint8_t *)o->via.bin.ptr;
  b->len = o->via.bin.size;
  return 0;
}

static int get_bool(ctx_t *c, const msgpack_object *o, const char *what,
                    bool *v) {
  if (o->type != MSGPACK_OBJECT_BOOLEAN)
    return fail(c, TP_EPROTO, "%s %s must be bool", c->frame, what);
  *v = o->via.boolean;
  return 0;
}

/*
 * Checks that the headers value is a map of valid str to str, then points
 * h at its raw bytes inside the body so they can be forwarded verbatim.
 */
static int get_headers(ctx_t *c, const msgpack_object *o, tp_headers_t *h) {
  if (o->type != MSGPACK_OBJECT_MAP)
    return fail(c, TP_EPROTO, "%s headers must be a map", c->frame);
  const msgpack_object_map *m = &o->via.map;
  for (uint32_t i = 0; i < m->size; i++) {
    const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
    if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR)
      return fail(c, TP_EPROTO, "%s headers must map str to str", c->frame);
    if (!tp__utf8_valid((const uint8_t *)k->via.str.ptr, k->via.str.size) ||
        !tp__utf8_valid((const uint8_t *)v->via.str.ptr, v->via.str.size))
      return fail(c, TP_EUTF8, "%s header is not valid UTF-8", c->frame);
  }
  size_t off, size;
  if (tp__mp_locate(c->body, c->len, c->opts_index, "headers", &off, &size) !=
      0)
    return fail(c, TP_EPROTO, "%s headers could not be located", c->frame);
  h->raw = c->body + off;
  h->len = (uint32_t)size;
  h->count = m->size;
  return 0;
}

/*
 * Applies one known option (index into the frame's key list) to f.
 * Returning non-zero stops the walk with that error.
 */
typedef int (*opt_fn)(ctx_t *c, tp_frame_t *f, int key,
                      const msgpack_object *v);

/*
 * Walks an options map: keys that are not str or not in keys[] are ignored
 * (forward compatibility); a known key given twice is an error, since "last
 * wins" would let two peers read one frame differently; a nil value counts
 * as absent. *given gets a bitmask of the known keys with a non-nil value.
 */
static int walk_opts(ctx_t *c, tp_frame_t *f, const msgpack_object *o,
                     const char *const *keys, int nkeys, opt_fn apply,
                     unsigned *given) {
  if (o->type != MSGPACK_OBJECT_MAP)
    return fail(c, TP_EPROTO, "%s opts must be a map", c->frame);
  unsigned seen = 0;
  *given = 0;
  const msgpack_object_map *m = &o->via.map;
  for (uint32_t i = 0; i < m->size; i++) {
    const msgpack_object *k = &m->ptr[i].key;
    if (k->type != MSGPACK_OBJECT_STR)
      continue;
    for (int j = 0; j < nkeys; j++) {
      if (strlen(keys[j]) != k->via.str.size ||
          memcmp(keys[j], k->via.str.ptr, k->via.str.size) != 0)
        continue;
      if (seen & (1u << j))
        return fail(c, TP_EPROTO, "%s option %s given twice", c->frame,
                    keys[j]);
      seen |= 1u << j;
      if (m->ptr[i].val.type == MSGPACK_OBJECT_NIL)
        break;
      *given |= 1u << j;
      int rc = apply(c, f, j, &m->ptr[i].val);
      if (rc != 0)
        return rc;
      break;
    }
  }
  return 0;
}

static const char *const hello_keys[] = {
    "proto",     "server",        "server_id",    "max_payload",
    "max_frame", "auth_required", "heartbeat_ms", "cluster_urls"};

static int hello_opt(ctx_t *c, tp_frame_t *f, int key,
                     const msgpack_object *v) {
  tp_hello_t *h = &f->u.hello;
  switch (key) {
  case 0:
    return get_u32(c, v, "proto", &h->proto);
  case 1:
    return get_str(c, v, "server", &h->server);
  case 2:
    return get_str(c, v, "server_id", &h->server_id);
  case 3:
    return get_uint(c, v, "max_payload", &h->max_payload);
  case 4:
    return get_uint(c, v, "max_frame", &h->max_frame);
  case 5:
    return get_bool(c, v, "auth_required", &h->auth_required);
  case 6:
    return get_uint(c, v, "heartbeat_ms", &h->heartbeat_ms);
  default:
    return get_str(c, v, "cluster_urls", &h->cluster_urls);
  }
}

static const char *const connect_keys[] = {"proto", "name", "user",   "pass",
                                           "token", "echo", "verbose"};

static int connect_opt(ctx_t *c, tp_frame_t *f, int key,
                       const msgpack_object *v) {
  tp_connect_t *k = &f->u.connect;
  switch (key) {
  case 0:
    return get_u32(c, v, "proto", &k->proto);
  case 1:
    return get_str(c, v, "name", &k->name);
  case 2:
    return get_str(c, v, "user", &k->user);
  case 3:
    return get_str(c, v, "pass", &k->pass);
  case 4:
    return get_str(c, v, "token", &k->token);
  case 5:
    return get_bool(c, v, "echo", &k->echo);
  default:
    return get_bool(c, v, "verbose", &k->verbose);
  }
}

static const char *const pub_keys[] = {"reply", "headers", "ack", "retain",
                                       "ttl_ms"};

static int pub_opt(ctx_t *c, tp_frame_t *f, int key, const msgpack_object *v) {
  tp_pub_t *p = &f->u.pub;
  switch (key) {
  case 0:
    return get_str(c, v, "reply", &p->reply);
  case 1:
    return get_headers(c, v, &p->headers);
  case 2:
    p->has_ack = true;
    return get_uint(c, v, "ack", &p->ack);
  case 3:
    return get_bool(c, v, "retain", &p->retain);
  default:
    return get_uint(c, v, "ttl_ms", &p->ttl_ms);
  }
}

static const char *const sub_keys[] = {"queue", "max_msgs", "max_bytes",
                                       "overflow"};

static int sub_opt(ctx_t *c, tp_frame_t *f, int key, const msgpack_object *v) {
  tp_sub_t *s = &f->u.sub;
  tp_str_t name = {NULL, 0};
  int rc;
  switch (key) {
  case 0:
    return get_str(c, v, "queue", &s->queue);
  case 1:
    return get_uint(c, v, "max_msgs", &s->max_msgs);
  case 2:
    return get_uint(c, v, "max_bytes", &s->max_bytes);
  default:
    rc = get_str(c, v, "overflow", &name);
    if (rc != 0)
      return rc;
    s->overflow = tp_overflow_parse(name.ptr, name.len);
    if (s->overflow == TP_OVERFLOW_UNSET)
      return fail(c, TP_EPROTO,
                  "SUB overflow must be one of block, "
                  "drop_oldest, drop_newest, disconnect");
    return 0;
  }
}

static const char *const msg_keys[] = {"reply", "headers", "retained"};

static int msg_opt(ctx_t *c, tp_frame_t *f, int key, const msgpack_object *v) {
  tp_msg_t *m = &f->u.msg;
  switch (key) {
  case 0:
    return get_str(c, v, "reply", &m->reply);
  case 1:
    return get_headers(c, v, &m->headers);
  default:
    return get_bool(c, v, "retained", &m->retained);
  }
}

#define NKEYS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Element i, or NULL (with the error set) when the array is shorter. */
static const msgpack_object *need(ctx_t *c, const msgpack_object_array *a,
                                  uint32_t i, const char *what, int *rc) {
  if (i < a->size)
    return &a->ptr[i];
  *rc = fail(c, TP_EPROTO, "%s missing %s", c->frame, what);
  return NULL;
}

/* Optional trailing element i: NULL when absent or nil. */
static const msgpack_object *maybe(const msgpack_object_array *a, uint32_t i) {
  if (i >= a->size || a->ptr[i].type == MSGPACK_OBJECT_NIL)
    return NULL;
  return &a->ptr[i];
}

/*
 * Maps the array onto f. Each case reads its required elements in order
 * and stops at the first problem; elements beyond the layout are ignored.
 */
static int map_frame(ctx_t *c, const msgpack_object_array *a, tp_frame_t *f) {
  const msgpack_object *o, *o2, *o3;
  unsigned given = 0;
  int rc = 0;
  switch (f->type) {
  case TP_HELLO:
  case TP_CONNECT: {
    bool hello = f->type == TP_HELLO;
    if ((o = need(c, a, 1, hello ? "info" : "opts", &rc)) == NULL)
      return rc;
    c->opts_index = 1;
    if (hello)
      rc = walk_opts(c, f, o, hello_keys, NKEYS(hello_keys), hello_opt, &given);
    else
      rc = walk_opts(c, f, o, connect_keys, NKEYS(connect_keys), connect_opt,
                     &given);
    if (rc == 0 && !(given & 1u))
      rc = fail(c, TP_EPROTO, "%s missing proto", c->frame);
    return rc;
  }
  case TP_PUB:
    if ((o = need(c, a, 1, "topic", &rc)) == NULL ||
        (o2 = need(c, a, 2, "payload", &rc)) == NULL)
      return rc;
    if ((rc = get_str(c, o, "topic", &f->u.pub.topic)) != 0 ||
        (rc = get_bin(c, o2, "payload", &f->u.pub.payload)) != 0)
      return rc;
    c->opts_index = 3;
    if ((o = maybe(a, 3)) != NULL)
      rc = walk_opts(c, f, o, pub_keys, NKEYS(pub_keys), pub_opt, &given);
    return rc;
  case TP_SUB:
    if ((o = need(c, a, 1, "sid", &rc)) == NULL ||
        (o2 = need(c, a, 2, "pattern", &rc)) == NULL)
      return rc;
    if ((rc = get_uint(c, o, "sid", &f->u.sub.sid)) != 0 ||
        (rc = get_str(c, o2, "pattern", &f->u.sub.pattern)) != 0)
      return rc;
    c->opts_index = 3;
    if ((o = maybe(a, 3)) != NULL)
      rc = walk_opts(c, f, o, sub_keys, NKEYS(sub_keys), sub_opt, &given);
    return rc;
  case TP_UNSUB:
    if ((o = need(c, a, 1, "sid", &rc)) == NULL)
      return rc;
    if ((rc = get_uint(c, o, "sid", &f->u.unsub.sid)) != 0)
      return rc;
    if ((o = maybe(a, 2)) != NULL) {
      f->u.unsub.has_max = true;
      rc = get_uint(c, o, "max_msgs", &f->u.unsub.max_msgs);
    }
    return rc;
  case TP_MSG:
    if ((o = need(c, a, 1, "sid", &rc)) == NULL ||
        (o2 = need(c, a, 2, "topic", &rc)) == NULL ||
        (o3 = need(c, a, 3, "payload", &rc)) == NULL)
      return rc;
    if ((rc = get_uint(c, o, "sid", &f->u.msg.sid)) != 0 ||
        (rc = get_str(c, o2, "topic", &f->u.msg.topic)) != 0 ||
        (rc = get_bin(c, o3, "payload", &f->u.msg.payload)) != 0)
      return rc;
    c->opts_index = 4;
    if ((o = maybe(a, 4)) != NULL)
      rc = walk_opts(c, f, o, msg_keys, NKEYS(msg_keys), msg_opt, &given);
    return rc;
  case TP_ERR:
    if ((o = need(c, a, 1, "code", &rc)) == NULL ||
        (o2 = need(c, a, 2, "message", &rc)) == NULL)
      return rc;
    if ((rc = get_u32(c, o, "code", &f->u.err.code)) != 0)
      return rc;
    return get_str(c, o2, "message", &f->u.err.message);
  case TP_PUBACK:
    if ((o = need(c, a, 1, "ack_id", &rc)) == NULL ||
        (o2 = need(c, a, 2, "receivers", &rc)) == NULL)
      return rc;
    if ((rc = get_uint(c, o, "ack_id", &f->u.puback.ack_id)) != 0)
      return rc;
    return get_uint(c, o2, "receivers", &f->u.puback.receivers);
  case TP_DROPPED:
    if ((o = need(c, a, 1, "sid", &rc)) == NULL ||
        (o2 = need(c, a, 2, "count", &rc)) == NULL)
      return rc;
    if ((rc = get_uint(c, o, "sid", &f->u.dropped.sid)) != 0)
      return rc;
    return get_uint(c, o2, "count", &f->u.dropped.count);
  case TP_GOAWAY:
    if ((o = need(c, a, 1, "reason", &rc)) == NULL)
      return rc;
    return get_str(c, o, "reason", &f->u.goaway.reason);
  default: /* PING, PONG, OK: nothing but the type */
    return 0;
  }
}

int tp_frame_decode(tp_decoder_t *d, const uint8_t *body, size_t len,
                    tp_frame_t *f) {
  if (tp__frame_decode_hot(body, len, f)) {
    d->errmsg[0] = '\0';
    return 0;
  }
  return tp__frame_decode_general(d, body, len, f);
}

int tp_frame_next(tp_decoder_t *d, const uint8_t *buf, size_t avail,
                  size_t max_frame, tp_frame_t *f, size_t *used) {
  /* tp_frame_size, inlined: this runs once per frame. */
  *used = 0;
  if (avail < TP_LEN_PREFIX)
    return 0;
  uint32_t len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
                 (uint32_t)buf[2] << 8 | (uint32_t)buf[3];
  if (len > max_frame) {
    snprintf(d->errmsg, sizeof(d->errmsg),
             "frame length %lu exceeds max_frame %lu", (unsigned long)len,
             (unsigned long)max_frame);
    return TP_ETOOBIG;
  }
  if (len == 0) {
    snprintf(d->errmsg, sizeof(d->errmsg), "zero-length frame");
    return TP_EPROTO;
  }
  size_t size = TP_LEN_PREFIX + (size_t)len;
  *used = size;
  if (size > avail)
    return 0;
  const uint8_t *body = buf + TP_LEN_PREFIX;
  if (tp__frame_decode_hot(body, size - TP_LEN_PREFIX, f))
    return 1;
  int rc = tp__frame_decode_general(d, body, size - TP_LEN_PREFIX, f);
  return rc < 0 ? rc : 1;
}

int tp__frame_decode_general(tp_decoder_t *d, const uint8_t *body, size_t len,
                             tp_frame_t *f) {
  ctx_t c = {d, body, len, "frame", 0};
  const char *why = NULL;
  d->errmsg[0] = '\0';
  tp_frame_init(f, 0);

  int rc = tp__mp_guard(body, len, &why);
  if (rc != 0)
    return fail(&c, rc, "%s", why);

  msgpack_zone_clear(&d->zone);
  msgpack_object root;
  size_t off = 0;
  msgpack_unpack_return ur =
      msgpack_unpack((const char *)body, len, &off, &d->zone, &root);
  if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
    return fail(&c, TP_ENOMEM, "out of memory decoding frame");
  if (ur != MSGPACK_UNPACK_SUCCESS || root.type != MSGPACK_OBJECT_ARRAY)
    return fail(&c, TP_EPROTO, "malformed msgpack");

  const msgpack_object_array *a = &root.via.array;
  if (a->size == 0)
    return fail(&c, TP_EPROTO, "empty frame array");
  const msgpack_object *t = &a->ptr[0];
  if (t->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
    return fail(&c, TP_EPROTO, "frame type must be a positive integer");
  if (t->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return fail(&c, TP_EPROTO, "frame type must be an integer");
  if (t->via.u64 < TP_HELLO || t->via.u64 > TP_GOAWAY)
    return fail(&c, TP_ETYPE, "unknown frame type %llu",
                (unsigned long long)t->via.u64);

  tp_frame_init(f, (int)t->via.u64);
  c.frame = tp_frame_type_name(f->type);
  return map_frame(&c, a, f);
}
