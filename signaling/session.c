/* The glue between the WebSocket layer and the visit core: which
 * connection carries which participant (here, or on another replica of a
 * cluster), the performing of what the core decides, in order, and the
 * entry points of the WebSocket layer and the timer. Authentication is
 * session_auth.c's, persistence session_store.c's, the registry
 * sessions.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>
#include <openssl/crypto.h>

#include "conn.h"
#include "events.h"
#include "protocol.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/log.h"
#include "relays.h"
#include "server.h"
#include "session_internal.h"
#include "store.h"

static int session__pick_relay(void *ctx)
{
    struct signal_server *srv = ctx;

    return relays_pick(srv->relays);
}

static const char *session__relay_leaving(void *ctx, int relay)
{
    struct signal_server *srv = ctx;

    return relays_leaving(srv->relays, relay);
}

struct visit_config session_config(const struct signal_server *srv)
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
struct visit_env session_env(struct signal_server *srv, const struct visit_config *cfg)
{
    return (struct visit_env){
        .cfg = cfg,
        .now_ms = sessions_now_ms(srv->sessions),
        .now_wall_ms = clock_wall_ms(),
        .pick_relay = session__pick_relay,
        .relay_leaving = session__relay_leaving,
        .ctx = srv,
    };
}

/* --- where participants are ------------------------------------------------------ */

static struct session_link *session__link(struct session *s, const char *id)
{
    for (unsigned i = 0; i < QR_SESSION_PEOPLE_MAX; i++) {
        struct session_link *l = &s->conns[i];

        if ((l->c != NULL || l->edge[0] != '\0') && strcmp(l->id, id) == 0)
            return l;
    }
    return NULL;
}

static void session__bind(struct signal_server *srv, struct session *s, const char *id,
                          const struct session_origin *origin)
{
    for (unsigned i = 0; i < QR_SESSION_PEOPLE_MAX; i++) {
        struct session_link *l = &s->conns[i];

        if (l->c != NULL || l->edge[0] != '\0')
            continue;
        snprintf(l->id, sizeof(l->id), "%s", id);
        if (origin->c != NULL) {
            l->c = origin->c;
            origin->c->s = s;
            snprintf(origin->c->pid, sizeof(origin->c->pid), "%s", id);
        } else {
            snprintf(l->edge, sizeof(l->edge), "%s", origin->edge);
            l->conn_id = origin->conn_id;
            session_cluster_act(srv, l->edge, l->conn_id,
                                json_pack("{s:s,s:s,s:s}", "a", "attach", "p", id, "v",
                                          s->v.key));
        }
        return;
    }
}

static void session__unlink(struct session_link *l)
{
    if (l->c != NULL) {
        l->c->s = NULL;
        l->c->pid[0] = '\0';
    }
    memset(l, 0, sizeof(*l));
}

void session_send(struct signal_server *srv, struct session *s, const char *id, json_t *msg)
{
    struct session_link *l = session__link(s, id);

    if (l != NULL && l->c != NULL)
        conn_send(l->c, msg);
    else if (l != NULL)
        session_cluster_act(srv, l->edge, l->conn_id,
                            json_pack("{s:s,s:o}", "a", "send", "msg", msg));
    else
        json_decref(msg);
}

void session_error(struct signal_server *srv, struct session *s, const char *id,
                   const char *code, const char *message, const char *field)
{
    struct session_link *l = session__link(s, id);

    if (l != NULL && l->c != NULL)
        conn_error(l->c, code, message, field);
    else if (l != NULL)
        session_cluster_act(srv, l->edge, l->conn_id,
                            json_pack("{s:s,s:s,s:s,s:s?}", "a", "error", "code", code,
                                      "message", message, "field", field));
}

static void session__close(struct signal_server *srv, struct session *s, const char *id,
                           int code, const char *reason)
{
    struct session_link *l = session__link(s, id);

    if (l == NULL)
        return;
    if (l->c != NULL)
        conn_close(l->c, (enum conn_close_code)code, reason);
    else
        session_cluster_act(srv, l->edge, l->conn_id,
                            json_pack("{s:s,s:i,s:s}", "a", "close", "code", code, "reason",
                                      reason));
    session__unlink(l);
}

/* --- performing the core's actions ---------------------------------------------- */

/* A pair left its relay (or found one): counted, logged by relay name (the
 * operator's label), audited. */
static void session__moved(struct signal_server *srv, struct session *s,
                           const struct visit_action *a)
{
    const struct signal_relay_spec *from = relays_spec(srv->relays, a->relay);
    const struct signal_relay_spec *to = relays_spec(srv->relays, a->relay_to);

    stats_count(&srv->stats.media_moves, a->reason);
    if (to != NULL)
        log_info("media moved from relay %s to relay %s (%s)", from ? from->name : "(none)",
                 to->name, a->reason);
    else
        log_warn("media left relay %s (%s) and waits: no other relay is ready",
                 from ? from->name : "(none)", a->reason);
    events_link_moved(srv, &s->v, a, from ? from->name : NULL, to ? to->name : NULL);
}

/* Does what the core decided, in order; origin is where the request came
 * from (attached on VISIT_ATTACH). Returns true if the visit is over. */
static bool session__perform(struct signal_server *srv, struct session *s,
                             const struct session_origin *origin, struct visit_out *o)
{
    bool over = false;

    for (unsigned i = 0; i < o->n; i++) {
        struct visit_action *a = &o->a[i];

        switch (a->kind) {
        case VISIT_ATTACH:
            if (origin != NULL)
                session__bind(srv, s, a->who, origin);
            break;
        case VISIT_SEND:
            session_send(srv, s, a->who, a->msg);
            a->msg = NULL;
            break;
        case VISIT_ERROR:
            session_error(srv, s, a->who, a->code, a->message, a->field);
            break;
        case VISIT_CLOSE:
            session__close(srv, s, a->who, a->close_code, a->reason);
            break;
        case VISIT_REVOKE:
            relays_revoke(srv->relays, a->relay, a->relay_sid, media_creds_expiry(srv));
            break;
        case VISIT_AUDIT:
            events_visit(srv, &s->v, a);
            break;
        case VISIT_MOVED:
            session__moved(srv, s, a);
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

/* A failed write does not hold the visit up (it is retried on the tick);
 * auth and resume, which must not hand out a seat or a secret the store
 * lost, check before they get here. */
void session_finish(struct signal_server *srv, struct session *s,
                    const struct session_origin *origin, struct visit_out *o)
{
    /* An ending visit is written ended first (a crash or a failed forget
     * leaves a record every reader skips and forgets, never one that comes
     * back to life), told, and forgotten last: forgetting drops its lease,
     * and an edge that saw the lease gone before the news of the end would
     * close its browsers as "moved" instead of "ended". */
    if (session__ends(o)) {
        session_store_save(srv, s, false);
        session__perform(srv, s, origin, o);
        session_store_save(srv, s, true);
        sessions_close(srv->sessions, s);
        return;
    }
    session_store_save(srv, s, false);
    session__perform(srv, s, origin, o);
}

bool session_gone(struct signal_server *srv, struct session *s, const char *id)
{
    struct visit_config cfg = session_config(srv);
    struct visit_env env = session_env(srv, &cfg);
    struct session_link *l = session__link(s, id);
    struct visit_out o;
    bool ends;

    if (l != NULL)
        session__unlink(l);
    visit_out_init(&o);
    visit_disconnected(&s->v, &env, id, &o);
    ends = session__ends(&o);
    session_finish(srv, s, NULL, &o);
    return ends;
}

void session_drop_edge(struct signal_server *srv, struct session *s, const char *edge)
{
    for (unsigned i = 0; i < QR_SESSION_PEOPLE_MAX; i++) {
        struct session_link *l = &s->conns[i];
        char id[VISIT_ID_LEN];

        if (l->c != NULL || l->edge[0] == '\0' || strcmp(l->edge, edge) != 0)
            continue;
        /* If the edge was only cut off for a moment, its browser is told
         * to resume rather than left on a connection we no longer hear. */
        session_cluster_act(srv, l->edge, l->conn_id,
                            json_pack("{s:s,s:i,s:s}", "a", "close", "code", CONN_CLOSE_MOVED,
                                      "reason", "visit moved"));
        snprintf(id, sizeof(id), "%s", l->id);
        if (session_gone(srv, s, id))
            return; /* the visit ended: s is gone */
    }
}

static void session__end(struct signal_server *srv, struct session *s)
{
    struct visit_config cfg = session_config(srv);
    struct visit_env env = session_env(srv, &cfg);
    struct visit_out o;

    visit_out_init(&o);
    visit_end(&s->v, &env, "server_shutdown", NULL, &o);
    session_finish(srv, s, NULL, &o);
}

void sessions_end_all(struct signal_server *srv, const char *reason)
{
    (void)reason; /* one reason today: server_shutdown */
    sessions_each(srv->sessions, session__end, srv);
}

static void session__restored(struct signal_server *srv, struct session *s)
{
    struct visit_config cfg = session_config(srv);
    struct visit_env env = session_env(srv, &cfg);

    visit_restored(&s->v, &env);
}

void sessions_restored(struct signal_server *srv)
{
    sessions_each(srv->sessions, session__restored, srv);
}

/* --- the WebSocket layer's entry points --------------------------------------------- */

void session_on_message(struct signal_server *srv, struct conn *c, const char *buf, size_t len)
{
    struct session_origin origin = {.c = c, .addr = c->addr};
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
        if (c->s == NULL && c->owner[0] == '\0')
            conn_close(c, CONN_CLOSE_PROTOCOL, protocol_error_code(e));
        return;
    }
    if (c->owner[0] != '\0' && c->pid[0] != '\0')
        session_cluster_message(srv, c, buf, len); /* the owner answers */
    else if (c->owner[0] != '\0')
        conn_error(c, "busy", "the previous request is still being answered", NULL);
    else if (c->s == NULL && m.type == MSG_AUTH)
        session_auth(srv, c, &m);
    else if (c->s == NULL && m.type == MSG_RESUME)
        session_resume(srv, c, &m);
    else if (c->s == NULL && m.type == MSG_CHECK_LINK)
        session_check_link(srv, c, &m);
    else if (c->s == NULL)
        session_refuse(srv, &origin, "auth_required",
                       "the first message must be auth, resume or check_link", NULL, NULL);
    else
        session_dispatch(srv, c->s, c->pid, &origin, &m);
    msg_free(&m);
}

/* The WebSocket is gone. A member keeps its place for the resume grace. */
void session_on_close(struct signal_server *srv, struct conn *c)
{
    char pid[VISIT_ID_LEN];

    if (c->owner[0] != '\0') {
        session_cluster_closed(srv, c);
        return;
    }
    if (c->s == NULL)
        return;
    snprintf(pid, sizeof(pid), "%s", c->pid);
    session_gone(srv, c->s, pid);
}

static void session__tick_one(struct signal_server *srv, struct session *s)
{
    struct visit_config cfg = session_config(srv);
    struct visit_env env = session_env(srv, &cfg);
    struct visit_out o;

    visit_out_init(&o);
    visit_tick(&s->v, &env, &o);
    /* Time passing changes a visit only through actions. */
    if (o.n == 0)
        session_store_retry(srv, s);
    else
        session_finish(srv, s, NULL, &o);
}

void session_tick(struct signal_server *srv)
{
    if (sessions_purge_due(srv->sessions, clock_wall_s()))
        store_purge(srv->store, (int64_t)clock_wall_s());
    sessions_each(srv->sessions, session__tick_one, srv);
    session_cluster_tick(srv);
}
