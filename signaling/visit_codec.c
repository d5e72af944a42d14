/* struct visit as a versioned JSON record, for a store (SQLite, a JetStream
 * KV bucket) to keep between core calls. No I/O: the store writes and reads
 * the text. Decoding checks every length, count and range, since a record
 * read back is input like any other. Relay credentials are not encoded: they
 * are derived again for the next offer, so an offer outstanding when the
 * record was written is forgotten (its answer is refused as unexpected and
 * the browser offers again). */
#include "visit_codec.h"

#include <stdio.h>
#include <string.h>

#define VISIT_CODEC_VERSION 1

static const char *const state_names[] = {[P_WAITING] = "waiting", [P_ADMITTED] = "admitted"};
static const char *const seat_names[] = {[SEAT_IN] = "in",
                                         [SEAT_LEFT] = "left",
                                         [SEAT_REMOVED] = "removed",
                                         [SEAT_DECLINED] = "declined",
                                         NULL};

static json_t *visit_codec__hex(const uint8_t *b, size_t n)
{
    char hex[2 * 32 + 1];

    for (size_t i = 0; i < n && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
    return json_stringn(hex, 2 * n);
}

static json_t *visit_codec__person_out(const struct visit_person *p)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:b,s:I,s:I,s:o,s:s,s:s,s:b}", "id", p->id,
                          "role", role_name(p->role), "state", state_names[p->state], "sub",
                          p->sub, "name", p->name, "token_exp", (json_int_t)p->token_exp,
                          "connected", p->connected, "gone_ms", (json_int_t)p->gone_ms,
                          "waiting_since_ms", (json_int_t)p->waiting_since_ms, "resume_hash",
                          visit_codec__hex(p->resume_hash, 32), "addr", p->addr, "locale",
                          p->locale, "rejoined", p->rejoined);

    if (j != NULL && p->check.have)
        json_object_set_new(j, "check",
                            json_pack("{s:s,s:s,s:i,s:i,s:i}", "video", p->check.video,
                                      "transport", p->check.transport, "loss_pct",
                                      p->check.loss_pct, "rtt_ms", p->check.rtt_ms, "kbps",
                                      p->check.kbps));
    return j;
}

static json_t *visit_codec__seat_out(const struct visit_seat *st)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:I,s:I,s:i}", "claim", st->claim, "id", st->id,
                     "sub", st->sub, "role", role_name(st->role), "state", seat_names[st->state],
                     "was_admitted", st->was_admitted, "left_ms", (json_int_t)st->left_ms,
                     "token_exp", (json_int_t)st->token_exp, "checks", (int)st->checks);
}

json_t *visit_encode(const struct visit *v)
{
    json_t *people = json_array(), *pairs = json_array(), *seats = json_array();

    for (unsigned i = 0; i < v->n_people; i++)
        json_array_append_new(people, visit_codec__person_out(&v->people[i]));
    for (unsigned i = 0; i < v->n_pairs; i++) {
        const struct visit_pair *pr = &v->pairs[i];

        json_array_append_new(
            pairs, json_pack("{s:s,s:s,s:s,s:i,s:I,s:b}", "a", pr->a, "b", pr->b, "relay_sid",
                             pr->relay_sid, "relay", pr->relay, "created_ms",
                             (json_int_t)pr->created_ms, "setup_observed", pr->setup_observed));
    }
    for (unsigned i = 0; i < v->n_seats; i++)
        json_array_append_new(seats, visit_codec__seat_out(&v->seats[i]));
    return json_pack("{s:i,s:s,s:s,s:I,s:I,s:I,s:I,s:i,s:i,s:b,s:b,s:o,s:o,s:o,s:I}", "version",
                     VISIT_CODEC_VERSION, "sid", v->sid, "instance", v->instance, "created_ms",
                     (json_int_t)v->created_ms, "created_wall_ms", (json_int_t)v->created_wall_ms,
                     "admitted_ms", (json_int_t)v->admitted_ms, "no_clinician_since_ms",
                     (json_int_t)v->no_clinician_since_ms, "next_person", (int)v->next_person,
                     "next_pair", (int)v->next_pair, "part2", v->part2, "ended", v->ended,
                     "people", people, "pairs", pairs, "seats", seats, "empty_since_ms",
                     (json_int_t)v->empty_since_ms);
}

/* --- decoding ------------------------------------------------------------------- */

/* Copies the string at key into buf (size n); -1 if absent, not a string,
 * too long or holding a NUL. */
static int visit_codec__str(const json_t *o, const char *key, char *buf, size_t n)
{
    const json_t *j = json_object_get(o, key);
    size_t len = json_string_length(j);

    if (!json_is_string(j) || len >= n || strlen(json_string_value(j)) != len)
        return -1;
    memcpy(buf, json_string_value(j), len + 1);
    return 0;
}

static int visit_codec__u64(const json_t *o, const char *key, uint64_t *out)
{
    const json_t *j = json_object_get(o, key);

    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(j);
    return 0;
}

static int visit_codec__bool(const json_t *o, const char *key, bool *out)
{
    const json_t *j = json_object_get(o, key);

    if (!json_is_boolean(j))
        return -1;
    *out = json_is_true(j);
    return 0;
}

static int visit_codec__unhex(const json_t *o, const char *key, uint8_t *out, size_t n)
{
    char hex[2 * 32 + 1];

    if (n > 32 || visit_codec__str(o, key, hex, sizeof(hex)) != 0 || strlen(hex) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned x;

        if (sscanf(hex + 2 * i, "%2x", &x) != 1 || !strchr("0123456789abcdef", hex[2 * i]) ||
            !strchr("0123456789abcdef", hex[2 * i + 1]))
            return -1;
        out[i] = (uint8_t)x;
    }
    return 0;
}

/* Fields a record written before seats and checks existed lacks: absent
 * is the default, present must be well formed. */
static int visit_codec__opt_str(const json_t *o, const char *key, char *buf, size_t n)
{
    buf[0] = '\0';
    return json_object_get(o, key) == NULL ? 0 : visit_codec__str(o, key, buf, n);
}

static int visit_codec__opt_bool(const json_t *o, const char *key, bool *out)
{
    *out = false;
    return json_object_get(o, key) == NULL ? 0 : visit_codec__bool(o, key, out);
}

/* The index of the word at key in words (NULL-terminated), or -1. */
static int visit_codec__word(const json_t *o, const char *key, const char *const *words)
{
    char w[16];

    if (visit_codec__str(o, key, w, sizeof(w)) != 0)
        return -1;
    for (int i = 0; words[i] != NULL; i++) {
        if (strcmp(w, words[i]) == 0)
            return i;
    }
    return -1;
}

static int visit_codec__int(const json_t *o, const char *key, int max, int *out)
{
    uint64_t x;

    if (visit_codec__u64(o, key, &x) != 0 || x > (uint64_t)max)
        return -1;
    *out = (int)x;
    return 0;
}

static int visit_codec__check(const json_t *o, struct visit_check *c)
{
    const char *const *verdicts = protocol_check_verdicts;
    const char *const *transports = protocol_check_transports;
    const json_t *j = json_object_get(o, "check");
    int v, t;

    memset(c, 0, sizeof(*c));
    if (j == NULL)
        return 0;
    if (!json_is_object(j) || (v = visit_codec__word(j, "video", verdicts)) < 0 ||
        (t = visit_codec__word(j, "transport", transports)) < 0 ||
        visit_codec__int(j, "loss_pct", 100, &c->loss_pct) != 0 ||
        visit_codec__int(j, "rtt_ms", 60000, &c->rtt_ms) != 0 ||
        visit_codec__int(j, "kbps", 1000000, &c->kbps) != 0)
        return -1;
    snprintf(c->video, sizeof(c->video), "%s", verdicts[v]);
    snprintf(c->transport, sizeof(c->transport), "%s", transports[t]);
    c->have = true;
    return 0;
}

static int visit_codec__seat(const json_t *o, struct visit_seat *st)
{
    char role[16];
    int r, state, checks;
    uint64_t exp;

    if (!json_is_object(o) || visit_codec__str(o, "claim", st->claim, sizeof(st->claim)) != 0 ||
        strlen(st->claim) != VISIT_CLAIM_LEN - 1 ||
        visit_codec__str(o, "id", st->id, sizeof(st->id)) != 0 ||
        visit_codec__str(o, "sub", st->sub, sizeof(st->sub)) != 0 ||
        visit_codec__str(o, "role", role, sizeof(role)) != 0 || (r = role_parse(role)) < 0 ||
        (state = visit_codec__word(o, "state", seat_names)) < 0 ||
        visit_codec__bool(o, "was_admitted", &st->was_admitted) != 0 ||
        visit_codec__u64(o, "left_ms", &st->left_ms) != 0 ||
        visit_codec__u64(o, "token_exp", &exp) != 0 || exp > INT64_MAX ||
        visit_codec__int(o, "checks", INT32_MAX, &checks) != 0)
        return -1;
    st->token_exp = (int64_t)exp;
    /* A later release may lower the limit: clamp, never lose the visit. */
    if (checks > QR_CHECKS_PER_SEAT)
        checks = QR_CHECKS_PER_SEAT;
    st->role = (enum role)r;
    st->state = (enum seat_state)state;
    st->checks = (unsigned)checks;
    return 0;
}

static int visit_codec__person(const json_t *o, struct visit_person *p)
{
    char role[16], state[16];
    uint64_t exp;
    int r;

    if (!json_is_object(o) || visit_codec__str(o, "id", p->id, sizeof(p->id)) != 0 ||
        visit_codec__str(o, "role", role, sizeof(role)) != 0 || (r = role_parse(role)) < 0 ||
        visit_codec__str(o, "state", state, sizeof(state)) != 0 ||
        visit_codec__str(o, "sub", p->sub, sizeof(p->sub)) != 0 ||
        visit_codec__str(o, "name", p->name, sizeof(p->name)) != 0 ||
        visit_codec__u64(o, "token_exp", &exp) != 0 ||
        visit_codec__bool(o, "connected", &p->connected) != 0 ||
        visit_codec__u64(o, "gone_ms", &p->gone_ms) != 0 ||
        visit_codec__u64(o, "waiting_since_ms", &p->waiting_since_ms) != 0 ||
        visit_codec__unhex(o, "resume_hash", p->resume_hash, 32) != 0 ||
        visit_codec__str(o, "addr", p->addr, sizeof(p->addr)) != 0 ||
        visit_codec__opt_str(o, "locale", p->locale, sizeof(p->locale)) != 0 ||
        visit_codec__opt_bool(o, "rejoined", &p->rejoined) != 0 ||
        visit_codec__check(o, &p->check) != 0)
        return -1;
    p->check_relay = -1;
    if (strcmp(state, "waiting") == 0)
        p->state = P_WAITING;
    else if (strcmp(state, "admitted") == 0)
        p->state = P_ADMITTED;
    else
        return -1;
    p->role = (enum role)r;
    p->token_exp = (int64_t)exp;
    return 0;
}

/* A relay index, or -1: a pair waiting for a relay. */
static int visit_codec__relay(const json_t *o, int *out)
{
    const json_t *j = json_object_get(o, "relay");

    if (!json_is_integer(j) || json_integer_value(j) < -1 || json_integer_value(j) > INT32_MAX)
        return -1;
    *out = (int)json_integer_value(j);
    return 0;
}

static int visit_codec__pair(const struct visit *v, const json_t *o, struct visit_pair *pr)
{
    if (!json_is_object(o) || visit_codec__str(o, "a", pr->a, sizeof(pr->a)) != 0 ||
        visit_codec__str(o, "b", pr->b, sizeof(pr->b)) != 0 ||
        visit_codec__str(o, "relay_sid", pr->relay_sid, sizeof(pr->relay_sid)) != 0 ||
        visit_codec__relay(o, &pr->relay) != 0 ||
        visit_codec__u64(o, "created_ms", &pr->created_ms) != 0 ||
        visit_codec__bool(o, "setup_observed", &pr->setup_observed) != 0)
        return -1;
    /* A pair joins two people of this visit. */
    for (unsigned i = 0, found = 0; i < v->n_people; i++) {
        found += strcmp(v->people[i].id, pr->a) == 0 || strcmp(v->people[i].id, pr->b) == 0;
        if (found == 2 && strcmp(pr->a, pr->b) != 0)
            return 0;
    }
    return -1;
}

/* Seats must agree with people: claims and held ids unique, and a seat
 * someone is in names a person of the same sub and role (else its token
 * could take over someone else's place). */
static int visit_codec__seats_agree(const struct visit *v)
{
    for (unsigned i = 0; i < v->n_seats; i++) {
        const struct visit_seat *st = &v->seats[i];
        const struct visit_person *p = NULL;

        for (unsigned k = 0; k < i; k++) {
            if (strcmp(v->seats[k].claim, st->claim) == 0 ||
                (strcmp(v->seats[k].id, st->id) == 0 && v->seats[k].state == SEAT_IN &&
                 st->state == SEAT_IN))
                return -1;
        }
        for (unsigned k = 0; k < v->n_people && p == NULL; k++) {
            if (strcmp(v->people[k].id, st->id) == 0)
                p = &v->people[k];
        }
        if (st->state == SEAT_IN && p != NULL &&
            (strcmp(p->sub, st->sub) != 0 || p->role != st->role))
            return -1;
    }
    return 0;
}

int visit_decode(const json_t *j, struct visit *v)
{
    const json_t *people = json_object_get(j, "people"), *pairs = json_object_get(j, "pairs");
    const json_t *seats = json_object_get(j, "seats");
    uint64_t version, next_person, next_pair;

    memset(v, 0, sizeof(*v));
    if (!json_is_object(j) || visit_codec__u64(j, "version", &version) != 0 ||
        version != VISIT_CODEC_VERSION || visit_codec__str(j, "sid", v->sid, sizeof(v->sid)) != 0 ||
        visit_codec__str(j, "instance", v->instance, sizeof(v->instance)) != 0 ||
        visit_codec__u64(j, "created_ms", &v->created_ms) != 0 ||
        visit_codec__u64(j, "created_wall_ms", &v->created_wall_ms) != 0 ||
        visit_codec__u64(j, "admitted_ms", &v->admitted_ms) != 0 ||
        visit_codec__u64(j, "no_clinician_since_ms", &v->no_clinician_since_ms) != 0 ||
        visit_codec__u64(j, "next_person", &next_person) != 0 || next_person > UINT32_MAX ||
        visit_codec__u64(j, "next_pair", &next_pair) != 0 || next_pair > UINT32_MAX ||
        visit_codec__bool(j, "part2", &v->part2) != 0 ||
        visit_codec__bool(j, "ended", &v->ended) != 0 || !json_is_array(people) ||
        json_array_size(people) > QR_SESSION_PEOPLE_MAX || !json_is_array(pairs) ||
        json_array_size(pairs) > VISIT_PAIRS_MAX ||
        (seats != NULL && (!json_is_array(seats) || json_array_size(seats) > QR_SESSION_SEATS_MAX)))
        goto fail;
    if (json_object_get(j, "empty_since_ms") != NULL &&
        visit_codec__u64(j, "empty_since_ms", &v->empty_since_ms) != 0)
        goto fail;
    visit_key(v->sid, v->key);
    v->next_person = (unsigned)next_person;
    v->next_pair = (unsigned)next_pair;
    for (size_t i = 0; i < json_array_size(people); i++) {
        if (visit_codec__person(json_array_get(people, i), &v->people[i]) != 0 ||
            visit_person(v, v->people[i].id) != NULL)
            goto fail;
        v->n_people++;
    }
    for (size_t i = 0; i < json_array_size(pairs); i++) {
        if (visit_codec__pair(v, json_array_get(pairs, i), &v->pairs[i]) != 0)
            goto fail;
        v->n_pairs++;
    }
    for (size_t i = 0; i < json_array_size(seats); i++) {
        if (visit_codec__seat(json_array_get(seats, i), &v->seats[i]) != 0)
            goto fail;
        v->n_seats++;
    }
    if (visit_codec__seats_agree(v) != 0)
        goto fail;
    return 0;
fail:
    memset(v, 0, sizeof(*v));
    return -1;
}

int visit_decode_text(const char *rec, size_t len, struct visit *v)
{
    json_t *j = json_loadb(rec, len, JSON_REJECT_DUPLICATES, NULL);
    int rc = j != NULL ? visit_decode(j, v) : -1;

    json_decref(j);
    return rc;
}
