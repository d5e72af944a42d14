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
    uint64_t rev;                       /* the store's revision of our last write; 0: none */
    uint8_t saved[32];                  /* SHA-256 of that record: an unchanged visit is not
                                         * written again */
    bool unsaved;                       /* the last write failed: the tick tries again */
    uint64_t renew_ms;                  /* cluster: the ownership lease is renewed then */
    uint64_t lease_ok_ms;               /* cluster: the lease was last known ours then */
    /* Where each connected participant's WebSocket is: here (c), or on
     * another replica of the cluster (edge, conn_id). */
    struct session_link {
        char id[VISIT_ID_LEN];
        struct conn *c;
        char edge[64];
        uint64_t conn_id;
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
    unsigned pairs_waiting;             /* media pairs without a relay */
};
void sessions_census(const struct sessions *ss, struct sessions_census *out);

/* The cluster (session_cluster.c): listens for the other replicas when the
 * store is a cluster store (0 and nothing to do otherwise; -1 with err).
 * poll runs what they sent, from the event loop after each round. drain
 * hands every visit here on to the other replicas (SIGTERM) and closes
 * this replica's connections (4012: the browsers resume elsewhere);
 * returns how many visits were handed on. */
int session_cluster_start(struct signal_server *srv, char *err, size_t errlen);
void session_cluster_poll(struct signal_server *srv);
unsigned session_cluster_drain(struct signal_server *srv);
/* Before the event loop goes: no more wakes from NATS' thread. */
void session_cluster_quiesce(struct signal_server *srv);
/* Messages from other replicas dropped (not JSON, inbox full). */
unsigned long session_cluster_dropped(struct signal_server *srv);
void session_cluster_free(struct signal_server *srv);

/* Entry points from the WebSocket layer. */
void session_on_message(struct signal_server *srv, struct conn *c, const char *buf, size_t len);
void session_on_close(struct signal_server *srv, struct conn *c);
/* Timers: auth deadline, waiting, resume grace, token expiry, idle, length. */
void session_tick(struct signal_server *srv);

/* The visit clock (monotonic ms): the process's monotonic clock anchored
 * to the wall clock at start, so that times a store keeps mean the same
 * to the next process, and raised past every time read back (a wall
 * clock set back cannot make it run backwards over a stored visit). */
uint64_t sessions_now_ms(const struct sessions *ss);
void sessions_clock_floor(struct sessions *ss, uint64_t ms);
/* The registry takes a visit read back from the store; NULL when full or
 * when the sid is here already. */
struct session *sessions_adopt(struct sessions *ss, const struct visit *v);
/* Every visit here was just read back: visit_restored, at the visit clock. */
void sessions_restored(struct signal_server *srv);

/* Persistence (session_store.c). */
/* Reads every visit the store holds into the registry (visit_restored);
 * the number read, or -1 if the store cannot be read. Records that do not
 * decode, or name a relay not configured, are counted and left alone. */
int session_store_load(struct signal_server *srv);
/* Writes s's record if it changed since the last write, or forgets it when
 * the visit is over. A failure is logged, counted and retried by the tick
 * (session_store_retry). */
enum store_result session_store_save(struct signal_server *srv, struct session *s, bool over);
void session_store_retry(struct signal_server *srv, struct session *s);

/* Delivery to participant id wherever its connection is (nothing when it
 * has none): a message (consumed), an error, or a close. */
void session_send(struct signal_server *srv, struct session *s, const char *id, json_t *msg);
void session_error(struct signal_server *srv, struct session *s, const char *id,
                   const char *code, const char *message, const char *field);

/* Media (media.c): an offer or answer from participant `from` the core
 * accepted (o->media, o->pair, o->peer) is given relay credentials,
 * rewritten and forwarded. */
void media_forward(struct signal_server *srv, struct session *s, const char *from,
                   const struct visit_env *env, const struct visit_out *o, const struct msg *m);
/* Relay credentials outlive the longest session (Unix s). */
uint32_t media_creds_expiry(const struct signal_server *srv);

#endif
