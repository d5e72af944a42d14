/* quietroomctl stats / session / revoke: talk to a relay's control endpoint. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "quietroom/wire/ctlproto.h"

#define CTL_TIMEOUT_MS 5000
#define CTL_DEFAULT_CONTROL "127.0.0.1:7600"

struct relay_args {
    const char *control;
    const char *secret_file;
    const char *session;
};

static int relay__args(const char *cmd, int argc, char **argv, bool want_session,
                       struct relay_args *a)
{
    static const struct option opts[] = {
        {"control", required_argument, NULL, 'c'},
        {"secret-file", required_argument, NULL, 'f'},
        {"session", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    int c;

    *a = (struct relay_args){.control = CTL_DEFAULT_CONTROL};
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            a->control = optarg;
        else if (c == 'f')
            a->secret_file = optarg;
        else if (c == 's' && want_session)
            a->session = optarg;
        else if (c == 'h') {
            printf("usage: quietroomctl %s --secret-file FILE [--control ADDR:PORT]%s\n", cmd,
                   want_session ? " --session ID" : "");
            return -1;
        } else
            return CTL_USAGE;
    }
    if (want_session && a->session == NULL) {
        fprintf(stderr, "quietroomctl %s: --session ID is required\n", cmd);
        return CTL_USAGE;
    }
    return CTL_OK;
}

/* Connects, sends {"op": op, ...}, prints the answer's field `field`. */
static int relay__call(const char *cmd, int argc, char **argv, const char *op, bool want_session,
                       const char *field)
{
    struct relay_args a;
    struct keyring kr;
    struct ctlclient *c = NULL;
    json_t *req = NULL, *resp = NULL;
    char err[256];
    int rc = relay__args(cmd, argc, argv, want_session, &a);

    if (rc != CTL_OK)
        return rc < 0 ? CTL_OK : rc;
    if ((rc = ctl_load_keys(cmd, a.secret_file, &kr)) != CTL_OK)
        return rc;
    rc = CTL_FAILED;
    if ((c = ctlclient_connect(a.control, &kr, CTL_TIMEOUT_MS, err, sizeof(err))) == NULL) {
        ctl_fail(cmd, "%s", err);
        goto out;
    }
    req = json_pack("{s:s}", "op", op);
    if (a.session != NULL)
        json_object_set_new(req, "session", json_string(a.session));
    if ((resp = ctlclient_call(c, req, CTL_TIMEOUT_MS, err, sizeof(err))) == NULL) {
        ctl_fail(cmd, "%s", err);
        goto out;
    }
    if (!json_is_true(json_object_get(resp, "ok"))) {
        ctl_fail(cmd, "relay refused: %s", json_string_value(json_object_get(resp, "error")));
        goto out;
    }
    ctl_print_json(json_incref(field ? json_object_get(resp, field) : resp));
    rc = CTL_OK;
out:
    json_decref(resp);
    json_decref(req);
    ctlclient_close(c);
    keyring_wipe(&kr);
    return rc;
}

int cmd_relay_stats(int argc, char **argv)
{
    return relay__call("stats", argc, argv, "stats", false, "stats");
}

int cmd_relay_session(int argc, char **argv)
{
    return relay__call("session", argc, argv, "session", true, "links");
}

int cmd_relay_revoke(int argc, char **argv)
{
    return relay__call("revoke", argc, argv, "revoke", true, NULL);
}
