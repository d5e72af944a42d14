/* The kernel path: loads relay/bpf/kfwd.bpf.c, attaches it with TCX to the
 * interfaces that hold the relay's listen addresses, and keeps its map in
 * step with the link table: a link whose legs are both bound on UDP gets two
 * flows, and the program forwards their DTLS, RTP and RTCP without waking
 * a worker. Every flow change runs under the table lock, at the moment the
 * table changes, so revocation, expiry, consent loss and moves take effect
 * in the kernel when they do in the table. */
#ifndef QUIETROOM_RELAY_KFWD_H
#define QUIETROOM_RELAY_KFWD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "link.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/netaddr.h"

enum kfwd_mode {
    KFWD_AUTO = 0,   /* the kernel path where it loads, the sockets otherwise */
    KFWD_ON,         /* the kernel path or no relay */
    KFWD_OFF,
};

/* Why the kernel path is off: the `reason` label of
 * quietroom_relay_kernel_path_fallback. */
enum kfwd_reason {
    KFWD_REASON_NONE = 0,
    KFWD_REASON_OFF,            /* kernel-forward off */
    KFWD_REASON_NOT_BUILT,      /* built without clang or libbpf */
    KFWD_REASON_NO_PRIVILEGES,  /* EPERM: no CAP_BPF or CAP_NET_ADMIN */
    KFWD_REASON_UNSUPPORTED,    /* no BPF, or no TCX (kernel before 6.6) */
    KFWD_REASON_LOAD_FAILED,
    KFWD_REASON_ATTACH_FAILED,
    KFWD_REASON_NO_INTERFACE,   /* no listen address is on an interface */
    KFWD_REASON_COUNT
};

const char *kfwd_mode_name(enum kfwd_mode m);
/* Parses "auto", "on" or "off"; -1 otherwise. */
int kfwd_mode_parse(const char *s, enum kfwd_mode *out);
const char *kfwd_reason_name(enum kfwd_reason r);

struct kfwd;

/* Loads and attaches the program for the n listen addresses, sized for
 * max_links links. Returns NULL with *reason (and a sentence in err) when
 * the kernel path is off; the caller decides what that means for mode.
 * Runs before any thread exists: the caller then gives up the privileges
 * it needed (caps.h), and capabilities are per thread. */
struct kfwd *kfwd_start(enum kfwd_mode mode, const union netaddr *listen, unsigned n,
                        uint32_t max_links, enum kfwd_reason *reason, char *err, size_t errlen);
/* The listen addresses again once their sockets are bound (a port 0 is
 * known then), before the table is handed over (table_set_kfwd). */
void kfwd_bound(struct kfwd *kf, const union netaddr *listen, unsigned n);
/* Detaches (closing the links) and frees; NULL is fine. */
void kfwd_free(struct kfwd *kf);

/* All of these run under the table lock. */

/* Makes the kernel's flows of link idx match it: installs, re-points or
 * removes them. Removing one folds its final counters into its leg. */
void kfwd_update(struct kfwd *kf, struct link *k, uint32_t idx);
/* Once per housekeeping round: after the kernel announced a route, rule or
 * interface change, asks every active link's routes again (spread over
 * rounds, QR_KFWD_SWEEP_LINKS) and re-points the flows whose egress
 * changed; a flow with no route any more goes back to the sockets, and one
 * whose route is back is installed again. */
void kfwd_follow_routes(struct kfwd *kf, struct link *links, const uint32_t *active,
                        uint32_t n_active);
/* Removes the link's flows (before a leg is reported down, so that the
 * record holds every packet). */
void kfwd_withdraw(struct kfwd *kf, struct link *k, uint32_t idx);
/* Reads the kernel's counters of link idx into its legs now. */
void kfwd_pull(struct kfwd *kf, struct link *k, uint32_t idx);
/* Housekeeping: a leg whose packets keep reaching the sockets although
 * its flow is installed (they arrive on an interface without the program:
 * a client on this host sending to a NIC's address, asymmetric routes)
 * would have no stream figures, since the worker leaves them to the
 * program: its flow goes, until it binds again; its peer's flow stays. */
void kfwd_check(struct kfwd *kf, struct link *k, uint32_t idx);
/* Reads every flow's counters into its leg, and the totals. The one call
 * made WITHOUT the table lock: the map read (batched syscalls, 13-16 ms for
 * 32,768 flows, docs/bench/kernel-path.md) runs outside it, and only the
 * fold into the legs (2-3 ms) takes table_lock, so STUN binds and moves
 * wait that much less for a scrape. A flow installed or removed meanwhile
 * is left out of the fold (a removed one's counts are in the totals
 * already) and totals are only raised, so they never go backwards and
 * nothing is counted twice. */
void kfwd_pull_all(struct kfwd *kf, struct link *links, pthread_mutex_t *table_lock);

/* What /metrics and `stats` show; any thread. */
struct kfwd_totals {
    uint32_t flows;
    uint64_t packets;        /* forwarded by the program, ever */
    uint64_t bytes;
    uint64_t rtp_untracked;  /* RTP of SSRCs beyond the slots, in the program */
    uint64_t flow_errors;    /* installs that failed: those links stayed on the sockets */
    uint64_t bypassed;       /* links returned to the sockets by kfwd_check */
};
void kfwd_totals(const struct kfwd *kf, struct kfwd_totals *out);
/* The attached interfaces' names, comma-separated, and how many. */
const char *kfwd_interfaces(const struct kfwd *kf, unsigned *n);

#endif
