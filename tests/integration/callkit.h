/* Calls between two reference native clients (libnice, OpenSSL DTLS,
 * libsrtp2, Opus) placed through real signaling and a real relay, for the
 * tests that break signaling under a call (test_signal_restart,
 * test_signal_cluster). Each party talks to one signaling process (its
 * port), which a test may change when it reconnects elsewhere. Failures
 * end the test (cmocka). */
#ifndef QUIETROOM_TEST_CALLKIT_H
#define QUIETROOM_TEST_CALLKIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "harness.h"
#include "refclient.h"
#include "wsconn.h"

#define CALLKIT_WAIT_MS 5000

struct callkit_party {
    struct wsconn *ws;
    int port;                          /* the signaling it talks to */
    char id[16];
    char resume[128];
    struct refclient *rc;
    bool initiator;                    /* its last "peer" said it offers first */
    bool waiting_for_relay;            /* its last "peer" said no relay is ready yet */
    /* Set before the call to make this party's client ICE-TCP only (RFC
     * 6544): the relay's TCP candidate in the descriptions it gets must be
     * relay_tcp, which callkit also hands the client itself (sdp_summarize
     * reads no TCP candidates yet). */
    bool ice_tcp;
    union netaddr relay_tcp;
};

/* What following one relay decision of signaling took (callkit_follow_move). */
struct callkit_move {
    char reason[32];                   /* the renegotiate's: relay_lost, relay_available... */
    uint64_t renegotiate_at;           /* now_ms() it arrived */
    uint64_t ready_at;                 /* now_ms() both clients were ICE-ready (again) */
};

/* Opens a WebSocket to signaling on 127.0.0.1:port (plain HTTP); the test
 * fails if it cannot. The try variant returns NULL with err instead. */
struct wsconn *callkit_connect(int port);
struct wsconn *callkit_try_connect(int port, char *err, size_t errlen);
/* The next message of type on c (others skipped), or the test fails. */
json_t *callkit_expect(struct wsconn *c, const char *type);
/* Authenticates p with token on p->port; the reply's type and code are
 * returned in *reply (the caller frees). */
void callkit_auth(struct callkit_party *p, const char *token, json_t **reply);
/* The same, and the test fails unless welcomed in want_state. */
void callkit_join(struct callkit_party *p, const char *token, const char *want_state);
/* The same within timeout_ms, or NULL (the test goes on). */
json_t *callkit_expect_within(struct wsconn *c, const char *type, int timeout_ms);
/* The clinician admits the patient once it shows in the lobby; both
 * parties' initiator and waiting_for_relay come from their "peer". */
void callkit_admit(struct callkit_party *doc, struct callkit_party *pat);
/* Two clients; doc offers, pat answers through signaling; ICE, DTLS and
 * audio both ways through the relay. */
void callkit_media(struct callkit_party *doc, struct callkit_party *pat);
/* Follows signaling when it moves the pair's media to another relay, or
 * gives a waiting pair one: waits up to within_ms for "renegotiate" (naming
 * answerer) on offerer's WebSocket, then, if the call has clients, restarts
 * ICE on both and sends a new offer and answer through signaling (DTLS and
 * SRTP stay); if not (the pair waited from the start), places the call as
 * callkit_media does, without waiting for audio. Returns when both are
 * ICE-ready; the test fails otherwise. */
void callkit_follow_move(struct callkit_party *offerer, struct callkit_party *answerer,
                         int within_ms, struct callkit_move *mv);
/* The restart half of callkit_follow_move, for a test that took the
 * "renegotiate" itself: an ICE restart on both clients, a new offer from
 * offerer and answer through signaling (which writes the pair's relay's
 * credentials and candidates in), both ICE-ready again. */
void callkit_restart_call(struct callkit_party *offerer, struct callkit_party *answerer);
/* Presents p's resume secret on a new connection to p->port, retrying
 * transient refusals (state_unavailable) for up to within_ms: back, in
 * state. Returns the ms it took. */
uint64_t callkit_resume(struct callkit_party *p, const char *state, int within_ms);
uint64_t callkit_received(struct refclient *rc);
void callkit_free(struct callkit_party *p);

/* Watches both clients' received RTP from a thread; gap_ms is the longest
 * time either went without a new packet. */
struct callkit_sampler {
    pthread_t thread;
    struct refclient *rc[2];
    volatile int stop;
    uint64_t gap_ms[2];
    uint64_t received[2];
};
/* The sampler lives on the heap and is remembered until stopped: a test
 * that fails (cmocka jumps out of it) leaves its own frame, and its
 * teardown calls callkit_stop_samplers before the clients go. */
struct callkit_sampler *callkit_sampler_start(struct refclient *a, struct refclient *b);
/* Stops it; the caller reads gap_ms and frees it. */
void callkit_sampler_stop(struct callkit_sampler *s);
/* Stops and frees a sampler a failed test left running. */
void callkit_stop_samplers(void);

#endif
