/* quietroomctl creds / secret: relay credentials without a running signaling
 * server, for operators, tests and the load tester. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "quietroom/base/clock.h"
#include "quietroom/wire/creds.h"
#include "quietroom/base/limits.h"

static const char creds_usage[] =
    "usage: quietroomctl creds --secret-file FILE --session ID [--ttl SECONDS] [--links N]\n"
    "Prints {\"session\", \"expires\", \"links\": [{\"a\": {\"ufrag\", \"pwd\"}, \"b\": ...}]}\n";

static json_t *creds__leg(const struct creds_link *l, int side)
{
    return json_pack("{s:s,s:s}", "ufrag", l->ufrag[side], "pwd", l->pwd[side]);
}

static int creds__print(const struct keyring *kr, const char *sid, uint32_t expires,
                        uint32_t links)
{
    struct hmac *h = hmac_new(HMAC_SHA256);
    json_t *arr = json_array(), *doc;
    int rc = CTL_FAILED;

    if (h == NULL || arr == NULL)
        goto out;
    for (uint32_t i = 0; i < links; i++) {
        struct creds_link l;

        if (creds_derive_link(kr, sid, (uint16_t)i, expires, h, &l) != 0) {
            ctl_fail("creds", "derivation failed");
            goto out;
        }
        json_array_append_new(arr, json_pack("{s:o,s:o}", "a", creds__leg(&l, CREDS_SIDE_A), "b",
                                             creds__leg(&l, CREDS_SIDE_B)));
    }
    doc = json_pack("{s:s,s:I,s:O}", "session", sid, "expires", (json_int_t)expires, "links",
                    arr);
    ctl_print_json(doc);
    rc = CTL_OK;
out:
    json_decref(arr);
    hmac_free(h);
    return rc;
}

int cmd_creds(int argc, char **argv)
{
    static const struct option opts[] = {
        {"secret-file", required_argument, NULL, 'f'}, {"session", required_argument, NULL, 's'},
        {"ttl", required_argument, NULL, 't'},         {"links", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},              {0, 0, 0, 0},
    };
    const char *file = NULL, *sid = NULL;
    uint32_t ttl = QR_CREDS_DEFAULT_TTL_S, links = 1;
    struct keyring kr;
    int c, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'f')
            file = optarg;
        else if (c == 's')
            sid = optarg;
        else if (c == 't' && !ctl_parse_u32(optarg, 1, QR_CREDS_MAX_TTL_S, &ttl))
            return ctl_usage_error("creds", "--ttl: 1 to %d seconds", QR_CREDS_MAX_TTL_S);
        else if (c == 'n' && !ctl_parse_u32(optarg, 1, QR_LINKS_PER_SESSION_MAX, &links))
            return ctl_usage_error("creds", "--links: 1 to %d", QR_LINKS_PER_SESSION_MAX);
        else if (c == 'h') {
            fputs(creds_usage, stdout);
            return CTL_OK;
        } else if (c == '?')
            return CTL_USAGE;
    }
    if (sid == NULL || sid[0] == '\0' || strlen(sid) > QR_SESSION_ID_MAX) {
        fputs(creds_usage, stderr);
        return CTL_USAGE;
    }
    if ((rc = ctl_load_keys("creds", file, &kr)) != CTL_OK)
        return rc;
    rc = creds__print(&kr, sid, clock_wall_s() + ttl, links);
    keyring_wipe(&kr);
    return rc;
}

int cmd_secret(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"kid", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *out = NULL;
    uint32_t kid = 1;
    char err[256];
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'o')
            out = optarg;
        else if (c == 'k' && !ctl_parse_u32(optarg, 0, 255, &kid))
            return ctl_usage_error("secret", "--kid: 0 to 255");
        else if (c == 'h') {
            puts("usage: quietroomctl secret --out FILE [--kid N]\n"
                 "Creates FILE (mode 0600) with one fresh 256-bit key. To rotate, put a new\n"
                 "key's line first in the relay and signaling secret files and keep the old\n"
                 "line until the longest credential TTL has passed.");
            return CTL_OK;
        } else if (c == '?')
            return CTL_USAGE;
    }
    if (out == NULL)
        return ctl_usage_error("secret", "--out FILE is required");
    if (keyring_generate(out, (uint8_t)kid, err, sizeof(err)) != 0)
        return ctl_fail("secret", "%s", err);
    return CTL_OK;
}
