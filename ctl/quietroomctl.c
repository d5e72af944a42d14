/* quietroomctl: the subcommand table and the helpers subcommands share. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#ifndef QR_VERSION
#define QR_VERSION "dev"
#endif

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} ctl_commands[] = {
    {"creds", cmd_creds, "derive relay credentials for a session's links (as signaling does)"},
    {"secret", cmd_secret, "create a relay secret file"},
    {"stats", cmd_relay_stats, "print a relay's counters from its control endpoint"},
    {"session", cmd_relay_session, "print a relay's per-link view of one session"},
    {"revoke", cmd_relay_revoke, "revoke a session at a relay: forwarding stops at once"},
    {"token", cmd_token, "mint an EHR session token (development and tests)"},
    {"keygen", cmd_keygen, "create a token signing key pair (PEM and JWKS)"},
    {"probe", cmd_probe, "place a synthetic encrypted call through signaling and a relay"},
    {"status", cmd_status, "print the cluster view: each relay's readiness and load"},
    {"audit", cmd_audit, "verify an audit log, export it as FHIR R5 AuditEvents, or show a timeline"},
};

#define CTL_N_COMMANDS (sizeof(ctl_commands) / sizeof(ctl_commands[0]))

static void ctl_vreport(const char *cmd, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void ctl_vreport(const char *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "quietroomctl %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int ctl_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ctl_vreport(cmd, fmt, ap);
    va_end(ap);
    return CTL_FAILED;
}

int ctl_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ctl_vreport(cmd, fmt, ap);
    va_end(ap);
    return CTL_USAGE;
}

bool ctl_parse_u32(const char *text, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long long v;

    if (text == NULL || text[0] < '0' || text[0] > '9')
        return false;
    v = strtoull(text, &end, 10);
    if (*end != '\0' || v < min || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

int ctl_load_keys(const char *cmd, const char *path, struct keyring *kr)
{
    char err[256];

    if (path == NULL)
        return ctl_fail(cmd, "--secret-file is required");
    if (keyring_load(path, kr, err, sizeof(err)) != 0)
        return ctl_fail(cmd, "%s", err);
    return CTL_OK;
}

void ctl_print_json(json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (text != NULL)
        printf("%s\n", text);
    free(text);
    json_decref(v);
}

static void ctl_usage(FILE *out)
{
    fprintf(out, "usage: quietroomctl COMMAND [options]   (quietroomctl COMMAND --help)\n\n");
    for (size_t i = 0; i < CTL_N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", ctl_commands[i].name, ctl_commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        ctl_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("quietroomctl %s\n", QR_VERSION);
        return CTL_OK;
    }
    for (size_t i = 0; i < CTL_N_COMMANDS; i++) {
        if (strcmp(argv[1], ctl_commands[i].name) == 0)
            return ctl_commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "quietroomctl: unknown command \"%s\"\n", argv[1]);
    ctl_usage(stderr);
    return CTL_USAGE;
}
