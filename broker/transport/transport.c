/*
 * What every transport shares (transport.h).
 */
#include "transport/transport.h"

#include <netinet/in.h>
#include <stdio.h>

void transport_addr_name(const struct sockaddr_storage *ss, char *out,
                         size_t cap) {
  char ip[48] = "";
  snprintf(out, cap, "?");
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, ip, sizeof ip);
    snprintf(out, cap, "%s:%d", ip, ntohs(a->sin_port));
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, ip, sizeof ip);
    snprintf(out, cap, "[%s]:%d", ip, ntohs(a->sin6_port));
  }
}
