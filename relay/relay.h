/* The relay process: configuration, secrets, link table, audit log and the
 * workers, passed by pointer to whoever needs them (no globals). */
#ifndef QUIETROOM_RELAY_RELAY_H
#define QUIETROOM_RELAY_RELAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "quietroom/audit.h"
#include "quietroom/keyring.h"
#include "table.h"

struct worker;

struct relay {
    struct relay_config cfg;      /* read-only once loaded */
    struct keyring keys;
    struct table *table;
    struct audit_log *audit;      /* NULL when no audit log is configured */
    struct worker *workers[QR_WORKERS_MAX];
    unsigned n_workers;
    uint64_t seed;                /* random, keys every hash table */
    uint64_t started_wall_ms;
    uint64_t started_mono_ms;
    _Atomic bool stopping;
};

#endif
