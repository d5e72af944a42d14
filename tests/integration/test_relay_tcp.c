/* ICE-TCP through the real relay (RFC 6544, framing RFC 4571): reference
 * clients with libnice in ICE-TCP mode connect their active end to the
 * relay's passive TCP address, finish DTLS end to end and hear each
 * other's Opus tone, both legs on TCP or one on TCP and one on UDP. The
 * relay's counters, its session view and its audit log show the TCP legs
 * for what they are. The last test places the call through signaling,
 * whose descriptions carry the relay's TCP candidate. Each test has its own
 * relay, started with --listen-tcp beside its UDP address; no other test's
 * relay has one. */
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

#include "callkit.h"
#include "world.h"
#include "refclient.h"

#define READY_MS 10000
#define MEDIA_MS 2500
#define TONE_A 440.0
#define TONE_B 660.0

enum leg_transport { VIA_UDP, VIA_TCP };

static int setup(void **state)
{
    static const char *const extra[] = {"--listen-tcp", "127.0.0.1:0", NULL};
    struct world_opts o = {.no_signal = true, .relay_extra = extra};
    struct world *w;

    if (world_setup(state, &o) != 0)
        return -1;
    w = *state;
    if (w->relay.n_listen_tcp == 0) {
        fprintf(stderr, "the relay's ready file names no listen_tcp address\n");
        world_teardown(state); /* no teardown follows a failed setup */
        return -1;
    }
    return 0;
}

struct call {
    struct refclient *rc[2];
    json_t *creds;
};

static struct refclient *client(bool dtls_client, double tone, enum leg_transport via)
{
    struct refclient_config cfg = {
        .local_address = "127.0.0.1",
        .controlling = true,
        .regular_nomination = true,
        .dtls_client = dtls_client,
        .tone_hz = tone,
        .ice_tcp = via == VIA_TCP,
    };
    char err[256];
    struct refclient *rc = refclient_new(&cfg, err, sizeof(err));

    if (rc == NULL)
        fail_msg("refclient_new: %s", err);
    return rc;
}

/* Points leg `side` at the relay: its UDP address, or its passive TCP one
 * (the candidate signaling writes as "tcp ... typ host tcptype passive"). */
static void aim(struct relay_proc *r, struct call *c, int side, enum leg_transport via)
{
    const union netaddr *relay = via == VIA_TCP ? &r->listen_tcp[0] : &r->listen[0];

    assert_int_equal(refclient_set_remote(c->rc[side], creds_ufrag(c->creds, 0, side),
                                          creds_pwd(c->creds, 0, side),
                                          refclient_fingerprint(c->rc[!side])),
                     0);
    assert_int_equal(refclient_add_remote_netaddr(c->rc[side], relay), 0);
}

static void wait_ready(struct refclient *rc, const char *who)
{
    char err[256];

    if (refclient_wait_ready(rc, READY_MS, err, sizeof(err)) != 0)
        fail_msg("%s not ready: %s", who, err);
}

/* Media both ways for MEDIA_MS: each side decodes the other's tone, and
 * the relay forwarded all of it. */
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
        print_message("side %c: sent %llu, received %llu, lost %llu, decoded %llu, "
                      "tone %.1f Hz, %s\n",
                      'a' + i, (unsigned long long)st[i].rtp_sent,
                      (unsigned long long)st[i].rtp_received, (unsigned long long)st[i].rtp_lost,
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

        /* Everything the peer received came through the relay; TCP loses nothing. */
        assert_true(fwd >= (long long)st[!i].rtp_received);
        assert_int_equal(json_integer_value(json_object_get(rtp, "lost")), 0);
        assert_int_equal(st[!i].rtp_lost, 0);
    }
    json_decref(resp);
}

/* leg.up records in the relay's audit log by transport (read once the
 * relay has stopped and flushed it). */
static void count_leg_ups(const char *audit, int *tcp, int *udp)
{
    *tcp = *udp = 0;
    for (const char *line = audit; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        char *copy = strndup(line, len);

        if (strstr(copy, "\"type\":\"leg.up\"") != NULL) {
            *tcp += strstr(copy, "\"transport\":\"tcp\"") != NULL;
            *udp += strstr(copy, "\"transport\":\"udp\"") != NULL;
        }
        free(copy);
        line = end != NULL ? end + 1 : NULL;
    }
}

/* One call, side a over via_a and side b over via_b; then the relay's own
 * view of it: TCP frames counted and forwarded, each leg's transport in
 * the audit log. */
static void run_call(struct world *w, const char *sid, enum leg_transport via_a,
                     enum leg_transport via_b)
{
    struct relay_proc *r = &w->relay;
    struct call c = {.creds = ctl_creds(r, sid, 1)};
    int want_tcp = (via_a == VIA_TCP) + (via_b == VIA_TCP), tcp_ups, udp_ups;
    long long accepted, tcp_fwd, tcp_rx;
    char *audit;

    assert_non_null(c.creds);
    c.rc[0] = client(true, TONE_A, via_a);
    c.rc[1] = client(false, TONE_B, via_b);
    aim(r, &c, 0, via_a);
    aim(r, &c, 1, via_b);
    assert_int_equal(refclient_start(c.rc[0]), 0);
    assert_int_equal(refclient_start(c.rc[1]), 0);
    wait_ready(c.rc[0], "side a");
    wait_ready(c.rc[1], "side b");
    talk_and_check(r, &c, sid);

    accepted = relay_stat(r, "tcp_connections", "accepted");
    tcp_rx = relay_stat(r, "tcp", "packets_received");
    tcp_fwd = relay_stat(r, "tcp", "packets_forwarded");
    print_message("relay: %lld TCP connections accepted, %lld frames received on TCP, "
                  "%lld forwarded to TCP legs\n", accepted, tcp_rx, tcp_fwd);
    assert_true(accepted >= want_tcp); /* libnice may open more than the pair it nominates */
    assert_true(tcp_rx > 80 * want_tcp);
    assert_true(tcp_fwd > 80 * want_tcp);
    refclient_free(c.rc[0]);
    refclient_free(c.rc[1]);
    json_decref(c.creds);

    assert_int_equal(relay_stop(r), 0);
    audit = read_text(r->audit);
    assert_non_null(audit);
    count_leg_ups(audit, &tcp_ups, &udp_ups);
    print_message("audit: leg.up over tcp %d, over udp %d\n", tcp_ups, udp_ups);
    assert_int_equal(tcp_ups, want_tcp);
    assert_int_equal(udp_ups, 2 - want_tcp);
    free(audit);
}

static void test_both_legs_on_tcp(void **state)
{
    run_call(*state, "t-both-tcp", VIA_TCP, VIA_TCP);
}

/* A patient behind a firewall that lets only TCP out, a clinician on UDP:
 * the relay forwards between its TCP connection and its UDP socket. */
static void test_tcp_leg_to_udp_leg(void **state)
{
    run_call(*state, "t-tcp-udp", VIA_TCP, VIA_UDP);
}

/* The other way round: the DTLS client on UDP, the server on TCP. */
static void test_udp_leg_to_tcp_leg(void **state)
{
    run_call(*state, "t-udp-tcp", VIA_UDP, VIA_TCP);
}

/* A patient whose network lets only TCP out, through signaling: the
 * description signaling writes for it names the relay's TCP address as a
 * passive candidate, its client reaches the relay over ICE-TCP with the leg
 * credentials signaling gave it, and the clinician stays on UDP. */
static int signal_setup(void **state)
{
    static const char *const extra[] = {"--listen-tcp", "127.0.0.1:0", NULL};
    struct world_opts o = {.relay_extra = extra};

    return world_setup(state, &o);
}

static void test_call_through_signaling_patient_on_tcp(void **state)
{
    struct world *w = *state;
    struct relay_proc *r = &w->relay;
    struct callkit_party doc = {.port = w->sig.port}, pat = {.port = w->sig.port};
    char *doc_tok = mint_token(&w->sig, "s-tcp", "clinician", "dr-1", NULL);
    char *pat_tok = mint_token(&w->sig, "s-tcp", "patient", "pt-1", NULL);
    uint64_t doc_before, pat_before;
    int tcp_ups, udp_ups;
    char *audit;

    assert_int_equal(r->n_listen_tcp, 1);
    pat.ice_tcp = true;
    pat.relay_tcp = r->listen_tcp[0];
    callkit_join(&doc, doc_tok, "admitted");
    callkit_join(&pat, pat_tok, "waiting");
    callkit_admit(&doc, &pat);
    callkit_media(&doc, &pat);
    doc_before = callkit_received(doc.rc);
    pat_before = callkit_received(pat.rc);
    usleep(1000 * 1000);
    print_message("in 1 s: clinician received %llu, patient %llu RTP packets\n",
                  (unsigned long long)(callkit_received(doc.rc) - doc_before),
                  (unsigned long long)(callkit_received(pat.rc) - pat_before));
    assert_true(callkit_received(doc.rc) > doc_before + 40); /* 50 a second */
    assert_true(callkit_received(pat.rc) > pat_before + 40);
    assert_true(relay_stat(r, "tcp_connections", "accepted") >= 1);
    assert_true(relay_stat(r, "tcp", "packets_forwarded") > 40);
    callkit_free(&doc);
    callkit_free(&pat);
    free(doc_tok);
    free(pat_tok);

    assert_int_equal(relay_stop(r), 0);
    audit = read_text(r->audit);
    assert_non_null(audit);
    count_leg_ups(audit, &tcp_ups, &udp_ups);
    assert_int_equal(tcp_ups, 1);
    assert_int_equal(udp_ups, 1);
    free(audit);
}

#define TCP(name) cmocka_unit_test_setup_teardown(name, setup, world_teardown)

int main(void)
{
    struct CMUnitTest tests[] = {
        TCP(test_both_legs_on_tcp),
        TCP(test_tcp_leg_to_udp_leg),
        TCP(test_udp_leg_to_tcp_leg),
        cmocka_unit_test_setup_teardown(test_call_through_signaling_patient_on_tcp, signal_setup,
                                        world_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return world_run_tests("test_relay_tcp", tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}
