/* The kernel path's map, shared by the program (kfwd.bpf.c, built with
 * -target bpf and QR_BPF) and the relay (kfwd.c): one entry per bound leg
 * whose link forwards in the kernel, keyed by where its packets arrive. */
#ifndef QUIETROOM_RELAY_KFWD_ABI_H
#define QUIETROOM_RELAY_KFWD_ABI_H

#include <linux/bpf.h>
#include <stdint.h>

#include "quietroom/wire/rtpstats.h"

/* kfwd_value.flags */
#define KFWD_NEIGH 0x01u   /* leave through bpf_redirect_neigh (not loopback) */

/* Addresses in network byte order; IPv4 in the first 4 bytes, the rest 0. */
struct kfwd_key {
    uint8_t local[16];     /* the relay's address the packet was sent to */
    uint8_t remote[16];    /* the leg's bound address */
    uint16_t local_port;
    uint16_t remote_port;
    uint8_t family;        /* AF_INET or AF_INET6 */
    uint8_t pad[3];
};

struct kfwd_value {
    struct bpf_spin_lock lock;  /* the program's counters and streams */
    uint32_t ifindex;           /* where the rewritten packet leaves */
    uint8_t src[16];            /* the relay's address toward the peer leg */
    uint8_t dst[16];            /* the peer leg's address */
    uint16_t src_port;
    uint16_t dst_port;
    uint8_t flags;
    uint8_t pad[3];
    uint32_t link;              /* the relay's: whose leg this is */
    uint32_t gen_side;          /* link generation << 1 | side */
    /* Written by the program under lock; read by the relay with BPF_F_LOCK. */
    uint64_t packets;
    uint64_t bytes;             /* UDP payload bytes, as the sockets count */
    uint64_t last_ns;           /* CLOCK_MONOTONIC of the last packet */
    uint64_t untracked;         /* RTP packets of SSRCs beyond the slots */
    uint64_t stack;             /* left to the sockets with their stream counted here */
    struct rtpstats rtp;
};

_Static_assert(sizeof(struct kfwd_key) == 40, "flow key layout");
_Static_assert(sizeof(struct kfwd_value) == 160, "flow value layout");

#endif
