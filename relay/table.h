/* The link table: every link slot allocated at start-up, found by credential
 * identity on the STUN path (under one lock) and by remote address on the
 * forwarding path (without it, through the address map). Also holds
 * revocations and early DTLS packets. */
#ifndef QUIETROOM_RELAY_TABLE_H
#define QUIETROOM_RELAY_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addrmap.h"
#include "link.h"
#include "quietroom/wire/creds.h"
#include "quietroom/base/netaddr.h"

struct table;

enum table_bind_result {
    TABLE_BOUND,      /* leg bound for the first time (or again after consent loss) */
    TABLE_MOVED,      /* bound leg moved to a new address */
    TABLE_REFRESHED,  /* nominated check from the bound address */
    TABLE_KEPT,       /* nominated check elsewhere, but the bound path is preferred and alive */
    TABLE_FULL,       /* no free link slot */
    TABLE_INACTIVE,   /* link or session revoked, expired or closing */
    TABLE_DRAINING,   /* a new session while draining */
};

/* Where a binding landed, for the caller's audit record. */
struct table_binding {
    uint32_t link;
    uint8_t side;
    bool superseded;          /* another leg was bound at this address */
    union netaddr previous;   /* for TABLE_MOVED */
};

/* Called under the table lock for every leg that goes down. */
typedef void (*table_leg_down_fn)(void *ctx, const struct link *k, int side,
                                  enum leg_down_reason reason);

/* Allocates a table of max_links slots that reports legs going down to
 * down(ctx, ...) (down may be NULL). NULL on failure; table_free frees. */
struct table *table_new(uint32_t max_links, uint64_t seed, table_leg_down_fn down, void *ctx);
void table_free(struct table *t);

struct link *table_link(struct table *t, uint32_t index);
uint32_t table_capacity(const struct table *t);
/* The address map, for lookups on the forwarding path. */
const struct addrmap *table_addrmap(const struct table *t);

/* STUN path: binds or moves the leg named by cl to src (by route listen),
 * creating the link on its first leg. pref ranks the path (higher is
 * better; table_path_pref). A bound leg moves to a less preferred path only
 * once its own has been quiet for QR_LEG_MOVE_QUIET_MS: a browser may
 * nominate several pairs, and RFC 8445 §8.2 has a lite agent use the
 * highest-priority one, while a leg whose network went away must follow the
 * browser to whatever is left. A different leg bound at src until now goes
 * down as superseded: a browser that restarts ICE reuses its socket for the
 * new link, and its packets belong there. */
enum table_bind_result table_bind(struct table *t, const struct creds_leg *cl,
                                  const union netaddr *src, uint32_t listen, uint64_t pref,
                                  uint64_t now_ms, struct table_binding *out);

/* A path's rank: UDP above ICE-TCP, then the check's PRIORITY (the
 * browser's candidate; the relay's own side of the pair is the same for
 * every path of one transport). */
static inline uint64_t table_path_pref(bool tcp, uint32_t priority)
{
    return (uint64_t)!tcp << 32 | priority;
}

/* A TCP connection closed: the leg bound at a (its address and route), if
 * any, goes down with reason. */
void table_unbind_at(struct table *t, const struct leg_addr *a, enum leg_down_reason reason);

/* While draining, links of sessions the table does not carry yet are
 * refused (TABLE_DRAINING); sessions in progress may still add links. */
void table_set_draining(struct table *t, bool draining);

/* True if the session of cl was revoked. */
bool table_is_revoked(struct table *t, const struct creds_leg *cl);

/* Revokes a session (its key under one key id) until until_s (Unix seconds):
 * active links stop forwarding at once and new checks are ignored. Returns
 * the number of links stopped, or -1 if the revocation list is full. */
int table_revoke(struct table *t, uint8_t kid, const uint8_t *session, uint32_t until_s);

/* Early DTLS: holds a copy of a packet for side `to` until that leg binds.
 * Returns 1 if held, 0 if the leg is bound by now (forward it instead), -1 if
 * dropped (queue or pool full, or link gone). */
int table_early_push(struct table *t, uint32_t link, uint32_t link_gen, int to,
                     const uint8_t *buf, size_t len, uint64_t now_ms);

/* Moves packets held for (link, side) into bufs (each QR_PACKET_MAX bytes);
 * returns how many, their lengths in lens. */
int table_early_take(struct table *t, uint32_t link, int side, uint8_t (*bufs)[QR_PACKET_MAX],
                     size_t *lens, int max);

/* Periodic work from one thread: consent (no valid check for consent_ms),
 * expiry, revoked links, aged early packets, and reuse of closed slots once
 * every worker has passed a quiescent point (qs: their counters now). */
void table_housekeep(struct table *t, uint64_t now_ms, uint32_t wall_s, uint64_t consent_ms,
                     const uint64_t *qs, unsigned n_qs);

/* Closes every link (shutdown), reporting each bound leg. */
void table_close_all(struct table *t);

struct kfwd;
/* Hands the link table to the kernel path (or takes it back with NULL):
 * from now on every change of a link updates its flows, under the lock;
 * links already bound get theirs at once. */
void table_set_kfwd(struct table *t, struct kfwd *kf);
/* Reads the kernel path's counters into every leg (before stats are read). */
void table_kfwd_pull(struct table *t);

/* Calls fn under the lock for every link in use (stats). */
void table_foreach(struct table *t, void (*fn)(void *ctx, const struct link *k), void *ctx);

struct table_usage {
    uint32_t links;
    uint32_t legs_bound;
    uint32_t revocations;
    uint32_t early_held;
};
void table_usage(struct table *t, struct table_usage *out);

#endif
