/* A relay lost under a call, and the call moved to another one. Two real
 * relays A (r1) and B (r2) on one secret, signaling knowing both, two
 * reference native clients (libnice, OpenSSL DTLS, libsrtp2, Opus) in a call
 * on A. When A dies (kill -9) or stops (SIGTERM twice), signaling asks the
 * first offerer to renegotiate; both clients restart ICE, a new offer and
 * answer go through signaling with B's credentials, and audio flows again
 * both ways through B, within 5 s of the renegotiate, with the same
 * participants, no readmission, an audit record and a counted move.
 * When A only drains (one SIGTERM) with its drain-timeout near, the call
 * leaves it before the deadline, and A, its last link revoked, exits. With
 * the first offerer away, the other side is asked, and offers once it is
 * back (the DTLS roles stay).
 * When A comes back it takes no new pair while it holds (10 s), and then
 * takes the next one by load. With no relay at all, two people admitted
 * still meet (waiting for a relay), and the call starts when one is back.
 * Timings are printed. Loopback only. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "callkit.h"
#include "harness.h"
#include "quietroom/base/limits.h"
#include "quietroom/wire/sdp.h"
#include "world.h"

#define OPS_TOKEN "failover-ops-token-0123456789"
#define MOVE_WITHIN_MS 10000     /* kill to renegotiate: QR_RELAY_LOST_MS and a tick or two */
#define AUDIO_BACK_MS 5000       /* renegotiate to audio both ways again */
#define AUDIO_PACKETS 25         /* half a second of audio, each way */
#define HELD_DEADLINE_MS 15000   /* relay back to a pair placed on it */
#define RELAY_DOWN_MS 20000      /* scenario d: how long no relay is there (the issue: 20 s) */
#define DRAIN_S "20"             /* scenario b2: A's drain-timeout */

struct fixture {
    struct world w;              /* w.relay is A (r1), w.relay2 is B (r2) */
    char token_file[HARNESS_PATH];
    char token_line[HARNESS_PATH + 32];
    struct callkit_party doc, pat, doc2, pat2;
};

static int write_token(struct fixture *f)
{
    int fd;

    snprintf(f->token_file, sizeof(f->token_file), "/tmp/qr-failover-token-XXXXXX");
    if ((fd = mkstemp(f->token_file)) < 0)
        return -1;
    if (write(fd, OPS_TOKEN "\n", sizeof(OPS_TOKEN)) != (ssize_t)sizeof(OPS_TOKEN)) {
        close(fd);
        return -1;
    }
    snprintf(f->token_line, sizeof(f->token_line), "ops-token-file = %s", f->token_file);
    return close(fd);
}

static int setup_with(void **state, bool two_relays, const char *const *relay_extra)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *extra[] = {"ops-listen = 127.0.0.1:0", f ? f->token_line : NULL, NULL};
    struct world_opts o = {.second_relay = two_relays, .signal_both_relays = two_relays,
                           .signal_extra = extra, .relay_extra = relay_extra};

    *state = f;
    if (f == NULL || write_token(f) != 0)
        return -1;
    return world_start(&f->w, &o);
}

static int setup_two(void **state)
{
    return setup_with(state, true, NULL);
}

/* A drain ends DRAIN_S after SIGTERM: under QR_RELAY_MOVE_LEAD_S, so
 * signaling moves the calls off as soon as it sees the drain. */
static int setup_two_short_drain(void **state)
{
    static const char *const drain[] = {"--drain-timeout", DRAIN_S, NULL};

    return setup_with(state, true, drain);
}

static int setup_one(void **state)
{
    return setup_with(state, false, NULL);
}

/* Runs even when the test failed half-way: no thread, client or process
 * outlives it. */
static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc;

    if (f == NULL)
        return 0;
    callkit_stop_samplers();
    callkit_free(&f->doc);
    callkit_free(&f->pat);
    callkit_free(&f->doc2);
    callkit_free(&f->pat2);
    rc = world_stop(&f->w);
    if (f->token_file[0] != '\0')
        unlink(f->token_file);
    free(f);
    *state = NULL;
    return rc;
}

/* --- helpers --------------------------------------------------------------- */

static void wait_relays_healthy(struct world *w, int n, int within_ms)
{
    uint64_t until = now_ms() + (uint64_t)within_ms;

    while (signal_relays_healthy(&w->sig) != n) {
        if (now_ms() > until)
            fail_msg("signaling never saw %d relay(s) healthy (it sees %d)", n,
                     signal_relays_healthy(&w->sig));
        usleep(100000);
    }
}

static long long links(struct relay_proc *r)
{
    return relay_stat(r, "links", "active");
}

static long long forwarded(struct relay_proc *r)
{
    return relay_stat(r, "packets", "forwarded");
}

/* A clinician and a patient of visit sid, admitted, each with a "peer". */
static void meet(struct world *w, const char *sid, struct callkit_party *doc,
                 struct callkit_party *pat)
{
    char *doc_tok = mint_token(&w->sig, sid, "clinician", "dr-fo", NULL);
    char *pat_tok = mint_token(&w->sig, sid, "patient", "pt-fo", NULL);

    assert_non_null(doc_tok);
    assert_non_null(pat_tok);
    doc->port = w->sig.port;
    pat->port = w->sig.port;
    callkit_join(doc, doc_tok, "admitted");
    callkit_join(pat, pat_tok, "waiting");
    callkit_admit(doc, pat);
    assert_true(doc->initiator);
    assert_false(pat->initiator);
    free(doc_tok);
    free(pat_tok);
}

/* Until both have received AUDIO_PACKETS more than when called, within
 * within_ms of t0; returns the ms from t0 to the first new packet both
 * ways (audio back). */
static uint64_t wait_audio(struct callkit_party *doc, struct callkit_party *pat, uint64_t t0,
                           int within_ms)
{
    uint64_t d0 = callkit_received(doc->rc), p0 = callkit_received(pat->rc), first = 0;

    for (;;) {
        uint64_t d = callkit_received(doc->rc), p = callkit_received(pat->rc);

        if (first == 0 && d > d0 && p > p0)
            first = now_ms() - t0;
        if (d >= d0 + AUDIO_PACKETS && p >= p0 + AUDIO_PACKETS)
            return first;
        if (now_ms() > t0 + (uint64_t)within_ms)
            fail_msg("no audio both ways %d ms after the renegotiate: clinician got %llu, "
                     "patient %llu packets since", within_ms, (unsigned long long)(d - d0),
                     (unsigned long long)(p - p0));
        usleep(10000);
    }
}

/* The audit record of the move: participants, relay names, reason. The
 * audit writer may lag the decision a little. */
static void expect_audited_move(struct world *w, const struct callkit_party *doc,
                                const struct callkit_party *pat, const char *reason,
                                const char *from, const char *to)
{
    for (uint64_t until = now_ms() + 3000;; usleep(100000)) {
        char *text = read_text(w->sig.audit), *save = NULL;
        int found = 0;

        for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line != NULL && !found;
             line = strtok_r(NULL, "\n", &save)) {
            json_error_t jerr;
            json_t *ev = json_loads(line, 0, &jerr), *d, *who;

            if (ev == NULL)
                continue;
            d = json_object_get(ev, "detail");
            who = json_object_get(d, "participants");
            if (strcmp(world_str(ev, "type"), "link.moved") == 0 &&
                strcmp(world_str(ev, "reason"), reason) == 0 &&
                strcmp(world_str(d, "from"), from) == 0 && strcmp(world_str(d, "to"), to) == 0 &&
                strcmp(json_string_value(json_array_get(who, 0)) ?: "", doc->id) == 0 &&
                strcmp(json_string_value(json_array_get(who, 1)) ?: "", pat->id) == 0)
                found = 1;
            json_decref(ev);
        }
        free(text);
        if (found)
            return;
        if (now_ms() > until)
            fail_msg("no link.moved %s %s -> %s in signaling's audit log", reason, from, to);
    }
}

static void expect_moves_metric(struct world *w, const char *reason, int n)
{
    char *resp = http_request(w->sig.ops_port, "/metrics",
                              "Authorization: Bearer " OPS_TOKEN "\r\n");
    char want[128];

    assert_int_equal(http_status(resp), 200);
    snprintf(want, sizeof(want), "quietroom_signal_media_moves_total{reason=\"%s\"} %d\n", reason,
             n);
    if (strstr(resp, want) == NULL)
        fail_msg("/metrics lacks: %s", want);
    free(resp);
}

static void kill9(struct relay_proc *r)
{
    assert_int_equal(relay_kill9(r), 0);
}

/* A call placed on A, with B ready and idle. */
static void call_on_a(struct fixture *f, const char *sid)
{
    struct world *w = &f->w;

    wait_relays_healthy(w, 2, 5000);
    meet(w, sid, &f->doc, &f->pat);
    callkit_media(&f->doc, &f->pat);
    assert_int_equal(links(&w->relay), 1);
    assert_int_equal(links(&w->relay2), 0);
}

/* A goes away (stop_a), and the call follows signaling to B. */
static void lose_a_and_follow(struct fixture *f, void (*stop_a)(struct relay_proc *),
                              const char *how)
{
    struct world *w = &f->w;
    struct callkit_party *doc = &f->doc, *pat = &f->pat;
    long long fwd_b = forwarded(&w->relay2);
    struct callkit_sampler *smp = callkit_sampler_start(doc->rc, pat->rc);
    struct callkit_move mv;
    uint64_t t_stop, to_reneg, to_ready, to_audio;
    char *health;

    t_stop = now_ms();
    stop_a(&w->relay);
    callkit_follow_move(doc, pat, MOVE_WITHIN_MS, &mv);
    assert_string_equal(mv.reason, "relay_lost");
    to_reneg = mv.renegotiate_at - t_stop;
    to_ready = mv.ready_at - mv.renegotiate_at;
    to_audio = wait_audio(doc, pat, mv.renegotiate_at, AUDIO_BACK_MS);
    callkit_sampler_stop(smp);
    print_message("%s: renegotiate %llu ms after A went; ICE ready on B %llu ms and audio "
                  "both ways %llu ms after the renegotiate; longest silence %llu/%llu ms\n",
                  how, (unsigned long long)to_reneg, (unsigned long long)to_ready,
                  (unsigned long long)to_audio, (unsigned long long)smp->gap_ms[0],
                  (unsigned long long)smp->gap_ms[1]);
    free(smp);
    /* Signaling waits for QR_RELAY_LOST_MS of silence, counted from the
     * last answer (up to a poll before the stop). */
    assert_true(to_reneg + QR_RELAY_POLL_MS >= QR_RELAY_LOST_MS);
    assert_true(to_audio <= AUDIO_BACK_MS);

    /* Through B now, and still going. */
    assert_int_equal(links(&w->relay2), 1);
    wait_audio(doc, pat, now_ms(), 3000);
    assert_true(forwarded(&w->relay2) > fwd_b + 2 * AUDIO_PACKETS);

    /* The same visit, the same two people: nobody was dropped or readmitted. */
    health = http_get(w->sig.port, "/healthz");
    assert_non_null(strstr(health, "\"sessions\":1"));
    free(health);
    expect_audited_move(w, doc, pat, "relay_lost", "r1", "r2");
    expect_moves_metric(w, "relay_lost", 1);
}

/* --- a: kill -9 ------------------------------------------------------------- */

static void test_kill9_moves_call_to_other_relay(void **state)
{
    struct fixture *f = *state;

    call_on_a(f, "s-failover-kill");
    lose_a_and_follow(f, kill9, "kill -9");
}

/* --- b: SIGTERM twice (drain, then stop now) ------------------------------- */

static void stop_twice(struct relay_proc *r)
{
    /* relay_stop: SIGTERM, and a second one 100 ms later while calls go on. */
    assert_int_equal(relay_stop(r), 0);
}

static void test_sigterm_twice_moves_call_to_other_relay(void **state)
{
    struct fixture *f = *state;

    call_on_a(f, "s-failover-term");
    lose_a_and_follow(f, stop_twice, "SIGTERM twice");
}

/* --- b2: one SIGTERM, a drain near its end: the call leaves A while A runs */

static void test_draining_relay_call_moves_before_its_deadline(void **state)
{
    struct fixture *f = *state;
    struct world *w = &f->w;
    struct callkit_move mv;
    uint64_t t_term, to_audio;
    char *log;

    call_on_a(f, "s-failover-drain");
    t_term = now_ms();
    assert_int_equal(kill(w->relay.pid, SIGTERM), 0);
    callkit_follow_move(&f->doc, &f->pat, MOVE_WITHIN_MS, &mv);
    assert_string_equal(mv.reason, "relay_draining");
    to_audio = wait_audio(&f->doc, &f->pat, mv.renegotiate_at, AUDIO_BACK_MS);
    print_message("drain (SIGTERM once, drain-timeout %s s): renegotiate %llu ms after it; ICE "
                  "ready on B %llu ms and audio both ways %llu ms after the renegotiate\n",
                  DRAIN_S, (unsigned long long)(mv.renegotiate_at - t_term),
                  (unsigned long long)(mv.ready_at - mv.renegotiate_at),
                  (unsigned long long)to_audio);
    /* The move revoked the old session at A, its last link: A's drain is
     * over long before its deadline and it exits by itself, cleanly. */
    assert_int_equal(relay_wait(&w->relay, 5000), 0);
    log = read_text(w->relay.log);
    assert_non_null(log);
    assert_non_null(strstr(log, "drained: no call left"));
    free(log);
    print_message("A drained and exited %llu ms after the SIGTERM\n",
                  (unsigned long long)(now_ms() - t_term));
    assert_int_equal(links(&w->relay2), 1);
    expect_audited_move(w, &f->doc, &f->pat, "relay_draining", "r1", "r2");
    expect_moves_metric(w, "relay_draining", 1);
    wait_audio(&f->doc, &f->pat, now_ms(), 3000);
}

/* --- e: the first offerer is away when A dies ------------------------------ */

/* The renegotiate goes to the other side (the patient, the DTLS client),
 * who offers once the clinician is back: the clinician's answer keeps its
 * DTLS server role, though the new offer comes from the other side. */
static void test_renegotiate_goes_to_other_side_when_offerer_away(void **state)
{
    struct fixture *f = *state;
    struct world *w = &f->w;
    uint64_t t_kill, t_reneg, to_audio;
    json_t *m;

    call_on_a(f, "s-failover-away");
    wsconn_free(f->doc.ws); /* gone, within its resume grace */
    f->doc.ws = NULL;
    json_decref(callkit_expect(f->pat.ws, "peer_status"));
    t_kill = now_ms();
    assert_int_equal(relay_kill9(&w->relay), 0);
    m = callkit_expect_within(f->pat.ws, "renegotiate", MOVE_WITHIN_MS);
    if (m == NULL)
        fail_msg("the patient got no renegotiate while the clinician was away");
    t_reneg = now_ms();
    assert_string_equal(world_str(m, "participant"), f->doc.id);
    assert_string_equal(world_str(m, "reason"), "relay_lost");
    json_decref(m);
    callkit_resume(&f->doc, "admitted", 5000);
    callkit_restart_call(&f->pat, &f->doc);
    to_audio = wait_audio(&f->doc, &f->pat, t_reneg, AUDIO_BACK_MS + 2000);
    print_message("offerer away: renegotiate to the patient %llu ms after kill -9; audio both "
                  "ways %llu ms after it (the clinician's resume included)\n",
                  (unsigned long long)(t_reneg - t_kill), (unsigned long long)to_audio);
    assert_int_equal(links(&w->relay2), 1);
    expect_audited_move(w, &f->doc, &f->pat, "relay_lost", "r1", "r2");
}

/* --- c: A back ---------------------------------------------------------------- */

/* Which relay a new visit's pair is on: the relay's candidate in the offer
 * signaling forwards (its media port), no media needed. 0: A, 1: B. The
 * visit is ended again, so that it loads neither relay. */
static int place_visit(struct fixture *f, const char *sid)
{
    struct world *w = &f->w;
    struct refclient_config cfg = {.local_address = "127.0.0.1", .controlling = true,
                                   .regular_nomination = true, .dtls_client = true,
                                   .tone_hz = 440.0};
    char *buf = malloc(QR_SDP_MAX), err[192];
    struct sdp_summary *sum = malloc(sizeof(*sum));
    const char *sdp;
    json_t *m;
    int which = -1;

    assert_non_null(buf);
    assert_non_null(sum);
    meet(w, sid, &f->doc2, &f->pat2);
    f->doc2.rc = refclient_new(&cfg, err, sizeof(err));
    assert_non_null(f->doc2.rc);
    assert_true(refclient_create_offer(f->doc2.rc, buf, QR_SDP_MAX) > 0);
    wsconn_send_json(f->doc2.ws, json_pack("{s:s,s:s,s:s}", "type", "offer", "to", f->pat2.id,
                                           "sdp", buf));
    m = callkit_expect(f->pat2.ws, "offer");
    sdp = world_str(m, "sdp");
    assert_int_equal(sdp_summarize(sdp, strlen(sdp), sum), SDP_OK);
    assert_true(sum->n_cands >= 1);
    if (sum->cands[0].port == netaddr_port(&w->relay.listen[0]))
        which = 0;
    else if (sum->cands[0].port == netaddr_port(&w->relay2.listen[0]))
        which = 1;
    json_decref(m);
    free(sum);
    free(buf);
    assert_true(which >= 0);
    wsconn_send_json(f->doc2.ws, json_pack("{s:s}", "type", "end"));
    json_decref(callkit_expect(f->pat2.ws, "ended"));
    callkit_free(&f->doc2);
    callkit_free(&f->pat2);
    return which;
}

static void test_relay_back_holds_then_takes_new_pairs(void **state)
{
    struct fixture *f = *state;
    struct world *w = &f->w;
    uint64_t t_back, t_seen, t_on_a = 0;
    char sid[32];
    int tries = 0;

    call_on_a(f, "s-failover-back");
    lose_a_and_follow(f, kill9, "kill -9 (before A comes back)");

    t_back = now_ms();
    assert_int_equal(relay_restart(&w->relay, NULL), 0);
    wait_relays_healthy(w, 2, 5000);
    t_seen = now_ms();
    print_message("A back: signaling sees it healthy %llu ms after its restart\n",
                  (unsigned long long)(t_seen - t_back));

    /* While A holds: B, though A is idle and B carries a call. */
    assert_int_equal(place_visit(f, "s-during-hold"), 1);
    assert_true(now_ms() - t_back < QR_RELAY_HOLD_MS);

    /* After the hold: A, the less loaded. */
    while (now_ms() - t_back < HELD_DEADLINE_MS) {
        snprintf(sid, sizeof(sid), "s-after-hold-%d", ++tries);
        if (place_visit(f, sid) == 0) {
            t_on_a = now_ms();
            break;
        }
        usleep(500000);
    }
    if (t_on_a == 0)
        fail_msg("no new pair on A within %d ms of its restart", HELD_DEADLINE_MS);
    print_message("A took a new pair %llu ms after its restart (new visit %d of the poll)\n",
                  (unsigned long long)(t_on_a - t_back), tries);
    /* The hold starts when signaling reconnects, which is after t_back. */
    assert_true(t_on_a - t_back >= QR_RELAY_HOLD_MS);
    /* The moved call stayed on B throughout. */
    assert_int_equal(links(&w->relay2), 1);
    wait_audio(&f->doc, &f->pat, now_ms(), 3000);
}

/* --- d: no relay at admission ---------------------------------------------- */

/* Nothing but `peer`s and lobby updates came: no error. */
static void expect_no_error(struct wsconn *c, int for_ms)
{
    for (uint64_t until = now_ms() + (uint64_t)for_ms; now_ms() < until;) {
        json_t *m = wsconn_recv(c, (int)(until - now_ms()));

        if (m == NULL)
            return;
        if (strcmp(world_str(m, "type"), "error") == 0 ||
            strcmp(world_str(m, "type"), "renegotiate") == 0)
            fail_msg("unexpected %s (%s) while no relay is there", world_str(m, "type"),
                     world_str(m, "code"));
        json_decref(m);
    }
}

static void test_admitted_without_relay_meet_and_call_later(void **state)
{
    struct fixture *f = *state;
    struct world *w = &f->w;
    struct callkit_move mv;
    uint64_t t_back, to_audio;

    assert_int_equal(relay_stop(&w->relay), 0);
    wait_relays_healthy(w, 0, 10000);
    meet(w, "s-failover-none", &f->doc, &f->pat);
    assert_true(f->doc.waiting_for_relay);
    assert_true(f->pat.waiting_for_relay);
    /* The relay stays away RELAY_DOWN_MS (the outage being simulated). */
    expect_no_error(f->doc.ws, RELAY_DOWN_MS / 2);
    expect_no_error(f->pat.ws, RELAY_DOWN_MS / 2);

    t_back = now_ms();
    assert_int_equal(relay_restart(&w->relay, NULL), 0);
    callkit_follow_move(&f->doc, &f->pat, MOVE_WITHIN_MS, &mv);
    assert_string_equal(mv.reason, "relay_available");
    assert_int_equal(refclient_start_media(f->doc.rc), 0);
    assert_int_equal(refclient_start_media(f->pat.rc), 0);
    to_audio = wait_audio(&f->doc, &f->pat, mv.renegotiate_at, AUDIO_BACK_MS);
    print_message("no relay at admission: renegotiate %llu ms after the relay restarted, "
                  "ICE ready %llu ms and audio both ways %llu ms after it\n",
                  (unsigned long long)(mv.renegotiate_at - t_back),
                  (unsigned long long)(mv.ready_at - mv.renegotiate_at),
                  (unsigned long long)to_audio);
    assert_int_equal(links(&w->relay), 1);
    expect_audited_move(w, &f->doc, &f->pat, "relay_available", "", "r1");
    expect_moves_metric(w, "relay_available", 1);
}

/* --- f: the only relay dies under a call -------------------------------------- */

/* Nowhere to move: both are told the call waits for a relay (relay_wait,
 * naming the other), nobody is dropped, and when the relay is back the
 * first offerer is asked to restart ICE on it. */
static void test_call_waits_when_its_only_relay_dies(void **state)
{
    struct fixture *f = *state;
    struct world *w = &f->w;
    struct callkit_move mv;
    uint64_t t_stop, t_back, to_audio;
    json_t *m;
    char *health;

    wait_relays_healthy(w, 1, 5000);
    meet(w, "s-failover-alone", &f->doc, &f->pat);
    callkit_media(&f->doc, &f->pat);
    t_stop = now_ms();
    assert_int_equal(relay_kill9(&w->relay), 0);
    m = callkit_expect_within(f->doc.ws, "relay_wait", MOVE_WITHIN_MS);
    assert_string_equal(world_str(m, "participant"), f->pat.id);
    json_decref(m);
    m = callkit_expect_within(f->pat.ws, "relay_wait", 2000);
    assert_string_equal(world_str(m, "participant"), f->doc.id);
    json_decref(m);
    print_message("only relay killed: relay_wait %llu ms later\n",
                  (unsigned long long)(now_ms() - t_stop));
    expect_audited_move(w, &f->doc, &f->pat, "relay_lost", "r1", "");
    health = http_get(w->sig.port, "/healthz");
    assert_non_null(strstr(health, "\"sessions\":1"));
    free(health);

    t_back = now_ms();
    assert_int_equal(relay_restart(&w->relay, NULL), 0);
    callkit_follow_move(&f->doc, &f->pat, MOVE_WITHIN_MS, &mv);
    assert_string_equal(mv.reason, "relay_available");
    to_audio = wait_audio(&f->doc, &f->pat, mv.renegotiate_at, AUDIO_BACK_MS);
    print_message("only relay back: renegotiate %llu ms after its restart, audio both ways "
                  "%llu ms after that\n",
                  (unsigned long long)(mv.renegotiate_at - t_back), (unsigned long long)to_audio);
    assert_int_equal(links(&w->relay), 1);
    expect_moves_metric(w, "relay_lost", 1);
    expect_moves_metric(w, "relay_available", 1);
}

/* --- g: signaling restarts while a pair waits ------------------------------------ */

/* The record of a visit whose pair waits for a relay (relay -1) is read
 * back after kill -9 like any other: both resume, still admitted, and the
 * pair is placed on the relay that is back by then. */
static void test_waiting_pair_outlives_a_signaling_restart(void **state)
{
    struct fixture *f = *state;
    struct world *w = &f->w;
    int status;

    assert_int_equal(relay_stop(&w->relay), 0);
    wait_relays_healthy(w, 0, 10000);
    meet(w, "s-failover-restart", &f->doc, &f->pat);
    assert_true(f->doc.waiting_for_relay);
    assert_int_equal(kill(w->sig.pid, SIGKILL), 0);
    assert_int_equal(waitpid(w->sig.pid, &status, 0), w->sig.pid);
    w->sig.pid = 0;
    assert_int_equal(relay_restart(&w->relay, NULL), 0);
    assert_int_equal(signal_restart(&w->sig), 0);
    callkit_resume(&f->doc, "admitted", 5000);
    callkit_resume(&f->pat, "admitted", 5000);
    /* The restored pair is placed on the next tick (an offer before that
     * is refused as transient, and a page offers again). */
    expect_audited_move(w, &f->doc, &f->pat, "relay_available", "", "r1");
    callkit_media(&f->doc, &f->pat);
    assert_int_equal(links(&w->relay), 1);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_moves_call_to_other_relay, setup_two,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_twice_moves_call_to_other_relay, setup_two,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_draining_relay_call_moves_before_its_deadline,
                                        setup_two_short_drain, teardown),
        cmocka_unit_test_setup_teardown(test_renegotiate_goes_to_other_side_when_offerer_away,
                                        setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_relay_back_holds_then_takes_new_pairs, setup_two,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_admitted_without_relay_meet_and_call_later,
                                        setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_call_waits_when_its_only_relay_dies, setup_one,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_waiting_pair_outlives_a_signaling_restart,
                                        setup_one, teardown),
    };

    return world_run_tests("relay_failover", tests, sizeof(tests) / sizeof(tests[0]), NULL,
                           NULL);
}
