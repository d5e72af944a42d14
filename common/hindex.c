/* Open addressing with linear probing. Deletion shifts later entries of the
 * same cluster back, so there are no tombstones and probes stay short. */
#include "quietroom/hindex.h"

#include <stdlib.h>

int hindex_init(struct hindex *h, uint32_t max_ids)
{
    uint64_t cap = 16;

    /* Keep the load at or below one half. */
    while (cap < 2 * (uint64_t)max_ids)
        cap <<= 1;
    if (cap > UINT32_MAX)
        return -1;
    h->hash = calloc(cap, sizeof(*h->hash));
    h->id = malloc(cap * sizeof(*h->id));
    if (h->hash == NULL || h->id == NULL) {
        hindex_free(h);
        return -1;
    }
    for (uint64_t i = 0; i < cap; i++)
        h->id[i] = HINDEX_NONE;
    h->mask = (uint32_t)(cap - 1);
    h->count = 0;
    h->limit = max_ids;
    return 0;
}

void hindex_free(struct hindex *h)
{
    free(h->hash);
    free(h->id);
    h->hash = NULL;
    h->id = NULL;
}

uint32_t hindex_find(const struct hindex *h, uint64_t hash, hindex_eq_fn eq, const void *ctx)
{
    for (uint32_t i = (uint32_t)hash & h->mask;; i = (i + 1) & h->mask) {
        uint32_t id = h->id[i];

        if (id == HINDEX_NONE)
            return HINDEX_NONE;
        if (h->hash[i] == hash && eq(ctx, id))
            return id;
    }
}

int hindex_insert(struct hindex *h, uint64_t hash, uint32_t id)
{
    uint32_t i;

    if (h->count >= h->limit || id == HINDEX_NONE)
        return -1;
    for (i = (uint32_t)hash & h->mask; h->id[i] != HINDEX_NONE; i = (i + 1) & h->mask)
        ;
    h->hash[i] = hash;
    h->id[i] = id;
    h->count++;
    return 0;
}

bool hindex_remove(struct hindex *h, uint64_t hash, uint32_t id)
{
    uint32_t i, j;

    for (i = (uint32_t)hash & h->mask; h->id[i] != id; i = (i + 1) & h->mask) {
        if (h->id[i] == HINDEX_NONE)
            return false;
    }
    /* Backward shift: move each following entry into the hole unless its
     * home slot lies cyclically after the hole. */
    for (j = (i + 1) & h->mask; h->id[j] != HINDEX_NONE; j = (j + 1) & h->mask) {
        uint32_t home = (uint32_t)h->hash[j] & h->mask;

        if (((j - home) & h->mask) >= ((j - i) & h->mask)) {
            h->hash[i] = h->hash[j];
            h->id[i] = h->id[j];
            i = j;
        }
    }
    h->id[i] = HINDEX_NONE;
    h->count--;
    return true;
}
