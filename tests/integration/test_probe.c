/* quietroomctl probe against the real system on loopback: quietroom-relay
 * and quietroom-signal started afresh for each test (world.h), the real
 * quietroomctl binary run as an operator's cron job would. A probe succeeds with its figures in
 * JSON and in a textfile-collector file; with signaling unreachable, and
 * then with the relay stopped, it fails within its timeout naming the
 * stage, and the file says success 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "ctlrun.h"
#include "world.h"

#define PROBE_SECONDS "3"
#define PROBE_TIMEOUT_S 6
/* Startup and teardown around the call itself. */
#define RUN_SLACK_S 8

/* One test's state: its own world (relay and signaling, plain or WSS) and
 * where the probe writes its textfile. */
struct probe {
    struct world w;
    char prom[HARNESS_PATH + 16];
    char url[64];
    const char *transport;      /* --transport for every probe run; NULL: none */
};

static const char *const metric_names[] = {
    "quietroom_probe_success",        "quietroom_probe_failed_stage",
    "quietroom_probe_setup_seconds",  "quietroom_probe_rtt_seconds",
    "quietroom_probe_loss_ratio",     "quietroom_probe_tone_detected",
    "quietroom_probe_last_run_timestamp_seconds",
};

/* Each test starts its own world: nothing one test stops or leaves
 * behind reaches another. */
static int start(void **state, bool tls, bool tcp)
{
    static const char *const tcp_extra[] = {"--listen-tcp", "127.0.0.1:0", NULL};
    struct world_opts o = {.tls = tls, .relay_extra = tcp ? tcp_extra : NULL};
    struct probe *p = calloc(1, sizeof(*p));

    *state = p;
    if (p != NULL && tcp)
        p->transport = "tcp";
    if (p == NULL || world_start(&p->w, &o) != 0)
        return -1;
    snprintf(p->prom, sizeof(p->prom), "%s/probe.prom", p->w.sig.dir);
    snprintf(p->url, sizeof(p->url), "%s://127.0.0.1:%d/ws", tls ? "wss" : "ws", p->w.sig.port);
    return 0;
}

static int setup_plain(void **state)
{
    return start(state, false, false);
}

static int setup_tls(void **state)
{
    return start(state, true, false);
}

static int setup_tcp(void **state)
{
    return start(state, false, true);
}

static int teardown(void **state)
{
    struct probe *p = *state;
    int rc;

    if (p == NULL)
        return 0;
    unlink(p->prom);
    rc = world_stop(&p->w);
    free(p);
    return rc;
}

/* Runs `quietroomctl probe` against url with the world's EHR key, trusting
 * ca if not NULL. */
static void run_probe_on(struct probe *p, const char *url, const char *ca, struct ctlrun *r)
{
    const struct signal_proc *s = &p->w.sig;
    char timeout[16];
    char *argv[] = {QR_CTL_BIN, "probe", "--signal", (char *)url, "--key", (char *)s->ehr_key,
                    "--kid", "ehr-1", "--iss", TEST_ISSUER, "--aud", TEST_AUDIENCE,
                    "--origin", TEST_ORIGIN, "--seconds", PROBE_SECONDS, "--timeout", timeout,
                    "--json", "--prometheus", p->prom, "--transport",
                    (char *)(p->transport ? p->transport : "udp"), ca ? "--ca" : NULL, (char *)ca,
                    NULL};

    snprintf(timeout, sizeof(timeout), "%d", PROBE_TIMEOUT_S);
    assert_int_equal(ctlrun(argv, PROBE_TIMEOUT_S + atoi(PROBE_SECONDS) + RUN_SLACK_S, r), 0);
    print_message("probe: exit %d after %.2f s\n%s%s", r->exit_code, r->seconds,
                  r->out ? r->out : "", r->err ? r->err : "");
}

static void run_probe(struct probe *p, const char *url, struct ctlrun *r)
{
    run_probe_on(p, url, NULL, r);
}

/* Nothing that identifies a visit, a person or a credential in the output. */
static void assert_no_identifiers(const char *text)
{
    static const char *const banned[] = {"eyJ", "quietroom-probe-", "a=ice-pwd", "v=0",
                                         "a=fingerprint", "BEGIN"};

    for (size_t i = 0; text != NULL && i < sizeof(banned) / sizeof(banned[0]); i++) {
        if (strstr(text, banned[i]) != NULL)
            fail_msg("output contains \"%s\"", banned[i]);
    }
}

/* The value of an unlabelled sample in the exposition; -1 if absent. */
static double prom_value(const char *text, const char *name)
{
    char key[128];
    const char *p;

    snprintf(key, sizeof(key), "\n%s ", name);
    if ((p = strstr(text, key)) == NULL)
        return -1;
    return strtod(p + strlen(key), NULL);
}

/* Every metric has HELP and TYPE; returns the file's text. */
static char *read_prom(struct probe *p)
{
    char tmp[HARNESS_PATH + 32], line[160];
    char *text = read_text(p->prom);

    assert_non_null(text);
    snprintf(tmp, sizeof(tmp), "%s.tmp", p->prom);
    assert_int_equal(access(tmp, F_OK), -1); /* renamed into place, nothing left over */
    for (size_t i = 0; i < sizeof(metric_names) / sizeof(metric_names[0]); i++) {
        snprintf(line, sizeof(line), "# HELP %s ", metric_names[i]);
        assert_non_null(strstr(text, line));
        snprintf(line, sizeof(line), "# TYPE %s gauge\n", metric_names[i]);
        assert_non_null(strstr(text, line));
    }
    assert_no_identifiers(text);
    return text;
}

static json_t *parse_json(const struct ctlrun *r)
{
    json_t *j = json_loads(r->out ? r->out : "", 0, NULL);

    assert_non_null(j);
    return j;
}

static void test_probe_succeeds_against_the_local_system(void **state)
{
    struct probe *p = *state;
    struct ctlrun r;
    json_t *j;
    char *prom, relay[64];
    double setup, rtt, loss;

    run_probe(p, p->url, &r);
    assert_int_equal(r.exit_code, 0);
    assert_no_identifiers(r.out);
    assert_no_identifiers(r.err);
    j = parse_json(&r);
    assert_true(json_is_true(json_object_get(j, "success")));
    assert_true(json_is_true(json_object_get(j, "tone_detected")));
    setup = json_real_value(json_object_get(j, "setup_seconds"));
    rtt = json_real_value(json_object_get(j, "rtt_seconds"));
    loss = json_real_value(json_object_get(j, "loss_ratio"));
    assert_true(setup > 0 && setup < PROBE_TIMEOUT_S);
    assert_true(rtt > 0 && rtt < 0.5);
    assert_true(loss >= 0 && loss < 0.05);
    /* ~50 packets/s each way for the whole call. */
    assert_true(json_integer_value(json_object_get(json_object_get(j, "patient"),
                                                   "rtp_received")) > 100);
    netaddr_format(&p->w.relay.listen[0], relay, sizeof(relay));
    assert_string_equal(json_string_value(json_object_get(j, "relay")), relay);
    print_message("measured: setup %.3f s, rtt %.2f ms, loss %.4f\n", setup, rtt * 1e3, loss);

    prom = read_prom(p);
    assert_true(prom_value(prom, "quietroom_probe_success") == 1);
    assert_true(prom_value(prom, "quietroom_probe_tone_detected") == 1);
    assert_true(prom_value(prom, "quietroom_probe_setup_seconds") > 0);
    assert_true(prom_value(prom, "quietroom_probe_rtt_seconds") > 0);
    assert_true(prom_value(prom, "quietroom_probe_last_run_timestamp_seconds") > 1.7e9);
    free(prom);
    json_decref(j);
    ctlrun_free(&r);
}

/* WSS verifies the server's certificate: the harness's self-signed one
 * (subjectAltName IP:127.0.0.1) is refused without --ca, refused with it
 * for another name (localhost), and trusted for 127.0.0.1 with it as --ca,
 * where the whole call then runs over WSS. */
static void test_probe_over_wss_verifies_the_certificate(void **state)
{
    struct probe *p = *state;
    struct ctlrun r;
    char url[64];
    json_t *j;

    snprintf(url, sizeof(url), "wss://127.0.0.1:%d/ws", p->w.sig.port);
    run_probe_on(p, url, NULL, &r);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "failed at connect: clinician: TLS handshake failed"));
    assert_non_null(strstr(r.err, "self-signed"));
    ctlrun_free(&r);

    /* Trusted, but not for this name: the name is still checked. */
    snprintf(url, sizeof(url), "wss://localhost:%d/ws", p->w.sig.port);
    run_probe_on(p, url, p->w.sig.cert, &r);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "failed at connect"));
    assert_non_null(strstr(r.err, "hostname mismatch"));
    ctlrun_free(&r);

    snprintf(url, sizeof(url), "wss://127.0.0.1:%d/ws", p->w.sig.port);
    run_probe_on(p, url, p->w.sig.cert, &r);
    assert_int_equal(r.exit_code, 0);
    assert_no_identifiers(r.out);
    j = parse_json(&r);
    assert_true(json_is_true(json_object_get(j, "success")));
    assert_true(json_is_true(json_object_get(j, "tone_detected")));
    json_decref(j);
    ctlrun_free(&r);
}

/* A failed run: non-zero, in time, one line on stderr naming the stage. */
static json_t *expect_failure(struct probe *p, const char *url, struct ctlrun *r)
{
    json_t *j;
    char *prom;

    run_probe(p, url, r);
    assert_int_equal(r->exit_code, 1);
    assert_true(r->seconds < PROBE_TIMEOUT_S + 3);
    assert_no_identifiers(r->out);
    assert_no_identifiers(r->err);
    assert_non_null(r->err);
    assert_non_null(strstr(r->err, "quietroomctl probe: failed at "));
    j = parse_json(r);
    assert_false(json_is_true(json_object_get(j, "success")));
    prom = read_prom(p);
    assert_true(prom_value(prom, "quietroom_probe_success") == 0);
    assert_true(prom_value(prom, "quietroom_probe_tone_detected") == 0);
    free(prom);
    return j;
}

static void test_probe_fails_clearly_when_signaling_is_unreachable(void **state)
{
    struct probe *p = *state;
    struct ctlrun r;
    json_t *j;

    /* Port 1 on loopback: nothing listens, the connection is refused. */
    j = expect_failure(p, "ws://127.0.0.1:1/ws", &r);
    assert_string_equal(json_string_value(json_object_get(j, "stage")), "connect");
    assert_non_null(strstr(r.err, "failed at connect"));
    json_decref(j);
    ctlrun_free(&r);
}

static void test_probe_fails_clearly_when_the_relay_is_down(void **state)
{
    struct probe *p = *state;
    struct ctlrun r;
    const char *stage;
    json_t *j;

    relay_stop(&p->w.relay);
    j = expect_failure(p, p->url, &r);
    stage = json_string_value(json_object_get(j, "stage"));
    /* Signaling may not have noticed yet (the call then fails at ICE) or
     * may have (no relay for the media link at admission). */
    assert_true(strcmp(stage, "ice") == 0 ||
                (strcmp(stage, "admit") == 0 && strstr(r.err, "no_relay_available") != NULL));
    print_message("relay down: failed at %s\n", stage);
    json_decref(j);
    ctlrun_free(&r);
}

/* Both ends on ICE-TCP, as browsers on networks that block UDP: the call
 * runs over the relay's passive TCP candidate, which signaling handed out. */
static void test_probe_over_ice_tcp(void **state)
{
    struct probe *p = *state;
    char relay[64];
    struct ctlrun r;
    json_t *j;

    run_probe(p, p->url, &r);
    assert_int_equal(r.exit_code, 0);
    j = parse_json(&r);
    assert_true(json_is_true(json_object_get(j, "success")));
    assert_true(json_is_true(json_object_get(j, "tone_detected")));
    assert_string_equal(json_string_value(json_object_get(j, "transport")), "tcp");
    netaddr_format(&p->w.relay.listen_tcp[0], relay, sizeof(relay));
    assert_string_equal(json_string_value(json_object_get(j, "relay")), relay);
    assert_true(relay_stat(&p->w.relay, "tcp", "packets_forwarded") > 200);
    assert_int_equal(relay_stat(&p->w.relay, "tcp_connections", "accepted") >= 2, 1);
    json_decref(j);
    ctlrun_free(&r);
}

#define PLAIN(name) cmocka_unit_test_setup_teardown(name, setup_plain, teardown)
#define TLS(name) cmocka_unit_test_setup_teardown(name, setup_tls, teardown)

int main(void)
{
    struct CMUnitTest tests[] = {
        PLAIN(test_probe_succeeds_against_the_local_system),
        TLS(test_probe_over_wss_verifies_the_certificate),
        PLAIN(test_probe_fails_clearly_when_signaling_is_unreachable),
        PLAIN(test_probe_fails_clearly_when_the_relay_is_down),
        cmocka_unit_test_setup_teardown(test_probe_over_ice_tcp, setup_tcp, teardown),
    };

    return world_run_tests("test_probe", tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}
