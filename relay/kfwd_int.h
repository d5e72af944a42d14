/* The kernel path's state, shared by its loader (kfwd_load.c) and its flow
 * keeping (kfwd.c). Not for other files: use kfwd.h. */
#ifndef QUIETROOM_RELAY_KFWD_INT_H
#define QUIETROOM_RELAY_KFWD_INT_H

#include <net/if.h>

#include "bpf/kfwd_abi.h"
#include "kfwd.h"
#include "kfwd_route.h"

struct bpf_object;

struct kfwd_iface {
    int ifindex;
    int link_fd;              /* the TCX link: closing it detaches */
    bool loopback;
    char name[IF_NAMESIZE];
};

/* A listen address as the program sees it. A wildcard address is not
 * eligible: which of the host's addresses a datagram was sent to is not
 * known in advance, so its links stay on the sockets. */
struct kfwd_listen {
    bool eligible;
    uint8_t family;
    uint8_t addr[16];
    uint16_t port;            /* network byte order */
    int ifindex;              /* where the program is attached for it */
};

struct kfwd {
    struct bpf_object *obj;
    int map_fd;
    int route_fd;                 /* kfwd_route.h; used under the table lock */
    uint32_t route_seq;
    struct kfwd_iface ifaces[QR_LISTEN_MAX];
    unsigned n_ifaces;
    struct kfwd_listen listen[QR_LISTEN_MAX];
    unsigned n_listen;
    char names[QR_LISTEN_MAX * (IF_NAMESIZE + 2)];
    uint32_t max_links;
    struct kfwd_key *installed;   /* per leg (link * 2 + side); family 0: none */
    struct kfwd_key *batch_keys;  /* QR_KFWD_BATCH each, for kfwd_pull_all */
    struct kfwd_value *batch_values;

    /* Under the table lock. */
    uint64_t done_packets;        /* of flows removed */
    uint64_t done_bytes;
    uint64_t done_untracked;

    /* Written under the table lock, read by anyone. */
    _Atomic uint32_t flows;
    _Atomic uint64_t packets;
    _Atomic uint64_t bytes;
    _Atomic uint64_t untracked;
    _Atomic uint64_t flow_errors;
    _Atomic uint64_t bypassed;    /* legs, kfwd_check */
};

/* kfwd_start without attaching or dropping anything: the program loaded
 * and its map empty, for tests that run it with BPF_PROG_TEST_RUN. */
struct kfwd *kfwd__open(const union netaddr *listen, unsigned n, uint32_t max_links,
                        enum kfwd_reason *reason, char *err, size_t errlen);
/* The loaded program. */
int kfwd__prog_fd(const struct kfwd *kf);

#endif
