/*
 * Plain TCP as a transport (transport.h): one uv_tcp_t and one
 * uv_timer_t on the loop.
 */
#ifndef TERND_TRANSPORT_TCP_H
#define TERND_TRANSPORT_TCP_H

#include <uv.h>

#include "transport/transport.h"

/* Wraps an accepted socket fd (owned from here on, closed on failure),
 * TCP_NODELAY on. 0 or a libuv error. */
int tcp_transport_open(uv_loop_t *loop, int fd, transport_t **out);

/* t carries TLS (tls.c): a first byte 0x16 is expected, not a mistake
 * to log. */
void tcp_transport_carries_tls(transport_t *t);

#endif
