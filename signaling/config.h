/* quietroom-signal configuration: options and the same keys in an INI file
 * (section [signal]). Read at start-up, then read-only; a reload (SIGHUP)
 * reads it whole again and applies what can change (reload.c). */
#ifndef QUIETROOM_SIGNAL_CONFIG_H
#define QUIETROOM_SIGNAL_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "quietroom/audit/audit_settings.h"
#include "quietroom/base/daemon.h"
#include "quietroom/base/netaddr.h"
#include "quietroom/wire/sdp.h"
#include "store.h"

#define SIGNAL_ORIGINS_MAX 16
#define SIGNAL_EHR_KEYS_MAX 16
#define SIGNAL_RELAYS_MAX 16
#define SIGNAL_RELAY_NAME_MAX 32

/* A relay signaling may place sessions on: where its control endpoint is,
 * and the media addresses browsers reach it at (its SDP candidates): UDP
 * ones, and TCP ones as the fallback where UDP is blocked. */
struct signal_relay_spec {
    char name[SIGNAL_RELAY_NAME_MAX];
    char control[NETADDR_STRLEN];
    struct sdp_candidate cands[SDP_CANDIDATES_MAX];
    unsigned n_cands;
};

struct signal_ehr_key {
    char kid[64];
    char path[PATH_MAX];
    bool jwks;                   /* path is a JWKS file; kid unused */
};

struct signal_config {
    union netaddr listen;
    char tls_cert[PATH_MAX];
    char tls_key[PATH_MAX];
    char origins[SIGNAL_ORIGINS_MAX][256];
    unsigned n_origins;
    char static_dir[PATH_MAX];
    struct signal_ehr_key ehr_keys[SIGNAL_EHR_KEYS_MAX];
    unsigned n_ehr_keys;
    char issuer[256];
    char audience[256];
    struct signal_relay_spec relays[SIGNAL_RELAYS_MAX];
    unsigned n_relays;
    char relay_secret_file[PATH_MAX];
    struct audit_settings audit;
    struct daemon_settings daemon;   /* node-id, log-level, ops-*, drain-timeout, runtime-dir */
    char ready_file[PATH_MAX];
    uint32_t waiting_timeout_s;      /* a waiting participant nobody admits */
    uint32_t idle_timeout_s;         /* a session without any connected clinician */
    uint32_t max_session_s;          /* from the first admission */
    uint32_t resume_grace_s;         /* a dropped participant may resume within */
    uint32_t token_max_lifetime_s;
    uint32_t max_message;            /* bytes per WebSocket message */
    uint32_t rate_per_s;             /* messages per second per connection */
    uint32_t max_participants;
    uint32_t max_sessions;
    char ops_static_dir[PATH_MAX];   /* the dashboard's files */
    struct store_settings store;     /* state-dir, cluster-* */
};

/* Fills cfg from defaults, then argv in order; CONFIG_EXIT means --help or
 * --version was answered. */
enum config_result signal_config_load(struct signal_config *cfg, int argc, char **argv, char *err,
                                      size_t errlen);

#endif
