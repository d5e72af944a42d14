/* What a reload may not change is compared field by field and, if it
 * differs, logged as needing a restart and left as it was: the listeners,
 * the relays, the audit log and the session table are built once. */
#include "reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "events.h"
#include "keys.h"
#include "ops.h"
#include "quietroom/base/log.h"
#include "relays.h"
#include "server.h"
#include "tls.h"

static void reload__needs_restart(const char *what)
{
    log_warn("reload: %s changed; that needs a restart (kept as it was)", what);
}

/* Settings built into running parts: a change waits for a restart. */
static void reload__restart_only(const struct signal_config *old, const struct signal_config *nw)
{
    if (!netaddr_equal(&old->listen, &nw->listen))
        reload__needs_restart("listen");
    if ((old->tls_cert[0] == '\0') != (nw->tls_cert[0] == '\0'))
        reload__needs_restart("tls-cert (on or off)");
    if (old->n_relays != nw->n_relays ||
        memcmp(old->relays, nw->relays, sizeof(old->relays[0]) * old->n_relays) != 0)
        reload__needs_restart("relay");
    if (old->daemon.has_ops != nw->daemon.has_ops ||
        (old->daemon.has_ops && !netaddr_equal(&old->daemon.ops_listen, &nw->daemon.ops_listen)))
        reload__needs_restart("ops-listen");
    if (memcmp(&old->audit, &nw->audit, sizeof(old->audit)) != 0)
        reload__needs_restart("audit settings");
    if (strcmp(old->daemon.instance.runtime_dir, nw->daemon.instance.runtime_dir) != 0)
        reload__needs_restart("runtime-dir");
    if (old->max_sessions != nw->max_sessions)
        reload__needs_restart("max-sessions");
    if (memcmp(&old->store, &nw->store, sizeof(old->store)) != 0)
        reload__needs_restart("state-dir or cluster settings");
    if (strcmp(old->issuer, nw->issuer) != 0 || strcmp(old->audience, nw->audience) != 0)
        reload__needs_restart("issuer or audience");
    if (strcmp(old->static_dir, nw->static_dir) != 0 ||
        strcmp(old->ops_static_dir, nw->ops_static_dir) != 0)
        reload__needs_restart("static-dir");
}

/* Timeouts and limits: plain values read where they are used. */
static void reload__values(struct signal_server *srv, const struct signal_config *nw,
                           json_t *changed)
{
    struct signal_config *c = &srv->cfg;

    if (c->daemon.log_level != nw->daemon.log_level) {
        log_set_level((enum log_level)nw->daemon.log_level);
        json_array_append_new(changed, json_string("log-level"));
    }
    if (c->waiting_timeout_s != nw->waiting_timeout_s || c->idle_timeout_s != nw->idle_timeout_s ||
        c->max_session_s != nw->max_session_s || c->resume_grace_s != nw->resume_grace_s ||
        c->token_max_lifetime_s != nw->token_max_lifetime_s || c->max_message != nw->max_message ||
        c->rate_per_s != nw->rate_per_s || c->max_participants != nw->max_participants ||
        c->daemon.drain_timeout_s != nw->daemon.drain_timeout_s)
        json_array_append_new(changed, json_string("limits"));
    c->daemon.log_level = nw->daemon.log_level;
    c->waiting_timeout_s = nw->waiting_timeout_s;
    c->idle_timeout_s = nw->idle_timeout_s;
    c->max_session_s = nw->max_session_s;
    c->resume_grace_s = nw->resume_grace_s;
    c->token_max_lifetime_s = nw->token_max_lifetime_s;
    c->max_message = nw->max_message;
    c->rate_per_s = nw->rate_per_s;
    c->max_participants = nw->max_participants;
    c->daemon.drain_timeout_s = nw->daemon.drain_timeout_s;
    srv->policy.max_lifetime_s = c->token_max_lifetime_s;
}

/* Key material, already loaded and checked; k is emptied of what is taken. */
static void reload__keys(struct signal_server *srv, const struct signal_config *nw,
                         struct signal_keys *k, json_t *changed)
{
    struct signal_config *c = &srv->cfg;

    if (memcmp(srv->ehr_digest, k->ehr_digest, sizeof(k->ehr_digest)) != 0) {
        jwt_keyset_free(srv->ehr_keys);
        srv->ehr_keys = k->ehr;
        k->ehr = NULL;
        memcpy(srv->ehr_digest, k->ehr_digest, sizeof(k->ehr_digest));
        memcpy(c->ehr_keys, nw->ehr_keys, sizeof(c->ehr_keys));
        c->n_ehr_keys = nw->n_ehr_keys;
        json_array_append_new(changed, json_string("ehr-keys"));
    }
    if (CRYPTO_memcmp(&srv->relay_keys, &k->relay, sizeof(k->relay)) != 0) {
        /* The relay threads connect with their own copy, under their mutex. */
        relays_set_keys(srv->relays, &k->relay);
        keyring_wipe(&srv->relay_keys);
        srv->relay_keys = k->relay;
        snprintf(c->relay_secret_file, sizeof(c->relay_secret_file), "%s", nw->relay_secret_file);
        json_array_append_new(changed, json_string("relay-secret-file"));
    }
    if (k->cert != NULL && srv->tls != NULL && !tls_cert_same(tls_current(srv->tls), k->cert)) {
        if (!tls_attached(srv->tls)) {
            log_warn("reload: the TLS certificate cannot be swapped here; it needs a restart");
        } else {
            log_info("reload: new connections get certificate %s", tls_cert_fingerprint(k->cert));
            tls_replace(srv->tls, k->cert);
            k->cert = NULL;
            json_array_append_new(changed, json_string("tls-certificate"));
        }
    }
    if (c->daemon.has_ops && strcmp(c->daemon.ops_token_file, nw->daemon.ops_token_file) == 0 &&
        srv->ops != NULL) {
        /* Same file, maybe new contents: always take what it holds now. */
        ops_set_token(srv, k->has_token ? k->ops_token : NULL);
    } else if (c->daemon.has_ops && srv->ops != NULL) {
        ops_set_token(srv, k->has_token ? k->ops_token : NULL);
        snprintf(c->daemon.ops_token_file, sizeof(c->daemon.ops_token_file), "%s",
                 nw->daemon.ops_token_file);
        json_array_append_new(changed, json_string("ops-token-file"));
    }
}

int reload_run(struct signal_server *srv)
{
    struct signal_config *nw = calloc(1, sizeof(*nw));
    json_t *changed = json_array();
    struct signal_keys k;
    char err[512];
    int rc = -1;

    memset(&k, 0, sizeof(k));
    if (nw == NULL || changed == NULL) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    if (signal_config_load(nw, srv->argc, srv->argv, err, sizeof(err)) != CONFIG_OK)
        goto fail;
    if (signal_keys_load(nw, &k, err, sizeof(err)) != 0)
        goto fail;
    reload__restart_only(&srv->cfg, nw);
    reload__keys(srv, nw, &k, changed);
    reload__values(srv, nw, changed);
    log_info("reload: %zu setting(s) changed", json_array_size(changed));
    events_reload(srv, changed, NULL);
    changed = NULL;
    rc = 0;
    goto out;
fail:
    log_error("reload failed, nothing changed: %s", err);
    events_reload(srv, NULL, "configuration or key files unusable");
out:
    json_decref(changed);
    signal_keys_free(&k);
    free(nw);
    return rc;
}
