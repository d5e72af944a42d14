/* Shared audit options. The key file has the relay-secret format (keyring):
 * the first key seals new records, every key verifies old ones. */
#include "quietroom/audit/audit_settings.h"

#include <stdio.h>
#include <string.h>

#include "quietroom/base/keyring.h"

static int set_path(void *arg, const char *value, char *err, size_t errlen)
{
    struct audit_settings *s = arg;

    return config_string(s->path, sizeof(s->path), value, "audit-log", err, errlen);
}

static int set_key(void *arg, const char *value, char *err, size_t errlen)
{
    struct audit_settings *s = arg;

    return config_string(s->key_file, sizeof(s->key_file), value, "audit-key-file", err, errlen);
}

static int set_rotate(void *arg, const char *value, char *err, size_t errlen)
{
    struct audit_settings *s = arg;

    return config_u32(value, 1, 100000, "audit-rotate-mb", &s->rotate_mb, err, errlen);
}

static int set_retention(void *arg, const char *value, char *err, size_t errlen)
{
    struct audit_settings *s = arg;

    return config_u32(value, 1, 100 * 366, "audit-retention-days", &s->retention_days, err,
                      errlen);
}

static int set_hash(void *arg, const char *value, char *err, size_t errlen)
{
    struct audit_settings *s = arg;

    return config_bool(value, "audit-hash-addresses", &s->hash_addresses, err, errlen);
}

const struct config_option audit_settings_options[AUDIT_SETTINGS_N_OPTIONS] = {
    {"audit-log", "FILE", set_path, "append tamper-evident audit records to FILE"},
    {"audit-key-file", "FILE", set_key, "HMAC keys sealing the audit chain (quietroomctl secret)"},
    {"audit-rotate-mb", "N", set_rotate, "rotate the audit log at N MiB (100), and daily"},
    {"audit-retention-days", "N", set_retention, "delete rotated audit files after N days (2190)"},
    {"audit-hash-addresses", "yes|no", set_hash, "record addresses as keyed hashes (no)"},
};


struct audit_log *audit_settings_open(const struct audit_settings *s, const char *node, char *err,
                                      size_t errlen)
{
    struct audit_config cfg = {
        .path = s->path,
        .node = node,
        .rotate_bytes = (uint64_t)s->rotate_mb * 1024 * 1024,
        .retention_days = s->retention_days,
        .hash_addresses = s->hash_addresses,
    };
    struct keyring keys;
    struct audit_log *log;
    char why[256];

    err[0] = '\0';
    if (s->path[0] == '\0')
        return NULL;
    if (s->key_file[0] == '\0') {
        snprintf(err, errlen, "audit-log needs audit-key-file (create one with quietroomctl "
                              "secret --out FILE)");
        return NULL;
    }
    if (keyring_load(s->key_file, &keys, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "audit key: %s", why);
        return NULL;
    }
    cfg.keys = &keys;
    log = audit_open(&cfg, err, errlen);
    keyring_wipe(&keys);
    return log;
}
