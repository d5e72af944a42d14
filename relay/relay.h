/* The relay process: configuration, secrets, link table, audit log and the
 * workers, passed by pointer to whoever needs them (no globals). */
#ifndef QUIETROOM_RELAY_RELAY_H
#define QUIETROOM_RELAY_RELAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "cpus.h"
#include "quietroom/audit/audit.h"
#include "quietroom/base/keyring.h"
#include "quietroom/base/lockfile.h"
#include "quietroom/ops/metrics.h"
#include "quietroom/ops/opshttp.h"
#include "table.h"

struct worker;

/* What a reload may change while workers run: read with relaxed loads. */
struct relay_live {
    _Atomic uint32_t max_ttl_s;
    _Atomic uint32_t consent_timeout_s;
    _Atomic uint32_t drain_timeout_s;
    _Atomic bool creds_v1_refused;  /* !accept-creds-v1; zero: accepted */
};

/* The workers' progress as the watch last saw it, and when the drain began
 * (lifecycle.c). Main thread only. */
struct relay_lifecycle {
    uint64_t quiescent[QR_WORKERS_MAX];
    uint64_t progressed_ms[QR_WORKERS_MAX];
    uint64_t busy_ns[QR_WORKERS_MAX];
    uint64_t window_ms;
    uint64_t drain_started_ms;
};

struct relay {
    struct relay_config cfg;      /* as loaded at start; only the main thread reloads it */
    int argc;                     /* for reloading the same configuration */
    char **argv;
    /* The current keyring and a spare a reload fills; the spare is
     * rewritten only after every worker has been quiescent since it was
     * current (lifecycle.c). */
    struct keyring keyring[2];
    _Atomic(struct keyring *) keys;
    struct relay_live live;
    struct table *table;
    /* The kernel path: NULL when off, and why (kfwd.h). */
    struct kfwd *kfwd;
    enum kfwd_reason kfwd_reason;
    struct audit_log *audit;      /* NULL when no audit log is configured */
    struct lockfile_set locks;    /* our addresses, against a second copy */
    struct worker *workers[QR_WORKERS_MAX];
    unsigned n_workers;
    struct cpus_choice cpus;      /* how n_workers was chosen, for the log and /metrics */
    uint64_t seed;                /* random, keys every hash table */
    uint64_t started_wall_ms;
    uint64_t started_mono_ms;
    _Atomic bool stopping;
    /* ICE-TCP connections over all workers (tcp.c): open, and those of
     * them whose leg is not bound to them (yet). */
    _Atomic uint32_t tcp_open;
    _Atomic uint32_t tcp_waiting;

    /* Lifecycle and operations (lifecycle.c, ops.c). */
    _Atomic bool draining;
    _Atomic uint64_t drain_started_ms; /* monotonic; for the drain's deadline in stats */
    struct relay_lifecycle lifecycle; /* main thread */
    _Atomic bool healthy;         /* every worker progressed lately */
    _Atomic uint32_t busy_ppm[QR_WORKERS_MAX]; /* per worker, last window */
    struct metrics_histogram loss;  /* per stream at leg down; under the table lock */
    char ops_token[QR_OPS_TOKEN_MAX + 1];
    struct ops_site ops_site;
    struct ops_http *ops;
};

/* The keyring in force; valid until the caller's next quiescent point. */
static inline const struct keyring *relay_keys(const struct relay *r)
{
    return atomic_load_explicit(&r->keys, memory_order_acquire);
}

#endif
