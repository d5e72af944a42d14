/* Sessions end on their own: a patient nobody admits is sent away, a session
 * without its clinician ends, a session reaches its maximum length, a token
 * expires mid-call and the relay stops forwarding. Also signaling over TLS
 * (wss) and its refusal to serve plain HTTP beyond loopback. Timeouts are
 * shortened to seconds by configuration. */
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
#include "quietroom/base/clock.h"
#include "quietroom/auth/jwt.h"
#include "quietroom/wire/sdp.h"
#include "wsclient.h"

#define WAIT_MS 5000

struct world {
    struct relay_proc relay;
    struct signal_proc sig;
};

static int start(void **state, bool tls, const char *const *extra)
{
    static const char *const listen[] = {"127.0.0.1:0", NULL};
    struct world *w = calloc(1, sizeof(*w));

    *state = w;
    if (relay_start(&w->relay, listen, NULL) != 0 || signal_start(&w->sig, &w->relay, tls, extra))
        return -1;
    return 0;
}

static int setup_timers(void **state)
{
    static const char *const extra[] = {"waiting-timeout = 1", "idle-timeout = 1",
                                        "max-session-length = 4", "resume-grace = 1", NULL};

    return start(state, false, extra);
}

static int setup_tls(void **state)
{
    return start(state, true, NULL);
}

static int teardown(void **state)
{
    struct world *w = *state;
    int rc = 0;

    if (w == NULL)
        return 0;
    rc |= signal_cleanup(&w->sig);
    rc |= relay_cleanup(&w->relay);
    free(w);
    return rc;
}

static const char *str(json_t *m, const char *key)
{
    const char *v = json_string_value(json_object_get(m, key));

    return v ? v : "";
}

static struct wsclient *join_with(struct world *w, const char *token, json_t **welcome)
{
    struct wsclient_opts o = {.host = "127.0.0.1", .port = w->sig.port,
                              .tls = w->sig.cert[0] != '\0', .path = "/ws",
                              .origin = TEST_ORIGIN, .protocol = "quietroom.v1"};
    char err[160];
    struct wsclient *c = wsclient_connect(&o, WAIT_MS, err, sizeof(err));
    json_t *m;

    if (c == NULL)
        fail_msg("websocket: %s", err);
    wsclient_send_json(c, json_pack("{s:s,s:s}", "type", "auth", "token", token));
    m = wsclient_recv(c, WAIT_MS);
    if (m == NULL || strcmp(str(m, "type"), "welcome") != 0)
        fail_msg("not welcomed: %s", m ? str(m, "code") : "timeout");
    if (welcome != NULL)
        *welcome = m;
    else
        json_decref(m);
    return c;
}

static struct wsclient *join(struct world *w, const char *sid, const char *role, json_t **welcome)
{
    char *token = mint_token(&w->sig, sid, role, role, NULL);
    struct wsclient *c;

    assert_non_null(token);
    c = join_with(w, token, welcome);
    free(token);
    return c;
}

static json_t *expect(struct wsclient *c, const char *type)
{
    json_t *m = wsclient_expect(c, type, WAIT_MS);

    if (m == NULL)
        fail_msg("no \"%s\" arrived", type);
    return m;
}

static void test_waiting_room_times_out(void **state)
{
    struct world *w = *state;
    struct wsclient *pat = join(w, "t-wait", "patient", NULL);
    json_t *m = expect(pat, "removed");

    assert_string_equal(str(m, "reason"), "waiting_timeout");
    assert_int_equal(wsclient_wait_closed(pat, WAIT_MS), 4408);
    json_decref(m);
    wsclient_free(pat);
}

static void test_session_without_clinician_ends(void **state)
{
    struct world *w = *state;
    struct wsclient *doc = join(w, "t-idle", "clinician", NULL);
    json_t *wel, *m;
    struct wsclient *obs = join(w, "t-idle", "observer", &wel);

    wsclient_send_json(doc, json_pack("{s:s,s:s}", "type", "admit", "participant",
                                      str(wel, "participant")));
    json_decref(expect(obs, "admitted"));
    json_decref(wel);
    wsclient_drop(doc);
    m = expect(obs, "ended");
    assert_string_equal(str(m, "reason"), "idle_timeout");
    json_decref(m);
    wsclient_free(obs);
    wsclient_free(doc);
}

static void test_maximum_length(void **state)
{
    struct world *w = *state;
    struct wsclient *doc = join(w, "t-max", "clinician", NULL);
    uint64_t t0 = now_ms();
    json_t *m = expect(doc, "ended");

    assert_string_equal(str(m, "reason"), "max_length");
    assert_true(now_ms() - t0 >= 3500);
    json_decref(m);
    wsclient_free(doc);
}

/* The patient's token expires two seconds into the call: the patient is
 * removed (their media pairs end at the relay the way removal's do). */
static void test_token_expiry_removes_the_patient(void **state)
{
    struct world *w = *state;
    int64_t now = clock_wall_s();
    json_t *cl = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "iss", TEST_ISSUER, "aud",
                           TEST_AUDIENCE, "sub", "short", "role", "patient", "sid", "t-exp",
                           "jti", "short-lived-1", "iat", (json_int_t)now, "exp",
                           (json_int_t)(now + 2));
    char *token = NULL, err[128];
    struct wsclient *doc = join(w, "t-exp", "clinician", NULL), *pat;
    json_t *wel, *m;

    assert_int_equal(jwt_sign_pem(w->sig.ehr_key, "ehr-1", cl, &token, err, sizeof(err)), 0);
    json_decref(cl);
    pat = join_with(w, token, &wel);
    free(token);
    wsclient_send_json(doc, json_pack("{s:s,s:s}", "type", "admit", "participant",
                                      str(wel, "participant")));
    json_decref(expect(pat, "admitted"));
    m = expect(pat, "removed");
    assert_string_equal(str(m, "reason"), "token_expired");
    json_decref(m);
    m = expect(doc, "peer_left");
    assert_string_equal(str(m, "reason"), "token_expired");
    json_decref(m);
    json_decref(wel);
    wsclient_free(pat);
    wsclient_free(doc);
}

static void test_wss_with_certificate(void **state)
{
    struct world *w = *state;
    json_t *wel;
    struct wsclient *doc = join(w, "t-tls", "clinician", &wel);

    assert_string_equal(str(wel, "state"), "admitted");
    json_decref(wel);
    wsclient_free(doc);
}

/* Configuration mistakes are refused with a message and exit code 2. */
static void test_plain_http_only_on_loopback(void **state)
{
    char *argv[] = {QR_SIGNAL_BIN,   "--listen",  "0.0.0.0:8443", "--origin", TEST_ORIGIN,
                    "--ehr-jwks",    "x.json",    "--issuer",      "i",        "--audience",
                    "a",             "--relay",   "r 127.0.0.1:1 127.0.0.1:2", "--relay-secret-file",
                    "s",             NULL};
    char *bad_origin[] = {QR_SIGNAL_BIN, "--origin", "https://*.example", NULL};
    char *bad_relay[] = {QR_SIGNAL_BIN, "--relay", "r1 127.0.0.1:1", NULL};
    int code;
    char *out;

    (void)state;
    out = run_command(argv, &code);
    assert_int_equal(code, 2);
    assert_non_null(strstr(out, "only listens on loopback"));
    free(out);
    out = run_command(bad_origin, &code);
    assert_int_equal(code, 2);
    assert_non_null(strstr(out, "is not scheme://host[:port]"));
    free(out);
    out = run_command(bad_relay, &code);
    assert_int_equal(code, 2);
    assert_non_null(strstr(out, "MEDIA-ADDR:PORT"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest timers[] = {
        cmocka_unit_test(test_waiting_room_times_out),
        cmocka_unit_test(test_session_without_clinician_ends),
        cmocka_unit_test(test_maximum_length),
        cmocka_unit_test(test_token_expiry_removes_the_patient),
    };
    const struct CMUnitTest tls[] = {
        cmocka_unit_test(test_wss_with_certificate),
        cmocka_unit_test(test_plain_http_only_on_loopback),
    };
    int failed;

    signal(SIGPIPE, SIG_IGN);
    failed = cmocka_run_group_tests_name("timers", timers, setup_timers, teardown);
    failed += cmocka_run_group_tests_name("tls", tls, setup_tls, teardown);
    return failed;
}
