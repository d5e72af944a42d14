/* The visit core: the state machine of one EHR appointment (who waits, who
 * is in, which media pairs exist, when timers fire) as plain data, driven by
 * events and doing no I/O. Time is passed in; every call appends the
 * actions the caller must perform (send, close, revoke, audit, end) to a
 * visit_out, in order. No connections, sockets, clocks or audit writers:
 * session.c is the glue to the WebSocket layer, and a later step stores
 * struct visit after every change (docs/cluster.md). */
#ifndef QUIETROOM_SIGNAL_VISIT_H
#define QUIETROOM_SIGNAL_VISIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "protocol.h"
#include "quietroom/auth/jwt.h"
#include "quietroom/base/limits.h"
#include "quietroom/wire/creds.h"

enum role { ROLE_CLINICIAN, ROLE_PATIENT, ROLE_INTERPRETER, ROLE_OBSERVER, ROLE_COUNT };
enum pstate { P_WAITING, P_ADMITTED };

#define VISIT_ID_LEN 8                  /* "p1": participant ids, unique within a visit */
#define VISIT_ADDR_LEN 64
#define VISIT_KEY_LEN 33                /* 32 hex digits and a NUL */
#define VISIT_PAIRS_MAX (QR_SESSION_PEOPLE_MAX * (QR_SESSION_PEOPLE_MAX - 1) / 2)
#define VISIT_CLAIM_LEN 65              /* a token claim's key (store_claim_key): 64 hex, NUL */
#define VISIT_RELAY_SID_LEN 48          /* a relay session's name, and a NUL */

/* What a person's connection check through the relay found (their page
 * measured it; shown to clinicians, never logged). */
struct visit_check {
    bool have;
    char video[8];                      /* "good", "weak", "none" */
    char transport[8];                  /* "udp", "tcp", "none" */
    int loss_pct, rtt_ms, kbps;
};

/* One person in a visit. Plain data: what a store would keep. */
struct visit_person {
    char id[VISIT_ID_LEN];
    enum role role;
    enum pstate state;
    char sub[JWT_CLAIM_MAX];
    char name[JWT_CLAIM_MAX];           /* display name, never logged */
    int64_t token_exp;                  /* access ends here (Unix s) */
    bool connected;                     /* has a live connection somewhere */
    uint64_t gone_ms;                   /* monotonic; when the connection dropped */
    uint64_t waiting_since_ms;
    uint8_t resume_hash[32];            /* SHA-256 of the current resume secret; 0s: none */
    char addr[VISIT_ADDR_LEN];          /* last known address, for the audit log */
    char locale[JWT_LOCALE_MAX];        /* the token's language for the page, "" none */
    bool rejoined;                      /* came back with their link at least once */
    /* The connection check: a relay session of its own (two peer
     * connections in the person's page), while one runs. */
    char check_sid[VISIT_RELAY_SID_LEN]; /* "" none */
    int check_relay;
    uint64_t check_until_ms;            /* revoked then at the latest */
    bool have_check_creds;              /* derived for the offer; not stored */
    struct creds_link check_creds;
    struct visit_check check;           /* the last result */
};

/* A token's place in a visit. A token (its jti) seats one person; showing
 * it again takes that seat back instead of opening another, while the
 * visit lives. Seats outlive the people in them: that is how a link left
 * by mistake works again, and how a removed person's link stays refused. */
enum seat_state { SEAT_IN, SEAT_LEFT, SEAT_REMOVED, SEAT_DECLINED };
struct visit_seat {
    char claim[VISIT_CLAIM_LEN];        /* the token's claim key, never the jti */
    char id[VISIT_ID_LEN];              /* the participant id it keeps */
    char sub[JWT_CLAIM_MAX];
    enum role role;
    enum seat_state state;
    bool was_admitted;                  /* LEFT: was admitted when it left */
    uint64_t left_ms;                   /* LEFT: monotonic, when it left */
    int64_t token_exp;                  /* the token can come back until then (Unix s) */
    unsigned checks;                    /* connection checks run from it */
};

/* Media between two admitted people, through one relay. The relay is
 * chosen when the pair is made and kept while it serves; a pair whose relay
 * is lost or about to stop moves to another (a new relay session, and an
 * ICE restart asked of one browser), and a pair that finds no relay waits
 * (relay -1) until one is healthy. */
struct visit_pair {
    char a[VISIT_ID_LEN], b[VISIT_ID_LEN]; /* a makes the first offer */
    char relay_sid[VISIT_RELAY_SID_LEN]; /* the relay-side session of this pair */
    int relay;                          /* -1: waiting for one */
    uint64_t created_ms;                /* monotonic: the two were brought together */
    bool setup_observed;                /* the first answer was timed */
    /* An offer from a (from b) awaits an answer. Both at once is glare:
     * browsers settle it (one side answers, the other drops its offer), so
     * either answer must pass. */
    bool offer_from_a, offer_from_b;
    /* Derived by the caller for each offer (from relay_sid and the relay
     * key), not decided by the core; a store may leave them out and derive
     * again. */
    bool have_creds;
    struct creds_link creds;            /* side a: offerer's leg, side b: answerer's */
};

struct visit {
    char sid[JWT_CLAIM_MAX];
    char key[VISIT_KEY_LEN];            /* visit_key(sid): names it in stores and secrets */
    char instance[17];                  /* random: names this visit's relay sessions */
    struct visit_person people[QR_SESSION_PEOPLE_MAX];
    unsigned n_people;
    struct visit_pair pairs[VISIT_PAIRS_MAX];
    unsigned n_pairs;
    struct visit_seat seats[QR_SESSION_SEATS_MAX];
    unsigned n_seats;
    uint64_t created_ms;
    uint64_t created_wall_ms;
    uint64_t admitted_ms;               /* first admission: max length counts from here */
    uint64_t no_clinician_since_ms;     /* since the last clinician left; 0 if present or never came */
    uint64_t empty_since_ms;            /* nobody in it since; 0 if someone is */
    unsigned next_person, next_pair;
    bool part2;                         /* 42 CFR Part 2 marked by a token */
    bool ended;
};

/* What the core needs from outside for one call: time, limits, a relay for
 * a pair (pick_relay returns an index, or -1 if none is healthy), and
 * whether a pair must leave its relay (relay_leaving returns why, a static
 * string such as "relay_lost", or NULL to stay). */
struct visit_config {
    uint32_t max_participants;
    uint32_t waiting_timeout_s, idle_timeout_s, max_session_s, resume_grace_s;
};
struct visit_env {
    const struct visit_config *cfg;
    uint64_t now_ms;                    /* monotonic */
    uint64_t now_wall_ms;               /* Unix ms: token expiry, audit periods */
    int (*pick_relay)(void *ctx);
    const char *(*relay_leaving)(void *ctx, int relay);
    void *ctx;
};

enum visit_act {
    VISIT_ATTACH,   /* bind the connection that made this request to `who` */
    VISIT_SEND,     /* send msg to who's connection */
    VISIT_ERROR,    /* error code/message/field to who's connection (a rejected message) */
    VISIT_CLOSE,    /* close who's connection (code, reason) and unbind it */
    VISIT_REVOKE,   /* revoke relay_sid at relay now */
    VISIT_AUDIT,    /* write audit event `event` */
    VISIT_MOVED,    /* pair_a-pair_b left relay for relay_to (reason); -1: none */
    VISIT_ENDED,    /* the visit is over (reason): forget it after these actions */
};

/* WebSocket close codes the core asks for (conn.h has the same values). */
enum visit_close {
    VISIT_CLOSE_NORMAL = 1000,
    VISIT_CLOSE_FORBIDDEN = 4403,
    VISIT_CLOSE_TIMEOUT = 4408,
    VISIT_CLOSE_ENDED = 4410,
};

struct visit_action {
    enum visit_act kind;
    char who[VISIT_ID_LEN];
    json_t *msg;                        /* SEND: owned by the visit_out until taken */
    const char *code, *message, *field; /* ERROR: static strings */
    int close_code;                     /* CLOSE */
    char reason[64];                    /* CLOSE, AUDIT, ENDED */
    int relay;                          /* REVOKE, MOVED (from) */
    int relay_to;                       /* MOVED */
    char pair_a[VISIT_ID_LEN], pair_b[VISIT_ID_LEN]; /* MOVED */
    char relay_sid[48];
    /* AUDIT: event type (static), about whom (a copy: the person may be
     * gone), who caused it, and for session.ended the period and headcount. */
    const char *event;
    const char *method;                 /* auth.success: "token" or "resume" */
    bool has_person, has_by;
    struct visit_person person;
    char by_sub[JWT_CLAIM_MAX];
    enum role by_role;
    char by_addr[VISIT_ADDR_LEN];
    unsigned n_people;
    uint64_t start_wall_ms, end_wall_ms;
};

/* The actions of one call, in order. Media requests (offer, answer,
 * candidate) the core accepted are named in media/pair for the caller,
 * which rewrites the SDP and then reports back (visit_offer_forwarded...). */
struct visit_out {
    struct visit_action *a;
    unsigned n, cap;
    enum msg_type media;                /* MSG_TYPE_COUNT: none */
    struct visit_pair *pair;
    char peer[VISIT_ID_LEN];
    struct visit_person *check;         /* MSG_CHECK_OFFER/ANSWER: whose check */
    bool seat_taken_back;               /* visit_join: a known token, no new claim */
    bool check_reported;                /* a check's result was taken */
};

void visit_out_init(struct visit_out *o);
/* Drops what was not taken (messages not sent) and empties o. */
void visit_out_reset(struct visit_out *o);

const char *role_name(enum role r);
int role_parse(const char *name);

/* The visit's key: the first 128 bits of SHA-256("quietroom-visit", NUL,
 * sid), in hex. Stores and the cluster name a visit by it (never by the
 * EHR's appointment id), and every resume secret starts with it ("KEY.",
 * then the random part), so any replica can tell which visit a secret is
 * for. */
void visit_key(const char *sid, char key[VISIT_KEY_LEN]);

/* A new, empty visit. instance is 16 random hex digits from the caller. */
void visit_init(struct visit *v, const char *sid, const char *instance, const struct visit_env *env);

/* A verified token for role, whose claim key is `claim`, arrived on a new
 * connection from addr. A token not seen in this visit opens a seat; one
 * seen before takes its seat back (o->seat_taken_back): the person in it
 * is replaced on their old connection, or comes back to the waiting room,
 * or straight into the call if admitted and gone less than the resume
 * grace. Returns NULL (actions appended: attach, welcome, audit...) or the
 * refusal code: "session_full", "token_replayed" (the claim's seat is of
 * another sub or role), "removed_by_clinician", "declined_by_clinician";
 * nothing is appended on refusal. */
const char *visit_join(struct visit *v, const struct visit_env *env, const struct jwt_claims *cl,
                       enum role role, const char *claim, const char *addr,
                       struct visit_out *o);

/* What visit_join would refuse a token with whose claim key is claim,
 * from its seat alone (NULL: nothing; *found says whether it has a seat
 * here). Reads only: for a link checked before it is used. */
const char *visit_seat_refusal(struct visit *v, const struct jwt_claims *cl, enum role role,
                               const char *claim, bool *found);

/* SHA-256 of a resume secret; the person holding hash, or NULL. */
void visit_resume_hash(const char *secret, uint8_t hash[32]);
struct visit_person *visit_by_resume(struct visit *v, const uint8_t hash[32]);
/* p's resume secret was presented on a new connection from addr. Returns
 * NULL (old connection closed "replaced", new one attached) or
 * "resume_invalid" (past the grace, or the token expired). */
const char *visit_resume(struct visit *v, const struct visit_env *env, struct visit_person *p,
                         const char *addr, struct visit_out *o);

/* A message from participant `from` on its connection (not auth/resume:
 * those answer already_authenticated). */
void visit_message(struct visit *v, const struct visit_env *env, const char *from,
                   const struct msg *m, struct visit_out *o);
/* The caller forwarded o->pair's offer from `from` / answer from
 * `answerer`; for an answer returns the ms since the pair was made if this
 * was its first, else -1. */
void visit_offer_forwarded(struct visit_pair *pr, const char *from);
/* The caller derived p's check credentials and sent the rewritten offer
 * back (ok), or could not (the check is forgotten; it counts against the
 * seat only when it went out). */
void visit_check_offered(struct visit *v, struct visit_person *p, bool ok);
int64_t visit_answer_forwarded(struct visit_pair *pr, const char *answerer,
                               const struct visit_env *env);
/* Whether `from`'s offer to the other side of pr awaits an answer. */
bool visit_pair_offer_pending(const struct visit_pair *pr, const char *from);

/* Participant id's connection dropped: it keeps its place for the grace. */
void visit_disconnected(struct visit *v, const struct visit_env *env, const char *id,
                        struct visit_out *o);
/* Timers: token expiry, resume grace, waiting, idle, maximum length; and
 * the pairs' relays: a pair leaves a relay that is leaving, and a waiting
 * pair takes a relay once one is there. */
void visit_tick(struct visit *v, const struct visit_env *env, struct visit_out *o);
/* Ends the visit for everyone (reason, by whom or NULL). */
void visit_end(struct visit *v, const struct visit_env *env, const char *reason,
               const struct visit_person *by, struct visit_out *o);

struct visit_person *visit_person(struct visit *v, const char *id);

/* A visit read back from a store by a process that has no connection of
 * it: everyone is disconnected as of now (the resume grace decides who
 * comes back) and no offer is outstanding (its credentials were not
 * stored). */
void visit_restored(struct visit *v, const struct visit_env *env);
/* The latest time the visit holds (monotonic ms): a clock that resumes the
 * visit must not start below it. */
uint64_t visit_latest_ms(const struct visit *v);

#endif
