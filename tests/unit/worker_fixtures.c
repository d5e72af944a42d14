/* The relay and worker the worker tests feed (see worker_fixtures.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "events.h"
#include "quietroom/wire/creds.h"
#include "quietroom/wire/stun.h"
#include "relay.h"
#include "stats.h"
#include "worker.h"

#include "worker_fixtures.h"

static int capture(void *ctx, uint32_t listen, struct mmsghdr *msg, unsigned n)
{
    struct fx *f = ctx;

    if (f->send_errno != 0) {
        errno = f->send_errno;
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        struct sent *s = &f->sent[f->n_sent++];

        assert_true(f->n_sent <= SENT_MAX);
        s->listen = listen;
        memcpy(&s->to, msg[i].msg_hdr.msg_name, msg[i].msg_hdr.msg_namelen);
        assert_int_equal(msg[i].msg_hdr.msg_iovlen, 1);
        s->len = msg[i].msg_hdr.msg_iov[0].iov_len;
        memcpy(s->bytes, msg[i].msg_hdr.msg_iov[0].iov_base, s->len);
    }
    return (int)n;
}

struct fx *fx_new(uint32_t max_links, unsigned n_listen)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct hmac *sha256 = hmac_new(HMAC_SHA256);
    char err[128];

    assert_non_null(f);
    assert_non_null(sha256);
    assert_int_equal(keyring_parse(SECRET, &f->r.keyring[0], err, sizeof(err)), 0);
    atomic_store(&f->r.keys, &f->r.keyring[0]);
    atomic_store(&f->r.live.max_ttl_s, QR_CREDS_MAX_TTL_S);
    metrics_histogram_init(&f->r.loss, stats_loss_bounds, STATS_LOSS_BOUNDS, 1e6);
    f->r.seed = 42;
    f->r.table = table_new(max_links, f->r.seed, events_leg_down, &f->r);
    assert_non_null(f->r.table);
    f->w = worker_new_detached(&f->r, 0, n_listen, capture, f);
    assert_non_null(f->w);
    f->r.workers[0] = f->w;
    f->r.n_workers = 1;
    f->now.wall_ms = (uint64_t)NOW_S * 1000;
    f->now.mono_ms = 5000000;
    f->now.mono_us = f->now.mono_ms * 1000;
    for (uint16_t i = 0; i < 2; i++)
        assert_int_equal(creds_derive_link(&f->r.keyring[0], "visit-1", i, NOW_S + 3600, sha256,
                                           &f->link[i]),
                         0);
    hmac_free(sha256);
    f->sha1 = hmac_new(HMAC_SHA1);
    assert_non_null(f->sha1);
    return f;
}

void fx_free(struct fx *f)
{
    worker_free(f->w);
    table_free(f->r.table);
    keyring_wipe(&f->r.keyring[0]);
    hmac_free(f->sha1);
    free(f);
}

uint64_t counter(struct fx *f, enum stat_id id)
{
    return worker_counter(f->w, id);
}

union netaddr addr(const char *text)
{
    union netaddr a;

    assert_int_equal(netaddr_parse(text, &a), 0);
    return a;
}

/* Receives one datagram (copied, as the worker writes over it) without
 * sending the batch. */
static void handle(struct fx *f, uint32_t listen, const union netaddr *src, const void *buf,
                   size_t len)
{
    memcpy(f->rx, buf, len);
    worker_handle(f->w, listen, src, f->rx, len, &f->now);
}

/* One datagram in a batch of its own: handled, then everything sent, as
 * the worker loop does. Clears what earlier feeds sent. */
void feed(struct fx *f, uint32_t listen, const union netaddr *src, const void *buf,
                 size_t len)
{
    f->n_sent = 0;
    handle(f, listen, src, buf, len);
    for (uint32_t l = 0; l < f->w->n_fd; l++)
        worker_tx_flush(f->w, l);
}

static size_t build_check(struct fx *f, const struct check *c, uint8_t *out, size_t cap)
{
    char username[128];
    struct stun_request r = {
        .txid = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
        .username = c->no_username ? NULL : username,
        .key = (const uint8_t *)c->pwd,
        .key_len = c->pwd ? strlen(c->pwd) : 0,
        .has_priority = !c->no_priority,
        .priority = 0x6e7f1eff,
        .use_candidate = c->nominate,
        .ice_controlling = !c->controlled,
        .ice_controlled = c->controlled,
        .tiebreaker = 0x1122334455667788ull,
        .fingerprint = true,
    };
    size_t n;

    snprintf(username, sizeof(username), "%s:peer", c->ufrag);
    n = stun_build_request(out, cap, &r, f->sha1);
    assert_true(n > 0);
    return n;
}

/* Sends a check and returns the request's length; the reply, if any, is
 * f->sent[0]. */
size_t check(struct fx *f, uint32_t listen, const union netaddr *src, const struct check *c)
{
    uint8_t req[512];
    size_t n = build_check(f, c, req, sizeof(req));

    feed(f, listen, src, req, n);
    return n;
}

/* A DTLS record whose body is 8 bytes of tag. */
size_t dtls(uint8_t *out, uint8_t tag)
{
    static const uint8_t hdr[] = {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 8};

    memcpy(out, hdr, sizeof(hdr));
    memset(out + sizeof(hdr), tag, 8);
    return sizeof(hdr) + 8;
}

void expect_nothing_sent(struct fx *f)
{
    assert_int_equal(f->n_sent, 0);
    for (uint32_t l = 0; l < f->w->n_fd; l++)
        assert_int_equal(f->w->tx[l].n, 0);
}
