/* A link joins two legs (side a, side b) of one session; a leg is one
 * browser's ICE-nominated address. Workers read links without locks, so the
 * fields they read are atomics and the address sits behind a sequence lock. */
#ifndef QUIETROOM_RELAY_LINK_H
#define QUIETROOM_RELAY_LINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "quietroom/creds.h"
#include "quietroom/netaddr.h"
#include "quietroom/rtpstats.h"

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
};

#define LEG_ADDR_WORDS 4

struct leg {
    /* Written under the table lock by the binding worker; read by any worker. */
    _Atomic uint32_t addr_seq;                    /* odd while being written */
    _Atomic uint64_t addr_words[LEG_ADDR_WORDS];  /* a union netaddr */
    _Atomic uint32_t listen;                      /* index of the local socket */
    _Atomic uint32_t bound;
    _Atomic uint32_t addr_gen;                    /* bumps on bind, move, unbind */
    _Atomic uint64_t last_check_ms;               /* monotonic: consent */

    /* Single writer: the worker that receives this leg's packets. */
    _Atomic uint64_t rx_packets;
    _Atomic uint64_t rx_bytes;
    _Atomic uint64_t fwd_packets;
    _Atomic uint64_t fwd_bytes;
    _Atomic uint64_t last_seen_ms;                /* wall clock */
    struct rtpstats rtp;

    /* Under the table lock. */
    uint64_t up_ms;                               /* wall clock of first bind */
    uint32_t moves;
};

struct link {
    _Atomic uint32_t gen;      /* changes whenever the slot is reused */
    _Atomic uint32_t state;    /* enum link_state */
    struct creds_leg id;       /* side field unused */
    struct leg leg[2];

    /* Under the table lock. */
    uint32_t active_pos;       /* index in the table's active list */
    uint32_t early_n;
    uint8_t early_to;          /* side the held packets are for */
    uint32_t early[QR_EARLY_PER_LINK];
    uint64_t reuse_after;      /* quiescent epoch sum, while in limbo */
};

/* Counters are written by one thread: load and store, no locked add. */
static inline void link_count(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline uint64_t link_read(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Reads a leg's forwarding address without a lock; retries while a writer is
 * in the middle of a move. */
static inline void leg_load_addr(const struct leg *l, union netaddr *out, uint32_t *listen)
{
    union {
        union netaddr addr;
        uint64_t w[LEG_ADDR_WORDS];
    } u;
    uint32_t s1, s2;

    do {
        s1 = atomic_load_explicit(&l->addr_seq, memory_order_acquire);
        for (int i = 0; i < LEG_ADDR_WORDS; i++)
            u.w[i] = atomic_load_explicit(&l->addr_words[i], memory_order_relaxed);
        *listen = atomic_load_explicit(&l->listen, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&l->addr_seq, memory_order_relaxed);
    } while (s1 != s2 || (s1 & 1u) != 0);
    *out = u.addr;
}

/* Writer side; the caller holds the table lock, so writers never overlap. */
static inline void leg_store_addr(struct leg *l, const union netaddr *addr, uint32_t listen)
{
    union {
        union netaddr addr;
        uint64_t w[LEG_ADDR_WORDS];
    } u = {.w = {0}};
    uint32_t s = atomic_load_explicit(&l->addr_seq, memory_order_relaxed);

    u.addr = *addr;
    atomic_store_explicit(&l->addr_seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < LEG_ADDR_WORDS; i++)
        atomic_store_explicit(&l->addr_words[i], u.w[i], memory_order_relaxed);
    atomic_store_explicit(&l->listen, listen, memory_order_relaxed);
    atomic_store_explicit(&l->addr_seq, s + 2, memory_order_release);
}

static inline enum link_state link_state(const struct link *k)
{
    return (enum link_state)atomic_load_explicit(&k->state, memory_order_acquire);
}

#endif
