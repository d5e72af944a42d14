/* Audit records of signaling: who (sub, role), from which address, which
 * session, what happened, who caused it and how it ended. */
#include "events.h"

#include <string.h>

#include "server.h"

static void events__emit(struct signal_server *srv, json_t *ev)
{
    if (srv->audit == NULL || ev == NULL) {
        json_decref(ev);
        return;
    }
    audit_emit(srv->audit, ev);
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

/* A record the visit core asked for: about a participant (auth.success,
 * participant.*, session.notice to one person) or about the whole visit
 * (session.ended; session.notice to everyone waiting, with how many). */
void events_visit(struct signal_server *srv, const struct visit *v, const struct visit_action *a)
{
    const char *reason = a->reason[0] != '\0' ? a->reason : NULL;
    bool failed = strcmp(a->event, "participant.timeout") == 0;
    json_t *ev = audit_event(a->event, 'E', failed ? AUDIT_MINOR_FAILURE : AUDIT_SUCCESS);

    if (a->has_person) {
        const struct visit_person *p = &a->person;

        audit_event_agent(ev, p->sub, role_name(p->role), true, p->addr);
        audit_event_session(ev, v->sid, v->part2);
        audit_event_detail(ev, "participant", json_string(p->id));
        if (a->method != NULL)
            audit_event_detail(ev, "method", json_string(a->method));
        else
            audit_event_reason(ev, reason);
        if (a->has_by)
            audit_event_by(ev, a->by_sub, role_name(a->by_role));
    } else {
        audit_event_reason(ev, reason);
        if (a->has_by) {
            audit_event_agent(ev, a->by_sub, role_name(a->by_role), true, a->by_addr);
            audit_event_by(ev, a->by_sub, role_name(a->by_role));
        }
        audit_event_session(ev, v->sid, v->part2);
        if (a->end_wall_ms != 0)
            audit_event_period(ev, a->start_wall_ms, a->end_wall_ms);
        audit_event_detail(ev, "participants", json_integer((json_int_t)a->n_people));
    }
    events__emit(srv, ev);
}

/* A pair's media left its relay (lost, draining) or found one (it was
 * waiting): the relays by their configured names, never an address. */
void events_link_moved(struct signal_server *srv, const struct visit *v,
                       const struct visit_action *a, const char *from, const char *to)
{
    json_t *ev = audit_event("link.moved", 'U', AUDIT_SUCCESS);

    audit_event_agent(ev, NULL, "signaling", true, NULL);
    audit_event_session(ev, v->sid, v->part2);
    audit_event_reason(ev, a->reason);
    audit_event_detail(ev, "participants", json_pack("[s,s]", a->pair_a, a->pair_b));
    audit_event_detail(ev, "from", from ? json_string(from) : json_null());
    audit_event_detail(ev, "to", to ? json_string(to) : json_null());
    events__emit(srv, ev);
}

void events_simple(struct signal_server *srv, const char *type)
{
    json_t *ev = audit_event(type, 'E', AUDIT_SUCCESS);

    audit_event_agent(ev, NULL, "signaling", true, NULL);
    events__emit(srv, ev);
}

void events_takeover(struct signal_server *srv, const struct visit *v)
{
    json_t *ev = audit_event("session.takeover", 'U', AUDIT_SUCCESS);

    audit_event_agent(ev, NULL, "signaling", true, NULL);
    audit_event_session(ev, v->sid, v->part2);
    audit_event_detail(ev, "participants", json_integer((json_int_t)v->n_people));
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
