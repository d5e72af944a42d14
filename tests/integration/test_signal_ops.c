/* quietroom-signal's operator side against a real relay, over TLS: metrics
 * scraped during a real visit reflect it and name nobody; SIGHUP swaps the
 * EHR keys, the relay secret and the TLS certificate while an open visit
 * goes on; a draining relay gets no new pair; SIGTERM drains signaling
 * (readyz 503, new visits refused with server_draining, the open one goes
 * on). Each test has its own world and its own visit. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "harness.h"
#include "world.h"
#include "quietroom/auth/jwt.h"
#include "quietroom/wire/sdp.h"

#define WAIT_MS 3000
#define OPS_TOKEN "ops-token-0123456789abcdef"
#define SID_A "visit-ops-aaaa-1111"
#define SUB_DOC "dr-ops-7731"
#define SUB_PAT "pt-ops-8842"

/* One test's world, and the visit it builds on: a clinician and an
 * admitted patient, closed by the teardown. */
struct opsworld {
    struct world w;
    char token_file[64];
    char token_line[128];
    char ehr_key[300];          /* the EHR key in force, and its kid */
    const char *kid;
    struct wsconn *doc, *pat;
    char doc_id[8], pat_id[8];
    struct sdp_summary at_pat, at_doc;
};

static int setup(void **state)
{
    struct opsworld *o = calloc(1, sizeof(*o));
    const char *extra[] = {"ops-listen = 127.0.0.1:0", o ? o->token_line : NULL, NULL};
    struct world_opts wo = {.tls = true, .signal_extra = extra, .wait_ms = WAIT_MS};
    FILE *f;
    int fd;

    *state = o;
    if (o == NULL)
        return -1;
    snprintf(o->token_file, sizeof(o->token_file), "/tmp/qr-opstoken-XXXXXX");
    if ((fd = mkstemp(o->token_file)) < 0 || (f = fdopen(fd, "w")) == NULL)
        return -1;
    fprintf(f, "%s\n", OPS_TOKEN);
    fclose(f);
    snprintf(o->token_line, sizeof(o->token_line), "ops-token-file = %s", o->token_file);
    if (world_start(&o->w, &wo) != 0 || o->w.sig.ops_port <= 0)
        return -1;
    snprintf(o->ehr_key, sizeof(o->ehr_key), "%s", o->w.sig.ehr_key);
    o->kid = "ehr-1";
    return 0;
}

static int teardown(void **state)
{
    struct opsworld *o = *state;
    int rc;

    if (o == NULL)
        return 0;
    wsconn_free(o->doc);
    wsconn_free(o->pat);
    rc = world_stop(&o->w);
    if (o->token_file[0] != '\0')
        unlink(o->token_file);
    free(o);
    return rc;
}

/* --- helpers --------------------------------------------------------------------- */

static char *ops_get(struct world *w, const char *path, int *status)
{
    char *resp = http_request(w->sig.ops_port, path, "Authorization: Bearer " OPS_TOKEN "\r\n");

    assert_non_null(resp);
    *status = http_status(resp);
    return resp;
}

/* The value of one sample ("name" or "name{label=\"v\"}"), or -1. */
static double metric(const char *body, const char *sample)
{
    size_t n = strlen(sample);

    for (const char *p = body; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, sample, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static char *scrape(struct world *w)
{
    int status;
    char *resp = ops_get(w, "/metrics", &status);

    assert_int_equal(status, 200);
    return resp;
}

static double scrape_one(struct world *w, const char *sample)
{
    char *resp = scrape(w);
    double v = metric(http_body(resp), sample);

    free(resp);
    return v;
}

/* Polls until sample == want (relay state arrives once a second). */
static void await_metric(struct world *w, const char *sample, double want)
{
    uint64_t deadline = now_ms() + 4000;
    double v = -1;

    while (now_ms() < deadline && (v = scrape_one(w, sample)) != want)
        usleep(100000);
    if (v != want)
        fail_msg("%s is %g, expected %g", sample, v, want);
}

/* A token signed by key (kid), for sid/role/sub. */
static char *sign(const char *key, const char *kid, const char *sid, const char *role,
                  const char *sub)
{
    uint8_t rnd[12];
    char jti[32], *out = NULL, err[160];
    int64_t now = (int64_t)time(NULL);
    json_t *cl;

    RAND_bytes(rnd, sizeof(rnd));
    for (int i = 0; i < 12; i++)
        snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
    cl = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "iss", TEST_ISSUER, "aud", TEST_AUDIENCE,
                   "sub", sub, "role", role, "sid", sid, "jti", jti, "iat", (json_int_t)now - 5,
                   "exp", (json_int_t)now + 600);
    if (jwt_sign_pem(key, kid, cl, &out, err, sizeof(err)) != 0)
        fail_msg("sign: %s", err);
    json_decref(cl);
    return out;
}

/* Connects and authenticates; returns the first reply in *reply. */
static struct wsconn *try_join(struct world *w, const char *token, json_t **reply)
{
    return world_join_token(w, token, reply);
}

static struct wsconn *join(struct opsworld *o, const char *sid, const char *role,
                           const char *sub, char id[8])
{
    char *token = sign(o->ehr_key, o->kid, sid, role, sub);
    json_t *m;
    struct wsconn *c = try_join(&o->w, token, &m);

    if (strcmp(world_str(m, "type"), "welcome") != 0)
        fail_msg("join as %s: %s (%s)", role, world_str(m, "type"), world_str(m, "code"));
    snprintf(id, 8, "%s", world_str(m, "participant"));
    free(token);
    json_decref(m);
    return c;
}

static json_t *expect(struct wsconn *c, const char *type)
{
    return world_expect(c, type, WAIT_MS);
}

static char *fixture(const char *name)
{
    char path[512], *text;

    snprintf(path, sizeof(path), "%s/tests/fixtures/sdp/%s", QR_SOURCE_DIR, name);
    assert_non_null(text = read_text(path));
    return text;
}

/* Offer and answer through signaling; what each side got is kept. */
static void negotiate(struct opsworld *o)
{
    char *offer = fixture("chromium-offer-gathered.sdp"), *answer = fixture("firefox-answer.sdp");
    json_t *m;

    wsconn_send_json(o->doc, json_pack("{s:s,s:s,s:s}", "type", "offer", "to", o->pat_id, "sdp",
                                       offer));
    m = expect(o->pat, "offer");
    assert_int_equal(sdp_summarize(world_str(m, "sdp"), strlen(world_str(m, "sdp")), &o->at_pat),
                     SDP_OK);
    json_decref(m);
    wsconn_send_json(o->pat, json_pack("{s:s,s:s,s:s}", "type", "answer", "to", o->doc_id, "sdp",
                                       answer));
    m = expect(o->doc, "answer");
    assert_int_equal(sdp_summarize(world_str(m, "sdp"), strlen(world_str(m, "sdp")), &o->at_doc),
                     SDP_OK);
    json_decref(m);
    free(offer);
    free(answer);
}

/* The visit the reload, drain and SIGTERM tests build on: a clinician and
 * an admitted patient who have negotiated once. */
static void visit_open(struct opsworld *o, const char *sid)
{
    o->doc = join(o, sid, "clinician", SUB_DOC, o->doc_id);
    o->pat = join(o, sid, "patient", SUB_PAT, o->pat_id);
    wsconn_send_json(o->doc, json_pack("{s:s,s:s}", "type", "admit", "participant", o->pat_id));
    json_decref(expect(o->pat, "peer"));
    json_decref(expect(o->doc, "peer"));
    negotiate(o);
}

static void assert_absent(const char *body, const char *what)
{
    if (what[0] != '\0' && strstr(body, what) != NULL)
        fail_msg("the operator output contains \"%s\"", what);
}

/* --- tests ------------------------------------------------------------------------ */

static void test_metrics_reflect_a_visit_and_name_nobody(void **state)
{
    struct opsworld *o = *state;
    struct world *w = &o->w;
    char *token = sign(w->sig.ehr_key, "ehr-1", SID_A, "patient", SUB_PAT), *resp, *body;
    int status;
    json_t *m;

    /* The token is needed for /metrics, not for the probes. */
    resp = http_get(w->sig.ops_port, "/metrics");
    assert_int_equal(http_status(resp), 401);
    free(resp);
    resp = http_get(w->sig.ops_port, "/readyz");
    assert_int_equal(http_status(resp), 200);
    free(resp);
    resp = http_get(w->sig.ops_port, "/healthz");
    assert_int_equal(http_status(resp), 200);
    free(resp);
    await_metric(w, "quietroom_signal_relay_up{relay=\"r1\"}", 1);

    o->doc = join(o, SID_A, "clinician", SUB_DOC, o->doc_id);
    o->pat = try_join(w, token, &m);
    assert_string_equal(world_str(m, "type"), "welcome");
    snprintf(o->pat_id, sizeof(o->pat_id), "%s", world_str(m, "participant"));
    json_decref(m);
    resp = scrape(w);
    body = (char *)http_body(resp);
    assert_int_equal(metric(body, "quietroom_signal_waiting_room_size"), 1);
    assert_int_equal(metric(body, "quietroom_signal_ws_connections"), 2);
    assert_int_equal(metric(body, "quietroom_signal_auth_total{result=\"ok\"}"), 2);
    assert_int_equal(metric(body, "quietroom_signal_sessions_active"), 1);
    assert_int_equal(metric(body, "quietroom_signal_ready"), 1);
    assert_int_equal(metric(body, "quietroom_signal_draining"), 0);
    free(resp);

    wsconn_send_json(o->doc, json_pack("{s:s,s:s}", "type", "admit", "participant", o->pat_id));
    json_decref(expect(o->pat, "peer"));
    json_decref(expect(o->doc, "peer"));
    negotiate(o);
    resp = scrape(w);
    body = (char *)http_body(resp);
    assert_int_equal(metric(body, "quietroom_signal_waiting_room_size"), 0);
    assert_int_equal(metric(body, "quietroom_signal_participants_connected{role=\"patient\"}"), 1);
    assert_int_equal(metric(body, "quietroom_signal_session_setup_seconds_count"), 1);
    assert_int_equal(metric(body, "quietroom_signal_sdp_rewritten_total"), 2);
    assert_true(metric(body, "quietroom_signal_messages_total") >= 4);
    assert_int_equal(metric(body, "quietroom_signal_relay_draining{relay=\"r1\"}"), 0);
    assert_true(metric(body, "process_open_fds") > 0);
    /* Nothing that names the visit, a person, a credential or an address. */
    assert_absent(body, SID_A);
    assert_absent(body, SUB_DOC);
    assert_absent(body, SUB_PAT);
    assert_absent(body, o->doc_id[0] ? o->doc_id : "");
    assert_absent(body, "127.0.0.1");
    assert_absent(body, o->at_pat.ice_ufrag);
    assert_absent(body, o->at_doc.ice_pwd);
    for (char *part = strtok(token, "."); part != NULL; part = strtok(NULL, "."))
        assert_absent(body, part);
    free(resp);
    free(token);

    resp = ops_get(w, "/api/dashboard", &status);
    assert_int_equal(status, 200);
    assert_non_null(strstr(http_body(resp), "\"waiting_room\":0"));
    assert_absent(http_body(resp), SID_A);
    assert_absent(http_body(resp), SUB_PAT);
    assert_absent(http_body(resp), "127.0.0.1");
    free(resp);
}

/* The cert a new TLS connection is given, as openssl prints its SHA-256. */
static char *served_fingerprint(int port)
{
    char cmd[256];
    char *out = NULL;
    size_t cap = 0;
    FILE *p;

    snprintf(cmd, sizeof(cmd),
             "openssl s_client -connect 127.0.0.1:%d </dev/null 2>/dev/null | "
             "openssl x509 -noout -fingerprint -sha256",
             port);
    assert_non_null(p = popen(cmd, "r"));
    if (getline(&out, &cap, p) < 0) {
        free(out);
        out = NULL;
    }
    pclose(p);
    assert_non_null(out);
    return out;
}

static void bind_media(struct udp_peer *p, const struct sdp_summary *s)
{
    union netaddr relay;
    char text[96];
    struct check c = {.ufrag = s->ice_ufrag, .pwd = s->ice_pwd, .nominate = true};
    uint8_t raw[2048];
    struct stun_msg m;

    snprintf(text, sizeof(text), "%s:%u", s->cands[0].addr, s->cands[0].port);
    assert_int_equal(netaddr_parse(text, &relay), 0);
    assert_int_equal(peer_open(p, "127.0.0.1:0"), 0);
    assert_int_equal(peer_check(p, &relay, &c, &m, raw, WAIT_MS), 1);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
}

static void test_reload_swaps_keys_and_certificate_keeping_the_visit(void **state)
{
    struct opsworld *o = *state;
    struct world *w = &o->w;
    char *before = served_fingerprint(w->sig.port), *after, *token, *audit, *old_secret, prefix[256],
         key2[300], line[1200];
    struct udp_peer a, b;
    struct wsconn *c;
    json_t *m;
    FILE *f;

    visit_open(o, "visit-ops-reload-open");
    /* A second EHR key replaces the first; a new certificate; the relay
     * secret gains a new signing key (the old one still verifies). */
    snprintf(prefix, sizeof(prefix), "%s/ehr2", w->sig.dir);
    snprintf(key2, sizeof(key2), "%s.key", prefix);
    snprintf(line, sizeof(line), QR_CTL_BIN " keygen --type ec --out %s --kid ehr-2 >/dev/null && "
             "mv %s.jwks.json %s/ehr.jwks.json", prefix, prefix, w->sig.dir);
    assert_int_equal(system(line), 0);
    snprintf(line, sizeof(line),
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
             "-keyout new.key -out new.crt 2>/dev/null && "
             "mv new.key tls.key && mv new.crt tls.crt", w->sig.dir);
    assert_int_equal(system(line), 0);
    assert_non_null(old_secret = read_text(w->relay.secret));
    assert_non_null(f = fopen(w->relay.secret, "w"));
    fprintf(f, "7 ");
    for (int i = 0; i < 32; i++)
        fprintf(f, "%02x", (unsigned)(i * 7 + 3));
    fprintf(f, "\n%s", old_secret);
    fclose(f);
    free(old_secret);

    /* Rotation order: relays first, then signaling signs with the new key. */
    assert_int_equal(kill(w->relay.pid, SIGHUP), 0);
    assert_int_equal(kill(w->sig.pid, SIGHUP), 0);
    usleep(500000);

    after = served_fingerprint(w->sig.port);
    assert_string_not_equal(before, after);
    /* The new key's tokens are taken, the removed key's are not. */
    token = sign(key2, "ehr-2", "visit-ops-reload", "clinician", "dr-ops-2");
    c = try_join(w, token, &m);
    assert_string_equal(world_str(m, "type"), "welcome");
    json_decref(m);
    wsconn_send_json(c, json_pack("{s:s}", "type", "end"));
    json_decref(wsconn_recv_type(c, "ended", WAIT_MS));
    wsconn_free(c);
    free(token);
    snprintf(o->ehr_key, sizeof(o->ehr_key), "%s", key2);
    o->kid = "ehr-2";
    token = sign(w->sig.ehr_key, "ehr-1", "visit-ops-reload2", "clinician", "dr-ops-3");
    c = try_join(w, token, &m);
    assert_string_equal(world_str(m, "type"), "error");
    json_decref(m);
    wsconn_free(c);
    free(token);
    /* The open visit goes on: a new offer still reaches the patient, and
     * its credentials, signed with the relay's new key, bind. */
    negotiate(o);
    bind_media(&a, &o->at_pat);
    bind_media(&b, &o->at_doc);
    peer_close(&a);
    peer_close(&b);
    /* Audited, naming what changed and no secret. */
    audit = read_text(w->sig.audit);
    assert_non_null(audit);
    assert_non_null(strstr(audit, "signal.reload"));
    assert_non_null(strstr(audit, "ehr-keys"));
    assert_non_null(strstr(audit, "relay-secret-file"));
    assert_non_null(strstr(audit, "tls-certificate"));
    assert_null(strstr(audit, "0a11181f"));
    free(audit);
    free(before);
    free(after);
}

static void test_draining_relay_gets_no_new_pair(void **state)
{
    struct opsworld *o = *state;
    struct world *w = &o->w;
    struct udp_peer a, b;
    struct wsconn *d2, *p2;
    char d2_id[8], p2_id[8];
    json_t *m;

    /* The visit's media is on the relay, so its drain lasts. */
    visit_open(o, "visit-ops-drain-open");
    bind_media(&a, &o->at_pat);
    bind_media(&b, &o->at_doc);
    assert_int_equal(kill(w->relay.pid, SIGTERM), 0);
    await_metric(w, "quietroom_signal_relay_draining{relay=\"r1\"}", 1);
    await_metric(w, "quietroom_signal_ready", 0);
    d2 = join(o, "visit-ops-bbbb", "clinician", "dr-ops-4", d2_id);
    p2 = join(o, "visit-ops-bbbb", "patient", "pt-ops-5", p2_id);
    wsconn_send_json(d2, json_pack("{s:s,s:s}", "type", "admit", "participant", p2_id));
    /* They meet, and their media waits for a relay; an offer meanwhile is
     * refused as transient. */
    m = expect(d2, "peer");
    assert_true(json_is_true(json_object_get(m, "waiting_for_relay")));
    json_decref(m);
    await_metric(w, "quietroom_signal_media_pairs_waiting", 1);
    await_metric(w, "quietroom_signal_media_moves_total{reason=\"relay_available\"}", 0);
    wsconn_send_json(d2, json_pack("{s:s,s:s,s:s}", "type", "offer", "to", p2_id, "sdp", "v=0"));
    m = expect(d2, "error");
    assert_string_equal(world_str(m, "code"), "no_relay_available");
    json_decref(m);
    /* The pair placed before keeps its relay. */
    negotiate(o);
    wsconn_send_json(d2, json_pack("{s:s}", "type", "end"));
    json_decref(wsconn_recv_type(d2, "ended", WAIT_MS));
    wsconn_free(d2);
    wsconn_free(p2);
    peer_close(&a);
    peer_close(&b);
}

static void test_sigterm_drains_and_refuses_new_visits(void **state)
{
    struct opsworld *o = *state;
    struct world *w = &o->w;
    char *token = sign(o->ehr_key, o->kid, "visit-ops-cccc", "clinician", "dr-ops-6"), *resp;
    struct wsconn *c;
    json_t *m;

    visit_open(o, "visit-ops-sigterm-open");
    assert_int_equal(kill(w->sig.pid, SIGTERM), 0);
    usleep(300000);
    resp = http_get(w->sig.ops_port, "/readyz");
    assert_int_equal(http_status(resp), 503);
    assert_non_null(strstr(http_body(resp), "draining"));
    free(resp);
    assert_int_equal(scrape_one(w, "quietroom_signal_draining"), 1);
    c = try_join(w, token, &m);
    assert_string_equal(world_str(m, "type"), "error");
    assert_string_equal(world_str(m, "code"), "server_draining");
    json_decref(m);
    wsconn_free(c);
    free(token);
    /* The visit in progress goes on. */
    negotiate(o);
    /* It ends; with no visit left the drain is over and signaling exits. */
    wsconn_send_json(o->doc, json_pack("{s:s}", "type", "end"));
    assert_int_equal(signal_wait_exit(&w->sig, 5000), 0);
}

/* HTTPS speaks HTTP/1.1 only, even to a client that offers h2 first:
 * WebSockets over h2 fail with libwebsockets 4.1 (Firefox never connects). */
static void test_tls_offers_no_http2(void **state)
{
    struct opsworld *o = *state;
    char url[96];
    char *argv[] = {"/usr/bin/curl", "-sk", "--http2", "-o", "/dev/null", "-w",
                    "%{http_version}", url, NULL};
    int status;
    char *out;

    snprintf(url, sizeof(url), "https://127.0.0.1:%d/healthz", o->w.sig.port);
    out = run_command(argv, &status);
    assert_int_equal(status, 0);
    assert_non_null(out);
    assert_string_equal(out, "1.1");
    free(out);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    struct CMUnitTest tests[] = {
        T(test_metrics_reflect_a_visit_and_name_nobody),
        T(test_reload_swaps_keys_and_certificate_keeping_the_visit),
        T(test_draining_relay_gets_no_new_pair),
        T(test_sigterm_drains_and_refuses_new_visits),
        T(test_tls_offers_no_http2),
    };

    signal(SIGPIPE, SIG_IGN);
    return world_run_tests("test_signal_ops", tests, sizeof(tests) / sizeof(tests[0]), NULL,
                           NULL);
}
