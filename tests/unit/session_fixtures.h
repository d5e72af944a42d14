/* The visit core's test world, shared by test_session.c and
 * test_session_resume.c: a visit with fixed clocks, and helpers that drive
 * it and read the actions it returns. */
#ifndef QUIETROOM_TEST_SESSION_FIXTURES_H
#define QUIETROOM_TEST_SESSION_FIXTURES_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

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
    const char *leaving[4];                    /* what relay_leaving says of relay i */
    unsigned tokens;                           /* tokens minted by join_as */
    char claim[VISIT_CLAIM_LEN];               /* the claim key of join_as's last token */
};

int pick_relay(void *ctx);
const char *relay_leaving(void *ctx, int relay);

int setup(void **state);

int teardown(void **state);

/* Moves both clocks on by ms. */
void later(struct world *w, uint64_t ms);

unsigned count(const struct visit_out *o, enum visit_act kind);

const char *msg_str(const json_t *msg, const char *key);

/* The n-th message of type sent to who, or NULL. */
json_t *sent_nth(const struct visit_out *o, const char *who, const char *type, unsigned n);

json_t *sent(const struct visit_out *o, const char *who, const char *type);

unsigned sent_count(const struct visit_out *o, const char *who);

const struct visit_action *find(const struct visit_out *o, enum visit_act kind,
                                const char *who);

const struct visit_action *audit(const struct visit_out *o, const char *event);

/* Asserts that the only action is one error with code to who. */
void assert_refused(const struct visit_out *o, const char *who, const char *code,
                    const char *field);

/* Joins someone with the token whose claim key is claim; returns the id
 * the core gave (from the attach action) or the refusal code. The actions
 * are left in w->o. */
const char *join_with(struct world *w, const char *sub, const char *role, const char *claim);

/* Joins someone with a new token (its claim key left in w->claim). */
const char *join_as(struct world *w, const char *sub, const char *role);

void message(struct world *w, const char *from, enum msg_type type, const char *arg);

/* The resume secret in the welcome/resumed message to who, copied. */
void resume_secret(const struct visit_out *o, const char *who, const char *type,
                   char *out, size_t len);

/* p1 clinician, p2 patient waiting. */
void clinician_and_patient(struct world *w);

/* p1 clinician, p2 patient admitted (with a pair on relay 0). */
void admitted_pair(struct world *w);

#endif
