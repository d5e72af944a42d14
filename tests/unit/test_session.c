/* The visit core alone, in one process, with time passed in: every event
 * is a call, and every assertion is on the actions it returns (who is sent
 * which message, which connections close, which relay sessions are revoked,
 * which audit records are written) or on the state it leaves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "visit.h"
#include "visit_codec.h"

#define T0_MS 5000000u                         /* monotonic start */
#define WALL0_MS 1800000000000u                /* Unix ms at T0 */

struct world {
    struct visit_config cfg;
    struct visit_env env;
    struct visit *v;
    struct visit_out o;
    int next_relay;                            /* what pick_relay returns; -1: none */
    unsigned relay_picks;
};

static int pick_relay(void *ctx)
{
    struct world *w = ctx;

    w->relay_picks++;
    return w->next_relay;
}

static int setup(void **state)
{
    struct world *w = calloc(1, sizeof(*w));

    w->cfg = (struct visit_config){
        .max_participants = 4,
        .waiting_timeout_s = 900,
        .idle_timeout_s = 300,
        .max_session_s = 3600,
        .resume_grace_s = 60,
    };
    w->env = (struct visit_env){&w->cfg, T0_MS, WALL0_MS, pick_relay, w};
    w->v = calloc(1, sizeof(*w->v));
    visit_init(w->v, "appt-1", "00112233aabbccdd", &w->env);
    visit_out_init(&w->o);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;

    visit_out_reset(&w->o);
    free(w->v);
    free(w);
    return 0;
}

/* Moves both clocks on by ms. */
static void later(struct world *w, uint64_t ms)
{
    w->env.now_ms += ms;
    w->env.now_wall_ms += ms;
}

/* --- looking at actions ------------------------------------------------------------ */

static unsigned count(const struct visit_out *o, enum visit_act kind)
{
    unsigned n = 0;

    for (unsigned i = 0; i < o->n; i++)
        n += o->a[i].kind == kind;
    return n;
}

static const char *msg_str(const json_t *msg, const char *key)
{
    return json_string_value(json_object_get(msg, key));
}

/* The n-th message of type sent to who, or NULL. */
static json_t *sent_nth(const struct visit_out *o, const char *who, const char *type, unsigned n)
{
    for (unsigned i = 0; i < o->n; i++) {
        const struct visit_action *a = &o->a[i];

        if (a->kind == VISIT_SEND && strcmp(a->who, who) == 0 &&
            strcmp(msg_str(a->msg, "type"), type) == 0 && n-- == 0)
            return a->msg;
    }
    return NULL;
}

static json_t *sent(const struct visit_out *o, const char *who, const char *type)
{
    return sent_nth(o, who, type, 0);
}

static unsigned sent_count(const struct visit_out *o, const char *who)
{
    unsigned n = 0;

    for (unsigned i = 0; i < o->n; i++)
        n += o->a[i].kind == VISIT_SEND && strcmp(o->a[i].who, who) == 0;
    return n;
}

static const struct visit_action *find(const struct visit_out *o, enum visit_act kind,
                                       const char *who)
{
    for (unsigned i = 0; i < o->n; i++) {
        if (o->a[i].kind == kind && (who == NULL || strcmp(o->a[i].who, who) == 0))
            return &o->a[i];
    }
    return NULL;
}

static const struct visit_action *audit(const struct visit_out *o, const char *event)
{
    for (unsigned i = 0; i < o->n; i++) {
        if (o->a[i].kind == VISIT_AUDIT && strcmp(o->a[i].event, event) == 0)
            return &o->a[i];
    }
    return NULL;
}

/* Asserts that the only action is one error with code to who. */
static void assert_refused(const struct visit_out *o, const char *who, const char *code,
                           const char *field)
{
    assert_int_equal(o->n, 1);
    assert_int_equal(o->a[0].kind, VISIT_ERROR);
    assert_string_equal(o->a[0].who, who);
    assert_string_equal(o->a[0].code, code);
    if (field != NULL)
        assert_string_equal(o->a[0].field, field);
    else
        assert_null(o->a[0].field);
    assert_int_equal(o->media, MSG_TYPE_COUNT);
}

/* --- driving the core ----------------------------------------------------------- */

/* Joins someone; returns the id the core gave (from the attach action).
 * The actions are left in w->o. */
static const char *join_as(struct world *w, const char *sub, const char *role)
{
    struct jwt_claims cl;
    static char id[VISIT_ID_LEN];
    const char *refused;

    memset(&cl, 0, sizeof(cl));
    snprintf(cl.sub, sizeof(cl.sub), "%s", sub);
    snprintf(cl.name, sizeof(cl.name), "Name of %s", sub);
    snprintf(cl.role, sizeof(cl.role), "%s", role);
    cl.exp = (int64_t)(w->env.now_wall_ms / 1000) + 7200;
    visit_out_reset(&w->o);
    refused = visit_join(w->v, &w->env, &cl, (enum role)role_parse(role), "192.0.2.1", &w->o);
    if (refused != NULL)
        return refused;
    assert_int_equal(w->o.a[0].kind, VISIT_ATTACH);
    snprintf(id, sizeof(id), "%s", w->o.a[0].who);
    return id;
}

static void message(struct world *w, const char *from, enum msg_type type, const char *arg)
{
    struct msg m = {.type = type};

    if (type == MSG_OFFER || type == MSG_ANSWER) {
        m.to = arg;
        m.sdp = "v=0";
        m.sdp_len = 3;
    } else {
        m.participant = arg;
    }
    visit_out_reset(&w->o);
    visit_message(w->v, &w->env, from, &m, &w->o);
}

/* The resume secret in the welcome/resumed message to who, copied. */
static void resume_secret(const struct visit_out *o, const char *who, const char *type,
                          char *out, size_t len)
{
    json_t *msg = sent(o, who, type);

    assert_non_null(msg);
    assert_non_null(msg_str(msg, "resume"));
    snprintf(out, len, "%s", msg_str(msg, "resume"));
}

/* p1 clinician, p2 patient waiting. */
static void clinician_and_patient(struct world *w)
{
    assert_string_equal(join_as(w, "dr", "clinician"), "p1");
    assert_string_equal(join_as(w, "pat", "patient"), "p2");
}

/* p1 clinician, p2 patient admitted (with a pair on relay 0). */
static void admitted_pair(struct world *w)
{
    clinician_and_patient(w);
    message(w, "p1", MSG_ADMIT, "p2");
    assert_int_equal(w->v->n_pairs, 1);
}

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
    assert_null(visit_join(w->v, &w->env, &cl, ROLE_CLINICIAN, "192.0.2.9", &w->o));
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

static void test_admit_no_relay(void **state)
{
    struct world *w = *state;
    json_t *err;

    clinician_and_patient(w);
    w->next_relay = -1;
    message(w, "p1", MSG_ADMIT, "p2");
    assert_int_equal(w->relay_picks, 1);
    assert_int_equal(w->v->n_pairs, 0);
    err = sent(&w->o, "p1", "error");
    assert_string_equal(msg_str(err, "code"), "no_relay_available");
    err = sent(&w->o, "p2", "error");
    assert_string_equal(msg_str(err, "code"), "no_relay_available");
    assert_null(sent(&w->o, "p1", "peer"));
    /* Still admitted: the next resume tries again. */
    assert_int_equal(visit_person(w->v, "p2")->state, P_ADMITTED);
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

static void test_leave_last_ends_empty(void **state)
{
    struct world *w = *state;
    const struct visit_action *a;

    assert_string_equal(join_as(w, "dr", "clinician"), "p1");
    message(w, "p1", MSG_LEAVE, NULL);
    assert_non_null(audit(&w->o, "participant.left"));
    assert_non_null(sent(&w->o, "p1", "left"));
    assert_int_equal(find(&w->o, VISIT_CLOSE, "p1")->close_code, VISIT_CLOSE_NORMAL);
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
    assert_int_equal(visit_answer_forwarded(pr, &w->env), 1500);
    assert_string_equal(pr->offerer, "");
    /* Only the first answer is timed; a second answer has no offer. */
    message(w, "p2", MSG_ANSWER, "p1");
    assert_refused(&w->o, "p2", "unexpected_answer", "to");
    message(w, "p2", MSG_OFFER, "p1");
    pr->have_creds = true;
    visit_offer_forwarded(pr, "p2");
    message(w, "p1", MSG_ANSWER, "p2");
    assert_int_equal(w->o.media, MSG_ANSWER);
    assert_int_equal(visit_answer_forwarded(pr, &w->env), -1);
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

/* --- connections and resume ------------------------------------------------------------ */

static void test_disconnect_and_resume(void **state)
{
    struct world *w = *state;
    char secret[64], again[64];
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
    char secret[64];
    uint8_t hash[32];

    clinician_and_patient(w);
    resume_secret(&w->o, "p2", "welcome", secret, sizeof(secret));
    visit_resume_hash(secret, hash);
    visit_out_reset(&w->o);
    assert_null(visit_resume(w->v, &w->env, visit_by_resume(w->v, hash), "192.0.2.2", &w->o));
    /* The old connection is closed before the new one is attached. */
    assert_int_equal(w->o.a[0].kind, VISIT_CLOSE);
    assert_string_equal(w->o.a[0].reason, "replaced");
    assert_int_equal(w->o.a[0].close_code, VISIT_CLOSE_NORMAL);
    assert_int_equal(w->o.a[1].kind, VISIT_ATTACH);
    assert_int_equal(count(&w->o, VISIT_CLOSE), 1);
}

static void test_resume_refused(void **state)
{
    struct world *w = *state;
    char secret[64];
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
    char secret[64];
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
    char secret[64];
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
    char secret[64];
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
    assert_string_equal(back->pairs[0].offerer, "");
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
        cmocka_unit_test_setup_teardown(test_candidate_and_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
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
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
