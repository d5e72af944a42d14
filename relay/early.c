/* Fixed buffers and a free stack; the table lock guards every call. */
#include "early.h"

#include <stdlib.h>
#include <string.h>

int early_init(struct early_pool *p, uint32_t cap)
{
    memset(p, 0, sizeof(*p));
    if (cap >= EARLY_NONE)
        return -1;
    p->buf = calloc(cap, sizeof(*p->buf));
    p->len = calloc(cap, sizeof(*p->len));
    p->next = calloc(cap, sizeof(*p->next));
    p->at_ms = calloc(cap, sizeof(*p->at_ms));
    p->free = calloc(cap, sizeof(*p->free));
    if (p->buf == NULL || p->len == NULL || p->next == NULL || p->at_ms == NULL ||
        p->free == NULL) {
        early_free(p);
        return -1;
    }
    for (uint32_t i = 0; i < cap; i++)
        p->free[i] = (uint16_t)(cap - 1 - i);
    p->n_free = p->cap = cap;
    return 0;
}

void early_free(struct early_pool *p)
{
    free(p->buf);
    free(p->len);
    free(p->next);
    free(p->at_ms);
    free(p->free);
    memset(p, 0, sizeof(*p));
}

uint16_t early_put(struct early_pool *p, const uint8_t *buf, size_t len, uint64_t now_ms)
{
    uint16_t slot;

    if (p->n_free == 0 || len > QR_PACKET_MAX)
        return EARLY_NONE;
    slot = p->free[--p->n_free];
    memcpy(p->buf[slot], buf, len);
    p->len[slot] = (uint16_t)len;
    p->at_ms[slot] = now_ms;
    p->next[slot] = EARLY_NONE;
    return slot;
}

void early_release(struct early_pool *p, uint16_t slot)
{
    p->free[p->n_free++] = slot;
}
