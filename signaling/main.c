/* quietroom-signal: start-up (configuration, EHR keys, relay secret, audit
 * log, relays, the web server) and an orderly shutdown that tells every
 * browser and revokes every call at its relay. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "events.h"
#include "quietroom/clock.h"
#include "quietroom/log.h"
#include "relays.h"
#include "server.h"
#include "session.h"
#include "web.h"

/* Set by the signal handler; the only state shared with it. */
static volatile int signal_stop;
static struct lws_context *signal_context;

static void signal__on_signal(int sig)
{
    (void)sig;
    signal_stop = 1;
    if (signal_context != NULL)
        lws_cancel_service(signal_context);
}

static int signal__keys(struct signal_server *srv)
{
    char err[256];

    if ((srv->ehr_keys = jwt_keyset_new()) == NULL)
        return -1;
    for (unsigned i = 0; i < srv->cfg.n_ehr_keys; i++) {
        const struct signal_ehr_key *k = &srv->cfg.ehr_keys[i];
        int rc = k->jwks ? jwt_keyset_add_jwks(srv->ehr_keys, k->path, err, sizeof(err))
                         : jwt_keyset_add_pem(srv->ehr_keys, k->kid, k->path, err, sizeof(err));

        if (rc != 0) {
            log_error("EHR key %s: %s", k->path, err);
            return -1;
        }
    }
    if (keyring_load(srv->cfg.relay_secret_file, &srv->relay_keys, err, sizeof(err)) != 0) {
        log_error("relay secret: %s", err);
        return -1;
    }
    srv->roles[0] = "clinician";
    srv->roles[1] = "patient";
    srv->roles[2] = "interpreter";
    srv->roles[3] = "observer";
    srv->roles[4] = NULL;
    srv->policy = (struct jwt_policy){
        .issuer = srv->cfg.issuer,
        .audience = srv->cfg.audience,
        .max_skew_s = QR_TOKEN_SKEW_MAX_S,
        .max_lifetime_s = srv->cfg.token_max_lifetime_s,
        .roles = srv->roles,
    };
    return 0;
}

static int signal__init(struct signal_server *srv, int argc, char **argv, int *code)
{
    char err[512];
    enum signal_config_result cr = signal_config_load(&srv->cfg, argc, argv, err, sizeof(err));

    *code = cr == SIGNAL_CONFIG_EXIT ? 0 : 2;
    if (cr != SIGNAL_CONFIG_OK) {
        if (cr == SIGNAL_CONFIG_ERROR)
            fprintf(stderr, "quietroom-signal: %s\n", err);
        return -1;
    }
    *code = 1;
    log_init("quietroom-signal", (enum log_level)srv->cfg.log_level);
    if (signal__keys(srv) != 0)
        return -1;
    if ((srv->replay = jwt_replay_new(QR_REPLAY_MAX)) == NULL ||
        (srv->sha256 = hmac_new(HMAC_SHA256)) == NULL ||
        (srv->sessions = sessions_new(srv->cfg.max_sessions)) == NULL) {
        log_error("out of memory");
        return -1;
    }
    srv->audit = audit_settings_open(&srv->cfg.audit, srv->cfg.node_id, err, sizeof(err));
    if (srv->audit == NULL && err[0] != '\0') {
        log_error("audit log: %s", err);
        return -1;
    }
    if (srv->audit == NULL)
        log_warn("no audit log configured (--audit-log): access is not recorded");
    if ((srv->relays = relays_start(srv->cfg.relays, srv->cfg.n_relays, &srv->relay_keys,
                                    srv->audit)) == NULL) {
        log_error("cannot start the relay threads");
        return -1;
    }
    srv->started_ms = clock_mono_ms();
    return 0;
}

static int signal__ready_file(const struct signal_server *srv, int port)
{
    char tmp[PATH_MAX + 8];
    json_t *doc = json_pack("{s:i,s:b,s:i}", "port", port, "tls", srv->cfg.tls_cert[0] != '\0',
                            "pid", (int)getpid());
    int rc = -1;

    snprintf(tmp, sizeof(tmp), "%s.tmp", srv->cfg.ready_file);
    if (doc != NULL && json_dump_file(doc, tmp, JSON_COMPACT) == 0 &&
        rename(tmp, srv->cfg.ready_file) == 0)
        rc = 0;
    json_decref(doc);
    return rc;
}

static void signal__shutdown(struct signal_server *srv)
{
    int pending;

    if (srv->sessions != NULL && srv->lws != NULL) {
        sessions_end_all(srv, "server_shutdown");
        web_flush(srv, 300);
    }
    if (srv->relays != NULL && (pending = relays_flush(srv->relays, 2000)) > 0)
        log_error("%d revocation(s) could not be delivered before shutdown", pending);
    web_stop(srv);
    signal_context = NULL;
    relays_free(srv->relays);
    sessions_free(srv->sessions);
    if (srv->audit != NULL) {
        events_simple(srv, "signal.stop");
        audit_close(srv->audit);
    }
    jwt_replay_free(srv->replay);
    jwt_keyset_free(srv->ehr_keys);
    hmac_free(srv->sha256);
    keyring_wipe(&srv->relay_keys);
}

int main(int argc, char **argv)
{
    struct signal_server *srv = calloc(1, sizeof(*srv));
    struct sigaction sa = {.sa_handler = signal__on_signal};
    int code = 1, port;

    if (srv == NULL)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGHUP, SIG_IGN); /* reload arrives with the operations work */
    if (signal__init(srv, argc, argv, &code) != 0)
        goto out;
    code = 1;
    if ((port = web_start(srv)) < 0)
        goto out;
    signal_context = srv->lws;
    log_info("serving %s on port %d; %u relay(s), %u EHR key(s)",
             srv->cfg.tls_cert[0] ? "HTTPS/WSS" : "HTTP/WS (loopback only)", port,
             srv->cfg.n_relays, jwt_keyset_count(srv->ehr_keys));
    if (srv->cfg.ready_file[0] != '\0' && signal__ready_file(srv, port) != 0) {
        log_error("ready file %s: %s", srv->cfg.ready_file, strerror(errno));
        goto out;
    }
    events_simple(srv, "signal.start");
    web_run(srv, &signal_stop);
    log_info("stopping");
    code = 0;
out:
    signal__shutdown(srv);
    free(srv);
    return code;
}
