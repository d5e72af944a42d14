/* A link joins two legs (side a, side b) of one session; a leg is one
 * browser's ICE-nominated address. Every link slot exists from start-up and
 * workers read them without locks, so the layout is kept small and the
 * fields other threads read are atomics. */
#ifndef QUIETROOM_RELAY_LINK_H
#define QUIETROOM_RELAY_LINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "quietroom/wire/creds.h"
#include "quietroom/base/netaddr.h"
#include "quietroom/wire/rtpstats.h"

enum link_state {
    LINK_FREE = 0,   /* slot unused */
    LINK_ACTIVE,     /* forwarding */
    LINK_REVOKED,    /* control endpoint revoked the session */
    LINK_EXPIRED,    /* credentials expired */
    LINK_CLOSED,     /* both legs lost consent, or shutdown */
};

/* Why a leg stopped; also the "reason" of leg.down audit records. */
enum leg_down_reason {
    LEG_DOWN_CONSENT,
    LEG_DOWN_REVOKED,
    LEG_DOWN_EXPIRED,
    LEG_DOWN_SHUTDOWN,
    LEG_DOWN_SUPERSEDED,   /* another leg was nominated from its address */
    LEG_DOWN_CLOSED,       /* its TCP connection closed */
};

/* A route says how a leg's packets leave: below LEG_ROUTE_TCP, the index
 * of the worker's UDP socket; LEG_ROUTE_TCP | slot, the ICE-TCP connection
 * in that slot (tcp.h). */
#define LEG_ROUTE_TCP 0x80000000u
/* leg_addr.listen of a leg on a TCP connection. */
#define LEG_LISTEN_TCP 0xffu

static inline bool leg_route_is_tcp(uint32_t route)
{
    return (route & LEG_ROUTE_TCP) != 0;
}

/* A leg's address as stored: 24 bytes where a sockaddr_in6 takes 28, and
 * the route to it. family 0 means "not bound". A TCP leg's key is its
 * connection: the remote address and the connection's slot. */
struct leg_addr {
    uint8_t ip[16];       /* IPv4 in the first 4 bytes */
    uint32_t scope_id;    /* UDP: IPv6 scope; TCP: the connection's slot */
    uint16_t port;        /* network byte order */
    uint8_t family;       /* AF_INET, AF_INET6 or 0 */
    uint8_t listen;       /* index of the local UDP socket, or LEG_LISTEN_TCP */
};

#define LEG_ADDR_WORDS 3
#define LEG_NEVER UINT32_MAX

/* Times in a link are milliseconds after its birth (monotonic), in 32 bits:
 * a link never outlives its credentials (at most a day). */
struct leg {
    /* A struct leg_addr, written only inside the address map's write
     * section (addrmap.h) and read inside its read section. */
    _Atomic uint64_t addr[LEG_ADDR_WORDS];
    _Atomic uint32_t last_check;   /* last valid check: consent */

    /* Single writer: the worker that receives this leg's packets. */
    _Atomic uint32_t last_seen;
    _Atomic uint32_t rx_packets;
    _Atomic uint32_t fwd_packets;
    _Atomic uint64_t rx_bytes;
    _Atomic uint64_t fwd_bytes;
    /* A flow of this leg is in the kernel path (kfwd.c): the program keeps
     * rtp and the worker leaves it alone. Read per packet, so it sits with
     * the counters the worker writes anyway. */
    _Atomic bool k_owned;
    /* Worker: packets of this leg it forwarded while k_owned. */
    _Atomic uint32_t k_punted;

    /* The kernel path's share, written under the table lock: what the
     * program forwarded from this leg. Readers add it to the socket
     * counters above (leg_rx_packets...). */
    _Atomic uint32_t k_last_seen;
    _Atomic uint64_t k_packets;
    _Atomic uint64_t k_bytes;

    /* Under the table lock. */
    uint64_t pref;                 /* the bound path's rank (table_path_pref) */
    uint64_t k_done_packets;       /* of the leg's flows removed so far */
    uint64_t k_done_bytes;
    uint32_t k_punted_base;        /* k_punted when its flow was installed */
    uint32_t k_punted_seen;        /* k_punted at the last check (kfwd_check) */
    /* Its packets were seen to bypass the program (kfwd_check): no flow
     * for it until it binds again. Its peer's flow stays. */
    bool k_refused;
    uint32_t up;                   /* first bind; LEG_NEVER before */
    uint16_t moves;
    /* The worker's, or the kernel path's while k_owned (see above). */
    struct rtpstats rtp;
};

struct link {
    _Atomic uint32_t gen;          /* changes whenever the slot is reused */
    _Atomic uint32_t state;        /* enum link_state */
    struct creds_leg id;           /* side field unused */
    uint64_t born_ms;              /* monotonic; the base of leg times */
    struct leg leg[2];

    /* Under the table lock. */
    uint32_t pos;                  /* active: index in the active list;
                                    * closed: the tick it closed at */
    uint16_t early_head;           /* early DTLS held for early_to (early.h) */
    uint8_t early_n;
    uint8_t early_to;
};

/* Counters are written by one thread: load and store, no locked add. */
static inline void link_count32(_Atomic uint32_t *c, uint32_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline void link_count64(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline enum link_state link_state(const struct link *k)
{
    return (enum link_state)atomic_load_explicit(&k->state, memory_order_acquire);
}

/* Milliseconds since the link's birth, for the leg time fields. */
static inline uint32_t link_time(const struct link *k, uint64_t mono_ms)
{
    return (uint32_t)(mono_ms - k->born_ms);
}

/* A leg's counters over both paths (sockets and kernel). */
static inline uint64_t leg_rx_packets(const struct leg *l)
{
    return atomic_load_explicit(&l->rx_packets, memory_order_relaxed) +
           atomic_load_explicit(&l->k_packets, memory_order_relaxed);
}

static inline uint64_t leg_rx_bytes(const struct leg *l)
{
    return atomic_load_explicit(&l->rx_bytes, memory_order_relaxed) +
           atomic_load_explicit(&l->k_bytes, memory_order_relaxed);
}

/* Every packet the program counts, it forwards. */
static inline uint64_t leg_fwd_packets(const struct leg *l)
{
    return atomic_load_explicit(&l->fwd_packets, memory_order_relaxed) +
           atomic_load_explicit(&l->k_packets, memory_order_relaxed);
}

static inline uint64_t leg_fwd_bytes(const struct leg *l)
{
    return atomic_load_explicit(&l->fwd_bytes, memory_order_relaxed) +
           atomic_load_explicit(&l->k_bytes, memory_order_relaxed);
}

/* Link time of the last packet on either path. */
static inline uint32_t leg_last_seen(const struct leg *l)
{
    uint32_t s = atomic_load_explicit(&l->last_seen, memory_order_relaxed);
    uint32_t k = atomic_load_explicit(&l->k_last_seen, memory_order_relaxed);

    return k > s ? k : s;
}

/* Packs an address and its route; unpacks back to a sockaddr (a TCP leg's
 * remote address) and to the route. */
void leg_addr_pack(const union netaddr *a, uint32_t route, struct leg_addr *out);
void leg_addr_unpack(const struct leg_addr *p, union netaddr *out);
uint32_t leg_addr_route(const struct leg_addr *p);

union leg_addr_words {
    struct leg_addr a;
    uint64_t w[LEG_ADDR_WORDS];
};

/* Relaxed word-wise access; consistent only inside the address map's
 * sections (or under the table lock, which excludes writers). */
static inline void leg_addr_load(const struct leg *l, struct leg_addr *out)
{
    union leg_addr_words u;

    for (int i = 0; i < LEG_ADDR_WORDS; i++)
        u.w[i] = atomic_load_explicit(&l->addr[i], memory_order_relaxed);
    *out = u.a;
}

static inline void leg_addr_store(struct leg *l, const struct leg_addr *a)
{
    union leg_addr_words u = {.a = *a};

    for (int i = 0; i < LEG_ADDR_WORDS; i++)
        atomic_store_explicit(&l->addr[i], u.w[i], memory_order_relaxed);
}

static inline bool leg_addr_is(const struct leg *l, const struct leg_addr *a)
{
    union leg_addr_words u = {.a = *a};

    for (int i = 0; i < LEG_ADDR_WORDS; i++) {
        if (atomic_load_explicit(&l->addr[i], memory_order_relaxed) != u.w[i])
            return false;
    }
    return true;
}

static inline bool leg_bound(const struct leg *l)
{
    struct leg_addr a;

    leg_addr_load(l, &a);
    return a.family != 0;
}

#endif
