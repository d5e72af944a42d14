/* The audit options both daemons take (audit-log, audit-key-file, rotation,
 * retention, address hashing), as one shared option table, and opening the
 * log they describe. */
#ifndef QUIETROOM_AUDIT_SETTINGS_H
#define QUIETROOM_AUDIT_SETTINGS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quietroom/audit/audit.h"
#include "quietroom/audit/audit_ship.h"
#include "quietroom/base/config.h"

struct audit_settings {
    char path[PATH_MAX];          /* empty: no audit log */
    char key_file[PATH_MAX];      /* required with path: the chain's HMAC keys */
    uint32_t rotate_mb;           /* 0: default */
    uint32_t retention_days;      /* 0: default (six years) */
    bool hash_addresses;
    struct audit_ship_config ship;  /* host "": not shipped */
};

/* Rows for a config_group whose select returns a struct audit_settings. */
#define AUDIT_SETTINGS_N_OPTIONS 10
extern const struct config_option audit_settings_options[AUDIT_SETTINGS_N_OPTIONS];

/* Opens the log (NULL with *err empty when no path is set; NULL with err set
 * on failure). program is the default APP-NAME of shipped records. */
struct audit_log *audit_settings_open(const struct audit_settings *s, const char *node,
                                      const char *program, char *err, size_t errlen);

#endif
