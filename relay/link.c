/* Conversions between socket addresses and the packed form legs store. */
#include "link.h"

#include <string.h>

#include "quietroom/base/limits.h"

_Static_assert(sizeof(struct leg_addr) == LEG_ADDR_WORDS * sizeof(uint64_t),
               "a leg address fills its words exactly");
_Static_assert(QR_LISTEN_MAX < LEG_LISTEN_TCP, "a socket index fits leg_addr.listen");

void leg_addr_pack(const union netaddr *a, uint32_t route, struct leg_addr *out)
{
    memset(out, 0, sizeof(*out));
    out->listen = leg_route_is_tcp(route) ? LEG_LISTEN_TCP : (uint8_t)route;
    if (a->sa.sa_family == AF_INET) {
        out->family = AF_INET;
        out->port = a->in.sin_port;
        memcpy(out->ip, &a->in.sin_addr, 4);
    } else if (a->sa.sa_family == AF_INET6) {
        out->family = AF_INET6;
        out->port = a->in6.sin6_port;
        out->scope_id = a->in6.sin6_scope_id;
        memcpy(out->ip, &a->in6.sin6_addr, 16);
    }
    if (leg_route_is_tcp(route))
        out->scope_id = route & ~LEG_ROUTE_TCP;
}

uint32_t leg_addr_route(const struct leg_addr *p)
{
    return p->listen == LEG_LISTEN_TCP ? LEG_ROUTE_TCP | p->scope_id : p->listen;
}

void leg_addr_unpack(const struct leg_addr *p, union netaddr *out)
{
    memset(out, 0, sizeof(*out));
    if (p->family == AF_INET) {
        out->in.sin_family = AF_INET;
        out->in.sin_port = p->port;
        memcpy(&out->in.sin_addr, p->ip, 4);
    } else if (p->family == AF_INET6) {
        out->in6.sin6_family = AF_INET6;
        out->in6.sin6_port = p->port;
        out->in6.sin6_scope_id = p->listen == LEG_LISTEN_TCP ? 0 : p->scope_id;
        memcpy(&out->in6.sin6_addr, p->ip, 16);
    } else {
        out->sa.sa_family = AF_UNSPEC;
    }
}
