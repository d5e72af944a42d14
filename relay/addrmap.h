/* The relay's map from remote address to the leg bound there, shared by all
 * workers: written only under the table lock, read on the forwarding path
 * without any lock, inside a sequence count that makes a reader look again
 * when a write overlapped it. Binding is rare next to forwarding, so readers
 * almost never retry and the map costs 16 bytes per leg instead of a copy
 * per worker. */
#ifndef QUIETROOM_RELAY_ADDRMAP_H
#define QUIETROOM_RELAY_ADDRMAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "link.h"
#include "quietroom/base/hindex.h"

/* Ids name a leg: link index << 1 | side. */
#define ADDRMAP_ID(link, side) ((uint32_t)(link) << 1 | (uint32_t)(side))
#define ADDRMAP_NONE HINDEX_NONE

struct addrmap {
    _Atomic uint32_t seq;          /* odd while a write is under way */
    struct hindex index;           /* hash of (listen, address) -> leg id */
    struct link *links;
    uint64_t seed;
};

/* Room for max_legs legs of links. Returns 0 or -1; addrmap_free frees. */
int addrmap_init(struct addrmap *m, struct link *links, uint32_t max_legs, uint64_t seed);
void addrmap_free(struct addrmap *m);

/* Writer (table lock held): every change to the index or to a bound leg's
 * address happens between begin and end. */
void addrmap_write_begin(struct addrmap *m);
void addrmap_write_end(struct addrmap *m);
/* Points a's entry at leg id (whose address the caller stores). */
int addrmap_insert(struct addrmap *m, const struct leg_addr *a, uint32_t id);
void addrmap_remove(struct addrmap *m, const struct leg_addr *a, uint32_t id);

/* Reader: begin returns a token; reads of the index and of leg addresses
 * made before addrmap_read_retry(token) returns false are consistent. */
static inline uint32_t addrmap_read_begin(const struct addrmap *m)
{
    return atomic_load_explicit(&m->seq, memory_order_acquire);
}

static inline bool addrmap_read_retry(const struct addrmap *m, uint32_t token)
{
    atomic_thread_fence(memory_order_acquire);
    return (token & 1u) != 0 || atomic_load_explicit(&m->seq, memory_order_relaxed) != token;
}

/* The leg bound at a, or ADDRMAP_NONE; call inside a read section. */
uint32_t addrmap_find(const struct addrmap *m, const struct leg_addr *a);

/* addrmap_find in a read section of its own. */
static inline uint32_t addrmap_lookup(const struct addrmap *m, const struct leg_addr *a)
{
    uint32_t id, token;

    do {
        token = addrmap_read_begin(m);
        id = addrmap_find(m, a);
    } while (addrmap_read_retry(m, token));
    return id;
}

#endif
