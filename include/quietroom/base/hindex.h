/* A fixed-capacity hash index from hashes to 32-bit ids (linear probing,
 * backward-shift deletion, 8 bytes a slot: the low 32 bits of the hash and
 * the id). Callers keep the records and say how to compare them; nothing
 * allocates after hindex_init. One writer at a time; hindex_find may run
 * beside it if the caller notices the overlap (a sequence count) and looks
 * again: slots are relaxed atomics and a find never loops. */
#ifndef QUIETROOM_HINDEX_H
#define QUIETROOM_HINDEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define HINDEX_NONE UINT32_MAX
#define HINDEX_EMPTY UINT64_MAX

struct hindex {
    _Atomic uint64_t *slot;  /* hash32 << 32 | id; HINDEX_EMPTY when free */
    uint32_t mask;
    uint32_t count;
    uint32_t limit;     /* most ids held, to keep probes short */
};

/* True if record id is the one being looked for. */
typedef bool (*hindex_eq_fn)(const void *ctx, uint32_t id);

/* Sizes the index for up to max_ids ids. Returns 0 or -1; hindex_free frees. */
int hindex_init(struct hindex *h, uint32_t max_ids);
void hindex_free(struct hindex *h);

/* Returns the id under hash that eq accepts, or HINDEX_NONE. */
uint32_t hindex_find(const struct hindex *h, uint64_t hash, hindex_eq_fn eq, const void *ctx);
/* Adds id under hash. Returns 0, or -1 when full. */
int hindex_insert(struct hindex *h, uint64_t hash, uint32_t id);
/* Removes id (stored under hash). Returns true if it was there. */
bool hindex_remove(struct hindex *h, uint64_t hash, uint32_t id);

/* A 64-bit mixing function (the MurmurHash3 finalizer): keyed with a random
 * seed, it keeps remote peers from aiming at one bucket. */
static inline uint64_t hindex_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

#endif
