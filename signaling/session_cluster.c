/* Signaling replicas as one service (docs/cluster.md). Every visit runs
 * on one replica, its owner, which holds a lease on it in the store and
 * renews it; the others are edges for it: a browser connected to an edge
 * has its requests forwarded to the owner (join, resume, messages, close)
 * and the owner's actions come back addressed to that connection. NATS
 * keeps each sender's messages in order. When an owner dies its lease
 * lapses; its edges close their connections to that visit (4012) and the
 * browsers resume, on any replica, which takes the visit over from the
 * store. Without a cluster every visit is local and this file does
 * nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "cluster.h"
#include "conn.h"
#include "events.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/log.h"
#include "server.h"
#include "session_internal.h"
#include "store.h"
#include "visit_codec.h"

/* Connections here to visits owned elsewhere, by the id the owner knows
 * them by. A scan: edges hold few connections, and the owner's replies
 * are rare next to media. */
struct session_cluster {
    struct cluster *cl;
    struct conn **edge;
    unsigned n_edge, cap_edge;
    uint64_t next_id;
    uint64_t watch_ms, sweep_ms;
    char checked[QR_CLUSTER_EDGES_MAX][CLUSTER_NODE_MAX]; /* edges asked this period */
    unsigned n_checked;
    char gone_edge[CLUSTER_NODE_MAX];
    /* The store did not answer (no quorum, NATS away): the timers' own
     * store calls pause until then, so that each of them does not block
     * the event loop for a timeout, visit after visit. */
    uint64_t quiet_until_ms;
};

static bool session_cluster__quiet(const struct signal_server *srv, uint64_t now)
{
    return now < srv->cluster->quiet_until_ms;
}

bool session_cluster_quiet(const struct signal_server *srv)
{
    return srv->cluster != NULL && session_cluster__quiet(srv, clock_mono_ms());
}


static void session_cluster__store_down(struct signal_server *srv, uint64_t now)
{
    srv->cluster->quiet_until_ms = now + QR_CLUSTER_RENEW_MS;
}

void session_cluster_store_failed(struct signal_server *srv)
{
    if (srv->cluster != NULL)
        session_cluster__store_down(srv, clock_mono_ms());
}

static const char *session_cluster__node(const struct signal_server *srv)
{
    return srv->cfg.daemon.node_id;
}

static void session_cluster__wake(void *ctx)
{
    struct signal_server *srv = ctx;

    if (srv->lws != NULL)
        lws_cancel_service(srv->lws);
}

int session_cluster_start(struct signal_server *srv, char *err, size_t errlen)
{
    struct session_cluster *sc;

    if (store_nats_connection(srv->store) == NULL)
        return 0; /* one machine: no cluster */
    if ((sc = calloc(1, sizeof(*sc))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sc->cl = cluster_start(srv->store, session_cluster__node(srv), session_cluster__wake, srv, err,
                           errlen);
    if (sc->cl == NULL) {
        free(sc);
        return -1;
    }
    srv->cluster = sc;
    return 0;
}

void session_cluster_quiesce(struct signal_server *srv)
{
    if (srv->cluster != NULL)
        cluster_quiesce(srv->cluster->cl);
}

unsigned long session_cluster_dropped(struct signal_server *srv)
{
    return srv->cluster != NULL ? cluster_dropped(srv->cluster->cl) : 0;
}

void session_cluster_free(struct signal_server *srv)
{
    struct session_cluster *sc = srv->cluster;

    if (sc == NULL)
        return;
    cluster_free(sc->cl);
    free(sc->edge);
    free(sc);
    srv->cluster = NULL;
}

/* --- connections here to visits elsewhere ---------------------------------------- */

static int session_cluster__add(struct session_cluster *sc, struct conn *c, const char *owner,
                                const char *vkey)
{
    if (sc->n_edge == sc->cap_edge) {
        unsigned cap = sc->cap_edge ? 2 * sc->cap_edge : 64;
        struct conn **e = realloc(sc->edge, cap * sizeof(*e));

        if (e == NULL)
            return -1;
        sc->edge = e;
        sc->cap_edge = cap;
    }
    sc->edge[sc->n_edge++] = c;
    snprintf(c->owner, sizeof(c->owner), "%s", owner);
    snprintf(c->vkey, sizeof(c->vkey), "%s", vkey);
    /* Unguessable, so that a message naming a connection came from its
     * edge (with NATS permissions, only the edge may publish as itself). */
    if (RAND_bytes((unsigned char *)&c->remote_id, sizeof(c->remote_id)) != 1 ||
        (c->remote_id &= INT64_MAX) == 0)
        c->remote_id = ++sc->next_id;
    c->owner_wait_ms = clock_mono_ms() + QR_CLUSTER_ANSWER_MS;
    c->pid[0] = '\0';
    return 0;
}

static void session_cluster__remove(struct session_cluster *sc, struct conn *c)
{
    for (unsigned i = 0; i < sc->n_edge; i++) {
        if (sc->edge[i] == c) {
            sc->edge[i] = sc->edge[--sc->n_edge];
            break;
        }
    }
    c->owner[0] = '\0';
    c->vkey[0] = '\0';
    c->pid[0] = '\0';
    c->owner_wait_ms = 0;
}

static struct conn *session_cluster__conn(struct session_cluster *sc, uint64_t id)
{
    for (unsigned i = 0; i < sc->n_edge; i++) {
        if (sc->edge[i]->remote_id == id)
            return sc->edge[i];
    }
    return NULL;
}

/* A request to the owner, from connection c (which waits for the answer). */
static void session_cluster__ask(struct signal_server *srv, struct conn *c, const char *owner,
                                 const char *vkey, json_t *req)
{
    struct session_cluster *sc = srv->cluster;

    if (session_cluster__add(sc, c, owner, vkey) != 0) {
        json_decref(req);
        conn_refuse(c, "state_unavailable", "the server cannot take this now; try again", NULL);
        return;
    }
    json_object_set_new(req, "v", json_string(vkey));
    json_object_set_new(req, "e", json_string(session_cluster__node(srv)));
    json_object_set_new(req, "c", json_integer((json_int_t)c->remote_id));
    json_object_set_new(req, "addr", json_string(c->addr));
    if (cluster_ask(sc->cl, owner, req, c->remote_id) != 0) {
        session_cluster__remove(sc, c);
        conn_refuse(c, "state_unavailable", "the server cannot take this now; try again", NULL);
    }
}

static json_t *session_cluster__claims(const struct jwt_claims *cl)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:b}", "iss", cl->iss, "sub", cl->sub,
                     "role", cl->role, "sid", cl->sid, "jti", cl->jti, "name", cl->name,
                     "locale", cl->locale, "exp", (json_int_t)cl->exp, "iat",
                     (json_int_t)cl->iat, "part2", cl->part2);
}

void session_cluster_join(struct signal_server *srv, struct conn *c, const char *owner,
                          const struct jwt_claims *cl)
{
    char vkey[VISIT_KEY_LEN];

    visit_key(cl->sid, vkey);
    session_cluster__ask(srv, c, owner, vkey,
                         json_pack("{s:s,s:o}", "k", "join", "claims",
                                   session_cluster__claims(cl)));
}

void session_cluster_resume(struct signal_server *srv, struct conn *c, const char *owner,
                            const char *vkey, const uint8_t hash[32])
{
    char hex[65];

    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    session_cluster__ask(srv, c, owner, vkey, json_pack("{s:s,s:s}", "k", "resume", "h", hex));
}

static json_t *session_cluster__from(struct signal_server *srv, const struct conn *c,
                                     const char *kind)
{
    return json_pack("{s:s,s:s,s:s,s:I,s:s}", "k", kind, "v", c->vkey, "e",
                     session_cluster__node(srv), "c", (json_int_t)c->remote_id, "p", c->pid);
}

void session_cluster_message(struct signal_server *srv, struct conn *c, const char *text,
                             size_t len)
{
    json_t *m = session_cluster__from(srv, c, "msg");

    json_object_set_new(m, "t", json_stringn(text, len));
    if (cluster_ask(srv->cluster->cl, c->owner, m, c->remote_id) != 0)
        conn_error(c, "state_unavailable", "the visit cannot be reached now; try again", NULL);
}

/* Also before the owner's attach came back: the owner may have seated the
 * person already, and finds the seat by the connection id. */
void session_cluster_closed(struct signal_server *srv, struct conn *c)
{
    cluster_send(srv->cluster->cl, c->owner, session_cluster__from(srv, c, "gone"));
    session_cluster__remove(srv->cluster, c);
}

void session_cluster_act(struct signal_server *srv, const char *edge, uint64_t conn_id,
                         json_t *act)
{
    if (srv->cluster == NULL || act == NULL) {
        json_decref(act);
        return;
    }
    json_object_set_new(act, "k", json_string("act"));
    json_object_set_new(act, "c", json_integer((json_int_t)conn_id));
    cluster_send(srv->cluster->cl, edge, act);
}

/* --- owning visits ------------------------------------------------------------------ */

/* The visit in a record read from the store becomes ours: everyone is
 * away as of now, and the takeover is audited. */
static int session_cluster__adopt(struct signal_server *srv, const char *vkey, const char *rec,
                                  size_t len, uint64_t rev)
{
    struct visit *v = calloc(1, sizeof(*v));
    struct visit_config cfg = session_config(srv);
    struct visit_env env;
    struct session *s = NULL;
    int rc = -1;

    if (v == NULL || visit_decode_text(rec, len, v) != 0 || strcmp(v->key, vkey) != 0) {
        stats_count(&srv->stats.store_failures, "unreadable");
        goto out;
    }
    if (v->ended) {
        /* Its owner wrote the end but did not get to forget it. */
        store_forget(srv->store, vkey);
        goto out;
    }
    sessions_clock_floor(srv->sessions, visit_latest_ms(v));
    env = session_env(srv, &cfg);
    visit_restored(v, &env);
    if ((s = sessions_adopt(srv->sessions, v)) == NULL) {
        stats_count(&srv->stats.store_failures, "no_room");
        goto out;
    }
    s->rev = rev;
    s->unsaved = true;
    s->renew_ms = clock_mono_ms() + QR_CLUSTER_RENEW_MS;
    s->lease_ok_ms = clock_mono_ms();
    events_takeover(srv, &s->v);
    srv->stats.takeovers++;
    rc = 0;
out:
    if (v != NULL)
        OPENSSL_cleanse(v, sizeof(*v));
    free(v);
    return rc;
}

/* We hold the lease on vkey: the visit is here, from the store if it was
 * someone's before. 1, or -1 when the store cannot give it. */
static int session_cluster__take(struct signal_server *srv, const char *vkey)
{
    char *rec = NULL;
    size_t len = 0;
    uint64_t rev = 0;
    enum store_result r = srv->store->ops->fetch(srv->store->impl, vkey, &rec, &len, &rev);
    int rc = 1;

    if (r == STORE_OK && session_cluster__adopt(srv, vkey, rec, len, rev) != 0)
        rc = -1;
    else if (r != STORE_OK && r != STORE_ABSENT)
        rc = -1;
    if (rec != NULL)
        OPENSSL_cleanse(rec, len);
    free(rec);
    if (rc < 0)
        srv->store->ops->disown(srv->store->impl, vkey, session_cluster__node(srv));
    return rc;
}

/* Is there a record of vkey at all? 1 yes, 0 no, -1 the store cannot say. */
static int session_cluster__exists(struct signal_server *srv, const char *vkey)
{
    char *rec = NULL;
    size_t len = 0;
    uint64_t rev;
    enum store_result r = srv->store->ops->fetch(srv->store->impl, vkey, &rec, &len, &rev);

    if (rec != NULL)
        OPENSSL_cleanse(rec, len);
    free(rec);
    return r == STORE_OK ? 1 : r == STORE_ABSENT ? 0 : -1;
}

int session_cluster_locate(struct signal_server *srv, const char *vkey, bool create, char *owner,
                           size_t len)
{
    char holder[CLUSTER_NODE_MAX];
    enum store_result r;
    int exists;

    owner[0] = '\0';
    if (srv->cluster == NULL || sessions_find_key(srv->sessions, vkey) != NULL)
        return 1;
    /* A draining replica takes nothing on: the browser asks again, and the
     * load balancer sends it to a replica that is staying. Nor does one
     * whose store just failed to answer: it says so at once rather than
     * hold the event loop for another timeout. */
    if (srv->draining || session_cluster__quiet(srv, clock_mono_ms()))
        return -1;
    /* A resume for a visit the store does not have (ended, or never was)
     * needs no lease: nothing to run. */
    if (!create && (exists = session_cluster__exists(srv, vkey)) <= 0)
        return exists < 0 ? -1 : -2;
    r = store_own(srv->store, vkey, session_cluster__node(srv), QR_CLUSTER_LEASE_MS, holder,
                  sizeof(holder));
    if (r == STORE_TAKEN && holder[0] != '\0') {
        snprintf(owner, len, "%s", holder);
        return 0;
    }
    if (r != STORE_OK) {
        session_cluster__store_down(srv, clock_mono_ms());
        return -1;
    }
    return session_cluster__take(srv, vkey);
}

/* --- requests from edges ------------------------------------------------------------ */

static const char *session_cluster__str(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));

    return s != NULL ? s : "";
}

/* Where a forwarded request came from; false if it does not say. */
static bool session_cluster__origin(json_t *j, struct session_origin *o)
{
    json_t *c = json_object_get(j, "c");

    o->c = NULL;
    o->edge = session_cluster__str(j, "e");
    o->addr = session_cluster__str(j, "addr");
    if (!json_is_integer(c) || !cluster_node_ok(o->edge))
        return false;
    o->conn_id = (uint64_t)json_integer_value(c);
    return true;
}

static bool session_cluster__claims_in(json_t *j, struct jwt_claims *cl)
{
    json_t *c = json_object_get(j, "claims");
    const char *f[] = {"iss", "sub", "role", "sid", "jti", "name"};
    char *to[] = {cl->iss, cl->sub, cl->role, cl->sid, cl->jti, cl->name};
    const char *locale;

    memset(cl, 0, sizeof(*cl));
    if (!json_is_object(c) || !json_is_integer(json_object_get(c, "exp")))
        return false;
    for (int i = 0; i < 6; i++) {
        const char *v = json_string_value(json_object_get(c, f[i]));

        if (v == NULL || strlen(v) >= JWT_CLAIM_MAX)
            return false;
        memcpy(to[i], v, strlen(v) + 1);
    }
    locale = json_string_value(json_object_get(c, "locale"));
    if (locale != NULL && jwt_locale_ok(locale))
        memcpy(cl->locale, locale, strlen(locale) + 1);
    cl->exp = json_integer_value(json_object_get(c, "exp"));
    cl->iat = json_integer_value(json_object_get(c, "iat"));
    cl->part2 = json_is_true(json_object_get(c, "part2"));
    return cl->sid[0] != '\0' && cl->jti[0] != '\0';
}

/* The visit a member's message names, if it runs here; otherwise the
 * edge's browser is told to resume (it asked a replica that no longer
 * runs the visit). */
static struct session *session_cluster__here(struct signal_server *srv, json_t *j,
                                             const struct session_origin *o)
{
    struct session *s = sessions_find_key(srv->sessions, session_cluster__str(j, "v"));

    if (s == NULL)
        session_cluster_act(srv, o->edge, o->conn_id,
                            json_pack("{s:s,s:i,s:s}", "a", "close", "code", CONN_CLOSE_MOVED,
                                      "reason", "visit moved"));
    return s;
}

static void session_cluster__join_in(struct signal_server *srv, json_t *j,
                                     const struct session_origin *o)
{
    struct jwt_claims cl;
    char owner[CLUSTER_NODE_MAX], vkey[VISIT_KEY_LEN];
    int role;

    if (!session_cluster__claims_in(j, &cl) || (role = role_parse(cl.role)) < 0)
        return;
    visit_key(cl.sid, vkey);
    if (strcmp(vkey, session_cluster__str(j, "v")) != 0)
        return;
    if (session_cluster_locate(srv, vkey, true, owner, sizeof(owner)) != 1)
        session_refuse(srv, o, "state_unavailable", "the visit is moving; try again", NULL, &cl);
    else
        session_join(srv, o, &cl, (enum role)role);
    OPENSSL_cleanse(&cl, sizeof(cl));
}

static void session_cluster__resume_in(struct signal_server *srv, json_t *j,
                                       const struct session_origin *o)
{
    const char *hex = session_cluster__str(j, "h"), *vkey = session_cluster__str(j, "v");
    char owner[CLUSTER_NODE_MAX];
    struct session *s = NULL;
    uint8_t hash[32];
    int here;

    if (strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64)
        return;
    if ((here = session_cluster_locate(srv, vkey, false, owner, sizeof(owner))) == -2) {
        session_refuse(srv, o, "resume_invalid",
                       "this resume secret is unknown, used or expired; join again from the EHR",
                       NULL, NULL);
        return;
    }
    if (here == 1)
        s = sessions_find_key(srv->sessions, vkey);
    for (int i = 0; i < 32; i++) {
        unsigned x;

        sscanf(hex + 2 * i, "%2x", &x);
        hash[i] = (uint8_t)x;
    }
    if (s != NULL)
        session_resume_at(srv, s, o, hash);
    else
        session_refuse(srv, o, "state_unavailable", "the visit is moving; try again", NULL, NULL);
}

/* A participant's message or close, from the connection it is bound to. */
static void session_cluster__member_in(struct signal_server *srv, json_t *j,
                                       const struct session_origin *o, bool gone)
{
    struct session *s = session_cluster__here(srv, j, o);
    const char *pid = session_cluster__str(j, "p"), *text = session_cluster__str(j, "t");
    const struct session_link *l = NULL;
    struct msg m;

    /* The connection it is bound to; a close names only the connection. */
    for (unsigned i = 0; s != NULL && i < QR_SESSION_PEOPLE_MAX && l == NULL; i++) {
        if (s->conns[i].c == NULL && strcmp(s->conns[i].edge, o->edge) == 0 &&
            s->conns[i].conn_id == o->conn_id && (gone || strcmp(s->conns[i].id, pid) == 0))
            l = &s->conns[i];
    }
    if (l == NULL) {
        /* Replaced since, or never ours: that browser resumes, and reaches
         * the visit as it is now. */
        if (!gone)
            session_cluster_act(srv, o->edge, o->conn_id,
                                json_pack("{s:s,s:i,s:s}", "a", "close", "code",
                                          CONN_CLOSE_MOVED, "reason", "visit moved"));
        return;
    }
    if (gone) {
        char id[VISIT_ID_LEN];

        snprintf(id, sizeof(id), "%s", l->id);
        session_gone(srv, s, id);
        return;
    }
    if (protocol_parse(text, strlen(text), &m) != PROTO_OK)
        return; /* the edge parsed it already */
    session_dispatch(srv, s, pid, o, &m);
    msg_free(&m);
}

static void session_cluster__drop_gone_edge(struct signal_server *srv, struct session *s)
{
    session_drop_edge(srv, s, srv->cluster->gone_edge);
}

/* The edges our visits' participants are on, each asked once a watch
 * period whether it is still there (cluster_check). */
static void session_cluster__check_edges(struct signal_server *srv, struct session *s)
{
    struct session_cluster *sc = srv->cluster;

    for (unsigned i = 0; i < QR_SESSION_PEOPLE_MAX; i++) {
        const char *edge = s->conns[i].edge;
        bool seen = false;

        if (s->conns[i].c != NULL || edge[0] == '\0')
            continue;
        for (unsigned k = 0; k < sc->n_checked && !seen; k++)
            seen = strcmp(sc->checked[k], edge) == 0;
        if (seen || sc->n_checked == QR_CLUSTER_EDGES_MAX)
            continue;
        snprintf(sc->checked[sc->n_checked++], CLUSTER_NODE_MAX, "%s", edge);
        cluster_check(sc->cl, edge);
    }
}

/* --- the owner's actions, at the edge -------------------------------------------------- */

static void session_cluster__act_in(struct signal_server *srv, json_t *j)
{
    json_t *id = json_object_get(j, "c");
    struct conn *c = json_is_integer(id)
                         ? session_cluster__conn(srv->cluster, (uint64_t)json_integer_value(id))
                         : NULL;
    const char *a = session_cluster__str(j, "a");
    json_t *field = json_object_get(j, "field");

    if (c == NULL)
        return; /* closed meanwhile */
    if (strcmp(session_cluster__str(j, "k"), "noresp") == 0) {
        /* The owner is gone: ask again (a join or resume), or resume
         * wherever the visit runs next (a member). */
        bool pending = c->owner_wait_ms != 0;

        session_cluster__remove(srv->cluster, c);
        if (pending)
            conn_refuse(c, "state_unavailable", "the visit is moving; try again", NULL);
        else
            conn_close(c, CONN_CLOSE_MOVED, "visit moved");
    } else if (strcmp(a, "attach") == 0 && strcmp(session_cluster__str(j, "v"), c->vkey) == 0) {
        snprintf(c->pid, sizeof(c->pid), "%s", session_cluster__str(j, "p"));
        c->owner_wait_ms = 0;
        lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    } else if (strcmp(a, "send") == 0 && json_is_object(json_object_get(j, "msg"))) {
        conn_send(c, json_incref(json_object_get(j, "msg")));
    } else if (strcmp(a, "error") == 0) {
        conn_error(c, session_cluster__str(j, "code"), session_cluster__str(j, "message"),
                   json_string_value(field));
    } else if (strcmp(a, "close") == 0) {
        conn_close(c, (enum conn_close_code)json_integer_value(json_object_get(j, "code")),
                   session_cluster__str(j, "reason"));
        session_cluster__remove(srv->cluster, c);
    } else if (strcmp(a, "refuse") == 0) {
        /* Counted and audited by the owner. */
        conn_refuse(c, session_cluster__str(j, "code"), session_cluster__str(j, "message"),
                    json_string_value(field));
        session_cluster__remove(srv->cluster, c);
    }
}

/* An edge holding participants of our visits is gone (killed): they are
 * disconnected as of now, and the resume grace runs. */
static void session_cluster__edge_gone(struct signal_server *srv, const char *edge)
{
    struct session_cluster *sc = srv->cluster;

    snprintf(sc->gone_edge, sizeof(sc->gone_edge), "%s", edge);
    sessions_each(srv->sessions, session_cluster__drop_gone_edge, srv);
}

void session_cluster_poll(struct signal_server *srv)
{
    json_t *j;

    if (srv->cluster == NULL)
        return;
    while ((j = cluster_next(srv->cluster->cl)) != NULL) {
        const char *k = session_cluster__str(j, "k");
        struct session_origin o;

        if (strcmp(k, "act") == 0 || strcmp(k, "noresp") == 0)
            session_cluster__act_in(srv, j);
        else if (strcmp(k, "noedge") == 0)
            session_cluster__edge_gone(srv, session_cluster__str(j, "e"));
        else if (strcmp(k, "hb") == 0)
            ;
        else if (!session_cluster__origin(j, &o))
            ;
        else if (strcmp(k, "join") == 0)
            session_cluster__join_in(srv, j, &o);
        else if (strcmp(k, "resume") == 0)
            session_cluster__resume_in(srv, j, &o);
        else if (strcmp(k, "msg") == 0 || strcmp(k, "gone") == 0)
            session_cluster__member_in(srv, j, &o, k[0] == 'g');
        json_decref(j);
    }
}

/* --- time: leases, owners that went away, visits nobody runs --------------------- */

/* Every connection here (and at edges) to s closes with 4012 so its
 * browser resumes where the visit now runs; s leaves this replica
 * without ending (its record stays in the store). */
static void session_cluster__let_go(struct signal_server *srv, struct session *s)
{
    for (unsigned i = 0; i < QR_SESSION_PEOPLE_MAX; i++) {
        struct session_link *l = &s->conns[i];

        if (l->c != NULL)
            conn_close(l->c, CONN_CLOSE_MOVED, "visit moved");
        else if (l->edge[0] != '\0')
            session_cluster_act(srv, l->edge, l->conn_id,
                                json_pack("{s:s,s:i,s:s}", "a", "close", "code",
                                          CONN_CLOSE_MOVED, "reason", "visit moved"));
        if (l->c != NULL) {
            l->c->s = NULL;
            l->c->pid[0] = '\0';
        }
    }
    sessions_close(srv->sessions, s);
}

static void session_cluster__renew(struct signal_server *srv, struct session *s)
{
    char holder[CLUSTER_NODE_MAX];
    uint64_t now = clock_mono_ms();
    enum store_result r;

    if (s->lease_ok_ms == 0)
        s->lease_ok_ms = now; /* taken just now, by locate */
    /* Fenced: a lease we could not renew has lapsed, and another replica
     * may run the visit now; two owners must not. Our browsers resume
     * wherever it runs (the media never depended on us). */
    if (now - s->lease_ok_ms > QR_CLUSTER_LEASE_MS) {
        log_warn("cluster: a visit's lease could not be renewed in time; letting go");
        srv->stats.lost_visits++;
        session_cluster__let_go(srv, s);
        return;
    }
    if (now < s->renew_ms || session_cluster__quiet(srv, now))
        return;
    r = store_own(srv->store, s->v.key, session_cluster__node(srv), QR_CLUSTER_LEASE_MS, holder,
                  sizeof(holder));
    if (r == STORE_UNAVAILABLE) {
        session_cluster__store_down(srv, clock_mono_ms());
    } else if (r == STORE_OK) {
        s->renew_ms = now + QR_CLUSTER_RENEW_MS;
        s->lease_ok_ms = now;
    } else if (r == STORE_TAKEN) {
        /* Our lease lapsed (we were cut off) and another replica runs the
         * visit now: ours is stale. */
        log_warn("cluster: a visit was taken over by another replica; letting go");
        srv->stats.lost_visits++;
        session_cluster__let_go(srv, s);
    }
}

/* Edges: a join or resume the owner never answered; a connection whose
 * visit's owner changed or vanished. */
static void session_cluster__watch(struct signal_server *srv, uint64_t now, bool check_owner)
{
    struct session_cluster *sc = srv->cluster;
    char holder[CLUSTER_NODE_MAX];

    for (unsigned i = sc->n_edge; i > 0; i--) {
        struct conn *c = sc->edge[i - 1];

        enum store_result r = STORE_UNAVAILABLE;
        bool moved;

        if (check_owner && !session_cluster__quiet(srv, now) &&
            (r = srv->store->ops->owner(srv->store->impl, c->vkey, holder, sizeof(holder))) ==
                STORE_UNAVAILABLE)
            session_cluster__store_down(srv, clock_mono_ms());
        moved = r == STORE_OK && strcmp(holder, c->owner) != 0;

        if (c->owner_wait_ms != 0 && (moved || now > c->owner_wait_ms)) {
            /* Asked an owner that is gone (or too slow): the browser asks
             * again, and reaches whoever runs the visit now. A slow owner
             * that seated it meanwhile is told the connection is gone. */
            session_cluster_closed(srv, c);
            conn_refuse(c, "state_unavailable", "the visit is moving; try again", NULL);
        } else if (moved) {
            session_cluster__remove(sc, c);
            conn_close(c, CONN_CLOSE_MOVED, "visit moved");
        }
    }
}

/* A visit whose owner died with nobody coming back would never end: any
 * replica takes over a record without an owner, and its timers run. */
static int session_cluster__orphan(void *ctx, const char *vkey, const char *rec, size_t len,
                                   uint64_t rev)
{
    struct signal_server *srv = ctx;
    char holder[CLUSTER_NODE_MAX];
    enum store_result r;

    if (sessions_find_key(srv->sessions, vkey) != NULL)
        return 0;
    if ((r = srv->store->ops->owner(srv->store->impl, vkey, holder, sizeof(holder))) ==
        STORE_UNAVAILABLE) {
        session_cluster__store_down(srv, clock_mono_ms());
        return 1; /* stop: the rest would each wait out a timeout */
    }
    if (r != STORE_OK || holder[0] != '\0' ||
        store_own(srv->store, vkey, session_cluster__node(srv), QR_CLUSTER_LEASE_MS, holder,
                  sizeof(holder)) != STORE_OK)
        return 0;
    if (session_cluster__adopt(srv, vkey, rec, len, rev) != 0)
        srv->store->ops->disown(srv->store->impl, vkey, session_cluster__node(srv));
    return 0;
}

void session_cluster_tick(struct signal_server *srv)
{
    struct session_cluster *sc = srv->cluster;
    uint64_t now = clock_mono_ms();
    bool watch;

    if (sc == NULL)
        return;
    sessions_each(srv->sessions, session_cluster__renew, srv);
    watch = now >= sc->watch_ms;
    if (watch) {
        sc->watch_ms = now + QR_CLUSTER_WATCH_MS;
        sc->n_checked = 0;
        sessions_each(srv->sessions, session_cluster__check_edges, srv);
    }
    session_cluster__watch(srv, now, watch);
    if (now >= sc->sweep_ms && !srv->draining && !session_cluster__quiet(srv, now)) {
        sc->sweep_ms = now + QR_CLUSTER_SWEEP_MS;
        srv->store->ops->load(srv->store->impl, session_cluster__orphan, srv);
    }
}

/* Draining in a cluster: every visit here is handed on instead of ended.
 * Its record is in the store; the lease is let go so that the replica a
 * browser reconnects to takes it over at once. */
static void session_cluster__hand_over(struct signal_server *srv, struct session *s)
{
    /* Not with a record behind what its people were told: kept, and its
     * lease left to lapse, so that the next owner reads the latest. */
    if (session_store_save(srv, s, false) != STORE_OK)
        return;
    srv->store->ops->disown(srv->store->impl, s->v.key, session_cluster__node(srv));
    session_cluster__let_go(srv, s);
}

unsigned session_cluster_drain(struct signal_server *srv)
{
    struct session_cluster *sc = srv->cluster;
    unsigned n = sessions_count(srv->sessions);

    if (sc == NULL)
        return 0;
    sessions_each(srv->sessions, session_cluster__hand_over, srv);
    for (unsigned i = sc->n_edge; i > 0; i--) {
        struct conn *c = sc->edge[i - 1];

        session_cluster__remove(sc, c);
        conn_close(c, CONN_CLOSE_MOVED, "server draining");
    }
    return n;
}
