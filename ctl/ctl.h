/* quietroomctl: one admin CLI, one file per group of subcommands. */
#ifndef QUIETROOM_CTL_H
#define QUIETROOM_CTL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "quietroom/base/keyring.h"

/* Every subcommand: argv[0] is the subcommand name. Returns the exit code. */
int cmd_creds(int argc, char **argv);
int cmd_secret(int argc, char **argv);
int cmd_relay_stats(int argc, char **argv);
int cmd_relay_session(int argc, char **argv);
int cmd_relay_revoke(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_status(int argc, char **argv);

/* Exit codes: 0 done, 1 failed, 2 usage error. */
#define CTL_OK 0
#define CTL_FAILED 1
#define CTL_USAGE 2

/* Prints "quietroomctl CMD: message" to stderr and returns CTL_FAILED. */
int ctl_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for a usage error; returns CTL_USAGE. */
int ctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses an unsigned number in [min, max]; false if it is not one. */
bool ctl_parse_u32(const char *text, uint32_t min, uint32_t max, uint32_t *out);
/* Loads a keyring, reporting failure for cmd. */
int ctl_load_keys(const char *cmd, const char *path, struct keyring *kr);
/* Pretty-prints a JSON value on stdout and consumes it. */
void ctl_print_json(json_t *v);

#endif
