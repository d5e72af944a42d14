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

static int set_syslog(void *arg, const char *value, char *err, size_t errlen)
{
    struct audit_settings *s = arg;

    return audit_ship_parse_target(&s->ship, value, err, errlen);
}

static int set_syslog_ca(void *arg, const char *value, char *err, size_t errlen)
{
    struct audit_settings *s = arg;

    return config_string(s->ship.ca_file, sizeof(s->ship.ca_file), value, "audit-syslog-ca", err,
                         errlen);
}

static int set_syslog_cert(void *arg, const char *value, char *err, size_t errlen)
{
    struct audit_settings *s = arg;

    return config_string(s->ship.cert_file, sizeof(s->ship.cert_file), value,
                         "audit-syslog-cert", err, errlen);
}

static int set_syslog_key(void *arg, const char *value, char *err, size_t errlen)
{
    struct audit_settings *s = arg;

    return config_string(s->ship.key_file, sizeof(s->ship.key_file), value, "audit-syslog-key",
                         err, errlen);
}

static int set_syslog_name(void *arg, const char *value, char *err, size_t errlen)
{
    struct audit_settings *s = arg;

    if (!audit_syslog_field_ok(value, AUDIT_SYSLOG_APPNAME_MAX)) {
        snprintf(err, errlen, "audit-syslog-name: 1 to %d printable ASCII characters, no space",
                 AUDIT_SYSLOG_APPNAME_MAX);
        return -1;
    }
    snprintf(s->ship.app, sizeof(s->ship.app), "%s", value);
    return 0;
}

const struct config_option audit_settings_options[AUDIT_SETTINGS_N_OPTIONS] = {
    {"audit-log", "FILE", set_path, "append tamper-evident audit records to FILE"},
    {"audit-key-file", "FILE", set_key, "HMAC keys sealing the audit chain (quietroomctl secret)"},
    {"audit-rotate-mb", "N", set_rotate, "rotate the audit log at N MiB (100), and daily"},
    {"audit-retention-days", "N", set_retention, "delete rotated audit files after N days (2190)"},
    {"audit-hash-addresses", "yes|no", set_hash, "record addresses as keyed hashes (no)"},
    {"audit-syslog", "HOST:PORT", set_syslog,
     "also send every audit record to this syslog collector (RFC 5425, TLS)"},
    {"audit-syslog-ca", "FILE", set_syslog_ca, "CA certificates the collector must chain to"},
    {"audit-syslog-cert", "FILE", set_syslog_cert, "client certificate for the collector"},
    {"audit-syslog-key", "FILE", set_syslog_key, "its private key"},
    {"audit-syslog-name", "NAME", set_syslog_name,
     "APP-NAME of the shipped records (the program's name)"},
};

/* The shipping options make sense only together. */
static int audit_settings__check_ship(const struct audit_settings *s, char *err, size_t errlen)
{
    const struct audit_ship_config *c = &s->ship;
    bool any = c->ca_file[0] || c->cert_file[0] || c->key_file[0] || c->app[0];

    if (c->host[0] == '\0' && any) {
        snprintf(err, errlen, "audit-syslog-* options need audit-syslog HOST:PORT");
        return -1;
    }
    if (c->host[0] != '\0' && c->ca_file[0] == '\0') {
        snprintf(err, errlen, "audit-syslog needs audit-syslog-ca: records go only to a "
                              "collector whose certificate verifies");
        return -1;
    }
    if ((c->cert_file[0] == '\0') != (c->key_file[0] == '\0')) {
        snprintf(err, errlen, "audit-syslog-cert and audit-syslog-key go together");
        return -1;
    }
    if (c->host[0] != '\0' && s->path[0] == '\0') {
        snprintf(err, errlen, "audit-syslog needs audit-log: the local file is what is shipped");
        return -1;
    }
    return 0;
}


struct audit_log *audit_settings_open(const struct audit_settings *s, const char *node,
                                      const char *program, char *err, size_t errlen)
{
    struct audit_config cfg = {
        .path = s->path,
        .node = node,
        .ship = &s->ship,
        .program = program,
        .rotate_bytes = (uint64_t)s->rotate_mb * 1024 * 1024,
        .retention_days = s->retention_days,
        .hash_addresses = s->hash_addresses,
    };
    struct keyring keys;
    struct audit_log *log;
    char why[256];

    err[0] = '\0';
    if (audit_settings__check_ship(s, err, errlen) != 0 || s->path[0] == '\0')
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
