/* Sessions: the people in one EHR appointment, their waiting room, the
 * clinician's controls, and the media pairs between admitted people. The
 * message handlers form a table; everything runs on the event-loop thread. */
#ifndef QUIETROOM_SIGNAL_SESSION_H
#define QUIETROOM_SIGNAL_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "quietroom/wire/creds.h"
#include "quietroom/auth/jwt.h"
#include "quietroom/base/limits.h"

struct conn;
struct signal_server;

enum role { ROLE_CLINICIAN, ROLE_PATIENT, ROLE_INTERPRETER, ROLE_OBSERVER, ROLE_COUNT };
enum pstate { P_WAITING, P_ADMITTED };

struct session;

struct participant {
    struct session *s;
    char id[8];                         /* "p1", unique within the session */
    enum role role;
    enum pstate state;
    char sub[JWT_CLAIM_MAX];
    char name[JWT_CLAIM_MAX];           /* display name, never logged */
    int64_t token_exp;                  /* access ends here (Unix s) */
    struct conn *conn;                  /* NULL while disconnected */
    uint64_t gone_ms;                   /* monotonic; when the connection dropped */
    uint64_t waiting_since_ms;
    uint8_t resume_hash[32];            /* SHA-256 of the current resume secret */
    char addr[64];                      /* last known address, for the audit log */
};

/* Media between two admitted people, through one relay. */
struct pair {
    struct participant *a, *b;          /* a makes the first offer */
    char relay_sid[48];                 /* the relay-side session of this pair */
    int relay;                          /* chosen at creation, kept for life */
    uint64_t created_ms;                /* monotonic: the two were brought together */
    bool setup_observed;                /* the first answer was timed */
    struct participant *offerer;        /* who sent the offer now awaiting an answer */
    bool have_creds;
    struct creds_link creds;            /* side a: offerer's leg, side b: answerer's */
};

#define SESSION_PAIRS_MAX (QR_SESSION_PEOPLE_MAX * (QR_SESSION_PEOPLE_MAX - 1) / 2)

struct session {
    char sid[JWT_CLAIM_MAX];
    char instance[17];                  /* random: names this meeting's relay sessions */
    struct participant *people[QR_SESSION_PEOPLE_MAX];
    unsigned n_people;
    struct pair *pairs[SESSION_PAIRS_MAX];
    unsigned n_pairs;
    uint64_t created_ms;
    uint64_t created_wall_ms;
    uint64_t admitted_ms;               /* first admission: max length counts from here */
    uint64_t no_clinician_since_ms;     /* since the last clinician left; 0 if present or never came */
    unsigned next_person, next_pair;
    bool part2;                         /* 42 CFR Part 2 marked by a token */
    uint32_t slot;
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

const char *role_name(enum role r);

/* Media (media.c): pairs, offers, answers, relay revocation. */
struct pair *media_pair_new(struct signal_server *srv, struct session *s, struct participant *a,
                            struct participant *b);
void media_pair_end(struct signal_server *srv, struct session *s, struct pair *pr);
struct pair *media_pair_find(struct session *s, const struct participant *x,
                             const struct participant *y);
void media_on_offer(struct signal_server *srv, struct conn *c, const char *to, const char *sdp,
                    size_t len);
void media_on_answer(struct signal_server *srv, struct conn *c, const char *to, const char *sdp,
                     size_t len);

#endif
