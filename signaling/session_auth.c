/* Getting into a visit: a token (auth) or a resume secret, checked here
 * and run by the replica that owns the visit (this one, or the owner the
 * cluster names: session_cluster.c forwards). Token verification,
 * draining and the replica choice happen where the WebSocket is; the jti
 * claim, the seat and the new secret are made durable by the owner before
 * anyone is told. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>
#include <openssl/crypto.h>

#include "conn.h"
#include "events.h"
#include "quietroom/base/clock.h"
#include "server.h"
#include "session_internal.h"
#include "store.h"
#include "visit_codec.h"

void session_refuse(struct signal_server *srv, const struct session_origin *origin,
                    const char *code, const char *message, const char *field,
                    const struct jwt_claims *claims)
{
    stats_count(&srv->stats.auth, code);
    events_auth_failed(srv, origin->addr, code, claims);
    if (origin->c != NULL && claims != NULL && strcmp(code, "token_not_yet_valid") == 0)
        conn_refuse_early(origin->c, code, message, claims->nbf);
    else if (origin->c != NULL)
        conn_refuse(origin->c, code, message, field);
    else
        session_cluster_act(srv, origin->edge, origin->conn_id,
                            json_pack("{s:s,s:s,s:s,s:s?}", "a", "refuse", "code", code,
                                      "message", message, "field", field));
}

bool session_secret_key(const char *secret, char vkey[VISIT_KEY_LEN])
{
    size_t n = VISIT_KEY_LEN - 1;

    if (strlen(secret) <= n || secret[n] != '.' || strspn(secret, "0123456789abcdef") != n)
        return false;
    memcpy(vkey, secret, n);
    vkey[n] = '\0';
    return true;
}

/* --- on the owner ---------------------------------------------------------------- */

/* The id the core gave the person it just seated (its VISIT_ATTACH). */
static const char *session__seated(const struct visit_out *o)
{
    for (unsigned i = 0; i < o->n; i++) {
        if (o->a[i].kind == VISIT_ATTACH)
            return o->a[i].who;
    }
    return "";
}

/* A new seat spends the token's jti in the store, naming the seat it
 * opened; a seat taken back was spent when it opened. The visit is then
 * written with the seat; both must be durable before welcome. NULL, or
 * the refusal code. */
static const char *session__commit_join(struct signal_server *srv, struct session *s,
                                        const struct jwt_claims *cl, const char *key,
                                        const struct visit_out *o)
{
    enum store_result r;

    if (!o->seat_taken_back) {
        if (session_cluster_quiet(srv)) {
            stats_count(&srv->stats.store_failures, "claim");
            return "token_claim_unavailable";
        }
        r = store_claim(srv->store, key, cl->exp + QR_TOKEN_SKEW_MAX_S, cl->sid,
                        session__seated(o));
        /* Spent, by a seat this visit no longer holds: it ended (or emptied)
         * since, or forgot that seat to make room. */
        if (r == STORE_TAKEN)
            return "token_replayed";
        if (r != STORE_OK) {
            session_cluster_store_failed(srv);
            stats_count(&srv->stats.store_failures, "claim");
            return "token_claim_unavailable";
        }
    }
    if (session_store_save(srv, s, false) != STORE_OK)
        return "state_unavailable";
    return NULL;
}

static const struct {
    const char *code, *text;
} session_refusal_texts[] = {
    {"token_replayed", "this link's visit has ended, or the link is not this person's"},
    {"token_claim_unavailable", "the sign-in cannot be recorded now; try the link again in a moment"},
    {"state_unavailable", "the server cannot record this now; try again in a moment"},
    {"removed_by_clinician", "the clinician removed this link's participant from the visit"},
    {"declined_by_clinician", "the clinician declined this link's participant"},
    {"session_full", "this session has as many participants as it may"},
};

static const char *session__refusal_text(const char *code)
{
    for (size_t i = 0; i < sizeof(session_refusal_texts) / sizeof(session_refusal_texts[0]); i++) {
        if (strcmp(code, session_refusal_texts[i].code) == 0)
            return session_refusal_texts[i].text;
    }
    return "the server cannot take this now";
}

void session_join(struct signal_server *srv, const struct session_origin *origin,
                  const struct jwt_claims *cl, enum role role)
{
    struct visit_config cfg = session_config(srv);
    struct visit_env env = session_env(srv, &cfg);
    struct visit *before = NULL;
    struct visit_out o;
    struct session *s;
    const char *refused;
    char key[STORE_KEY_LEN];
    bool created;

    _Static_assert(STORE_KEY_LEN == VISIT_CLAIM_LEN, "a seat keeps a store claim key");
    if (store_claim_key(cl->iss, cl->jti, key) != 0) {
        session_refuse(srv, origin, "state_unavailable",
                       session__refusal_text("state_unavailable"), NULL, cl);
        return;
    }
    s = sessions_open(srv->sessions, cl->sid, &env, &created);
    if (s != NULL && (before = malloc(sizeof(*before))) == NULL && created)
        sessions_close(srv->sessions, s);
    if (s == NULL || before == NULL) {
        session_refuse(srv, origin, "server_busy", "the server cannot take more sessions now",
                       NULL, cl);
        return;
    }
    *before = s->v;
    visit_out_init(&o);
    refused = visit_join(&s->v, &env, cl, role, key, origin->addr, &o);
    if (refused == NULL && (refused = session__commit_join(srv, s, cl, key, &o)) != NULL) {
        /* Undone: the visit as it was, or gone if this request made it. */
        visit_out_reset(&o);
        if (created)
            sessions_close(srv->sessions, s);
        else
            s->v = *before;
    }
    if (refused != NULL) {
        session_refuse(srv, origin, refused, session__refusal_text(refused), NULL, cl);
        goto out;
    }
    if (created)
        srv->stats.sessions_started++;
    if (origin->c != NULL)
        lws_set_timeout(origin->c->wsi, NO_PENDING_TIMEOUT, 0);
    stats_count(&srv->stats.auth, o.seat_taken_back ? "rejoined" : "ok");
    session_finish(srv, s, origin, &o);
out:
    OPENSSL_cleanse(before, sizeof(*before));
    free(before);
}

void session_resume_at(struct signal_server *srv, struct session *s,
                       const struct session_origin *origin, const uint8_t hash[32])
{
    struct visit_config cfg = session_config(srv);
    struct visit_env env = session_env(srv, &cfg);
    struct visit_person *p = visit_by_resume(&s->v, hash);
    struct visit *before = malloc(sizeof(*before));
    struct visit_out o;

    visit_out_init(&o);
    if (p == NULL || before == NULL ||
        (*before = s->v, visit_resume(&s->v, &env, p, origin->addr, &o)) != NULL) {
        session_refuse(srv, origin, "resume_invalid",
                       "this resume secret is unknown, used or expired; join again from the EHR",
                       NULL, NULL);
        goto out;
    }
    /* The new secret goes out only once the store has its hash. */
    if (session_store_save(srv, s, false) != STORE_OK) {
        visit_out_reset(&o);
        s->v = *before;
        session_refuse(srv, origin, "state_unavailable",
                       session__refusal_text("state_unavailable"), NULL, NULL);
        goto out;
    }
    if (origin->c != NULL)
        lws_set_timeout(origin->c->wsi, NO_PENDING_TIMEOUT, 0);
    stats_count(&srv->stats.auth, "resumed");
    session_finish(srv, s, origin, &o);
out:
    if (before != NULL)
        OPENSSL_cleanse(before, sizeof(*before));
    free(before);
}

static bool session__audited(const struct visit_out *o, const char *event)
{
    for (unsigned i = 0; i < o->n; i++) {
        if (o->a[i].kind == VISIT_AUDIT && strcmp(o->a[i].event, event) == 0)
            return true;
    }
    return false;
}

void session_dispatch(struct signal_server *srv, struct session *s, const char *from,
                      const struct session_origin *origin, const struct msg *m)
{
    struct visit_config cfg = session_config(srv);
    struct visit_env env = session_env(srv, &cfg);
    struct visit_out o;

    visit_out_init(&o);
    visit_message(&s->v, &env, from, m, &o);
    if (o.check_reported)
        stats_count(&srv->stats.checks, m->check.video);
    else if (m->type == MSG_NOTIFY && session__audited(&o, "session.notice"))
        srv->stats.notices++;
    if (o.media == MSG_CANDIDATE)
        srv->stats.candidates_dropped++;
    else if (o.media != MSG_TYPE_COUNT)
        media_forward(srv, s, from, &env, &o, m);
    session_finish(srv, s, origin, &o);
}

/* --- where the WebSocket is ------------------------------------------------------- */

static void session__token_refused(struct signal_server *srv, const struct session_origin *origin,
                                   enum jwt_error e, const struct jwt_claims *cl)
{
    bool signed_ok = e >= JWT_ERR_WRONG_ISSUER && e != JWT_ERR_MISSING_CLAIM &&
                     e != JWT_ERR_BAD_CLAIM;

    session_refuse(srv, origin, jwt_error_code(e), jwt_error_message(e),
                   e == JWT_ERR_MISSING_CLAIM || e == JWT_ERR_BAD_CLAIM ? cl->missing : NULL,
                   signed_ok ? cl : NULL);
}

void session_auth(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    struct session_origin origin = {.c = c, .addr = c->addr};
    struct jwt_claims cl;
    enum jwt_error e = jwt_verify(srv->ehr_keys, &srv->policy, m->token, strlen(m->token),
                                  (int64_t)clock_wall_s(), &cl);
    char vkey[VISIT_KEY_LEN], owner[CLUSTER_NODE_MAX];
    int role = -1, here;

    if (e == JWT_OK && (role = role_parse(cl.role)) < 0)
        e = JWT_ERR_ROLE_NOT_ALLOWED;
    if (e != JWT_OK) {
        session__token_refused(srv, &origin, e, &cl);
        return;
    }
    /* While draining, only people of visits already here may join: checked
     * before the jti is spent, so the same link works on the next server. */
    visit_key(cl.sid, vkey);
    if (srv->draining && sessions_find_key(srv->sessions, vkey) == NULL) {
        session_refuse(srv, &origin, "server_draining",
                       "this server is shutting down and takes no new visits; connect again",
                       NULL, &cl);
        return;
    }
    if ((here = session_cluster_locate(srv, vkey, true, owner, sizeof(owner))) < 0)
        session_refuse(srv, &origin, "token_claim_unavailable",
                       session__refusal_text("token_claim_unavailable"), NULL, &cl);
    else if (here)
        session_join(srv, &origin, &cl, (enum role)role);
    else
        session_cluster_join(srv, c, owner, &cl);
}

/* The refusal auth would give a verified token from its seat or its
 * claim, read without changing anything: the visit here, or its record in
 * the store (another replica may run it); then whether the token was used
 * by a seat this visit no longer has (it ended). The store not answering
 * lets the link through: auth decides. */
static const char *session__link_refusal(struct signal_server *srv, const struct jwt_claims *cl,
                                         enum role role)
{
    char key[STORE_KEY_LEN], vkey[VISIT_KEY_LEN], *rec = NULL;
    struct session *s;
    struct visit *v = NULL;
    const char *refused = NULL;
    bool found = false;
    uint64_t rev;
    size_t len;

    if (store_claim_key(cl->iss, cl->jti, key) != 0)
        return NULL;
    visit_key(cl->sid, vkey);
    if ((s = sessions_find_key(srv->sessions, vkey)) != NULL) {
        refused = visit_seat_refusal(&s->v, cl, role, key, &found);
    } else if (store_fetch(srv->store, vkey, &rec, &len, &rev) == STORE_OK &&
               (v = malloc(sizeof(*v))) != NULL && visit_decode_text(rec, len, v) == 0) {
        refused = visit_seat_refusal(v, cl, role, key, &found);
    }
    if (rec != NULL)
        OPENSSL_cleanse(rec, len);
    free(rec);
    if (v != NULL)
        OPENSSL_cleanse(v, sizeof(*v));
    free(v);
    if (!found && store_claimed(srv->store, key) == STORE_TAKEN)
        refused = "token_replayed";
    return refused;
}

/* A link checked before the page asks for camera and microphone: the
 * token is verified as for auth (refusals audited and counted alike), and
 * nothing is spent or opened; the connection then closes. */
void session_check_link(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    struct session_origin origin = {.c = c, .addr = c->addr};
    struct jwt_claims cl;
    enum jwt_error e = jwt_verify(srv->ehr_keys, &srv->policy, m->token, strlen(m->token),
                                  (int64_t)clock_wall_s(), &cl);

    const char *refused;

    if (e == JWT_OK && role_parse(cl.role) < 0)
        e = JWT_ERR_ROLE_NOT_ALLOWED;
    if (e != JWT_OK) {
        session__token_refused(srv, &origin, e, &cl);
        goto out;
    }
    if ((refused = session__link_refusal(srv, &cl, (enum role)role_parse(cl.role))) != NULL) {
        session_refuse(srv, &origin, refused, session__refusal_text(refused), NULL, &cl);
        goto out;
    }
    stats_count(&srv->stats.auth, "link_checked");
    conn_send(c, json_pack("{s:s,s:s,s:s,s:I}", "type", "link_ok", "role", cl.role, "locale",
                           cl.locale, "token_expires", (json_int_t)cl.exp));
    conn_close(c, CONN_CLOSE_NORMAL, "checked");
out:
    OPENSSL_cleanse(&cl, sizeof(cl));
}

void session_resume(struct signal_server *srv, struct conn *c, const struct msg *m)
{
    struct session_origin origin = {.c = c, .addr = c->addr};
    char vkey[VISIT_KEY_LEN], owner[CLUSTER_NODE_MAX];
    struct session *s;
    uint8_t hash[32];
    int here;

    visit_resume_hash(m->resume, hash);
    if (!session_secret_key(m->resume, vkey)) {
        session_refuse(srv, &origin, "resume_invalid",
                       "this resume secret is unknown, used or expired; join again from the EHR",
                       NULL, NULL);
        return;
    }
    if ((here = session_cluster_locate(srv, vkey, false, owner, sizeof(owner))) == -1)
        session_refuse(srv, &origin, "state_unavailable",
                       session__refusal_text("state_unavailable"), NULL, NULL);
    else if (here == 0)
        session_cluster_resume(srv, c, owner, vkey, hash);
    else if ((s = sessions_find_key(srv->sessions, vkey)) != NULL)
        session_resume_at(srv, s, &origin, hash);
    else
        session_refuse(srv, &origin, "resume_invalid",
                       "this resume secret is unknown, used or expired; join again from the EHR",
                       NULL, NULL);
}
