/* Legs end on their own: consent lost (no valid check for the consent
 * timeout, shortened to 2 s here) and credentials expired. Forwarding stops
 * and the audit log says why. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "world.h"
#include "quietroom/base/clock.h"

#define CONSENT_S "2"

static void check_ok(struct udp_peer *p, const union netaddr *relay, const char *ufrag,
                 const char *pwd, bool nominate)
{
    struct check c = {.ufrag = ufrag, .pwd = pwd, .nominate = nominate};
    uint8_t raw[2048];
    struct stun_msg m;

    assert_int_equal(peer_check(p, relay, &c, &m, raw, 1000), 1);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
}

static bool forwarded(struct udp_peer *from, struct udp_peer *to, const union netaddr *relay)
{
    uint8_t pkt[40] = {0x80, 111}, got[2048];

    peer_send(from, relay, pkt, sizeof(pkt));
    return peer_recv(to, got, sizeof(got), 300, NULL) == (int)sizeof(pkt);
}

static void test_consent_and_expiry(void **state)
{
    static const char *const extra[] = {"--consent-timeout", CONSENT_S, NULL};
    struct world_opts o = {.no_signal = true, .relay_extra = extra};
    struct world w;
    struct relay_proc *r = &w.relay;
    struct udp_peer a, b, c, d;
    struct creds_link quiet, short_lived;
    struct hmac *h = hmac_new(HMAC_SHA256);
    const union netaddr *rl;
    char *audit;

    (void)state;
    assert_int_equal(world_start(&w, &o), 0);
    rl = &r->listen[0];
    assert_int_equal(creds_derive_link(&r->keys, "l-consent", 0, clock_wall_s() + 600, h, &quiet),
                     0);
    assert_int_equal(creds_derive_link(&r->keys, "l-expiry", 0, clock_wall_s() + 2, h,
                                       &short_lived),
                     0);
    assert_int_equal(peer_open(&a, "127.0.0.1:0"), 0);
    assert_int_equal(peer_open(&b, "127.0.0.1:0"), 0);
    assert_int_equal(peer_open(&c, "127.0.0.1:0"), 0);
    assert_int_equal(peer_open(&d, "127.0.0.1:0"), 0);
    check_ok(&a, rl, quiet.ufrag[0], quiet.pwd[0], true);
    check_ok(&b, rl, quiet.ufrag[1], quiet.pwd[1], true);
    check_ok(&c, rl, short_lived.ufrag[0], short_lived.pwd[0], true);
    check_ok(&d, rl, short_lived.ufrag[1], short_lived.pwd[1], true);
    assert_true(forwarded(&a, &b, rl));
    assert_true(forwarded(&c, &d, rl));

    /* b keeps consent with plain (non-nominated) checks; a goes quiet. */
    for (int i = 0; i < 7; i++) {
        usleep(500 * 1000);
        check_ok(&b, rl, quiet.ufrag[1], quiet.pwd[1], false);
    }
    assert_false(forwarded(&a, &b, rl));
    assert_false(forwarded(&b, &a, rl));
    assert_false(forwarded(&c, &d, rl));

    assert_int_equal(relay_stop(r), 0);
    audit = read_text(r->audit);
    assert_non_null(audit);
    assert_non_null(strstr(audit, "\"role\":\"leg-a\",\"requestor\":true,\"address\""));
    assert_non_null(strstr(audit, "\"reason\":\"consent\""));
    assert_non_null(strstr(audit, "\"reason\":\"expired\""));
    free(audit);
    peer_close(&a);
    peer_close(&b);
    peer_close(&c);
    peer_close(&d);
    hmac_free(h);
    assert_int_equal(world_stop(&w), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consent_and_expiry),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
