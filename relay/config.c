/* The relay's options: one row each; the command line and the file go
 * through the same setters (common/base/config.c). */
#include "config.h"

#include <string.h>

#include "quietroom/base/config.h"

#ifndef QR_VERSION
#define QR_VERSION "dev"
#endif

#define RELAY_DEFAULT_CONTROL "127.0.0.1:7600"
#define RELAY_DEFAULT_RUNTIME_DIR "/run/quietroom-relay"

/* One more media address for list (of *n, at most max) under option name. */
static int relay__add_address(union netaddr *list, unsigned *n, unsigned max, const char *name,
                              const char *value, char *err, size_t errlen)
{
    union netaddr a;

    if (*n == max) {
        snprintf(err, errlen, "%s: at most %u addresses", name, max);
        return -1;
    }
    if (netaddr_parse(value, &a) != 0) {
        snprintf(err, errlen, "%s: \"%s\" is not ADDR:PORT or [V6ADDR]:PORT", name, value);
        return -1;
    }
    if (netaddr_is_wildcard(&a)) {
        /* Replies must leave from the address the browser used, and the
         * signaling candidates name it: bind the real address. */
        snprintf(err, errlen, "%s: \"%s\" is a wildcard; name each address to serve", name,
                 value);
        return -1;
    }
    list[(*n)++] = a;
    return 0;
}

static int set_listen(void *arg, const char *value, char *err, size_t errlen)
{
    struct relay_config *cfg = arg;

    return relay__add_address(cfg->listen, &cfg->n_listen, QR_LISTEN_MAX, "listen", value, err,
                              errlen);
}

static int set_listen_tcp(void *arg, const char *value, char *err, size_t errlen)
{
    struct relay_config *cfg = arg;

    return relay__add_address(cfg->listen_tcp, &cfg->n_listen_tcp, QR_TCP_LISTEN_MAX,
                              "listen-tcp", value, err, errlen);
}

static int set_control(void *arg, const char *value, char *err, size_t errlen)
{
    struct relay_config *cfg = arg;

    if (netaddr_parse(value, &cfg->control) != 0) {
        snprintf(err, errlen, "control: \"%s\" is not ADDR:PORT or [V6ADDR]:PORT", value);
        return -1;
    }
    return 0;
}

static int set_secret_file(void *arg, const char *value, char *err, size_t errlen)
{
    struct relay_config *cfg = arg;

    return config_string(cfg->secret_file, sizeof(cfg->secret_file), value, "secret-file", err,
                         errlen);
}

static int set_ready_file(void *arg, const char *value, char *err, size_t errlen)
{
    struct relay_config *cfg = arg;

    return config_string(cfg->ready_file, sizeof(cfg->ready_file), value, "ready-file", err,
                         errlen);
}

static int set_workers(void *arg, const char *value, char *err, size_t errlen)
{
    struct relay_config *cfg = arg;

    return config_u32(value, 0, QR_WORKERS_MAX, "workers", &cfg->workers, err, errlen);
}

static int set_max_links(void *arg, const char *value, char *err, size_t errlen)
{
    struct relay_config *cfg = arg;

    return config_u32(value, 16, QR_MAX_LINKS_LIMIT, "max-links", &cfg->max_links, err, errlen);
}

static int set_max_tcp(void *arg, const char *value, char *err, size_t errlen)
{
    struct relay_config *cfg = arg;

    return config_u32(value, 1, QR_TCP_CONNS_LIMIT, "max-tcp-connections", &cfg->max_tcp_conns,
                      err, errlen);
}

static int set_consent(void *arg, const char *value, char *err, size_t errlen)
{
    struct relay_config *cfg = arg;

    return config_u32(value, 1, 3600, "consent-timeout", &cfg->consent_timeout_s, err, errlen);
}

static int set_max_ttl(void *arg, const char *value, char *err, size_t errlen)
{
    struct relay_config *cfg = arg;

    return config_u32(value, 60, 7 * 24 * 3600, "max-ttl", &cfg->max_ttl_s, err, errlen);
}

static int set_accept_v1(void *arg, const char *value, char *err, size_t errlen)
{
    struct relay_config *cfg = arg;

    return config_bool(value, "accept-creds-v1", &cfg->accept_creds_v1, err, errlen);
}

static int set_kernel_forward(void *arg, const char *value, char *err, size_t errlen)
{
    struct relay_config *cfg = arg;

    if (kfwd_mode_parse(value, &cfg->kernel_forward) != 0) {
        snprintf(err, errlen, "kernel-forward: \"%s\" is not auto, on or off", value);
        return -1;
    }
    return 0;
}

static const struct config_option relay_options[] = {
    {"listen", "ADDR:PORT", set_listen, "UDP address for media; repeat for more (IPv4, IPv6)"},
    {"listen-tcp", "ADDR:PORT", set_listen_tcp,
     "ICE-TCP address (RFC 6544 passive) for networks that block UDP; repeatable"},
    {"max-tcp-connections", "N", set_max_tcp,
     "ICE-TCP connections open at once, all workers (default 2048)"},
    {"secret-file", "FILE", set_secret_file, "credential secrets shared with signaling"},
    {"control", "ADDR:PORT", set_control, "control endpoint (default " RELAY_DEFAULT_CONTROL ")"},
    {"workers", "N", set_workers, "forwarding threads (default: one per CPU we may use)"},
    {"max-links", "N", set_max_links, "link slots allocated at start (default 16384)"},
    {"consent-timeout", "S", set_consent, "close a leg after S s without a check (default 30)"},
    {"max-ttl", "S", set_max_ttl, "refuse credentials valid longer than S s (default 86400)"},
    {"accept-creds-v1", "yes|no", set_accept_v1,
     "answer v1 ufrags (no MAC; older signaling): off once signaling is upgraded (default yes)"},
    {"kernel-forward", "auto|on|off", set_kernel_forward,
     "forward bound legs in the kernel (eBPF, TCX); auto falls back to the sockets (default auto)"},
    {"ready-file", "FILE", set_ready_file, "write bound addresses as JSON once serving"},
};

static void *relay__audit(void *cfg)
{
    return &((struct relay_config *)cfg)->audit;
}

static void *relay__daemon(void *cfg)
{
    return &((struct relay_config *)cfg)->daemon;
}

static void *relay__instance(void *cfg)
{
    return &((struct relay_config *)cfg)->daemon.instance;
}

static const struct config_spec relay_spec = {
    .program = "quietroom-relay",
    .version = QR_VERSION,
    .usage = "usage: quietroom-relay --listen ADDR:PORT --secret-file FILE [options]\n"
             "       quietroom-relay --config FILE [options]\n",
    .section = "relay",
    .groups = {{relay_options, sizeof(relay_options) / sizeof(relay_options[0]), NULL},
               {daemon_options, DAEMON_N_OPTIONS, relay__daemon},
               {audit_settings_options, AUDIT_SETTINGS_N_OPTIONS, relay__audit},
               {lockfile_options, LOCKFILE_N_OPTIONS, relay__instance}},
};

static void relay__defaults(struct relay_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    daemon_settings_defaults(&cfg->daemon, "relay", RELAY_DEFAULT_RUNTIME_DIR);
    netaddr_parse(RELAY_DEFAULT_CONTROL, &cfg->control);
    cfg->max_links = QR_MAX_LINKS_DEFAULT;
    cfg->max_tcp_conns = QR_TCP_CONNS_DEFAULT;
    cfg->consent_timeout_s = QR_CONSENT_TIMEOUT_S;
    cfg->max_ttl_s = QR_CREDS_MAX_TTL_S;
    cfg->accept_creds_v1 = true;
}

/* The checks that need every option at once. */
static int relay__validate(const struct relay_config *cfg, char *err, size_t errlen)
{
    /* The relay's own rule, older than the shared option: signaling has
     * always taken any node id, so the check stays here, not in daemon.c. */
    if (strpbrk(cfg->daemon.node_id, "\"\\\n\r\t ") != NULL) {
        snprintf(err, errlen, "node-id: no spaces or quotes");
        return -1;
    }
    if (cfg->n_listen == 0) {
        snprintf(err, errlen, "no --listen address given");
        return -1;
    }
    if (cfg->secret_file[0] == '\0') {
        snprintf(err, errlen, "no --secret-file given");
        return -1;
    }
    return 0;
}

enum config_result relay_config_load(struct relay_config *cfg, int argc, char **argv, char *err,
                                     size_t errlen)
{
    enum config_result r;

    relay__defaults(cfg);
    r = config_load(&relay_spec, cfg, argc, argv, err, errlen);
    if (r != CONFIG_OK)
        return r;
    return relay__validate(cfg, err, errlen) == 0 ? CONFIG_OK : CONFIG_ERROR;
}
