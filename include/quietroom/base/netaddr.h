/* Socket addresses: parsing "ADDR:PORT" and "[V6ADDR]:PORT", formatting,
 * comparing and hashing the IPv4/IPv6 forms the relay handles. */
#ifndef QUIETROOM_NETADDR_H
#define QUIETROOM_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Long enough for "[v6 address%scope]:65535". */
#define NETADDR_STRLEN 64

/* An IPv4 or IPv6 address with port, small enough to copy per packet. */
union netaddr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* Parses a numeric address (no name lookup). Returns 0 or -1. */
int netaddr_parse(const char *text, union netaddr *out);
/* Copies a kernel-filled address; -1 unless AF_INET or AF_INET6. */
int netaddr_from_sockaddr(const struct sockaddr *sa, socklen_t len, union netaddr *out);
/* Writes "1.2.3.4:5" or "[::1]:5" into buf (NETADDR_STRLEN bytes). */
const char *netaddr_format(const union netaddr *a, char *buf, size_t len);
/* Writes the bare address ("1.2.3.4", "::1"), as libwebsockets wants an
 * interface to listen on. */
const char *netaddr_format_host(const union netaddr *a, char *buf, size_t len);
socklen_t netaddr_len(const union netaddr *a);
bool netaddr_equal(const union netaddr *a, const union netaddr *b);
/* Keyed hash for hash tables; seed should be random per process. */
uint64_t netaddr_hash(const union netaddr *a, uint64_t seed);
bool netaddr_is_loopback(const union netaddr *a);
bool netaddr_is_wildcard(const union netaddr *a);
uint16_t netaddr_port(const union netaddr *a);
void netaddr_set_port(union netaddr *a, uint16_t port);

#endif
