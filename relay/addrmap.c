/* The index stores only leg ids: an entry matches when the leg's current
 * address is the one looked up, so there is no copy of the address to keep
 * in step, and the table removes an entry exactly when it unbinds or moves
 * the leg. */
#include "addrmap.h"

#include <string.h>

struct addrmap__key {
    const struct addrmap *m;
    const struct leg_addr *a;
};

static uint64_t addrmap__hash(const struct addrmap *m, const struct leg_addr *a)
{
    union leg_addr_words u = {.a = *a};
    uint64_t h = m->seed;

    for (int i = 0; i < LEG_ADDR_WORDS; i++)
        h = hindex_mix(h ^ u.w[i]);
    return h;
}

static bool addrmap__eq(const void *ctx, uint32_t id)
{
    const struct addrmap__key *k = ctx;

    return leg_addr_is(&k->m->links[id >> 1].leg[id & 1], k->a);
}

int addrmap_init(struct addrmap *m, struct link *links, uint32_t max_legs, uint64_t seed)
{
    memset(m, 0, sizeof(*m));
    m->links = links;
    m->seed = seed;
    return hindex_init(&m->index, max_legs);
}

void addrmap_free(struct addrmap *m)
{
    hindex_free(&m->index);
}

void addrmap_write_begin(struct addrmap *m)
{
    uint32_t s = atomic_load_explicit(&m->seq, memory_order_relaxed);

    atomic_store_explicit(&m->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

void addrmap_write_end(struct addrmap *m)
{
    uint32_t s = atomic_load_explicit(&m->seq, memory_order_relaxed);

    atomic_store_explicit(&m->seq, s + 1, memory_order_release);
}

int addrmap_insert(struct addrmap *m, const struct leg_addr *a, uint32_t id)
{
    return hindex_insert(&m->index, addrmap__hash(m, a), id);
}

void addrmap_remove(struct addrmap *m, const struct leg_addr *a, uint32_t id)
{
    hindex_remove(&m->index, addrmap__hash(m, a), id);
}

uint32_t addrmap_find(const struct addrmap *m, const struct leg_addr *a)
{
    struct addrmap__key k = {m, a};

    return hindex_find(&m->index, addrmap__hash(m, a), addrmap__eq, &k);
}
