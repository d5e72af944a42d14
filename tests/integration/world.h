/* One integration-test world: quietroom-relay (or two sharing a secret) and,
 * unless asked not to, quietroom-signal in front of it, on loopback, started
 * by a cmocka setup and stopped by its teardown so that no process, visit
 * or connection outlives the test that made it.
 * Clients are the prober's WebSocket client (wsconn.h), trusting the
 * world's own certificate over TLS. Failures end the test (cmocka). */
#ifndef QUIETROOM_TEST_WORLD_H
#define QUIETROOM_TEST_WORLD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "wsconn.h"

#define WORLD_WAIT_MS 3000
#define WORLD_PROTOCOL "quietroom.v1"

struct world_opts {
    bool tls;                          /* wss with a fresh self-signed certificate */
    bool no_signal;                    /* the relay(s) alone, for tests of the relay itself */
    bool second_relay;                 /* a second relay on the first one's secret, as in
                                        * a cluster; signaling still knows only the first */
    bool signal_both_relays;           /* with second_relay: signaling knows it too, as
                                        * relay r2 (the first is r1) */
    const char *ops_token;             /* relays serve ops on loopback with this bearer
                                        * token (read from a file the world writes) */
    const char *const *listen;         /* relay addresses, NULL-terminated; NULL: 127.0.0.1:0 */
    const char *const *relay_extra;    /* more relay options, NULL-terminated, may be NULL */
    const char *const *signal_extra;   /* [signal] lines, NULL-terminated, may be NULL */
    int wait_ms;                       /* each wait of the helpers; 0: WORLD_WAIT_MS */
};

struct world {
    struct relay_proc relay;
    struct relay_proc relay2;          /* with second_relay; pid 0 otherwise */
    struct signal_proc sig;            /* pid 0 with no_signal */
    char ops_token_file[HARNESS_PATH]; /* with ops_token; "" otherwise */
    char relay2_line[RELAY_CONF_LINE_MAX]; /* with signal_both_relays: its relay line */
    int wait_ms;
};

/* Starts the relay(s), then signaling in front of the first, and waits until
 * they serve. Returns 0, or -1 with the failing log printed and whatever
 * had started stopped again. */
int world_start(struct world *w, const struct world_opts *o);
/* Stops everything, removes its files and clears w (a second call does
 * nothing); 0 if every process exited cleanly. A process a test stopped
 * itself counts with the status it exited with. */
int world_stop(struct world *w);

/* cmocka setup and teardown for a test that owns a world in *state:
 * allocates and starts one with o; stops and frees it. */
int world_setup(void **state, const struct world_opts *o);
int world_teardown(void **state);

/* Opens a WebSocket to the world's signaling; NULL with a reason in err. */
struct wsconn *world_open(const struct world *w, const char *origin, const char *protocol,
                          const char *path, char *err, size_t errlen);
/* The same as a browser on the EHR's page would (or the test fails). */
struct wsconn *world_connect(const struct world *w);
/* Connects and sends {"type":"auth","token":token}; *reply is the first
 * answer (the test fails if none comes). */
struct wsconn *world_join_token(const struct world *w, const char *token, json_t **reply);
/* Joins visit sid as role/sub with a token minted by `quietroomctl token`
 * (more: extra "--flag", "value" pairs, NULL-terminated, or NULL). The test
 * fails unless welcomed; the welcome goes to *welcome if asked for. */
struct wsconn *world_join(const struct world *w, const char *sid, const char *role,
                          const char *sub, const char *const *more, json_t **welcome);
/* The next message of type on c within timeout_ms, or the test fails. */
json_t *world_expect(struct wsconn *c, const char *type, int timeout_ms);
/* A string member of a message, "" when absent. */
const char *world_str(json_t *m, const char *key);

/* Runs a cmocka group. QR_TEST_FILTER (a cmocka pattern) runs only the
 * matching tests; QR_TEST_ORDER=reverse runs them last to first, to show
 * that no test leans on another. */
int world_run_tests(const char *name, struct CMUnitTest *tests, size_t n,
                    CMFixtureFunction setup, CMFixtureFunction teardown);

#endif
