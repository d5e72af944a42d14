/* The kernel path's egress: which interface a packet from the relay's
 * address to a peer leaves by, as the kernel would route it if a socket
 * sent it (RTM_GETROUTE), asked when a flow is installed or re-pointed, and
 * again for every flow after the kernel announces a change of routes or
 * interfaces. A
 * host whose peers sit behind different interfaces (a second uplink,
 * policy routing, containers on several veths) gets each flow out of the
 * right one. */
#ifndef QUIETROOM_RELAY_KFWD_ROUTE_H
#define QUIETROOM_RELAY_KFWD_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kfwd_route {
    int ifindex;     /* the output interface */
    bool local;      /* the peer is an address of this host: leave by loopback */
};

/* A netlink route socket for kfwd_route_get (a bounded wait per answer);
 * -1 on failure. */
int kfwd_route_open(void);

/* The route from src to dst (family AF_INET or AF_INET6, addresses in
 * network byte order, 4 or 16 bytes), asked as request seq (a new number
 * each time: a late answer to an earlier one is skipped). 0, or -1 when
 * there is none or the kernel did not answer. */
int kfwd_route_get(int fd, uint32_t seq, int family, const uint8_t *src, const uint8_t *dst,
                   struct kfwd_route *out);

/* A socket that hears of route, rule, nexthop and interface changes
 * (rtnetlink groups), non-blocking, so that flows follow a route that
 * changes mid-call; -1 on failure. */
int kfwd_route_watch(void);
/* Drains it: 1 if anything changed since the last call, or notices were
 * lost (the socket overran: something changed), else 0. */
int kfwd_route_changed(int fd);

/* Protocol core, no I/O: builds the request into buf (cap bytes) and
 * returns its length (0 if it does not fit); parses an answer of len
 * bytes for request seq. */
size_t kfwd_route_request(uint8_t *buf, size_t cap, uint32_t seq, int family, const uint8_t *src,
                          const uint8_t *dst);
int kfwd_route_parse(const uint8_t *buf, size_t len, uint32_t seq, struct kfwd_route *out);

#endif
