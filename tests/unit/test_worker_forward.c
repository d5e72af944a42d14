/* The relay's packet handling once legs bind, in one process: a real link
 * table and keyring, a worker without sockets fed STUN, DTLS, RTP and RTCP
 * through worker_handle at a chosen time (worker_fixtures.c), and what it
 * would send captured from its send batches: forwarding, batching, moved and
 * superseded legs, early DTLS, and drops. STUN handling is in test_worker.c.
 * Each test builds its own relay. */
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

/* A datagram that must earn nothing at all. */
static void feed_silent(struct fx *f, uint32_t listen, const union netaddr *src, const void *buf,
                        size_t len)
{
    feed(f, listen, src, buf, len);
    assert_int_equal(f->n_sent, 0);
}

/* A nominated check with the right password for leg (link, side). */
static void bind_leg(struct fx *f, int link, int side, uint32_t listen, const union netaddr *src)
{
    struct check c = {.ufrag = f->link[link].ufrag[side], .pwd = f->link[link].pwd[side],
                      .nominate = true};

    check(f, listen, src, &c);
    assert_true(f->n_sent >= 1);
}

/* An RTP packet (ssrc) and an RTCP receiver report. */
static size_t rtp(uint8_t *out, uint16_t seq, uint32_t ssrc)
{
    uint8_t h[12] = {0x80, 111, (uint8_t)(seq >> 8), (uint8_t)seq, 0, 0, 0x10, 0,
                     (uint8_t)(ssrc >> 24), (uint8_t)(ssrc >> 16), (uint8_t)(ssrc >> 8),
                     (uint8_t)ssrc};

    memcpy(out, h, sizeof(h));
    memset(out + sizeof(h), 0xab, 160);
    return sizeof(h) + 160;
}

static size_t rtcp(uint8_t *out)
{
    static const uint8_t rr[] = {0x80, 201, 0, 1, 0xde, 0xad, 0xbe, 0xef};

    memcpy(out, rr, sizeof(rr));
    return sizeof(rr);
}

/* --- binding and forwarding ---------------------------------------------- */

/* Both legs bound: every DTLS, RTP and RTCP datagram goes to the other
 * leg, byte for byte, out of the socket that leg is bound on. */
static void test_forward_untouched(void **state)
{
    struct fx *f = fx_new(16, 2);
    union netaddr a = addr("192.0.2.1:5000"), b = addr("[2001:db8::2]:6000");
    uint8_t dgram[256];
    size_t n, fwd_bytes = 0;
    struct {
        const union netaddr *from, *to;
        uint32_t in, out;
    } dir[2] = {{&a, &b, 0, 1}, {&b, &a, 1, 0}};

    (void)state;
    bind_leg(f, 0, CREDS_SIDE_A, 0, &a);
    bind_leg(f, 0, CREDS_SIDE_B, 1, &b);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 2);
    assert_int_equal(counter(f, STAT_FWD_PACKETS), 0);
    for (int d = 0; d < 2; d++) {
        for (int kind = 0; kind < 3; kind++) {
            n = kind == 0   ? dtls(dgram, (uint8_t)d)
                : kind == 1 ? rtp(dgram, 7, 0x1234)
                            : rtcp(dgram);
            feed(f, dir[d].in, dir[d].from, dgram, n);
            assert_int_equal(f->n_sent, 1);
            assert_int_equal(f->sent[0].listen, dir[d].out);
            assert_true(netaddr_equal(&f->sent[0].to, dir[d].to));
            assert_int_equal(f->sent[0].len, n);
            assert_memory_equal(f->sent[0].bytes, dgram, n);
            fwd_bytes += n;
        }
    }
    assert_int_equal(counter(f, STAT_FWD_PACKETS), 6);
    assert_int_equal(counter(f, STAT_FWD_BYTES), fwd_bytes);
    assert_int_equal(counter(f, STAT_RX_PACKETS), 8);
    fx_free(f);
}

/* What worker_handle queues waits in the batch until it is flushed. */
static void test_batch_until_flush(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000"), b = addr("192.0.2.2:6000");
    union netaddr got;
    uint8_t d1[64], d2[256];
    size_t n1 = dtls(d1, 9), n2 = rtp(d2, 1, 0x42);
    struct worker_tx *tx = &f->w->tx[0];

    (void)state;
    bind_leg(f, 0, CREDS_SIDE_A, 0, &a);
    bind_leg(f, 0, CREDS_SIDE_B, 0, &b);
    f->n_sent = 0;
    worker_handle(f->w, 0, &a, d1, n1, &f->now);
    worker_handle(f->w, 0, &b, d2, n2, &f->now);
    assert_int_equal(f->n_sent, 0);
    assert_int_equal(tx->n, 2);
    memcpy(&got, tx->msg[0].msg_hdr.msg_name, tx->msg[0].msg_hdr.msg_namelen);
    assert_true(netaddr_equal(&got, &b));
    assert_ptr_equal(tx->iov[0].iov_base, d1);
    assert_int_equal(tx->iov[0].iov_len, n1);
    memcpy(&got, tx->msg[1].msg_hdr.msg_name, tx->msg[1].msg_hdr.msg_namelen);
    assert_true(netaddr_equal(&got, &a));
    assert_int_equal(tx->iov[1].iov_len, n2);
    assert_int_equal(counter(f, STAT_FWD_PACKETS), 0);   /* counted when sent */
    worker_tx_flush(f->w, 0);
    assert_int_equal(tx->n, 0);
    assert_int_equal(f->n_sent, 2);
    assert_int_equal(counter(f, STAT_FWD_PACKETS), 2);
    fx_free(f);
}

/* Nominating from a new address moves the leg; the old one is unbound. */
static void test_move(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000"), a2 = addr("192.0.2.1:5002");
    union netaddr b = addr("192.0.2.2:6000");
    uint8_t dgram[64];
    size_t n = dtls(dgram, 3);

    (void)state;
    bind_leg(f, 0, CREDS_SIDE_A, 0, &a);
    bind_leg(f, 0, CREDS_SIDE_B, 0, &b);
    bind_leg(f, 0, CREDS_SIDE_A, 0, &a2);
    assert_int_equal(counter(f, STAT_LEGS_MOVED), 1);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 2);
    feed(f, 0, &b, dgram, n);
    assert_int_equal(f->n_sent, 1);
    assert_true(netaddr_equal(&f->sent[0].to, &a2));
    feed(f, 0, &a, dgram, n);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_UNBOUND), 1);
    fx_free(f);
}

/* A new link's leg nominated from an address another leg holds takes it. */
static void test_superseded(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");

    (void)state;
    bind_leg(f, 0, CREDS_SIDE_A, 0, &a);
    bind_leg(f, 1, CREDS_SIDE_A, 0, &a);
    assert_int_equal(counter(f, STAT_LEGS_SUPERSEDED), 1);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 2);
    fx_free(f);
}

/* --- early DTLS ---------------------------------------------------------- */

/* DTLS from a bound leg whose peer is not bound yet is held, media dropped;
 * the held DTLS follows the peer's success response when it binds. */
static void test_early_dtls_flushed_on_bind(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000"), b = addr("192.0.2.2:6000");
    uint8_t d1[64], d2[64], media[256];
    size_t n1 = dtls(d1, 1), n2 = dtls(d2, 2);
    struct stun_msg msg;

    (void)state;
    bind_leg(f, 0, CREDS_SIDE_A, 0, &a);
    feed(f, 0, &a, d1, n1);
    expect_nothing_sent(f);
    feed(f, 0, &a, d2, n2);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_EARLY_HELD), 2);
    feed(f, 0, &a, media, rtp(media, 1, 0x99));
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_PEER_UNBOUND), 1);

    bind_leg(f, 0, CREDS_SIDE_B, 0, &b);
    assert_int_equal(f->n_sent, 3);
    assert_int_equal(stun_parse(f->sent[0].bytes, f->sent[0].len, &msg), STUN_PARSE_OK);
    assert_int_equal(msg.cls, STUN_CLASS_SUCCESS);
    for (int i = 1; i < 3; i++) {
        assert_true(netaddr_equal(&f->sent[i].to, &b));
        assert_int_equal(f->sent[i].listen, 0);
    }
    assert_int_equal(f->sent[1].len, n1);
    assert_memory_equal(f->sent[1].bytes, d1, n1);
    assert_int_equal(f->sent[2].len, n2);
    assert_memory_equal(f->sent[2].bytes, d2, n2);
    assert_int_equal(counter(f, STAT_EARLY_FLUSHED), 2);

    /* Held once: binding again from the same address flushes nothing. */
    bind_leg(f, 0, CREDS_SIDE_B, 0, &b);
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(counter(f, STAT_EARLY_FLUSHED), 2);
    fx_free(f);
}

static void test_early_full(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    uint8_t d[64];

    (void)state;
    bind_leg(f, 0, CREDS_SIDE_A, 0, &a);
    for (int i = 0; i <= QR_EARLY_PER_LINK; i++) {
        feed(f, 0, &a, d, dtls(d, (uint8_t)i));
        expect_nothing_sent(f);
    }
    assert_int_equal(counter(f, STAT_EARLY_HELD), QR_EARLY_PER_LINK);
    assert_int_equal(counter(f, STAT_DROP_EARLY_FULL), 1);
    fx_free(f);
}

/* --- drops --------------------------------------------------------------- */

static void test_drops_by_first_byte(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    uint8_t buf[64] = {0};

    (void)state;
    buf[0] = 22; /* DTLS, shorter than a record header */
    feed_silent(f, 0, &a, buf, 5);
    buf[0] = 0x80; /* RTP, one byte */
    feed_silent(f, 0, &a, buf, 1);
    buf[0] = 0; /* STUN, shorter than a header */
    feed_silent(f, 0, &a, buf, 10);
    assert_int_equal(counter(f, STAT_DROP_MALFORMED), 3);

    buf[0] = 17; /* ZRTP */
    feed_silent(f, 0, &a, buf, 40);
    buf[0] = 0x40; /* TURN channel */
    feed_silent(f, 0, &a, buf, 40);
    buf[0] = 0xc0; /* QUIC long header */
    feed_silent(f, 0, &a, buf, 40);
    feed_silent(f, 0, &a, buf, 0);
    assert_int_equal(counter(f, STAT_DROP_PROTOCOL), 4);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_RX_PACKETS), 7);
    assert_int_equal(counter(f, STAT_RX_BYTES), 5 + 1 + 10 + 3 * 40);
    fx_free(f);
}

/* Media from addresses no leg is bound to, including the right leg's
 * address on another local socket. */
static void test_unbound(void **state)
{
    struct fx *f = fx_new(16, 2);
    union netaddr a = addr("192.0.2.1:5000"), c = addr("192.0.2.3:7000");
    uint8_t d[256];

    (void)state;
    feed_silent(f, 0, &c, d, rtp(d, 1, 1));
    feed_silent(f, 0, &c, d, rtcp(d));
    bind_leg(f, 0, CREDS_SIDE_A, 0, &a);
    feed(f, 1, &a, d, dtls(d, 1));
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_UNBOUND), 3);
    assert_int_equal(counter(f, STAT_EARLY_HELD), 0);
    fx_free(f);
}

/* A revoked session: forwarding stops at once and its checks get silence. */
static void test_revoked(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000"), b = addr("192.0.2.2:6000");
    struct check c = {.ufrag = f->link[0].ufrag[0], .pwd = f->link[0].pwd[0], .nominate = true};
    struct creds_leg cl;
    uint8_t d[64];

    (void)state;
    bind_leg(f, 0, CREDS_SIDE_A, 0, &a);
    bind_leg(f, 0, CREDS_SIDE_B, 0, &b);
    assert_int_equal(creds_decode_ufrag(f->link[0].ufrag[0], CREDS_UFRAG_LEN, &cl), CREDS_OK);
    assert_int_equal(table_revoke(f->r.table, cl.kid, cl.session, NOW_S + 3600), 1);
    feed(f, 0, &a, d, dtls(d, 1));
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_INACTIVE), 1);
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_IGNORED_REVOKED), 1);
    fx_free(f);
}

static void test_draining(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    struct check c = {.ufrag = f->link[0].ufrag[0], .pwd = f->link[0].pwd[0], .nominate = true};

    (void)state;
    table_set_draining(f->r.table, true);
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_IGNORED_DRAINING), 1);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 0);
    fx_free(f);
}

static void test_table_full(void **state)
{
    struct fx *f = fx_new(1, 1);
    union netaddr a = addr("192.0.2.1:5000"), b = addr("192.0.2.2:6000");
    struct check c = {.ufrag = f->link[1].ufrag[0], .pwd = f->link[1].pwd[0], .nominate = true};

    (void)state;
    bind_leg(f, 0, CREDS_SIDE_A, 0, &a);
    check(f, 0, &b, &c);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_TABLE_FULL), 1);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 1);
    fx_free(f);
}

/* The network refusing a batch: counted, and not as forwarded. */
static void test_send_failed(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000"), b = addr("192.0.2.2:6000");
    uint8_t d[64];

    (void)state;
    bind_leg(f, 0, CREDS_SIDE_A, 0, &a);
    bind_leg(f, 0, CREDS_SIDE_B, 0, &b);
    f->send_errno = EAGAIN;
    feed(f, 0, &a, d, dtls(d, 1));
    assert_int_equal(f->n_sent, 0);
    assert_int_equal(f->w->tx[0].n, 0);
    assert_int_equal(counter(f, STAT_DROP_SEND_FAILED), 1);
    assert_int_equal(counter(f, STAT_FWD_PACKETS), 0);
    fx_free(f);
}

/* RTP of more SSRCs than a leg tracks is forwarded all the same. */
static void test_rtp_untracked(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000"), b = addr("192.0.2.2:6000");
    uint8_t d[256];

    (void)state;
    bind_leg(f, 0, CREDS_SIDE_A, 0, &a);
    bind_leg(f, 0, CREDS_SIDE_B, 0, &b);
    for (uint32_t ssrc = 1; ssrc <= QR_SSRC_SLOTS + 1; ssrc++) {
        feed(f, 0, &a, d, rtp(d, 1, ssrc));
        assert_int_equal(f->n_sent, 1);
    }
    assert_int_equal(counter(f, STAT_RTP_UNTRACKED), 1);
    assert_int_equal(counter(f, STAT_FWD_PACKETS), QR_SSRC_SLOTS + 1);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_untouched),
        cmocka_unit_test(test_batch_until_flush),
        cmocka_unit_test(test_move),
        cmocka_unit_test(test_superseded),
        cmocka_unit_test(test_early_dtls_flushed_on_bind),
        cmocka_unit_test(test_early_full),
        cmocka_unit_test(test_drops_by_first_byte),
        cmocka_unit_test(test_unbound),
        cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_draining),
        cmocka_unit_test(test_table_full),
        cmocka_unit_test(test_send_failed),
        cmocka_unit_test(test_rtp_untracked),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
