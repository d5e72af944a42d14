/* What the session files share (session.c: registry, delivery, timers;
 * session_auth.c: auth and resume; session_store.c: persistence;
 * session_cluster.c: other replicas). Not for the rest of signaling. */
#ifndef QUIETROOM_SIGNAL_SESSION_INTERNAL_H
#define QUIETROOM_SIGNAL_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"
#include "quietroom/auth/jwt.h"
#include "session.h"

/* Where a request came from, and so where its replies go: a connection
 * here, or one held by another replica (edge) of the cluster. */
struct session_origin {
    struct conn *c;                     /* here; NULL when remote */
    const char *edge;                   /* else the replica holding the WebSocket */
    uint64_t conn_id;                   /* its name for the connection */
    const char *addr;                   /* the browser's address, for the audit log */
};

struct session *sessions_find(struct sessions *ss, const char *sid);
struct session *sessions_find_key(struct sessions *ss, const char *vkey);
/* The session for sid, created if needed (*created); NULL when full. */
struct session *sessions_open(struct sessions *ss, const char *sid,
                              const struct visit_env *env, bool *created);
void sessions_close(struct sessions *ss, struct session *s);
/* True once every QR_STORE_PURGE_S: spent claims are purged then. */
uint32_t sessions_purge_due(struct sessions *ss, uint32_t now_s);
/* Calls fn for every session (fn may close the one it is given). */
void sessions_each(struct sessions *ss, void (*fn)(struct signal_server *srv, struct session *s),
                   struct signal_server *srv);

struct visit_config session_config(const struct signal_server *srv);
struct visit_env session_env(struct signal_server *srv, const struct visit_config *cfg);

/* Stores what the core changed, performs its actions (replies going to
 * origin's connection on VISIT_ATTACH) and forgets the visit if it ended. */
void session_finish(struct signal_server *srv, struct session *s,
                    const struct session_origin *origin, struct visit_out *o);

/* A token or resume secret refused: counted, audited, sent, closed. */
void session_refuse(struct signal_server *srv, const struct session_origin *origin,
                    const char *code, const char *message, const char *field,
                    const struct jwt_claims *claims);

/* The first message of a connection (session_auth.c). */
void session_auth(struct signal_server *srv, struct conn *c, const struct msg *m);
void session_resume(struct signal_server *srv, struct conn *c, const struct msg *m);
void session_check_link(struct signal_server *srv, struct conn *c, const struct msg *m);

/* Requests that reached the replica owning the visit (session_auth.c). */
void session_join(struct signal_server *srv, const struct session_origin *origin,
                  const struct jwt_claims *cl, enum role role);
void session_resume_at(struct signal_server *srv, struct session *s,
                       const struct session_origin *origin, const uint8_t hash[32]);
/* A message of participant `from`, parsed. */
void session_dispatch(struct signal_server *srv, struct session *s, const char *from,
                      const struct session_origin *origin, const struct msg *m);
/* Participant id's connection is gone. True if that ended the visit (s
 * is then freed). */
bool session_gone(struct signal_server *srv, struct session *s, const char *id);

/* Unbinds every participant whose connection is held by edge (which
 * lost the visit, or died) and tells the core they left. */
void session_drop_edge(struct signal_server *srv, struct session *s, const char *edge);

/* Cluster (session_cluster.c). With no cluster configured every call is a
 * no-op that answers "here". */
/* The visit with key vkey runs here (1), or *owner names the replica that
 * runs it (0); a visit nobody runs is taken over (read from the store), or
 * with create, started here. -1: not now (the store cannot say, or this
 * replica is draining); -2: there is no such visit (without create). */
int session_cluster_locate(struct signal_server *srv, const char *vkey, bool create, char *owner,
                           size_t len);
/* Forwards to the owner: a verified join, a resume, a message, a close. */
void session_cluster_join(struct signal_server *srv, struct conn *c, const char *owner,
                          const struct jwt_claims *cl);
void session_cluster_resume(struct signal_server *srv, struct conn *c, const char *owner,
                            const char *vkey, const uint8_t hash[32]);
void session_cluster_message(struct signal_server *srv, struct conn *c, const char *text,
                             size_t len);
void session_cluster_closed(struct signal_server *srv, struct conn *c);
/* Owner: leases renewed, visits lost to another replica dropped. Edge:
 * owners that stopped answering or changed. Both: orphaned visits taken
 * over. From the tick. */
void session_cluster_tick(struct signal_server *srv);
/* The cluster's store did not answer lately: calls that can wait do, and
 * new sign-ins are refused at once (fail closed, without a timeout's wait).
 * store_failed says so after a call of one's own. */
bool session_cluster_quiet(const struct signal_server *srv);
void session_cluster_store_failed(struct signal_server *srv);
/* Sends one action of the core to a participant held by edge. */
void session_cluster_act(struct signal_server *srv, const char *edge, uint64_t conn_id,
                         json_t *act);

/* The visit key (visit.h) in a resume secret, or false. */
bool session_secret_key(const char *secret, char vkey[VISIT_KEY_LEN]);

#endif
