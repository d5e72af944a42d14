/* The signaling process: configuration, token verification, relay access,
 * audit log, the session registry, counters and lifecycle, passed by
 * pointer (no globals). Everything here belongs to the event-loop thread,
 * except what relays.c and the audit writer guard themselves. */
#ifndef QUIETROOM_SIGNAL_SERVER_H
#define QUIETROOM_SIGNAL_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "quietroom/audit/audit.h"
#include "stats.h"
#include "quietroom/base/hmac.h"
#include "quietroom/auth/jwt.h"
#include "quietroom/base/keyring.h"

struct lws_context;
struct ops_state;
struct relays;
struct sessions;
struct store;
struct session_cluster;
struct tls_state;
struct web_state;

struct signal_server {
    struct signal_config cfg;            /* read-only between reloads */
    int argc;                            /* the command line, read again on reload */
    char **argv;
    struct lws_context *lws;
    struct web_state *web;
    struct jwt_keyset *ehr_keys;
    uint8_t ehr_digest[32];              /* of the key files: did a reload change them? */
    struct jwt_policy policy;
    const char *roles[5];
    struct keyring relay_keys;
    struct hmac *sha256;
    struct relays *relays;
    struct audit_log *audit;             /* NULL when not configured */
    struct sessions *sessions;
    struct store *store;                 /* visits and token claims that outlive us */
    struct session_cluster *cluster;     /* other replicas; NULL on one machine */
    struct signal_stats stats;
    struct ops_state *ops;               /* operator listener; NULL when off */
    struct tls_state *tls;               /* the public certificate; NULL without TLS */
    struct lockfile_set locks;           /* our addresses, against a second copy */
    uint64_t started_ms;
    bool draining;                       /* after the first SIGTERM */
    uint64_t drain_started_ms;
    bool stopping;
};

#endif
