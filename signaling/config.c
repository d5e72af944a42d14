/* quietroom-signal's options, one row each (common/config.c parses). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "quietroom/base/config.h"
#include "quietroom/base/limits.h"

#ifndef QR_VERSION
#define QR_VERSION "dev"
#endif
#ifndef QR_DEFAULT_WEB_DIR
#define QR_DEFAULT_WEB_DIR "/usr/share/quietroom/web"
#endif
#ifndef QR_DEFAULT_OPS_WEB_DIR
#define QR_DEFAULT_OPS_WEB_DIR "/usr/share/quietroom/ops-web"
#endif

#define SIGNAL_DEFAULT_RUNTIME_DIR "/run/quietroom-signal"
#define SIGNAL_DEFAULT_LISTEN "127.0.0.1:8443"
#define SIGNAL_DEFAULT_STATE_DIR "/var/lib/quietroom/signal"

static int set_listen(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    if (netaddr_parse(value, &cfg->listen) != 0) {
        snprintf(err, errlen, "listen: \"%s\" is not ADDR:PORT or [V6ADDR]:PORT", value);
        return -1;
    }
    return 0;
}

static int set_tls_cert(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->tls_cert, sizeof(cfg->tls_cert), value, "tls-cert", err, errlen);
}

static int set_tls_key(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->tls_key, sizeof(cfg->tls_key), value, "tls-key", err, errlen);
}

/* Origins are compared byte for byte with the browser's Origin header:
 * scheme, host and port, no path, no wildcard. */
static int set_origin(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;
    const char *host = strstr(value, "://");

    if (cfg->n_origins == SIGNAL_ORIGINS_MAX) {
        snprintf(err, errlen, "origin: at most %d", SIGNAL_ORIGINS_MAX);
        return -1;
    }
    if (host == NULL || (strncmp(value, "https://", 8) != 0 && strncmp(value, "http://", 7) != 0) ||
        strchr(host + 3, '/') != NULL || strchr(value, '*') != NULL || host[3] == '\0') {
        snprintf(err, errlen, "origin: \"%s\" is not scheme://host[:port]", value);
        return -1;
    }
    return config_string(cfg->origins[cfg->n_origins++], sizeof(cfg->origins[0]), value,
                         "origin", err, errlen);
}

static int set_static_dir(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->static_dir, sizeof(cfg->static_dir), value, "static-dir", err,
                         errlen);
}

static int set_ehr_key(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;
    struct signal_ehr_key *k = &cfg->ehr_keys[cfg->n_ehr_keys];
    const char *space = strchr(value, ' ');

    if (cfg->n_ehr_keys == SIGNAL_EHR_KEYS_MAX) {
        snprintf(err, errlen, "ehr-key: at most %d keys", SIGNAL_EHR_KEYS_MAX);
        return -1;
    }
    if (space == NULL || space == value || (size_t)(space - value) >= sizeof(k->kid)) {
        snprintf(err, errlen, "ehr-key: expected \"KID PATH\"");
        return -1;
    }
    memcpy(k->kid, value, (size_t)(space - value));
    k->kid[space - value] = '\0';
    k->jwks = false;
    if (config_string(k->path, sizeof(k->path), space + 1, "ehr-key", err, errlen) != 0)
        return -1;
    cfg->n_ehr_keys++;
    return 0;
}

static int set_ehr_jwks(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;
    struct signal_ehr_key *k = &cfg->ehr_keys[cfg->n_ehr_keys];

    if (cfg->n_ehr_keys == SIGNAL_EHR_KEYS_MAX) {
        snprintf(err, errlen, "ehr-jwks: at most %d key files", SIGNAL_EHR_KEYS_MAX);
        return -1;
    }
    k->jwks = true;
    k->kid[0] = '\0';
    if (config_string(k->path, sizeof(k->path), value, "ehr-jwks", err, errlen) != 0)
        return -1;
    cfg->n_ehr_keys++;
    return 0;
}

static int set_issuer(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->issuer, sizeof(cfg->issuer), value, "issuer", err, errlen);
}

static int set_audience(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->audience, sizeof(cfg->audience), value, "audience", err, errlen);
}

/* Written before a relay's media address that browsers reach over TCP (the
 * relay's listen-tcp); an address without it is a UDP one (its listen). */
#define SIGNAL_TCP_PREFIX "tcp:"

static int signal__parse_control(const char *tok, struct signal_relay_spec *r, char *err,
                                 size_t errlen)
{
    union netaddr a;

    if (netaddr_parse(tok, &a) != 0) {
        snprintf(err, errlen, "relay: \"%s\" is not ADDR:PORT or [V6ADDR]:PORT", tok);
        return -1;
    }
    snprintf(r->control, sizeof(r->control), "%s", tok);
    return 0;
}

/* One candidate: ADDR:PORT, [V6ADDR]:PORT, or either after "tcp:". The
 * address goes into SDP, so it must be one a browser can send to. */
static int signal__parse_media(const char *tok, struct signal_relay_spec *r, char *err,
                               size_t errlen)
{
    bool tcp = strncmp(tok, SIGNAL_TCP_PREFIX, strlen(SIGNAL_TCP_PREFIX)) == 0;
    struct sdp_candidate *c;
    union netaddr a;

    if (netaddr_parse(tcp ? tok + strlen(SIGNAL_TCP_PREFIX) : tok, &a) != 0) {
        snprintf(err, errlen, "relay: \"%s\" is not a media address: ADDR:PORT or [V6ADDR]:PORT "
                              "(UDP), tcp:ADDR:PORT or tcp:[V6ADDR]:PORT (TCP)", tok);
        return -1;
    }
    if (netaddr_is_wildcard(&a) || netaddr_port(&a) == 0) {
        snprintf(err, errlen, "relay: \"%s\": browsers cannot reach a wildcard address or port 0",
                 tok);
        return -1;
    }
    if (r->n_cands == SDP_CANDIDATES_MAX) {
        snprintf(err, errlen, "relay: at most %d media addresses, UDP and TCP together",
                 SDP_CANDIDATES_MAX);
        return -1;
    }
    c = &r->cands[r->n_cands];
    netaddr_format_host(&a, c->addr, sizeof(c->addr));
    c->port = netaddr_port(&a);
    c->transport = tcp ? SDP_TRANSPORT_TCP : SDP_TRANSPORT_UDP;
    r->n_cands++;
    return 0;
}

static bool signal__has_udp(const struct signal_relay_spec *r)
{
    for (unsigned i = 0; i < r->n_cands; i++) {
        if (r->cands[i].transport == SDP_TRANSPORT_UDP)
            return true;
    }
    return false;
}

/* "NAME CONTROL MEDIA [MEDIA...]". */
static int signal__parse_relay(char *text, struct signal_relay_spec *r, char *err, size_t errlen)
{
    char *save = NULL, *tok;
    int field = 0;

    memset(r, 0, sizeof(*r));
    for (tok = strtok_r(text, " \t", &save); tok != NULL;
         tok = strtok_r(NULL, " \t", &save), field++) {
        if (field == 0 && config_string(r->name, sizeof(r->name), tok, "relay name", err,
                                        errlen) != 0)
            return -1;
        if (field == 1 && signal__parse_control(tok, r, err, errlen) != 0)
            return -1;
        if (field >= 2 && signal__parse_media(tok, r, err, errlen) != 0)
            return -1;
    }
    if (field < 3) {
        snprintf(err, errlen, "relay: expected \"NAME CONTROL-ADDR:PORT MEDIA-ADDR:PORT...\"");
        return -1;
    }
    /* TCP is the fallback where UDP is blocked; m= and c= need a UDP address. */
    if (!signal__has_udp(r)) {
        snprintf(err, errlen, "relay %s: needs a UDP media address; tcp: ones only add to it",
                 r->name);
        return -1;
    }
    return 0;
}

static int set_relay(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;
    char text[1024];

    if (cfg->n_relays == SIGNAL_RELAYS_MAX || strlen(value) >= sizeof(text)) {
        snprintf(err, errlen, "relay: at most %d relays", SIGNAL_RELAYS_MAX);
        return -1;
    }
    strcpy(text, value);
    if (signal__parse_relay(text, &cfg->relays[cfg->n_relays], err, errlen) != 0)
        return -1;
    cfg->n_relays++;
    return 0;
}

static int set_relay_secret(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->relay_secret_file, sizeof(cfg->relay_secret_file), value,
                         "relay-secret-file", err, errlen);
}

static int set_ready_file(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->ready_file, sizeof(cfg->ready_file), value, "ready-file", err,
                         errlen);
}

static int set_waiting(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_u32(value, 1, 24 * 3600, "waiting-timeout", &cfg->waiting_timeout_s, err,
                      errlen);
}

static int set_idle(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_u32(value, 1, 24 * 3600, "idle-timeout", &cfg->idle_timeout_s, err, errlen);
}

static int set_max_session(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    /* Relay credentials must outlive the session, and relays refuse any
     * valid longer than a day. */
    return config_u32(value, 1, QR_CREDS_MAX_TTL_S - 3600, "max-session-length",
                      &cfg->max_session_s, err, errlen);
}

static int set_resume_grace(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_u32(value, 1, 3600, "resume-grace", &cfg->resume_grace_s, err, errlen);
}

static int set_token_lifetime(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_u32(value, 60, 7 * 24 * 3600, "token-max-lifetime", &cfg->token_max_lifetime_s,
                      err, errlen);
}

static int set_max_message(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_u32(value, 1024, 1024 * 1024, "max-message", &cfg->max_message, err, errlen);
}

static int set_rate(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_u32(value, 1, 1000, "rate-limit", &cfg->rate_per_s, err, errlen);
}

static int set_max_participants(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_u32(value, 2, QR_SESSION_PEOPLE_MAX, "max-participants", &cfg->max_participants,
                      err, errlen);
}

static int set_max_sessions(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_u32(value, 1, 1000000, "max-sessions", &cfg->max_sessions, err, errlen);
}

static int set_ops_static_dir(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->ops_static_dir, sizeof(cfg->ops_static_dir), value,
                         "ops-static-dir", err, errlen);
}

static int set_state_dir(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->store.state_dir, sizeof(cfg->store.state_dir), value, "state-dir",
                         err, errlen);
}

static int set_cluster(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;
    struct store_settings *st = &cfg->store;

    if (st->n_cluster == STORE_CLUSTER_SEEDS_MAX) {
        snprintf(err, errlen, "cluster: at most %d servers", STORE_CLUSTER_SEEDS_MAX);
        return -1;
    }
    if (strncmp(value, "nats://", 7) != 0 && strncmp(value, "tls://", 6) != 0) {
        snprintf(err, errlen, "cluster: \"%s\" is not nats://HOST:PORT or tls://HOST:PORT", value);
        return -1;
    }
    return config_string(st->cluster[st->n_cluster++], sizeof(st->cluster[0]), value, "cluster",
                         err, errlen);
}

static int set_cluster_tls_ca(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->store.tls_ca, sizeof(cfg->store.tls_ca), value, "cluster-tls-ca",
                         err, errlen);
}

static int set_cluster_tls_cert(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->store.tls_cert, sizeof(cfg->store.tls_cert), value,
                         "cluster-tls-cert", err, errlen);
}

static int set_cluster_tls_key(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->store.tls_key, sizeof(cfg->store.tls_key), value,
                         "cluster-tls-key", err, errlen);
}

static int set_cluster_creds(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    return config_string(cfg->store.creds, sizeof(cfg->store.creds), value, "cluster-creds", err,
                         errlen);
}

static int set_cluster_replicas(void *arg, const char *value, char *err, size_t errlen)
{
    struct signal_config *cfg = arg;

    /* JetStream's own limit on stream replicas. */
    return config_u32(value, 1, 5, "cluster-replicas", &cfg->store.replicas, err, errlen);
}

static const struct config_option signal_options[] = {
    {"listen", "ADDR:PORT", set_listen, "HTTPS/WSS address (default " SIGNAL_DEFAULT_LISTEN ")"},
    {"tls-cert", "FILE", set_tls_cert, "certificate chain (PEM); without it, loopback HTTP only"},
    {"tls-key", "FILE", set_tls_key, "private key of the certificate (PEM)"},
    {"origin", "URL", set_origin, "allowed WebSocket Origin, e.g. https://video.clinic.example"},
    {"static-dir", "DIR", set_static_dir, "browser client to serve (default " QR_DEFAULT_WEB_DIR ")"},
    {"ehr-key", "KID FILE", set_ehr_key, "EHR token public key (PEM) under key id KID"},
    {"ehr-jwks", "FILE", set_ehr_jwks, "EHR token public keys as a JWKS file"},
    {"issuer", "ISS", set_issuer, "required token issuer (iss)"},
    {"audience", "AUD", set_audience, "required token audience (aud)"},
    {"relay", "SPEC", set_relay,
     "\"NAME CONTROL-ADDR:PORT MEDIA-ADDR:PORT... [tcp:MEDIA-ADDR:PORT...]\"; repeatable"},
    {"relay-secret-file", "FILE", set_relay_secret, "secret shared with the relays"},
    {"waiting-timeout", "S", set_waiting, "send a waiting participant away after S s (900)"},
    {"idle-timeout", "S", set_idle, "end a session without a connected clinician after S s (600)"},
    {"max-session-length", "S", set_max_session, "end a session S s after admission (14400)"},
    {"resume-grace", "S", set_resume_grace, "a dropped participant may resume within S s (60)"},
    {"token-max-lifetime", "S", set_token_lifetime, "refuse tokens valid longer (43200)"},
    {"max-message", "BYTES", set_max_message, "largest WebSocket message (131072)"},
    {"rate-limit", "N", set_rate, "messages per second per connection (20, bursts of 2N)"},
    {"max-participants", "N", set_max_participants, "people in one session (8)"},
    {"max-sessions", "N", set_max_sessions, "sessions at once (10000)"},
    {"ready-file", "FILE", set_ready_file, "write the bound address as JSON once serving"},
    {"ops-static-dir", "DIR", set_ops_static_dir,
     "dashboard files (default " QR_DEFAULT_OPS_WEB_DIR ")"},
    {"state-dir", "DIR", set_state_dir,
     "visits and spent tokens, kept across restarts (default " SIGNAL_DEFAULT_STATE_DIR ")"},
    {"cluster", "URL", set_cluster, "NATS server of the cluster (nats://HOST:PORT); repeatable"},
    {"cluster-tls-ca", "FILE", set_cluster_tls_ca, "CA that signs the NATS servers (PEM)"},
    {"cluster-tls-cert", "FILE", set_cluster_tls_cert, "client certificate for NATS (PEM)"},
    {"cluster-tls-key", "FILE", set_cluster_tls_key, "its private key (PEM)"},
    {"cluster-creds", "FILE", set_cluster_creds, "NATS credentials file (user JWT and seed)"},
    {"cluster-replicas", "N", set_cluster_replicas, "copies of the cluster's state (3)"},
};

static void *signal__audit(void *cfg)
{
    return &((struct signal_config *)cfg)->audit;
}

static void *signal__daemon(void *cfg)
{
    return &((struct signal_config *)cfg)->daemon;
}

static void *signal__instance(void *cfg)
{
    return &((struct signal_config *)cfg)->daemon.instance;
}

static const struct config_spec signal_spec = {
    .program = "quietroom-signal",
    .version = QR_VERSION,
    .usage = "usage: quietroom-signal --config FILE [options]\n"
             "       quietroom-signal --listen ADDR:PORT --origin URL --ehr-jwks FILE --issuer ISS\n"
             "                        --audience AUD --relay SPEC --relay-secret-file FILE ...\n",
    .section = "signal",
    .groups = {{signal_options, sizeof(signal_options) / sizeof(signal_options[0]), NULL},
               {daemon_options, DAEMON_N_OPTIONS, signal__daemon},
               {audit_settings_options, AUDIT_SETTINGS_N_OPTIONS, signal__audit},
               {lockfile_options, LOCKFILE_N_OPTIONS, signal__instance}},
};

static void signal__defaults(struct signal_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    daemon_settings_defaults(&cfg->daemon, "signal", SIGNAL_DEFAULT_RUNTIME_DIR);
    netaddr_parse(SIGNAL_DEFAULT_LISTEN, &cfg->listen);
    snprintf(cfg->static_dir, sizeof(cfg->static_dir), "%s", QR_DEFAULT_WEB_DIR);
    snprintf(cfg->ops_static_dir, sizeof(cfg->ops_static_dir), "%s", QR_DEFAULT_OPS_WEB_DIR);
    cfg->waiting_timeout_s = 900;
    cfg->idle_timeout_s = 600;
    cfg->max_session_s = 4 * 3600;
    cfg->resume_grace_s = 60;
    cfg->token_max_lifetime_s = QR_TOKEN_LIFETIME_DEFAULT_S;
    cfg->max_message = 128 * 1024;
    cfg->rate_per_s = 20;
    cfg->max_participants = 8;
    cfg->max_sessions = 10000;
    snprintf(cfg->store.state_dir, sizeof(cfg->store.state_dir), "%s", SIGNAL_DEFAULT_STATE_DIR);
    cfg->store.replicas = 3;
}

/* The checks that need every option at once. */
static int signal__validate(struct signal_config *cfg, char *err, size_t errlen)
{
    const struct daemon_settings *d = &cfg->daemon;
    bool tls = cfg->tls_cert[0] != '\0';

    if (tls != (cfg->tls_key[0] != '\0')) {
        snprintf(err, errlen, "tls-cert and tls-key go together");
        return -1;
    }
    if (!tls && !netaddr_is_loopback(&cfg->listen)) {
        snprintf(err, errlen, "without tls-cert the server only listens on loopback (plain "
                              "HTTP is for development); give a certificate to serve others");
        return -1;
    }
    if (cfg->n_origins == 0 || cfg->n_ehr_keys == 0 || cfg->issuer[0] == '\0' ||
        cfg->audience[0] == '\0' || cfg->n_relays == 0 || cfg->relay_secret_file[0] == '\0') {
        snprintf(err, errlen, "required: origin, ehr-key or ehr-jwks, issuer, audience, relay, "
                              "relay-secret-file");
        return -1;
    }
    /* Metrics and the dashboard are aggregate, but still nobody else's. */
    if (d->has_ops && d->ops_token_file[0] == '\0' && !netaddr_is_loopback(&d->ops_listen)) {
        snprintf(err, errlen, "ops-listen off loopback needs ops-token-file");
        return -1;
    }
    if ((cfg->store.tls_cert[0] != '\0') != (cfg->store.tls_key[0] != '\0')) {
        snprintf(err, errlen, "cluster-tls-cert and cluster-tls-key go together");
        return -1;
    }
    if (d->has_ops && netaddr_port(&d->ops_listen) != 0 &&
        netaddr_equal(&d->ops_listen, &cfg->listen)) {
        snprintf(err, errlen, "ops-listen and listen must differ");
        return -1;
    }
    return 0;
}

enum config_result signal_config_load(struct signal_config *cfg, int argc, char **argv, char *err,
                                      size_t errlen)
{
    enum config_result r;

    signal__defaults(cfg);
    r = config_load(&signal_spec, cfg, argc, argv, err, errlen);
    if (r != CONFIG_OK)
        return r;
    /* A spent jti is kept while a token could still be presented. */
    cfg->store.claim_ttl_s = cfg->token_max_lifetime_s + 5 * QR_TOKEN_SKEW_MAX_S;
    return signal__validate(cfg, err, errlen) == 0 ? CONFIG_OK : CONFIG_ERROR;
}
