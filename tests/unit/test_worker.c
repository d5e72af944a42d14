/* The relay's packet handling in one process: a real link table and keyring,
 * a worker without sockets fed STUN, DTLS, RTP and RTCP through
 * worker_handle at a chosen time, and what it would send captured from its
 * send batches. Each test builds its own relay. */
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

#define NOW_S 1800000000u
#define SECRET "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
#define OTHER_SECRET "2 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f\n"
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

static struct fx *fx_new(uint32_t max_links, unsigned n_listen)
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

static void fx_free(struct fx *f)
{
    worker_free(f->w);
    table_free(f->r.table);
    keyring_wipe(&f->r.keyring[0]);
    hmac_free(f->sha1);
    free(f);
}

static uint64_t counter(struct fx *f, enum stat_id id)
{
    return worker_counter(f->w, id);
}

static union netaddr addr(const char *text)
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
static void feed(struct fx *f, uint32_t listen, const union netaddr *src, const void *buf,
                 size_t len)
{
    f->n_sent = 0;
    handle(f, listen, src, buf, len);
    for (uint32_t l = 0; l < f->w->n_fd; l++)
        worker_tx_flush(f->w, l);
}

/* A datagram that must earn nothing at all. */
static void feed_silent(struct fx *f, uint32_t listen, const union netaddr *src, const void *buf,
                        size_t len)
{
    feed(f, listen, src, buf, len);
    assert_int_equal(f->n_sent, 0);
}

/* A connectivity check as a controlling browser sends it. */
struct check {
    const char *ufrag;
    const char *pwd;          /* NULL: no MESSAGE-INTEGRITY */
    bool no_username;
    bool nominate;
    bool controlled;
    bool no_priority;
};

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
static size_t check(struct fx *f, uint32_t listen, const union netaddr *src, const struct check *c)
{
    uint8_t req[512];
    size_t n = build_check(f, c, req, sizeof(req));

    feed(f, listen, src, req, n);
    return n;
}

/* A nominated check with the right password for leg (link, side). */
static void bind_leg(struct fx *f, int link, int side, uint32_t listen, const union netaddr *src)
{
    struct check c = {.ufrag = f->link[link].ufrag[side], .pwd = f->link[link].pwd[side],
                      .nominate = true};

    check(f, listen, src, &c);
    assert_true(f->n_sent >= 1);
}

/* The single reply to a check: parsed, sent back to src on listen, no
 * larger than the request, for the same transaction. */
static void expect_reply(struct fx *f, uint32_t listen, const union netaddr *src, size_t req_len,
                         enum stun_class cls, struct stun_msg *msg)
{
    static const uint8_t txid[STUN_TXID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

    assert_int_equal(f->n_sent, 1);
    assert_int_equal(f->sent[0].listen, listen);
    assert_true(netaddr_equal(&f->sent[0].to, src));
    assert_true(f->sent[0].len <= req_len);
    assert_int_equal(stun_parse(f->sent[0].bytes, f->sent[0].len, msg), STUN_PARSE_OK);
    assert_int_equal(msg->cls, cls);
    assert_int_equal(msg->method, STUN_METHOD_BINDING);
    assert_memory_equal(msg->txid, txid, STUN_TXID_LEN);
    assert_true(msg->has_fingerprint);
}

static void expect_error(struct fx *f, uint32_t listen, const union netaddr *src, size_t req_len,
                         uint16_t code, const char *pwd)
{
    struct stun_msg msg;

    expect_reply(f, listen, src, req_len, STUN_CLASS_ERROR, &msg);
    assert_true(msg.has_error);
    assert_int_equal(msg.error_code, code);
    if (pwd == NULL) {
        assert_int_equal(msg.integrity_at, 0);
    } else {
        assert_true(stun_check_integrity(f->sent[0].bytes, &msg, (const uint8_t *)pwd,
                                         strlen(pwd), f->sha1));
    }
}

/* A DTLS record, an RTP packet (ssrc) and an RTCP receiver report. */
static size_t dtls(uint8_t *out, uint8_t tag)
{
    static const uint8_t hdr[] = {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 8};

    memcpy(out, hdr, sizeof(hdr));
    memset(out + sizeof(hdr), tag, 8);
    return sizeof(hdr) + 8;
}

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

static void expect_nothing_sent(struct fx *f)
{
    assert_int_equal(f->n_sent, 0);
    for (uint32_t l = 0; l < f->w->n_fd; l++)
        assert_int_equal(f->w->tx[l].n, 0);
}

/* --- silence ------------------------------------------------------------- */

static void test_unknown_credentials_silent(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    struct creds_link other;
    struct keyring kr;
    struct hmac *sha256 = hmac_new(HMAC_SHA256);
    char err[128];
    struct check c = {.ufrag = "notaufrag", .pwd = "whatever-password-whatever-passw",
                      .nominate = true};

    (void)state;
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_REQUESTS), 1);
    assert_int_equal(counter(f, STAT_STUN_IGNORED_CREDENTIALS), 1);

    /* Well-formed credentials under a key this relay does not hold. */
    assert_int_equal(keyring_parse(OTHER_SECRET, &kr, err, sizeof(err)), 0);
    assert_int_equal(creds_derive_link(&kr, "visit-1", 0, NOW_S + 3600, sha256, &other), 0);
    c = (struct check){.ufrag = other.ufrag[0], .pwd = other.pwd[0], .nominate = true};
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_IGNORED_CREDENTIALS), 2);

    /* Expired, and valid for longer than max-ttl allows. */
    assert_int_equal(creds_derive_link(&f->r.keyring[0], "visit-1", 0, NOW_S - 1, sha256, &other),
                     0);
    c = (struct check){.ufrag = other.ufrag[0], .pwd = other.pwd[0], .nominate = true};
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(creds_derive_link(&f->r.keyring[0], "visit-1", 0,
                                       NOW_S + QR_CREDS_MAX_TTL_S + 60, sha256, &other),
                     0);
    c = (struct check){.ufrag = other.ufrag[0], .pwd = other.pwd[0], .nominate = true};
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_IGNORED_EXPIRED), 2);

    assert_int_equal(counter(f, STAT_STUN_REQUESTS), 4);
    assert_int_equal(counter(f, STAT_RX_PACKETS), 4);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 0);
    assert_int_equal(counter(f, STAT_STUN_SUCCESS), 0);
    keyring_wipe(&kr);
    hmac_free(sha256);
    fx_free(f);
}

/* Datagrams that are no ICE check at all: silence, each counted. */
static void test_not_checks_silent(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    uint8_t buf[512];
    struct stun_writer sw;
    size_t n;

    (void)state;
    /* A Binding indication, and a request without FINGERPRINT. */
    stun_writer_begin(&sw, buf, sizeof(buf), STUN_METHOD_BINDING, STUN_CLASS_INDICATION,
                      (const uint8_t *)"abcdefghijkl");
    n = stun_writer_finish(&sw, true);
    feed(f, 0, &a, buf, n);
    expect_nothing_sent(f);
    stun_writer_begin(&sw, buf, sizeof(buf), STUN_METHOD_BINDING, STUN_CLASS_REQUEST,
                      (const uint8_t *)"abcdefghijkl");
    n = stun_writer_finish(&sw, false);
    feed(f, 0, &a, buf, n);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_IGNORED_OTHER), 2);
    assert_int_equal(counter(f, STAT_STUN_REQUESTS), 0);

    /* STUN by its first byte but not a message: bad cookie. */
    memset(buf, 0, 40);
    buf[3] = 20;
    feed(f, 0, &a, buf, 40);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_MALFORMED), 1);
    fx_free(f);
}

/* --- STUN errors --------------------------------------------------------- */

static void test_400_without_username(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    struct check c = {.no_username = true, .pwd = "whatever-password-whatever-passw"};
    size_t n;

    (void)state;
    n = check(f, 0, &a, &c);
    expect_error(f, 0, &a, n, 400, NULL);
    assert_int_equal(counter(f, STAT_STUN_BAD_REQUEST), 1);

    /* USERNAME but no MESSAGE-INTEGRITY. */
    c = (struct check){.ufrag = f->link[0].ufrag[0]};
    n = check(f, 0, &a, &c);
    expect_error(f, 0, &a, n, 400, NULL);
    assert_int_equal(counter(f, STAT_STUN_BAD_REQUEST), 2);
    assert_int_equal(counter(f, STAT_STUN_REQUESTS), 2);
    fx_free(f);
}

/* A 400 that would be longer than its tiny request is not sent. */
static void test_no_amplification(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    uint8_t buf[64];
    struct stun_writer sw;
    size_t n;

    (void)state;
    stun_writer_begin(&sw, buf, sizeof(buf), STUN_METHOD_BINDING, STUN_CLASS_REQUEST,
                      (const uint8_t *)"abcdefghijkl");
    n = stun_writer_finish(&sw, true);
    assert_int_equal(n, STUN_HEADER_LEN + 8);
    feed(f, 0, &a, buf, n);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_AMPLIFICATION), 1);
    assert_int_equal(counter(f, STAT_STUN_BAD_REQUEST), 0);
    fx_free(f);
}

static void test_400_with_integrity(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    struct check c = {.ufrag = f->link[0].ufrag[0], .pwd = f->link[0].pwd[0],
                      .nominate = true, .no_priority = true};
    size_t n;

    (void)state;
    n = check(f, 0, &a, &c);
    expect_error(f, 0, &a, n, 400, f->link[0].pwd[0]);
    assert_int_equal(counter(f, STAT_STUN_BAD_REQUEST), 1);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 0);
    fx_free(f);
}

static void test_401_bad_integrity(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    struct check c = {.ufrag = f->link[0].ufrag[0], .pwd = f->link[0].pwd[1], .nominate = true};
    uint8_t dgram[64];
    size_t n;

    (void)state;
    n = check(f, 0, &a, &c);
    expect_error(f, 0, &a, n, 401, NULL);
    assert_int_equal(counter(f, STAT_STUN_UNAUTHENTICATED), 1);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 0);
    /* Not bound: its DTLS goes nowhere. */
    feed(f, 0, &a, dgram, dtls(dgram, 1));
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_UNBOUND), 1);
    fx_free(f);
}

static void test_420_unknown_attribute(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    const char *pwd = f->link[0].pwd[0];
    char username[64];
    static const uint8_t txid[STUN_TXID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint8_t buf[512], prio[4] = {0x6e, 0x7f, 0x1e, 0xff}, tie[8] = {0};
    struct stun_writer sw;
    struct stun_msg msg;
    const uint8_t *v;
    size_t n, vlen;

    (void)state;
    snprintf(username, sizeof(username), "%s:peer", f->link[0].ufrag[0]);
    stun_writer_begin(&sw, buf, sizeof(buf), STUN_METHOD_BINDING, STUN_CLASS_REQUEST, txid);
    stun_writer_attr(&sw, STUN_ATTR_USERNAME, username, strlen(username));
    stun_writer_attr(&sw, STUN_ATTR_PRIORITY, prio, sizeof(prio));
    stun_writer_attr(&sw, STUN_ATTR_ICE_CONTROLLING, tie, sizeof(tie));
    stun_writer_attr(&sw, 0x0030, "xxxx", 4);
    stun_writer_integrity(&sw, (const uint8_t *)pwd, strlen(pwd), f->sha1);
    n = stun_writer_finish(&sw, true);
    assert_true(n > 0);
    feed(f, 0, &a, buf, n);
    expect_error(f, 0, &a, n, 420, pwd);
    assert_int_equal(stun_parse(f->sent[0].bytes, f->sent[0].len, &msg), STUN_PARSE_OK);
    v = stun_find_attr(f->sent[0].bytes, f->sent[0].len, STUN_ATTR_UNKNOWN_ATTRIBUTES, &vlen);
    assert_non_null(v);
    assert_int_equal(vlen, 2);
    assert_int_equal(v[0] << 8 | v[1], 0x0030);
    assert_int_equal(counter(f, STAT_STUN_UNKNOWN_ATTRIBUTE), 1);
    fx_free(f);
}

/* A lite agent is controlled: a peer claiming that role too gets 487. */
static void test_487_role_conflict(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    struct check c = {.ufrag = f->link[0].ufrag[0], .pwd = f->link[0].pwd[0],
                      .nominate = true, .controlled = true};
    size_t n;

    (void)state;
    n = check(f, 0, &a, &c);
    expect_error(f, 0, &a, n, 487, f->link[0].pwd[0]);
    assert_int_equal(counter(f, STAT_STUN_ROLE_CONFLICT), 1);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 0);
    fx_free(f);
}

/* --- binding ------------------------------------------------------------- */

/* A check without USE-CANDIDATE is answered but binds nothing. */
static void test_success_without_nomination_binds_nothing(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("[2001:db8::1]:5000");
    struct check c = {.ufrag = f->link[0].ufrag[0], .pwd = f->link[0].pwd[0]};
    struct sockaddr_storage mapped;
    struct stun_msg msg;
    uint8_t dgram[64];
    size_t n;

    (void)state;
    n = check(f, 0, &a, &c);
    expect_reply(f, 0, &a, n, STUN_CLASS_SUCCESS, &msg);
    assert_true(stun_check_integrity(f->sent[0].bytes, &msg, (const uint8_t *)f->link[0].pwd[0],
                                     CREDS_PWD_LEN, f->sha1));
    assert_true(msg.has_mapped);
    memcpy(&mapped, &msg.mapped, sizeof(mapped));
    assert_true(netaddr_equal((const union netaddr *)&mapped, &a));
    assert_int_equal(counter(f, STAT_STUN_SUCCESS), 1);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 0);

    feed(f, 0, &a, dgram, dtls(dgram, 1));
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_UNBOUND), 1);
    assert_int_equal(counter(f, STAT_EARLY_HELD), 0);
    fx_free(f);
}

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
        cmocka_unit_test(test_unknown_credentials_silent),
        cmocka_unit_test(test_not_checks_silent),
        cmocka_unit_test(test_400_without_username),
        cmocka_unit_test(test_no_amplification),
        cmocka_unit_test(test_400_with_integrity),
        cmocka_unit_test(test_401_bad_integrity),
        cmocka_unit_test(test_420_unknown_attribute),
        cmocka_unit_test(test_487_role_conflict),
        cmocka_unit_test(test_success_without_nomination_binds_nothing),
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
