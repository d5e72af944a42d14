/* quietroom-relay configuration: command-line options and the same keys in
 * an INI-style file. Read at start-up and again on SIGHUP (lifecycle.c
 * applies what may change while running). */
#ifndef QUIETROOM_RELAY_CONFIG_H
#define QUIETROOM_RELAY_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "quietroom/audit/audit_settings.h"
#include "quietroom/base/daemon.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/netaddr.h"
#include "kfwd.h"

struct relay_config {
    union netaddr listen[QR_LISTEN_MAX];
    unsigned n_listen;
    union netaddr listen_tcp[QR_TCP_LISTEN_MAX]; /* ICE-TCP, passive (RFC 6544) */
    unsigned n_listen_tcp;
    uint32_t max_tcp_conns;       /* open at once, all workers */
    union netaddr control;
    char secret_file[PATH_MAX];
    struct audit_settings audit;  /* no path: no audit log (warned at start) */
    struct daemon_settings daemon; /* node-id, log-level, ops-*, drain-timeout, runtime-dir */
    char ready_file[PATH_MAX];    /* empty: none */
    uint32_t workers;             /* 0: one per CPU of the affinity mask and quota */
    uint32_t max_links;
    uint32_t consent_timeout_s;
    uint32_t max_ttl_s;
    bool accept_creds_v1;         /* ufrags without a MAC (older signaling) */
    enum kfwd_mode kernel_forward; /* the kernel path (kfwd.h); default auto */
};

/* Fills cfg from defaults, then argv in order ("--config FILE" reads the file
 * at that point, so later options override it). CONFIG_EXIT means --help or
 * --version was answered. */
enum config_result relay_config_load(struct relay_config *cfg, int argc, char **argv, char *err,
                                     size_t errlen);

#endif
