/* ICE restart between two reference clients in a call over loopback, as
 * when signaling moves a call to another relay: the offerer restarts, a new
 * offer and answer go directly between them, checks run again and the
 * audio, which never stopped being sent, keeps arriving both ways on the
 * same DTLS association and SRTP keys (no new handshake). A restart
 * description that changes the peer's fingerprint or would swap the DTLS
 * roles is refused and nothing of it applied. */
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

#define READY_MS 10000
#define MEDIA_MS 10000
#define SDP_CAP 8192
#define TONE_A 440.0
#define TONE_B 660.0
#define AFTER_RESTART_PACKETS 50 /* one second of audio */
#define RESTARTS 2

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct refclient *make(double tone)
{
    struct refclient_config cfg = {.local_address = "127.0.0.1", .regular_nomination = true,
                                   .tone_hz = tone};
    char err[256] = "";
    struct refclient *rc = refclient_new(&cfg, err, sizeof(err));

    if (rc == NULL)
        fail_msg("refclient_new: %s", err);
    return rc;
}

static struct refclient_stats stats(struct refclient *rc)
{
    struct refclient_stats st;

    refclient_get_stats(rc, &st);
    return st;
}

static void apply(struct refclient *rc, bool is_answer, const char *sdp)
{
    char err[256] = "";

    if (refclient_set_remote_description(rc, is_answer, sdp, strlen(sdp), err, sizeof(err)) != 0)
        fail_msg("%s refused: %s", is_answer ? "answer" : "offer", err);
}

static void expect_refused(struct refclient *rc, bool is_answer, const char *sdp, const char *why)
{
    char err[256] = "";

    assert_int_equal(refclient_set_remote_description(rc, is_answer, sdp, strlen(sdp), err,
                                                      sizeof(err)), -1);
    if (strstr(err, why) == NULL)
        fail_msg("refused for \"%s\", expected \"%s\"", err, why);
}

/* Replaces the first occurrence of from with to in text (static buffer). */
static const char *edit(const char *text, const char *from, const char *to)
{
    static char buf[SDP_CAP + 256];
    const char *at = strstr(text, from);

    assert_non_null(at);
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return buf;
}

static void wait_ready(struct refclient *rc, const char *who)
{
    char err[256] = "";

    if (refclient_wait_ready(rc, READY_MS, err, sizeof(err)) != 0)
        fail_msg("%s not ready: %s", who, err);
}

/* Until both have received `more` packets beyond what they had and hear
 * the other's tone; returns the ms it took. */
static uint64_t wait_audio(struct refclient *a, struct refclient *b, uint64_t more)
{
    uint64_t t0 = mono_ms(), ra = stats(a).rtp_received, rb = stats(b).rtp_received;

    for (;;) {
        struct refclient_stats sa = stats(a), sb = stats(b);

        if (sa.rtp_received >= ra + more && sb.rtp_received >= rb + more &&
            fabs(sa.detected_tone_hz - TONE_B) < 10.0 && fabs(sb.detected_tone_hz - TONE_A) < 10.0)
            return mono_ms() - t0;
        if (mono_ms() - t0 > MEDIA_MS)
            fail_msg("audio stalled: a got %llu more, b %llu more, tones %.1f/%.1f Hz",
                     (unsigned long long)(sa.rtp_received - ra),
                     (unsigned long long)(sb.rtp_received - rb), sa.detected_tone_hz,
                     sb.detected_tone_hz);
        sleep_ms(20);
    }
}

/* a offers, b answers (b becomes the DTLS client, as a browser answering
 * actpass does); ICE, DTLS, audio both ways. */
static void call(struct refclient *a, struct refclient *b)
{
    static char offer[SDP_CAP], answer[SDP_CAP];

    assert_true(refclient_create_offer(a, offer, sizeof(offer)) > 0);
    apply(b, false, offer);
    assert_true(refclient_create_answer(b, answer, sizeof(answer)) > 0);
    apply(a, true, answer);
    assert_int_equal(refclient_start(a), 0);
    assert_int_equal(refclient_start(b), 0);
    wait_ready(a, "offerer");
    wait_ready(b, "answerer");
    assert_int_equal(refclient_start_media(a), 0);
    assert_int_equal(refclient_start_media(b), 0);
    wait_audio(a, b, AFTER_RESTART_PACKETS);
}

static void credentials(struct refclient *rc, char *ufrag, char *pwd)
{
    refclient_local_credentials(rc, ufrag, 257, pwd, 257);
}

static void one_restart(struct refclient *a, struct refclient *b, int n)
{
    static char offer[SDP_CAP], answer[SDP_CAP], version[32];
    char ua[257], pa[257], ub[257], pb[257], u[257], p[257], bad_fp[160], ufrag_line[300];
    struct refclient_stats sa = stats(a), sb = stats(b);
    uint64_t t0;

    credentials(a, ua, pa);
    credentials(b, ub, pb);
    assert_int_equal(refclient_restart_ice(a), 0);
    credentials(a, u, p);
    assert_string_not_equal(u, ua);
    assert_string_not_equal(p, pa);
    assert_false(stats(a).ice_ready);
    assert_int_equal(stats(a).ice_restarts, (uint64_t)n);
    t0 = mono_ms();

    assert_true(refclient_create_offer(a, offer, sizeof(offer)) > 0);
    snprintf(ufrag_line, sizeof(ufrag_line), "a=ice-ufrag:%s\r\n", u);
    assert_non_null(strstr(offer, ufrag_line));
    assert_non_null(strstr(offer, refclient_fingerprint(a)));
    assert_non_null(strstr(offer, "a=setup:actpass\r\n"));
    snprintf(version, sizeof(version), " %d IN IP4 ", 2 + n);
    assert_non_null(strstr(offer, version));

    assert_int_equal(refclient_restart_ice(b), 0);
    /* Another certificate's fingerprint: refused, and nothing applied. */
    snprintf(bad_fp, sizeof(bad_fp), "%s", refclient_fingerprint(a));
    bad_fp[8] = bad_fp[8] == '0' ? '1' : '0';
    expect_refused(b, false, edit(offer, refclient_fingerprint(a), bad_fp), "fingerprint");
    /* b is the DTLS client: an offer that would make it the server too. */
    expect_refused(b, false, edit(offer, "a=setup:actpass", "a=setup:active"), "DTLS role");
    assert_int_equal(refclient_create_answer(b, answer, sizeof(answer)), -1); /* no offer taken */
    apply(b, false, offer);
    assert_true(refclient_create_answer(b, answer, sizeof(answer)) > 0);
    assert_non_null(strstr(answer, "a=setup:active\r\n")); /* the role it has */
    credentials(b, u, p);
    assert_string_not_equal(u, ub);
    snprintf(ufrag_line, sizeof(ufrag_line), "a=ice-ufrag:%s\r\n", u);
    assert_non_null(strstr(answer, ufrag_line));
    /* An answer that would swap the roles: refused at a. */
    expect_refused(a, true, edit(answer, "a=setup:active", "a=setup:passive"), "DTLS role");
    apply(a, true, answer);

    wait_ready(a, "offerer after the restart");
    wait_ready(b, "answerer after the restart");
    wait_audio(a, b, AFTER_RESTART_PACKETS);
    print_message("restart %d: ready again and %d packets each way %llu ms after it\n", n,
                  AFTER_RESTART_PACKETS, (unsigned long long)(mono_ms() - t0));
    /* The same association: no handshake datagram since, no SRTP failure. */
    assert_int_equal(stats(a).dtls_packets_sent, sa.dtls_packets_sent);
    assert_int_equal(stats(b).dtls_packets_sent, sb.dtls_packets_sent);
    assert_int_equal(stats(a).srtp_unprotect_failures, 0);
    assert_int_equal(stats(b).srtp_unprotect_failures, 0);
    assert_string_equal(stats(a).srtp_profile, sa.srtp_profile);
    /* A second description without another restart is still refused. */
    expect_refused(b, false, offer, "renegotiation");
}

static void test_restart_keeps_audio_and_dtls(void **state)
{
    struct refclient *a = make(TONE_A), *b = make(TONE_B);

    (void)state;
    call(a, b);
    for (int n = 1; n <= RESTARTS; n++)
        one_restart(a, b, n);
    refclient_stop_media(a);
    refclient_stop_media(b);
    refclient_free(a);
    refclient_free(b);
}

static void test_restart_needs_a_started_call(void **state)
{
    struct refclient *a = make(TONE_A);

    (void)state;
    assert_int_equal(refclient_restart_ice(a), -1);
    assert_int_equal(stats(a).ice_restarts, 0);
    refclient_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_needs_a_started_call),
        cmocka_unit_test(test_restart_keeps_audio_and_dtls),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
