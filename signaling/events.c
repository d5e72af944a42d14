/* Audit records of signaling, queued to the audit writer. */
#include "events.h"

#include "server.h"

static void events__emit(struct signal_server *srv, json_t *ev)
{
    if (srv->audit == NULL || ev == NULL) {
        json_decref(ev);
        return;
    }
    audit_emit(srv->audit, ev);
}

void events_auth_ok(struct signal_server *srv, const struct participant *p, const char *method)
{
    events__emit(srv, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "type", "auth.success",
                                "outcome", "success", "method", method, "sid", p->s->sid, "sub",
                                p->sub, "role", role_name(p->role), "participant", p->id,
                                "address", p->addr));
}

void events_auth_failed(struct signal_server *srv, const char *addr, const char *reason,
                        const struct jwt_claims *claims)
{
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s}", "type", "auth.failure", "outcome", "failure",
                           "reason", reason, "address", addr);

    /* Claims are named only when the signature was good, and only those
     * the verifier got to read before it refused. */
    if (ev != NULL && claims != NULL) {
        if (claims->sub[0] != '\0')
            json_object_set_new(ev, "sub", json_string(claims->sub));
        if (claims->role[0] != '\0')
            json_object_set_new(ev, "role", json_string(claims->role));
        if (claims->sid[0] != '\0')
            json_object_set_new(ev, "sid", json_string(claims->sid));
    }
    events__emit(srv, ev);
}

void events_participant(struct signal_server *srv, const struct participant *p, const char *what,
                        const char *reason, const struct participant *by)
{
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "type", what, "outcome", "success",
                           "sid", p->s->sid, "sub", p->sub, "role", role_name(p->role),
                           "participant", p->id, "address", p->addr);

    if (ev != NULL && reason != NULL)
        json_object_set_new(ev, "reason", json_string(reason));
    if (ev != NULL && by != NULL)
        json_object_set_new(ev, "by", json_pack("{s:s,s:s}", "sub", by->sub, "role",
                                                role_name(by->role)));
    events__emit(srv, ev);
}

void events_session_ended(struct signal_server *srv, const struct session *s, const char *reason,
                          const struct participant *by)
{
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:i}", "type", "session.ended", "outcome",
                           "success", "sid", s->sid, "reason", reason, "participants",
                           (int)s->n_people);

    if (ev != NULL && by != NULL)
        json_object_set_new(ev, "by", json_pack("{s:s,s:s}", "sub", by->sub, "role",
                                                role_name(by->role)));
    if (ev != NULL && s->part2)
        json_object_set_new(ev, "part2", json_true());
    events__emit(srv, ev);
}

void events_simple(struct signal_server *srv, const char *type)
{
    events__emit(srv, json_pack("{s:s}", "type", type));
}
