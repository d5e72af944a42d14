/* Two reference clients (libnice, OpenSSL DTLS-SRTP, libsrtp2, Opus) get a
 * link from `quietroomctl creds`, connect through the running relay, finish
 * DTLS end to end with each other's fingerprints, exchange SRTP and hear each
 * other's tone; the relay's stats show what it forwarded. */
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

#include "world.h"
#include "refclient.h"

#define READY_MS 10000
#define MEDIA_MS 2500
#define TONE_A 440.0
#define TONE_B 660.0

/* Each test starts its own relay, on both families, and stops it. */
static int setup(void **state)
{
    static const char *const listen[] = {"127.0.0.1:0", "[::1]:0", NULL};
    struct world_opts o = {.no_signal = true, .listen = listen};
    return world_setup(state, &o);
}

static struct relay_proc *relay_of(void **state)
{
    struct world *w = *state;

    return &w->relay;
}

struct call {
    struct refclient *rc[2];
    json_t *creds;
};

static struct refclient *client(const char *local, bool dtls_client, bool regular, double tone)
{
    struct refclient_config cfg = {
        .local_address = local,
        .controlling = true,
        .regular_nomination = regular,
        .dtls_client = dtls_client,
        .tone_hz = tone,
    };
    char err[256];
    struct refclient *rc = refclient_new(&cfg, err, sizeof(err));

    if (rc == NULL)
        fail_msg("refclient_new: %s", err);
    return rc;
}

/* Points leg `side` of the call at the relay address `relay`. */
static void aim(struct call *c, int side, const union netaddr *relay)
{
    assert_int_equal(refclient_set_remote(c->rc[side], creds_ufrag(c->creds, 0, side),
                                          creds_pwd(c->creds, 0, side),
                                          refclient_fingerprint(c->rc[!side])),
                     0);
    assert_int_equal(refclient_add_remote_netaddr(c->rc[side], relay), 0);
}

static void wait_ready(struct refclient *rc)
{
    char err[256];

    if (refclient_wait_ready(rc, READY_MS, err, sizeof(err)) != 0)
        fail_msg("not ready: %s", err);
}

/* Media both ways for MEDIA_MS; each side must decode the other's tone. */
static void talk_and_check(struct relay_proc *r, struct call *c, const char *sid)
{
    struct refclient_stats st[2];
    json_t *resp, *legs;

    assert_int_equal(refclient_start_media(c->rc[0]), 0);
    assert_int_equal(refclient_start_media(c->rc[1]), 0);
    usleep(MEDIA_MS * 1000);
    for (int i = 0; i < 2; i++) {
        refclient_get_stats(c->rc[i], &st[i]);
        assert_true(st[i].ice_ready && st[i].dtls_done && st[i].peer_verified);
        assert_int_equal(st[i].srtp_unprotect_failures, 0);
        assert_true(st[i].rtp_received > 80);
        assert_true(st[i].frames_decoded > 80);
        print_message("side %c: sent %llu, received %llu, decoded %llu, tone %.1f Hz, %s\n",
                      'a' + i, (unsigned long long)st[i].rtp_sent,
                      (unsigned long long)st[i].rtp_received,
                      (unsigned long long)st[i].frames_decoded, st[i].detected_tone_hz,
                      st[i].srtp_profile);
    }
    assert_true(st[0].detected_tone_hz > TONE_B - 10 && st[0].detected_tone_hz < TONE_B + 10);
    assert_true(st[1].detected_tone_hz > TONE_A - 10 && st[1].detected_tone_hz < TONE_A + 10);
    assert_string_equal(st[0].srtp_profile, st[1].srtp_profile);

    resp = relay_call(r, "session", sid);
    assert_non_null(resp);
    legs = json_object_get(json_array_get(json_object_get(resp, "links"), 0), "legs");
    for (int i = 0; i < 2; i++) {
        json_t *leg = json_object_get(legs, i == 0 ? "a" : "b");
        json_t *rtp = json_array_get(json_object_get(leg, "rtp"), 0);
        long long fwd = json_integer_value(json_object_get(leg, "packets_forwarded"));

        /* Everything the peer received came through the relay. */
        assert_true(fwd >= (long long)st[!i].rtp_received);
        assert_true(json_integer_value(json_object_get(rtp, "lost")) == 0);
        assert_int_equal(json_integer_value(json_object_get(rtp, "clock_rate")), 48000);
    }
    json_decref(resp);
}

static void call_free(struct call *c)
{
    refclient_free(c->rc[0]);
    refclient_free(c->rc[1]);
    json_decref(c->creds);
}

static void run_call(struct relay_proc *r, const char *sid, bool regular, int relay_b,
                     const char *local_b)
{
    struct call c = {.creds = ctl_creds(r, sid, 1)};

    assert_non_null(c.creds);
    c.rc[0] = client("127.0.0.1", true, regular, TONE_A);
    c.rc[1] = client(local_b, false, regular, TONE_B);
    aim(&c, 0, &r->listen[0]);
    aim(&c, 1, &r->listen[relay_b]);
    assert_int_equal(refclient_start(c.rc[0]), 0);
    assert_int_equal(refclient_start(c.rc[1]), 0);
    wait_ready(c.rc[0]);
    wait_ready(c.rc[1]);
    talk_and_check(r, &c, sid);
    call_free(&c);
}

static void test_call_aggressive_nomination(void **state)
{
    run_call(relay_of(state), "m-aggressive", false, 0, "127.0.0.1");
}

static void test_call_regular_nomination_ipv4_to_ipv6(void **state)
{
    run_call(relay_of(state), "m-regular-v6", true, 1, "::1");
}

/* The DTLS client starts first; its ClientHello reaches the relay before the
 * other leg exists. The relay holds it, so the handshake completes as soon
 * as the late side binds instead of on the client's next retransmission
 * (1 s, then 2 s). */
static void test_late_peer_does_not_wait_for_retransmission(void **state)
{
    struct relay_proc *r = relay_of(state);
    struct call c = {.creds = ctl_creds(r, "m-late", 1)};
    struct refclient_stats st;
    uint64_t t0;
    long long held;

    c.rc[0] = client("127.0.0.1", true, false, TONE_A);
    c.rc[1] = client("127.0.0.1", false, false, TONE_B);
    aim(&c, 0, &r->listen[0]);
    aim(&c, 1, &r->listen[0]);
    held = relay_stat(r, "early_dtls", "held");
    assert_int_equal(refclient_start(c.rc[0]), 0);
    usleep(1300 * 1000); /* past the first retransmission at 1 s */
    refclient_get_stats(c.rc[0], &st);
    assert_true(st.ice_ready);
    assert_true(st.dtls_packets_sent >= 1);
    assert_false(st.dtls_done);
    t0 = now_ms();
    assert_int_equal(refclient_start(c.rc[1]), 0);
    wait_ready(c.rc[1]);
    wait_ready(c.rc[0]);
    print_message("late side ready %llu ms after it started\n",
                  (unsigned long long)(now_ms() - t0));
    assert_true(now_ms() - t0 < 1000);
    assert_true(relay_stat(r, "early_dtls", "held") > held);
    call_free(&c);
}

#define MEDIA(name) cmocka_unit_test_setup_teardown(name, setup, world_teardown)

int main(void)
{
    struct CMUnitTest tests[] = {
        MEDIA(test_call_aggressive_nomination),
        MEDIA(test_call_regular_nomination_ipv4_to_ipv6),
        MEDIA(test_late_peer_does_not_wait_for_retransmission),
    };

    signal(SIGPIPE, SIG_IGN);
    return world_run_tests("test_relay_media", tests, sizeof(tests) / sizeof(tests[0]), NULL,
                           NULL);
}
