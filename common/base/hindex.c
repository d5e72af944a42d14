/* Open addressing with linear probing. Deletion shifts later entries of the
 * same cluster back, so there are no tombstones and probes stay short. A
 * slot keeps 32 bits of the hash: enough to find its home and to skip most
 * mismatches without touching the record. Relaxed atomic loads and stores
 * compile to plain moves; they only make a concurrent find well defined. */
#include "quietroom/base/hindex.h"

#include <stdlib.h>

static uint64_t hindex__get(const struct hindex *h, uint32_t i)
{
    return atomic_load_explicit(&h->slot[i], memory_order_relaxed);
}

static void hindex__set(struct hindex *h, uint32_t i, uint64_t v)
{
    atomic_store_explicit(&h->slot[i], v, memory_order_relaxed);
}

static uint32_t hindex__hash(uint64_t slot)
{
    return (uint32_t)(slot >> 32);
}

static uint32_t hindex__id(uint64_t slot)
{
    return (uint32_t)slot;
}

int hindex_init(struct hindex *h, uint32_t max_ids)
{
    uint64_t cap = 16;

    /* Keep the load at or below one half. */
    while (cap < 2 * (uint64_t)max_ids)
        cap <<= 1;
    if (cap > UINT32_MAX || (h->slot = malloc(cap * sizeof(*h->slot))) == NULL)
        return -1;
    h->mask = (uint32_t)(cap - 1);
    for (uint64_t i = 0; i < cap; i++)
        hindex__set(h, (uint32_t)i, HINDEX_EMPTY);
    h->count = 0;
    h->limit = max_ids;
    return 0;
}

void hindex_free(struct hindex *h)
{
    free(h->slot);
    h->slot = NULL;
}

uint32_t hindex_find(const struct hindex *h, uint64_t hash, hindex_eq_fn eq, const void *ctx)
{
    uint32_t want = (uint32_t)hash, i = want & h->mask;

    /* At most one lap: a writer shifting entries under a concurrent reader
     * cannot keep it going round. */
    for (uint32_t n = 0; n <= h->mask; n++, i = (i + 1) & h->mask) {
        uint64_t s = hindex__get(h, i);

        if (s == HINDEX_EMPTY)
            break;
        if (hindex__hash(s) == want && eq(ctx, hindex__id(s)))
            return hindex__id(s);
    }
    return HINDEX_NONE;
}

int hindex_insert(struct hindex *h, uint64_t hash, uint32_t id)
{
    uint32_t i;

    if (h->count >= h->limit || id == HINDEX_NONE)
        return -1;
    for (i = (uint32_t)hash & h->mask; hindex__get(h, i) != HINDEX_EMPTY; i = (i + 1) & h->mask)
        ;
    hindex__set(h, i, (uint64_t)(uint32_t)hash << 32 | id);
    h->count++;
    return 0;
}

/* Empties slot i, moving each following entry into the hole unless its home
 * lies cyclically after the hole. A find running meanwhile can miss an entry
 * on the move: that is what the caller's sequence count is for. */
static void hindex__delete_at(struct hindex *h, uint32_t i)
{
    uint64_t s;

    for (uint32_t j = (i + 1) & h->mask; (s = hindex__get(h, j)) != HINDEX_EMPTY;
         j = (j + 1) & h->mask) {
        uint32_t home = hindex__hash(s) & h->mask;

        if (((j - home) & h->mask) >= ((j - i) & h->mask)) {
            hindex__set(h, i, s);
            i = j;
        }
    }
    hindex__set(h, i, HINDEX_EMPTY);
    h->count--;
}

bool hindex_remove(struct hindex *h, uint64_t hash, uint32_t id)
{
    uint64_t want = (uint64_t)(uint32_t)hash << 32 | id;
    uint32_t i = (uint32_t)hash & h->mask;

    for (uint32_t n = 0; n <= h->mask; n++, i = (i + 1) & h->mask) {
        uint64_t s = hindex__get(h, i);

        if (s == HINDEX_EMPTY)
            return false;
        if (s == want) {
            hindex__delete_at(h, i);
            return true;
        }
    }
    return false;
}
