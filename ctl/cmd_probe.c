/* quietroomctl probe: the command line of the synthetic call (probe.c). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "probe.h"

#define PROBE_SECONDS_DEFAULT 5
#define PROBE_SECONDS_MAX 3600
#define PROBE_TIMEOUT_DEFAULT 15
#define PROBE_TIMEOUT_MAX 600

static const char probe_usage[] =
    "usage: quietroomctl probe --signal ws[s]://HOST[:PORT][/ws] --key EHR_PRIVATE.pem\n"
    "         [--kid K] [--iss I] [--aud A] [--origin O] [--ca FILE] [--local-address ADDR]\n"
    "         [--seconds N] [--timeout S] [--transport udp|tcp] [--json] [--prometheus FILE]\n"
    "Places one end-to-end encrypted call between a minted clinician and patient\n"
    "through signaling and a relay, and reports setup time, RTT, loss and whether\n"
    "each end heard the other's tone. Exit 0 on success, 1 naming the failed stage\n"
    "(local, connect, auth, admit, negotiate, ice, dtls, media, tone, timeout), 2 on\n"
    "a usage error. Defaults: kid dev, iss quietroom-dev, aud quietroom, Origin the\n"
    "signaling server's own, 5 s of audio, 15 s for setup, the local address that\n"
    "routes to signaling, UDP (tcp: both ends reach the relay over ICE-TCP, as\n"
    "browsers on networks that block UDP do).\n";

struct probe_cli {
    struct probe_opts o;
    const char *url;
    const char *prometheus;
    bool json;
};

/* Sets one option; -1 to go on, or an exit code. */
static int probe__option(struct probe_cli *c, int opt, const char *arg)
{
    switch (opt) {
    case 'u': c->url = arg; break;
    case 'k': c->o.key = arg; break;
    case 'K': c->o.kid = arg; break;
    case 'i': c->o.iss = arg; break;
    case 'a': c->o.aud = arg; break;
    case 'o': c->o.origin = arg; break;
    case 'c': c->o.ca_file = arg; break;
    case 'l': c->o.local_address = arg; break;
    case 'j': c->json = true; break;
    case 'T':
        if (strcmp(arg, "udp") != 0 && strcmp(arg, "tcp") != 0)
            return ctl_usage_error("probe", "--transport: udp or tcp");
        c->o.ice_tcp = strcmp(arg, "tcp") == 0;
        break;
    case 'p': c->prometheus = arg; break;
    case 's':
        if (!ctl_parse_u32(arg, 1, PROBE_SECONDS_MAX, &c->o.seconds))
            return ctl_usage_error("probe", "--seconds: 1 to %d", PROBE_SECONDS_MAX);
        break;
    case 't':
        if (!ctl_parse_u32(arg, 1, PROBE_TIMEOUT_MAX, &c->o.timeout_s))
            return ctl_usage_error("probe", "--timeout: 1 to %d", PROBE_TIMEOUT_MAX);
        break;
    case 'h':
        fputs(probe_usage, stdout);
        return CTL_OK;
    default:
        fputs(probe_usage, stderr);
        return CTL_USAGE;
    }
    return -1;
}

static int probe__args(int argc, char **argv, struct probe_cli *c)
{
    static const struct option opts[] = {
        {"signal", required_argument, NULL, 'u'},  {"key", required_argument, NULL, 'k'},
        {"kid", required_argument, NULL, 'K'},     {"iss", required_argument, NULL, 'i'},
        {"aud", required_argument, NULL, 'a'},     {"origin", required_argument, NULL, 'o'},
        {"ca", required_argument, NULL, 'c'},      {"local-address", required_argument, NULL, 'l'},
        {"seconds", required_argument, NULL, 's'}, {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},          {"prometheus", required_argument, NULL, 'p'},
        {"transport", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},          {0, 0, 0, 0},
    };
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if ((rc = probe__option(c, opt, optarg)) >= 0)
            return rc == CTL_OK ? -2 : rc;
    }
    if (optind < argc || c->url == NULL || c->o.key == NULL)
        return ctl_usage_error("probe", "--signal URL and --key FILE are required (--help)");
    return -1;
}

int cmd_probe(int argc, char **argv)
{
    struct probe_cli c = {.o = {.kid = "dev", .iss = "quietroom-dev", .aud = "quietroom",
                                .seconds = PROBE_SECONDS_DEFAULT,
                                .timeout_s = PROBE_TIMEOUT_DEFAULT}};
    struct probe_result r;
    char err[256], origin[WSCONN_ORIGIN_MAX];
    int rc = probe__args(argc, argv, &c);

    if (rc != -1)
        return rc == -2 ? CTL_OK : rc;
    if (wsconn_parse_url(c.url, &c.o.target, err, sizeof(err)) != 0)
        return ctl_usage_error("probe", "%s", err);
    if (c.o.origin == NULL) {
        wsconn_default_origin(&c.o.target, origin, sizeof(origin));
        c.o.origin = origin;
    }
    rc = probe_run(&c.o, &r) == 0 ? CTL_OK : CTL_FAILED;
    if (!c.json)
        probe_report_text(&r, c.o.seconds);
    else if (probe_report_json(&r, c.o.seconds) != 0)
        rc = ctl_fail("probe", "cannot write the JSON report");
    if (c.prometheus != NULL && probe_report_prometheus(&r, c.prometheus, err, sizeof(err)) != 0)
        rc = ctl_fail("probe", "%s", err);
    if (r.failed != PROBE_OK)
        ctl_fail("probe", "failed at %s: %s", probe_stage_name(r.failed), r.reason);
    return rc;
}
