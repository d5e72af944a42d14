/* Relay counters: one array per worker, written only by that worker, summed
 * when someone reads them. Also the JSON views the control endpoint serves. */
#ifndef QUIETROOM_RELAY_STATS_H
#define QUIETROOM_RELAY_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "quietroom/audit/audit.h"
#include "quietroom/audit/audit_ship.h"
#include "quietroom/wire/creds.h"
#include "quietroom/base/limits.h"
#include "kfwd.h"
#include "table.h"

enum stat_id {
    STAT_RX_PACKETS,
    STAT_RX_BYTES,
    STAT_FWD_PACKETS,
    STAT_FWD_BYTES,
    STAT_STUN_REQUESTS,
    STAT_STUN_SUCCESS,
    STAT_STUN_BAD_REQUEST,
    STAT_STUN_UNAUTHENTICATED,
    STAT_STUN_UNKNOWN_ATTRIBUTE,
    STAT_STUN_ROLE_CONFLICT,
    STAT_STUN_IGNORED_CREDENTIALS,  /* undecodable ufrag, unknown key id, bad version */
    STAT_STUN_IGNORED_EXPIRED,
    STAT_STUN_IGNORED_REVOKED,
    STAT_STUN_IGNORED_DRAINING,     /* a new session while draining */
    STAT_STUN_IGNORED_OTHER,        /* not a Binding request, no FINGERPRINT */
    STAT_STUN_IGNORED_FORGED,       /* v2 ufrag whose MAC does not verify */
    STAT_STUN_IGNORED_V1,           /* v1 ufrag while accept-creds-v1 is off */
    STAT_STUN_ERRORS_LIMITED,       /* error response withheld: QR_STUN_ERRORS_PER_S */
    STAT_LEGS_BOUND,
    STAT_LEGS_MOVED,
    STAT_LEGS_SUPERSEDED,           /* another leg was nominated from its address */
    STAT_LEGS_KEPT,                 /* nominated elsewhere, kept on its preferred live path */
    STAT_RTP_UNTRACKED,             /* RTP of SSRCs beyond a leg's stream slots */
    STAT_KFWD_USERSPACE,            /* a kernel-path leg's packet that reached a socket */
    STAT_EARLY_HELD,
    STAT_EARLY_FLUSHED,
    STAT_DROP_MALFORMED,
    STAT_DROP_TRUNCATED,
    STAT_DROP_PROTOCOL,             /* ZRTP, TURN channel, QUIC, unassigned */
    STAT_DROP_UNBOUND,              /* DTLS/RTP from an address no leg is bound to */
    STAT_DROP_INACTIVE,             /* link revoked, expired or closing */
    STAT_DROP_PEER_UNBOUND,
    STAT_DROP_EARLY_FULL,
    STAT_DROP_AMPLIFICATION,        /* response would have been larger than request */
    STAT_DROP_TABLE_FULL,
    STAT_DROP_SEND_FAILED,
    STAT_TCP_RX_PACKETS,            /* frames from TCP legs (also in STAT_RX_*) */
    STAT_TCP_RX_BYTES,
    STAT_TCP_FWD_PACKETS,           /* frames queued to TCP legs (also in STAT_FWD_*) */
    STAT_TCP_FWD_BYTES,
    STAT_TCP_HANDED_OVER,           /* frames handed to the worker owning the connection */
    STAT_TCP_ACCEPTED,
    STAT_TCP_REFUSED_FULL,          /* max-tcp-connections open already */
    STAT_TCP_REFUSED_WAITING,       /* QR_TCP_WAITING_MAX waiting for their leg to bind */
    STAT_TCP_REFUSED_ERROR,         /* out of memory or file descriptors */
    STAT_TCP_CLOSED_NO_CHECK,       /* no valid check within QR_TCP_CHECK_TIMEOUT_MS */
    STAT_TCP_CLOSED_NOT_BOUND,      /* its leg not bound to it within QR_TCP_BIND_TIMEOUT_MS */
    STAT_TCP_CLOSED_BAD_FIRST,      /* first frame not a valid check */
    STAT_TCP_CLOSED_BAD_FRAME,      /* zero length, or longer than QR_TCP_FRAME_MAX */
    STAT_TCP_CLOSED_CONSENT,        /* no valid check for consent-timeout */
    STAT_TCP_CLOSED_UNBOUND,        /* its leg moved elsewhere or went down */
    STAT_TCP_CLOSED_PEER,           /* the peer closed or reset it */
    STAT_TCP_CLOSED_ERROR,          /* a write or epoll call failed here */
    STAT_TCP_OTHER_LEG,             /* a check for another leg on a connection: ignored */
    STAT_TCP_DROP_SLOW,             /* write buffer full: the reader is too slow */
    STAT_TCP_DROP_HANDOFF,          /* the owning worker's inbox was full */
    STAT_TCP_DROP_GONE,             /* its connection closed, or carries no bound leg */
    STAT_BUSY_NS,                   /* time spent handling batches */
    STAT_COUNT
};

/* Where a counter goes in the JSON: {"group": {"name": value}}. */
struct stat_name {
    const char *group;
    const char *name;
};
extern const struct stat_name stat_names[STAT_COUNT];

struct stat_counters {
    _Atomic uint64_t v[STAT_COUNT];
};

/* Single-writer increment: a load and a store, no locked instruction. */
static inline void stat_add(struct stat_counters *c, enum stat_id id, uint64_t n)
{
    atomic_store_explicit(&c->v[id], atomic_load_explicit(&c->v[id], memory_order_relaxed) + n,
                          memory_order_relaxed);
}

struct relay;

/* Loss buckets of the live distribution and the leg-down histogram. */
#define STATS_LOSS_BOUNDS 7
extern const double stats_loss_bounds[STATS_LOSS_BOUNDS];
/* The bucket of a loss ratio: the first bound it does not exceed. */
unsigned stats_loss_bucket(double loss);

/* Everything the aggregate views show, read once: counters summed over
 * workers, table usage, live RTP loss, lifecycle state. */
struct stats_view {
    uint64_t sum[STAT_COUNT];
    uint64_t busy_ns[QR_WORKERS_MAX];
    double busy_ratio[QR_WORKERS_MAX];   /* over the last QR_OPS_WINDOW_MS */
    unsigned n_workers;
    struct table_usage usage;
    uint32_t capacity;
    uint32_t sessions;                   /* distinct sessions with an active link */
    uint32_t loss_streams[STATS_LOSS_BOUNDS + 1];  /* active streams per bucket */
    bool draining, ready, healthy;
    uint64_t drain_left_s;               /* draining: until drain-timeout closes the links */
    bool has_audit;
    struct audit_counters audit;
    bool has_ship;                       /* audit records go to a syslog collector */
    struct audit_ship_counters ship;
    uint64_t uptime_s;
    /* The kernel path, whose packets are also in sum[] (received,
     * forwarded, rtp untracked). */
    bool kfwd_active;
    enum kfwd_mode kfwd_mode;
    enum kfwd_reason kfwd_reason;        /* when not active */
    struct kfwd_totals kfwd;
};

/* Fills v. Takes the table lock (never a worker's), so any thread may. */
void stats_view(struct relay *r, struct stats_view *v);

/* Aggregate view as the control endpoint's "stats" JSON. */
json_t *stats_relay_json(struct relay *r);

/* Per-link view of one session (every key id's session key for sid). */
json_t *stats_session_json(struct relay *r, const char *sid);

#endif
