/* Address helpers. Only numeric forms are accepted: the relay never waits
 * on DNS. */
#include "quietroom/base/netaddr.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quietroom/base/hindex.h"

static int netaddr__parse_port(const char *s, uint16_t *port)
{
    char *end;
    unsigned long v;

    if (*s < '0' || *s > '9')
        return -1;
    v = strtoul(s, &end, 10);
    if (*end != '\0' || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

static int netaddr__parse_v6(const char *text, union netaddr *out)
{
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    const char *close = strchr(text, ']');
    char *scope;
    size_t hlen;
    uint16_t port;

    if (close == NULL || close[1] != ':' || (hlen = (size_t)(close - text - 1)) >= sizeof(host))
        return -1;
    memcpy(host, text + 1, hlen);
    host[hlen] = '\0';
    if (netaddr__parse_port(close + 2, &port) != 0)
        return -1;
    if ((scope = strchr(host, '%')) != NULL) {
        *scope++ = '\0';
        if ((out->in6.sin6_scope_id = if_nametoindex(scope)) == 0)
            return -1;
    }
    if (inet_pton(AF_INET6, host, &out->in6.sin6_addr) != 1)
        return -1;
    out->in6.sin6_family = AF_INET6;
    out->in6.sin6_port = htons(port);
    return 0;
}

int netaddr_parse(const char *text, union netaddr *out)
{
    char host[INET_ADDRSTRLEN];
    const char *colon;
    uint16_t port;

    memset(out, 0, sizeof(*out));
    if (text[0] == '[')
        return netaddr__parse_v6(text, out);
    if ((colon = strrchr(text, ':')) == NULL || (size_t)(colon - text) >= sizeof(host))
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    if (netaddr__parse_port(colon + 1, &port) != 0 ||
        inet_pton(AF_INET, host, &out->in.sin_addr) != 1)
        return -1;
    out->in.sin_family = AF_INET;
    out->in.sin_port = htons(port);
    return 0;
}

int netaddr_from_sockaddr(const struct sockaddr *sa, socklen_t len, union netaddr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        out->in = *(const struct sockaddr_in *)sa;
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        out->in6 = *(const struct sockaddr_in6 *)sa;
        out->in6.sin6_flowinfo = 0;
        return 0;
    }
    return -1;
}

const char *netaddr_format(const union netaddr *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (a->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->in.sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, ntohs(a->in.sin_port));
    } else if (a->sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, ntohs(a->in6.sin6_port));
    } else {
        snprintf(buf, len, "-");
    }
    return buf;
}

const char *netaddr_format_host(const union netaddr *a, char *buf, size_t len)
{
    const void *ip = a->sa.sa_family == AF_INET6 ? (const void *)&a->in6.sin6_addr
                                                 : (const void *)&a->in.sin_addr;

    if ((a->sa.sa_family != AF_INET && a->sa.sa_family != AF_INET6) ||
        inet_ntop(a->sa.sa_family, ip, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "-");
    return buf;
}

socklen_t netaddr_len(const union netaddr *a)
{
    return a->sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

bool netaddr_equal(const union netaddr *a, const union netaddr *b)
{
    if (a->sa.sa_family != b->sa.sa_family)
        return false;
    if (a->sa.sa_family == AF_INET)
        return a->in.sin_port == b->in.sin_port && a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
    if (a->sa.sa_family == AF_INET6)
        return a->in6.sin6_port == b->in6.sin6_port &&
               a->in6.sin6_scope_id == b->in6.sin6_scope_id &&
               memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0;
    return false;
}

uint64_t netaddr_hash(const union netaddr *a, uint64_t seed)
{
    uint64_t w[2];

    if (a->sa.sa_family == AF_INET)
        return hindex_mix(seed ^ ((uint64_t)a->in.sin_addr.s_addr << 16 | a->in.sin_port));
    memcpy(w, &a->in6.sin6_addr, 16);
    return hindex_mix(hindex_mix(seed ^ w[0]) ^ w[1] ^ ((uint64_t)a->in6.sin6_port << 48));
}

bool netaddr_is_loopback(const union netaddr *a)
{
    if (a->sa.sa_family == AF_INET)
        return (ntohl(a->in.sin_addr.s_addr) >> 24) == 127;
    return a->sa.sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&a->in6.sin6_addr);
}

bool netaddr_is_wildcard(const union netaddr *a)
{
    if (a->sa.sa_family == AF_INET)
        return a->in.sin_addr.s_addr == htonl(INADDR_ANY);
    return a->sa.sa_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&a->in6.sin6_addr);
}

uint16_t netaddr_port(const union netaddr *a)
{
    return ntohs(a->sa.sa_family == AF_INET6 ? a->in6.sin6_port : a->in.sin_port);
}

void netaddr_set_port(union netaddr *a, uint16_t port)
{
    if (a->sa.sa_family == AF_INET6)
        a->in6.sin6_port = htons(port);
    else
        a->in.sin_port = htons(port);
}
