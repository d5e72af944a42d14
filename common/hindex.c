/* Open addressing with linear probing. Deletion shifts later entries of the
 * same cluster back, so there are no tombstones and probes stay short. A
 * slot keeps 32 bits of the hash: enough to find its home and to skip most
 * mismatches without touching the record. */
#include "quietroom/hindex.h"

#include <stdlib.h>

#define HINDEX_EMPTY UINT64_MAX

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
    for (uint64_t i = 0; i < cap; i++)
        h->slot[i] = HINDEX_EMPTY;
    h->mask = (uint32_t)(cap - 1);
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
    uint32_t want = (uint32_t)hash;

    for (uint32_t i = want & h->mask;; i = (i + 1) & h->mask) {
        uint64_t s = h->slot[i];

        if (s == HINDEX_EMPTY)
            return HINDEX_NONE;
        if (hindex__hash(s) == want && eq(ctx, hindex__id(s)))
            return hindex__id(s);
    }
}

int hindex_insert(struct hindex *h, uint64_t hash, uint32_t id)
{
    uint32_t i;

    if (h->count >= h->limit || id == HINDEX_NONE)
        return -1;
    for (i = (uint32_t)hash & h->mask; h->slot[i] != HINDEX_EMPTY; i = (i + 1) & h->mask)
        ;
    h->slot[i] = (uint64_t)(uint32_t)hash << 32 | id;
    h->count++;
    return 0;
}

/* Empties slot i, moving each following entry into the hole unless its home
 * lies cyclically after the hole. */
static void hindex__delete_at(struct hindex *h, uint32_t i)
{
    for (uint32_t j = (i + 1) & h->mask; h->slot[j] != HINDEX_EMPTY; j = (j + 1) & h->mask) {
        uint32_t home = hindex__hash(h->slot[j]) & h->mask;

        if (((j - home) & h->mask) >= ((j - i) & h->mask)) {
            h->slot[i] = h->slot[j];
            i = j;
        }
    }
    h->slot[i] = HINDEX_EMPTY;
    h->count--;
}

bool hindex_remove(struct hindex *h, uint64_t hash, uint32_t id)
{
    uint32_t i;

    for (i = (uint32_t)hash & h->mask; hindex__id(h->slot[i]) != id ||
                                       hindex__hash(h->slot[i]) != (uint32_t)hash;
         i = (i + 1) & h->mask) {
        if (h->slot[i] == HINDEX_EMPTY)
            return false;
    }
    hindex__delete_at(h, i);
    return true;
}

void hindex_sweep(struct hindex *h, uint32_t *pos, uint32_t budget,
                  bool (*stale)(void *ctx, uint32_t id), void *ctx)
{
    uint32_t i = *pos & h->mask;

    for (uint32_t n = 0; n < budget && n <= h->mask; n++) {
        /* A deletion may shift a later entry into i: look at i again. */
        while (h->slot[i] != HINDEX_EMPTY && stale(ctx, hindex__id(h->slot[i])))
            hindex__delete_at(h, i);
        i = (i + 1) & h->mask;
    }
    *pos = i;
}
