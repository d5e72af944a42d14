/* A worker's own map from remote address to the leg bound there. Only the
 * worker that receives an address's packets (SO_REUSEPORT hashes the 4-tuple)
 * ever touches its entry, so the map needs no lock. */
#ifndef QUIETROOM_RELAY_ADDRMAP_H
#define QUIETROOM_RELAY_ADDRMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "quietroom/hindex.h"
#include "quietroom/netaddr.h"

struct addrmap_entry {
    union netaddr addr;
    uint32_t listen;
    uint32_t link;
    uint32_t link_gen;   /* entry is stale when the slot's generation moved on */
    uint32_t addr_gen;   /* ...or the leg was moved or unbound */
    uint8_t side;
    bool used;
};

struct addrmap {
    struct addrmap_entry *entries;
    uint32_t *free;
    uint32_t n_free, cap;
    struct hindex index;
    uint64_t seed;
    uint32_t sweep_pos;
};

/* Room for cap entries. Returns 0 or -1; addrmap_free frees. */
int addrmap_init(struct addrmap *m, uint32_t cap, uint64_t seed);
void addrmap_free(struct addrmap *m);

struct addrmap_entry *addrmap_find(struct addrmap *m, uint32_t listen, const union netaddr *a);
/* Adds or overwrites the entry for (listen, a); NULL when full. */
struct addrmap_entry *addrmap_put(struct addrmap *m, uint32_t listen, const union netaddr *a);
void addrmap_remove(struct addrmap *m, struct addrmap_entry *e);

/* Visits up to budget entries from where the last sweep stopped and removes
 * those stale(ctx, entry) says are stale. */
void addrmap_sweep(struct addrmap *m, uint32_t budget,
                   bool (*stale)(void *ctx, const struct addrmap_entry *e), void *ctx);

#endif
