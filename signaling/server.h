/* The signaling process: configuration, token verification, relay access,
 * audit log and the session registry, passed by pointer (no globals). */
#ifndef QUIETROOM_SIGNAL_SERVER_H
#define QUIETROOM_SIGNAL_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "quietroom/audit.h"
#include "quietroom/hmac.h"
#include "quietroom/jwt.h"
#include "quietroom/keyring.h"

struct lws_context;
struct relays;
struct sessions;
struct web_state;

/* Counters for logs and, later, metrics. Main thread only. */
struct signal_stats {
    uint64_t connections;
    uint64_t auth_ok;
    uint64_t auth_failed;
    uint64_t messages;
    uint64_t rejected;          /* protocol errors, rate limits, oversize */
    uint64_t candidates_dropped;
    uint64_t sdp_rewritten;
};

struct signal_server {
    struct signal_config cfg;            /* read-only once loaded */
    struct lws_context *lws;
    struct web_state *web;
    struct jwt_keyset *ehr_keys;
    struct jwt_replay *replay;
    struct jwt_policy policy;
    const char *roles[5];
    struct keyring relay_keys;
    struct hmac *sha256;
    struct relays *relays;
    struct audit_log *audit;             /* NULL when not configured */
    struct sessions *sessions;
    struct signal_stats stats;
    uint64_t started_ms;
    bool stopping;
};

#endif
