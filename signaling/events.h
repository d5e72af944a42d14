/* Signaling's audit records: who (sub, role), from where, which session,
 * what happened and how it ended. Never tokens, SDP, names or secrets. */
#ifndef QUIETROOM_SIGNAL_EVENTS_H
#define QUIETROOM_SIGNAL_EVENTS_H

#include <stdint.h>

#include "quietroom/auth/jwt.h"
#include "visit.h"

struct signal_server;

/* Refused; claims is non-NULL when the signature was good (so sub/role/sid
 * can be named), reason is the wire error code. */
void events_auth_failed(struct signal_server *srv, const char *addr, const char *reason,
                        const struct jwt_claims *claims);
/* An audit action of the visit core (VISIT_AUDIT): auth.success,
 * participant.waiting, .admitted, .declined, .removed, .resumed, .left,
 * .disconnected, .timeout, session.ended. */
void events_visit(struct signal_server *srv, const struct visit *v, const struct visit_action *a);
void events_simple(struct signal_server *srv, const char *type);
/* link.moved (VISIT_MOVED): a pair's media left relay `from` for `to`
 * (names; NULL: none, the pair waited or waits for a relay). */
void events_link_moved(struct signal_server *srv, const struct visit *v,
                       const struct visit_action *a, const char *from, const char *to);
/* session.takeover: this replica took the visit over from the store (its
 * owner's lease lapsed, or it handed the visit on); how many people the
 * record holds. The chain of this replica (node) records it. */
void events_takeover(struct signal_server *srv, const struct visit *v);
/* signal.drain: the first SIGTERM; how many visits are left, for how long. */
void events_drain(struct signal_server *srv, unsigned sessions, uint32_t timeout_s);
/* signal.reload: what changed (names, consumed), or why nothing did
 * (reason non-NULL). Never a secret: key ids and fingerprints at most. */
void events_reload(struct signal_server *srv, json_t *changed, const char *reason);

#endif
