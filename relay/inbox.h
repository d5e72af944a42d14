/* Frames one worker hands another: a TCP leg's connection belongs to the
 * worker that accepted it, and a packet for it may arrive at any worker (a
 * UDP peer's packets land where the kernel's SO_REUSEPORT hash puts them).
 * A bounded queue, many producers and one consumer, without a lock: each
 * cell's sequence number says whose turn it is (D. Vyukov's bounded queue).
 * Sized at start; a full inbox drops the frame, which the caller counts. */
#ifndef QUIETROOM_RELAY_INBOX_H
#define QUIETROOM_RELAY_INBOX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "link.h"
#include "quietroom/base/limits.h"

struct inbox_cell {
    _Atomic uint64_t seq;
    struct leg_addr to;           /* the connection's leg address, checked on delivery */
    uint16_t len;
    bool media;                   /* not STUN: only for a connection its leg is bound to */
    uint8_t data[QR_TCP_FRAME_MAX];
};

struct inbox {
    _Atomic uint64_t tail;        /* next cell a producer claims */
    uint64_t head;                /* next cell the consumer reads: its own */
    struct inbox_cell cell[QR_TCP_INBOX];
};

_Static_assert((QR_TCP_INBOX & (QR_TCP_INBOX - 1)) == 0, "the inbox size is a power of two");

void inbox_init(struct inbox *q);

/* Any thread: copies a frame of len <= QR_TCP_FRAME_MAX bytes for the
 * connection at to. False if the inbox is full. */
bool inbox_push(struct inbox *q, const struct leg_addr *to, const uint8_t *buf, size_t len,
                bool media);

/* The consumer only: the oldest frame, or NULL if none. It stays valid
 * until inbox_pop. */
const struct inbox_cell *inbox_peek(struct inbox *q);
void inbox_pop(struct inbox *q);

#endif
