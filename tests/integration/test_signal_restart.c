/* Signaling killed in the middle of a call (kill -9) and started again on
 * the same state directory. Two reference native clients (libnice,
 * OpenSSL DTLS, libsrtp2, Opus) are in a call through the relay:
 *   - their audio never stops while signaling is dead or restarting (a
 *     sampler thread watches both receive counters throughout);
 *   - both resume on the new process with the secrets the old one gave
 *     them, and are still admitted: no readmission;
 *   - a token spent before the crash opens no seat after it;
 *   - the clinician can still end the visit, and the relay stops the
 *     restored pair's media: the record kept what revocation needs.
 * Without the state store the resumes are refused and the used token is
 * welcomed again: every check below fails. */
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
#include "world.h"

#define WAIT_MS 5000
#define DOWN_MS 2000          /* how long signaling stays dead */
#define GAP_MAX_MS 1000       /* the longest pause in received audio allowed */

static void kill_signaling(struct world *w)
{
    int status;

    assert_int_equal(kill(w->sig.pid, SIGKILL), 0);
    assert_int_equal(waitpid(w->sig.pid, &status, 0), w->sig.pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    w->sig.pid = 0;
}

static void test_kill9_mid_call_resumes_with_media_flowing(void **state)
{
    struct world *w = *state;
    struct callkit_party doc = {.port = w->sig.port}, pat = {.port = w->sig.port};
    char *doc_tok = mint_token(&w->sig, "s-restart", "clinician", "dr-1", NULL);
    char *pat_tok = mint_token(&w->sig, "s-restart", "patient", "pt-1", NULL);
    struct callkit_sampler *smp;
    uint64_t t_kill, before;
    json_t *m;

    callkit_join(&doc, doc_tok, "admitted");
    callkit_join(&pat, pat_tok, "waiting");
    callkit_admit(&doc, &pat);
    callkit_media(&doc, &pat);
    smp = callkit_sampler_start(doc.rc, pat.rc);
    usleep(500000);

    t_kill = now_ms();
    kill_signaling(w);
    usleep(DOWN_MS * 1000);
    assert_int_equal(signal_restart(&w->sig), 0);
    print_message("signaling back %llu ms after kill -9\n",
                  (unsigned long long)(now_ms() - t_kill));

    /* A token used before the crash takes its own seat back (not a new
     * one, still admitted); its new resume secret replaces the old. */
    wsconn_free(world_join_token(w, pat_tok, &m));
    assert_string_equal(world_str(m, "type"), "welcome");
    assert_true(json_is_true(json_object_get(m, "rejoined")));
    assert_string_equal(world_str(m, "participant"), pat.id);
    assert_string_equal(world_str(m, "state"), "admitted");
    snprintf(pat.resume, sizeof(pat.resume), "%s", world_str(m, "resume"));
    json_decref(m);

    callkit_resume(&doc, "admitted", 0);
    callkit_resume(&pat, "admitted", 0);
    before = callkit_received(pat.rc);
    usleep(1000000);
    assert_true(callkit_received(pat.rc) > before + 20);

    callkit_sampler_stop(smp);
    print_message("longest pause in received audio: clinician %llu ms, patient %llu ms\n",
                  (unsigned long long)smp->gap_ms[0], (unsigned long long)smp->gap_ms[1]);
    assert_true(smp->gap_ms[0] < GAP_MAX_MS);
    assert_true(smp->gap_ms[1] < GAP_MAX_MS);
    free(smp);

    /* The restored visit is whole: ending it revokes its pair at the relay. */
    wsconn_send_json(doc.ws, json_pack("{s:s}", "type", "end"));
    json_decref(callkit_expect(pat.ws, "ended"));
    usleep(800000);
    before = callkit_received(pat.rc);
    usleep(1000000);
    assert_true(callkit_received(pat.rc) - before < 5);

    callkit_free(&doc);
    callkit_free(&pat);
    free(doc_tok);
    free(pat_tok);
}

/* Restarted with nobody coming back: the visit is read back, once the
 * resume grace passes its people are dropped, and once idle-timeout (5 s
 * here) has passed with nobody coming back by their link it ends
 * ("empty"). */
static void test_nobody_back_ends_after_grace(void **state)
{
    struct world *w = *state;
    struct callkit_party doc = {.port = w->sig.port};
    char *tok = mint_token(&w->sig, "s-gone", "clinician", "dr-2", NULL);
    char *resp;
    json_t *m;

    callkit_join(&doc, tok, "admitted");
    kill_signaling(w);
    wsconn_free(doc.ws);
    assert_int_equal(signal_restart(&w->sig), 0);
    resp = http_get(w->sig.port, "/healthz");
    assert_non_null(strstr(resp, "\"sessions\":1"));
    free(resp);
    for (uint64_t until = now_ms() + 12000; now_ms() < until; usleep(100000)) {
        resp = http_get(w->sig.port, "/healthz");
        if (strstr(resp, "\"sessions\":0") != NULL) {
            free(resp);
            break;
        }
        free(resp);
    }
    resp = http_get(w->sig.port, "/healthz");
    assert_non_null(strstr(resp, "\"sessions\":0"));
    free(resp);
    /* Ended: the secret no longer resumes. */
    doc.ws = world_connect(w);
    wsconn_send_json(doc.ws, json_pack("{s:s,s:s}", "type", "resume", "resume", doc.resume));
    m = wsconn_recv(doc.ws, WAIT_MS);
    assert_string_equal(world_str(m, "code"), "resume_invalid");
    json_decref(m);
    wsconn_free(doc.ws);
    free(tok);
}

static int teardown(void **state)
{
    callkit_stop_samplers();
    return world_teardown(state);
}

static int setup(void **state)
{
    static const char *const extra[] = {"resume-grace = 2", "idle-timeout = 5", NULL};
    struct world_opts o = {.signal_extra = extra};

    return world_setup(state, &o);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_mid_call_resumes_with_media_flowing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nobody_back_ends_after_grace, setup,
                                        teardown),
    };

    return world_run_tests("signal_restart", tests, sizeof(tests) / sizeof(tests[0]), NULL,
                           NULL);
}
