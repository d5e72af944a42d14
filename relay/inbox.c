/* The bounded multi-producer queue. A cell whose seq equals the position a
 * producer claims is free for it; the producer publishes it by setting seq
 * to position + 1, which is what the consumer waits for; the consumer frees
 * it for the next lap with position + size. */
#include "inbox.h"

#include <string.h>

void inbox_init(struct inbox *q)
{
    atomic_init(&q->tail, 0);
    q->head = 0;
    for (uint64_t i = 0; i < QR_TCP_INBOX; i++)
        atomic_init(&q->cell[i].seq, i);
}

bool inbox_push(struct inbox *q, const struct leg_addr *to, const uint8_t *buf, size_t len,
                bool media)
{
    uint64_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    struct inbox_cell *c;

    if (len > sizeof(c->data))
        return false;
    for (;;) {
        int64_t diff;

        c = &q->cell[pos & (QR_TCP_INBOX - 1)];
        diff = (int64_t)(atomic_load_explicit(&c->seq, memory_order_acquire) - pos);
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->tail, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (diff < 0) {
            return false; /* the consumer has not freed this cell: full */
        } else {
            pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
        }
    }
    c->to = *to;
    c->len = (uint16_t)len;
    c->media = media;
    memcpy(c->data, buf, len);
    atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
    return true;
}

const struct inbox_cell *inbox_peek(struct inbox *q)
{
    struct inbox_cell *c = &q->cell[q->head & (QR_TCP_INBOX - 1)];

    if (atomic_load_explicit(&c->seq, memory_order_acquire) != q->head + 1)
        return NULL;
    return c;
}

void inbox_pop(struct inbox *q)
{
    struct inbox_cell *c = &q->cell[q->head & (QR_TCP_INBOX - 1)];

    atomic_store_explicit(&c->seq, q->head + QR_TCP_INBOX, memory_order_release);
    q->head++;
}
