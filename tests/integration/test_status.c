/* quietroomctl status against two real relays sharing one secret, as a
 * cluster behind one signaling server does: each carries a call (a pair of
 * bound legs); one is sent SIGTERM and drains. Status shows one ready and
 * one draining with their load; a stopped one shows down and status exits
 * non-zero. Each test has its own pair of relays (world.h). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "ctlrun.h"
#include "world.h"

#define WAIT_MS 3000
#define RUN_LIMIT_S 20

struct pair {
    json_t *creds;
    struct udp_peer a, b;
};

/* One test's state: two relays on one secret, a call on each, and how
 * `quietroomctl status` names them. */
struct cluster {
    struct world w;
    struct pair call[2];
    char spec[2][HARNESS_PATH];
};

static void bind_ok(struct udp_peer *p, const union netaddr *relay, const char *ufrag,
                    const char *pwd)
{
    struct check c = {.ufrag = ufrag, .pwd = pwd, .nominate = true};
    uint8_t raw[2048];
    struct stun_msg m;

    assert_int_equal(peer_check(p, relay, &c, &m, raw, WAIT_MS), 1);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
}

/* A call on relay r: both legs bound, so it is a session with two legs.
 * Credentials come from the shared secret, which is first's. */
static void pair_open(struct relay_proc *first, struct relay_proc *r, struct pair *pr,
                      const char *sid)
{
    pr->creds = ctl_creds(first, sid, 1);
    assert_non_null(pr->creds);
    assert_int_equal(peer_open(&pr->a, "127.0.0.1:0"), 0);
    assert_int_equal(peer_open(&pr->b, "127.0.0.1:0"), 0);
    bind_ok(&pr->a, &r->listen[0], creds_ufrag(pr->creds, 0, 0), creds_pwd(pr->creds, 0, 0));
    bind_ok(&pr->b, &r->listen[0], creds_ufrag(pr->creds, 0, 1), creds_pwd(pr->creds, 0, 1));
}

static void pair_close(struct pair *pr)
{
    peer_close(&pr->a);
    peer_close(&pr->b);
    json_decref(pr->creds);
}

/* Each test starts its own pair of relays, so stopping one affects no
 * other test. The second takes the first one's secret. */
static int setup(void **state)
{
    struct world_opts o = {.no_signal = true, .second_relay = true};
    struct cluster *c = calloc(1, sizeof(*c));

    *state = c;
    if (c == NULL || world_start(&c->w, &o) != 0)
        return -1;
    snprintf(c->spec[0], sizeof(c->spec[0]), "relay-a=%s", c->w.relay.control);
    snprintf(c->spec[1], sizeof(c->spec[1]), "relay-b=%s", c->w.relay2.control);
    return 0;
}

static int teardown(void **state)
{
    struct cluster *c = *state;
    int rc;

    if (c == NULL)
        return 0;
    for (int i = 0; i < 2; i++) {
        if (c->call[i].creds != NULL)
            pair_close(&c->call[i]);
    }
    rc = world_stop(&c->w);
    free(c);
    return rc;
}

static void run_status(struct cluster *c, bool json, struct ctlrun *r)
{
    char *argv[] = {QR_CTL_BIN, "status", "--relay", c->spec[0], "--relay", c->spec[1],
                    "--secret-file", c->w.relay.secret, "--interval-ms", "300",
                    json ? "--json" : NULL, NULL};

    assert_int_equal(ctlrun(argv, RUN_LIMIT_S, r), 0);
    print_message("status: exit %d after %.2f s\n%s%s", r->exit_code, r->seconds,
                  r->out ? r->out : "", r->err ? r->err : "");
}

static json_t *row(json_t *rows, const char *name)
{
    json_t *v;
    size_t i;

    json_array_foreach(rows, i, v) {
        if (strcmp(json_string_value(json_object_get(v, "relay")), name) == 0)
            return v;
    }
    fail_msg("no row for %s", name);
    return NULL;
}

/* Until the relay has handled the signal (at most WAIT_MS). */
static void wait_draining(struct relay_proc *r)
{
    for (uint64_t until = now_ms() + WAIT_MS; now_ms() < until; usleep(20000)) {
        json_t *resp = relay_call(r, "stats", NULL);
        bool draining = json_is_true(json_object_get(json_object_get(resp, "stats"), "draining"));

        json_decref(resp);
        if (draining)
            return;
    }
    fail_msg("the relay did not start draining");
}

static long long field(json_t *r, const char *name)
{
    return json_integer_value(json_object_get(r, name));
}

static void test_status_shows_ready_and_draining(void **state)
{
    struct cluster *c = *state;
    struct ctlrun r;
    json_t *rows, *a, *b;

    pair_open(&c->w.relay, &c->w.relay, &c->call[0], "status-a");
    pair_open(&c->w.relay, &c->w.relay2, &c->call[1], "status-b");
    /* Draining keeps the relay up while its call lasts. */
    kill(c->w.relay2.pid, SIGTERM);
    wait_draining(&c->w.relay2);

    run_status(c, true, &r);
    assert_int_equal(r.exit_code, 0);
    rows = json_loads(r.out, 0, NULL);
    assert_non_null(rows);
    a = row(rows, "relay-a");
    b = row(rows, "relay-b");
    assert_true(json_is_true(json_object_get(a, "up")));
    assert_string_equal(json_string_value(json_object_get(a, "state")), "ready");
    assert_int_equal(field(a, "sessions"), 1);
    assert_int_equal(field(a, "legs"), 2);
    assert_true(json_real_value(json_object_get(a, "pps_in")) >= 0);
    assert_true(json_is_true(json_object_get(b, "up")));
    assert_string_equal(json_string_value(json_object_get(b, "state")), "draining");
    assert_int_equal(field(b, "sessions"), 1);
    json_decref(rows);
    ctlrun_free(&r);

    run_status(c, false, &r);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "relay-a"));
    assert_non_null(strstr(r.out, "ready"));
    assert_non_null(strstr(r.out, "draining"));
    ctlrun_free(&r);
}

static void test_status_shows_a_stopped_relay_down(void **state)
{
    struct cluster *c = *state;
    struct ctlrun r;
    json_t *rows, *b;

    relay_stop(&c->w.relay2);
    run_status(c, true, &r);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "1 of 2 relay(s) down"));
    rows = json_loads(r.out, 0, NULL);
    assert_non_null(rows);
    assert_string_equal(json_string_value(json_object_get(row(rows, "relay-a"), "state")),
                        "ready");
    b = row(rows, "relay-b");
    assert_false(json_is_true(json_object_get(b, "up")));
    assert_string_equal(json_string_value(json_object_get(b, "state")), "down");
    json_decref(rows);
    ctlrun_free(&r);

    run_status(c, false, &r);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.out, "down"));
    ctlrun_free(&r);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_shows_ready_and_draining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_shows_a_stopped_relay_down, setup, teardown),
    };

    return world_run_tests("test_status", tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}
