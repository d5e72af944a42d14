/* The visit core and relays that fail: a pair moves off a relay that is
 * lost, draining or unknown; with nowhere to go it waits, and a waiting
 * pair takes a relay as soon as there is one. Every move revokes the old
 * relay session, names a new one, asks one browser for an ICE restart
 * (renegotiate) and is reported (VISIT_MOVED) for the audit log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "session_fixtures.h"

static void tick(struct world *w)
{
    visit_out_reset(&w->o);
    visit_tick(w->v, &w->env, &w->o);
}

static const struct visit_action *moved(const struct world *w)
{
    return find(&w->o, VISIT_MOVED, NULL);
}

/* An offer from `from` is taken (for the caller to rewrite), or refused
 * with no_relay_available. */
static void assert_offer(struct world *w, const char *from, const char *to, bool taken)
{
    message(w, from, MSG_OFFER, to);
    if (taken) {
        assert_int_equal(w->o.media, MSG_OFFER);
        assert_non_null(w->o.pair);
    } else {
        assert_int_equal(w->o.media, MSG_TYPE_COUNT);
        assert_refused(&w->o, from, "no_relay_available", "to");
    }
}

static void test_relay_that_stays_keeps_its_pairs(void **state)
{
    struct world *w = *state;

    admitted_pair(w);
    w->next_relay = 1;
    for (int i = 0; i < 3; i++) {
        later(w, 250);
        tick(w);
        assert_int_equal(w->o.n, 0);
    }
    assert_int_equal(w->v->pairs[0].relay, 0);
    assert_string_equal(w->v->pairs[0].relay_sid, "00112233aabbccdd-1");
}

static void test_lost_relay_moves_the_pair(void **state)
{
    struct world *w = *state;
    const struct visit_action *a;
    json_t *m;

    admitted_pair(w);
    w->v->pairs[0].have_creds = true;
    visit_offer_forwarded(&w->v->pairs[0], "p1");
    w->leaving[0] = "relay_lost";
    w->next_relay = 1;
    tick(w);
    /* The old session is revoked where it was (the relay hears it when it
     * comes back), then the move is reported. */
    a = find(&w->o, VISIT_REVOKE, NULL);
    assert_non_null(a);
    assert_int_equal(a->relay, 0);
    assert_string_equal(a->relay_sid, "00112233aabbccdd-1");
    a = moved(w);
    assert_non_null(a);
    assert_int_equal(a->relay, 0);
    assert_int_equal(a->relay_to, 1);
    assert_string_equal(a->reason, "relay_lost");
    assert_string_equal(a->pair_a, "p1");
    assert_string_equal(a->pair_b, "p2");
    assert_int_equal(w->v->pairs[0].relay, 1);
    assert_string_equal(w->v->pairs[0].relay_sid, "00112233aabbccdd-2");
    /* The offer in flight was for the old relay: gone, with its creds. */
    assert_false(w->v->pairs[0].have_creds);
    assert_false(visit_pair_offer_pending(&w->v->pairs[0], "p1"));
    /* The first offerer restarts ICE; the other is not asked (no glare). */
    m = sent(&w->o, "p1", "renegotiate");
    assert_non_null(m);
    assert_string_equal(msg_str(m, "participant"), "p2");
    assert_string_equal(msg_str(m, "reason"), "relay_lost");
    assert_null(sent(&w->o, "p2", "renegotiate"));
    /* Once moved, it stays: the relay it left no longer matters. */
    tick(w);
    assert_int_equal(w->o.n, 0);
    assert_offer(w, "p1", "p2", true);
}

static void test_unknown_and_draining_relays_are_left(void **state)
{
    struct world *w = *state;

    admitted_pair(w);
    w->v->pairs[0].relay = 7;   /* a record another configuration wrote */
    w->next_relay = 2;
    tick(w);
    assert_non_null(moved(w));
    assert_string_equal(moved(w)->reason, "relay_unknown");
    assert_int_equal(moved(w)->relay, 7);
    assert_int_equal(w->v->pairs[0].relay, 2);
    w->leaving[2] = "relay_draining";
    w->next_relay = 0;
    tick(w);
    assert_string_equal(moved(w)->reason, "relay_draining");
    assert_int_equal(w->v->pairs[0].relay, 0);
    assert_string_equal(msg_str(sent(&w->o, "p1", "renegotiate"), "reason"), "relay_draining");
}

/* The first offerer has gone (it will restart ICE when it resumes): the
 * other side is asked; with neither here, nobody is, and the pair moves
 * anyway. */
static void test_renegotiate_goes_to_whoever_is_here(void **state)
{
    struct world *w = *state;

    admitted_pair(w);
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p1", &w->o);
    w->leaving[0] = "relay_lost";
    w->next_relay = 1;
    tick(w);
    assert_non_null(moved(w));
    assert_null(sent(&w->o, "p1", "renegotiate"));
    assert_string_equal(msg_str(sent(&w->o, "p2", "renegotiate"), "participant"), "p1");
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p2", &w->o);
    w->leaving[1] = "relay_lost";
    w->next_relay = 0;
    tick(w);
    assert_non_null(moved(w));
    assert_int_equal(w->v->pairs[0].relay, 0);
    assert_int_equal(count(&w->o, VISIT_SEND), 0);
}

/* Nowhere to go: the pair waits (both told), offers are refused as
 * transient, and the first relay that is ready takes it. */
static void test_pair_waits_then_takes_a_relay(void **state)
{
    struct world *w = *state;
    const struct visit_action *a;

    admitted_pair(w);
    w->leaving[0] = "relay_lost";
    w->next_relay = -1;
    tick(w);
    assert_non_null(find(&w->o, VISIT_REVOKE, NULL));
    a = moved(w);
    assert_int_equal(a->relay, 0);
    assert_int_equal(a->relay_to, -1);
    assert_int_equal(w->v->pairs[0].relay, -1);
    assert_string_equal(msg_str(sent(&w->o, "p1", "relay_wait"), "participant"), "p2");
    assert_string_equal(msg_str(sent(&w->o, "p2", "relay_wait"), "participant"), "p1");
    assert_null(sent(&w->o, "p1", "renegotiate"));
    /* Waiting is quiet: no action until a relay is there. */
    for (int i = 0; i < 4; i++) {
        later(w, 250);
        tick(w);
        assert_int_equal(w->o.n, 0);
    }
    assert_offer(w, "p2", "p1", false);
    /* The lost relay itself may be the one that comes back. */
    w->leaving[0] = NULL;
    w->next_relay = 0;
    tick(w);
    a = moved(w);
    assert_int_equal(a->relay, -1);
    assert_int_equal(a->relay_to, 0);
    assert_string_equal(a->reason, "relay_available");
    assert_int_equal(count(&w->o, VISIT_REVOKE), 0);
    assert_string_equal(w->v->pairs[0].relay_sid, "00112233aabbccdd-3");
    assert_string_equal(msg_str(sent(&w->o, "p1", "renegotiate"), "participant"), "p2");
    assert_offer(w, "p1", "p2", true);
}

/* Ending a waiting pair revokes nothing: it has no relay session. */
static void test_waiting_pair_ends_without_revoke(void **state)
{
    struct world *w = *state;

    clinician_and_patient(w);
    w->next_relay = -1;
    message(w, "p1", MSG_ADMIT, "p2");
    message(w, "p1", MSG_REMOVE, "p2");
    assert_int_equal(w->v->n_pairs, 0);
    assert_int_equal(count(&w->o, VISIT_REVOKE), 0);
}

/* A page that reloads while its pair waits hears that it waits. */
static void test_resume_names_waiting_pairs(void **state)
{
    struct world *w = *state;
    char secret[160];
    json_t *peers;
    uint8_t hash[32];

    clinician_and_patient(w);
    resume_secret(&w->o, "p2", "welcome", secret, sizeof(secret));
    w->next_relay = -1;
    message(w, "p1", MSG_ADMIT, "p2");
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p2", &w->o);
    visit_out_reset(&w->o);
    visit_resume_hash(secret, hash);
    assert_null(visit_resume(w->v, &w->env, visit_by_resume(w->v, hash), "192.0.2.7", &w->o));
    peers = json_object_get(sent(&w->o, "p2", "peers"), "peers");
    assert_int_equal(json_array_size(peers), 1);
    assert_true(json_is_true(json_object_get(json_array_get(peers, 0), "waiting_for_relay")));
}

/* A stored waiting pair (relay -1) reads back as one; -2 does not. */
static void test_codec_keeps_a_waiting_pair(void **state)
{
    struct world *w = *state;
    struct visit back;
    json_t *j, *pairs;

    clinician_and_patient(w);
    w->next_relay = -1;
    message(w, "p1", MSG_ADMIT, "p2");
    j = visit_encode(w->v);
    assert_non_null(j);
    assert_int_equal(visit_decode(j, &back), 0);
    assert_int_equal(back.n_pairs, 1);
    assert_int_equal(back.pairs[0].relay, -1);
    pairs = json_object_get(j, "pairs");
    json_object_set_new(json_array_get(pairs, 0), "relay", json_integer(-2));
    assert_int_not_equal(visit_decode(j, &back), 0);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_relay_that_stays_keeps_its_pairs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_relay_moves_the_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_draining_relays_are_left, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_renegotiate_goes_to_whoever_is_here, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pair_waits_then_takes_a_relay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_pair_ends_without_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_names_waiting_pairs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_codec_keeps_a_waiting_pair, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
