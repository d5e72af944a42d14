/* quietroomctl status against two real relays sharing one secret, as a
 * cluster behind one signaling server does: each carries a call (a pair of
 * bound legs); one is sent SIGTERM and drains. Status shows one ready and
 * one draining with their load; once the draining one is stopped it shows
 * down and status exits non-zero. */
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
#include "harness.h"

#define WAIT_MS 3000
#define RUN_LIMIT_S 20

struct pair {
    json_t *creds;
    struct udp_peer a, b;
};

struct world {
    struct relay_proc relay[2];
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

static int group_setup(void **state)
{
    static const char *const listen[] = {"127.0.0.1:0", NULL};
    struct world *w = calloc(1, sizeof(*w));
    const char *shared[3] = {"--secret-file", NULL, NULL};

    *state = w;
    if (w == NULL || relay_start(&w->relay[0], listen, NULL) != 0)
        return -1;
    /* The second relay takes the first one's secret (the later option wins). */
    shared[1] = w->relay[0].secret;
    if (relay_start(&w->relay[1], listen, shared) != 0)
        return -1;
    w->relay[1].keys = w->relay[0].keys; /* for relay_call */
    for (int i = 0; i < 2; i++)
        snprintf(w->spec[i], sizeof(w->spec[i]), "%s=%s", i == 0 ? "relay-a" : "relay-b",
                 w->relay[i].control);
    return 0;
}

static int group_teardown(void **state)
{
    struct world *w = *state;
    int rc = 0;

    if (w == NULL)
        return 0;
    for (int i = 0; i < 2; i++) {
        if (w->call[i].creds != NULL)
            pair_close(&w->call[i]);
        rc |= relay_cleanup(&w->relay[i]);
    }
    free(w);
    return rc;
}

static void run_status(struct world *w, bool json, struct ctlrun *r)
{
    char *argv[] = {QR_CTL_BIN, "status", "--relay", w->spec[0], "--relay", w->spec[1],
                    "--secret-file", w->relay[0].secret, "--interval-ms", "300",
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
    struct world *w = *state;
    struct ctlrun r;
    json_t *rows, *a, *b;

    pair_open(&w->relay[0], &w->relay[0], &w->call[0], "status-a");
    pair_open(&w->relay[0], &w->relay[1], &w->call[1], "status-b");
    /* Draining keeps the relay up while its call lasts. */
    kill(w->relay[1].pid, SIGTERM);
    wait_draining(&w->relay[1]);

    run_status(w, true, &r);
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

    run_status(w, false, &r);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "relay-a"));
    assert_non_null(strstr(r.out, "ready"));
    assert_non_null(strstr(r.out, "draining"));
    ctlrun_free(&r);
}

static void test_status_shows_a_stopped_relay_down(void **state)
{
    struct world *w = *state;
    struct ctlrun r;
    json_t *rows, *b;

    relay_stop(&w->relay[1]);
    run_status(w, true, &r);
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

    run_status(w, false, &r);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.out, "down"));
    ctlrun_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_shows_ready_and_draining),
        cmocka_unit_test(test_status_shows_a_stopped_relay_down),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
