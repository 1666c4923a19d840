/*
 * Descriptors: the open-file limit, and listening sockets that keep a
 * spare descriptor so that running out of them is answered, not silent.
 *
 * Every connection is a descriptor, and the default soft limit (often
 * 1024) would refuse clients long before memory runs out, so ternd raises
 * its soft limit to the hard one at startup and budgets what it has (see
 * server.c: client connections stop below the limit, leaving room for the
 * monitoring port).
 *
 * An acceptor is a listening socket polled by the loop and accepted by
 * hand instead of by uv_listen: when accept fails with EMFILE or ENFILE,
 * libuv would accept and close the waiting clients without a word. The
 * acceptor instead closes its spare descriptor (/dev/null, opened at
 * start), accepts one client on it, lets the owner write a short refusal,
 * closes it and opens the spare again (the trick libev and nginx users
 * know).
 */
#ifndef TERND_FDLIMIT_H
#define TERND_FDLIMIT_H

#include <stdbool.h>
#include <uv.h>

/* Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the soft
 * limit in effect afterwards (or -1 when it cannot be read or is
 * unlimited). */
long fdlimit_raise(void);
/* The soft limit now (-1: unlimited or unknown). */
long fdlimit_current(void);
/* Descriptors this process has open (/proc/self/fd), or -1. */
int fdlimit_open_count(void);

typedef struct fd_acceptor fd_acceptor_t;
/* A new client socket (non-blocking, close-on-exec): the callee owns fd. */
typedef void (*fd_accept_cb)(fd_acceptor_t *a, int fd);
/* A client accepted on the spare descriptor at EMFILE/ENFILE: write a
 * short refusal without blocking and return; the acceptor closes fd. */
typedef void (*fd_refuse_cb)(fd_acceptor_t *a, int fd);

struct fd_acceptor {
  uv_poll_t poll; /* private */
  int fd;         /* the listening socket, -1 before listen / after close */
  int spare;      /* /dev/null kept for EMFILE, -1 when none */
  bool paused;
  fd_accept_cb on_accept;
  fd_refuse_cb on_refuse;
  void *data; /* the owner's */
};

/*
 * Binds host:port (numeric IPv4 or IPv6; port 0: ephemeral), listens and
 * starts polling. *bound_port gets the port. 0, or a libuv error code
 * (nothing is left open then).
 */
int fd_acceptor_listen(fd_acceptor_t *a, uv_loop_t *loop, const char *host,
                       int port, int backlog, int *bound_port);
/* Stops / restarts accepting; clients wait in the kernel's backlog. */
void fd_acceptor_pause(fd_acceptor_t *a);
void fd_acceptor_resume(fd_acceptor_t *a);
/* Closes the socket and the spare; close_cb runs for the poll handle
 * (its data is set to data first). Only after a successful listen. */
void fd_acceptor_close(fd_acceptor_t *a, void *data, uv_close_cb close_cb);

#endif
