/* Shared by test_worker.c and test_worker_forward.c: a relay with a real
 * link table and keyring and a worker without sockets, fed datagrams at a
 * chosen time, with what it would send captured from its send batches. */
#ifndef QR_TEST_WORKER_FIXTURES_H
#define QR_TEST_WORKER_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quietroom/wire/creds.h"
#include "relay.h"
#include "stats.h"
#include "worker.h"

#define NOW_S 1800000000u
#define SECRET "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"

#define SENT_MAX 64

/* A datagram the worker handed to the network. */
struct sent {
    uint32_t listen;
    union netaddr to;
    size_t len;
    uint8_t bytes[QR_PACKET_MAX];
};

struct fx {
    struct relay r;
    struct worker *w;
    struct worker_now now;
    struct creds_link link[2];     /* links 0 and 1 of one session */
    struct hmac *sha1;
    uint8_t rx[QR_PACKET_MAX];     /* what the worker receives (and overwrites) */
    struct sent sent[SENT_MAX];
    unsigned n_sent;
    int send_errno;                /* non-zero: the network refuses */
};

/* A connectivity check as a controlling browser sends it. */
struct check {
    const char *ufrag;
    const char *pwd;          /* NULL: no MESSAGE-INTEGRITY */
    bool no_username;
    bool nominate;
    bool controlled;
    bool no_priority;
};

struct fx *fx_new(uint32_t max_links, unsigned n_listen);
void fx_free(struct fx *f);
uint64_t counter(struct fx *f, enum stat_id id);
union netaddr addr(const char *text);
/* One datagram in a batch of its own: handled, then everything sent, as
 * the worker loop does. Clears what earlier feeds sent. */
void feed(struct fx *f, uint32_t listen, const union netaddr *src, const void *buf, size_t len);
/* Sends a check and returns the request's length; the reply, if any, is
 * f->sent[0]. */
size_t check(struct fx *f, uint32_t listen, const union netaddr *src, const struct check *c);
/* A DTLS record whose body is 8 bytes of tag. */
size_t dtls(uint8_t *out, uint8_t tag);
void expect_nothing_sent(struct fx *f);

#endif
