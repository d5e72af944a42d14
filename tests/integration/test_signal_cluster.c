/* Three signaling replicas sharing visits through a real 3-server NATS
 * JetStream cluster, one relay, reference native clients in a call:
 *   - a clinician on replica 1 and a patient on replica 2 meet, are
 *     admitted and exchange audio through the relay; a token spent on one
 *     replica seats nobody on another;
 *   - kill -9 of the replica owning the visit: audio never stops; both
 *     resume on other replicas, still admitted; the takeover is audited
 *     and timed;
 *   - one NATS server stopped: joins still work (after the stream's
 *     leader election); two stopped: new joins fail closed with
 *     token_claim_unavailable while the call's audio goes on; with quorum
 *     back, joins work again. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "callkit.h"
#include "harness.h"
#include "natscluster.h"
#include "world.h"

#define REPLICAS 3
#define GAP_MAX_MS 1000
#define TAKEOVER_MAX_MS 15000   /* lease 5 s, an unanswered forward 2 s, retries */

struct fixture {
    struct natscluster nats;
    struct world w;                 /* the relay */
    struct signal_proc sig[REPLICAS];
    char lines[REPLICAS][8][96];
    const char *extra[REPLICAS][9];
};

static int replica_port(const struct fixture *f, int i)
{
    return f->sig[i].port;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct world_opts o = {.no_signal = true};
    char err[256];

    if (f == NULL || natscluster_start(&f->nats, 3, err, sizeof(err)) != 0) {
        fprintf(stderr, "nats: %s\n", f ? err : "out of memory");
        free(f);
        return -1;
    }
    if (world_start(&f->w, &o) != 0)
        goto fail;
    for (int i = 0; i < REPLICAS; i++) {
        int n = 0;

        for (unsigned k = 0; k < 3; k++)
            snprintf(f->lines[i][n++], 96, "cluster = %s", natscluster_url(&f->nats, k));
        snprintf(f->lines[i][n++], 96, "cluster-replicas = 3");
        snprintf(f->lines[i][n++], 96, "node-id = replica-%d", i + 1);
        snprintf(f->lines[i][n++], 96, "resume-grace = 30");
        for (int k = 0; k < n; k++)
            f->extra[i][k] = f->lines[i][k];
        f->extra[i][n] = NULL;
        if ((i == 0 ? signal_start(&f->sig[0], &f->w.relay, false, f->extra[0])
                    : signal_start_replica(&f->sig[i], &f->sig[0], &f->w.relay, f->extra[i])) !=
            0) {
            fprintf(stderr, "replica %d did not start:\n%s\n", i + 1,
                    read_text(f->sig[i].log) ?: "");
            goto fail;
        }
    }
    *state = f;
    return 0;
fail:
    for (int i = 0; i < REPLICAS; i++)
        signal_cleanup(&f->sig[i]);
    world_stop(&f->w);
    natscluster_stop(&f->nats);
    free(f);
    return -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    callkit_stop_samplers();
    for (int i = 0; i < REPLICAS; i++) {
        if (f->sig[i].pid != 0)
            signal_stop(&f->sig[i]);
        signal_cleanup(&f->sig[i]);
    }
    world_stop(&f->w);
    natscluster_stop(&f->nats);
    free(f);
    return 0;
}

/* A clinician on replica 1 and a patient on replica 2, admitted, with
 * audio both ways through the relay. */
static void call_across(struct fixture *f, const char *sid, struct callkit_party *doc,
                        struct callkit_party *pat, char **pat_tok)
{
    char *doc_tok = mint_token(&f->sig[0], sid, "clinician", "dr-1", NULL);

    *pat_tok = mint_token(&f->sig[0], sid, "patient", "pt-1", NULL);
    doc->port = replica_port(f, 0);
    pat->port = replica_port(f, 1);
    callkit_join(doc, doc_tok, "admitted");
    callkit_join(pat, *pat_tok, "waiting");
    callkit_admit(doc, pat);
    callkit_media(doc, pat);
    free(doc_tok);
}

static const char *code_of(json_t *m)
{
    const char *c = json_string_value(json_object_get(m, "code"));

    return c != NULL ? c : json_string_value(json_object_get(m, "type"));
}

/* The patient's token again, on the third replica and on the first: each
 * time the same seat, taken from the connection that held it (which is
 * told), never a second seat: the owner decides wherever the token lands. */
static void test_meet_across_replicas_and_tokens_spent_everywhere(void **state)
{
    struct fixture *f = *state;
    struct callkit_party doc = {0}, pat = {0}, again[2] = {{0}, {0}};
    struct wsconn *held;
    char *pat_tok;
    uint64_t before;
    json_t *m;

    call_across(f, "s-across", &doc, &pat, &pat_tok);
    before = callkit_received(pat.rc);
    usleep(500000);
    assert_true(callkit_received(pat.rc) > before + 10);
    held = pat.ws;
    for (int k = 0; k < 2; k++) {
        again[k].port = replica_port(f, k == 0 ? 2 : 0);
        callkit_auth(&again[k], pat_tok, &m);
        assert_string_equal(code_of(m), "welcome");
        assert_true(json_is_true(json_object_get(m, "rejoined")));
        assert_string_equal(json_string_value(json_object_get(m, "participant")), pat.id);
        assert_string_equal(json_string_value(json_object_get(m, "state")), "admitted");
        json_decref(m);
        json_decref(callkit_expect(held, "replaced"));
        held = again[k].ws;
    }
    wsconn_free(again[0].ws);
    wsconn_free(again[1].ws);
    callkit_free(&doc);
    callkit_free(&pat);
    free(pat_tok);
}

static bool audit_has(const struct signal_proc *s, const char *what)
{
    char *text = read_text(s->audit);
    bool found = text != NULL && strstr(text, what) != NULL;

    free(text);
    return found;
}

static void test_owner_killed_mid_call(void **state)
{
    struct fixture *f = *state;
    struct callkit_party doc = {0}, pat = {0};
    struct callkit_sampler *smp;
    uint64_t t_kill, took_doc, took_pat, before;
    char *pat_tok;
    int status, owner_after = -1;

    call_across(f, "s-takeover", &doc, &pat, &pat_tok);
    smp = callkit_sampler_start(doc.rc, pat.rc);
    usleep(500000);
    /* Replica 1 saw the visit first: it owns it. */
    t_kill = now_ms();
    assert_int_equal(kill(f->sig[0].pid, SIGKILL), 0);
    assert_int_equal(waitpid(f->sig[0].pid, &status, 0), f->sig[0].pid);
    f->sig[0].pid = 0;
    doc.port = replica_port(f, 2);
    took_doc = callkit_resume(&doc, "admitted", TAKEOVER_MAX_MS);
    took_pat = callkit_resume(&pat, "admitted", TAKEOVER_MAX_MS);
    print_message("owner killed: clinician back on replica 3 after %llu ms, patient on replica "
                  "2 after %llu ms more (%llu ms after the kill)\n",
                  (unsigned long long)took_doc, (unsigned long long)took_pat,
                  (unsigned long long)(now_ms() - t_kill));
    before = callkit_received(pat.rc);
    usleep(1000000);
    assert_true(callkit_received(pat.rc) > before + 20);
    callkit_sampler_stop(smp);
    print_message("longest pause in received audio: clinician %llu ms, patient %llu ms\n",
                  (unsigned long long)smp->gap_ms[0], (unsigned long long)smp->gap_ms[1]);
    assert_true(smp->gap_ms[0] < GAP_MAX_MS);
    assert_true(smp->gap_ms[1] < GAP_MAX_MS);
    free(smp);
    for (int i = 1; i < REPLICAS; i++) {
        if (audit_has(&f->sig[i], "session.takeover"))
            owner_after = i;
    }
    assert_true(owner_after > 0);
    /* The new owner ends it: the relay stops the pair. */
    wsconn_send_json(doc.ws, json_pack("{s:s}", "type", "end"));
    json_decref(callkit_expect(pat.ws, "ended"));
    usleep(800000);
    before = callkit_received(pat.rc);
    usleep(1000000);
    assert_true(callkit_received(pat.rc) - before < 5);
    callkit_free(&doc);
    callkit_free(&pat);
    free(pat_tok);
}

/* SIGTERM to the owner: it hands the visit on instead of carrying it. Its
 * browsers (and the edge's) are told to resume (4012) and do, on the other
 * replicas, at once and still admitted; the drained replica exits. */
static void test_drain_hands_visits_on(void **state)
{
    struct fixture *f = *state;
    struct callkit_party doc = {0}, pat = {0};
    struct callkit_sampler *smp;
    uint64_t t_term, took_doc, took_pat;
    char *pat_tok;
    int code = 0;

    call_across(f, "s-drain", &doc, &pat, &pat_tok);
    smp = callkit_sampler_start(doc.rc, pat.rc);
    usleep(300000);
    t_term = now_ms();
    assert_int_equal(kill(f->sig[0].pid, SIGTERM), 0);
    /* Both are told to go elsewhere (the edge's browser too). */
    assert_int_equal(wsconn_wait_closed(doc.ws, CALLKIT_WAIT_MS), 4012);
    assert_int_equal(wsconn_wait_closed(pat.ws, CALLKIT_WAIT_MS), 4012);
    doc.port = replica_port(f, 2);
    took_doc = callkit_resume(&doc, "admitted", 5000);
    took_pat = callkit_resume(&pat, "admitted", 5000);
    print_message("drain: clinician back on replica 3 in %llu ms, patient on replica 2 in %llu "
                  "ms (%llu ms after SIGTERM)\n",
                  (unsigned long long)took_doc, (unsigned long long)took_pat,
                  (unsigned long long)(now_ms() - t_term));
    /* Handed on, not waited out: well inside one lease. */
    assert_true(now_ms() - t_term < 4000);
    code = signal_wait_exit(&f->sig[0], 5000);
    assert_int_equal(code, 0);
    usleep(500000);
    callkit_sampler_stop(smp);
    assert_true(smp->gap_ms[0] < GAP_MAX_MS);
    assert_true(smp->gap_ms[1] < GAP_MAX_MS);
    free(smp);
    callkit_free(&doc);
    callkit_free(&pat);
    free(pat_tok);
}

/* kill -9 of an edge: the owner notices (NATS has nobody listening for
 * that replica any more) and tells the clinician the patient dropped; the
 * patient resumes on the third replica, still admitted. */
static void test_edge_killed(void **state)
{
    struct fixture *f = *state;
    struct callkit_party doc = {0}, pat = {0};
    uint64_t t_kill, noticed;
    char *pat_tok;
    int status;
    json_t *m;

    call_across(f, "s-edge", &doc, &pat, &pat_tok);
    t_kill = now_ms();
    assert_int_equal(kill(f->sig[1].pid, SIGKILL), 0);
    assert_int_equal(waitpid(f->sig[1].pid, &status, 0), f->sig[1].pid);
    f->sig[1].pid = 0;
    for (;;) {
        m = callkit_expect(doc.ws, "peer_status");
        if (json_is_false(json_object_get(m, "connected")))
            break;
        json_decref(m);
    }
    json_decref(m);
    noticed = now_ms() - t_kill;
    print_message("edge killed: the owner told the clinician after %llu ms\n",
                  (unsigned long long)noticed);
    assert_true(noticed < 3000);
    pat.port = replica_port(f, 2);
    callkit_resume(&pat, "admitted", 3000);
    callkit_free(&doc);
    callkit_free(&pat);
    free(pat_tok);
}

/* Tries a fresh token on replica i until the answer's code is `want`
 * (or welcome), for up to ms; returns the ms it took, fails otherwise. */
static uint64_t join_until(struct fixture *f, int i, const char *want, int ms)
{
    uint64_t t0 = now_ms();
    static int n;

    for (;;) {
        char sid[32], sub[32], err[160], *tok;
        struct wsconn *c;
        json_t *m = NULL;
        bool ok;

        snprintf(sid, sizeof(sid), "s-fresh-%d", ++n);
        snprintf(sub, sizeof(sub), "dr-fresh-%d", n);
        tok = mint_token(&f->sig[1], sid, "clinician", sub, NULL);
        /* A replica waiting on NATS (a stream leader election) may not
         * even take the connection in time: that is "not yet" too. */
        if ((c = callkit_try_connect(replica_port(f, i), err, sizeof(err))) != NULL) {
            wsconn_send_json(c, json_pack("{s:s,s:s}", "type", "auth", "token", tok));
            m = wsconn_recv(c, CALLKIT_WAIT_MS);
        }
        ok = m != NULL && strcmp(code_of(m), want) == 0;
        if (!ok && now_ms() - t0 > (uint64_t)ms)
            fail_msg("wanted %s from replica %d, still %s after %d ms", want, i + 1,
                     m != NULL ? code_of(m) : c != NULL ? "no answer" : err, ms);
        json_decref(m);
        wsconn_free(c);
        free(tok);
        if (ok)
            return now_ms() - t0;
        usleep(250000);
    }
}

static void test_nats_servers_lost(void **state)
{
    struct fixture *f = *state;
    struct callkit_party doc = {0}, pat = {0};
    struct callkit_sampler *smp;
    uint64_t t;
    char *pat_tok;

    call_across(f, "s-quorum", &doc, &pat, &pat_tok);
    smp = callkit_sampler_start(doc.rc, pat.rc);
    natscluster_stop_one(&f->nats, 2);
    t = join_until(f, 1, "welcome", 20000);
    print_message("one NATS server of 3 down: a new join welcomed after %llu ms\n",
                  (unsigned long long)t);
    natscluster_stop_one(&f->nats, 1);
    t = join_until(f, 1, "token_claim_unavailable", 10000);
    print_message("two down: new joins refused token_claim_unavailable (after %llu ms)\n",
                  (unsigned long long)t);
    usleep(3000000);
    assert_int_equal(natscluster_restart_one(&f->nats, 1), 0);
    assert_int_equal(natscluster_restart_one(&f->nats, 2), 0);
    t = join_until(f, 1, "welcome", 30000);
    print_message("quorum back: a new join welcomed after %llu ms\n", (unsigned long long)t);
    callkit_sampler_stop(smp);
    print_message("longest pause in received audio meanwhile: %llu ms, %llu ms\n",
                  (unsigned long long)smp->gap_ms[0], (unsigned long long)smp->gap_ms[1]);
    assert_true(smp->gap_ms[0] < GAP_MAX_MS);
    assert_true(smp->gap_ms[1] < GAP_MAX_MS);
    free(smp);
    callkit_free(&doc);
    callkit_free(&pat);
    free(pat_tok);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_meet_across_replicas_and_tokens_spent_everywhere,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_killed_mid_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_hands_visits_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edge_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nats_servers_lost, setup, teardown),
    };

    return world_run_tests("signal_cluster", tests, sizeof(tests) / sizeof(tests[0]), NULL,
                           NULL);
}
