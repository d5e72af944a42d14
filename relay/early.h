/* A shared pool of packet buffers for early DTLS: the first flight that
 * arrives before the peer's leg has bound is held here, not dropped, so the
 * handshake does not wait a retransmission timeout (1 s, then 2 s...). */
#ifndef QUIETROOM_RELAY_EARLY_H
#define QUIETROOM_RELAY_EARLY_H

#include <stddef.h>
#include <stdint.h>

#include "quietroom/base/limits.h"

/* Slots are 16 bits so that a link names its held packets in 4 bytes:
 * the first slot of a list chained through next[]. */
#define EARLY_NONE UINT16_MAX

struct early_pool {
    uint8_t (*buf)[QR_PACKET_MAX];
    uint16_t *len;
    uint16_t *next;                /* the link's next held packet */
    uint64_t *at_ms;
    uint16_t *free;
    uint32_t n_free, cap;
};

/* Allocates cap (< EARLY_NONE) buffers. Returns 0 or -1; early_free frees. */
int early_init(struct early_pool *p, uint32_t cap);
void early_free(struct early_pool *p);
/* Copies a packet in; returns its slot (next = EARLY_NONE) or EARLY_NONE
 * when the pool is full. */
uint16_t early_put(struct early_pool *p, const uint8_t *buf, size_t len, uint64_t now_ms);
void early_release(struct early_pool *p, uint16_t slot);

#endif
