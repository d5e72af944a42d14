/* Helpers of the visit core's tests (session_fixtures.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "session_fixtures.h"

int pick_relay(void *ctx)
{
    struct world *w = ctx;

    w->relay_picks++;
    return w->next_relay;
}

const char *relay_leaving(void *ctx, int relay)
{
    struct world *w = ctx;

    return relay >= 0 && relay < 4 ? w->leaving[relay] : "relay_unknown";
}

int setup(void **state)
{
    struct world *w = calloc(1, sizeof(*w));

    w->cfg = (struct visit_config){
        .max_participants = 4,
        .waiting_timeout_s = 900,
        .idle_timeout_s = 300,
        .max_session_s = 3600,
        .resume_grace_s = 60,
    };
    w->env = (struct visit_env){&w->cfg, T0_MS, WALL0_MS, pick_relay, relay_leaving, w};
    w->v = calloc(1, sizeof(*w->v));
    visit_init(w->v, "appt-1", "00112233aabbccdd", &w->env);
    visit_out_init(&w->o);
    *state = w;
    return 0;
}

int teardown(void **state)
{
    struct world *w = *state;

    visit_out_reset(&w->o);
    free(w->v);
    free(w);
    return 0;
}

/* Moves both clocks on by ms. */
void later(struct world *w, uint64_t ms)
{
    w->env.now_ms += ms;
    w->env.now_wall_ms += ms;
}

/* --- looking at actions ------------------------------------------------------------ */

unsigned count(const struct visit_out *o, enum visit_act kind)
{
    unsigned n = 0;

    for (unsigned i = 0; i < o->n; i++)
        n += o->a[i].kind == kind;
    return n;
}

const char *msg_str(const json_t *msg, const char *key)
{
    return json_string_value(json_object_get(msg, key));
}

/* The n-th message of type sent to who, or NULL. */
json_t *sent_nth(const struct visit_out *o, const char *who, const char *type, unsigned n)
{
    for (unsigned i = 0; i < o->n; i++) {
        const struct visit_action *a = &o->a[i];

        if (a->kind == VISIT_SEND && strcmp(a->who, who) == 0 &&
            strcmp(msg_str(a->msg, "type"), type) == 0 && n-- == 0)
            return a->msg;
    }
    return NULL;
}

json_t *sent(const struct visit_out *o, const char *who, const char *type)
{
    return sent_nth(o, who, type, 0);
}

unsigned sent_count(const struct visit_out *o, const char *who)
{
    unsigned n = 0;

    for (unsigned i = 0; i < o->n; i++)
        n += o->a[i].kind == VISIT_SEND && strcmp(o->a[i].who, who) == 0;
    return n;
}

const struct visit_action *find(const struct visit_out *o, enum visit_act kind,
                                const char *who)
{
    for (unsigned i = 0; i < o->n; i++) {
        if (o->a[i].kind == kind && (who == NULL || strcmp(o->a[i].who, who) == 0))
            return &o->a[i];
    }
    return NULL;
}

const struct visit_action *audit(const struct visit_out *o, const char *event)
{
    for (unsigned i = 0; i < o->n; i++) {
        if (o->a[i].kind == VISIT_AUDIT && strcmp(o->a[i].event, event) == 0)
            return &o->a[i];
    }
    return NULL;
}

/* Asserts that the only action is one error with code to who. */
void assert_refused(const struct visit_out *o, const char *who, const char *code,
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

/* Joins someone with the token whose claim key is claim; returns the id
 * the core gave (from the attach action) or the refusal code. The actions
 * are left in w->o. */
const char *join_with(struct world *w, const char *sub, const char *role, const char *claim)
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
    refused = visit_join(w->v, &w->env, &cl, (enum role)role_parse(role), claim, "192.0.2.1",
                         &w->o);
    if (refused != NULL)
        return refused;
    assert_non_null(find(&w->o, VISIT_ATTACH, NULL));
    snprintf(id, sizeof(id), "%s", find(&w->o, VISIT_ATTACH, NULL)->who);
    return id;
}

/* Joins someone with a new token (its claim key in w->claim). */
const char *join_as(struct world *w, const char *sub, const char *role)
{
    snprintf(w->claim, sizeof(w->claim), "%064x", ++w->tokens);
    return join_with(w, sub, role, w->claim);
}

void message(struct world *w, const char *from, enum msg_type type, const char *arg)
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
void resume_secret(const struct visit_out *o, const char *who, const char *type,
                   char *out, size_t len)
{
    json_t *msg = sent(o, who, type);

    assert_non_null(msg);
    assert_non_null(msg_str(msg, "resume"));
    snprintf(out, len, "%s", msg_str(msg, "resume"));
}

/* p1 clinician, p2 patient waiting. */
void clinician_and_patient(struct world *w)
{
    assert_string_equal(join_as(w, "dr", "clinician"), "p1");
    assert_string_equal(join_as(w, "pat", "patient"), "p2");
}

/* p1 clinician, p2 patient admitted (with a pair on relay 0). */
void admitted_pair(struct world *w)
{
    clinician_and_patient(w);
    message(w, "p1", MSG_ADMIT, "p2");
    assert_int_equal(w->v->n_pairs, 1);
}
