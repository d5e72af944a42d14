/* ICE-lite connectivity checks (RFC 8445 §7.3, RFC 8489): authenticate a
 * Binding request with the stateless credentials, answer it, and bind or move
 * a leg when the check is nominated. */
#ifndef QUIETROOM_RELAY_ICE_H
#define QUIETROOM_RELAY_ICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quietroom/base/limits.h"
#include "quietroom/base/netaddr.h"
#include "quietroom/wire/creds.h"

struct worker;
struct worker_now;

/* Error responses sent per source address in the current second (one per
 * worker, sized at start: nothing is allocated per packet). */
struct ice_limiter_slot {
    uint32_t second;              /* monotonic second the count is for */
    uint32_t sent;
};

struct ice_limiter {
    uint64_t seed;                /* keys the address hash: slots cannot be aimed */
    struct ice_limiter_slot slot[QR_STUN_ERROR_SLOTS];
};

/* Whether src may have one more unauthenticated error response now;
 * counts it if so. */
bool ice_limiter_take(struct ice_limiter *l, const union netaddr *src, uint64_t now_ms);

/* A TCP connection's leg: the one its first valid check named. A check on
 * the connection for any other leg is ignored. */
struct ice_peer {
    bool known;
    struct creds_leg leg;
};

/* Handles one STUN packet that came by route from src at time now. A
 * response, if any, is written over buf (never longer than the request: no
 * amplification) and queued on the worker's send batch. peer is NULL for a
 * datagram. Returns true if the request's credentials and integrity held
 * (and, with peer, named its leg: the first such check sets it). */
bool ice_handle(struct worker *w, uint32_t route, const union netaddr *src, uint8_t *buf,
                size_t len, const struct worker_now *now, struct ice_peer *peer);

#endif
