/* The kernel path's state, shared by its loader (kfwd_load.c) and its flow
 * keeping (kfwd.c). Not for other files: use kfwd.h. */
#ifndef QUIETROOM_RELAY_KFWD_INT_H
#define QUIETROOM_RELAY_KFWD_INT_H

#include <net/if.h>
#include <stdbool.h>
#include <pthread.h>

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
    int watch_fd;                 /* route and link notices; -1: not heard */
    bool sweeping;                /* routes changed: links' routes being asked again */
    uint32_t sweep_pos;           /* the sweep's place in the active array, downwards */
    uint64_t repointed;           /* flows given a new route, ever */
    uint64_t sweep_repointed;     /* repointed when the sweep began */
    struct kfwd_iface ifaces[QR_LISTEN_MAX];
    unsigned n_ifaces;
    struct kfwd_listen listen[QR_LISTEN_MAX];
    unsigned n_listen;
    char names[QR_LISTEN_MAX * (IF_NAMESIZE + 2)];
    uint32_t max_links;
    struct kfwd_key *installed;   /* per leg (link * 2 + side); family 0: none */
    uint64_t *installed_epoch;    /* per leg: pull_epoch when its flow was installed */
    uint64_t pull_epoch;          /* under the table lock: one more per kfwd_pull_all */

    /* kfwd_pull_all's copy of the map, read without the table lock: one
     * reader at a time (pull_lock, taken before the table lock). Room for
     * every flow; pages are touched only as far as flows were read. */
    pthread_mutex_t pull_lock;
    struct kfwd_key *snap_keys;
    struct kfwd_value *snap_values;

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

/* kfwd_pull_all's steps, for tests that change the table between them:
 * the read's epoch (under the table lock), every flow into snap_* (without
 * it; the number read, or -1), and the fold of those n (under it). */
uint64_t kfwd__pull_begin(struct kfwd *kf);
int64_t kfwd__read_all(struct kfwd *kf);
void kfwd__fold_all(struct kfwd *kf, struct link *links, uint32_t n, uint64_t epoch);

#endif
