/* The visit core alone, continued from test_session.c: connections
 * dropped and resumed, the timers, and the stored record (visit_codec). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "session_fixtures.h"
#include "session_internal.h"

/* --- connections and resume ------------------------------------------------------------ */

static void test_disconnect_and_resume(void **state)
{
    struct world *w = *state;
    char secret[128], again[128];
    uint8_t hash[32];
    struct visit_person *p;
    const struct visit_action *a;
    json_t *peers;

    clinician_and_patient(w);
    resume_secret(&w->o, "p2", "welcome", secret, sizeof(secret));
    message(w, "p1", MSG_ADMIT, "p2");
    later(w, 1000);
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p2", &w->o);
    assert_non_null(audit(&w->o, "participant.disconnected"));
    assert_true(json_is_false(json_object_get(sent(&w->o, "p1", "peer_status"), "connected")));
    assert_int_equal(sent_count(&w->o, "p2"), 0);
    assert_non_null(sent(&w->o, "p1", "lobby"));
    /* The pair stays for the grace. */
    assert_int_equal(count(&w->o, VISIT_REVOKE), 0);
    assert_int_equal(w->v->n_pairs, 1);

    later(w, 59000);
    visit_resume_hash(secret, hash);
    p = visit_by_resume(w->v, hash);
    assert_non_null(p);
    visit_out_reset(&w->o);
    assert_null(visit_resume(w->v, &w->env, p, "198.51.100.7", &w->o));
    assert_int_equal(w->o.a[0].kind, VISIT_ATTACH);
    assert_string_equal(w->o.a[0].who, "p2");
    a = audit(&w->o, "auth.success");
    assert_string_equal(a->method, "resume");
    assert_string_equal(a->person.addr, "198.51.100.7");
    assert_non_null(audit(&w->o, "participant.resumed"));
    resume_secret(&w->o, "p2", "resumed", again, sizeof(again));
    assert_string_not_equal(secret, again);
    peers = json_object_get(sent(&w->o, "p2", "peers"), "peers");
    assert_int_equal(json_array_size(peers), 1);
    assert_string_equal(msg_str(json_array_get(peers, 0), "participant"), "p1");
    assert_true(json_is_false(json_object_get(json_array_get(peers, 0), "initiator")));
    assert_true(json_is_true(json_object_get(sent(&w->o, "p1", "peer_status"), "connected")));
    assert_int_equal(count(&w->o, VISIT_CLOSE), 0);
    /* Each secret works once. */
    assert_null(visit_by_resume(w->v, hash));
}

static void test_resume_replaces_live_connection(void **state)
{
    struct world *w = *state;
    char secret[128];
    uint8_t hash[32];

    clinician_and_patient(w);
    resume_secret(&w->o, "p2", "welcome", secret, sizeof(secret));
    visit_resume_hash(secret, hash);
    visit_out_reset(&w->o);
    assert_null(visit_resume(w->v, &w->env, visit_by_resume(w->v, hash), "192.0.2.2", &w->o));
    /* The old connection is told why and closed before the new one is
     * attached. */
    assert_int_equal(w->o.a[0].kind, VISIT_SEND);
    assert_string_equal(msg_str(w->o.a[0].msg, "type"), "replaced");
    assert_int_equal(w->o.a[1].kind, VISIT_CLOSE);
    assert_string_equal(w->o.a[1].reason, "replaced");
    assert_int_equal(w->o.a[1].close_code, VISIT_CLOSE_NORMAL);
    assert_int_equal(w->o.a[2].kind, VISIT_ATTACH);
    assert_int_equal(count(&w->o, VISIT_CLOSE), 1);
}

static void test_resume_refused(void **state)
{
    struct world *w = *state;
    char secret[128];
    uint8_t hash[32];
    struct visit_person *p;

    clinician_and_patient(w);
    resume_secret(&w->o, "p2", "welcome", secret, sizeof(secret));
    /* A wrong secret matches no one. */
    visit_resume_hash("not-the-secret", hash);
    assert_null(visit_by_resume(w->v, hash));
    /* After the grace. */
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p2", &w->o);
    later(w, 60001);
    visit_resume_hash(secret, hash);
    p = visit_by_resume(w->v, hash);
    assert_non_null(p);
    visit_out_reset(&w->o);
    assert_string_equal(visit_resume(w->v, &w->env, p, "192.0.2.3", &w->o), "resume_invalid");
    assert_int_equal(w->o.n, 0);
    assert_false(p->connected);
}

static void test_resume_refused_token_expired(void **state)
{
    struct world *w = *state;
    char secret[128];
    uint8_t hash[32];
    struct visit_person *p;

    clinician_and_patient(w);
    resume_secret(&w->o, "p2", "welcome", secret, sizeof(secret));
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p2", &w->o);
    visit_resume_hash(secret, hash);
    p = visit_by_resume(w->v, hash);
    /* Within the grace, but the wall clock passed the token's exp. */
    w->env.now_wall_ms = (uint64_t)p->token_exp * 1000;
    visit_out_reset(&w->o);
    assert_string_equal(visit_resume(w->v, &w->env, p, "192.0.2.3", &w->o), "resume_invalid");
    assert_int_equal(w->o.n, 0);
}

/* --- timers ------------------------------------------------------------------------------ */

static void tick(struct world *w)
{
    visit_out_reset(&w->o);
    visit_tick(w->v, &w->env, &w->o);
}

static void test_waiting_timeout(void **state)
{
    struct world *w = *state;
    const struct visit_action *a;

    clinician_and_patient(w);
    later(w, 900000);
    tick(w);
    assert_int_equal(w->o.n, 0);
    later(w, 1);
    tick(w);
    a = audit(&w->o, "participant.timeout");
    assert_non_null(a);
    assert_string_equal(a->reason, "waiting_timeout");
    assert_string_equal(a->person.id, "p2");
    assert_string_equal(msg_str(sent(&w->o, "p2", "removed"), "reason"), "waiting_timeout");
    assert_int_equal(find(&w->o, VISIT_CLOSE, "p2")->close_code, VISIT_CLOSE_TIMEOUT);
    assert_int_equal(w->v->n_people, 1);
    assert_int_equal(count(&w->o, VISIT_ENDED), 0);
}

static void test_waiting_timeout_alone_ends_empty(void **state)
{
    struct world *w = *state;

    assert_string_equal(join_as(w, "pat", "patient"), "p1");
    later(w, 900001);
    tick(w);
    assert_non_null(audit(&w->o, "participant.timeout"));
    /* Their link may still bring them back, for idle-timeout. */
    assert_null(find(&w->o, VISIT_ENDED, NULL));
    later(w, w->cfg.idle_timeout_s * 1000u);
    tick(w);
    assert_string_equal(find(&w->o, VISIT_ENDED, NULL)->reason, "empty");
}

static void test_idle_timeout(void **state)
{
    struct world *w = *state;

    admitted_pair(w);
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p1", &w->o);
    assert_int_equal(w->v->no_clinician_since_ms, T0_MS);
    /* The clinician's grace removes it on the way; the idle clock keeps running. */
    later(w, 300000);
    tick(w);
    assert_null(audit(&w->o, "session.ended"));
    later(w, 1);
    tick(w);
    assert_string_equal(audit(&w->o, "session.ended")->reason, "idle_timeout");
    assert_false(audit(&w->o, "session.ended")->has_by);
    assert_string_equal(msg_str(sent(&w->o, "p2", "ended"), "reason"), "idle_timeout");
    assert_string_equal(find(&w->o, VISIT_ENDED, NULL)->reason, "idle_timeout");
}

static void test_clinician_back_stops_idle_clock(void **state)
{
    struct world *w = *state;
    char secret[128];
    uint8_t hash[32];

    admitted_pair(w);
    visit_out_reset(&w->o);
    /* Another clinician joining stops the idle clock the first one started. */
    visit_disconnected(w->v, &w->env, "p1", &w->o);
    later(w, 1000);
    assert_string_equal(join_as(w, "dr2", "clinician"), "p3");
    assert_int_equal(w->v->no_clinician_since_ms, 0);
    resume_secret(&w->o, "p3", "welcome", secret, sizeof(secret));
    visit_resume_hash(secret, hash);
    assert_non_null(visit_by_resume(w->v, hash));
}

static void test_max_length(void **state)
{
    struct world *w = *state;

    admitted_pair(w);
    later(w, 3600000);
    tick(w);
    assert_null(find(&w->o, VISIT_ENDED, NULL));
    later(w, 1);
    tick(w);
    assert_string_equal(audit(&w->o, "session.ended")->reason, "max_length");
    assert_int_equal(count(&w->o, VISIT_REVOKE), 1);
    assert_string_equal(find(&w->o, VISIT_ENDED, NULL)->reason, "max_length");
}

static void test_resume_grace_expired(void **state)
{
    struct world *w = *state;
    const struct visit_action *a;

    admitted_pair(w);
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p2", &w->o);
    later(w, 60000);
    tick(w);
    assert_int_equal(w->o.n, 0);
    later(w, 1);
    tick(w);
    a = audit(&w->o, "participant.timeout");
    assert_string_equal(a->reason, "resume_grace_expired");
    assert_int_equal(count(&w->o, VISIT_REVOKE), 1);
    assert_string_equal(msg_str(sent(&w->o, "p1", "peer_left"), "reason"),
                        "resume_grace_expired");
    /* Nobody to tell or close on p2's side. */
    assert_int_equal(sent_count(&w->o, "p2"), 0);
    assert_int_equal(count(&w->o, VISIT_CLOSE), 0);
    assert_int_equal(w->v->n_people, 1);
}

static void test_token_expired(void **state)
{
    struct world *w = *state;
    const struct visit_action *a;

    admitted_pair(w);
    w->env.now_wall_ms += 7200 * 1000;
    tick(w);
    /* Both tokens had the same exp: both go, the last one empties the visit. */
    a = audit(&w->o, "participant.timeout");
    assert_string_equal(a->reason, "token_expired");
    assert_int_equal(count(&w->o, VISIT_CLOSE), 2);
    assert_string_equal(find(&w->o, VISIT_ENDED, NULL)->reason, "empty");
}

/* --- the stored record ----------------------------------------------------------------- */

/* A visit written and read back behaves as the original: the resume
 * secret still works, timers count from the same times. */
static void test_codec_round_trip(void **state)
{
    struct world *w = *state;
    struct visit *back = calloc(1, sizeof(*back));
    char secret[128];
    uint8_t hash[32];
    json_t *rec, *again;
    char *text;

    admitted_pair(w);
    assert_string_equal(join_as(w, "obs", "observer"), "p3");
    resume_secret(&w->o, "p3", "welcome", secret, sizeof(secret));
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p3", &w->o);
    w->v->pairs[0].have_creds = true;
    visit_offer_forwarded(&w->v->pairs[0], "p1");
    rec = visit_encode(w->v);
    assert_non_null(rec);
    text = json_dumps(rec, JSON_COMPACT);
    assert_null(strstr(text, secret));
    assert_int_equal(visit_decode(rec, back), 0);
    assert_string_equal(back->sid, "appt-1");
    assert_int_equal(back->n_people, 3);
    assert_int_equal(back->n_pairs, 1);
    assert_int_equal(back->admitted_ms, w->v->admitted_ms);
    assert_false(back->people[2].connected);
    assert_int_equal(back->people[2].gone_ms, w->v->people[2].gone_ms);
    assert_string_equal(back->pairs[0].relay_sid, "00112233aabbccdd-1");
    /* The outstanding offer is forgotten with its credentials. */
    assert_false(back->pairs[0].have_creds);
    assert_false(back->pairs[0].offer_from_a);
    assert_false(back->pairs[0].offer_from_b);
    visit_resume_hash(secret, hash);
    assert_non_null(visit_by_resume(back, hash));
    /* Encoding the decoded visit gives the same record. */
    again = visit_encode(back);
    assert_true(json_equal(rec, again));
    json_decref(again);
    json_decref(rec);
    free(text);
    free(back);
}

static void test_codec_refuses(void **state)
{
    static const char *const bad[] = {
        "[]",
        "{\"version\":2}",
        "{\"version\":1,\"sid\":\"a\"}",
    };
    struct world *w = *state;
    struct visit *back = calloc(1, sizeof(*back));
    char longsid[JWT_CLAIM_MAX + 8];
    json_t *rec, *p;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loads(bad[i], 0, NULL);

        assert_int_equal(visit_decode(j, back), -1);
        json_decref(j);
    }
    admitted_pair(w);
    /* Each change below spoils one field of a good record. */
    memset(longsid, 'x', sizeof(longsid) - 1);
    longsid[sizeof(longsid) - 1] = '\0';
    rec = visit_encode(w->v);
    json_object_set_new(rec, "sid", json_string(longsid));
    assert_int_equal(visit_decode(rec, back), -1);
    json_decref(rec);
    rec = visit_encode(w->v);
    p = json_array_get(json_object_get(rec, "people"), 1);
    json_object_set_new(p, "role", json_string("surgeon"));
    assert_int_equal(visit_decode(rec, back), -1);
    json_decref(rec);
    rec = visit_encode(w->v);
    p = json_array_get(json_object_get(rec, "people"), 1);
    json_object_set_new(p, "resume_hash", json_string("zz"));
    assert_int_equal(visit_decode(rec, back), -1);
    json_decref(rec);
    rec = visit_encode(w->v);
    p = json_array_get(json_object_get(rec, "people"), 1);
    json_object_set_new(p, "id", json_string("p1"));
    assert_int_equal(visit_decode(rec, back), -1);
    json_decref(rec);
    rec = visit_encode(w->v);
    p = json_array_get(json_object_get(rec, "pairs"), 0);
    json_object_set_new(p, "b", json_string("p9"));
    assert_int_equal(visit_decode(rec, back), -1);
    json_decref(rec);
    rec = visit_encode(w->v);
    json_object_set_new(rec, "admitted_ms", json_integer(-1));
    assert_int_equal(visit_decode(rec, back), -1);
    assert_int_equal(back->n_people, 0);
    json_decref(rec);
    free(back);
}

/* A visit read back by a new process: everyone is away as of now and the
 * resume grace counts from there; the idle clock starts for the clinician;
 * an outstanding offer is forgotten; the latest stored time is known. */
static void test_restored(void **state)
{
    struct world *w = *state;
    char secret[128];
    uint8_t hash[32];
    uint64_t latest;

    clinician_and_patient(w);
    resume_secret(&w->o, "p2", "welcome", secret, sizeof(secret));
    message(w, "p1", MSG_ADMIT, "p2");
    visit_out_reset(&w->o);
    w->v->pairs[0].have_creds = true;
    visit_offer_forwarded(&w->v->pairs[0], "p1");
    later(w, 3000);
    latest = visit_latest_ms(w->v);
    assert_true(latest <= w->env.now_ms);
    assert_int_equal(latest, w->v->pairs[0].created_ms > w->v->admitted_ms
                                 ? w->v->pairs[0].created_ms
                                 : w->v->admitted_ms);
    later(w, 10000);
    visit_restored(w->v, &w->env);
    assert_false(w->v->people[0].connected);
    assert_false(w->v->people[1].connected);
    assert_int_equal(w->v->people[1].gone_ms, w->env.now_ms);
    assert_int_equal(w->v->no_clinician_since_ms, w->env.now_ms);
    assert_false(w->v->pairs[0].offer_from_a);
    assert_false(w->v->pairs[0].offer_from_b);
    assert_false(w->v->pairs[0].have_creds);
    assert_int_equal(visit_latest_ms(w->v), w->env.now_ms);
    assert_int_equal(w->o.n, 0);
    /* Within the grace the secret resumes, still admitted. */
    later(w, 59000);
    visit_tick(w->v, &w->env, &w->o);
    assert_int_equal(w->o.n, 0);
    visit_resume_hash(secret, hash);
    assert_null(visit_resume(w->v, &w->env, visit_by_resume(w->v, hash), "198.51.100.9",
                             &w->o));
    assert_string_equal(msg_str(sent(&w->o, "p2", "resumed"), "state"), "admitted");
    visit_out_reset(&w->o);
    /* The clinician, not back, is dropped once the grace passes. */
    later(w, 1001);
    visit_tick(w->v, &w->env, &w->o);
    assert_non_null(audit(&w->o, "participant.timeout"));
    assert_null(visit_person(w->v, "p1"));
}

/* A resume secret names its visit: "KEY." (visit_key of the sid), then 32
 * random bytes; any replica can route it, and only its hash is kept. */
static void test_secret_names_its_visit(void **state)
{
    struct world *w = *state;
    char secret[128], key[VISIT_KEY_LEN], parsed[VISIT_KEY_LEN];

    clinician_and_patient(w);
    resume_secret(&w->o, "p2", "welcome", secret, sizeof(secret));
    visit_key("appt-1", key);
    assert_string_equal(w->v->key, key);
    assert_int_equal(strlen(key), 32);
    assert_memory_equal(secret, key, 32);
    assert_int_equal(secret[32], '.');
    assert_int_equal(strlen(secret), 32 + 1 + 44);
    assert_true(session_secret_key(secret, parsed));
    assert_string_equal(parsed, key);
    assert_null(strstr(secret + 33, key));
    /* Not a secret of ours: no key. */
    assert_false(session_secret_key("abc", parsed));
    assert_false(session_secret_key("0123456789abcdef0123456789abcdeX.zz", parsed));
    assert_false(session_secret_key("0123456789abcdef0123456789abcdef", parsed));
    assert_false(session_secret_key("0123456789abcdef0123456789abcdef-zz", parsed));
    /* Another visit, another key. */
    visit_key("appt-2", parsed);
    assert_string_not_equal(parsed, key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_disconnect_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_replaces_live_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_refused_token_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_timeout_alone_ends_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clinician_back_stops_idle_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_grace_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_codec_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_codec_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_names_its_visit, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
