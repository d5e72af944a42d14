/* Every option is one row of relay_options; the command line and the file
 * go through the same setters. The file parser is inih (Debian libinih):
 * comments, sections and quoting are its job, not ours. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quietroom/log.h"

#ifndef QR_VERSION
#define QR_VERSION "dev"
#endif

#define RELAY_DEFAULT_CONTROL "127.0.0.1:7600"

typedef int (*relay_setter)(struct relay_config *cfg, const char *value, char *err,
                            size_t errlen);

struct relay_option {
    const char *name;
    const char *arg;
    relay_setter set;
    const char *help;
};

static int relay__set_u32(uint32_t *out, const char *value, uint32_t min, uint32_t max,
                          const char *name, char *err, size_t errlen)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(value, &end, 10);
    if (errno != 0 || *value == '\0' || *end != '\0' || v < min || v > max) {
        snprintf(err, errlen, "%s: expected a number from %u to %u", name, min, max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int relay__set_path(char *out, const char *value, const char *name, char *err,
                           size_t errlen)
{
    if (strlen(value) >= PATH_MAX) {
        snprintf(err, errlen, "%s: path too long", name);
        return -1;
    }
    strcpy(out, value);
    return 0;
}

static int set_listen(struct relay_config *cfg, const char *value, char *err, size_t errlen)
{
    union netaddr a;

    if (cfg->n_listen == QR_LISTEN_MAX) {
        snprintf(err, errlen, "listen: at most %d addresses", QR_LISTEN_MAX);
        return -1;
    }
    if (netaddr_parse(value, &a) != 0) {
        snprintf(err, errlen, "listen: \"%s\" is not ADDR:PORT or [V6ADDR]:PORT", value);
        return -1;
    }
    if (netaddr_is_wildcard(&a)) {
        /* Replies must leave from the address the browser used, and the
         * signaling candidates name it: bind the real address. */
        snprintf(err, errlen, "listen: \"%s\" is a wildcard; name each address to serve", value);
        return -1;
    }
    cfg->listen[cfg->n_listen++] = a;
    return 0;
}

static int set_control(struct relay_config *cfg, const char *value, char *err, size_t errlen)
{
    if (netaddr_parse(value, &cfg->control) != 0) {
        snprintf(err, errlen, "control: \"%s\" is not ADDR:PORT or [V6ADDR]:PORT", value);
        return -1;
    }
    return 0;
}

static int set_secret_file(struct relay_config *cfg, const char *value, char *err, size_t errlen)
{
    return relay__set_path(cfg->secret_file, value, "secret-file", err, errlen);
}

static int set_audit_log(struct relay_config *cfg, const char *value, char *err, size_t errlen)
{
    return relay__set_path(cfg->audit_log, value, "audit-log", err, errlen);
}

static int set_ready_file(struct relay_config *cfg, const char *value, char *err, size_t errlen)
{
    return relay__set_path(cfg->ready_file, value, "ready-file", err, errlen);
}

static int set_node_id(struct relay_config *cfg, const char *value, char *err, size_t errlen)
{
    size_t n = strlen(value);

    if (n == 0 || n >= sizeof(cfg->node_id) || strpbrk(value, "\"\\\n\r\t ") != NULL) {
        snprintf(err, errlen, "node-id: 1 to %zu characters, no spaces or quotes",
                 sizeof(cfg->node_id) - 1);
        return -1;
    }
    memcpy(cfg->node_id, value, n + 1);
    return 0;
}

static int set_workers(struct relay_config *cfg, const char *value, char *err, size_t errlen)
{
    uint32_t v;

    if (relay__set_u32(&v, value, 0, QR_WORKERS_MAX, "workers", err, errlen) != 0)
        return -1;
    cfg->workers = v;
    return 0;
}

static int set_max_links(struct relay_config *cfg, const char *value, char *err, size_t errlen)
{
    return relay__set_u32(&cfg->max_links, value, 16, QR_MAX_LINKS_LIMIT, "max-links", err,
                          errlen);
}

static int set_consent(struct relay_config *cfg, const char *value, char *err, size_t errlen)
{
    return relay__set_u32(&cfg->consent_timeout_s, value, 1, 3600, "consent-timeout", err,
                          errlen);
}

static int set_max_ttl(struct relay_config *cfg, const char *value, char *err, size_t errlen)
{
    return relay__set_u32(&cfg->max_ttl_s, value, 60, 7 * 24 * 3600, "max-ttl", err, errlen);
}

static int set_log_level(struct relay_config *cfg, const char *value, char *err, size_t errlen)
{
    if ((cfg->log_level = log_level_parse(value)) < 0) {
        snprintf(err, errlen, "log-level: one of error, warn, info, debug");
        return -1;
    }
    return 0;
}

static const struct relay_option relay_options[] = {
    {"listen", "ADDR:PORT", set_listen, "UDP address for media; repeat for more (IPv4, IPv6)"},
    {"secret-file", "FILE", set_secret_file, "credential secrets shared with signaling"},
    {"control", "ADDR:PORT", set_control, "control endpoint (default " RELAY_DEFAULT_CONTROL ")"},
    {"workers", "N", set_workers, "forwarding threads (default: one per CPU)"},
    {"max-links", "N", set_max_links, "link slots allocated at start (default 16384)"},
    {"consent-timeout", "S", set_consent, "close a leg after S s without a check (default 30)"},
    {"max-ttl", "S", set_max_ttl, "refuse credentials valid longer than S s (default 86400)"},
    {"audit-log", "FILE", set_audit_log, "append audit records (JSON Lines) to FILE"},
    {"node-id", "NAME", set_node_id, "name of this relay in audit records (default: hostname)"},
    {"ready-file", "FILE", set_ready_file, "write bound addresses as JSON once serving"},
    {"log-level", "LEVEL", set_log_level, "error, warn, info (default) or debug"},
};

#define RELAY_N_OPTIONS (sizeof(relay_options) / sizeof(relay_options[0]))

static const struct relay_option *relay__find(const char *name)
{
    for (size_t i = 0; i < RELAY_N_OPTIONS; i++) {
        if (strcmp(relay_options[i].name, name) == 0)
            return &relay_options[i];
    }
    return NULL;
}

void relay_config_usage(FILE *out)
{
    fprintf(out, "usage: quietroom-relay --listen ADDR:PORT --secret-file FILE [options]\n"
                 "       quietroom-relay --config FILE [options]\n\n");
    fprintf(out, "  --%-16s %-10s %s\n", "config", "FILE", "read options from an INI file");
    for (size_t i = 0; i < RELAY_N_OPTIONS; i++)
        fprintf(out, "  --%-16s %-10s %s\n", relay_options[i].name, relay_options[i].arg,
                relay_options[i].help);
    fprintf(out, "  --%-16s %-10s %s\n", "help", "", "this text");
    fprintf(out, "  --%-16s %-10s %s\n", "version", "", "print the version");
}

struct relay__file_ctx {
    struct relay_config *cfg;
    char *err;
    size_t errlen;
    int failed;
};

static int relay__file_key(void *user, const char *section, const char *name, const char *value)
{
    struct relay__file_ctx *ctx = user;
    const struct relay_option *opt;
    char why[256];

    if (ctx->failed)
        return 0;
    if (section[0] != '\0' && strcmp(section, "relay") != 0)
        return 1; /* other programs' sections may share the file */
    if ((opt = relay__find(name)) == NULL) {
        snprintf(ctx->err, ctx->errlen, "unknown key \"%s\"", name);
        ctx->failed = 1;
        return 0;
    }
    if (opt->set(ctx->cfg, value, why, sizeof(why)) != 0) {
        snprintf(ctx->err, ctx->errlen, "%s", why);
        ctx->failed = 1;
        return 0;
    }
    return 1;
}

static int relay__load_file(struct relay_config *cfg, const char *path, char *err, size_t errlen)
{
    char why[256] = "";
    struct relay__file_ctx ctx = {cfg, why, sizeof(why), 0};
    int rc = ini_parse(path, relay__file_key, &ctx);
    if (rc == -1) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s:%d: %s", path, rc, why[0] ? why : "syntax error");
        return -1;
    }
    return 0;
}

static void relay__defaults(struct relay_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    netaddr_parse(RELAY_DEFAULT_CONTROL, &cfg->control);
    cfg->max_links = QR_MAX_LINKS_DEFAULT;
    cfg->consent_timeout_s = QR_CONSENT_TIMEOUT_S;
    cfg->max_ttl_s = QR_CREDS_MAX_TTL_S;
    cfg->log_level = LOG_LEVEL_INFO;
    if (gethostname(cfg->node_id, sizeof(cfg->node_id) - 1) != 0 || cfg->node_id[0] == '\0')
        strcpy(cfg->node_id, "relay");
}

/* Applies one command-line option; *i advances past its value. */
static enum relay_config_result relay__arg(struct relay_config *cfg, int argc, char **argv, int *i,
                                           char *err, size_t errlen)
{
    const char *name = argv[*i] + 2;
    const struct relay_option *opt;

    if (strcmp(argv[*i], "--help") == 0 || strcmp(argv[*i], "-h") == 0) {
        relay_config_usage(stdout);
        return RELAY_CONFIG_EXIT;
    }
    if (strcmp(argv[*i], "--version") == 0) {
        printf("quietroom-relay %s\n", QR_VERSION);
        return RELAY_CONFIG_EXIT;
    }
    if (strncmp(argv[*i], "--", 2) != 0) {
        snprintf(err, errlen, "unexpected argument \"%s\"", argv[*i]);
        return RELAY_CONFIG_ERROR;
    }
    if (*i + 1 >= argc) {
        snprintf(err, errlen, "%s needs a value", argv[*i]);
        return RELAY_CONFIG_ERROR;
    }
    (*i)++;
    if (strcmp(name, "config") == 0)
        return relay__load_file(cfg, argv[*i], err, errlen) == 0 ? RELAY_CONFIG_OK
                                                                  : RELAY_CONFIG_ERROR;
    if ((opt = relay__find(name)) == NULL) {
        snprintf(err, errlen, "unknown option --%s (see --help)", name);
        return RELAY_CONFIG_ERROR;
    }
    return opt->set(cfg, argv[*i], err, errlen) == 0 ? RELAY_CONFIG_OK : RELAY_CONFIG_ERROR;
}

enum relay_config_result relay_config_load(struct relay_config *cfg, int argc, char **argv,
                                           char *err, size_t errlen)
{
    relay__defaults(cfg);
    for (int i = 1; i < argc; i++) {
        enum relay_config_result r = relay__arg(cfg, argc, argv, &i, err, errlen);

        if (r != RELAY_CONFIG_OK)
            return r;
    }
    if (cfg->n_listen == 0) {
        snprintf(err, errlen, "no --listen address given");
        return RELAY_CONFIG_ERROR;
    }
    if (cfg->secret_file[0] == '\0') {
        snprintf(err, errlen, "no --secret-file given");
        return RELAY_CONFIG_ERROR;
    }
    return RELAY_CONFIG_OK;
}
