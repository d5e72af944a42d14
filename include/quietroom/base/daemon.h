/* What quietroom-relay and quietroom-signal share: the options both take
 * (one row each, as a config_group) and the start-up steps both go through
 * (configuration outcome and exit code, logging, the claim of their
 * addresses, the ready file). */
#ifndef QUIETROOM_DAEMON_H
#define QUIETROOM_DAEMON_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "quietroom/base/config.h"
#include "quietroom/base/lockfile.h"
#include "quietroom/base/netaddr.h"

/* The options every daemon takes. Select it with a config_group over
 * daemon_options; runtime-dir is lockfile_options' group over instance. */
struct daemon_settings {
    char node_id[64];              /* in audit records and /metrics */
    int log_level;                 /* enum log_level */
    bool has_ops;                  /* an operator listener is configured */
    union netaddr ops_listen;
    char ops_token_file[PATH_MAX]; /* "": no bearer token */
    uint32_t drain_timeout_s;      /* after the first SIGTERM; 0: end at once */
    struct lockfile_settings instance; /* runtime-dir: the address locks */
};

#define DAEMON_N_OPTIONS 5
extern const struct config_option daemon_options[DAEMON_N_OPTIONS];

/* Defaults: the host name as node id (fallback_id if it has none), level
 * info, no operator listener, the default drain-timeout, runtime_dir. */
void daemon_settings_defaults(struct daemon_settings *s, const char *fallback_id,
                              const char *runtime_dir);

/* The first step after config_load. --help or --version: *exit_code 0; a
 * mistake: printed as "PROGRAM: ERR" on stderr, *exit_code 2; either way
 * -1. Otherwise logging starts (ident program, the configured level), any
 * later failure exits 1 (*exit_code), and it returns 0. */
int daemon_begin(enum config_result r, const char *program, const char *err,
                 const struct daemon_settings *s, int *exit_code);

/* An address a daemon is about to serve: "udp" or "tcp" and where. */
struct daemon_address {
    const char *proto;
    const union netaddr *addr;
};

/* A second copy started by mistake stops here, before it touches anything
 * the first one owns: creates the runtime directory and claims every
 * address (lockfile_address) into locks, which it initialises. Logs the
 * holder and returns -1 if any is taken. */
int daemon_claim(struct lockfile_set *locks, const char *runtime_dir,
                 const struct daemon_address *addrs, unsigned n);

/* Tells tests and supervisors where the daemon ended up (ports may be 0 in
 * the configuration): doc as compact JSON written to PATH.tmp and renamed,
 * so that a reader never sees half a file. Logs and returns -1 on failure
 * (the temporary file is removed). */
int daemon_write_ready_file(const char *path, const json_t *doc);

#endif
