/* ICE-lite connectivity checks (RFC 8445 §7.3, RFC 8489): authenticate a
 * Binding request with the stateless credentials, answer it, and bind or move
 * a leg when the check is nominated. */
#ifndef QUIETROOM_RELAY_ICE_H
#define QUIETROOM_RELAY_ICE_H

#include <stddef.h>
#include <stdint.h>

#include "quietroom/base/netaddr.h"

struct worker;
struct worker_now;

/* Handles one STUN datagram received on socket listen from src at time
 * now. A response, if any, is written over buf (never longer than the
 * request: no amplification) and queued on the worker's send batch. */
void ice_handle(struct worker *w, uint32_t listen, const union netaddr *src, uint8_t *buf,
                size_t len, const struct worker_now *now);

#endif
