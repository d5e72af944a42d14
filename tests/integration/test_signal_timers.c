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
#include "world.h"
#include "quietroom/base/clock.h"
#include "quietroom/auth/jwt.h"
#include "quietroom/wire/sdp.h"

#define WAIT_MS 5000

/* Each test starts its own world and stops it. */
static int start(void **state, bool tls, const char *const *extra)
{
    struct world_opts o = {.tls = tls, .signal_extra = extra, .wait_ms = WAIT_MS};
    return world_setup(state, &o);
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

static struct wsconn *join_with(struct world *w, const char *token, json_t **welcome)
{
    json_t *m;
    struct wsconn *c = world_join_token(w, token, &m);

    if (strcmp(world_str(m, "type"), "welcome") != 0)
        fail_msg("not welcomed: %s", world_str(m, "code"));
    if (welcome != NULL)
        *welcome = m;
    else
        json_decref(m);
    return c;
}

static struct wsconn *join(struct world *w, const char *sid, const char *role, json_t **welcome)
{
    return world_join(w, sid, role, role, NULL, welcome);
}

static json_t *expect(struct wsconn *c, const char *type)
{
    return world_expect(c, type, WAIT_MS);
}

static void test_waiting_room_times_out(void **state)
{
    struct world *w = *state;
    struct wsconn *pat = join(w, "t-wait", "patient", NULL);
    json_t *m = expect(pat, "removed");

    assert_string_equal(world_str(m, "reason"), "waiting_timeout");
    assert_int_equal(wsconn_wait_closed(pat, WAIT_MS), 4408);
    json_decref(m);
    wsconn_free(pat);
}

static void test_session_without_clinician_ends(void **state)
{
    struct world *w = *state;
    struct wsconn *doc = join(w, "t-idle", "clinician", NULL);
    json_t *wel, *m;
    struct wsconn *obs = join(w, "t-idle", "observer", &wel);

    wsconn_send_json(doc, json_pack("{s:s,s:s}", "type", "admit", "participant",
                                      world_str(wel, "participant")));
    json_decref(expect(obs, "admitted"));
    json_decref(wel);
    wsconn_drop(doc);
    m = expect(obs, "ended");
    assert_string_equal(world_str(m, "reason"), "idle_timeout");
    json_decref(m);
    wsconn_free(obs);
    wsconn_free(doc);
}

static void test_maximum_length(void **state)
{
    struct world *w = *state;
    struct wsconn *doc = join(w, "t-max", "clinician", NULL);
    uint64_t t0 = now_ms();
    json_t *m = expect(doc, "ended");

    assert_string_equal(world_str(m, "reason"), "max_length");
    assert_true(now_ms() - t0 >= 3500);
    json_decref(m);
    wsconn_free(doc);
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
    struct wsconn *doc = join(w, "t-exp", "clinician", NULL), *pat;
    json_t *wel, *m;

    assert_int_equal(jwt_sign_pem(w->sig.ehr_key, "ehr-1", cl, &token, err, sizeof(err)), 0);
    json_decref(cl);
    pat = join_with(w, token, &wel);
    free(token);
    wsconn_send_json(doc, json_pack("{s:s,s:s}", "type", "admit", "participant",
                                      world_str(wel, "participant")));
    json_decref(expect(pat, "admitted"));
    m = expect(pat, "removed");
    assert_string_equal(world_str(m, "reason"), "token_expired");
    json_decref(m);
    m = expect(doc, "peer_left");
    assert_string_equal(world_str(m, "reason"), "token_expired");
    json_decref(m);
    json_decref(wel);
    wsconn_free(pat);
    wsconn_free(doc);
}

static void test_wss_with_certificate(void **state)
{
    struct world *w = *state;
    json_t *wel;
    struct wsconn *doc = join(w, "t-tls", "clinician", &wel);

    assert_string_equal(world_str(wel, "state"), "admitted");
    json_decref(wel);
    wsconn_free(doc);
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

#define TIMERS(name) cmocka_unit_test_setup_teardown(name, setup_timers, world_teardown)
#define TLS(name) cmocka_unit_test_setup_teardown(name, setup_tls, world_teardown)

int main(void)
{
    struct CMUnitTest timers[] = {
        TIMERS(test_waiting_room_times_out),
        TIMERS(test_session_without_clinician_ends),
        TIMERS(test_maximum_length),
        TIMERS(test_token_expiry_removes_the_patient),
    };
    struct CMUnitTest tls[] = {
        TLS(test_wss_with_certificate),
        cmocka_unit_test(test_plain_http_only_on_loopback),
    };
    int failed;

    signal(SIGPIPE, SIG_IGN);
    failed = world_run_tests("timers", timers, sizeof(timers) / sizeof(timers[0]), NULL, NULL);
    failed += world_run_tests("tls", tls, sizeof(tls) / sizeof(tls[0]), NULL, NULL);
    return failed;
}
