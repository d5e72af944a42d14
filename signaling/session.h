/* Sessions: the registry of live visits and the glue between the WebSocket
 * layer and the visit core (visit.h). Turns connection, message and timer
 * events into core events and performs the actions the core returns:
 * sending, closing, relay revocation, audit records. Everything runs on the
 * event-loop thread. */
#ifndef QUIETROOM_SIGNAL_SESSION_H
#define QUIETROOM_SIGNAL_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "protocol.h"
#include "visit.h"

struct conn;
struct signal_server;

/* One live visit here: the core's state and which connection carries
 * which participant (transport state, never stored). */
struct session {
    struct visit v;
    uint32_t slot;
    struct {
        char id[VISIT_ID_LEN];
        struct conn *c;
    } conns[QR_SESSION_PEOPLE_MAX];
};

struct sessions;

/* The registry of live sessions (at most max). NULL on failure. */
struct sessions *sessions_new(uint32_t max);
/* Ends every session, telling everyone why ("server_shutdown"). */
void sessions_end_all(struct signal_server *srv, const char *reason);
/* Frees the registry (end the sessions first). */
void sessions_free(struct sessions *ss);
unsigned sessions_count(const struct sessions *ss);

/* Aggregates for /metrics and the dashboard (a scan of the registry). */
struct sessions_census {
    unsigned sessions;
    unsigned waiting;                   /* people in waiting rooms */
    unsigned connected[ROLE_COUNT];     /* people with an open connection */
};
void sessions_census(const struct sessions *ss, struct sessions_census *out);

/* Entry points from the WebSocket layer. */
void session_on_message(struct signal_server *srv, struct conn *c, const char *buf, size_t len);
void session_on_close(struct signal_server *srv, struct conn *c);
/* Timers: auth deadline, waiting, resume grace, token expiry, idle, length. */
void session_tick(struct signal_server *srv, uint64_t now_ms);

/* The connection carrying participant id, or NULL. */
struct conn *session_conn(struct session *s, const char *id);

/* Media (media.c): an offer or answer the core accepted (o->media, o->pair,
 * o->peer) is given relay credentials, rewritten and forwarded. */
void media_forward(struct signal_server *srv, struct session *s, struct conn *c,
                   const struct visit_env *env, const struct visit_out *o, const struct msg *m);
/* Relay credentials outlive the longest session (Unix s). */
uint32_t media_creds_expiry(const struct signal_server *srv);

#endif
