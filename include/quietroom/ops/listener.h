/* Listening sockets bound exactly where the configuration says. The
 * operator and signaling ports are bound by libwebsockets, which (4.1)
 * turns "127.0.0.1" on an IPv6-capable vhost into [::]: every interface.
 * listener_lws_options() makes it bind the family of the configured
 * address, and listener_verify() checks the result from the kernel's side
 * before the daemon serves anything. */
#ifndef QUIETROOM_LISTENER_H
#define QUIETROOM_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include "quietroom/base/netaddr.h"

/* The libwebsockets vhost options that bind exactly `a`: IPv4 only for an
 * IPv4 address, IPv6 only (IPV6_V6ONLY) for an IPv6 one. */
uint64_t listener_lws_options(const union netaddr *a);

/* Checks every listening TCP socket of this process against the n
 * addresses (ports as bound): each socket must be one of them, and each
 * must have its socket. Returns 0, or -1 with err naming the first socket
 * bound elsewhere or the address without one. */
int listener_verify(const union netaddr *want, unsigned n, char *err, size_t errlen);

#endif
