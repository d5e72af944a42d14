/* Two reference clients connected directly over loopback, no relay: one
 * controlling and DTLS client, one controlled and DTLS server. Proves the
 * client itself works before it is pointed at the relay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "refclient.h"
#include "refclient_tone.h"

#define READY_TIMEOUT_MS 10000
#define MEDIA_TIMEOUT_MS 10000
#define TONE_A 440.0
#define TONE_B 660.0
#define TONE_RETUNED 880.0
#define TONE_TOLERANCE 10.0
#define GCM "SRTP_AEAD_AES_128_GCM"
#define CM80 "SRTP_AES128_CM_SHA1_80"
#define WRONG_FP "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:" \
                 "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"

struct p2p_opts {
    const char *address;
    bool regular_nomination;
    const char *profiles_a;   /* NULL = default list */
    const char *expect_profile;
    bool wrong_fp_at_client;  /* the DTLS client expects a wrong fingerprint */
    bool wrong_fp_at_server;
    bool b_dtls_client;       /* the controlled side is the DTLS client instead */
    bool retune;              /* also check refclient_set_tone */
    bool ice_tcp;             /* both ICE-TCP only (RFC 6544) */
};

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* a: controlling agent; b: controlled agent. */
static struct refclient *make_client(const struct p2p_opts *o, bool is_a, double hz,
                                     const char *profiles)
{
    struct refclient_config cfg = {
        .local_address = o->address,
        .controlling = is_a,
        .regular_nomination = o->regular_nomination,
        .dtls_client = is_a != o->b_dtls_client,
        .tone_hz = hz,
        .srtp_profiles = profiles,
        .ice_tcp = o->ice_tcp,
    };
    char err[256] = "";
    struct refclient *rc = refclient_new(&cfg, err, sizeof(err));

    if (rc == NULL)
        print_error("refclient_new(%s): %s\n", o->address, err);
    return rc;
}

/* Tells `to` everything about `from`, as signaling would. */
static void introduce(struct refclient *to, const struct refclient *from, const char *fp)
{
    char ufrag[257], pwd[257], addrs[8][64];
    uint16_t ports[8];
    int n;

    refclient_local_credentials(from, ufrag, sizeof(ufrag), pwd, sizeof(pwd));
    assert_int_equal(refclient_set_remote(to, ufrag, pwd, fp), 0);
    n = refclient_local_candidates(from, addrs, ports, 8);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++)
        assert_int_equal(refclient_add_remote_candidate(to, addrs[i], ports[i]), 0);
}

static void connect_pair(struct refclient *a, struct refclient *b, const struct p2p_opts *o)
{
    bool a_wrong = o->b_dtls_client ? o->wrong_fp_at_server : o->wrong_fp_at_client;
    bool b_wrong = o->b_dtls_client ? o->wrong_fp_at_client : o->wrong_fp_at_server;

    introduce(a, b, a_wrong ? WRONG_FP : refclient_fingerprint(b));
    introduce(b, a, b_wrong ? WRONG_FP : refclient_fingerprint(a));
    assert_int_equal(refclient_start(a), 0);
    assert_int_equal(refclient_start(b), 0);
}

static void wait_ready_ok(struct refclient *rc, const char *who)
{
    char err[256] = "";

    if (refclient_wait_ready(rc, READY_TIMEOUT_MS, err, sizeof(err)) != 0)
        fail_msg("%s not ready: %s", who, err);
}

static void assert_keyed(struct refclient *rc, const char *profile)
{
    struct refclient_stats st;

    refclient_get_stats(rc, &st);
    assert_true(st.ice_ready);
    assert_true(st.dtls_done);
    assert_true(st.peer_verified);
    assert_string_equal(st.srtp_profile, profile);
    assert_true(st.dtls_packets_sent > 0);
    assert_true(st.dtls_packets_received > 0);
}

static bool heard_enough(struct refclient *rc)
{
    struct refclient_stats st;

    refclient_get_stats(rc, &st);
    /* three detections: the first window may hold the decoder's start-up */
    return st.frames_decoded >= 75 && st.detected_tone_hz > 0.0;
}

static void assert_hears(struct refclient *rc, double expected_hz, uint64_t received_before)
{
    struct refclient_stats st;

    refclient_get_stats(rc, &st);
    assert_true(st.rtp_sent > 0);
    assert_true(st.rtp_received > received_before);
    assert_int_equal(st.srtp_unprotect_failures, 0);
    if (fabs(st.detected_tone_hz - expected_hz) > TONE_TOLERANCE)
        fail_msg("detected %.2f Hz, expected %.1f Hz", st.detected_tone_hz, expected_hz);
}

static void exchange_media(struct refclient *a, struct refclient *b)
{
    struct refclient_stats sa, sb;
    int waited = 0;

    assert_int_equal(refclient_start_media(a), 0);
    assert_int_equal(refclient_start_media(b), 0);
    while (!(heard_enough(a) && heard_enough(b)) && waited < MEDIA_TIMEOUT_MS) {
        sleep_ms(50);
        waited += 50;
    }
    refclient_get_stats(a, &sa);
    refclient_get_stats(b, &sb);
    sleep_ms(200); /* media must still be flowing, not just have flowed */
    assert_hears(a, TONE_B, sa.rtp_received);
    assert_hears(b, TONE_A, sb.rtp_received);
    refclient_stop_media(a);
    refclient_stop_media(b);
}

/* After a changes its tone, b must hear the new one within a few windows. */
static void check_retune(struct refclient *a, struct refclient *b)
{
    struct refclient_stats st;
    int waited = 0;

    assert_int_equal(refclient_start_media(a), 0);
    assert_int_equal(refclient_set_tone(a, TONE_RETUNED), 0);
    do {
        sleep_ms(50);
        waited += 50;
        refclient_get_stats(b, &st);
    } while (fabs(st.detected_tone_hz - TONE_RETUNED) > TONE_TOLERANCE && waited < MEDIA_TIMEOUT_MS);
    refclient_stop_media(a);
    if (fabs(st.detected_tone_hz - TONE_RETUNED) > TONE_TOLERANCE)
        fail_msg("after retuning b hears %.2f Hz", st.detected_tone_hz);
}

static void run_positive(const struct p2p_opts *o)
{
    struct refclient *a = make_client(o, true, TONE_A, o->profiles_a);
    struct refclient *b = make_client(o, false, TONE_B, NULL);

    assert_non_null(a);
    assert_non_null(b);
    connect_pair(a, b, o);
    wait_ready_ok(a, "controlling side");
    wait_ready_ok(b, "controlled side");
    assert_keyed(a, o->expect_profile);
    assert_keyed(b, o->expect_profile);
    exchange_media(a, b);
    if (o->retune)
        check_retune(a, b);
    refclient_free(a);
    refclient_free(b);
}

static void test_p2p_aggressive(void **state)
{
    struct p2p_opts o = {.address = "127.0.0.1", .expect_profile = GCM, .retune = true};

    (void)state;
    run_positive(&o);
}

static void test_p2p_regular(void **state)
{
    struct p2p_opts o = {.address = "127.0.0.1", .regular_nomination = true, .expect_profile = GCM};

    (void)state;
    run_positive(&o);
}

static void test_p2p_cm_sha1_80(void **state)
{
    struct p2p_opts o = {.address = "127.0.0.1", .profiles_a = CM80, .expect_profile = CM80};

    (void)state;
    run_positive(&o);
}

/* DTLS roles do not follow ICE roles: against the relay both clients are
 * controlling and one of them is the DTLS server. */
static void test_p2p_controlled_dtls_client(void **state)
{
    struct p2p_opts o = {.address = "127.0.0.1", .b_dtls_client = true, .expect_profile = GCM};

    (void)state;
    run_positive(&o);
}

/* ICE-TCP on both sides: each lists only its passive candidates, and the
 * other's active end connects to them; STUN, DTLS and SRTP go framed on
 * those connections (RFC 4571), which libnice does itself. */
static void test_p2p_ice_tcp(void **state)
{
    struct p2p_opts o = {.address = "127.0.0.1", .regular_nomination = true,
                         .expect_profile = GCM, .ice_tcp = true};
    struct refclient *rc = make_client(&o, true, TONE_A, NULL);
    char addrs[8][64];
    uint16_t ports[8];

    (void)state;
    assert_non_null(rc);
    assert_int_equal(refclient_local_candidates(rc, addrs, ports, 8), 1);
    assert_string_equal(addrs[0], "127.0.0.1");
    assert_true(ports[0] != 0 && ports[0] != 9); /* a listening port, not the discard port */
    refclient_free(rc);
    run_positive(&o);
}

static void test_p2p_ipv6(void **state)
{
    struct p2p_opts o = {.address = "::1", .expect_profile = GCM};
    struct refclient_config cfg = {.local_address = "::1", .tone_hz = TONE_A};
    struct refclient *probe = refclient_new(&cfg, NULL, 0);

    (void)state;
    if (probe == NULL)
        skip(); /* no IPv6 loopback here */
    refclient_free(probe);
    run_positive(&o);
}

/* A wrong expected fingerprint on either side must stop both: the side that
 * checks fails with a mismatch and alerts; the other sees the alert. */
static void run_wrong_fingerprint(const struct p2p_opts *o, bool client_checks)
{
    struct refclient *a = make_client(o, true, TONE_A, NULL);
    struct refclient *b = make_client(o, false, TONE_B, NULL);
    struct refclient *checker, *other;
    struct refclient_stats st;
    char err[256] = "";

    assert_non_null(a);
    assert_non_null(b);
    checker = client_checks ? a : b; /* a is the DTLS client here */
    other = client_checks ? b : a;
    connect_pair(a, b, o);
    assert_int_equal(refclient_wait_ready(checker, READY_TIMEOUT_MS, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "fingerprint"));
    refclient_get_stats(checker, &st);
    assert_true(st.ice_ready);
    assert_false(st.peer_verified);
    assert_false(st.dtls_done);
    assert_int_equal(refclient_wait_ready(other, READY_TIMEOUT_MS, err, sizeof(err)), -1);
    refclient_get_stats(other, &st);
    assert_false(st.dtls_done);
    assert_int_equal(refclient_start_media(checker), -1);
    refclient_free(a);
    refclient_free(b);
}

static void test_wrong_fingerprint_at_client(void **state)
{
    struct p2p_opts o = {.address = "127.0.0.1", .wrong_fp_at_client = true};

    (void)state;
    run_wrong_fingerprint(&o, true);
}

static void test_wrong_fingerprint_at_server(void **state)
{
    struct p2p_opts o = {.address = "127.0.0.1", .wrong_fp_at_server = true};

    (void)state;
    run_wrong_fingerprint(&o, false);
}

static void test_bad_arguments(void **state)
{
    struct refclient_config cfg = {.local_address = "127.0.0.1", .tone_hz = TONE_A};
    struct refclient_config bad = cfg;
    struct refclient *rc;
    char err[256] = "", ufrag[257], pwd[257];

    (void)state;
    refclient_free(NULL);
    bad.local_address = NULL;
    assert_null(refclient_new(&bad, err, sizeof(err)));
    assert_true(err[0] != '\0');
    bad = cfg;
    bad.local_address = "not-an-address";
    assert_null(refclient_new(&bad, err, sizeof(err)));
    bad = cfg;
    bad.srtp_profiles = "NO_SUCH_PROFILE";
    assert_null(refclient_new(&bad, err, sizeof(err)));
    bad = cfg;
    bad.local_ufrag = "fixedufrag";
    bad.local_pwd = "fixedpasswordfixedpassword";
    rc = refclient_new(&bad, err, sizeof(err));
    assert_non_null(rc);
    refclient_local_credentials(rc, ufrag, sizeof(ufrag), pwd, sizeof(pwd));
    assert_string_equal(ufrag, "fixedufrag");
    assert_string_equal(pwd, "fixedpasswordfixedpassword");
    assert_int_equal(strncmp(refclient_fingerprint(rc), "sha-256 ", 8), 0);
    assert_int_equal(refclient_start(rc), -1); /* no remote side yet */
    assert_int_equal(refclient_set_remote(rc, "u", "p", "sha-1 00:11"), -1);
    assert_int_equal(refclient_add_remote_candidate(rc, "nowhere", 9), -1);
    assert_int_equal(refclient_start_media(rc), -1);
    assert_int_equal(refclient_set_tone(rc, 5.0), -1);
    assert_int_equal(refclient_wait_ready(rc, 100, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "timeout"));
    refclient_free(rc);
}

static void test_tone_detector(void **state)
{
    static float pcm[24000];
    struct refclient_tone t = {0};
    uint32_t lcg = 12345;

    (void)state;
    refclient__tone_set(&t, 440.0, 48000);
    refclient__tone_fill(&t, pcm, 24000, 0.5f);
    assert_true(fabs(refclient__tone_detect(pcm, 24000, 48000) - 440.0) <= 0.5);
    refclient__tone_set(&t, 1234.5, 48000);
    refclient__tone_fill(&t, pcm, 24000, 0.1f);
    assert_true(fabs(refclient__tone_detect(pcm, 24000, 48000) - 1234.5) <= 0.5);
    memset(pcm, 0, sizeof(pcm));
    assert_true(refclient__tone_detect(pcm, 24000, 48000) == 0.0);
    for (size_t i = 0; i < 24000; i++) {
        lcg = lcg * 1664525u + 1013904223u;
        pcm[i] = (float)((double)lcg / 4294967296.0 - 0.5);
    }
    assert_true(refclient__tone_detect(pcm, 24000, 48000) == 0.0); /* white noise */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tone_detector),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_p2p_aggressive),
        cmocka_unit_test(test_p2p_regular),
        cmocka_unit_test(test_p2p_cm_sha1_80),
        cmocka_unit_test(test_p2p_controlled_dtls_client),
        cmocka_unit_test(test_p2p_ice_tcp),
        cmocka_unit_test(test_p2p_ipv6),
        cmocka_unit_test(test_wrong_fingerprint_at_client),
        cmocka_unit_test(test_wrong_fingerprint_at_server),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
