/* Entries live in a fixed array with a free stack; the hash index points
 * into it. */
#include "addrmap.h"

#include <stdlib.h>
#include <string.h>

struct addrmap__key {
    const struct addrmap *m;
    uint32_t listen;
    const union netaddr *addr;
};

static uint64_t addrmap__hash(const struct addrmap *m, uint32_t listen, const union netaddr *a)
{
    return netaddr_hash(a, m->seed ^ listen);
}

static bool addrmap__eq(const void *ctx, uint32_t id)
{
    const struct addrmap__key *k = ctx;
    const struct addrmap_entry *e = &k->m->entries[id];

    return e->listen == k->listen && netaddr_equal(&e->addr, k->addr);
}

int addrmap_init(struct addrmap *m, uint32_t cap, uint64_t seed)
{
    memset(m, 0, sizeof(*m));
    m->cap = cap;
    m->seed = seed;
    m->entries = calloc(cap, sizeof(*m->entries));
    m->free = calloc(cap, sizeof(*m->free));
    if (m->entries == NULL || m->free == NULL || hindex_init(&m->index, cap) != 0) {
        addrmap_free(m);
        return -1;
    }
    for (uint32_t i = 0; i < cap; i++)
        m->free[i] = cap - 1 - i;
    m->n_free = cap;
    return 0;
}

void addrmap_free(struct addrmap *m)
{
    hindex_free(&m->index);
    free(m->entries);
    free(m->free);
    m->entries = NULL;
    m->free = NULL;
}

struct addrmap_entry *addrmap_find(struct addrmap *m, uint32_t listen, const union netaddr *a)
{
    struct addrmap__key k = {m, listen, a};
    uint32_t id = hindex_find(&m->index, addrmap__hash(m, listen, a), addrmap__eq, &k);

    return id == HINDEX_NONE ? NULL : &m->entries[id];
}

struct addrmap_entry *addrmap_put(struct addrmap *m, uint32_t listen, const union netaddr *a)
{
    struct addrmap_entry *e = addrmap_find(m, listen, a);
    uint32_t id;

    if (e != NULL)
        return e;
    if (m->n_free == 0)
        return NULL;
    id = m->free[m->n_free - 1];
    if (hindex_insert(&m->index, addrmap__hash(m, listen, a), id) != 0)
        return NULL;
    m->n_free--;
    e = &m->entries[id];
    memset(e, 0, sizeof(*e));
    e->addr = *a;
    e->listen = listen;
    e->used = true;
    return e;
}

void addrmap_remove(struct addrmap *m, struct addrmap_entry *e)
{
    uint32_t id = (uint32_t)(e - m->entries);

    if (!e->used)
        return;
    hindex_remove(&m->index, addrmap__hash(m, e->listen, &e->addr), id);
    e->used = false;
    m->free[m->n_free++] = id;
}

void addrmap_sweep(struct addrmap *m, uint32_t budget,
                   bool (*stale)(void *ctx, const struct addrmap_entry *e), void *ctx)
{
    for (uint32_t n = 0; n < budget && n < m->cap; n++) {
        struct addrmap_entry *e = &m->entries[m->sweep_pos];

        if (e->used && stale(ctx, e))
            addrmap_remove(m, e);
        m->sweep_pos = (m->sweep_pos + 1) % m->cap;
    }
}
