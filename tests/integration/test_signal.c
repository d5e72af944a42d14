/* quietroom-signal in front of a real relay, driven by WebSocket clients as
 * browsers would: EHR tokens, the waiting room, admission, SDP rewriting
 * whose relay credentials work against the running relay and whose
 * candidates are the relay's (its TCP ones after the UDP ones), removal and
 * ending that stop forwarding within 100 ms, resume, protocol errors, and
 * an audit log that names who did what but holds no secrets. */
#include <pthread.h>
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
#include <openssl/rand.h>

#include "harness.h"
#include "world.h"
#include "quietroom/base/clock.h"
#include "quietroom/auth/jwt.h"
#include "quietroom/wire/sdp.h"

#define WAIT_MS 3000
#define SHORT_MS 400
#define PATIENT_NAME "Jane Q. Patient"

/* Resume secrets and relay credentials handed out, for the audit check;
 * media carries a marker that must never be logged. */
#define PAYLOAD_MARK "PAYLOAD-SECRET-7f3a"
#define SEEN_MAX 64

/* Each test's own world, and the secrets it has seen. */
struct sigworld {
    struct world w; /* first: the tests take a struct world * */
    char seen[SEEN_MAX][260];
    int n_seen;
};

static void remember_secret(struct world *w, const char *s)
{
    struct sigworld *sw = (struct sigworld *)w;

    if (sw->n_seen < SEEN_MAX)
        snprintf(sw->seen[sw->n_seen++], sizeof(sw->seen[0]), "%s", s);
}

static int sigworld_start(void **state, const char *const *relay_extra)
{
    static const char *const extra[] = {"resume-grace = 2", "rate-limit = 20", NULL};
    struct world_opts o = {.tls = false, .signal_extra = extra, .relay_extra = relay_extra,
                           .wait_ms = WAIT_MS};
    struct sigworld *sw = calloc(1, sizeof(*sw));

    *state = sw;
    return sw != NULL ? world_start(&sw->w, &o) : -1;
}

static int setup(void **state)
{
    return sigworld_start(state, NULL);
}

/* The same, with a relay that also listens on TCP (ICE-TCP). */
static int setup_tcp(void **state)
{
    static const char *const relay_extra[] = {"--listen-tcp", "127.0.0.1:0", NULL};

    return sigworld_start(state, relay_extra);
}

static int teardown(void **state)
{
    struct sigworld *sw = *state;
    int rc = world_stop(&sw->w);

    free(sw);
    return rc;
}

/* --- helpers --------------------------------------------------------------------- */

static json_t *expect(struct wsconn *c, const char *type)
{
    return world_expect(c, type, WAIT_MS);
}

/* A client joined with a fresh token (patients named); its welcome in
 * *welcome if asked. */
static struct wsconn *join(struct world *w, const char *sid, const char *role, const char *sub,
                           json_t **welcome)
{
    static const char *const named[] = {"--name", PATIENT_NAME, NULL};

    return world_join(w, sid, role, sub, strcmp(role, "patient") == 0 ? named : NULL, welcome);
}

/* A token with arbitrary claims, signed with the test EHR key. */
static char *sign(struct world *w, json_t *claims)
{
    char *out = NULL, err[160];

    if (jwt_sign_pem(w->sig.ehr_key, "ehr-1", claims, &out, err, sizeof(err)) != 0)
        fail_msg("sign: %s", err);
    json_decref(claims);
    return out;
}

static json_t *claims(const char *sid, const char *role, int64_t iat, int64_t exp)
{
    uint8_t rnd[12];
    char jti[32];

    RAND_bytes(rnd, sizeof(rnd));
    for (int i = 0; i < 12; i++)
        snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "iss", TEST_ISSUER, "aud",
                     TEST_AUDIENCE, "sub", "user-x", "role", role, "sid", sid, "jti", jti, "iat",
                     (json_int_t)iat, "exp", (json_int_t)exp);
}

static char *fixture(const char *name, size_t *len)
{
    char path[512];
    char *text;

    snprintf(path, sizeof(path), "%s/tests/fixtures/sdp/%s", QR_SOURCE_DIR, name);
    text = read_text(path);
    assert_non_null(text);
    *len = strlen(text);
    return text;
}

/* A clinician and an admitted patient, both told about each other. */
struct call {
    struct world *w;
    struct wsconn *doc, *pat;
    char doc_id[8], pat_id[8];
    char pat_resume[128];
};

static void call_open(struct world *w, struct call *cl, const char *sid)
{
    json_t *m, *wel;

    cl->w = w;
    cl->doc = join(w, sid, "clinician", "dr-1", &wel);
    snprintf(cl->doc_id, sizeof(cl->doc_id), "%s", world_str(wel, "participant"));
    assert_string_equal(world_str(wel, "state"), "admitted");
    json_decref(wel);
    cl->pat = join(w, sid, "patient", "pt-1", &wel);
    snprintf(cl->pat_id, sizeof(cl->pat_id), "%s", world_str(wel, "participant"));
    snprintf(cl->pat_resume, sizeof(cl->pat_resume), "%s", world_str(wel, "resume"));
    remember_secret(w, cl->pat_resume);
    assert_string_equal(world_str(wel, "state"), "waiting");
    json_decref(wel);

    /* The clinician sees the patient waiting, with the token's name. */
    for (;;) {
        json_t *waiting;

        m = expect(cl->doc, "lobby");
        waiting = json_object_get(m, "waiting");
        if (json_array_size(waiting) == 1) {
            assert_string_equal(world_str(json_array_get(waiting, 0), "participant"), cl->pat_id);
            assert_string_equal(world_str(json_array_get(waiting, 0), "role"), "patient");
            assert_string_equal(world_str(json_array_get(waiting, 0), "name"), PATIENT_NAME);
            json_decref(m);
            break;
        }
        json_decref(m);
    }
    wsconn_send_json(cl->doc, json_pack("{s:s,s:s}", "type", "admit", "participant",
                                          cl->pat_id));
    json_decref(expect(cl->pat, "admitted"));
    m = expect(cl->pat, "peer");
    assert_string_equal(world_str(m, "participant"), cl->doc_id);
    assert_false(json_is_true(json_object_get(m, "initiator")));
    json_decref(m);
    m = expect(cl->doc, "peer");
    assert_string_equal(world_str(m, "participant"), cl->pat_id);
    assert_true(json_is_true(json_object_get(m, "initiator")));
    json_decref(m);
}

static void call_close(struct call *cl)
{
    wsconn_free(cl->doc);
    wsconn_free(cl->pat);
}

/* Whether a candidate names one of addrs. */
static bool relay_has(const union netaddr *addrs, int n, const char *addr, unsigned port)
{
    char text[96];
    union netaddr a;

    snprintf(text, sizeof(text), strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr, port);
    if (netaddr_parse(text, &a) != 0)
        return false;
    for (int i = 0; i < n; i++) {
        if (netaddr_equal(&a, &addrs[i]))
            return true;
    }
    return false;
}

/* Every section with candidates has exactly the relay's: its UDP ones,
 * then its TCP ones (passive, each below every UDP one). */
static void check_relay_candidates(const struct relay_proc *r, const char *sdp)
{
    const char *p = sdp;
    int n_udp = -1, n_tcp = -1;
    unsigned long min_udp = ~0ul;

    while (*p != '\0') {
        const char *eol = strstr(p, "\r\n");
        char line[512], transport[8], addr[64];
        unsigned long prio;
        unsigned port;

        assert_non_null(eol);
        snprintf(line, sizeof(line), "%.*s", (int)(eol - p), p);
        p = eol + 2;
        if (strncmp(line, "m=", 2) == 0 || strcmp(line, "a=end-of-candidates") == 0) {
            assert_true(n_udp <= 0 || (n_udp == r->n_listen && n_tcp == r->n_listen_tcp));
            n_udp = n_tcp = 0;
            min_udp = ~0ul;
        }
        if (strncmp(line, "a=candidate:", 12) != 0)
            continue;
        assert_int_equal(sscanf(line, "a=candidate:%*u 1 %7s %lu %63s %u typ host", transport,
                                &prio, addr, &port),
                         4);
        if (strcmp(transport, "udp") == 0) {
            assert_int_equal(n_tcp, 0);
            assert_true(relay_has(r->listen, r->n_listen, addr, port));
            min_udp = prio < min_udp ? prio : min_udp;
            n_udp++;
            continue;
        }
        assert_string_equal(transport, "tcp");
        assert_non_null(strstr(line, " typ host tcptype passive"));
        assert_true(relay_has(r->listen_tcp, r->n_listen_tcp, addr, port));
        assert_true(prio < min_udp);
        n_tcp++;
    }
}

/* Offer from the clinician with a real Chromium SDP, answer from the
 * patient with a real Firefox SDP; returns what each side received. */
static void negotiate(struct call *cl, struct sdp_summary *at_pat, struct sdp_summary *at_doc)
{
    size_t olen, alen;
    char *offer = fixture("chromium-offer-gathered.sdp", &olen);
    char *answer = fixture("firefox-answer.sdp", &alen);
    json_t *m;
    const char *sdp;

    wsconn_send_json(cl->doc, json_pack("{s:s,s:s,s:s}", "type", "offer", "to", cl->pat_id,
                                          "sdp", offer));
    m = expect(cl->pat, "offer");
    assert_string_equal(world_str(m, "from"), cl->doc_id);
    sdp = world_str(m, "sdp");
    check_relay_candidates(&cl->w->relay, sdp);
    assert_int_equal(sdp_summarize(sdp, strlen(sdp), at_pat), SDP_OK);
    remember_secret(cl->w, at_pat->ice_ufrag);
    remember_secret(cl->w, at_pat->ice_pwd);
    assert_true(at_pat->ice_lite);
    assert_null(strstr(sdp, "198.18.0.1"));        /* Chromium's LAN candidate */
    assert_null(strstr(sdp, "typ host generation")); /* any client candidate */
    assert_null(strstr(sdp, "ssrc-audio-level"));
    assert_non_null(strstr(sdp, "a=fingerprint:sha-256 7C:37:BF:5B"));
    json_decref(m);

    wsconn_send_json(cl->pat, json_pack("{s:s,s:s,s:s}", "type", "answer", "to", cl->doc_id,
                                          "sdp", answer));
    m = expect(cl->doc, "answer");
    sdp = world_str(m, "sdp");
    check_relay_candidates(&cl->w->relay, sdp);
    assert_int_equal(sdp_summarize(sdp, strlen(sdp), at_doc), SDP_OK);
    remember_secret(cl->w, at_doc->ice_ufrag);
    remember_secret(cl->w, at_doc->ice_pwd);
    assert_non_null(strstr(sdp, "a=setup:active"));
    assert_string_not_equal(at_doc->ice_ufrag, at_pat->ice_ufrag);
    json_decref(m);
    free(offer);
    free(answer);
}

/* Binds a raw UDP peer to the relay with the credentials an SDP carried. */
static void bind_media(struct udp_peer *p, const struct sdp_summary *s)
{
    union netaddr relay;
    char text[96];
    struct check c = {.ufrag = s->ice_ufrag, .pwd = s->ice_pwd, .nominate = true};
    uint8_t raw[2048];
    struct stun_msg m;

    assert_true(s->n_cands >= 1);
    snprintf(text, sizeof(text), "%s:%u", s->cands[0].addr, s->cands[0].port);
    assert_int_equal(netaddr_parse(text, &relay), 0);
    assert_int_equal(peer_open(p, "127.0.0.1:0"), 0);
    assert_int_equal(peer_check(p, &relay, &c, &m, raw, WAIT_MS), 1);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
}

struct streamer {
    struct udp_peer *from;
    union netaddr relay;
    volatile int stop;
};

static void *stream_main(void *arg)
{
    struct streamer *s = arg;
    uint8_t pkt[64] = {0x80, 111};

    while (!s->stop) {
        peer_send(s->from, &s->relay, pkt, sizeof(pkt));
        usleep(1000);
    }
    return NULL;
}

/* Media flows from doc_peer to pat_peer; `act` stops it; the last packet
 * must arrive within 100 ms of the request. */
static void expect_media_stops(struct udp_peer *doc_peer, struct udp_peer *pat_peer,
                               const struct sdp_summary *s, void (*act)(void *), void *arg)
{
    char text[96];
    struct streamer st = {.from = doc_peer};
    uint8_t buf[2048];
    uint64_t asked, last = 0, end;
    int before = 0;
    pthread_t th;

    snprintf(text, sizeof(text), "%s:%u", s->cands[0].addr, s->cands[0].port);
    netaddr_parse(text, &st.relay);
    pthread_create(&th, NULL, stream_main, &st);
    while (before < 20 && peer_recv(pat_peer, buf, sizeof(buf), WAIT_MS, NULL) > 0)
        before++;
    assert_int_equal(before, 20);
    asked = now_ms();
    act(arg);
    for (end = now_ms() + 600; now_ms() < end;) {
        if (peer_recv(pat_peer, buf, sizeof(buf), 50, NULL) > 0)
            last = now_ms();
    }
    st.stop = 1;
    pthread_join(th, NULL);
    print_message("forwarding stopped %lld ms after the request\n",
                  last ? (long long)(last - asked) : 0LL);
    assert_true(last == 0 || last - asked < 100);
}

/* --- tests ------------------------------------------------------------------------ */

static void test_http_health_and_headers(void **state)
{
    struct world *w = *state;
    char *page = http_get(w->sig.port, "/"), *health = http_get(w->sig.port, "/healthz");
    char *missing = http_get(w->sig.port, "/no-such-file");

    assert_non_null(page);
    assert_non_null(strstr(page, "HTTP/1.1 200"));
    assert_non_null(strstr(page, "content-security-policy: default-src 'none'"));
    assert_non_null(strstr(page, "referrer-policy: no-referrer"));
    assert_non_null(strstr(page, "frame-ancestors 'none'"));
    assert_non_null(health);
    assert_non_null(strstr(health, "HTTP/1.1 200"));
    assert_non_null(strstr(health, "\"status\":\"ok\""));
    assert_non_null(missing);
    assert_non_null(strstr(missing, "HTTP/1.1 404"));
    free(page);
    free(health);
    free(missing);
}

static void test_websocket_refused_without_origin_path_or_protocol(void **state)
{
    struct world *w = *state;
    char err[160];
    struct wsconn *c;

    assert_null(world_open(w, "https://evil.example", "quietroom.v1", "/ws", err, sizeof(err)));
    assert_null(world_open(w, NULL, "quietroom.v1", "/ws", err, sizeof(err)));
    assert_null(world_open(w, TEST_ORIGIN, "quietroom.v1", "/other", err, sizeof(err)));
    assert_null(world_open(w, TEST_ORIGIN, NULL, "/ws", err, sizeof(err)));
    c = world_open(w, TEST_ORIGIN, "quietroom.v1", "/ws", err, sizeof(err));
    assert_non_null(c);
    wsconn_free(c);
}

static void expect_refused(struct world *w, const char *token, const char *code)
{
    json_t *m;
    struct wsconn *c = world_join_token(w, token, &m);

    if (strcmp(world_str(m, "type"), "error") != 0 || strcmp(world_str(m, "code"), code) != 0)
        fail_msg("want error %s, got %s %s", code, world_str(m, "type"), world_str(m, "code"));
    assert_int_equal(wsconn_wait_closed(c, WAIT_MS), 4401);
    json_decref(m);
    wsconn_free(c);
}

static void test_authentication_failures(void **state)
{
    struct world *w = *state;
    int64_t now = clock_wall_s();
    char *t;

    expect_refused(w, "not.a.token", "token_malformed");
    t = sign(w, claims("s-auth", "patient", now - 600, now - 120));
    expect_refused(w, t, "token_expired");
    free(t);
    t = sign(w, claims("s-auth", "billing", now, now + 600));
    expect_refused(w, t, "token_role_not_allowed");
    free(t);
    {
        json_t *cl = claims("s-auth", "patient", now, now + 600);

        json_object_set_new(cl, "aud", json_string("someone-else"));
        t = sign(w, cl);
        expect_refused(w, t, "token_wrong_audience");
        free(t);
    }
    {
        json_t *cl = claims("s-auth", "patient", now, now + 600);

        json_object_del(cl, "sid");
        t = sign(w, cl);
        expect_refused(w, t, "token_missing_claim");
        free(t);
    }
    /* A good token opens a seat; the same token again takes that seat back
     * (test_signal_seats.c has the rules); a visit that has ended opens
     * nothing again. */
    t = sign(w, claims("s-auth", "clinician", now, now + 600));
    {
        json_t *m;
        struct wsconn *c = world_join_token(w, t, &m), *again;

        assert_string_equal(world_str(m, "type"), "welcome");
        json_decref(m);
        again = world_join_token(w, t, &m);
        assert_string_equal(world_str(m, "type"), "welcome");
        assert_true(json_is_true(json_object_get(m, "rejoined")));
        json_decref(m);
        json_decref(expect(c, "replaced"));
        wsconn_send_json(again, json_pack("{s:s}", "type", "end"));
        assert_int_equal(wsconn_wait_closed(again, WAIT_MS), 4410);
        wsconn_free(c);
        wsconn_free(again);
    }
    expect_refused(w, t, "token_replayed");
    free(t);
    /* Anything but auth first is refused. */
    {
        struct wsconn *c = world_connect(w);
        json_t *m;

        wsconn_send_json(c, json_pack("{s:s}", "type", "ping"));
        m = wsconn_recv(c, WAIT_MS);
        assert_string_equal(world_str(m, "code"), "auth_required");
        assert_int_equal(wsconn_wait_closed(c, WAIT_MS), 4401);
        json_decref(m);
        wsconn_free(c);
    }
}

static void test_admit_exchange_and_relay_credentials_work(void **state)
{
    struct world *w = *state;
    struct sdp_summary at_pat, at_doc;
    struct udp_peer dp, pp;
    struct call cl;
    uint8_t pkt[48] = {22, 0xfe, 0xfd}, got[2048];
    union netaddr relay;
    char text[96];

    memcpy(pkt + 13, PAYLOAD_MARK, strlen(PAYLOAD_MARK));
    call_open(w, &cl, "s-media");
    negotiate(&cl, &at_pat, &at_doc);
    bind_media(&dp, &at_doc);
    bind_media(&pp, &at_pat);
    snprintf(text, sizeof(text), "%s:%u", at_doc.cands[0].addr, at_doc.cands[0].port);
    netaddr_parse(text, &relay);
    assert_int_equal(peer_send(&dp, &relay, pkt, sizeof(pkt)), 0);
    assert_int_equal(peer_recv(&pp, got, sizeof(got), WAIT_MS, NULL), (int)sizeof(pkt));
    assert_int_equal(peer_send(&pp, &relay, pkt, sizeof(pkt)), 0);
    assert_int_equal(peer_recv(&dp, got, sizeof(got), WAIT_MS, NULL), (int)sizeof(pkt));
    peer_close(&dp);
    peer_close(&pp);
    call_close(&cl);
}

/* A relay listening on TCP too: offer and answer carry its passive TCP
 * candidate after the UDP one (negotiate checks), and media still binds
 * and flows over UDP, which browsers prefer. */
static void test_relay_on_tcp_too_is_offered_after_udp(void **state)
{
    struct world *w = *state;

    assert_int_equal(w->relay.n_listen_tcp, 1);
    test_admit_exchange_and_relay_credentials_work(state);
}

struct act_msg {
    struct wsconn *c;
    json_t *msg;
};

static void send_act(void *arg)
{
    struct act_msg *a = arg;

    wsconn_send_json(a->c, a->msg);
}

static void test_remove_stops_forwarding_within_100ms(void **state)
{
    struct world *w = *state;
    struct sdp_summary at_pat, at_doc;
    struct udp_peer dp, pp;
    struct call cl;
    struct act_msg a;
    json_t *m;

    call_open(w, &cl, "s-remove");
    negotiate(&cl, &at_pat, &at_doc);
    bind_media(&dp, &at_doc);
    bind_media(&pp, &at_pat);
    a.c = cl.doc;
    a.msg = json_pack("{s:s,s:s}", "type", "remove", "participant", cl.pat_id);
    expect_media_stops(&dp, &pp, &at_doc, send_act, &a);
    m = expect(cl.pat, "removed");
    assert_string_equal(world_str(m, "reason"), "removed_by_clinician");
    json_decref(m);
    assert_int_equal(wsconn_wait_closed(cl.pat, WAIT_MS), 4403);
    m = expect(cl.doc, "peer_left");
    assert_string_equal(world_str(m, "participant"), cl.pat_id);
    json_decref(m);
    peer_close(&dp);
    peer_close(&pp);
    call_close(&cl);
}

static void test_end_stops_forwarding_and_tells_everyone(void **state)
{
    struct world *w = *state;
    struct sdp_summary at_pat, at_doc;
    struct udp_peer dp, pp;
    struct call cl;
    struct act_msg a;
    json_t *m;

    call_open(w, &cl, "s-end");
    negotiate(&cl, &at_pat, &at_doc);
    bind_media(&dp, &at_doc);
    bind_media(&pp, &at_pat);
    a.c = cl.doc;
    a.msg = json_pack("{s:s}", "type", "end");
    expect_media_stops(&dp, &pp, &at_doc, send_act, &a);
    m = expect(cl.pat, "ended");
    assert_string_equal(world_str(m, "reason"), "ended_by_clinician");
    json_decref(m);
    m = expect(cl.doc, "ended");
    json_decref(m);
    assert_int_equal(wsconn_wait_closed(cl.pat, WAIT_MS), 4410);
    assert_int_equal(wsconn_wait_closed(cl.doc, WAIT_MS), 4410);
    peer_close(&dp);
    peer_close(&pp);
    call_close(&cl);
}

/* A waiting patient's connection check: the page's two peer connections
 * get the relay's candidates and credentials of a session of their own,
 * which the running relay forwards between them, and which ends within
 * 100 ms of the result; the clinician sees the result. */
static void test_connection_check_through_the_relay(void **state)
{
    struct world *w = *state;
    struct wsconn *doc = join(w, "s-check", "clinician", "dr-c", NULL);
    struct sdp_summary at_first, at_second;
    struct udp_peer first, second;
    size_t olen, alen;
    char *offer = fixture("chromium-offer-gathered.sdp", &olen);
    char *answer = fixture("firefox-answer.sdp", &alen);
    struct act_msg a;
    json_t *wel, *m;
    struct wsconn *pat = join(w, "s-check", "patient", "pt-c", &wel);
    const char *sdp;

    assert_string_equal(world_str(wel, "state"), "waiting");
    wsconn_send_json(pat, json_pack("{s:s,s:s}", "type", "check_offer", "sdp", offer));
    m = expect(pat, "check_offer");
    sdp = world_str(m, "sdp");
    check_relay_candidates(&w->relay, sdp);
    assert_int_equal(sdp_summarize(sdp, strlen(sdp), &at_second), SDP_OK);
    assert_true(at_second.ice_lite);
    assert_null(strstr(sdp, "198.18.0.1"));
    remember_secret(w, at_second.ice_ufrag);
    remember_secret(w, at_second.ice_pwd);
    json_decref(m);
    wsconn_send_json(pat, json_pack("{s:s,s:s}", "type", "check_answer", "sdp", answer));
    m = expect(pat, "check_answer");
    sdp = world_str(m, "sdp");
    assert_int_equal(sdp_summarize(sdp, strlen(sdp), &at_first), SDP_OK);
    assert_string_not_equal(at_first.ice_ufrag, at_second.ice_ufrag);
    remember_secret(w, at_first.ice_ufrag);
    remember_secret(w, at_first.ice_pwd);
    json_decref(m);
    bind_media(&first, &at_first);
    bind_media(&second, &at_second);
    a.c = pat;
    a.msg = json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "type", "check_result", "video", "good",
                      "transport", "udp", "loss_pct", 0, "rtt_ms", 3, "kbps", 2100);
    expect_media_stops(&first, &second, &at_first, send_act, &a);
    for (;;) {
        json_t *entry;

        m = expect(doc, "lobby");
        entry = json_array_get(json_object_get(m, "waiting"), 0);
        if (json_object_get(entry, "check") != NULL) {
            assert_string_equal(world_str(json_object_get(entry, "check"), "video"), "good");
            assert_int_equal(json_integer_value(json_object_get(json_object_get(entry, "check"),
                                                                "kbps")),
                             2100);
            json_decref(m);
            break;
        }
        json_decref(m);
    }
    peer_close(&first);
    peer_close(&second);
    json_decref(wel);
    wsconn_free(pat);
    wsconn_free(doc);
    free(offer);
    free(answer);
}

static json_t *resume(struct world *w, struct wsconn **out, const char *secret)
{
    *out = world_connect(w);
    wsconn_send_json(*out, json_pack("{s:s,s:s}", "type", "resume", "resume", secret));
    return wsconn_recv(*out, WAIT_MS);
}

static void test_resume_once_and_not_after_grace(void **state)
{
    struct world *w = *state;
    struct wsconn *again, *third;
    char secret[128];
    struct call cl;
    json_t *m;

    call_open(w, &cl, "s-resume");
    wsconn_drop(cl.pat);
    m = expect(cl.doc, "peer_status");
    assert_false(json_is_true(json_object_get(m, "connected")));
    json_decref(m);

    m = resume(w, &again, cl.pat_resume);
    assert_string_equal(world_str(m, "type"), "resumed");
    assert_string_equal(world_str(m, "participant"), cl.pat_id);
    assert_string_equal(world_str(m, "state"), "admitted"); /* no readmission */
    snprintf(secret, sizeof(secret), "%s", world_str(m, "resume"));
    remember_secret(w, secret);
    assert_string_not_equal(secret, cl.pat_resume);
    json_decref(m);
    m = expect(cl.doc, "peer_status");
    assert_true(json_is_true(json_object_get(m, "connected")));
    json_decref(m);

    /* The old secret was spent. */
    m = resume(w, &third, cl.pat_resume);
    assert_string_equal(world_str(m, "code"), "resume_invalid");
    json_decref(m);
    wsconn_free(third);

    /* Gone longer than the grace (2 s here): the new secret is dead too. */
    wsconn_drop(again);
    wsconn_free(again);
    sleep(3);
    m = expect(cl.doc, "peer_left");
    assert_string_equal(world_str(m, "reason"), "resume_grace_expired");
    json_decref(m);
    m = resume(w, &third, secret);
    assert_string_equal(world_str(m, "code"), "resume_invalid");
    json_decref(m);
    wsconn_free(third);
    call_close(&cl);
}

static void test_decline(void **state)
{
    struct world *w = *state;
    struct wsconn *doc = join(w, "s-decline", "clinician", "dr-2", NULL);
    json_t *wel, *m;
    struct wsconn *pat = join(w, "s-decline", "patient", "pt-2", &wel);

    wsconn_send_json(doc, json_pack("{s:s,s:s}", "type", "decline", "participant",
                                      world_str(wel, "participant")));
    m = expect(pat, "declined");
    json_decref(m);
    assert_int_equal(wsconn_wait_closed(pat, WAIT_MS), 4403);
    json_decref(wel);
    wsconn_free(pat);
    wsconn_free(doc);
}

/* Sends msg and returns the error it earns (lobby updates are skipped). */
static json_t *ask(struct wsconn *c, json_t *msg)
{
    wsconn_send_json(c, msg);
    return wsconn_recv_type(c, "error", WAIT_MS);
}

static void expect_code(json_t *m, const char *code)
{
    assert_non_null(m);
    if (strcmp(world_str(m, "code"), code) != 0)
        fail_msg("want %s, got %s %s", code, world_str(m, "type"), world_str(m, "code"));
    json_decref(m);
}

static void test_protocol_errors_keep_the_server_well(void **state)
{
    struct world *w = *state;
    struct wsconn *doc = join(w, "s-errors", "clinician", "dr-3", NULL);
    json_t *wel;
    struct wsconn *pat = join(w, "s-errors", "patient", "pt-3", &wel);
    size_t big = 200 * 1024;
    char *huge = malloc(big);

    assert_int_equal(wsconn_send_text(doc, "{not json", 9), 0);
    expect_code(wsconn_recv_type(doc, "error", WAIT_MS), "bad_json");
    expect_code(ask(doc, json_pack("{s:s}", "type", "fly")), "unknown_type");
    expect_code(ask(doc, json_pack("{s:s}", "type", "admit")), "missing_field");
    expect_code(ask(doc, json_pack("{s:s,s:i}", "type", "admit", "participant", 7)), "bad_field");
    expect_code(ask(doc, json_pack("{s:s,s:s}", "type", "admit", "participant", "p99")),
                "unknown_participant");
    expect_code(ask(doc, json_pack("{s:s,s:s,s:s}", "type", "offer", "to", "p99", "sdp", "v=0")),
                "unknown_peer");
    expect_code(ask(pat, json_pack("{s:s,s:s}", "type", "admit", "participant", "p1")),
                "not_allowed");
    expect_code(ask(pat, json_pack("{s:s,s:s,s:s}", "type", "offer", "to", "p1", "sdp", "v=0")),
                "not_admitted");
    expect_code(ask(doc, json_pack("{s:s,s:s}", "type", "auth", "token", "x")),
                "already_authenticated");
    /* Still serving this connection after all that. */
    wsconn_send_json(doc, json_pack("{s:s}", "type", "ping"));
    json_decref(expect(doc, "pong"));

    /* An oversized message closes the connection with 1009. */
    memset(huge, 'a', big);
    huge[0] = '"';
    huge[big - 1] = '"';
    assert_int_equal(wsconn_send_text(pat, huge, big), 0);
    expect_code(wsconn_recv_type(pat, "error", WAIT_MS), "message_too_large");
    assert_int_equal(wsconn_wait_closed(pat, WAIT_MS), 1009);
    free(huge);
    json_decref(wel);
    wsconn_free(pat);

    /* A flood is limited, then cut off. */
    for (int i = 0; i < 200; i++)
        wsconn_send_json(doc, json_pack("{s:s}", "type", "ping"));
    expect_code(wsconn_recv_type(doc, "error", WAIT_MS), "rate_limited");
    assert_int_equal(wsconn_wait_closed(doc, WAIT_MS), 4429);
    wsconn_free(doc);
}

static void test_unsafe_sdp_rejected_and_candidates_never_forwarded(void **state)
{
    struct world *w = *state;
    struct call cl;
    size_t len;
    char *offer, *cut;
    json_t *m;

    call_open(w, &cl, "s-unsafe");
    offer = fixture("chromium-offer.sdp", &len);
    /* Without its fingerprints DTLS could not be end to end. */
    while ((cut = strstr(offer, "a=fingerprint")) != NULL)
        cut[2] = 'X';
    wsconn_send_json(cl.doc, json_pack("{s:s,s:s,s:s}", "type", "offer", "to", cl.pat_id,
                                         "sdp", offer));
    m = expect(cl.doc, "error");
    assert_string_equal(world_str(m, "code"), "sdp_no_fingerprint");
    json_decref(m);
    wsconn_send_json(cl.doc, json_pack("{s:s,s:s,s:s}", "type", "candidate", "to", cl.pat_id,
                                         "candidate",
                                         "candidate:1 1 udp 1 192.0.2.9 5000 typ host"));
    m = wsconn_recv(cl.pat, SHORT_MS);
    assert_null(m);
    free(offer);
    call_close(&cl);
}

/* Reads a file and returns its secret's hex (second field of line 1). */
static char *secret_hex(const char *path)
{
    char *text = read_text(path), *space, *end;

    assert_non_null(text);
    space = strchr(text, ' ');
    end = strchr(text, '\n');
    assert_true(space != NULL && end != NULL);
    *end = '\0';
    memmove(text, space + 1, strlen(space + 1) + 1);
    return text;
}

static void audit_check(struct world *w);

/* The audit chain verifies with quietroomctl; its records hold no secret. */
static void check_log(const struct sigworld *sw, const char *log, const char *key_file,
                      const char *const *secrets, int n_secrets)
{
    char *argv[] = {QR_CTL_BIN, "audit", "verify", "--key-file", (char *)key_file, (char *)log,
                    NULL};
    char *audit = read_text(log), *out;
    int code;

    assert_non_null(audit);
    out = run_command(argv, &code);
    if (code != 0)
        fail_msg("%s does not verify (exit %d):\n%s", log, code, out);
    free(out);
    assert_null(strstr(audit, PATIENT_NAME));
    assert_null(strstr(audit, "eyJ"));            /* no JWT */
    assert_null(strstr(audit, "a=fingerprint"));  /* no SDP */
    assert_null(strstr(audit, "v=0\\r\\n"));
    assert_null(strstr(audit, "a=ice-"));
    assert_null(strstr(audit, PAYLOAD_MARK));     /* no media */
    for (int i = 0; i < sw->n_seen; i++)
        assert_null(strstr(audit, sw->seen[i])); /* resume secrets, relay credentials */
    for (int i = 0; i < n_secrets; i++)
        assert_null(strstr(audit, secrets[i]));     /* keys */
    free(audit);
}

/* Every other test's visit in this test's own world; then both daemons
 * are stopped and what they recorded is read. */
static void test_audit_records_who_and_never_secrets(void **state)
{
    static void (*const visits[])(void **) = {
        test_http_health_and_headers,
        test_websocket_refused_without_origin_path_or_protocol,
        test_authentication_failures,
        test_admit_exchange_and_relay_credentials_work,
        test_remove_stops_forwarding_within_100ms,
        test_end_stops_forwarding_and_tells_everyone,
        test_resume_once_and_not_after_grace,
        test_decline,
        test_connection_check_through_the_relay,
        test_protocol_errors_keep_the_server_well,
        test_unsafe_sdp_rejected_and_candidates_never_forwarded,
    };
    struct world *w = *state;

    for (size_t i = 0; i < sizeof(visits) / sizeof(visits[0]); i++)
        visits[i](state);
    audit_check(w);
}

static void audit_check(struct world *w)
{
    char *relay_secret = secret_hex(w->relay.secret), *relay_audit = secret_hex(w->relay.audit_key);
    char *sig_audit = secret_hex(w->sig.audit_key), *ehr = read_text(w->sig.ehr_key);
    char ehr_line[64];
    const char *secrets[4];
    char *audit;

    /* A line from the middle of the EHR private key's PEM. */
    snprintf(ehr_line, sizeof(ehr_line), "%.40s", strchr(ehr, '\n') + 1);
    secrets[0] = relay_secret;
    secrets[1] = relay_audit;
    secrets[2] = sig_audit;
    secrets[3] = ehr_line;
    assert_int_equal(signal_stop(&w->sig), 0);
    assert_int_equal(relay_stop(&w->relay), 0);
    audit = read_text(w->sig.audit);
    assert_non_null(audit);
    assert_non_null(strstr(audit, "\"type\":\"auth.success\""));
    assert_non_null(strstr(audit, "\"reason\":\"token_expired\""));
    assert_non_null(strstr(audit, "\"reason\":\"token_replayed\""));
    assert_non_null(strstr(audit, "\"type\":\"participant.waiting\""));
    assert_non_null(strstr(audit, "\"type\":\"participant.admitted\""));
    assert_non_null(strstr(audit, "\"type\":\"participant.removed\""));
    assert_non_null(strstr(audit, "\"type\":\"participant.declined\""));
    assert_non_null(strstr(audit, "\"type\":\"participant.resumed\""));
    assert_non_null(strstr(audit, "\"type\":\"session.ended\""));
    assert_non_null(strstr(audit, "\"sub\":\"pt-1\""));
    assert_non_null(strstr(audit, "\"address\":\"127.0.0.1\""));
    free(audit);
    check_log((struct sigworld *)w, w->sig.audit, w->sig.audit_key, secrets, 4);
    audit = read_text(w->relay.audit);
    assert_non_null(strstr(audit, "\"type\":\"leg.up\""));
    assert_non_null(strstr(audit, "\"type\":\"session.revoked\""));
    free(audit);
    check_log((struct sigworld *)w, w->relay.audit, w->relay.audit_key, secrets, 4);
    free(relay_secret);
    free(relay_audit);
    free(sig_audit);
    free(ehr);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    struct CMUnitTest tests[] = {
        T(test_http_health_and_headers),
        T(test_websocket_refused_without_origin_path_or_protocol),
        T(test_authentication_failures),
        T(test_admit_exchange_and_relay_credentials_work),
        cmocka_unit_test_setup_teardown(test_relay_on_tcp_too_is_offered_after_udp, setup_tcp,
                                        teardown),
        T(test_remove_stops_forwarding_within_100ms),
        T(test_end_stops_forwarding_and_tells_everyone),
        T(test_resume_once_and_not_after_grace),
        T(test_decline),
        T(test_connection_check_through_the_relay),
        T(test_protocol_errors_keep_the_server_well),
        T(test_unsafe_sdp_rejected_and_candidates_never_forwarded),
        T(test_audit_records_who_and_never_secrets),
    };

    signal(SIGPIPE, SIG_IGN);
    return world_run_tests("test_signal", tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}
