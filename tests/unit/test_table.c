/* The relay's link table with a controlled clock: binding and moving legs,
 * revocation, consent and expiry, early DTLS, and the rule that a closed slot
 * is reused only after every worker has been quiescent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "table.h"

#define NOW_S 1800000000u
#define CONSENT_MS 30000

struct downs {
    int n;
    int side[8];
    enum leg_down_reason reason[8];
};

static void on_down(void *ctx, const struct link *k, int side, enum leg_down_reason reason)
{
    struct downs *d = ctx;

    (void)k;
    if (d->n < 8) {
        d->side[d->n] = side;
        d->reason[d->n] = reason;
    }
    d->n++;
}

static struct downs downs;

/* A table reporting legs that go down to `downs`, emptied here. */
static struct table *new_table(uint32_t max_links)
{
    memset(&downs, 0, sizeof(downs));
    return table_new(max_links, 1, on_down, &downs);
}

static uint32_t gen_of(struct table *t, uint32_t link)
{
    return atomic_load(&table_link(t, link)->gen);
}

/* The leg the address map names for a, as the forwarding path finds it. */
static uint32_t map_find(struct table *t, const union netaddr *a, uint32_t listen)
{
    const struct addrmap *m = table_addrmap(t);
    struct leg_addr packed;
    uint32_t id, token;

    leg_addr_pack(a, listen, &packed);
    do {
        token = addrmap_read_begin(m);
        id = addrmap_find(m, &packed);
    } while (addrmap_read_retry(m, token));
    return id;
}

static struct creds_leg leg_id(uint8_t session_byte, uint16_t link, uint8_t side)
{
    struct creds_leg cl = {.version = 1, .kid = 1, .expires = NOW_S + 3600, .link = link,
                           .side = side};

    memset(cl.session, session_byte, sizeof(cl.session));
    memset(cl.nonce, 0x5a, sizeof(cl.nonce));
    return cl;
}

static union netaddr addr(const char *text)
{
    union netaddr a;

    assert_int_equal(netaddr_parse(text, &a), 0);
    return a;
}

static void test_bind_refresh_move(void **state)
{
    struct table *t = new_table(16);
    struct creds_leg a = leg_id(1, 0, 0), b = leg_id(1, 0, 1);
    union netaddr x = addr("10.0.0.1:1000"), y = addr("10.0.0.2:2000"), got;
    struct table_binding ba, bb, bm;
    struct leg_addr packed;
    struct link *k;

    (void)state;
    assert_int_equal(table_bind(t, &a, &x, 0, 0, 1000, &ba), TABLE_BOUND);
    assert_int_equal(table_bind(t, &b, &y, 0, 0, 1000, &bb), TABLE_BOUND);
    assert_int_equal(ba.link, bb.link);
    assert_int_equal(bb.side, 1);
    assert_int_equal(map_find(t, &x, 0), ADDRMAP_ID(ba.link, 0));
    assert_int_equal(map_find(t, &y, 0), ADDRMAP_ID(ba.link, 1));
    assert_int_equal(map_find(t, &y, 1), ADDRMAP_NONE);
    assert_int_equal(table_bind(t, &a, &x, 0, 0, 2000, &ba), TABLE_REFRESHED);
    k = table_link(t, ba.link);
    assert_int_equal(atomic_load(&k->leg[0].last_check), 1000);

    /* Same address on another local socket is a move too; the map follows. */
    assert_int_equal(table_bind(t, &a, &x, 1, 0, 2000, &bm), TABLE_MOVED);
    leg_addr_load(&k->leg[0], &packed);
    leg_addr_unpack(&packed, &got);
    assert_true(netaddr_equal(&got, &x));
    assert_int_equal(packed.listen, 1);
    assert_true(netaddr_equal(&bm.previous, &x));
    assert_int_equal(map_find(t, &x, 0), ADDRMAP_NONE);
    assert_int_equal(map_find(t, &x, 1), ADDRMAP_ID(ba.link, 0));
    assert_int_equal(downs.n, 0);
    table_free(t);
}

/* A browser restarting ICE nominates the new link's leg from the socket the
 * old link's leg is bound at: the new leg takes the address, the old one
 * goes down as superseded. */
/* A browser may nominate several pairs (Firefox nominates its TCP pair
 * too): a bound leg stays on its preferred path while that path is alive,
 * moves to a better one at once, and to a worse one only after
 * QR_LEG_MOVE_QUIET_MS of silence (its network went away). */
static void test_bind_prefers_the_better_live_path(void **state)
{
    struct table *t = new_table(16);
    struct creds_leg a = leg_id(1, 0, 0);
    union netaddr x = addr("10.0.0.1:1000"), y = addr("10.0.0.2:2000"), z = addr("10.0.0.3:3000");
    uint64_t udp = table_path_pref(false, 100), tcp = table_path_pref(true, 2000000000u);
    struct table_binding b;

    (void)state;
    assert_true(udp > tcp);
    assert_int_equal(table_bind(t, &a, &x, 0, udp, 1000, &b), TABLE_BOUND);
    assert_int_equal(table_bind(t, &a, &y, LEG_ROUTE_TCP | 5, tcp, 1014, &b), TABLE_KEPT);
    assert_int_equal(map_find(t, &x, 0), ADDRMAP_ID(b.link, 0));
    /* Still alive 999 ms after its last check: kept. */
    assert_int_equal(table_bind(t, &a, &y, LEG_ROUTE_TCP | 5, tcp, 1999, &b), TABLE_KEPT);
    /* Quiet for a second: the browser's network went, the leg follows. */
    assert_int_equal(table_bind(t, &a, &y, LEG_ROUTE_TCP | 5, tcp, 2000, &b), TABLE_MOVED);
    assert_true(netaddr_equal(&b.previous, &x));
    /* A better path is taken at once, however alive the current one. */
    assert_int_equal(table_bind(t, &a, &z, 0, udp, 2001, &b), TABLE_MOVED);
    /* The same rank elsewhere: a move (mobility between like networks). */
    assert_int_equal(table_bind(t, &a, &x, 0, udp, 2002, &b), TABLE_MOVED);
    assert_int_equal(downs.n, 0);
    table_free(t);
}

static void test_superseded(void **state)
{
    struct table *t = new_table(16);
    struct creds_leg old_a = leg_id(1, 0, 0), new_a = leg_id(1, 1, 0);
    union netaddr x = addr("[2001:db8::1]:5000");
    struct table_binding bo, bn;

    (void)state;
    assert_int_equal(table_bind(t, &old_a, &x, 0, 0, 1000, &bo), TABLE_BOUND);
    assert_false(bo.superseded);
    assert_int_equal(table_bind(t, &new_a, &x, 0, 0, 1500, &bn), TABLE_BOUND);
    assert_true(bn.superseded);
    assert_true(bn.link != bo.link);
    assert_int_equal(downs.n, 1);
    assert_int_equal(downs.reason[0], LEG_DOWN_SUPERSEDED);
    assert_false(leg_bound(&table_link(t, bo.link)->leg[0]));
    assert_int_equal(map_find(t, &x, 0), ADDRMAP_ID(bn.link, 0));
    table_free(t);
}

/* Legs that go down leave the map; nothing is found at their address. */
static void test_map_follows_consent_loss(void **state)
{
    struct table *t = new_table(4);
    struct creds_leg a = leg_id(1, 0, 0);
    union netaddr x = addr("10.0.0.9:9");
    struct table_binding b;
    uint64_t qs = 0;

    (void)state;
    assert_int_equal(table_bind(t, &a, &x, 0, 0, 1000, &b), TABLE_BOUND);
    assert_int_equal(map_find(t, &x, 0), ADDRMAP_ID(b.link, 0));
    table_housekeep(t, 1000 + CONSENT_MS + 1, NOW_S, CONSENT_MS, &qs, 1);
    assert_int_equal(downs.n, 1);
    assert_int_equal(map_find(t, &x, 0), ADDRMAP_NONE);
    table_free(t);
}

static void test_revoke(void **state)
{
    struct table *t = new_table(16);
    struct creds_leg a = leg_id(1, 0, 0), other = leg_id(2, 0, 0), later = leg_id(1, 5, 1);
    union netaddr x = addr("10.0.0.1:1000"), y = addr("10.0.0.2:1000");
    struct table_binding b, bo;

    (void)state;
    assert_int_equal(table_bind(t, &a, &x, 0, 0, 1000, &b), TABLE_BOUND);
    assert_int_equal(table_bind(t, &other, &y, 0, 0, 1000, &bo), TABLE_BOUND);
    assert_int_equal(table_revoke(t, 1, a.session, NOW_S + 100), 1);
    assert_int_equal(link_state(table_link(t, b.link)), LINK_REVOKED);
    assert_int_equal(link_state(table_link(t, bo.link)), LINK_ACTIVE);
    assert_true(table_is_revoked(t, &a));
    assert_true(table_is_revoked(t, &later));
    assert_false(table_is_revoked(t, &other));
    /* Neither the revoked link nor a new link of the session can bind. */
    assert_int_equal(table_bind(t, &a, &x, 0, 0, 1000, &b), TABLE_INACTIVE);
    assert_int_equal(table_bind(t, &later, &x, 0, 0, 1000, &b), TABLE_INACTIVE);
    table_free(t);
}

static void test_consent_close_and_reuse_after_grace(void **state)
{
    struct table *t = new_table(1);
    struct creds_leg a = leg_id(1, 0, 0), b = leg_id(1, 0, 1), c = leg_id(3, 0, 0);
    union netaddr x = addr("10.0.0.1:1000"), y = addr("10.0.0.2:1000");
    struct table_binding b1, b2;
    uint64_t qs = 5;
    uint32_t gen;

    (void)state;
    assert_int_equal(table_bind(t, &a, &x, 0, 0, 1000, &b1), TABLE_BOUND);
    assert_int_equal(table_bind(t, &b, &y, 0, 0, 20000, &b1), TABLE_BOUND);
    gen = gen_of(t, b1.link);

    /* Side a has been silent for 30 s and a bit; side b has not. */
    table_housekeep(t, 1000 + CONSENT_MS + 1, NOW_S, CONSENT_MS, &qs, 1);
    assert_int_equal(downs.n, 1);
    assert_int_equal(downs.side[0], 0);
    assert_int_equal(downs.reason[0], LEG_DOWN_CONSENT);
    assert_int_equal(link_state(table_link(t, b1.link)), LINK_ACTIVE);

    table_housekeep(t, 20000 + CONSENT_MS + 1, NOW_S, CONSENT_MS, &qs, 1);
    assert_int_equal(downs.n, 2);
    assert_int_equal(link_state(table_link(t, b1.link)), LINK_CLOSED);

    /* The only slot is in limbo. The snapshot pending since the first
     * housekeeping predates the close, so the worker passing it is not
     * enough; a snapshot taken after the close must be passed too. */
    assert_int_equal(table_bind(t, &c, &x, 0, 0, 60000, &b2), TABLE_FULL);
    qs++;
    table_housekeep(t, 60000, NOW_S, CONSENT_MS, &qs, 1);
    assert_int_equal(table_bind(t, &c, &x, 0, 0, 60000, &b2), TABLE_FULL);
    table_housekeep(t, 60250, NOW_S, CONSENT_MS, &qs, 1);
    assert_int_equal(table_bind(t, &c, &x, 0, 0, 60250, &b2), TABLE_FULL);
    qs++;
    table_housekeep(t, 60500, NOW_S, CONSENT_MS, &qs, 1);
    assert_int_equal(table_bind(t, &c, &x, 0, 0, 60500, &b2), TABLE_BOUND);
    assert_int_equal(b2.link, b1.link);
    assert_true(gen_of(t, b2.link) != gen);
    table_free(t);
}

static void test_expiry(void **state)
{
    struct table *t = new_table(4);
    struct creds_leg a = leg_id(1, 0, 0);
    union netaddr x = addr("[::1]:1000");
    struct table_binding b;
    uint64_t qs = 0;

    (void)state;
    assert_int_equal(table_bind(t, &a, &x, 0, 0, 1000, &b), TABLE_BOUND);
    table_housekeep(t, 1000, a.expires - 1, CONSENT_MS, &qs, 1);
    assert_int_equal(downs.n, 0);
    table_housekeep(t, 1000, a.expires, CONSENT_MS, &qs, 1);
    assert_int_equal(downs.n, 1);
    assert_int_equal(downs.reason[0], LEG_DOWN_EXPIRED);
    table_free(t);
}

static void test_early_dtls(void **state)
{
    struct table *t = new_table(4);
    struct creds_leg a = leg_id(1, 0, 0), bside = leg_id(1, 0, 1);
    union netaddr x = addr("10.0.0.1:1000"), y = addr("10.0.0.2:1000");
    static uint8_t bufs[QR_EARLY_PER_LINK][QR_PACKET_MAX];
    size_t lens[QR_EARLY_PER_LINK];
    struct table_binding b;
    uint8_t pkt[100];

    (void)state;
    assert_int_equal(table_bind(t, &a, &x, 0, 0, 1000, &b), TABLE_BOUND);
    for (int i = 0; i < QR_EARLY_PER_LINK; i++) {
        memset(pkt, 22 + i, sizeof(pkt));
        assert_int_equal(table_early_push(t, b.link, gen_of(t, b.link), 1, pkt, 50 + i, 1000), 1);
    }
    assert_int_equal(table_early_push(t, b.link, gen_of(t, b.link), 1, pkt, 10, 1000), -1);
    assert_int_equal(table_early_push(t, b.link, gen_of(t, b.link) + 1, 1, pkt, 10, 1000), -1);

    assert_int_equal(table_bind(t, &bside, &y, 0, 0, 1000, &b), TABLE_BOUND);
    assert_int_equal(table_early_push(t, b.link, gen_of(t, b.link), 1, pkt, 10, 1000), 0);
    assert_int_equal(table_early_take(t, b.link, 1, bufs, lens, QR_EARLY_PER_LINK),
                     QR_EARLY_PER_LINK);
    for (int i = 0; i < QR_EARLY_PER_LINK; i++) {
        assert_int_equal(lens[i], 50 + i);
        assert_int_equal(bufs[i][0], 22 + i);
    }
    assert_int_equal(table_early_take(t, b.link, 1, bufs, lens, QR_EARLY_PER_LINK), 0);
    table_free(t);
}

static void test_early_dtls_ages_out(void **state)
{
    struct table *t = new_table(4);
    struct creds_leg a = leg_id(1, 0, 0);
    union netaddr x = addr("10.0.0.1:1000");
    static uint8_t bufs[QR_EARLY_PER_LINK][QR_PACKET_MAX];
    size_t lens[QR_EARLY_PER_LINK];
    struct table_binding b;
    struct table_usage u;
    uint8_t pkt[20] = {22};
    uint64_t qs = 0;

    (void)state;
    assert_int_equal(table_bind(t, &a, &x, 0, 0, 1000, &b), TABLE_BOUND);
    assert_int_equal(table_early_push(t, b.link, gen_of(t, b.link), 1, pkt, sizeof(pkt), 1000), 1);
    table_usage(t, &u);
    assert_int_equal(u.early_held, 1);
    table_housekeep(t, 1000 + QR_EARLY_MAX_AGE_MS + 1, NOW_S, 1000000, &qs, 1);
    table_usage(t, &u);
    assert_int_equal(u.early_held, 0);
    assert_int_equal(table_early_take(t, b.link, 1, bufs, lens, QR_EARLY_PER_LINK), 0);
    table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bind_prefers_the_better_live_path),
        cmocka_unit_test(test_bind_refresh_move),
        cmocka_unit_test(test_superseded),
        cmocka_unit_test(test_map_follows_consent_loss),
        cmocka_unit_test(test_revoke),
        cmocka_unit_test(test_consent_close_and_reuse_after_grace),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_early_dtls),
        cmocka_unit_test(test_early_dtls_ages_out),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
