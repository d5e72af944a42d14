/* The glue between the WebSocket layer and the visit core: a registry of
 * live visits by EHR session id, the connection of each participant, and
 * the performing of what the core decides. Token verification, the replay
 * cache, draining and rate limits happen here, before the core sees an
 * event; everything the core returns is done here, in order. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "conn.h"
#include "events.h"
#include "protocol.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/hindex.h"
#include "quietroom/base/log.h"
#include "relays.h"
#include "server.h"
#include "store.h"

/* --- registry ---------------------------------------------------------------- */

struct sessions {
    uint32_t max, count;
    struct session **slots;
    uint32_t *free;
    uint32_t n_free;
    struct hindex index;
    uint64_t seed;
    int64_t clock_base;                 /* visit clock = monotonic + base */
    uint32_t next_purge_s;              /* spent claims past their token's life go then */
};

struct sessions__key {
    const struct sessions *ss;
    const char *sid;
};

static uint64_t sessions__hash(const struct sessions *ss, const char *sid)
{
    uint64_t h = ss->seed;

    for (const unsigned char *p = (const unsigned char *)sid; *p; p++)
        h = hindex_mix(h ^ *p);
    return h;
}

static bool sessions__eq(const void *ctx, uint32_t id)
{
    const struct sessions__key *k = ctx;

    return strcmp(k->ss->slots[id]->v.sid, k->sid) == 0;
}

struct sessions *sessions_new(uint32_t max)
{
    struct sessions *ss = calloc(1, sizeof(*ss));

    if (ss == NULL)
        return NULL;
    ss->max = max;
    ss->slots = calloc(max, sizeof(*ss->slots));
    ss->free = calloc(max, sizeof(*ss->free));
    if (ss->slots == NULL || ss->free == NULL || hindex_init(&ss->index, max) != 0 ||
        RAND_bytes((unsigned char *)&ss->seed, sizeof(ss->seed)) != 1) {
        free(ss->slots);
        free(ss->free);
        hindex_free(&ss->index);
        free(ss);
        return NULL;
    }
    for (uint32_t i = 0; i < max; i++)
        ss->free[i] = max - 1 - i;
    ss->n_free = max;
    ss->clock_base = (int64_t)clock_wall_ms() - (int64_t)clock_mono_ms();
    return ss;
}

uint64_t sessions_now_ms(const struct sessions *ss)
{
    return (uint64_t)((int64_t)clock_mono_ms() + ss->clock_base);
}

void sessions_clock_floor(struct sessions *ss, uint64_t ms)
{
    uint64_t now = sessions_now_ms(ss);

    if (now <= ms)
        ss->clock_base += (int64_t)(ms - now) + 1;
}

unsigned sessions_count(const struct sessions *ss)
{
    return ss->count;
}

void sessions_census(const struct sessions *ss, struct sessions_census *out)
{
    memset(out, 0, sizeof(*out));
    out->sessions = ss->count;
    for (uint32_t i = 0; i < ss->max && out->sessions > 0; i++) {
        const struct session *s = ss->slots[i];

        for (unsigned j = 0; s != NULL && j < s->v.n_people; j++) {
            const struct visit_person *p = &s->v.people[j];

            out->waiting += p->state == P_WAITING;
            if (p->connected && (unsigned)p->role < ROLE_COUNT)
                out->connected[p->role]++;
        }
    }
}

static struct session *sessions__find(struct sessions *ss, const char *sid)
{
    struct sessions__key k = {ss, sid};
    uint32_t id = hindex_find(&ss->index, sessions__hash(ss, sid), sessions__eq, &k);

    return id == HINDEX_NONE ? NULL : ss->slots[id];
}

/* Puts s (sid set) in a free slot; -1 when full. */
static int sessions__insert(struct sessions *ss, struct session *s)
{
    if (ss->n_free == 0)
        return -1;
    s->slot = ss->free[ss->n_free - 1];
    if (hindex_insert(&ss->index, sessions__hash(ss, s->v.sid), s->slot) != 0)
        return -1;
    ss->n_free--;
    ss->slots[s->slot] = s;
    ss->count++;
    return 0;
}

/* Returns the session for sid, creating it; NULL when at capacity. */
static struct session *sessions__open(struct sessions *ss, const char *sid,
                                      const struct visit_env *env, bool *created)
{
    struct session *s = sessions__find(ss, sid);
    uint8_t rnd[8];
    char instance[17];

    *created = false;
    if (s != NULL)
        return s;
    if (ss->n_free == 0 || (s = calloc(1, sizeof(*s))) == NULL || RAND_bytes(rnd, 8) != 1) {
        free(s);
        return NULL;
    }
    for (int i = 0; i < 8; i++)
        snprintf(instance + 2 * i, 3, "%02x", rnd[i]);
    visit_init(&s->v, sid, instance, env);
    if (sessions__insert(ss, s) != 0) {
        free(s);
        return NULL;
    }
    *created = true;
    return s;
}

struct session *sessions_adopt(struct sessions *ss, const struct visit *v)
{
    struct session *s;

    if (sessions__find(ss, v->sid) != NULL || (s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    s->v = *v;
    if (sessions__insert(ss, s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void sessions__close(struct sessions *ss, struct session *s)
{
    hindex_remove(&ss->index, sessions__hash(ss, s->v.sid), s->slot);
    ss->slots[s->slot] = NULL;
    ss->free[ss->n_free++] = s->slot;
    ss->count--;
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

/* --- performing the core's actions ---------------------------------------------- */

static int session__pick_relay(void *ctx)
{
    struct signal_server *srv = ctx;

    return relays_pick(srv->relays);
}

static struct visit_config session__config(const struct signal_server *srv)
{
    return (struct visit_config){
        .max_participants = srv->cfg.max_participants,
        .waiting_timeout_s = srv->cfg.waiting_timeout_s,
        .idle_timeout_s = srv->cfg.idle_timeout_s,
        .max_session_s = srv->cfg.max_session_s,
        .resume_grace_s = srv->cfg.resume_grace_s,
    };
}

/* The environment of one core call: the clocks are read here, once. */
static struct visit_env session__env(struct signal_server *srv, const struct visit_config *cfg)
{
    return (struct visit_env){
        .cfg = cfg,
        .now_ms = sessions_now_ms(srv->sessions),
        .now_wall_ms = clock_wall_ms(),
        .pick_relay = session__pick_relay,
        .ctx = srv,
    };
}

struct conn *session_conn(struct session *s, const char *id)
{
    for (unsigned i = 0; i < QR_SESSION_PEOPLE_MAX; i++) {
        if (s->conns[i].c != NULL && strcmp(s->conns[i].id, id) == 0)
            return s->conns[i].c;
    }
    return NULL;
}

static void session__bind(struct session *s, const char *id, struct conn *c)
{
    for (unsigned i = 0; i < QR_SESSION_PEOPLE_MAX; i++) {
        if (s->conns[i].c == NULL) {
            snprintf(s->conns[i].id, sizeof(s->conns[i].id), "%s", id);
            s->conns[i].c = c;
            c->s = s;
            snprintf(c->pid, sizeof(c->pid), "%s", id);
            return;
        }
    }
}

static void session__unbind(struct session *s, struct conn *c)
{
    for (unsigned i = 0; i < QR_SESSION_PEOPLE_MAX; i++) {
        if (s->conns[i].c == c) {
            s->conns[i].c = NULL;
            s->conns[i].id[0] = '\0';
        }
    }
    c->s = NULL;
    c->pid[0] = '\0';
}

/* Does what the core decided, in order; `c` is the connection whose
 * request this was (attached on VISIT_ATTACH). Returns true if the visit is
 * over, in which case the caller forgets it. */
static bool session__perform(struct signal_server *srv, struct session *s, struct conn *c,
                             struct visit_out *o)
{
    bool over = false;

    for (unsigned i = 0; i < o->n; i++) {
        struct visit_action *a = &o->a[i];
        struct conn *to = a->kind == VISIT_ATTACH ? c : session_conn(s, a->who);

        switch (a->kind) {
        case VISIT_ATTACH:
            if (c != NULL)
                session__bind(s, a->who, c);
            break;
        case VISIT_SEND:
            if (to != NULL)
                conn_send(to, a->msg);
            else
                json_decref(a->msg);
            a->msg = NULL;
            break;
        case VISIT_ERROR:
            if (to != NULL)
                conn_error(to, a->code, a->message, a->field);
            break;
        case VISIT_CLOSE:
            if (to != NULL) {
                conn_close(to, (enum conn_close_code)a->close_code, a->reason);
                session__unbind(s, to);
            }
            break;
        case VISIT_REVOKE:
            relays_revoke(srv->relays, a->relay, a->relay_sid, media_creds_expiry(srv));
            break;
        case VISIT_AUDIT:
            events_visit(srv, &s->v, a);
            break;
        case VISIT_ENDED:
            stats_count(&srv->stats.ended, a->reason);
            over = true;
            break;
        }
    }
    visit_out_reset(o);
    return over;
}

static bool session__ends(const struct visit_out *o)
{
    for (unsigned i = 0; i < o->n; i++) {
        if (o->a[i].kind == VISIT_ENDED)
            return true;
    }
    return false;
}

/* Stores what the core changed, then runs the actions and forgets the
 * visit if it is over. A failed write does not hold the visit up (it is
 * retried on the tick); auth and resume, which must not hand out a seat or
 * a secret the store lost, check before they get here. */
static void session__finish(struct signal_server *srv, struct session *s, struct conn *c,
                            struct visit_out *o)
{
    session_store_save(srv, s, session__ends(o));
    if (session__perform(srv, s, c, o))
        sessions__close(srv->sessions, s);
}

void sessions_end_all(struct signal_server *srv, const char *reason)
{
    struct sessions *ss = srv->sessions;
    struct visit_config cfg = session__config(srv);
    struct visit_env env = session__env(srv, &cfg);
    struct visit_out o;

    visit_out_init(&o);
    for (uint32_t i = 0; i < ss->max; i++) {
        if (ss->slots[i] == NULL)
            continue;
        visit_end(&ss->slots[i]->v, &env, reason, NULL, &o);
        session__finish(srv, ss->slots[i], NULL, &o);
    }
}

void sessions_restored(struct signal_server *srv)
{
    struct sessions *ss = srv->sessions;
    struct visit_config cfg = session__config(srv);
    struct visit_env env = session__env(srv, &cfg);

    for (uint32_t i = 0; i < ss->max; i++) {
        if (ss->slots[i] != NULL)
            visit_restored(&ss->slots[i]->v, &env);
    }
}

void sessions_free(struct sessions *ss)
{
    if (ss == NULL)
        return;
    hindex_free(&ss->index);
    free(ss->slots);
    free(ss->free);
    free(ss);
}

/* --- authentication ------------------------------------------------------------ */

/* A token or resume secret was refused: say why, then close. */
static void session__refuse(struct signal_server *srv, struct conn *c, const char *code,
                            const char *message, const char *field,
                            const struct jwt_claims *claims)
{
    stats_count(&srv->stats.auth, code);
    events_auth_failed(srv, c->addr, code, claims);
    conn_refuse(c, code, message, field);
}

/* While draining, only people of visits already here may join: checked
 * before the token's jti is spent, so the same link works on the next
 * server. */
static bool session__draining_refuses(struct signal_server *srv, const char *sid)
{
    return srv->draining && sessions__find(srv->sessions, sid) == NULL;
}

/* The store could not record a seat or a secret: the core's change is
 * undone (the visit as it was, or gone if this request made it) and the
 * person is told to try again. */
static void session__unavailable(struct signal_server *srv, struct conn *c, struct session *s,
                                 const struct visit *before, bool created,
                                 const struct jwt_claims *cl)
{
    if (created)
        sessions__close(srv->sessions, s);
    else
        s->v = *before;
    session__refuse(srv, c, "state_unavailable",
                    "the server cannot record this now; try again in a moment", NULL, cl);
}

/* The id the core gave the person it just seated (its VISIT_ATTACH). */
static const char *session__seated(const struct visit_out *o)
{
    for (unsigned i = 0; i < o->n; i++) {
        if (o->a[i].kind == VISIT_ATTACH)
            return o->a[i].who;
    }
    return "";
}

/* Spends the token's jti in the store, naming the seat it opened, and
 * writes the visit with that seat; both must be durable before welcome.
 * NULL, or the refusal code. */
static const char *session__commit_join(struct signal_server *srv, struct session *s,
                                        const struct jwt_claims *cl, const struct visit_out *o)
{
    char key[STORE_KEY_LEN];
    enum store_result r;

    if (store_claim_key(cl->iss, cl->jti, key) != 0)
        return "state_unavailable";
    r = store_claim(srv->store, key, cl->exp + QR_TOKEN_SKEW_MAX_S, cl->sid, session__seated(o));
    if (r == STORE_TAKEN)
        return "token_replayed";
    if (r != STORE_OK) {
        stats_count(&srv->stats.store_failures, "claim");
        return "token_claim_unavailable";
    }
    if (session_store_save(srv, s, false) != STORE_OK)
        return "state_unavailable";
    return NULL;
}

static void session__auth(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    int64_t now = (int64_t)clock_wall_s();
    struct visit_config cfg = session__config(srv);
    struct visit_env env = session__env(srv, &cfg);
    struct jwt_claims cl;
    enum jwt_error e =
        jwt_verify(srv->ehr_keys, &srv->policy, m->token, strlen(m->token), now, &cl);
    struct visit *before = NULL;
    struct visit_out o;
    struct session *s;
    const char *refused;
    bool created;
    int role = -1;

    if (e == JWT_OK && (role = role_parse(cl.role)) < 0)
        e = JWT_ERR_ROLE_NOT_ALLOWED;
    if (e == JWT_OK && session__draining_refuses(srv, cl.sid)) {
        session__refuse(srv, c, "server_draining",
                        "this server is shutting down and takes no new visits; connect again",
                        NULL, &cl);
        return;
    }
    if (e != JWT_OK) {
        bool signed_ok = e >= JWT_ERR_WRONG_ISSUER && e != JWT_ERR_MISSING_CLAIM &&
                         e != JWT_ERR_BAD_CLAIM;

        session__refuse(srv, c, jwt_error_code(e), jwt_error_message(e),
                        e == JWT_ERR_MISSING_CLAIM || e == JWT_ERR_BAD_CLAIM ? cl.missing : NULL,
                        signed_ok ? &cl : NULL);
        return;
    }
    s = sessions__open(srv->sessions, cl.sid, &env, &created);
    if (s != NULL && (before = malloc(sizeof(*before))) == NULL && created)
        sessions__close(srv->sessions, s);
    if (s == NULL || before == NULL) {
        session__refuse(srv, c, "server_busy", "the server cannot take more sessions now", NULL,
                        &cl);
        return;
    }
    *before = s->v;
    visit_out_init(&o);
    if ((refused = visit_join(&s->v, &env, &cl, (enum role)role, c->addr, &o)) != NULL) {
        session__refuse(srv, c, refused, "this session has as many participants as it may", NULL,
                        &cl);
        goto out;
    }
    if ((refused = session__commit_join(srv, s, &cl, &o)) != NULL) {
        visit_out_reset(&o);
        if (strcmp(refused, "state_unavailable") == 0) {
            session__unavailable(srv, c, s, before, created, &cl);
            goto out;
        }
        if (created)
            sessions__close(srv->sessions, s);
        else
            s->v = *before;
        session__refuse(srv, c, refused, strcmp(refused, "token_replayed") == 0
                                             ? jwt_error_message(JWT_ERR_REPLAYED)
                                             : "the sign-in cannot be recorded now; try the "
                                               "link again in a moment",
                        NULL, &cl);
        goto out;
    }
    if (created)
        srv->stats.sessions_started++;
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    stats_count(&srv->stats.auth, "ok");
    session__finish(srv, s, c, &o);
out:
    OPENSSL_cleanse(before, sizeof(*before));
    free(before);
}

static void session__resume(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    struct sessions *ss = srv->sessions;
    struct visit_config cfg = session__config(srv);
    struct visit_env env = session__env(srv, &cfg);
    struct visit_person *p = NULL;
    struct session *s = NULL;
    struct visit *before = NULL;
    struct visit_out o;
    uint8_t hash[32];

    /* A scan: resumes are rare, and this keeps no second index of secrets. */
    visit_resume_hash(m->resume, hash);
    for (uint32_t i = 0; i < ss->max && p == NULL; i++) {
        if ((s = ss->slots[i]) != NULL)
            p = visit_by_resume(&s->v, hash);
    }
    visit_out_init(&o);
    if (p == NULL || (before = malloc(sizeof(*before))) == NULL ||
        (*before = s->v, visit_resume(&s->v, &env, p, c->addr, &o)) != NULL) {
        session__refuse(srv, c, "resume_invalid",
                        "this resume secret is unknown, used or expired; join again from the EHR",
                        NULL, NULL);
        goto out;
    }
    /* The new secret goes out only once the store has its hash. */
    if (session_store_save(srv, s, false) != STORE_OK) {
        visit_out_reset(&o);
        session__unavailable(srv, c, s, before, false, NULL);
        goto out;
    }
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    stats_count(&srv->stats.auth, "resumed");
    session__finish(srv, s, c, &o);
out:
    if (before != NULL)
        OPENSSL_cleanse(before, sizeof(*before));
    free(before);
}

/* --- messages, closes, timers ----------------------------------------------------- */

static void session__dispatch(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    struct session *s = c->s;
    struct visit_config cfg = session__config(srv);
    struct visit_env env = session__env(srv, &cfg);
    struct visit_out o;

    visit_out_init(&o);
    visit_message(&s->v, &env, c->pid, m, &o);
    if (o.media == MSG_CANDIDATE)
        srv->stats.candidates_dropped++;
    else if (o.media != MSG_TYPE_COUNT)
        media_forward(srv, s, c, &env, &o, m);
    session__finish(srv, s, c, &o);
}

void session_on_message(struct signal_server *srv, struct conn *c, const char *buf, size_t len)
{
    struct msg m;
    enum proto_error e;

    if (!conn_rate_ok(c, clock_mono_ms())) {
        conn_error(c, "rate_limited", "too many messages; slow down", NULL);
        if (c->strikes >= QR_SIGNAL_RATE_STRIKES)
            conn_close(c, CONN_CLOSE_RATE, "rate limited");
        return;
    }
    srv->stats.messages++;
    if ((e = protocol_parse(buf, len, &m)) != PROTO_OK) {
        conn_error(c, protocol_error_code(e), "the message does not follow the protocol",
                   m.field);
        if (c->s == NULL)
            conn_close(c, CONN_CLOSE_PROTOCOL, protocol_error_code(e));
        return;
    }
    if (c->s == NULL && m.type == MSG_AUTH)
        session__auth(srv, c, &m);
    else if (c->s == NULL && m.type == MSG_RESUME)
        session__resume(srv, c, &m);
    else if (c->s == NULL)
        session__refuse(srv, c, "auth_required", "the first message must be auth or resume",
                        NULL, NULL);
    else
        session__dispatch(srv, c, &m);
    msg_free(&m);
}

/* The WebSocket is gone. A member keeps its place for the resume grace. */
void session_on_close(struct signal_server *srv, struct conn *c)
{
    struct session *s = c->s;
    struct visit_config cfg = session__config(srv);
    struct visit_env env;
    struct visit_out o;
    char pid[VISIT_ID_LEN];

    if (s == NULL)
        return;
    env = session__env(srv, &cfg);
    snprintf(pid, sizeof(pid), "%s", c->pid);
    session__unbind(s, c);
    visit_out_init(&o);
    visit_disconnected(&s->v, &env, pid, &o);
    session__finish(srv, s, NULL, &o);
}

void session_tick(struct signal_server *srv)
{
    struct sessions *ss = srv->sessions;
    struct visit_config cfg = session__config(srv);
    struct visit_env env = session__env(srv, &cfg);
    struct visit_out o;

    if (clock_wall_s() >= ss->next_purge_s) {
        store_purge(srv->store, (int64_t)clock_wall_s());
        ss->next_purge_s = clock_wall_s() + QR_STORE_PURGE_S;
    }
    visit_out_init(&o);
    for (uint32_t i = 0; i < ss->max; i++) {
        if (ss->slots[i] == NULL)
            continue;
        visit_tick(&ss->slots[i]->v, &env, &o);
        /* Time passing changes a visit only through actions. */
        if (o.n == 0)
            session_store_retry(srv, ss->slots[i]);
        else
            session__finish(srv, ss->slots[i], NULL, &o);
    }
}
