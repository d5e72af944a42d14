/* Audit records of signaling: who (sub, role), from which address, which
 * session, what happened, who caused it and how it ended. */
#include "events.h"

#include <string.h>

#include "quietroom/base/clock.h"
#include "server.h"

static void events__emit(struct signal_server *srv, json_t *ev)
{
    if (srv->audit == NULL || ev == NULL) {
        json_decref(ev);
        return;
    }
    audit_emit(srv->audit, ev);
}

static json_t *events__person(const char *type, enum audit_outcome outcome,
                              const struct participant *p)
{
    json_t *ev = audit_event(type, 'E', outcome);

    audit_event_agent(ev, p->sub, role_name(p->role), true, p->addr);
    audit_event_session(ev, p->s->sid, p->s->part2);
    audit_event_detail(ev, "participant", json_string(p->id));
    return ev;
}

void events_auth_ok(struct signal_server *srv, const struct participant *p, const char *method)
{
    json_t *ev = events__person("auth.success", AUDIT_SUCCESS, p);

    audit_event_detail(ev, "method", json_string(method));
    events__emit(srv, ev);
}

void events_auth_failed(struct signal_server *srv, const char *addr, const char *reason,
                        const struct jwt_claims *claims)
{
    json_t *ev = audit_event("auth.failure", 'E', AUDIT_MINOR_FAILURE);

    audit_event_reason(ev, reason);
    /* Claims are named only when the signature was good, and only those
     * the verifier got to read before it refused. */
    audit_event_agent(ev, claims ? claims->sub : NULL, claims ? claims->role : NULL, true, addr);
    if (claims != NULL && claims->sid[0] != '\0')
        audit_event_session(ev, claims->sid, claims->part2);
    events__emit(srv, ev);
}

void events_participant(struct signal_server *srv, const struct participant *p, const char *what,
                        const char *reason, const struct participant *by)
{
    bool failed = strcmp(what, "participant.timeout") == 0;
    json_t *ev = events__person(what, failed ? AUDIT_MINOR_FAILURE : AUDIT_SUCCESS, p);

    audit_event_reason(ev, reason);
    if (by != NULL)
        audit_event_by(ev, by->sub, role_name(by->role));
    events__emit(srv, ev);
}

void events_session_ended(struct signal_server *srv, const struct session *s, const char *reason,
                          const struct participant *by)
{
    json_t *ev = audit_event("session.ended", 'E', AUDIT_SUCCESS);

    audit_event_reason(ev, reason);
    if (by != NULL) {
        audit_event_agent(ev, by->sub, role_name(by->role), true, by->addr);
        audit_event_by(ev, by->sub, role_name(by->role));
    }
    audit_event_session(ev, s->sid, s->part2);
    audit_event_period(ev, s->created_wall_ms, clock_wall_ms());
    audit_event_detail(ev, "participants", json_integer((json_int_t)s->n_people));
    events__emit(srv, ev);
}

void events_simple(struct signal_server *srv, const char *type)
{
    json_t *ev = audit_event(type, 'E', AUDIT_SUCCESS);

    audit_event_agent(ev, NULL, "signaling", true, NULL);
    events__emit(srv, ev);
}

void events_drain(struct signal_server *srv, unsigned sessions, uint32_t timeout_s)
{
    json_t *ev = audit_event("signal.drain", 'E', AUDIT_SUCCESS);

    audit_event_agent(ev, NULL, "signaling", true, NULL);
    audit_event_detail(ev, "sessions", json_integer((json_int_t)sessions));
    audit_event_detail(ev, "timeout_s", json_integer((json_int_t)timeout_s));
    events__emit(srv, ev);
}

void events_reload(struct signal_server *srv, json_t *changed, const char *reason)
{
    json_t *ev = audit_event("signal.reload", 'U', reason ? AUDIT_MINOR_FAILURE : AUDIT_SUCCESS);

    audit_event_agent(ev, NULL, "signaling", true, NULL);
    if (reason != NULL)
        audit_event_reason(ev, reason);
    audit_event_detail(ev, "changed", changed ? changed : json_array());
    events__emit(srv, ev);
}
