/* The visit state machine. A person authenticates (EHR token or resume
 * secret), waits or is admitted, and eventually leaves, is declined or
 * removed, times out, or the visit ends. Which message is allowed in which
 * state is the handler table at the bottom; timers run from visit_tick.
 * Nothing here performs I/O: every effect is an action appended to a
 * visit_out, and time comes from the visit_env. */
#include "visit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static const char *const role_names[ROLE_COUNT] = {
    [ROLE_CLINICIAN] = "clinician",
    [ROLE_PATIENT] = "patient",
    [ROLE_INTERPRETER] = "interpreter",
    [ROLE_OBSERVER] = "observer",
};

const char *role_name(enum role r)
{
    return (unsigned)r < ROLE_COUNT ? role_names[r] : "unknown";
}

int role_parse(const char *name)
{
    for (int r = 0; r < ROLE_COUNT; r++) {
        if (strcmp(name, role_names[r]) == 0)
            return r;
    }
    return -1;
}

/* --- actions ------------------------------------------------------------------- */

void visit_out_init(struct visit_out *o)
{
    memset(o, 0, sizeof(*o));
    o->media = MSG_TYPE_COUNT;
}

void visit_out_reset(struct visit_out *o)
{
    for (unsigned i = 0; i < o->n; i++)
        json_decref(o->a[i].msg);
    free(o->a);
    visit_out_init(o);
}

/* Out of memory here is fatal, as at start-up: losing an action would
 * leave the transport and the state machine disagreeing. */
static struct visit_action *visit__act(struct visit_out *o, enum visit_act kind, const char *who)
{
    struct visit_action *a;

    if (o->n == o->cap) {
        unsigned cap = o->cap ? 2 * o->cap : 16;
        struct visit_action *na = realloc(o->a, cap * sizeof(*na));

        if (na == NULL)
            abort();
        o->a = na;
        o->cap = cap;
    }
    a = &o->a[o->n++];
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    snprintf(a->who, sizeof(a->who), "%s", who ? who : "");
    return a;
}

/* Sends msg (consumed) to p if p has a connection. */
static void visit__send(struct visit_out *o, const struct visit_person *p, json_t *msg)
{
    if (!p->connected) {
        json_decref(msg);
        return;
    }
    visit__act(o, VISIT_SEND, p->id)->msg = msg;
}

static void visit__error(struct visit_out *o, const char *who, const char *code,
                         const char *message, const char *field)
{
    struct visit_action *a = visit__act(o, VISIT_ERROR, who);

    a->code = code;
    a->message = message;
    a->field = field;
}

static void visit__close(struct visit_out *o, struct visit_person *p, int code, const char *reason)
{
    struct visit_action *a = visit__act(o, VISIT_CLOSE, p->id);

    a->close_code = code;
    snprintf(a->reason, sizeof(a->reason), "%s", reason);
    p->connected = false;
}

static struct visit_action *visit__audit(struct visit_out *o, const char *event,
                                         const struct visit_person *p, const char *reason,
                                         const struct visit_person *by)
{
    struct visit_action *a = visit__act(o, VISIT_AUDIT, p ? p->id : NULL);

    a->event = event;
    snprintf(a->reason, sizeof(a->reason), "%s", reason ? reason : "");
    if (p != NULL) {
        a->has_person = true;
        a->person = *p;
        memset(a->person.resume_hash, 0, sizeof(a->person.resume_hash));
        OPENSSL_cleanse(&a->person.check_creds, sizeof(a->person.check_creds));
        a->person.have_check_creds = false;
    }
    if (by != NULL) {
        a->has_by = true;
        snprintf(a->by_sub, sizeof(a->by_sub), "%s", by->sub);
        a->by_role = by->role;
        snprintf(a->by_addr, sizeof(a->by_addr), "%s", by->addr);
    }
    return a;
}

/* --- small helpers ------------------------------------------------------------ */

struct visit_person *visit_person(struct visit *v, const char *id)
{
    for (unsigned i = 0; i < v->n_people; i++) {
        if (strcmp(v->people[i].id, id) == 0)
            return &v->people[i];
    }
    return NULL;
}

static struct visit_pair *visit__pair_find(struct visit *v, const char *x, const char *y)
{
    for (unsigned i = 0; i < v->n_pairs; i++) {
        struct visit_pair *pr = &v->pairs[i];

        if ((strcmp(pr->a, x) == 0 && strcmp(pr->b, y) == 0) ||
            (strcmp(pr->a, y) == 0 && strcmp(pr->b, x) == 0))
            return pr;
    }
    return NULL;
}

static bool visit__has_connected_clinician(const struct visit *v)
{
    for (unsigned i = 0; i < v->n_people; i++) {
        if (v->people[i].role == ROLE_CLINICIAN && v->people[i].connected)
            return true;
    }
    return false;
}

/* The idle clock starts when the last connected clinician goes; a visit no
 * clinician has opened yet is governed by the waiting-room timeout. */
static void visit__clinician_gone(struct visit *v, uint64_t now)
{
    if (!visit__has_connected_clinician(v) && v->no_clinician_since_ms == 0)
        v->no_clinician_since_ms = now;
}

static json_t *visit__person_json(const struct visit_person *p)
{
    return json_pack("{s:s,s:s,s:s,s:b}", "participant", p->id, "role", role_name(p->role),
                     "name", p->name, "connected", p->connected);
}

/* A lobby entry: what a clinician sees of someone, with how long they
 * waited, whether they came back with their link, and their check. */
static json_t *visit__lobby_json(const struct visit_env *env, const struct visit_person *p)
{
    json_t *j = visit__person_json(p);

    if (p->state == P_WAITING)
        json_object_set_new(j, "waited_s",
                            json_integer((json_int_t)((env->now_ms - p->waiting_since_ms) / 1000)));
    if (p->rejoined)
        json_object_set_new(j, "rejoined", json_true());
    if (p->check.have)
        json_object_set_new(j, "check",
                            json_pack("{s:s,s:s,s:i,s:i,s:i}", "video", p->check.video,
                                      "transport", p->check.transport, "loss_pct",
                                      p->check.loss_pct, "rtt_ms", p->check.rtt_ms, "kbps",
                                      p->check.kbps));
    return j;
}

/* Tells every connected clinician who waits and who is in. */
static void visit__lobby(struct visit *v, const struct visit_env *env, struct visit_out *o)
{
    for (unsigned i = 0; i < v->n_people; i++) {
        const struct visit_person *c = &v->people[i];
        json_t *waiting, *present;

        if (c->role != ROLE_CLINICIAN || !c->connected)
            continue;
        waiting = json_array();
        present = json_array();
        for (unsigned j = 0; j < v->n_people; j++) {
            const struct visit_person *p = &v->people[j];

            json_array_append_new(p->state == P_WAITING ? waiting : present,
                                  visit__lobby_json(env, p));
        }
        visit__send(o, c, json_pack("{s:s,s:o,s:o}", "type", "lobby", "waiting", waiting,
                                    "present", present));
    }
}

/* Tells the others (everyone but clinicians), or only `only`, which
 * clinicians the visit has and how long they themselves have waited: the
 * waiting room names its clinician, and a patient in the call learns
 * when the last clinician has left. */
static void visit__room(struct visit *v, const struct visit_env *env, struct visit_out *o,
                        const struct visit_person *only)
{
    for (unsigned i = 0; i < v->n_people; i++) {
        const struct visit_person *p = &v->people[i];
        json_t *clinicians, *msg;

        if (p->role == ROLE_CLINICIAN || !p->connected || (only != NULL && p != only))
            continue;
        clinicians = json_array();
        for (unsigned j = 0; j < v->n_people; j++) {
            const struct visit_person *c = &v->people[j];

            if (c->role == ROLE_CLINICIAN)
                json_array_append_new(clinicians,
                                      json_pack("{s:s,s:s,s:b}", "participant", c->id, "name",
                                                c->name, "connected", c->connected));
        }
        msg = json_pack("{s:s,s:o}", "type", "room", "clinicians", clinicians);
        if (p->state == P_WAITING)
            json_object_set_new(
                msg, "waited_s",
                json_integer((json_int_t)((env->now_ms - p->waiting_since_ms) / 1000)));
        visit__send(o, p, msg);
    }
}

/* A fresh resume secret: the person keeps the secret, we keep its hash. */
/* "KEY." and 32 random bytes in base64: the key routes, the rest is the
 * secret. */
static json_t *visit__new_resume(const struct visit *v, struct visit_person *p)
{
    uint8_t raw[QR_RESUME_SECRET_BYTES];
    char secret[VISIT_KEY_LEN + 4 * QR_RESUME_SECRET_BYTES / 3 + 4];
    json_t *j;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return NULL;
    memcpy(secret, v->key, VISIT_KEY_LEN - 1);
    secret[VISIT_KEY_LEN - 1] = '.';
    EVP_EncodeBlock((unsigned char *)secret + VISIT_KEY_LEN, raw, sizeof(raw));
    visit_resume_hash(secret, p->resume_hash);
    OPENSSL_cleanse(raw, sizeof(raw));
    j = json_string(secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    return j;
}

void visit_resume_hash(const char *secret, uint8_t hash[32])
{
    EVP_Digest(secret, strlen(secret), hash, NULL, EVP_sha256(), NULL);
}

/* --- pairs ---------------------------------------------------------------------- */

static int visit__pick(const struct visit_env *env)
{
    return env->pick_relay ? env->pick_relay(env->ctx) : -1;
}

/* A relay session name never used before in this visit: a pair that moves
 * gets a new one, so a revocation of its old session (which the old relay
 * hears when it comes back) can never touch the new. */
static void visit__pair_session(struct visit *v, struct visit_pair *pr)
{
    char sid[sizeof(pr->relay_sid)];

    snprintf(sid, sizeof(sid), "%s-%u", v->instance, ++v->next_pair);
    memcpy(pr->relay_sid, sid, sizeof(sid));
}

/* A new pair on the best relay, or waiting for one (relay -1). NULL only
 * if the visit has no room left for pairs. */
static struct visit_pair *visit__pair_new(struct visit *v, const struct visit_env *env,
                                          const struct visit_person *a,
                                          const struct visit_person *b)
{
    struct visit_pair *pr;
    char ida[VISIT_ID_LEN], idb[VISIT_ID_LEN];

    if (v->n_pairs == VISIT_PAIRS_MAX)
        return NULL;
    /* a and b live in v too: copy them out first. */
    snprintf(ida, sizeof(ida), "%s", a->id);
    snprintf(idb, sizeof(idb), "%s", b->id);
    pr = &v->pairs[v->n_pairs++];
    *pr = (struct visit_pair){.relay = visit__pick(env), .created_ms = env->now_ms};
    snprintf(pr->a, sizeof(pr->a), "%s", ida);
    snprintf(pr->b, sizeof(pr->b), "%s", idb);
    visit__pair_session(v, pr);
    return pr;
}

/* Stops the pair's media at its relay at once (if it has one). */
static void visit__pair_revoke(struct visit_out *o, struct visit_pair *pr)
{
    struct visit_action *a;

    if (pr->relay < 0)
        return;
    a = visit__act(o, VISIT_REVOKE, NULL);
    a->relay = pr->relay;
    snprintf(a->relay_sid, sizeof(a->relay_sid), "%s", pr->relay_sid);
}

/* Stops the pair's media and forgets the pair. */
static void visit__pair_end(struct visit *v, struct visit_out *o, unsigned i)
{
    visit__pair_revoke(o, &v->pairs[i]);
    OPENSSL_cleanse(&v->pairs[i].creds, sizeof(v->pairs[i].creds));
    v->pairs[i] = v->pairs[--v->n_pairs];
}

/* --- leaving ------------------------------------------------------------------- */

/* Ends every pair p is in and tells the others why p is gone. */
static void visit__unpair(struct visit *v, struct visit_out *o, const struct visit_person *p,
                          const char *reason)
{
    for (unsigned i = v->n_pairs; i > 0; i--) {
        if (strcmp(v->pairs[i - 1].a, p->id) == 0 || strcmp(v->pairs[i - 1].b, p->id) == 0)
            visit__pair_end(v, o, i - 1);
    }
    for (unsigned i = 0; i < v->n_people; i++) {
        const struct visit_person *q = &v->people[i];

        if (q != p && q->state == P_ADMITTED)
            visit__send(o, q, json_pack("{s:s,s:s,s:s}", "type", "peer_left", "participant",
                                        p->id, "reason", reason));
    }
}

/* --- seats --------------------------------------------------------------------- */

static struct visit_seat *visit__seat(struct visit *v, const char *claim, const char *id)
{
    for (unsigned i = 0; i < v->n_seats; i++) {
        if ((claim != NULL && strcmp(v->seats[i].claim, claim) == 0) ||
            (id != NULL && strcmp(v->seats[i].id, id) == 0 && v->seats[i].state == SEAT_IN))
            return &v->seats[i];
    }
    return NULL;
}

/* A new seat for claim, or NULL if every seat is held. A full visit
 * forgets the seat left longest ago first (its link then opens nothing);
 * removed and declined seats are kept, so those links stay refused. */
static struct visit_seat *visit__seat_new(struct visit *v, const char *claim)
{
    struct visit_seat *st = NULL;

    if (v->n_seats < QR_SESSION_SEATS_MAX) {
        st = &v->seats[v->n_seats++];
    } else {
        for (unsigned i = 0; i < v->n_seats; i++) {
            if (v->seats[i].state == SEAT_LEFT && (st == NULL || v->seats[i].left_ms < st->left_ms))
                st = &v->seats[i];
        }
        if (st == NULL)
            return NULL;
    }
    memset(st, 0, sizeof(*st));
    snprintf(st->claim, sizeof(st->claim), "%s", claim);
    return st;
}

/* p is leaving: its seat remembers how (`to`: a removed or declined
 * person's link stays refused; anyone who left may come back). */
static void visit__seat_leave(struct visit *v, const struct visit_env *env,
                              const struct visit_person *p, enum seat_state to)
{
    struct visit_seat *st = visit__seat(v, NULL, p->id);

    if (st == NULL)
        return;
    st->state = to;
    st->was_admitted = p->state == P_ADMITTED;
    st->left_ms = p->connected ? env->now_ms : p->gone_ms;
    st->token_exp = p->token_exp;
}

/* --- connection checks ---------------------------------------------------------- */

/* Stops p's check session at its relay, if one runs. */
static void visit__check_end(struct visit_out *o, struct visit_person *p)
{
    struct visit_action *a;

    if (p->check_sid[0] == '\0')
        return;
    a = visit__act(o, VISIT_REVOKE, NULL);
    a->relay = p->check_relay;
    snprintf(a->relay_sid, sizeof(a->relay_sid), "%s", p->check_sid);
    p->check_sid[0] = '\0';
    p->have_check_creds = false;
    OPENSSL_cleanse(&p->check_creds, sizeof(p->check_creds));
}

/* Removes p from the visit; its connection, if any, is told `what` with
 * `reason` and closed with code; its seat goes to state `to`. */
static void visit__drop(struct visit *v, const struct visit_env *env, struct visit_out *o,
                        struct visit_person *p, const char *what, const char *reason, int code,
                        enum seat_state to)
{
    bool clinician = p->role == ROLE_CLINICIAN;

    visit__unpair(v, o, p, reason);
    visit__check_end(o, p);
    visit__seat_leave(v, env, p, to);
    if (p->connected) {
        visit__send(o, p, json_pack("{s:s,s:s}", "type", what, "reason", reason));
        visit__close(o, p, code, reason);
    }
    OPENSSL_cleanse(p, sizeof(*p));
    *p = v->people[--v->n_people];
    if (clinician) {
        visit__clinician_gone(v, env->now_ms);
        visit__room(v, env, o, NULL);
    }
    visit__lobby(v, env, o);
}

static void visit__over(struct visit *v, struct visit_out *o, const char *reason)
{
    snprintf(visit__act(o, VISIT_ENDED, NULL)->reason, sizeof(o->a[0].reason), "%s", reason);
    v->ended = true;
}

/* Whether someone who left may still come back with their link. */
static bool visit__may_return(const struct visit *v, const struct visit_env *env)
{
    for (unsigned i = 0; i < v->n_seats; i++) {
        if (v->seats[i].state == SEAT_LEFT &&
            v->seats[i].token_exp > (int64_t)(env->now_wall_ms / 1000))
            return true;
    }
    return false;
}

/* Nobody is in the visit. It is over once nobody can come back, or after
 * idle-timeout: until then a patient whose tab closed while waiting alone
 * (a phone that switched apps) gets back in with the same link. */
static void visit__emptied(struct visit *v, const struct visit_env *env, struct visit_out *o)
{
    if (v->empty_since_ms == 0)
        v->empty_since_ms = env->now_ms;
    if (!visit__may_return(v, env) ||
        env->now_ms - v->empty_since_ms >= env->cfg->idle_timeout_s * 1000u)
        visit__over(v, o, "empty");
}

void visit_end(struct visit *v, const struct visit_env *env, const char *reason,
               const struct visit_person *by, struct visit_out *o)
{
    struct visit_action *a = visit__audit(o, "session.ended", NULL, reason, by);

    a->n_people = v->n_people;
    a->start_wall_ms = v->created_wall_ms;
    a->end_wall_ms = env->now_wall_ms;
    while (v->n_pairs > 0)
        visit__pair_end(v, o, v->n_pairs - 1);
    while (v->n_people > 0)
        visit__drop(v, env, o, &v->people[v->n_people - 1], "ended", reason, VISIT_CLOSE_ENDED,
                    SEAT_LEFT);
    visit__over(v, o, reason);
}

/* --- admission ---------------------------------------------------------------- */

/* A peer message: who, and whether this side offers first. A pair still
 * waiting for a relay says so, and its first offer waits for "renegotiate". */
static json_t *visit__peer_json(const struct visit_person *q, const struct visit_pair *pr,
                                bool initiator)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:b}", "type", "peer", "participant", q->id, "role",
                          role_name(q->role), "name", q->name, "initiator", initiator);

    if (pr->relay < 0)
        json_object_set_new(j, "waiting_for_relay", json_true());
    return j;
}

static void visit__introduce(struct visit *v, const struct visit_env *env, struct visit_out *o,
                             const struct visit_person *p)
{
    for (unsigned i = 0; i < v->n_people; i++) {
        const struct visit_person *q = &v->people[i];
        struct visit_pair *pr;

        if (q == p || q->state != P_ADMITTED || !q->connected ||
            visit__pair_find(v, p->id, q->id) != NULL)
            continue;
        if ((pr = visit__pair_new(v, env, q, p)) == NULL)
            continue;   /* cannot happen: there is room for every pair */
        visit__send(o, q, visit__peer_json(p, pr, true));
        visit__send(o, p, visit__peer_json(q, pr, false));
    }
}

/* p comes into the call; a connection check still running ends (the
 * call's own media replaces it). The caller tells the clinicians. */
static void visit__admit_quiet(struct visit *v, const struct visit_env *env, struct visit_out *o,
                               struct visit_person *p, const struct visit_person *by)
{
    p->state = P_ADMITTED;
    if (v->admitted_ms == 0)
        v->admitted_ms = env->now_ms;
    visit__check_end(o, p);
    visit__audit(o, "participant.admitted", p, NULL, by);
    if (by != NULL)
        visit__send(o, p, json_pack("{s:s}", "type", "admitted"));
    visit__introduce(v, env, o, p);
}

static void visit__admit(struct visit *v, const struct visit_env *env, struct visit_out *o,
                         struct visit_person *p, const struct visit_person *by)
{
    visit__admit_quiet(v, env, o, p, by);
    visit__lobby(v, env, o);
}

/* --- authentication ------------------------------------------------------------ */

void visit_key(const char *sid, char key[VISIT_KEY_LEN])
{
    static const char domain[] = "quietroom-visit";
    uint8_t md[32];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    memset(md, 0, sizeof(md));
    if (ctx == NULL || EVP_DigestInit_ex2(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, domain, sizeof(domain)) != 1 ||
        EVP_DigestUpdate(ctx, sid, strlen(sid)) != 1 || EVP_DigestFinal_ex(ctx, md, NULL) != 1)
        memset(md, 0xff, sizeof(md)); /* out of memory: a key, if a useless one */
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < (VISIT_KEY_LEN - 1) / 2; i++)
        snprintf(key + 2 * i, 3, "%02x", md[i]);
}

void visit_init(struct visit *v, const char *sid, const char *instance, const struct visit_env *env)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->sid, sizeof(v->sid), "%s", sid);
    visit_key(v->sid, v->key);
    snprintf(v->instance, sizeof(v->instance), "%s", instance);
    v->created_ms = env->now_ms;
    v->created_wall_ms = env->now_wall_ms;
}

static void visit__welcome(const struct visit *v, const struct visit_env *env, struct visit_out *o,
                           struct visit_person *p, const char *type, bool rejoined)
{
    json_t *resume = visit__new_resume(v, p);
    json_t *msg = json_pack("{s:s,s:s,s:s,s:s,s:o?,s:i,s:I,s:I,s:s}", "type", type, "participant",
                            p->id, "role", role_name(p->role), "state",
                            p->state == P_WAITING ? "waiting" : "admitted", "resume", resume,
                            "resume_grace_s", (int)env->cfg->resume_grace_s, "token_expires",
                            (json_int_t)p->token_exp, "max_session_s",
                            (json_int_t)env->cfg->max_session_s, "locale", p->locale);

    if (msg != NULL && rejoined)
        json_object_set_new(msg, "rejoined", json_true());
    visit__send(o, p, msg);
}

static void visit__attach(struct visit *v, struct visit_out *o, struct visit_person *p,
                          const char *addr)
{
    visit__act(o, VISIT_ATTACH, p->id);
    p->connected = true;
    p->gone_ms = 0;
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    v->empty_since_ms = 0;
    if (p->role == ROLE_CLINICIAN)
        v->no_clinician_since_ms = 0;
}

/* The new person is in: admitted (clinicians, or someone coming back into
 * the call) or waiting. Everyone who should know is told. */
static void visit__arrive(struct visit *v, const struct visit_env *env, struct visit_out *o,
                          struct visit_person *p, bool rejoined)
{
    visit__welcome(v, env, o, p, "welcome", rejoined);
    if (p->state == P_ADMITTED) {
        p->state = P_WAITING; /* visit__admit makes it so, and audits it */
        visit__admit(v, env, o, p, NULL);
    } else {
        visit__audit(o, "participant.waiting", p, NULL, NULL);
        visit__lobby(v, env, o);
    }
    visit__room(v, env, o, p->role == ROLE_CLINICIAN ? NULL : p);
}

static struct visit_person *visit__person_new(struct visit *v, const struct visit_env *env,
                                              const struct jwt_claims *cl, enum role role,
                                              const char *id)
{
    struct visit_person *p = &v->people[v->n_people++];

    memset(p, 0, sizeof(*p));
    snprintf(p->id, sizeof(p->id), "%s", id);
    p->role = role;
    p->state = role == ROLE_CLINICIAN ? P_ADMITTED : P_WAITING;
    snprintf(p->sub, sizeof(p->sub), "%s", cl->sub);
    snprintf(p->name, sizeof(p->name), "%s", cl->name);
    snprintf(p->locale, sizeof(p->locale), "%s", cl->locale);
    p->token_exp = cl->exp;
    p->waiting_since_ms = env->now_ms;
    p->check_relay = -1;
    return p;
}

static bool visit__grace_over(const struct visit_env *env, const struct visit_person *p)
{
    return !p->connected && env->now_ms - p->gone_ms > env->cfg->resume_grace_s * 1000u;
}

static bool visit__token_over(const struct visit_env *env, const struct visit_person *p)
{
    return p->token_exp <= (int64_t)(env->now_wall_ms / 1000);
}

/* p, still in the visit, is back on a new connection (a resume secret, or
 * their link again): the old connection, if its socket has not noticed it
 * is dead or is another tab, is told it was replaced and closed; p keeps
 * its state and media links, and is told who its peers are. */
static void visit__take_back(struct visit *v, const struct visit_env *env, struct visit_out *o,
                             struct visit_person *p, const char *addr, bool by_link)
{
    json_t *peers;

    if (p->connected) {
        visit__send(o, p, json_pack("{s:s}", "type", "replaced"));
        visit__close(o, p, VISIT_CLOSE_NORMAL, "replaced");
    }
    visit__check_end(o, p); /* the old page's */
    memset(p->resume_hash, 0, sizeof(p->resume_hash));
    visit__attach(v, o, p, addr);
    visit__audit(o, "auth.success", p, NULL, NULL)->method = by_link ? "token" : "resume";
    visit__audit(o, by_link ? "participant.rejoined" : "participant.resumed", p, NULL, NULL);
    visit__welcome(v, env, o, p, by_link ? "welcome" : "resumed", by_link);
    peers = json_array();
    for (unsigned i = 0; i < v->n_people; i++) {
        const struct visit_person *q = &v->people[i];
        struct visit_pair *pr = visit__pair_find(v, p->id, q->id);
        json_t *pj, *st;

        if (q == p || pr == NULL)
            continue;
        pj = visit__person_json(q);
        json_object_set_new(pj, "initiator", json_boolean(strcmp(pr->a, p->id) == 0));
        if (pr->relay < 0)
            json_object_set_new(pj, "waiting_for_relay", json_true());
        json_array_append_new(peers, pj);
        st = json_pack("{s:s,s:s,s:b}", "type", "peer_status", "participant", p->id, "connected",
                       1);
        if (by_link)
            json_object_set_new(st, "rejoined", json_true());
        visit__send(o, q, st);
    }
    visit__send(o, p, json_pack("{s:s,s:o}", "type", "peers", "peers", peers));
    if (p->state == P_ADMITTED)
        visit__introduce(v, env, o, p);
    visit__lobby(v, env, o);
    visit__room(v, env, o, p->role == ROLE_CLINICIAN ? NULL : p);
}

/* Whether st's token may take it back: never for another sub or role
 * (a reused jti), nor after the clinician removed or declined it. */
static const char *visit__seat_refusal(const struct visit_seat *st, const struct jwt_claims *cl,
                                       enum role role)
{
    if (strcmp(st->sub, cl->sub) != 0 || st->role != role)
        return "token_replayed";
    if (st->state == SEAT_REMOVED)
        return "removed_by_clinician";
    if (st->state == SEAT_DECLINED)
        return "declined_by_clinician";
    return NULL;
}

const char *visit_seat_refusal(struct visit *v, const struct jwt_claims *cl, enum role role,
                               const char *claim, bool *found)
{
    const struct visit_seat *st = visit__seat(v, claim, NULL);

    *found = st != NULL;
    return st != NULL ? visit__seat_refusal(st, cl, role) : NULL;
}

/* A seat's token is back. Its person is still here (take back), or left
 * and returns: into the call if a clinician, or admitted and gone less
 * than the resume grace; else to the waiting room. */
static const char *visit__rejoin(struct visit *v, const struct visit_env *env,
                                 const struct jwt_claims *cl, enum role role,
                                 struct visit_seat *st, const char *addr, struct visit_out *o)
{
    const char *refused = visit__seat_refusal(st, cl, role);
    struct visit_person *p;
    bool recent;

    if (refused != NULL)
        return refused;
    o->seat_taken_back = true;
    if (st->state == SEAT_IN && (p = visit_person(v, st->id)) != NULL) {
        p->token_exp = cl->exp;
        p->rejoined = true;
        visit__take_back(v, env, o, p, addr, true);
        return NULL;
    }
    if (v->n_people >= env->cfg->max_participants || v->n_people >= QR_SESSION_PEOPLE_MAX)
        return "session_full";
    recent = st->was_admitted && env->now_ms - st->left_ms < env->cfg->resume_grace_s * 1000u;
    p = visit__person_new(v, env, cl, role, st->id);
    if (recent)
        p->state = P_ADMITTED;
    p->rejoined = true;
    st->state = SEAT_IN;
    visit__attach(v, o, p, addr);
    visit__audit(o, "auth.success", p, NULL, NULL)->method = "token";
    visit__audit(o, "participant.rejoined", p, NULL, NULL);
    visit__arrive(v, env, o, p, true);
    return NULL;
}

const char *visit_join(struct visit *v, const struct visit_env *env, const struct jwt_claims *cl,
                       enum role role, const char *claim, const char *addr,
                       struct visit_out *o)
{
    struct visit_seat *st = visit__seat(v, claim, NULL);
    struct visit_person *p;
    char id[VISIT_ID_LEN];

    if (st != NULL)
        return visit__rejoin(v, env, cl, role, st, addr, o);
    if (v->n_people >= env->cfg->max_participants || v->n_people >= QR_SESSION_PEOPLE_MAX ||
        (st = visit__seat_new(v, claim)) == NULL)
        return "session_full";
    snprintf(id, sizeof(id), "p%u", ++v->next_person);
    p = visit__person_new(v, env, cl, role, id);
    snprintf(st->id, sizeof(st->id), "%s", id);
    snprintf(st->sub, sizeof(st->sub), "%s", cl->sub);
    st->role = role;
    st->state = SEAT_IN;
    v->part2 = v->part2 || cl->part2;
    visit__attach(v, o, p, addr);
    visit__audit(o, "auth.success", p, NULL, NULL)->method = "token";
    visit__arrive(v, env, o, p, false);
    return NULL;
}

struct visit_person *visit_by_resume(struct visit *v, const uint8_t hash[32])
{
    for (unsigned i = 0; i < v->n_people; i++) {
        if (CRYPTO_memcmp(v->people[i].resume_hash, hash, 32) == 0)
            return &v->people[i];
    }
    return NULL;
}

const char *visit_resume(struct visit *v, const struct visit_env *env, struct visit_person *p,
                         const char *addr, struct visit_out *o)
{
    if (visit__grace_over(env, p) || visit__token_over(env, p))
        return "resume_invalid";
    visit__take_back(v, env, o, p, addr, false);
    return NULL;
}

/* --- clinician controls and member messages ----------------------------------- */

struct visit__req {
    struct visit *v;
    const struct visit_env *env;
    struct visit_person *from;
    const struct msg *m;
    struct visit_out *o;
};

/* The target of a clinician's admit/decline/remove, or NULL (error sent). */
static struct visit_person *visit__target(const struct visit__req *r)
{
    struct visit_person *t = visit_person(r->v, r->m->participant);

    if (t == NULL || t == r->from) {
        visit__error(r->o, r->from->id, "unknown_participant",
                     "no such participant in this session", "participant");
        return NULL;
    }
    return t;
}

static struct visit_person *visit__waiting_target(const struct visit__req *r)
{
    struct visit_person *t = visit__target(r);

    if (t != NULL && t->state != P_WAITING) {
        visit__error(r->o, r->from->id, "not_waiting",
                     "that participant is not in the waiting room", NULL);
        return NULL;
    }
    return t;
}

static void on_admit(const struct visit__req *r)
{
    struct visit_person *t = visit__waiting_target(r);

    if (t != NULL)
        visit__admit(r->v, r->env, r->o, t, r->from);
}

/* Whether a arrived before b: by time, then by id ("p7" before "p12"),
 * since people's places in the array change as others leave. */
static bool visit__earlier(const struct visit_person *a, const struct visit_person *b)
{
    if (a->waiting_since_ms != b->waiting_since_ms)
        return a->waiting_since_ms < b->waiting_since_ms;
    return strtoul(a->id + 1, NULL, 10) < strtoul(b->id + 1, NULL, 10);
}

/* Everyone waiting comes in, in the order they arrived; the clinicians'
 * list is sent once, at the end. */
static void on_admit_all(const struct visit__req *r)
{
    for (;;) {
        struct visit_person *t = NULL;

        for (unsigned i = 0; i < r->v->n_people; i++) {
            struct visit_person *q = &r->v->people[i];

            if (q->state == P_WAITING && (t == NULL || visit__earlier(q, t)))
                t = q;
        }
        if (t == NULL)
            break;
        visit__admit_quiet(r->v, r->env, r->o, t, r->from);
    }
    visit__lobby(r->v, r->env, r->o);
}

/* A clinician's short message to one waiting person or all of them. It is
 * passed on and forgotten: only that it was sent, and to how many, is
 * recorded, never the text. */
static void on_notify(const struct visit__req *r)
{
    struct visit_person *only = NULL;
    struct visit_action *a;
    unsigned n = 0;

    if (r->m->participant != NULL && (only = visit__waiting_target(r)) == NULL)
        return;
    for (unsigned i = 0; i < r->v->n_people; i++) {
        const struct visit_person *q = &r->v->people[i];

        if (q->state != P_WAITING || (only != NULL && q != only))
            continue;
        n += q->connected;
        visit__send(r->o, q, json_pack("{s:s,s:s,s:s}", "type", "notice", "text", r->m->text,
                                       "from", r->from->name));
    }
    a = visit__audit(r->o, "session.notice", only, NULL, r->from);
    a->n_people = n;
    visit__send(r->o, r->from, json_pack("{s:s,s:i}", "type", "notified", "count", (int)n));
}

static void on_decline(const struct visit__req *r)
{
    struct visit_person *t = visit__waiting_target(r);

    if (t == NULL)
        return;
    visit__audit(r->o, "participant.declined", t, NULL, r->from);
    visit__drop(r->v, r->env, r->o, t, "declined", "declined_by_clinician",
                VISIT_CLOSE_FORBIDDEN, SEAT_DECLINED);
}

static void on_remove(const struct visit__req *r)
{
    struct visit_person *t = visit__target(r);

    if (t == NULL)
        return;
    visit__audit(r->o, "participant.removed", t, "removed_by_clinician", r->from);
    visit__drop(r->v, r->env, r->o, t, "removed", "removed_by_clinician", VISIT_CLOSE_FORBIDDEN,
                SEAT_REMOVED);
}

static void on_end(const struct visit__req *r)
{
    struct visit_person by = *r->from;

    visit_end(r->v, r->env, "ended_by_clinician", &by, r->o);
}

static void on_leave(const struct visit__req *r)
{
    visit__audit(r->o, "participant.left", r->from, NULL, NULL);
    visit__drop(r->v, r->env, r->o, r->from, "left", "left", VISIT_CLOSE_NORMAL, SEAT_LEFT);
    if (r->v->n_people == 0)
        visit__emptied(r->v, r->env, r->o);
}

/* The pair between the sender and `to`, or NULL with an error sent. */
static struct visit_pair *visit__media_pair(const struct visit__req *r)
{
    struct visit_person *peer = visit_person(r->v, r->m->to);
    struct visit_pair *pr = peer ? visit__pair_find(r->v, r->from->id, peer->id) : NULL;

    if (pr == NULL) {
        visit__error(r->o, r->from->id, "unknown_peer", "no media link with that participant",
                     "to");
        return NULL;
    }
    r->o->pair = pr;
    snprintf(r->o->peer, sizeof(r->o->peer), "%s", peer->id);
    return pr;
}

static void on_offer(const struct visit__req *r)
{
    struct visit_pair *pr = visit__media_pair(r);

    if (pr == NULL)
        return;
    if (pr->relay < 0) {
        /* Transient: "renegotiate" asks for the offer again once a relay is there. */
        r->o->pair = NULL;
        visit__error(r->o, r->from->id, "no_relay_available",
                     "no media relay is available right now; the call starts when one is", "to");
        return;
    }
    r->o->media = MSG_OFFER;
}

static void on_answer(const struct visit__req *r)
{
    struct visit_pair *pr = visit__media_pair(r);

    if (pr == NULL)
        return;
    if (!pr->have_creds || !visit_pair_offer_pending(pr, r->o->peer)) {
        r->o->pair = NULL;
        visit__error(r->o, r->from->id, "unexpected_answer",
                     "there is no offer from that participant to answer", "to");
        return;
    }
    r->o->media = MSG_ANSWER;
}

/* Trickled candidates would reveal a browser's addresses to its peer: they
 * are accepted (so browsers need no special mode) and never forwarded; the
 * caller counts them. */
static void on_candidate(const struct visit__req *r)
{
    r->o->media = MSG_CANDIDATE;
}

/* The connection check: the page's two peer connections meet on a relay
 * session of this person's own, so nothing reaches anyone else. Each offer
 * starts a new session (the old one is revoked); the core picks the relay
 * and the caller derives the credentials and rewrites the SDP. */
static void on_check_offer(const struct visit__req *r)
{
    struct visit_seat *st = visit__seat(r->v, NULL, r->from->id);
    struct visit_person *p = r->from;
    int relay;

    /* A person read back from a record older than seats has none: no
     * checks for them, rather than no limit. */
    if (st == NULL || st->checks >= QR_CHECKS_PER_SEAT) {
        visit__error(r->o, p->id, "check_limit", "no more connection checks in this visit", NULL);
        return;
    }
    if ((relay = visit__pick(r->env)) < 0) {
        visit__error(r->o, p->id, "no_relay_available",
                     "no media relay is available right now; try the check again later", NULL);
        return;
    }
    visit__check_end(r->o, p);
    p->check_relay = relay;
    snprintf(p->check_sid, sizeof(p->check_sid), "%s-c%u", r->v->instance, ++r->v->next_pair);
    p->check_until_ms = r->env->now_ms + QR_CHECK_MAX_MS;
    r->o->media = MSG_CHECK_OFFER;
    r->o->check = p;
}

static void on_check_answer(const struct visit__req *r)
{
    if (r->from->check_sid[0] == '\0' || !r->from->have_check_creds) {
        visit__error(r->o, r->from->id, "unexpected_answer",
                     "there is no connection check to answer", NULL);
        return;
    }
    r->o->media = MSG_CHECK_ANSWER;
    r->o->check = r->from;
}

/* The page's verdict: kept for the clinicians' waiting list, and the
 * check's relay session ends now. A result with no check running (it
 * timed out, the person was admitted meanwhile, or none was asked for) is
 * dropped: only a check through the relay may be shown to clinicians. */
static void on_check_result(const struct visit__req *r)
{
    struct visit_check *c = &r->from->check;

    if (r->from->check_sid[0] == '\0' || !r->from->have_check_creds)
        return;
    r->o->check_reported = true;
    visit__check_end(r->o, r->from);
    c->have = true;
    snprintf(c->video, sizeof(c->video), "%s", r->m->check.video);
    snprintf(c->transport, sizeof(c->transport), "%s", r->m->check.transport);
    c->loss_pct = r->m->check.loss_pct;
    c->rtt_ms = r->m->check.rtt_ms;
    c->kbps = r->m->check.kbps;
    visit__lobby(r->v, r->env, r->o);
}

static void on_ping(const struct visit__req *r)
{
    visit__act(r->o, VISIT_SEND, r->from->id)->msg = json_pack("{s:s}", "type", "pong");
}

void visit_check_offered(struct visit *v, struct visit_person *p, bool ok)
{
    struct visit_seat *st = visit__seat(v, NULL, p->id);

    if (!ok) {
        p->check_sid[0] = '\0'; /* no credentials went out: nothing to revoke */
        p->have_check_creds = false;
        OPENSSL_cleanse(&p->check_creds, sizeof(p->check_creds));
        return;
    }
    p->have_check_creds = true;
    if (st != NULL)
        st->checks++;
}

bool visit_pair_offer_pending(const struct visit_pair *pr, const char *from)
{
    if (strcmp(pr->a, from) == 0)
        return pr->offer_from_a;
    return strcmp(pr->b, from) == 0 && pr->offer_from_b;
}

static void visit__offer_pending(struct visit_pair *pr, const char *from, bool pending)
{
    if (strcmp(pr->a, from) == 0)
        pr->offer_from_a = pending;
    else if (strcmp(pr->b, from) == 0)
        pr->offer_from_b = pending;
}

void visit_offer_forwarded(struct visit_pair *pr, const char *from)
{
    visit__offer_pending(pr, from, true);
}

int64_t visit_answer_forwarded(struct visit_pair *pr, const char *answerer,
                               const struct visit_env *env)
{
    /* The answer settles the other side's offer; one the answerer made
     * meanwhile (glare) is dropped by its browser and stays harmless. */
    visit__offer_pending(pr, strcmp(pr->a, answerer) == 0 ? pr->b : pr->a, false);
    if (pr->setup_observed)
        return -1;
    pr->setup_observed = true;
    return (int64_t)(env->now_ms - pr->created_ms);
}

enum visit_needs { NEEDS_MEMBER, NEEDS_ADMITTED, NEEDS_CLINICIAN };

static const struct {
    enum msg_type type;
    enum visit_needs needs;
    void (*fn)(const struct visit__req *r);
} visit_handlers[] = {
    {MSG_ADMIT, NEEDS_CLINICIAN, on_admit},
    {MSG_DECLINE, NEEDS_CLINICIAN, on_decline},
    {MSG_REMOVE, NEEDS_CLINICIAN, on_remove},
    {MSG_END, NEEDS_CLINICIAN, on_end},
    {MSG_OFFER, NEEDS_ADMITTED, on_offer},
    {MSG_ANSWER, NEEDS_ADMITTED, on_answer},
    {MSG_CANDIDATE, NEEDS_ADMITTED, on_candidate},
    {MSG_LEAVE, NEEDS_MEMBER, on_leave},
    {MSG_PING, NEEDS_MEMBER, on_ping},
    {MSG_ADMIT_ALL, NEEDS_CLINICIAN, on_admit_all},
    {MSG_NOTIFY, NEEDS_CLINICIAN, on_notify},
    {MSG_CHECK_OFFER, NEEDS_MEMBER, on_check_offer},
    {MSG_CHECK_ANSWER, NEEDS_MEMBER, on_check_answer},
    {MSG_CHECK_RESULT, NEEDS_MEMBER, on_check_result},
};

void visit_message(struct visit *v, const struct visit_env *env, const char *from,
                   const struct msg *m, struct visit_out *o)
{
    struct visit__req r = {v, env, visit_person(v, from), m, o};

    if (r.from == NULL)
        return;
    for (size_t i = 0; i < sizeof(visit_handlers) / sizeof(visit_handlers[0]); i++) {
        if (visit_handlers[i].type != m->type)
            continue;
        if (visit_handlers[i].needs == NEEDS_CLINICIAN && r.from->role != ROLE_CLINICIAN) {
            visit__error(o, from, "not_allowed", "only a clinician may do this", NULL);
            return;
        }
        if (visit_handlers[i].needs != NEEDS_MEMBER && r.from->state != P_ADMITTED) {
            visit__error(o, from, "not_admitted", "wait until the clinician admits you", NULL);
            return;
        }
        visit_handlers[i].fn(&r);
        return;
    }
    visit__error(o, from, "already_authenticated", "this connection is already authenticated",
                 NULL);
}

/* The connection is gone. A member keeps its place for the resume grace. */
void visit_disconnected(struct visit *v, const struct visit_env *env, const char *id,
                        struct visit_out *o)
{
    struct visit_person *p = visit_person(v, id);

    if (p == NULL || !p->connected)
        return;
    p->connected = false;
    p->gone_ms = env->now_ms;
    visit__check_end(o, p);
    visit__audit(o, "participant.disconnected", p, NULL, NULL);
    for (unsigned i = 0; i < v->n_people; i++) {
        if (&v->people[i] != p)
            visit__send(o, &v->people[i], json_pack("{s:s,s:s,s:b}", "type", "peer_status",
                                                    "participant", p->id, "connected", 0));
    }
    if (p->role == ROLE_CLINICIAN) {
        visit__clinician_gone(v, p->gone_ms);
        visit__room(v, env, o, NULL);
    }
    visit__lobby(v, env, o);
}

/* --- timers -------------------------------------------------------------------- */

/* Returns the reason p must go now, or NULL. */
static const char *visit__person_expired(const struct visit_env *env,
                                         const struct visit_person *p)
{
    if (visit__token_over(env, p))
        return "token_expired";
    if (visit__grace_over(env, p))
        return "resume_grace_expired";
    if (p->state == P_WAITING &&
        env->now_ms - p->waiting_since_ms > env->cfg->waiting_timeout_s * 1000u)
        return "waiting_timeout";
    return NULL;
}

/* Returns the reason the whole visit must end now, or NULL. */
static const char *visit__expired(const struct visit *v, const struct visit_env *env)
{
    uint64_t now = env->now_ms;

    if (v->admitted_ms != 0 && now - v->admitted_ms > env->cfg->max_session_s * 1000u)
        return "max_length";
    if (v->no_clinician_since_ms != 0 &&
        now - v->no_clinician_since_ms > env->cfg->idle_timeout_s * 1000u)
        return "idle_timeout";
    return NULL;
}

/* Asks one browser of the pair for a new offer (an ICE restart): the one
 * that offers first if it is here, else the other; if neither is, the
 * first to resume restarts ICE anyway. */
static void visit__renegotiate(struct visit *v, struct visit_out *o, const struct visit_pair *pr,
                               const char *why)
{
    struct visit_person *a = visit_person(v, pr->a), *b = visit_person(v, pr->b);
    struct visit_person *by = a != NULL && a->connected ? a : b, *to = by == a ? b : a;

    if (by != NULL && to != NULL)
        visit__send(o, by, json_pack("{s:s,s:s,s:s}", "type", "renegotiate", "participant",
                                     to->id, "reason", why));
}

static void visit__relay_wait(struct visit *v, struct visit_out *o, const struct visit_pair *pr)
{
    struct visit_person *a = visit_person(v, pr->a), *b = visit_person(v, pr->b);

    if (a == NULL || b == NULL)
        return;
    visit__send(o, a, json_pack("{s:s,s:s}", "type", "relay_wait", "participant", b->id));
    visit__send(o, b, json_pack("{s:s,s:s}", "type", "relay_wait", "participant", a->id));
}

/* A pair whose relay is leaving moves to the best other relay, or waits
 * for one; a waiting pair takes one as soon as there is one. The browsers
 * keep their DTLS and SRTP (end to end): only ICE restarts, on the new
 * relay's credentials and candidates. */
static void visit__place(struct visit *v, const struct visit_env *env, struct visit_out *o,
                         struct visit_pair *pr)
{
    const char *why = pr->relay < 0 ? "relay_available"
                      : env->relay_leaving ? env->relay_leaving(env->ctx, pr->relay)
                                           : NULL;
    struct visit_action *a;
    int to;

    if (why == NULL || ((to = visit__pick(env)) < 0 && pr->relay < 0))
        return;
    visit__pair_revoke(o, pr);
    a = visit__act(o, VISIT_MOVED, NULL);
    a->relay = pr->relay;
    a->relay_to = to;
    snprintf(a->reason, sizeof(a->reason), "%s", why);
    snprintf(a->pair_a, sizeof(a->pair_a), "%s", pr->a);
    snprintf(a->pair_b, sizeof(a->pair_b), "%s", pr->b);
    pr->relay = to;
    visit__pair_session(v, pr);
    pr->offer_from_a = pr->offer_from_b = false;
    pr->have_creds = false;
    OPENSSL_cleanse(&pr->creds, sizeof(pr->creds));
    if (to < 0)
        visit__relay_wait(v, o, pr);
    else
        visit__renegotiate(v, o, pr, why);
}

void visit_tick(struct visit *v, const struct visit_env *env, struct visit_out *o)
{
    const char *why = visit__expired(v, env);

    if (v->ended)
        return;
    if (why != NULL) {
        visit_end(v, env, why, NULL, o);
        return;
    }
    for (unsigned i = v->n_people; i > 0; i--) {
        struct visit_person *p = &v->people[i - 1];

        if (p->check_sid[0] != '\0' && env->now_ms >= p->check_until_ms)
            visit__check_end(o, p);
        if ((why = visit__person_expired(env, p)) == NULL)
            continue;
        visit__audit(o, "participant.timeout", p, why, NULL);
        visit__drop(v, env, o, p, "removed", why, VISIT_CLOSE_TIMEOUT, SEAT_LEFT);
    }
    if (v->n_people == 0) {
        visit__emptied(v, env, o);
        return;
    }
    for (unsigned i = 0; i < v->n_pairs; i++)
        visit__place(v, env, o, &v->pairs[i]);
}

void visit_restored(struct visit *v, const struct visit_env *env)
{
    for (unsigned i = 0; i < v->n_people; i++) {
        bool was_clinician = v->people[i].connected && v->people[i].role == ROLE_CLINICIAN;

        v->people[i].connected = false;
        v->people[i].gone_ms = env->now_ms;
        if (was_clinician)
            visit__clinician_gone(v, env->now_ms);
    }
    for (unsigned i = 0; i < v->n_pairs; i++) {
        v->pairs[i].offer_from_a = v->pairs[i].offer_from_b = false;
        v->pairs[i].have_creds = false;
    }
}

static uint64_t visit__max(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

uint64_t visit_latest_ms(const struct visit *v)
{
    uint64_t t = visit__max(v->created_ms, visit__max(v->admitted_ms, v->no_clinician_since_ms));

    t = visit__max(t, v->empty_since_ms);
    for (unsigned i = 0; i < v->n_seats; i++)
        t = visit__max(t, v->seats[i].left_ms);

    for (unsigned i = 0; i < v->n_people; i++)
        t = visit__max(t, visit__max(v->people[i].gone_ms, v->people[i].waiting_since_ms));
    for (unsigned i = 0; i < v->n_pairs; i++)
        t = visit__max(t, v->pairs[i].created_ms);
    return t;
}
