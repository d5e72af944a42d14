/* The integration tests' shared setup: a relay (or two on one secret), a
 * signaling server unless asked not to, and the WebSocket helpers every
 * signaling test drives them with. */
#include "world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Enough for the world's own options and a test's few. */
#define WORLD_RELAY_ARGS 32

/* The bearer token goes in a file of mode 0600, as an operator's would. */
static int world_write_token(struct world *w, const char *token)
{
    int fd;
    size_t len = strlen(token);

    snprintf(w->ops_token_file, sizeof(w->ops_token_file), "/tmp/qr-ops-token-XXXXXX");
    if ((fd = mkstemp(w->ops_token_file)) < 0) {
        w->ops_token_file[0] = '\0';
        return -1;
    }
    if (write(fd, token, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
        close(fd);
        return -1;
    }
    return close(fd);
}

/* The options every relay of the world gets; shared_secret, when not NULL,
 * is taken instead of the relay's own (the later option wins). */
static int world_relay_args(const struct world *w, const struct world_opts *o,
                             const char *shared_secret, const char **args)
{
    int n = 0;

    if (w->ops_token_file[0] != '\0') {
        args[n++] = "--ops-listen";
        args[n++] = "127.0.0.1:0";
        args[n++] = "--ops-token-file";
        args[n++] = w->ops_token_file;
    }
    for (int i = 0; o->relay_extra != NULL && o->relay_extra[i] != NULL; i++) {
        if (n >= WORLD_RELAY_ARGS - 3)
            return -1;
        args[n++] = o->relay_extra[i];
    }
    if (shared_secret != NULL) {
        args[n++] = "--secret-file";
        args[n++] = shared_secret;
    }
    args[n] = NULL;
    return 0;
}

static int world_start_relays(struct world *w, const struct world_opts *o)
{
    static const char *const loopback[] = {"127.0.0.1:0", NULL};
    const char *const *listen = o->listen != NULL ? o->listen : loopback;
    const char *args[WORLD_RELAY_ARGS];

    if (o->ops_token != NULL && world_write_token(w, o->ops_token) != 0)
        return -1;
    if (world_relay_args(w, o, NULL, args) != 0 || relay_start(&w->relay, listen, args) != 0)
        return -1;
    if (!o->second_relay)
        return 0;
    if (world_relay_args(w, o, w->relay.secret, args) != 0 ||
        relay_start(&w->relay2, listen, args) != 0)
        return -1;
    w->relay2.keys = w->relay.keys; /* its control endpoint knows the shared secret */
    return 0;
}

static void world_print_log(const char *what, const char *path)
{
    char *log = path[0] != '\0' ? read_text(path) : NULL;

    fprintf(stderr, "%s did not start; its log:\n%s\n", what, log ? log : "(none)");
    free(log);
}

/* Signaling in front of the first relay, and of the second too if asked. */
static int world_start_signal(struct world *w, const struct world_opts *o)
{
    const char *extra[WORLD_RELAY_ARGS];
    int n = 0;

    if (!o->signal_both_relays)
        return signal_start(&w->sig, &w->relay, o->tls, o->signal_extra);
    if (!o->second_relay || relay_conf_line(&w->relay2, "r2", w->relay2_line,
                                            sizeof(w->relay2_line)) != 0)
        return -1;
    for (int i = 0; o->signal_extra != NULL && o->signal_extra[i] != NULL; i++) {
        if (n >= WORLD_RELAY_ARGS - 2)
            return -1;
        extra[n++] = o->signal_extra[i];
    }
    extra[n++] = w->relay2_line;
    extra[n] = NULL;
    return signal_start(&w->sig, &w->relay, o->tls, extra);
}

int world_start(struct world *w, const struct world_opts *o)
{
    memset(w, 0, sizeof(*w));
    w->wait_ms = o->wait_ms > 0 ? o->wait_ms : WORLD_WAIT_MS;
    if (world_start_relays(w, o) != 0) {
        world_print_log("a relay", w->relay2.log[0] != '\0' ? w->relay2.log : w->relay.log);
        goto fail;
    }
    if (o->no_signal || world_start_signal(w, o) == 0)
        return 0;
    world_print_log("signaling", w->sig.log);
fail:
    /* Nothing may outlive a setup that failed, whether or not a teardown
     * follows it. */
    world_stop(w);
    return -1;
}

int world_stop(struct world *w)
{
    int rc = signal_cleanup(&w->sig);

    rc |= relay_cleanup(&w->relay2);
    rc |= relay_cleanup(&w->relay);
    if (w->ops_token_file[0] != '\0')
        unlink(w->ops_token_file);
    memset(w, 0, sizeof(*w));
    return rc;
}

int world_setup(void **state, const struct world_opts *o)
{
    struct world *w = calloc(1, sizeof(*w));

    *state = w;
    return w != NULL ? world_start(w, o) : -1;
}

int world_teardown(void **state)
{
    struct world *w = *state;
    int rc;

    if (w == NULL)
        return 0;
    rc = world_stop(w);
    free(w);
    *state = NULL;
    return rc;
}

struct wsconn *world_open(const struct world *w, const char *origin, const char *protocol,
                          const char *path, char *err, size_t errlen)
{
    bool tls = w->sig.cert[0] != '\0';
    struct wsconn_target t = {.tls = tls, .host = "127.0.0.1", .port = w->sig.port};
    struct wsconn_opts o = {
        .target = &t,
        .origin = origin,
        .protocol = protocol,
        .ca_file = tls ? w->sig.cert : NULL, /* verified, as the prober does */
    };

    snprintf(t.path, sizeof(t.path), "%s", path);
    return wsconn_open(&o, w->wait_ms, err, errlen);
}

struct wsconn *world_connect(const struct world *w)
{
    char err[160];
    struct wsconn *c = world_open(w, TEST_ORIGIN, WORLD_PROTOCOL, "/ws", err, sizeof(err));

    if (c == NULL)
        fail_msg("websocket: %s", err);
    return c;
}

struct wsconn *world_join_token(const struct world *w, const char *token, json_t **reply)
{
    struct wsconn *c = world_connect(w);

    wsconn_send_json(c, json_pack("{s:s,s:s}", "type", "auth", "token", token));
    *reply = wsconn_recv(c, w->wait_ms);
    if (*reply == NULL)
        fail_msg("no answer to auth");
    return c;
}

struct wsconn *world_join(const struct world *w, const char *sid, const char *role,
                          const char *sub, const char *const *more, json_t **welcome)
{
    char *token = mint_token(&w->sig, sid, role, sub, more);
    struct wsconn *c;
    json_t *m;

    assert_non_null(token);
    c = world_join_token(w, token, &m);
    free(token);
    if (strcmp(world_str(m, "type"), "welcome") != 0)
        fail_msg("joined as %s: got %s (%s)", role, world_str(m, "type"), world_str(m, "code"));
    if (welcome != NULL)
        *welcome = m;
    else
        json_decref(m);
    return c;
}

json_t *world_expect(struct wsconn *c, const char *type, int timeout_ms)
{
    json_t *m = wsconn_recv_type(c, type, timeout_ms);

    if (m == NULL)
        fail_msg("no \"%s\" message arrived", type);
    return m;
}

const char *world_str(json_t *m, const char *key)
{
    const char *v = json_string_value(json_object_get(m, key));

    return v ? v : "";
}

int world_run_tests(const char *name, struct CMUnitTest *tests, size_t n,
                    CMFixtureFunction setup, CMFixtureFunction teardown)
{
    const char *filter = getenv("QR_TEST_FILTER"), *order = getenv("QR_TEST_ORDER");

    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    if (order != NULL && strcmp(order, "reverse") == 0) {
        for (size_t i = 0; i < n / 2; i++) {
            struct CMUnitTest t = tests[i];

            tests[i] = tests[n - 1 - i];
            tests[n - 1 - i] = t;
        }
    }
    return _cmocka_run_group_tests(name, tests, n, setup, teardown);
}
