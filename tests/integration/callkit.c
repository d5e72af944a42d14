/* Reference-client calls through signaling and the relay (callkit.h). */
#include "callkit.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "quietroom/base/limits.h"

#define CALLKIT_READY_MS 10000
#define CALLKIT_SAMPLE_MS 20

struct wsconn *callkit_try_connect(int port, char *err, size_t errlen)
{
    struct wsconn_target t = {.tls = false, .host = "127.0.0.1", .port = port};
    struct wsconn_opts o = {.target = &t, .origin = TEST_ORIGIN, .protocol = "quietroom.v1"};

    snprintf(t.path, sizeof(t.path), "/ws");
    return wsconn_open(&o, CALLKIT_WAIT_MS, err, errlen);
}

struct wsconn *callkit_connect(int port)
{
    struct wsconn *c;
    char err[160];

    if ((c = callkit_try_connect(port, err, sizeof(err))) == NULL)
        fail_msg("websocket to port %d: %s", port, err);
    return c;
}

static const char *callkit__str(json_t *m, const char *key)
{
    const char *s = json_string_value(json_object_get(m, key));

    return s != NULL ? s : "";
}

json_t *callkit_expect_within(struct wsconn *c, const char *type, int timeout_ms)
{
    for (uint64_t until = now_ms() + (uint64_t)timeout_ms; now_ms() < until;) {
        json_t *m = wsconn_recv(c, (int)(until - now_ms()));

        if (m == NULL)
            break;
        if (strcmp(callkit__str(m, "type"), type) == 0)
            return m;
        json_decref(m);
    }
    return NULL;
}

json_t *callkit_expect(struct wsconn *c, const char *type)
{
    json_t *m = callkit_expect_within(c, type, CALLKIT_WAIT_MS);

    if (m == NULL)
        fail_msg("no \"%s\" message", type);
    return m;
}

void callkit_auth(struct callkit_party *p, const char *token, json_t **reply)
{
    p->ws = callkit_connect(p->port);
    wsconn_send_json(p->ws, json_pack("{s:s,s:s}", "type", "auth", "token", token));
    if ((*reply = wsconn_recv(p->ws, CALLKIT_WAIT_MS)) == NULL)
        fail_msg("no answer to auth on port %d", p->port);
}

void callkit_join(struct callkit_party *p, const char *token, const char *want_state)
{
    json_t *m;

    callkit_auth(p, token, &m);
    if (strcmp(callkit__str(m, "type"), "welcome") != 0)
        fail_msg("not welcomed: %s %s", callkit__str(m, "type"), callkit__str(m, "code"));
    assert_string_equal(callkit__str(m, "state"), want_state);
    snprintf(p->id, sizeof(p->id), "%s", callkit__str(m, "participant"));
    snprintf(p->resume, sizeof(p->resume), "%s", callkit__str(m, "resume"));
    assert_true(strlen(p->resume) > 40);
    json_decref(m);
}

/* p's "peer" message, which must name other. */
static void callkit__peer(struct callkit_party *p, const struct callkit_party *other)
{
    json_t *m = callkit_expect(p->ws, "peer");

    assert_string_equal(callkit__str(m, "participant"), other->id);
    p->initiator = json_is_true(json_object_get(m, "initiator"));
    p->waiting_for_relay = json_is_true(json_object_get(m, "waiting_for_relay"));
    json_decref(m);
}

void callkit_admit(struct callkit_party *doc, struct callkit_party *pat)
{
    for (;;) {
        json_t *m = callkit_expect(doc->ws, "lobby");
        size_t n = json_array_size(json_object_get(m, "waiting"));

        json_decref(m);
        if (n == 1)
            break;
    }
    wsconn_send_json(doc->ws, json_pack("{s:s,s:s}", "type", "admit", "participant", pat->id));
    json_decref(callkit_expect(pat->ws, "admitted"));
    callkit__peer(pat, doc);
    callkit__peer(doc, pat);
}

static struct refclient *callkit__client(bool dtls_client, double tone, bool ice_tcp)
{
    struct refclient_config cfg = {.local_address = "127.0.0.1", .controlling = true,
                                   .regular_nomination = true, .dtls_client = dtls_client,
                                   .tone_hz = tone, .ice_tcp = ice_tcp};
    char err[192];
    struct refclient *rc = refclient_new(&cfg, err, sizeof(err));

    if (rc == NULL)
        fail_msg("refclient_new: %s", err);
    return rc;
}

/* An ICE-TCP party's relay candidate: signaling wrote it into the
 * description as a passive TCP host candidate (RFC 6544) at the relay's
 * TCP address, which is where the client connects. */
static void callkit__tcp_candidate(struct callkit_party *to, const char *sdp)
{
    char host[NETADDR_STRLEN], want[NETADDR_STRLEN + 32];

    netaddr_format_host(&to->relay_tcp, host, sizeof(host));
    snprintf(want, sizeof(want), " %s %u typ host tcptype passive", host,
             (unsigned)netaddr_port(&to->relay_tcp));
    if (strstr(sdp, want) == NULL)
        fail_msg("the description for the ICE-TCP party has no \"...%s\" candidate", want);
}

/* An offer or answer from `from`, through signaling, applied at `to`. */
static void callkit__sdp(struct callkit_party *from, struct callkit_party *to, bool answer,
                         char *buf)
{
    const char *type = answer ? "answer" : "offer", *sdp;
    char err[192];
    json_t *m;

    assert_true((answer ? refclient_create_answer(from->rc, buf, QR_SDP_MAX)
                        : refclient_create_offer(from->rc, buf, QR_SDP_MAX)) > 0);
    wsconn_send_json(from->ws,
                     json_pack("{s:s,s:s,s:s}", "type", type, "to", to->id, "sdp", buf));
    m = callkit_expect(to->ws, type);
    sdp = callkit__str(m, "sdp");
    if (to->ice_tcp)
        callkit__tcp_candidate(to, sdp);
    if (refclient_set_remote_description(to->rc, answer, sdp, strlen(sdp), err, sizeof(err)) != 0)
        fail_msg("%s: %s", type, err);
    json_decref(m);
}

/* Two clients, the first offer and answer through signaling, ICE started;
 * once keyed, each sends its tone. */
static void callkit__place(struct callkit_party *doc, struct callkit_party *pat)
{
    char *buf = malloc(QR_SDP_MAX);

    assert_non_null(buf);
    doc->rc = callkit__client(true, 440.0, doc->ice_tcp);
    pat->rc = callkit__client(false, 880.0, pat->ice_tcp);
    callkit__sdp(doc, pat, false, buf);
    callkit__sdp(pat, doc, true, buf);
    free(buf);
    assert_int_equal(refclient_start(doc->rc), 0);
    assert_int_equal(refclient_start(pat->rc), 0);
}

void callkit_media(struct callkit_party *doc, struct callkit_party *pat)
{
    struct callkit_party *p[2] = {doc, pat};
    char err[192];

    callkit__place(doc, pat);
    for (int i = 0; i < 2; i++) {
        if (refclient_wait_ready(p[i]->rc, CALLKIT_READY_MS, err, sizeof(err)) != 0)
            fail_msg("client %d: %s", i, err);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(refclient_start_media(p[i]->rc), 0);
    for (uint64_t until = now_ms() + CALLKIT_WAIT_MS;; usleep(50000)) {
        if (callkit_received(doc->rc) > 0 && callkit_received(pat->rc) > 0)
            break;
        if (now_ms() > until)
            fail_msg("no audio both ways through the relay");
    }
}

static void callkit__wait_ready(struct callkit_party *a, struct callkit_party *b)
{
    struct callkit_party *p[2] = {a, b};
    char err[192];

    for (int i = 0; i < 2; i++) {
        if (refclient_wait_ready(p[i]->rc, CALLKIT_READY_MS, err, sizeof(err)) != 0)
            fail_msg("%s: %s", i == 0 ? "offerer" : "answerer", err);
    }
}

void callkit_restart_call(struct callkit_party *offerer, struct callkit_party *answerer)
{
    char *buf = malloc(QR_SDP_MAX);

    assert_non_null(buf);
    assert_int_equal(refclient_restart_ice(offerer->rc), 0);
    assert_int_equal(refclient_restart_ice(answerer->rc), 0);
    callkit__sdp(offerer, answerer, false, buf);
    callkit__sdp(answerer, offerer, true, buf);
    free(buf);
    callkit__wait_ready(offerer, answerer);
}

void callkit_follow_move(struct callkit_party *offerer, struct callkit_party *answerer,
                         int within_ms, struct callkit_move *mv)
{
    json_t *m = callkit_expect_within(offerer->ws, "renegotiate", within_ms);

    if (m == NULL)
        fail_msg("no \"renegotiate\" within %d ms", within_ms);
    mv->renegotiate_at = now_ms();
    assert_string_equal(callkit__str(m, "participant"), answerer->id);
    snprintf(mv->reason, sizeof(mv->reason), "%s", callkit__str(m, "reason"));
    json_decref(m);
    if (offerer->rc != NULL) {
        callkit_restart_call(offerer, answerer);
    } else {
        callkit__place(offerer, answerer);
        callkit__wait_ready(offerer, answerer);
    }
    mv->ready_at = now_ms();
}

uint64_t callkit_resume(struct callkit_party *p, const char *state, int within_ms)
{
    uint64_t t0 = now_ms();

    for (;;) {
        json_t *m;

        wsconn_free(p->ws);
        p->ws = callkit_connect(p->port);
        wsconn_send_json(p->ws, json_pack("{s:s,s:s}", "type", "resume", "resume", p->resume));
        if ((m = wsconn_recv(p->ws, CALLKIT_WAIT_MS)) == NULL)
            fail_msg("no answer to resume on port %d", p->port);
        if (strcmp(callkit__str(m, "type"), "resumed") == 0) {
            assert_string_equal(callkit__str(m, "participant"), p->id);
            assert_string_equal(callkit__str(m, "state"), state);
            snprintf(p->resume, sizeof(p->resume), "%s", callkit__str(m, "resume"));
            json_decref(m);
            return now_ms() - t0;
        }
        if (strcmp(callkit__str(m, "code"), "state_unavailable") != 0 ||
            now_ms() - t0 > (uint64_t)within_ms)
            fail_msg("resume refused: %s %s after %llu ms", callkit__str(m, "type"),
                     callkit__str(m, "code"), (unsigned long long)(now_ms() - t0));
        json_decref(m);
        usleep(250000); /* as a browser backs off */
    }
}

uint64_t callkit_received(struct refclient *rc)
{
    struct refclient_stats st;

    refclient_get_stats(rc, &st);
    return st.rtp_received;
}

void callkit_free(struct callkit_party *p)
{
    refclient_free(p->rc);
    wsconn_free(p->ws);
    memset(p, 0, sizeof(*p));
}

static void *callkit__sample(void *arg)
{
    struct callkit_sampler *s = arg;
    uint64_t last_change[2] = {now_ms(), now_ms()};

    while (!s->stop) {
        for (int i = 0; i < 2; i++) {
            uint64_t got = callkit_received(s->rc[i]), t = now_ms();

            if (got != s->received[i]) {
                s->received[i] = got;
                last_change[i] = t;
            } else if (t - last_change[i] > s->gap_ms[i]) {
                s->gap_ms[i] = t - last_change[i];
            }
        }
        usleep(CALLKIT_SAMPLE_MS * 1000);
    }
    return NULL;
}

/* The one sampler running (tests run one call at a time). */
static struct callkit_sampler *callkit__running;

struct callkit_sampler *callkit_sampler_start(struct refclient *a, struct refclient *b)
{
    struct callkit_sampler *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    assert_null(callkit__running);
    s->rc[0] = a;
    s->rc[1] = b;
    assert_int_equal(pthread_create(&s->thread, NULL, callkit__sample, s), 0);
    callkit__running = s;
    return s;
}

void callkit_sampler_stop(struct callkit_sampler *s)
{
    s->stop = 1;
    pthread_join(s->thread, NULL);
    if (callkit__running == s)
        callkit__running = NULL;
}

void callkit_stop_samplers(void)
{
    struct callkit_sampler *s = callkit__running;

    if (s != NULL) {
        callkit_sampler_stop(s);
        free(s);
    }
}
