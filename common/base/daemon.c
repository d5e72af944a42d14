/* The options and start-up steps quietroom-relay and quietroom-signal
 * share, so that the two cannot drift apart (see daemon.h). */
#include "quietroom/base/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "quietroom/base/limits.h"
#include "quietroom/base/log.h"

static int daemon__set_node_id(void *arg, const char *value, char *err, size_t errlen)
{
    struct daemon_settings *s = arg;

    return config_string(s->node_id, sizeof(s->node_id), value, "node-id", err, errlen);
}

static int daemon__set_log_level(void *arg, const char *value, char *err, size_t errlen)
{
    struct daemon_settings *s = arg;
    int level = log_level_parse(value);

    if (level < 0) {
        snprintf(err, errlen, "log-level: one of error, warn, info, debug");
        return -1;
    }
    s->log_level = level;
    return 0;
}

static int daemon__set_ops_listen(void *arg, const char *value, char *err, size_t errlen)
{
    struct daemon_settings *s = arg;

    if (netaddr_parse(value, &s->ops_listen) != 0) {
        snprintf(err, errlen, "ops-listen: \"%s\" is not ADDR:PORT or [V6ADDR]:PORT", value);
        return -1;
    }
    s->has_ops = true;
    return 0;
}

static int daemon__set_ops_token_file(void *arg, const char *value, char *err, size_t errlen)
{
    struct daemon_settings *s = arg;

    return config_string(s->ops_token_file, sizeof(s->ops_token_file), value, "ops-token-file",
                         err, errlen);
}

/* 0 is allowed: a drain that ends at once (the calls left are closed). */
static int daemon__set_drain_timeout(void *arg, const char *value, char *err, size_t errlen)
{
    struct daemon_settings *s = arg;

    return config_u32(value, 0, QR_DRAIN_TIMEOUT_MAX_S, "drain-timeout", &s->drain_timeout_s,
                      err, errlen);
}

const struct config_option daemon_options[DAEMON_N_OPTIONS] = {
    {"node-id", "NAME", daemon__set_node_id,
     "name of this server in audit records (default: hostname)"},
    {"log-level", "LEVEL", daemon__set_log_level, "error, warn, info (default) or debug"},
    {"ops-listen", "ADDR:PORT", daemon__set_ops_listen,
     "operator HTTP: /metrics, /healthz, /readyz; signaling adds /dashboard (off)"},
    {"ops-token-file", "FILE", daemon__set_ops_token_file,
     "bearer token for /metrics and dashboard data (signaling: required off loopback)"},
    {"drain-timeout", "S", daemon__set_drain_timeout,
     "after SIGTERM, end the calls left after S s (3600; 0: at once)"},
};

void daemon_settings_defaults(struct daemon_settings *s, const char *fallback_id,
                              const char *runtime_dir)
{
    memset(s, 0, sizeof(*s));
    s->log_level = LOG_LEVEL_INFO;
    s->drain_timeout_s = QR_DRAIN_TIMEOUT_DEFAULT_S;
    snprintf(s->instance.runtime_dir, sizeof(s->instance.runtime_dir), "%s", runtime_dir);
    if (gethostname(s->node_id, sizeof(s->node_id) - 1) != 0 || s->node_id[0] == '\0')
        snprintf(s->node_id, sizeof(s->node_id), "%s", fallback_id);
}

int daemon_begin(enum config_result r, const char *program, const char *err,
                 const struct daemon_settings *s, int *exit_code)
{
    if (r != CONFIG_OK) {
        *exit_code = r == CONFIG_EXIT ? 0 : 2;
        if (r == CONFIG_ERROR)
            fprintf(stderr, "%s: %s\n", program, err);
        return -1;
    }
    *exit_code = 1;
    log_init(program, (enum log_level)s->log_level);
    return 0;
}

int daemon_claim(struct lockfile_set *locks, const char *runtime_dir,
                 const struct daemon_address *addrs, unsigned n)
{
    char err[PATH_MAX + 128];
    bool fixed = false;
    int rc;

    lockfile_set_init(locks);
    for (unsigned i = 0; i < n; i++)
        fixed = fixed || netaddr_port(addrs[i].addr) != 0;
    /* Ports 0 are unique by construction: nothing to lock, no directory
     * needed (a test, or a user without /run). */
    rc = fixed ? lockfile_dir(runtime_dir, err, sizeof(err)) : 0;
    for (unsigned i = 0; rc == 0 && i < n; i++)
        rc = lockfile_address(locks, runtime_dir, addrs[i].proto, addrs[i].addr, err,
                              sizeof(err));
    if (rc != 0)
        log_error("%s", err);
    return rc;
}

int daemon_write_ready_file(const char *path, const json_t *doc)
{
    char tmp[PATH_MAX + 8];
    int saved;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        goto fail;
    }
    if (doc == NULL) {
        errno = ENOMEM; /* what json_pack fails of */
        goto fail;
    }
    if (json_dump_file(doc, tmp, JSON_COMPACT) == 0 && rename(tmp, path) == 0)
        return 0;
    saved = errno;
    unlink(tmp); /* half a file, or one that could not take its name */
    errno = saved;
fail:
    log_error("ready file %s: %s", path, strerror(errno));
    return -1;
}
