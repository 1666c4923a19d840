/*
 * An intrusive, circular, doubly-linked list (the shape of libuv's QUEUE).
 *
 * A node embedded in an object links it into one list; an object that sits
 * in several lists at once embeds one node per list. A detached node points
 * at itself, so "is it linked?" is a pointer test and removal is O(1) and
 * idempotent. The list never allocates or frees anything.
 */
#ifndef TERND_LIST_H
#define TERND_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct list_node {
  struct list_node *next;
  struct list_node *prev;
} list_node_t;

/* The object that holds node n as its member `field`. */
#define LIST_ENTRY(n, type, field)                                             \
  ((type *)(void *)((char *)(n)-offsetof(type, field)))

/* Initializes a list head or a detached node. */
static inline void list_init(list_node_t *n) {
  n->next = n->prev = n;
}
static inline bool list_empty(const list_node_t *head) {
  return head->next == head;
}
/* For a node: true while it is in some list. */
static inline bool list_linked(const list_node_t *n) {
  return n->next != n;
}
static inline list_node_t *list_first(const list_node_t *head) {
  return head->next == head ? NULL : head->next;
}

static inline void list_insert_tail(list_node_t *head, list_node_t *n) {
  n->prev = head->prev;
  n->next = head;
  head->prev->next = n;
  head->prev = n;
}

/* Links n just before pos (pos is a node of a list, not its head). */
static inline void list_insert_before(list_node_t *pos, list_node_t *n) {
  list_insert_tail(pos, n);
}

/* Unlinks n (no-op when detached) and leaves it detached. */
static inline void list_remove(list_node_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = n;
}

/* Moves every node of src into dst (which must be empty or uninitialized);
 * src is left empty. */
static inline void list_move_all(list_node_t *dst, list_node_t *src) {
  if (list_empty(src)) {
    list_init(dst);
    return;
  }
  dst->next = src->next;
  dst->prev = src->prev;
  dst->next->prev = dst;
  dst->prev->next = dst;
  list_init(src);
}

#endif
