/* The visit core alone, in one process, with time passed in: every event
 * is a call, and every assertion is on the actions it returns (who is sent
 * which message, which connections close, which relay sessions are revoked,
 * which audit records are written) or on the state it leaves.
 * This file: authentication, the waiting room and the clinician's
 * controls, media decisions, every refusal; test_session_resume.c has
 * connections and resume, the timers and the stored record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "session_fixtures.h"

/* --- authentication ------------------------------------------------------------- */

static void test_auth_clinician(void **state)
{
    struct world *w = *state;
    json_t *welcome, *lobby;
    const struct visit_action *a;

    assert_string_equal(join_as(w, "dr", "clinician"), "p1");
    a = audit(&w->o, "auth.success");
    assert_non_null(a);
    assert_string_equal(a->method, "token");
    assert_string_equal(a->person.sub, "dr");
    assert_string_equal(a->person.addr, "192.0.2.1");
    welcome = sent(&w->o, "p1", "welcome");
    assert_non_null(welcome);
    assert_string_equal(msg_str(welcome, "role"), "clinician");
    assert_string_equal(msg_str(welcome, "state"), "admitted");
    assert_int_equal(json_integer_value(json_object_get(welcome, "resume_grace_s")), 60);
    assert_int_equal(json_integer_value(json_object_get(welcome, "max_session_s")), 3600);
    a = audit(&w->o, "participant.admitted");
    assert_non_null(a);
    assert_false(a->has_by);
    /* Nobody admitted the clinician: no "admitted" message. */
    assert_null(sent(&w->o, "p1", "admitted"));
    lobby = sent(&w->o, "p1", "lobby");
    assert_non_null(lobby);
    assert_int_equal(json_array_size(json_object_get(lobby, "present")), 1);
    assert_int_equal(json_array_size(json_object_get(lobby, "waiting")), 0);
    assert_int_equal(w->v->admitted_ms, T0_MS);
    assert_int_equal(w->v->created_wall_ms, WALL0_MS);
    assert_true(w->v->people[0].connected);
}

static void test_auth_roles_wait(void **state)
{
    static const char *const roles[] = {"patient", "interpreter", "observer"};
    struct world *w = *state;

    assert_string_equal(join_as(w, "dr", "clinician"), "p1");
    for (unsigned i = 0; i < 3; i++) {
        char sub[16], id[VISIT_ID_LEN];
        json_t *welcome, *lobby;
        const struct visit_action *a;

        snprintf(sub, sizeof(sub), "u%u", i);
        snprintf(id, sizeof(id), "p%u", i + 2);
        assert_string_equal(join_as(w, sub, roles[i]), id);
        welcome = sent(&w->o, id, "welcome");
        assert_string_equal(msg_str(welcome, "role"), roles[i]);
        assert_string_equal(msg_str(welcome, "state"), "waiting");
        a = audit(&w->o, "participant.waiting");
        assert_non_null(a);
        assert_string_equal(a->person.id, id);
        assert_null(audit(&w->o, "participant.admitted"));
        /* The clinician sees the waiting room grow; the new person gets no lobby. */
        lobby = sent(&w->o, "p1", "lobby");
        assert_int_equal(json_array_size(json_object_get(lobby, "waiting")), i + 1);
        assert_null(sent(&w->o, id, "lobby"));
        assert_int_equal(w->v->n_pairs, 0);
    }
}

static void test_auth_seat_limit(void **state)
{
    struct world *w = *state;

    w->cfg.max_participants = 2;
    clinician_and_patient(w);
    assert_string_equal(join_as(w, "third", "observer"), "session_full");
    assert_int_equal(w->o.n, 0);
    assert_int_equal(w->v->n_people, 2);
}

/* The same sub twice (two devices) is two participants: single use is the
 * token's jti, checked before the core. */
static void test_auth_duplicate_sub(void **state)
{
    struct world *w = *state;

    assert_string_equal(join_as(w, "pat", "patient"), "p1");
    assert_string_equal(join_as(w, "pat", "patient"), "p2");
    assert_int_equal(w->v->n_people, 2);
}

static void test_part2_marks_visit(void **state)
{
    struct world *w = *state;
    struct jwt_claims cl = {.exp = (int64_t)(WALL0_MS / 1000) + 600, .part2 = true};

    snprintf(cl.sub, sizeof(cl.sub), "dr");
    assert_null(visit_join(w->v, &w->env, &cl, ROLE_CLINICIAN, "0a", "192.0.2.9", &w->o));
    assert_true(w->v->part2);
}

/* --- waiting room and clinician controls --------------------------------------------- */

static void test_admit(void **state)
{
    struct world *w = *state;
    const struct visit_action *a;
    json_t *peer;

    clinician_and_patient(w);
    message(w, "p1", MSG_ADMIT, "p2");
    a = audit(&w->o, "participant.admitted");
    assert_non_null(a);
    assert_string_equal(a->person.id, "p2");
    assert_true(a->has_by);
    assert_string_equal(a->by_sub, "dr");
    assert_int_equal(a->by_role, ROLE_CLINICIAN);
    assert_non_null(sent(&w->o, "p2", "admitted"));
    /* The one already in makes the first offer. */
    peer = sent(&w->o, "p1", "peer");
    assert_string_equal(msg_str(peer, "participant"), "p2");
    assert_true(json_is_true(json_object_get(peer, "initiator")));
    peer = sent(&w->o, "p2", "peer");
    assert_string_equal(msg_str(peer, "participant"), "p1");
    assert_true(json_is_false(json_object_get(peer, "initiator")));
    assert_int_equal(w->v->n_pairs, 1);
    assert_string_equal(w->v->pairs[0].a, "p1");
    assert_string_equal(w->v->pairs[0].b, "p2");
    assert_string_equal(w->v->pairs[0].relay_sid, "00112233aabbccdd-1");
    assert_int_equal(w->v->pairs[0].relay, 0);
    assert_non_null(sent(&w->o, "p1", "lobby"));
    assert_int_equal(count(&w->o, VISIT_REVOKE), 0);
}

/* No relay: the two still meet (never "nobody else is in the call"), and
 * their pair waits for a relay (test_visit_relay.c goes on from here). */
static void test_admit_no_relay(void **state)
{
    struct world *w = *state;
    json_t *peer;

    clinician_and_patient(w);
    w->next_relay = -1;
    message(w, "p1", MSG_ADMIT, "p2");
    assert_int_equal(w->relay_picks, 1);
    assert_int_equal(w->v->n_pairs, 1);
    assert_int_equal(w->v->pairs[0].relay, -1);
    assert_null(sent(&w->o, "p1", "error"));
    peer = sent(&w->o, "p1", "peer");
    assert_non_null(peer);
    assert_true(json_is_true(json_object_get(peer, "waiting_for_relay")));
    peer = sent(&w->o, "p2", "peer");
    assert_true(json_is_true(json_object_get(peer, "waiting_for_relay")));
    assert_int_equal(visit_person(w->v, "p2")->state, P_ADMITTED);
    assert_int_equal(count(&w->o, VISIT_REVOKE), 0);
}

static void test_three_admitted_three_pairs(void **state)
{
    struct world *w = *state;

    clinician_and_patient(w);
    assert_string_equal(join_as(w, "int", "interpreter"), "p3");
    message(w, "p1", MSG_ADMIT, "p2");
    w->next_relay = 1;
    message(w, "p1", MSG_ADMIT, "p3");
    assert_int_equal(w->v->n_pairs, 3);
    assert_int_equal(w->v->pairs[2].relay, 1);
    assert_int_equal(json_is_true(json_object_get(sent(&w->o, "p2", "peer"), "initiator")), 1);
}

static void test_decline(void **state)
{
    struct world *w = *state;
    const struct visit_action *a;
    json_t *m;

    clinician_and_patient(w);
    message(w, "p1", MSG_DECLINE, "p2");
    a = audit(&w->o, "participant.declined");
    assert_non_null(a);
    assert_string_equal(a->by_sub, "dr");
    m = sent(&w->o, "p2", "declined");
    assert_string_equal(msg_str(m, "reason"), "declined_by_clinician");
    a = find(&w->o, VISIT_CLOSE, "p2");
    assert_int_equal(a->close_code, VISIT_CLOSE_FORBIDDEN);
    assert_string_equal(a->reason, "declined_by_clinician");
    assert_int_equal(w->v->n_people, 1);
    m = sent(&w->o, "p1", "lobby");
    assert_int_equal(json_array_size(json_object_get(m, "waiting")), 0);
    assert_int_equal(count(&w->o, VISIT_ENDED), 0);
}

static void test_remove(void **state)
{
    struct world *w = *state;
    const struct visit_action *a;
    json_t *m;

    admitted_pair(w);
    message(w, "p1", MSG_REMOVE, "p2");
    a = audit(&w->o, "participant.removed");
    assert_string_equal(a->reason, "removed_by_clinician");
    assert_string_equal(a->by_sub, "dr");
    a = find(&w->o, VISIT_REVOKE, NULL);
    assert_non_null(a);
    assert_string_equal(a->relay_sid, "00112233aabbccdd-1");
    assert_int_equal(a->relay, 0);
    m = sent(&w->o, "p1", "peer_left");
    assert_string_equal(msg_str(m, "participant"), "p2");
    assert_string_equal(msg_str(m, "reason"), "removed_by_clinician");
    assert_non_null(sent(&w->o, "p2", "removed"));
    assert_int_equal(find(&w->o, VISIT_CLOSE, "p2")->close_code, VISIT_CLOSE_FORBIDDEN);
    assert_int_equal(w->v->n_pairs, 0);
    assert_int_equal(w->v->n_people, 1);
}

/* The last one out leaves the visit open for idle-timeout, for their link
 * to bring them back; then it ends. */
static void test_leave_last_ends_empty(void **state)
{
    struct world *w = *state;
    const struct visit_action *a;

    assert_string_equal(join_as(w, "dr", "clinician"), "p1");
    message(w, "p1", MSG_LEAVE, NULL);
    assert_non_null(audit(&w->o, "participant.left"));
    assert_non_null(sent(&w->o, "p1", "left"));
    assert_int_equal(find(&w->o, VISIT_CLOSE, "p1")->close_code, VISIT_CLOSE_NORMAL);
    assert_null(find(&w->o, VISIT_ENDED, NULL));
    later(w, w->cfg.idle_timeout_s * 1000u - 1);
    visit_out_reset(&w->o);
    visit_tick(w->v, &w->env, &w->o);
    assert_null(find(&w->o, VISIT_ENDED, NULL));
    later(w, 1);
    visit_out_reset(&w->o);
    visit_tick(w->v, &w->env, &w->o);
    a = find(&w->o, VISIT_ENDED, NULL);
    assert_non_null(a);
    assert_string_equal(a->reason, "empty");
    /* An emptied visit is not "ended" in the audit log. */
    assert_null(audit(&w->o, "session.ended"));
    assert_true(w->v->ended);
}

static void test_leave_starts_idle_clock(void **state)
{
    struct world *w = *state;

    admitted_pair(w);
    later(w, 1000);
    message(w, "p1", MSG_LEAVE, NULL);
    assert_non_null(sent(&w->o, "p2", "peer_left"));
    assert_int_equal(count(&w->o, VISIT_REVOKE), 1);
    assert_int_equal(count(&w->o, VISIT_ENDED), 0);
    assert_int_equal(w->v->no_clinician_since_ms, T0_MS + 1000);
}

static void test_end(void **state)
{
    struct world *w = *state;
    const struct visit_action *a;

    admitted_pair(w);
    assert_string_equal(join_as(w, "obs", "observer"), "p3");
    later(w, 60000);
    message(w, "p1", MSG_END, NULL);
    a = audit(&w->o, "session.ended");
    assert_non_null(a);
    assert_string_equal(a->reason, "ended_by_clinician");
    assert_true(a->has_by);
    assert_string_equal(a->by_sub, "dr");
    assert_int_equal(a->n_people, 3);
    assert_int_equal(a->start_wall_ms, WALL0_MS);
    assert_int_equal(a->end_wall_ms, WALL0_MS + 60000);
    assert_int_equal(w->o.a[0].kind, VISIT_AUDIT);
    assert_int_equal(count(&w->o, VISIT_REVOKE), 1);
    for (unsigned i = 1; i <= 3; i++) {
        char id[VISIT_ID_LEN];

        snprintf(id, sizeof(id), "p%u", i);
        assert_string_equal(msg_str(sent(&w->o, id, "ended"), "reason"), "ended_by_clinician");
        assert_int_equal(find(&w->o, VISIT_CLOSE, id)->close_code, VISIT_CLOSE_ENDED);
    }
    a = &w->o.a[w->o.n - 1];
    assert_int_equal(a->kind, VISIT_ENDED);
    assert_string_equal(a->reason, "ended_by_clinician");
    assert_int_equal(w->v->n_people, 0);
    /* A visit that is over ignores timers. */
    visit_out_reset(&w->o);
    later(w, 10000000);
    visit_tick(w->v, &w->env, &w->o);
    assert_int_equal(w->o.n, 0);
}

/* --- media decisions ------------------------------------------------------------------ */

static void test_offer_answer(void **state)
{
    struct world *w = *state;
    struct visit_pair *pr;

    admitted_pair(w);
    pr = &w->v->pairs[0];
    message(w, "p1", MSG_OFFER, "p2");
    assert_int_equal(w->o.n, 0);
    assert_int_equal(w->o.media, MSG_OFFER);
    assert_ptr_equal(w->o.pair, pr);
    assert_string_equal(w->o.peer, "p2");
    /* The caller derived credentials and forwarded it. */
    pr->have_creds = true;
    visit_offer_forwarded(pr, "p1");
    /* The offerer cannot answer its own offer. */
    message(w, "p1", MSG_ANSWER, "p2");
    assert_refused(&w->o, "p1", "unexpected_answer", "to");
    later(w, 1500);
    message(w, "p2", MSG_ANSWER, "p1");
    assert_int_equal(w->o.media, MSG_ANSWER);
    assert_string_equal(w->o.peer, "p1");
    assert_int_equal(visit_answer_forwarded(pr, "p2", &w->env), 1500);
    assert_false(visit_pair_offer_pending(pr, "p1"));
    /* Only the first answer is timed; a second answer has no offer. */
    message(w, "p2", MSG_ANSWER, "p1");
    assert_refused(&w->o, "p2", "unexpected_answer", "to");
    message(w, "p2", MSG_OFFER, "p1");
    pr->have_creds = true;
    visit_offer_forwarded(pr, "p2");
    message(w, "p1", MSG_ANSWER, "p2");
    assert_int_equal(w->o.media, MSG_ANSWER);
    assert_int_equal(visit_answer_forwarded(pr, "p1", &w->env), -1);
}

/* Both offer at once (a page reloaded, or both restarted ICE): the browsers
 * settle the glare (the polite one drops its offer and answers), so the
 * answer to either offer passes, and the one left unanswered stays
 * answerable until the other side answers it or a new pair is made. */
static void test_offer_glare(void **state)
{
    struct world *w = *state;
    struct visit_pair *pr;

    admitted_pair(w);
    pr = &w->v->pairs[0];
    message(w, "p1", MSG_OFFER, "p2");
    pr->have_creds = true;
    visit_offer_forwarded(pr, "p1");
    message(w, "p2", MSG_OFFER, "p1");
    assert_int_equal(w->o.media, MSG_OFFER);
    visit_offer_forwarded(pr, "p2");
    /* p2 (polite) answers p1's offer. */
    message(w, "p2", MSG_ANSWER, "p1");
    assert_int_equal(w->o.media, MSG_ANSWER);
    assert_string_equal(w->o.peer, "p1");
    visit_answer_forwarded(pr, "p2", &w->env);
    assert_false(visit_pair_offer_pending(pr, "p1"));
    assert_true(visit_pair_offer_pending(pr, "p2"));
    /* A second answer to the settled offer has nothing to answer. */
    message(w, "p2", MSG_ANSWER, "p1");
    assert_refused(&w->o, "p2", "unexpected_answer", "to");
    /* Nobody else's offer counts: a stranger is not in the pair. */
    assert_false(visit_pair_offer_pending(pr, "p3"));
}

static void test_candidate_and_ping(void **state)
{
    struct world *w = *state;

    admitted_pair(w);
    message(w, "p2", MSG_CANDIDATE, NULL);
    assert_int_equal(w->o.n, 0);
    assert_int_equal(w->o.media, MSG_CANDIDATE);
    message(w, "p2", MSG_PING, NULL);
    assert_int_equal(w->o.n, 1);
    assert_non_null(sent(&w->o, "p2", "pong"));
}

/* --- every refusal the core decides --------------------------------------------------- */

static void test_refusals(void **state)
{
    struct world *w = *state;

    clinician_and_patient(w);
    assert_string_equal(join_as(w, "obs", "observer"), "p3");
    message(w, "p2", MSG_ADMIT, "p3");
    assert_refused(&w->o, "p2", "not_allowed", NULL);
    message(w, "p2", MSG_END, NULL);
    assert_refused(&w->o, "p2", "not_allowed", NULL);
    message(w, "p2", MSG_OFFER, "p1");
    assert_refused(&w->o, "p2", "not_admitted", NULL);
    message(w, "p2", MSG_CANDIDATE, NULL);
    assert_refused(&w->o, "p2", "not_admitted", NULL);
    message(w, "p1", MSG_ADMIT, "p9");
    assert_refused(&w->o, "p1", "unknown_participant", "participant");
    message(w, "p1", MSG_REMOVE, "p1");
    assert_refused(&w->o, "p1", "unknown_participant", "participant");
    message(w, "p1", MSG_ADMIT, "p2");
    message(w, "p1", MSG_ADMIT, "p2");
    assert_refused(&w->o, "p1", "not_waiting", NULL);
    message(w, "p1", MSG_DECLINE, "p2");
    assert_refused(&w->o, "p1", "not_waiting", NULL);
    message(w, "p1", MSG_AUTH, NULL);
    assert_refused(&w->o, "p1", "already_authenticated", NULL);
    message(w, "p2", MSG_RESUME, NULL);
    assert_refused(&w->o, "p2", "already_authenticated", NULL);
    /* p3 waits: no media link with it. */
    message(w, "p1", MSG_OFFER, "p3");
    assert_refused(&w->o, "p1", "unknown_peer", "to");
    message(w, "p1", MSG_OFFER, "nobody");
    assert_refused(&w->o, "p1", "unknown_peer", "to");
    message(w, "p2", MSG_ANSWER, "p1");
    assert_refused(&w->o, "p2", "unexpected_answer", "to");
    /* A waiting person may still ping and leave. */
    message(w, "p3", MSG_PING, NULL);
    assert_non_null(sent(&w->o, "p3", "pong"));
    assert_int_equal(w->v->n_people, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth_clinician, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_roles_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_seat_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_duplicate_sub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_part2_marks_visit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admit_no_relay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_three_admitted_three_pairs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leave_last_ends_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leave_starts_idle_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offer_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offer_glare, setup, teardown),
        cmocka_unit_test_setup_teardown(test_candidate_and_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
