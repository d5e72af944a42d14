/* The visit core alone, continued: seats (a link used again by its own
 * person), the waiting room's messages and admit-all, the room message,
 * and the connection check's relay session. Every refusal of a seat is
 * here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "session_fixtures.h"

/* p1 clinician, p2 patient admitted; p2's token's claim key in claim. */
static void admitted_with_claim(struct world *w, char claim[VISIT_CLAIM_LEN])
{
    assert_string_equal(join_as(w, "dr", "clinician"), "p1");
    assert_string_equal(join_as(w, "pat", "patient"), "p2");
    snprintf(claim, VISIT_CLAIM_LEN, "%s", w->claim);
    message(w, "p1", MSG_ADMIT, "p2");
}

static void custom(struct world *w, const char *from, struct msg *m)
{
    visit_out_reset(&w->o);
    visit_message(w->v, &w->env, from, m, &w->o);
}

static const json_t *lobby_entry(const json_t *lobby, const char *list, const char *id)
{
    const json_t *e;
    size_t i;

    json_array_foreach(json_object_get(lobby, list), i, e) {
        if (strcmp(msg_str(e, "participant"), id) == 0)
            return e;
    }
    return NULL;
}

/* --- seats ---------------------------------------------------------------------- */

static void test_rejoin_replaces_live_connection(void **state)
{
    struct world *w = *state;
    char claim[VISIT_CLAIM_LEN];
    json_t *welcome, *status;

    admitted_with_claim(w, claim);
    assert_string_equal(join_with(w, "pat", "patient", claim), "p2");
    assert_true(w->o.seat_taken_back);
    /* The old tab is told why, closed, and only then the new one attached. */
    assert_int_equal(w->o.a[0].kind, VISIT_SEND);
    assert_string_equal(w->o.a[0].who, "p2");
    assert_string_equal(msg_str(w->o.a[0].msg, "type"), "replaced");
    assert_int_equal(w->o.a[1].kind, VISIT_CLOSE);
    assert_string_equal(w->o.a[1].reason, "replaced");
    assert_int_equal(w->o.a[2].kind, VISIT_ATTACH);
    welcome = sent(&w->o, "p2", "welcome");
    assert_non_null(welcome);
    assert_string_equal(msg_str(welcome, "state"), "admitted");
    assert_true(json_is_true(json_object_get(welcome, "rejoined")));
    assert_non_null(sent(&w->o, "p2", "peers"));
    status = sent(&w->o, "p1", "peer_status");
    assert_non_null(status);
    assert_true(json_is_true(json_object_get(status, "rejoined")));
    assert_string_equal(audit(&w->o, "auth.success")->method, "token");
    assert_non_null(audit(&w->o, "participant.rejoined"));
    /* The same seat: no new person, and the media link kept. */
    assert_int_equal(w->v->n_people, 2);
    assert_int_equal(w->v->n_seats, 2);
    assert_int_equal(w->v->n_pairs, 1);
    assert_true(json_is_true(json_object_get(lobby_entry(sent(&w->o, "p1", "lobby"), "present",
                                                         "p2"),
                                             "rejoined")));
}

static void test_one_token_one_person(void **state)
{
    struct world *w = *state;
    char claim[VISIT_CLAIM_LEN];
    unsigned connected = 0;

    admitted_with_claim(w, claim);
    for (int i = 0; i < 3; i++)
        assert_string_equal(join_with(w, "pat", "patient", claim), "p2");
    for (unsigned i = 0; i < w->v->n_people; i++)
        connected += strcmp(w->v->people[i].id, "p2") == 0 && w->v->people[i].connected;
    assert_int_equal(w->v->n_people, 2);
    assert_int_equal(connected, 1);
    assert_int_equal(count(&w->o, VISIT_CLOSE), 1);
}

static void test_rejoin_after_drop_within_grace(void **state)
{
    struct world *w = *state;
    char claim[VISIT_CLAIM_LEN];

    admitted_with_claim(w, claim);
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p2", &w->o);
    later(w, 30000);
    assert_string_equal(join_with(w, "pat", "patient", claim), "p2");
    /* Nothing to replace: the tab was closed. */
    assert_int_equal(count(&w->o, VISIT_CLOSE), 0);
    assert_string_equal(msg_str(sent(&w->o, "p2", "welcome"), "state"), "admitted");
}

static void test_left_rejoins_call_within_grace(void **state)
{
    struct world *w = *state;
    char claim[VISIT_CLAIM_LEN];
    const struct visit_action *a;

    admitted_with_claim(w, claim);
    message(w, "p2", MSG_LEAVE, NULL);
    assert_int_equal(w->v->n_people, 1);
    assert_int_equal(w->v->n_pairs, 0);
    later(w, 20000);
    assert_string_equal(join_with(w, "pat", "patient", claim), "p2");
    assert_true(w->o.seat_taken_back);
    assert_string_equal(msg_str(sent(&w->o, "p2", "welcome"), "state"), "admitted");
    /* Back into the call by the rule, not by anyone. */
    a = audit(&w->o, "participant.admitted");
    assert_non_null(a);
    assert_false(a->has_by);
    assert_non_null(audit(&w->o, "participant.rejoined"));
    assert_non_null(sent(&w->o, "p1", "peer"));
    assert_non_null(sent(&w->o, "p2", "peer"));
    assert_int_equal(w->v->n_pairs, 1);
}

static void test_left_rejoins_waiting_after_grace(void **state)
{
    struct world *w = *state;
    char claim[VISIT_CLAIM_LEN];
    const json_t *entry;

    admitted_with_claim(w, claim);
    message(w, "p2", MSG_LEAVE, NULL);
    later(w, 61000);
    assert_string_equal(join_with(w, "pat", "patient", claim), "p2");
    assert_string_equal(msg_str(sent(&w->o, "p2", "welcome"), "state"), "waiting");
    assert_non_null(audit(&w->o, "participant.waiting"));
    assert_null(sent(&w->o, "p1", "peer"));
    entry = lobby_entry(sent(&w->o, "p1", "lobby"), "waiting", "p2");
    assert_non_null(entry);
    assert_true(json_is_true(json_object_get(entry, "rejoined")));
}

/* A closed tab whose grace ran out left when the connection dropped: by
 * the time the grace is over, it is too late to come straight back in. */
static void test_grace_expired_rejoins_waiting(void **state)
{
    struct world *w = *state;
    char claim[VISIT_CLAIM_LEN];

    admitted_with_claim(w, claim);
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p2", &w->o);
    later(w, 61000);
    visit_out_reset(&w->o);
    visit_tick(w->v, &w->env, &w->o);
    assert_null(visit_person(w->v, "p2"));
    assert_string_equal(join_with(w, "pat", "patient", claim), "p2");
    assert_string_equal(msg_str(sent(&w->o, "p2", "welcome"), "state"), "waiting");
}

static void test_clinician_rejoins_call(void **state)
{
    struct world *w = *state;
    char dr[VISIT_CLAIM_LEN];
    json_t *room;

    assert_string_equal(join_as(w, "dr", "clinician"), "p1");
    snprintf(dr, sizeof(dr), "%s", w->claim);
    assert_string_equal(join_as(w, "pat", "patient"), "p2");
    message(w, "p1", MSG_ADMIT, "p2");
    message(w, "p1", MSG_LEAVE, NULL);
    /* The patient is told the clinician left. */
    room = sent(&w->o, "p2", "room");
    assert_non_null(room);
    assert_int_equal(json_array_size(json_object_get(room, "clinicians")), 0);
    later(w, 120000);
    assert_string_equal(join_with(w, "dr", "clinician", dr), "p1");
    assert_string_equal(msg_str(sent(&w->o, "p1", "welcome"), "state"), "admitted");
    assert_non_null(sent(&w->o, "p1", "peer"));
    room = sent(&w->o, "p2", "room");
    assert_non_null(room);
    assert_int_equal(json_array_size(json_object_get(room, "clinicians")), 1);
}

static void test_removed_and_declined_stay_refused(void **state)
{
    struct world *w = *state;
    char removed[VISIT_CLAIM_LEN], declined[VISIT_CLAIM_LEN];

    admitted_with_claim(w, removed);
    assert_string_equal(join_as(w, "pat2", "patient"), "p3");
    snprintf(declined, sizeof(declined), "%s", w->claim);
    message(w, "p1", MSG_REMOVE, "p2");
    message(w, "p1", MSG_DECLINE, "p3");
    later(w, 5000);
    assert_string_equal(join_with(w, "pat", "patient", removed), "removed_by_clinician");
    assert_int_equal(w->o.n, 0);
    assert_string_equal(join_with(w, "pat2", "patient", declined), "declined_by_clinician");
    assert_int_equal(w->o.n, 0);
    assert_int_equal(w->v->n_people, 1);
}

/* A seat is bound to its sub and role: the same claim key (a jti an EHR
 * reused) in someone else's token never takes it. */
static void test_other_person_never_takes_seat(void **state)
{
    struct world *w = *state;
    char claim[VISIT_CLAIM_LEN];

    admitted_with_claim(w, claim);
    assert_string_equal(join_with(w, "intruder", "patient", claim), "token_replayed");
    assert_int_equal(w->o.n, 0);
    assert_string_equal(join_with(w, "pat", "observer", claim), "token_replayed");
    assert_true(w->v->people[1].connected);
    /* Their own token gives them their own seat, waiting. */
    assert_string_equal(join_as(w, "pat", "patient"), "p3");
    assert_string_equal(msg_str(sent(&w->o, "p3", "welcome"), "state"), "waiting");
}

/* A patient waiting alone whose tab closed (a phone switching apps) for
 * longer than the grace still gets back in with the link; a visit that
 * nobody can come back to ends at once. */
static void test_emptied_visit_waits_for_its_link(void **state)
{
    struct world *w = *state;
    char claim[VISIT_CLAIM_LEN];

    assert_string_equal(join_as(w, "pat", "patient"), "p1");
    snprintf(claim, sizeof(claim), "%s", w->claim);
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p1", &w->o);
    later(w, 61000);
    visit_out_reset(&w->o);
    visit_tick(w->v, &w->env, &w->o);
    assert_int_equal(w->v->n_people, 0);
    assert_int_equal(count(&w->o, VISIT_ENDED), 0);
    later(w, 120000);
    assert_string_equal(join_with(w, "pat", "patient", claim), "p1");
    assert_string_equal(msg_str(sent(&w->o, "p1", "welcome"), "state"), "waiting");
    assert_int_equal(w->v->empty_since_ms, 0);
}

/* Emptied with nobody who may come back (removed, declined): over at once. */
static void test_emptied_visit_ends_when_nobody_may_return(void **state)
{
    struct world *w = *state;

    assert_string_equal(join_as(w, "dr", "clinician"), "p1");
    assert_string_equal(join_as(w, "pat", "patient"), "p2");
    assert_string_equal(join_as(w, "pat2", "patient"), "p3");
    message(w, "p1", MSG_REMOVE, "p2");
    message(w, "p1", MSG_DECLINE, "p3");
    /* The clinician's own seat may come back: the visit waits for it. */
    message(w, "p1", MSG_LEAVE, NULL);
    assert_int_equal(count(&w->o, VISIT_ENDED), 0);
    /* Once the clinician's token has expired, nobody may: it ends. */
    w->env.now_wall_ms += 7200 * 1000;
    visit_out_reset(&w->o);
    visit_tick(w->v, &w->env, &w->o);
    assert_string_equal(find(&w->o, VISIT_ENDED, NULL)->reason, "empty");
}

static void test_emptied_visit_ends_when_tokens_expire(void **state)
{
    struct world *w = *state;

    assert_string_equal(join_as(w, "pat", "patient"), "p1");
    message(w, "p1", MSG_LEAVE, NULL);
    assert_int_equal(count(&w->o, VISIT_ENDED), 0);
    w->env.now_wall_ms += 7200 * 1000;
    visit_out_reset(&w->o);
    visit_tick(w->v, &w->env, &w->o);
    assert_string_equal(find(&w->o, VISIT_ENDED, NULL)->reason, "empty");
}

static void test_seats_make_room(void **state)
{
    struct world *w = *state;
    char first[VISIT_CLAIM_LEN];

    assert_string_equal(join_as(w, "dr", "clinician"), "p1");
    for (unsigned i = 1; i < QR_SESSION_SEATS_MAX; i++) {
        const char *id = join_as(w, "pat", "patient");

        if (i == 1)
            snprintf(first, sizeof(first), "%s", w->claim);
        message(w, id, MSG_LEAVE, NULL);
        later(w, 1000);
    }
    assert_int_equal(w->v->n_seats, QR_SESSION_SEATS_MAX);
    /* One more token: the seat left longest ago goes. */
    assert_string_equal(join_as(w, "late", "patient"), "p33");
    assert_int_equal(w->v->n_seats, QR_SESSION_SEATS_MAX);
    for (unsigned i = 0; i < w->v->n_seats; i++)
        assert_string_not_equal(w->v->seats[i].claim, first);
}

static void test_removed_seats_never_forgotten(void **state)
{
    struct world *w = *state;
    char removed[VISIT_CLAIM_LEN];

    assert_string_equal(join_as(w, "dr", "clinician"), "p1");
    assert_string_equal(join_as(w, "bad", "patient"), "p2");
    snprintf(removed, sizeof(removed), "%s", w->claim);
    message(w, "p1", MSG_REMOVE, "p2");
    for (unsigned i = 2; i < QR_SESSION_SEATS_MAX + 8; i++) {
        const char *id = join_as(w, "pat", "patient");

        message(w, id, MSG_LEAVE, NULL);
        later(w, 1000);
    }
    assert_int_equal(w->v->n_seats, QR_SESSION_SEATS_MAX);
    assert_string_equal(join_with(w, "bad", "patient", removed), "removed_by_clinician");
}

/* A record whose seats disagree with its people is refused: an "in" seat
 * naming someone of another sub would let its token take them over. */
static void test_codec_refuses_seats_that_disagree(void **state)
{
    struct world *w = *state;
    struct visit *back = calloc(1, sizeof(*back));
    char claim[VISIT_CLAIM_LEN];
    json_t *rec, *seat;

    admitted_with_claim(w, claim);
    rec = visit_encode(w->v);
    seat = json_array_get(json_object_get(rec, "seats"), 1);
    json_object_set_new(seat, "checks", json_integer(99));
    assert_int_equal(visit_decode(rec, back), 0);
    assert_int_equal(back->seats[1].checks, QR_CHECKS_PER_SEAT); /* clamped, not refused */
    json_object_set_new(seat, "sub", json_string("someone-else"));
    assert_int_equal(visit_decode(rec, back), -1);
    json_object_set_new(seat, "sub", json_string("pat"));
    json_object_set(seat, "claim", json_object_get(json_array_get(json_object_get(rec, "seats"), 0),
                                                   "claim"));
    assert_int_equal(visit_decode(rec, back), -1);
    /* A person of a record older than seats runs no check (no limit to
     * count against). */
    json_object_del(rec, "seats");
    assert_int_equal(visit_decode(rec, back), 0);
    *w->v = *back;
    {
        struct msg offer = {.type = MSG_CHECK_OFFER, .sdp = "v=0", .sdp_len = 3};

        custom(w, "p2", &offer);
        assert_refused(&w->o, "p2", "check_limit", NULL);
    }
    json_decref(rec);
    free(back);
}

static void test_codec_keeps_seats(void **state)
{
    struct world *w = *state;
    struct visit *back = calloc(1, sizeof(*back));
    char claim[VISIT_CLAIM_LEN];
    json_t *rec, *again;

    admitted_with_claim(w, claim);
    message(w, "p1", MSG_REMOVE, "p2");
    w->v->people[0].check = (struct visit_check){true, "weak", "tcp", 3, 80, 900};
    snprintf(w->v->people[0].locale, sizeof(w->v->people[0].locale), "es-MX");
    rec = visit_encode(w->v);
    assert_int_equal(visit_decode(rec, back), 0);
    assert_int_equal(back->n_seats, 2);
    assert_int_equal(back->seats[1].state, SEAT_REMOVED);
    assert_string_equal(back->seats[1].claim, claim);
    assert_string_equal(back->people[0].locale, "es-MX");
    assert_string_equal(back->people[0].check.transport, "tcp");
    assert_int_equal(back->people[0].check.kbps, 900);
    again = visit_encode(back);
    assert_true(json_equal(rec, again));
    json_decref(again);
    /* A record from before seats existed still reads; a broken seat does not. */
    json_object_del(rec, "seats");
    assert_int_equal(visit_decode(rec, back), 0);
    assert_int_equal(back->n_seats, 0);
    json_object_set_new(rec, "seats", json_pack("[{s:s}]", "claim", "x"));
    assert_int_equal(visit_decode(rec, back), -1);
    json_decref(rec);
    free(back);
}

/* --- the waiting room -------------------------------------------------------------- */

static void test_room_names_clinician(void **state)
{
    struct world *w = *state;
    json_t *room;

    assert_string_equal(join_as(w, "dr", "clinician"), "p1");
    later(w, 1000);
    assert_string_equal(join_as(w, "pat", "patient"), "p2");
    room = sent(&w->o, "p2", "room");
    assert_non_null(room);
    assert_string_equal(msg_str(json_array_get(json_object_get(room, "clinicians"), 0), "name"),
                        "Name of dr");
    assert_int_equal(json_integer_value(json_object_get(room, "waited_s")), 0);
    later(w, 125000);
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p1", &w->o);
    room = sent(&w->o, "p2", "room");
    assert_non_null(room);
    assert_false(json_is_true(
        json_object_get(json_array_get(json_object_get(room, "clinicians"), 0), "connected")));
    assert_int_equal(json_integer_value(json_object_get(room, "waited_s")), 125);
}

static void test_notify_one_and_all(void **state)
{
    struct world *w = *state;
    struct msg m = {.type = MSG_NOTIFY, .text = "running 5 minutes late"};
    const struct visit_action *a;

    clinician_and_patient(w);
    assert_string_equal(join_as(w, "pat2", "patient"), "p3");
    m.participant = "p3";
    custom(w, "p1", &m);
    assert_null(sent(&w->o, "p2", "notice"));
    assert_string_equal(msg_str(sent(&w->o, "p3", "notice"), "text"), "running 5 minutes late");
    assert_string_equal(msg_str(sent(&w->o, "p3", "notice"), "from"), "Name of dr");
    assert_int_equal(json_integer_value(json_object_get(sent(&w->o, "p1", "notified"), "count")),
                     1);
    m.participant = NULL;
    custom(w, "p1", &m);
    assert_non_null(sent(&w->o, "p2", "notice"));
    assert_non_null(sent(&w->o, "p3", "notice"));
    /* Recorded: that it was sent, by whom, to how many; never the text. */
    a = audit(&w->o, "session.notice");
    assert_non_null(a);
    assert_true(a->has_by);
    assert_false(a->has_person);
    assert_int_equal(a->n_people, 2);
    assert_string_equal(a->reason, "");
    /* Only a clinician, and only to someone waiting. */
    custom(w, "p2", &m);
    assert_refused(&w->o, "p2", "not_allowed", NULL);
    message(w, "p1", MSG_ADMIT, "p2");
    m.participant = "p2";
    custom(w, "p1", &m);
    assert_refused(&w->o, "p1", "not_waiting", NULL);
    m.participant = "p9";
    custom(w, "p1", &m);
    assert_refused(&w->o, "p1", "unknown_participant", "participant");
}

static void test_admit_all(void **state)
{
    struct world *w = *state;
    const struct visit_action *first = NULL;

    clinician_and_patient(w);
    later(w, 1000);
    assert_string_equal(join_as(w, "pat2", "patient"), "p3");
    message(w, "p1", MSG_ADMIT_ALL, NULL);
    assert_int_equal(visit_person(w->v, "p2")->state, P_ADMITTED);
    assert_int_equal(visit_person(w->v, "p3")->state, P_ADMITTED);
    assert_non_null(sent(&w->o, "p2", "admitted"));
    assert_non_null(sent(&w->o, "p3", "admitted"));
    for (unsigned i = 0; i < w->o.n && first == NULL; i++) {
        if (w->o.a[i].kind == VISIT_AUDIT && strcmp(w->o.a[i].event, "participant.admitted") == 0)
            first = &w->o.a[i];
    }
    /* In the order they arrived, each admission by the clinician. */
    assert_string_equal(first->person.id, "p2");
    assert_true(first->has_by);
    assert_int_equal(w->v->n_pairs, 3);
    message(w, "p2", MSG_ADMIT_ALL, NULL);
    assert_refused(&w->o, "p2", "not_allowed", NULL);
}

/* --- the connection check ------------------------------------------------------------ */

static void test_check_session(void **state)
{
    struct world *w = *state;
    struct msg offer = {.type = MSG_CHECK_OFFER, .sdp = "v=0", .sdp_len = 3};
    struct msg answer = {.type = MSG_CHECK_ANSWER, .sdp = "v=0", .sdp_len = 3};
    struct msg result = {.type = MSG_CHECK_RESULT,
                         .check = {"good", "udp", 1, 12, 1500}};
    struct visit_person *p;
    char first[48];
    const json_t *entry;

    clinician_and_patient(w);
    p = visit_person(w->v, "p2");
    custom(w, "p2", &answer);
    assert_refused(&w->o, "p2", "unexpected_answer", NULL);
    custom(w, "p2", &offer);
    assert_int_equal(w->o.media, MSG_CHECK_OFFER);
    assert_ptr_equal(w->o.check, p);
    assert_string_equal(p->check_sid, "00112233aabbccdd-c1");
    snprintf(first, sizeof(first), "%s", p->check_sid);
    visit_check_offered(w->v, p, true); /* what the caller does with the offer */
    /* A new offer starts a new session and ends the old. */
    custom(w, "p2", &offer);
    assert_string_equal(find(&w->o, VISIT_REVOKE, "")->relay_sid, first);
    assert_string_not_equal(p->check_sid, first);
    visit_check_offered(w->v, p, true);
    custom(w, "p2", &answer);
    assert_int_equal(w->o.media, MSG_CHECK_ANSWER);
    custom(w, "p2", &result);
    assert_int_equal(count(&w->o, VISIT_REVOKE), 1);
    assert_string_equal(p->check_sid, "");
    entry = lobby_entry(sent(&w->o, "p1", "lobby"), "waiting", "p2");
    assert_string_equal(msg_str(json_object_get(entry, "check"), "video"), "good");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(entry, "check"), "kbps")),
                     1500);
    /* Nothing of it goes to anyone but the person and the clinicians. */
    assert_null(sent(&w->o, "p2", "lobby"));
}

/* Starts a check for who (as the caller would, credentials out); its
 * relay session's name in w->check_sid. */
static char check_sid[VISIT_RELAY_SID_LEN];

static void check_running(struct world *w, const char *who)
{
    struct msg offer = {.type = MSG_CHECK_OFFER, .sdp = "v=0", .sdp_len = 3};

    custom(w, who, &offer);
    assert_int_equal(w->o.media, MSG_CHECK_OFFER);
    visit_check_offered(w->v, w->o.check, true);
    snprintf(check_sid, sizeof(check_sid), "%s", w->o.check->check_sid);
}

/* The last actions revoked that check's relay session. */
static void expect_check_revoked(struct world *w, const char *who)
{
    unsigned n = 0;

    for (unsigned i = 0; i < w->o.n; i++)
        n += w->o.a[i].kind == VISIT_REVOKE && strcmp(w->o.a[i].relay_sid, check_sid) == 0;
    assert_int_equal(n, 1);
    if (visit_person(w->v, who) != NULL)
        assert_string_equal(visit_person(w->v, who)->check_sid, "");
}

static void test_check_ends_on_every_way_out(void **state)
{
    struct world *w = *state;
    char claim[VISIT_CLAIM_LEN];

    clinician_and_patient(w);
    snprintf(claim, sizeof(claim), "%s", w->claim);
    check_running(w, "p2");
    message(w, "p1", MSG_ADMIT, "p2");
    expect_check_revoked(w, "p2");
    check_running(w, "p2");
    assert_string_equal(join_with(w, "pat", "patient", claim), "p2"); /* another tab */
    expect_check_revoked(w, "p2");
    check_running(w, "p2");
    visit_out_reset(&w->o);
    visit_disconnected(w->v, &w->env, "p2", &w->o);
    expect_check_revoked(w, "p2");
    assert_string_equal(join_with(w, "pat", "patient", claim), "p2");
    check_running(w, "p2");
    message(w, "p1", MSG_REMOVE, "p2");
    expect_check_revoked(w, "p2");
    assert_string_equal(join_as(w, "pat2", "patient"), "p3");
    check_running(w, "p3");
    message(w, "p1", MSG_DECLINE, "p3");
    expect_check_revoked(w, "p3");
    assert_string_equal(join_as(w, "pat3", "patient"), "p4");
    check_running(w, "p4");
    message(w, "p1", MSG_END, NULL);
    expect_check_revoked(w, "p4");
}

static void test_check_result_without_check_ignored(void **state)
{
    struct world *w = *state;
    struct msg result = {.type = MSG_CHECK_RESULT, .check = {"good", "udp", 0, 5, 3000}};
    struct msg offer = {.type = MSG_CHECK_OFFER, .sdp = "v=0", .sdp_len = 3};

    clinician_and_patient(w);
    custom(w, "p2", &result);
    assert_int_equal(w->o.n, 0);
    assert_false(w->o.check_reported);
    assert_false(visit_person(w->v, "p2")->check.have);
    /* An offer whose rewrite failed counts for nothing and runs nothing. */
    custom(w, "p2", &offer);
    visit_check_offered(w->v, w->o.check, false);
    assert_string_equal(visit_person(w->v, "p2")->check_sid, "");
    assert_int_equal(w->v->seats[1].checks, 0);
    custom(w, "p2", &result);
    assert_int_equal(w->o.n, 0);
}

static void test_check_limits(void **state)
{
    struct world *w = *state;
    struct msg offer = {.type = MSG_CHECK_OFFER, .sdp = "v=0", .sdp_len = 3};

    clinician_and_patient(w);
    w->next_relay = -1;
    custom(w, "p2", &offer);
    assert_refused(&w->o, "p2", "no_relay_available", NULL);
    w->next_relay = 0;
    check_running(w, "p2");
    /* A check left running is revoked after QR_CHECK_MAX_MS. */
    later(w, QR_CHECK_MAX_MS);
    visit_out_reset(&w->o);
    visit_tick(w->v, &w->env, &w->o);
    assert_int_equal(count(&w->o, VISIT_REVOKE), 1);
    for (int i = 1; i < QR_CHECKS_PER_SEAT; i++)
        check_running(w, "p2");
    custom(w, "p2", &offer);
    assert_refused(&w->o, "p2", "check_limit", NULL);
    /* Leaving ends a running check. */
    message(w, "p2", MSG_LEAVE, NULL);
    assert_int_equal(count(&w->o, VISIT_REVOKE), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rejoin_replaces_live_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_token_one_person, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejoin_after_drop_within_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_left_rejoins_call_within_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_left_rejoins_waiting_after_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grace_expired_rejoins_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clinician_rejoins_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_and_declined_stay_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_person_never_takes_seat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emptied_visit_waits_for_its_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emptied_visit_ends_when_tokens_expire, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_emptied_visit_ends_when_nobody_may_return, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_removed_seats_never_forgotten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_codec_refuses_seats_that_disagree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_ends_on_every_way_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_result_without_check_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_seats_make_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_codec_keeps_seats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_room_names_clinician, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_one_and_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admit_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_limits, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
