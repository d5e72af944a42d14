/* Session state machine. A person authenticates (EHR token or resume
 * secret), waits or is admitted, and eventually leaves, is declined or
 * removed, times out, or the session ends. Which message is allowed in which
 * state is the handler table at the bottom; timers run from session_tick. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "conn.h"
#include "events.h"
#include "protocol.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/hindex.h"
#include "quietroom/base/log.h"
#include "relays.h"
#include "server.h"

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

static int role_parse(const char *name)
{
    for (int r = 0; r < ROLE_COUNT; r++) {
        if (strcmp(name, role_names[r]) == 0)
            return r;
    }
    return -1;
}

/* --- registry ---------------------------------------------------------------- */

struct sessions {
    uint32_t max, count;
    struct session **slots;
    uint32_t *free;
    uint32_t n_free;
    struct hindex index;
    uint64_t seed;
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

    return strcmp(k->ss->slots[id]->sid, k->sid) == 0;
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
    return ss;
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

        for (unsigned j = 0; s != NULL && j < s->n_people; j++) {
            const struct participant *p = s->people[j];

            out->waiting += p->state == P_WAITING;
            if (p->conn != NULL && (unsigned)p->role < ROLE_COUNT)
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

/* Returns the session for sid, creating it; NULL when at capacity. */
static struct session *sessions__open(struct sessions *ss, const char *sid, bool *created)
{
    struct session *s = sessions__find(ss, sid);
    uint8_t rnd[8];

    *created = false;
    if (s != NULL)
        return s;
    if (ss->n_free == 0 || (s = calloc(1, sizeof(*s))) == NULL || RAND_bytes(rnd, 8) != 1) {
        free(s);
        return NULL;
    }
    snprintf(s->sid, sizeof(s->sid), "%s", sid);
    for (int i = 0; i < 8; i++)
        snprintf(s->instance + 2 * i, 3, "%02x", rnd[i]);
    s->created_ms = clock_mono_ms();
    s->created_wall_ms = clock_wall_ms();
    s->slot = ss->free[ss->n_free - 1];
    if (hindex_insert(&ss->index, sessions__hash(ss, sid), s->slot) != 0) {
        free(s);
        return NULL;
    }
    ss->n_free--;
    ss->slots[s->slot] = s;
    ss->count++;
    *created = true;
    return s;
}

static void sessions__close(struct sessions *ss, struct session *s)
{
    hindex_remove(&ss->index, sessions__hash(ss, s->sid), s->slot);
    ss->slots[s->slot] = NULL;
    ss->free[ss->n_free++] = s->slot;
    ss->count--;
    free(s);
}

/* --- small helpers -------------------------------------------------------------- */

static void session__send(struct participant *p, json_t *msg)
{
    if (p->conn != NULL)
        conn_send(p->conn, msg);
    else
        json_decref(msg);
}

static struct participant *session__person(struct session *s, const char *id)
{
    for (unsigned i = 0; i < s->n_people; i++) {
        if (strcmp(s->people[i]->id, id) == 0)
            return s->people[i];
    }
    return NULL;
}

static bool session__has_connected_clinician(const struct session *s)
{
    for (unsigned i = 0; i < s->n_people; i++) {
        if (s->people[i]->role == ROLE_CLINICIAN && s->people[i]->conn != NULL)
            return true;
    }
    return false;
}

/* The idle clock starts when the last connected clinician goes; a session
 * no clinician has opened yet is governed by the waiting-room timeout. */
static void session__clinician_gone(struct session *s, uint64_t now)
{
    if (!session__has_connected_clinician(s) && s->no_clinician_since_ms == 0)
        s->no_clinician_since_ms = now;
}

static json_t *session__person_json(const struct participant *p)
{
    return json_pack("{s:s,s:s,s:s,s:b}", "participant", p->id, "role", role_name(p->role),
                     "name", p->name, "connected", p->conn != NULL);
}

/* Tells every connected clinician who waits and who is in. */
static void session__lobby(struct session *s)
{
    for (unsigned i = 0; i < s->n_people; i++) {
        struct participant *c = s->people[i];
        json_t *waiting, *present;

        if (c->role != ROLE_CLINICIAN || c->conn == NULL)
            continue;
        waiting = json_array();
        present = json_array();
        for (unsigned j = 0; j < s->n_people; j++) {
            struct participant *p = s->people[j];

            json_array_append_new(p->state == P_WAITING ? waiting : present,
                                  session__person_json(p));
        }
        session__send(c, json_pack("{s:s,s:o,s:o}", "type", "lobby", "waiting", waiting,
                                   "present", present));
    }
}

/* A fresh resume secret: the person keeps the secret, we keep its hash. */
static json_t *session__new_resume(struct participant *p)
{
    uint8_t raw[QR_RESUME_SECRET_BYTES];
    char b64[4 * QR_RESUME_SECRET_BYTES / 3 + 4];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return NULL;
    EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
    EVP_Digest(b64, strlen(b64), p->resume_hash, NULL, EVP_sha256(), NULL);
    OPENSSL_cleanse(raw, sizeof(raw));
    return json_string(b64);
}

static void session__forget_resume(struct participant *p)
{
    memset(p->resume_hash, 0, sizeof(p->resume_hash));
}

/* --- leaving ------------------------------------------------------------------- */

/* Ends every pair p is in and tells the others why p is gone. */
static void session__unpair(struct signal_server *srv, struct participant *p, const char *reason)
{
    struct session *s = p->s;

    for (unsigned i = s->n_pairs; i > 0; i--) {
        struct pair *pr = s->pairs[i - 1];

        if (pr->a == p || pr->b == p)
            media_pair_end(srv, s, pr);
    }
    for (unsigned i = 0; i < s->n_people; i++) {
        if (s->people[i] != p && s->people[i]->state == P_ADMITTED)
            session__send(s->people[i], json_pack("{s:s,s:s,s:s}", "type", "peer_left",
                                                  "participant", p->id, "reason", reason));
    }
}

/* Removes p from its session; its connection, if any, is told `what` with
 * `reason` and closed with code. */
static void session__drop(struct signal_server *srv, struct participant *p, const char *what,
                          const char *reason, enum conn_close_code code)
{
    struct session *s = p->s;

    session__unpair(srv, p, reason);
    if (p->conn != NULL) {
        conn_send(p->conn, json_pack("{s:s,s:s}", "type", what, "reason", reason));
        conn_close(p->conn, code, reason);
        p->conn->p = NULL;
    }
    for (unsigned i = 0; i < s->n_people; i++) {
        if (s->people[i] == p) {
            s->people[i] = s->people[--s->n_people];
            break;
        }
    }
    if (p->role == ROLE_CLINICIAN)
        session__clinician_gone(s, clock_mono_ms());
    OPENSSL_cleanse(p, sizeof(*p));
    free(p);
    session__lobby(s);
}

/* Ends the session for everyone; frees it. */
static void session__end(struct signal_server *srv, struct session *s, const char *reason,
                         const struct participant *by)
{
    events_session_ended(srv, s, reason, by);
    stats_count(&srv->stats.ended, reason);
    while (s->n_pairs > 0)
        media_pair_end(srv, s, s->pairs[s->n_pairs - 1]);
    while (s->n_people > 0)
        session__drop(srv, s->people[s->n_people - 1], "ended", reason, CONN_CLOSE_ENDED);
    sessions__close(srv->sessions, s);
}

void sessions_end_all(struct signal_server *srv, const char *reason)
{
    struct sessions *ss = srv->sessions;

    for (uint32_t i = 0; i < ss->max; i++) {
        if (ss->slots[i] != NULL)
            session__end(srv, ss->slots[i], reason, NULL);
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

/* --- admission ---------------------------------------------------------------- */

static void session__introduce(struct signal_server *srv, struct participant *p)
{
    struct session *s = p->s;

    for (unsigned i = 0; i < s->n_people; i++) {
        struct participant *q = s->people[i];

        if (q == p || q->state != P_ADMITTED || q->conn == NULL || media_pair_find(s, p, q))
            continue;
        if (media_pair_new(srv, s, q, p) == NULL) {
            session__send(q, json_pack("{s:s,s:s,s:s}", "type", "error", "code",
                                       "no_relay_available", "message",
                                       "no media relay is available right now"));
            session__send(p, json_pack("{s:s,s:s,s:s}", "type", "error", "code",
                                       "no_relay_available", "message",
                                       "no media relay is available right now"));
            continue;
        }
        session__send(q, json_pack("{s:s,s:s,s:s,s:s,s:b}", "type", "peer", "participant", p->id,
                                   "role", role_name(p->role), "name", p->name, "initiator", 1));
        session__send(p, json_pack("{s:s,s:s,s:s,s:s,s:b}", "type", "peer", "participant", q->id,
                                   "role", role_name(q->role), "name", q->name, "initiator", 0));
    }
}

static void session__admit(struct signal_server *srv, struct participant *p,
                           const struct participant *by)
{
    p->state = P_ADMITTED;
    if (p->s->admitted_ms == 0)
        p->s->admitted_ms = clock_mono_ms();
    events_participant(srv, p, "participant.admitted", NULL, by);
    if (by != NULL)
        session__send(p, json_pack("{s:s}", "type", "admitted"));
    session__introduce(srv, p);
    session__lobby(p->s);
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

static struct participant *session__join(struct signal_server *srv, struct conn *c,
                                         const struct jwt_claims *cl, enum role role)
{
    bool created;
    struct session *s = sessions__open(srv->sessions, cl->sid, &created);
    struct participant *p;

    if (created)
        srv->stats.sessions_started++;
    if (s == NULL || s->n_people >= srv->cfg.max_participants ||
        (p = calloc(1, sizeof(*p))) == NULL) {
        session__refuse(srv, c, s == NULL ? "server_busy" : "session_full",
                        s == NULL ? "the server cannot take more sessions now"
                                  : "this session has as many participants as it may",
                        NULL, cl);
        return NULL;
    }
    p->s = s;
    snprintf(p->id, sizeof(p->id), "p%u", ++s->next_person);
    p->role = role;
    p->state = role == ROLE_CLINICIAN ? P_ADMITTED : P_WAITING;
    snprintf(p->sub, sizeof(p->sub), "%s", cl->sub);
    snprintf(p->name, sizeof(p->name), "%s", cl->name);
    snprintf(p->addr, sizeof(p->addr), "%s", c->addr);
    p->token_exp = cl->exp;
    p->conn = c;
    p->waiting_since_ms = clock_mono_ms();
    s->people[s->n_people++] = p;
    s->part2 = s->part2 || cl->part2;
    if (role == ROLE_CLINICIAN)
        s->no_clinician_since_ms = 0;
    c->p = p;
    return p;
}

static void session__welcome(struct signal_server *srv, struct participant *p, const char *type)
{
    json_t *resume = session__new_resume(p);

    session__send(p, json_pack("{s:s,s:s,s:s,s:s,s:o?,s:i,s:I,s:I}", "type", type, "participant",
                               p->id, "role", role_name(p->role), "state",
                               p->state == P_WAITING ? "waiting" : "admitted", "resume", resume,
                               "resume_grace_s", (int)srv->cfg.resume_grace_s, "token_expires",
                               (json_int_t)p->token_exp, "max_session_s",
                               (json_int_t)srv->cfg.max_session_s));
}

/* While draining, only people of visits already here may join: checked
 * before the token's jti is spent, so the same link works on the next
 * server. */
static bool session__draining_refuses(struct signal_server *srv, const char *sid)
{
    return srv->draining && sessions__find(srv->sessions, sid) == NULL;
}

static void session__auth(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    int64_t now = (int64_t)clock_wall_s();
    struct jwt_claims cl;
    enum jwt_error e =
        jwt_verify(srv->ehr_keys, &srv->policy, m->token, strlen(m->token), now, &cl);
    struct participant *p;
    int role = -1;

    if (e == JWT_OK && (role = role_parse(cl.role)) < 0)
        e = JWT_ERR_ROLE_NOT_ALLOWED;
    if (e == JWT_OK && session__draining_refuses(srv, cl.sid)) {
        session__refuse(srv, c, "server_draining",
                        "this server is shutting down and takes no new visits; connect again",
                        NULL, &cl);
        return;
    }
    if (e == JWT_OK)
        e = jwt_replay_check(srv->replay, cl.iss, cl.jti, cl.exp, now);
    if (e != JWT_OK) {
        bool signed_ok = e >= JWT_ERR_WRONG_ISSUER && e != JWT_ERR_MISSING_CLAIM &&
                         e != JWT_ERR_BAD_CLAIM;

        session__refuse(srv, c, jwt_error_code(e), jwt_error_message(e),
                        e == JWT_ERR_MISSING_CLAIM || e == JWT_ERR_BAD_CLAIM ? cl.missing : NULL,
                        signed_ok ? &cl : NULL);
        return;
    }
    if ((p = session__join(srv, c, &cl, (enum role)role)) == NULL)
        return;
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    stats_count(&srv->stats.auth, "ok");
    events_auth_ok(srv, p, "token");
    session__welcome(srv, p, "welcome");
    if (p->role == ROLE_CLINICIAN) {
        session__admit(srv, p, NULL);
    } else {
        events_participant(srv, p, "participant.waiting", NULL, NULL);
        session__lobby(p->s);
    }
}

/* Finds the person whose current resume secret is `secret` (a scan: resumes
 * are rare, and this keeps no second index of secrets). */
static struct participant *session__by_resume(struct sessions *ss, const char *secret)
{
    uint8_t hash[32];

    EVP_Digest(secret, strlen(secret), hash, NULL, EVP_sha256(), NULL);
    for (uint32_t i = 0; i < ss->max; i++) {
        struct session *s = ss->slots[i];

        for (unsigned j = 0; s != NULL && j < s->n_people; j++) {
            if (CRYPTO_memcmp(s->people[j]->resume_hash, hash, sizeof(hash)) == 0)
                return s->people[j];
        }
    }
    return NULL;
}

static void session__resume(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    struct participant *p = session__by_resume(srv->sessions, m->resume);
    uint64_t now = clock_mono_ms();
    json_t *peers;

    if (p == NULL || (p->conn == NULL && now - p->gone_ms > srv->cfg.resume_grace_s * 1000u) ||
        p->token_exp <= (int64_t)clock_wall_s()) {
        session__refuse(srv, c, "resume_invalid",
                        "this resume secret is unknown, used or expired; join again from the EHR",
                        NULL, NULL);
        return;
    }
    if (p->conn != NULL) {
        /* The old socket has not noticed it is dead; the new one wins. */
        conn_close(p->conn, CONN_CLOSE_NORMAL, "replaced");
        p->conn->p = NULL;
    }
    session__forget_resume(p);
    p->conn = c;
    p->gone_ms = 0;
    snprintf(p->addr, sizeof(p->addr), "%s", c->addr);
    c->p = p;
    if (p->role == ROLE_CLINICIAN)
        p->s->no_clinician_since_ms = 0;
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    stats_count(&srv->stats.auth, "resumed");
    events_auth_ok(srv, p, "resume");
    events_participant(srv, p, "participant.resumed", NULL, NULL);
    session__welcome(srv, p, "resumed");
    peers = json_array();
    for (unsigned i = 0; i < p->s->n_people; i++) {
        struct participant *q = p->s->people[i];
        struct pair *pr = media_pair_find(p->s, p, q);

        if (q == p || pr == NULL)
            continue;
        json_array_append_new(peers, session__person_json(q));
        json_object_set_new(json_array_get(peers, json_array_size(peers) - 1), "initiator",
                            json_boolean(pr->a == p));
        session__send(q, json_pack("{s:s,s:s,s:b}", "type", "peer_status", "participant", p->id,
                                   "connected", 1));
    }
    session__send(p, json_pack("{s:s,s:o}", "type", "peers", "peers", peers));
    if (p->state == P_ADMITTED)
        session__introduce(srv, p);
    session__lobby(p->s);
}

/* --- clinician controls and member messages ----------------------------------- */

/* The target of a clinician's admit/decline/remove, or NULL (error sent). */
static struct participant *session__target(struct conn *c, const struct msg *m)
{
    struct participant *t = session__person(c->p->s, m->participant);

    if (t == NULL || t == c->p) {
        conn_error(c, "unknown_participant", "no such participant in this session",
                   "participant");
        return NULL;
    }
    return t;
}

static void on_admit(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    struct participant *t = session__target(c, m);

    if (t == NULL)
        return;
    if (t->state != P_WAITING) {
        conn_error(c, "not_waiting", "that participant is not in the waiting room", NULL);
        return;
    }
    session__admit(srv, t, c->p);
}

static void on_decline(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    struct participant *t = session__target(c, m);

    if (t == NULL)
        return;
    if (t->state != P_WAITING) {
        conn_error(c, "not_waiting", "that participant is not in the waiting room", NULL);
        return;
    }
    events_participant(srv, t, "participant.declined", NULL, c->p);
    session__drop(srv, t, "declined", "declined_by_clinician", CONN_CLOSE_FORBIDDEN);
}

static void on_remove(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    struct participant *t = session__target(c, m);

    if (t == NULL)
        return;
    events_participant(srv, t, "participant.removed", "removed_by_clinician", c->p);
    session__drop(srv, t, "removed", "removed_by_clinician", CONN_CLOSE_FORBIDDEN);
}

static void on_end(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    (void)m;
    session__end(srv, c->p->s, "ended_by_clinician", c->p);
}

static void on_leave(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    struct participant *p = c->p;
    struct session *s = p->s;

    (void)m;
    events_participant(srv, p, "participant.left", NULL, NULL);
    session__drop(srv, p, "left", "left", CONN_CLOSE_NORMAL);
    if (s->n_people == 0) {
        stats_count(&srv->stats.ended, "empty");
        sessions__close(srv->sessions, s);
    }
}

static void on_offer(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    media_on_offer(srv, c, m->to, m->sdp, m->sdp_len);
}

static void on_answer(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    media_on_answer(srv, c, m->to, m->sdp, m->sdp_len);
}

/* Trickled candidates would reveal a browser's addresses to its peer: they
 * are accepted (so browsers need no special mode) and never forwarded. */
static void on_candidate(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    (void)c;
    (void)m;
    srv->stats.candidates_dropped++;
}

static void on_ping(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    (void)srv;
    (void)m;
    conn_send(c, json_pack("{s:s}", "type", "pong"));
}

enum session_needs { NEEDS_MEMBER, NEEDS_ADMITTED, NEEDS_CLINICIAN };

static const struct {
    enum msg_type type;
    enum session_needs needs;
    void (*fn)(struct signal_server *srv, struct conn *c, const struct msg *m);
} session_handlers[] = {
    {MSG_ADMIT, NEEDS_CLINICIAN, on_admit},
    {MSG_DECLINE, NEEDS_CLINICIAN, on_decline},
    {MSG_REMOVE, NEEDS_CLINICIAN, on_remove},
    {MSG_END, NEEDS_CLINICIAN, on_end},
    {MSG_OFFER, NEEDS_ADMITTED, on_offer},
    {MSG_ANSWER, NEEDS_ADMITTED, on_answer},
    {MSG_CANDIDATE, NEEDS_ADMITTED, on_candidate},
    {MSG_LEAVE, NEEDS_MEMBER, on_leave},
    {MSG_PING, NEEDS_MEMBER, on_ping},
};

static void session__dispatch(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    const struct participant *p = c->p;

    for (size_t i = 0; i < sizeof(session_handlers) / sizeof(session_handlers[0]); i++) {
        if (session_handlers[i].type != m->type)
            continue;
        if (session_handlers[i].needs == NEEDS_CLINICIAN && p->role != ROLE_CLINICIAN) {
            conn_error(c, "not_allowed", "only a clinician may do this", NULL);
            return;
        }
        if (session_handlers[i].needs != NEEDS_MEMBER && p->state != P_ADMITTED) {
            conn_error(c, "not_admitted", "wait until the clinician admits you", NULL);
            return;
        }
        session_handlers[i].fn(srv, c, m);
        return;
    }
    conn_error(c, "already_authenticated", "this connection is already authenticated", NULL);
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
        if (c->p == NULL)
            conn_close(c, CONN_CLOSE_PROTOCOL, protocol_error_code(e));
        return;
    }
    if (c->p == NULL && m.type == MSG_AUTH)
        session__auth(srv, c, &m);
    else if (c->p == NULL && m.type == MSG_RESUME)
        session__resume(srv, c, &m);
    else if (c->p == NULL)
        session__refuse(srv, c, "auth_required", "the first message must be auth or resume",
                        NULL, NULL);
    else
        session__dispatch(srv, c, &m);
    msg_free(&m);
}

/* The WebSocket is gone. A member keeps its place for the resume grace. */
void session_on_close(struct signal_server *srv, struct conn *c)
{
    struct participant *p = c->p;

    if (p == NULL)
        return;
    p->conn = NULL;
    p->gone_ms = clock_mono_ms();
    c->p = NULL;
    events_participant(srv, p, "participant.disconnected", NULL, NULL);
    for (unsigned i = 0; i < p->s->n_people; i++) {
        if (p->s->people[i] != p)
            session__send(p->s->people[i], json_pack("{s:s,s:s,s:b}", "type", "peer_status",
                                                     "participant", p->id, "connected", 0));
    }
    if (p->role == ROLE_CLINICIAN)
        session__clinician_gone(p->s, p->gone_ms);
    session__lobby(p->s);
}

/* --- timers -------------------------------------------------------------------- */

/* Returns the reason p must go now, or NULL. */
static const char *session__person_expired(struct signal_server *srv,
                                           const struct participant *p, uint64_t now)
{
    if (p->token_exp <= (int64_t)clock_wall_s())
        return "token_expired";
    if (p->conn == NULL && now - p->gone_ms > srv->cfg.resume_grace_s * 1000u)
        return "resume_grace_expired";
    if (p->state == P_WAITING && now - p->waiting_since_ms > srv->cfg.waiting_timeout_s * 1000u)
        return "waiting_timeout";
    return NULL;
}

/* Returns the reason the whole session must end now, or NULL. */
static const char *session__expired(struct signal_server *srv, const struct session *s,
                                    uint64_t now)
{
    if (s->admitted_ms != 0 && now - s->admitted_ms > srv->cfg.max_session_s * 1000u)
        return "max_length";
    if (s->no_clinician_since_ms != 0 &&
        now - s->no_clinician_since_ms > srv->cfg.idle_timeout_s * 1000u)
        return "idle_timeout";
    return NULL;
}

static void session__tick_one(struct signal_server *srv, struct session *s, uint64_t now)
{
    const char *why = session__expired(srv, s, now);

    if (why != NULL) {
        session__end(srv, s, why, NULL);
        return;
    }
    for (unsigned i = s->n_people; i > 0; i--) {
        struct participant *p = s->people[i - 1];

        if ((why = session__person_expired(srv, p, now)) == NULL)
            continue;
        events_participant(srv, p, "participant.timeout", why, NULL);
        session__drop(srv, p, "removed", why, CONN_CLOSE_TIMEOUT);
    }
    if (s->n_people == 0) {
        stats_count(&srv->stats.ended, "empty");
        sessions__close(srv->sessions, s);
    }
}

void session_tick(struct signal_server *srv, uint64_t now_ms)
{
    struct sessions *ss = srv->sessions;

    for (uint32_t i = 0; i < ss->max; i++) {
        if (ss->slots[i] != NULL)
            session__tick_one(srv, ss->slots[i], now_ms);
    }
}
