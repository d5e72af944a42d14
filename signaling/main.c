/* quietroom-signal: start-up (configuration, EHR keys, relay secret, audit
 * log, relays, the web server, the operator listener), the signals (SIGTERM
 * drains, a second one or SIGINT stops, SIGHUP reloads) and an orderly
 * shutdown that tells every browser and revokes every call at its relay. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "events.h"
#include "keys.h"
#include "lifecycle.h"
#include "ops.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/daemon.h"
#include "quietroom/ops/listener.h"
#include "quietroom/base/log.h"
#include "relays.h"
#include "reload.h"
#include "server.h"
#include "session.h"
#include "store.h"
#include "tls.h"
#include "web.h"

/* The program's one mutable global, and why it must be one: a signal
 * handler gets no argument to reach the server through. It holds only what
 * the handler touches: the flags it sets (read between rounds of the event
 * loop) and the context it wakes, which main sets once the loop exists and
 * clears before freeing it. */
static struct {
    volatile sig_atomic_t terms; /* SIGTERMs so far, up to 2 */
    volatile sig_atomic_t stop;  /* SIGINT (or a SIGTERM past the second) */
    volatile sig_atomic_t hup;   /* a reload is due */
    struct lws_context *volatile context;
} signal_flags;

static void signal__on_signal(int sig)
{
    if (sig == SIGTERM && signal_flags.terms < 2)
        signal_flags.terms++;
    else if (sig == SIGHUP)
        signal_flags.hup = 1;
    else
        signal_flags.stop = 1;
    if (signal_flags.context != NULL)
        lws_cancel_service(signal_flags.context);
}

/* Takes the keys; the operator token goes to ops_start (token_out). */
static int signal__keys(struct signal_server *srv, struct signal_keys *k)
{
    char err[512];

    if (signal_keys_load(&srv->cfg, k, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return -1;
    }
    srv->ehr_keys = k->ehr;
    k->ehr = NULL;
    memcpy(srv->ehr_digest, k->ehr_digest, sizeof(srv->ehr_digest));
    srv->relay_keys = k->relay;
    memset(&k->relay, 0, sizeof(k->relay));
    if (k->cert != NULL && (srv->tls = tls_new(k->cert)) == NULL)
        return -1;
    k->cert = NULL;
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

/* A second copy started by mistake stops here, before it touches anything
 * the first one owns: its addresses (lock files in the runtime directory)
 * and, next, its audit log (locked by audit_open). */
static int signal__claim(struct signal_server *srv)
{
    const struct daemon_settings *d = &srv->cfg.daemon;
    struct daemon_address addrs[2] = {{"tcp", &srv->cfg.listen}, {"tcp", &d->ops_listen}};

    return daemon_claim(&srv->locks, d->instance.runtime_dir, addrs, d->has_ops ? 2 : 1);
}

/* Every listening socket is where the configuration says, as the kernel
 * sees it (listener.h). */
static int signal__verify_listeners(const struct signal_server *srv, int port, int ops_port)
{
    union netaddr want[2] = {srv->cfg.listen, srv->cfg.daemon.ops_listen};
    char err[256];

    netaddr_set_port(&want[0], (uint16_t)port);
    netaddr_set_port(&want[1], (uint16_t)ops_port);
    if (listener_verify(want, srv->cfg.daemon.has_ops ? 2 : 1, err, sizeof(err)) != 0) {
        log_error("refusing to serve: %s", err);
        return -1;
    }
    return 0;
}

/* The visits a previous process left (a crash, kill -9, a restart) come
 * back before anyone can connect, so their people can resume. */
static int signal__state(struct signal_server *srv)
{
    char err[PATH_MAX + 128];
    int n;

    if ((srv->store = store_open(&srv->cfg.store, err, sizeof(err))) == NULL) {
        log_error("state store: %s", err);
        return -1;
    }
    if (session_cluster_start(srv, err, sizeof(err)) != 0) {
        log_error("cluster: %s", err);
        return -1;
    }
    /* A replica of a cluster takes visits over one by one, when their
     * people come back or their owner is gone (session_cluster.c). */
    if (srv->cluster != NULL) {
        log_info("state store: nats; node %s of the cluster", srv->cfg.daemon.node_id);
        return 0;
    }
    if ((n = session_store_load(srv)) < 0) {
        log_error("state store: the stored visits cannot be read");
        return -1;
    }
    log_info("state store: %s; %d visit(s) resumed from it", srv->store->ops->name, n);
    return 0;
}

static int signal__init(struct signal_server *srv, int argc, char **argv, struct signal_keys *k,
                        int *code)
{
    char err[512];
    enum config_result cr = signal_config_load(&srv->cfg, argc, argv, err, sizeof(err));

    if (daemon_begin(cr, "quietroom-signal", err, &srv->cfg.daemon, code) != 0)
        return -1;
    if (signal__claim(srv) != 0)
        return -1;
    srv->argc = argc;
    srv->argv = argv;
    stats_init(&srv->stats);
    if (signal__keys(srv, k) != 0)
        return -1;
    if ((srv->sha256 = hmac_new(HMAC_SHA256)) == NULL ||
        (srv->sessions = sessions_new(srv->cfg.max_sessions)) == NULL) {
        log_error("out of memory");
        return -1;
    }
    srv->started_ms = clock_mono_ms();
    return signal__state(srv);
}

/* Once our addresses are ours: the audit log (which audit_open locks: a
 * second copy writing to it would break the chain) and the relays (a copy
 * that cannot serve must not hold control connections to them). */
static int signal__attach(struct signal_server *srv)
{
    char err[PATH_MAX + 128];

    srv->audit = audit_settings_open(&srv->cfg.audit, srv->cfg.daemon.node_id,
                                     "quietroom-signal", err, sizeof(err));
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
    return 0;
}

static int signal__ready_file(const struct signal_server *srv, int port, int ops_port)
{
    json_t *doc = json_pack("{s:i,s:b,s:i,s:i}", "port", port, "tls", srv->cfg.tls_cert[0] != '\0',
                            "pid", (int)getpid(), "ops_port", ops_port);
    int rc = daemon_write_ready_file(srv->cfg.ready_file, doc);

    json_decref(doc);
    return rc;
}

static void signal__shutdown(struct signal_server *srv, bool started)
{
    int pending;

    /* Serving is for a server that started: one that failed half way has
     * no relays, and a request answered now would find them missing. */
    if (started && srv->sessions != NULL && srv->lws != NULL) {
        /* In a cluster the visits go on elsewhere; alone, they end. */
        if (srv->cluster != NULL)
            session_cluster_drain(srv);
        else
            sessions_end_all(srv, "server_shutdown");
        web_flush(srv, 300);
    }
    if (srv->relays != NULL && (pending = relays_flush(srv->relays, 2000)) > 0)
        log_error("%d revocation(s) could not be delivered before shutdown", pending);
    signal_flags.context = NULL; /* before web_stop frees it */
    session_cluster_quiesce(srv);
    web_stop(srv);
    ops_free(srv);
    tls_free(srv->tls);
    relays_free(srv->relays);
    sessions_free(srv->sessions);
    session_cluster_free(srv);
    store_free(srv->store);
    if (srv->audit != NULL) {
        if (started)
            events_simple(srv, "signal.stop");
        audit_close(srv->audit);
    }
    jwt_keyset_free(srv->ehr_keys);
    hmac_free(srv->sha256);
    keyring_wipe(&srv->relay_keys);
    lockfile_set_release(&srv->locks);
}

/* The event loop, with the signals handled between rounds. Returns when
 * the process should stop: asked to, or a drain is over. */
static void signal__run(struct signal_server *srv)
{
    while (!signal_flags.stop && signal_flags.terms < 2) {
        if (web_service(srv) != 0)
            return;
        session_cluster_poll(srv);
        if (signal_flags.hup) {
            signal_flags.hup = 0;
            reload_run(srv);
        }
        if (signal_flags.terms == 1 && !srv->draining)
            lifecycle_drain(srv);
        if (lifecycle_drain_over(srv, clock_mono_ms()))
            return;
    }
    log_info(srv->draining ? "stopping now, before the drain is over" : "stopping");
}

static int signal__serve(struct signal_server *srv, struct signal_keys *k)
{
    char err[256];
    int port, ops_port;

    if ((port = web_start(srv)) < 0)
        return -1;
    signal_flags.context = srv->lws;
    if ((ops_port = ops_start(srv, k->has_token ? k->ops_token : NULL, err, sizeof(err))) < 0) {
        log_error("ops-listen: %s", err);
        return -1;
    }
    if (srv->tls != NULL && !tls_attached(srv->tls))
        log_warn("the TLS certificate cannot be reloaded (no certificate hook); SIGHUP keeps it");
    log_info("serving %s on port %d; %u relay(s), %u EHR key(s)%s",
             srv->cfg.tls_cert[0] ? "HTTPS/WSS" : "HTTP/WS (loopback only)", port,
             srv->cfg.n_relays, jwt_keyset_count(srv->ehr_keys),
             ops_port > 0 ? "; operator endpoints on" : "");
    if (ops_port > 0)
        log_info("operator port %d", ops_port);
    if (signal__verify_listeners(srv, port, ops_port) != 0 || signal__attach(srv) != 0)
        return -1;
    if (srv->cfg.ready_file[0] != '\0' && signal__ready_file(srv, port, ops_port) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct signal_server *srv = calloc(1, sizeof(*srv));
    struct sigaction sa = {.sa_handler = signal__on_signal};
    struct signal_keys keys;
    bool started = false;
    int code = 1;

    memset(&keys, 0, sizeof(keys));
    if (srv == NULL)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (signal__init(srv, argc, argv, &keys, &code) != 0)
        goto out;
    code = 1;
    if (signal__serve(srv, &keys) != 0)
        goto out;
    signal_keys_free(&keys);
    events_simple(srv, "signal.start");
    started = true;
    signal__run(srv);
    code = 0;
out:
    signal_keys_free(&keys);
    signal__shutdown(srv, started);
    free(srv);
    return code;
}
