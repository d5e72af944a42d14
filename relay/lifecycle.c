/* Drain, reload and the worker watch. The keyring swap is the one delicate
 * part: workers read the keyring without a lock, so a reload writes only
 * the spare, and only after every worker has passed a quiescent point since
 * the spare was last in force. */
#include "lifecycle.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/log.h"
#include "worker.h"

#define LIFECYCLE_QUIESCENT_WAIT_MS 1000

static uint64_t lifecycle__quiescent(const struct relay *r, unsigned w)
{
    return atomic_load_explicit(&r->workers[w]->quiescent, memory_order_acquire);
}

void lifecycle_start(struct relay *r, uint64_t now_ms)
{
    struct relay_lifecycle *lc = &r->lifecycle;

    for (unsigned w = 0; w < r->n_workers; w++) {
        lc->quiescent[w] = lifecycle__quiescent(r, w);
        lc->progressed_ms[w] = now_ms;
        lc->busy_ns[w] = atomic_load(&r->workers[w]->stats.v[STAT_BUSY_NS]);
    }
    lc->window_ms = now_ms;
    atomic_store(&r->healthy, true);
}

void lifecycle_watch(struct relay *r, uint64_t now_ms)
{
    struct relay_lifecycle *lc = &r->lifecycle;
    bool healthy = true, window = now_ms - lc->window_ms >= QR_OPS_WINDOW_MS;

    for (unsigned w = 0; w < r->n_workers; w++) {
        uint64_t q = lifecycle__quiescent(r, w);

        if (q != lc->quiescent[w]) {
            lc->quiescent[w] = q;
            lc->progressed_ms[w] = now_ms;
        } else if (now_ms - lc->progressed_ms[w] > QR_WORKER_STALL_MS) {
            healthy = false;
        }
        if (window) {
            uint64_t busy = atomic_load(&r->workers[w]->stats.v[STAT_BUSY_NS]);
            uint64_t ppm = (busy - lc->busy_ns[w]) / (now_ms - lc->window_ms);

            lc->busy_ns[w] = busy;
            atomic_store(&r->busy_ppm[w], (uint32_t)(ppm > 1000000 ? 1000000 : ppm));
        }
    }
    if (window)
        lc->window_ms = now_ms;
    if (healthy != atomic_load(&r->healthy))
        log_msg(healthy ? LOG_LEVEL_INFO : LOG_LEVEL_ERROR, "workers %s",
                healthy ? "are making progress again" : "stalled: /healthz now fails");
    atomic_store(&r->healthy, healthy);
}

/* --- drain -------------------------------------------------------------------- */

void lifecycle_drain(struct relay *r, uint64_t now_ms)
{
    struct table_usage u;

    /* The start first: a stats read that sees draining reads its deadline. */
    atomic_store(&r->drain_started_ms, now_ms);
    atomic_store(&r->draining, true);
    table_set_draining(r->table, true);
    r->lifecycle.drain_started_ms = now_ms;
    table_usage(r->table, &u);
    log_info("SIGTERM: draining; new sessions are refused, %u link(s) go on for up to %u s "
             "(SIGTERM again to stop now)",
             u.links, atomic_load(&r->live.drain_timeout_s));
    events_relay(r, "relay.drain");
}

bool lifecycle_drained(struct relay *r, uint64_t now_ms)
{
    uint64_t limit = (uint64_t)atomic_load(&r->live.drain_timeout_s) * 1000;
    struct table_usage u;

    if (!atomic_load(&r->draining))
        return false;
    table_usage(r->table, &u);
    if (u.links == 0) {
        log_info("drained: no call left");
        return true;
    }
    if (now_ms - r->lifecycle.drain_started_ms >= limit) {
        log_warn("drain-timeout: closing the %u link(s) left", u.links);
        return true;
    }
    return false;
}

/* --- reload ------------------------------------------------------------------- */

/* Waits until every worker has passed a quiescent point: whatever it read
 * before, it no longer holds. */
static bool lifecycle__wait_quiescent(const struct relay *r)
{
    uint64_t seen[QR_WORKERS_MAX], deadline = clock_mono_ms() + LIFECYCLE_QUIESCENT_WAIT_MS;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000000L};

    for (unsigned w = 0; w < r->n_workers; w++)
        seen[w] = lifecycle__quiescent(r, w);
    for (unsigned w = 0; w < r->n_workers; w++) {
        while (lifecycle__quiescent(r, w) == seen[w]) {
            if (clock_mono_ms() > deadline)
                return false;
            nanosleep(&pause, NULL);
        }
    }
    return true;
}

static void lifecycle__changed_u32(json_t *changed, const char *name, _Atomic uint32_t *live,
                                   uint32_t value)
{
    if (atomic_load(live) != value) {
        atomic_store(live, value);
        json_array_append_new(changed, json_string(name));
    }
}

/* Settings read only at start: a change is reported, not applied. */
static void lifecycle__restart_needed(const struct relay_config *old, const struct relay_config *cfg)
{
    static const char *const names[] = {"listen", "control", "workers", "max-links", "node-id",
                                        "ops-listen", "ops-token-file", "audit settings",
                                        "runtime-dir", "listen-tcp", "max-tcp-connections",
                                        "kernel-forward"};
    const struct daemon_settings *od = &old->daemon, *nd = &cfg->daemon;
    bool differs[] = {
        old->n_listen != cfg->n_listen ||
            memcmp(old->listen, cfg->listen, sizeof(old->listen[0]) * old->n_listen) != 0,
        !netaddr_equal(&old->control, &cfg->control),
        old->workers != cfg->workers,
        old->max_links != cfg->max_links,
        strcmp(od->node_id, nd->node_id) != 0,
        od->has_ops != nd->has_ops ||
            (nd->has_ops && !netaddr_equal(&od->ops_listen, &nd->ops_listen)),
        strcmp(od->ops_token_file, nd->ops_token_file) != 0,
        memcmp(&old->audit, &cfg->audit, sizeof(old->audit)) != 0,
        strcmp(od->instance.runtime_dir, nd->instance.runtime_dir) != 0,
        old->n_listen_tcp != cfg->n_listen_tcp ||
            memcmp(old->listen_tcp, cfg->listen_tcp,
                   sizeof(old->listen_tcp[0]) * old->n_listen_tcp) != 0,
        old->max_tcp_conns != cfg->max_tcp_conns,
        old->kernel_forward != cfg->kernel_forward,
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (differs[i])
            log_warn("reload: %s changed; that needs a restart (kept as it was)", names[i]);
    }
}

/* The key ids of kr as a JSON array (ids only, never secrets). */
static json_t *lifecycle__key_ids(const struct keyring *kr)
{
    json_t *ids = json_array();

    for (unsigned i = 0; i < kr->n; i++)
        json_array_append_new(ids, json_integer(kr->keys[i].id));
    return ids;
}

static bool lifecycle__same_keys(const struct keyring *a, const struct keyring *b)
{
    return a->n == b->n && memcmp(a->keys, b->keys, a->n * sizeof(a->keys[0])) == 0;
}

/* Puts the new keyring in force (see the top of the file). */
static int lifecycle__swap_keys(struct relay *r, const struct keyring *fresh)
{
    struct keyring *cur = atomic_load(&r->keys);
    struct keyring *spare = cur == &r->keyring[0] ? &r->keyring[1] : &r->keyring[0];

    if (!lifecycle__wait_quiescent(r))
        return -1;
    keyring_wipe(spare);
    *spare = *fresh;
    atomic_store_explicit(&r->keys, spare, memory_order_release);
    return 0;
}

static int lifecycle__apply(struct relay *r, struct relay_config *cfg, json_t *changed,
                            const char **why)
{
    struct keyring fresh;
    char err[256];
    int rc = -1;

    if (keyring_load(cfg->secret_file, &fresh, err, sizeof(err)) != 0) {
        log_error("reload: secret file: %s; nothing changed", err);
        *why = "secret file unreadable or invalid";
        return -1;
    }
    if (!lifecycle__same_keys(&fresh, relay_keys(r))) {
        if (lifecycle__swap_keys(r, &fresh) != 0) {
            log_error("reload: a worker did not pass a quiescent point; nothing changed");
            *why = "workers stalled";
            goto out;
        }
        json_array_append_new(changed, json_pack("{s:o}", "key_ids", lifecycle__key_ids(&fresh)));
    }
    lifecycle__restart_needed(&r->cfg, cfg);
    lifecycle__changed_u32(changed, "max-ttl", &r->live.max_ttl_s, cfg->max_ttl_s);
    lifecycle__changed_u32(changed, "consent-timeout", &r->live.consent_timeout_s,
                           cfg->consent_timeout_s);
    lifecycle__changed_u32(changed, "drain-timeout", &r->live.drain_timeout_s,
                           cfg->daemon.drain_timeout_s);
    if (atomic_load(&r->live.creds_v1_refused) == cfg->accept_creds_v1) {
        atomic_store(&r->live.creds_v1_refused, !cfg->accept_creds_v1);
        json_array_append_new(changed, json_string("accept-creds-v1"));
    }
    if (cfg->daemon.log_level != r->cfg.daemon.log_level) {
        log_set_level((enum log_level)cfg->daemon.log_level);
        json_array_append_new(changed, json_string("log-level"));
    }
    memcpy(r->cfg.secret_file, cfg->secret_file, sizeof(r->cfg.secret_file));
    r->cfg.max_ttl_s = cfg->max_ttl_s;
    r->cfg.accept_creds_v1 = cfg->accept_creds_v1;
    r->cfg.consent_timeout_s = cfg->consent_timeout_s;
    r->cfg.daemon.drain_timeout_s = cfg->daemon.drain_timeout_s;
    r->cfg.daemon.log_level = cfg->daemon.log_level;
    rc = 0;
out:
    keyring_wipe(&fresh);
    return rc;
}

int lifecycle_reload(struct relay *r)
{
    struct relay_config *cfg = malloc(sizeof(*cfg));
    json_t *changed = json_array();
    const char *why = NULL;
    char err[512];
    int rc = -1;

    if (cfg == NULL || changed == NULL) {
        log_error("reload: out of memory; nothing changed");
        why = "out of memory";
        goto out;
    }
    if (relay_config_load(cfg, r->argc, r->argv, err, sizeof(err)) != CONFIG_OK) {
        log_error("reload: %s; nothing changed", err);
        why = "configuration invalid";
        goto out;
    }
    if ((rc = lifecycle__apply(r, cfg, changed, &why)) == 0)
        log_info("reloaded: %zu setting(s) changed, %u key(s) in force",
                 json_array_size(changed), relay_keys(r)->n);
out:
    if (changed != NULL && rc != 0)
        json_array_clear(changed);
    if (changed != NULL)
        events_reload(r, changed, rc == 0, why);
    free(cfg);
    return rc;
}
