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
#include <pthread.h>
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

#include "harness.h"
#include "quietroom/base/limits.h"
#include "refclient.h"
#include "world.h"

#define WAIT_MS 5000
#define READY_MS 10000
#define DOWN_MS 2000          /* how long signaling stays dead */
#define GAP_MAX_MS 1000       /* the longest pause in received audio allowed */
#define SAMPLE_MS 20

struct party {
    struct wsconn *ws;
    char id[16];
    char resume[128];
    struct refclient *rc;
};

/* Watches both clients' received RTP; the longest time either went
 * without a new packet is the gap. */
struct sampler {
    pthread_t thread;
    struct refclient *rc[2];
    volatile int stop;
    uint64_t gap_ms[2];
    uint64_t received[2];
};

static void *sampler_run(void *arg)
{
    struct sampler *s = arg;
    uint64_t last_change[2] = {now_ms(), now_ms()};

    while (!s->stop) {
        for (int i = 0; i < 2; i++) {
            struct refclient_stats st;
            uint64_t t = now_ms();

            refclient_get_stats(s->rc[i], &st);
            if (st.rtp_received != s->received[i]) {
                s->received[i] = st.rtp_received;
                last_change[i] = t;
            } else if (t - last_change[i] > s->gap_ms[i]) {
                s->gap_ms[i] = t - last_change[i];
            }
        }
        usleep(SAMPLE_MS * 1000);
    }
    return NULL;
}

static json_t *expect(struct wsconn *c, const char *type)
{
    return world_expect(c, type, WAIT_MS);
}

static void join(struct world *w, struct party *p, const char *token, const char *want_state)
{
    json_t *m;

    p->ws = world_join_token(w, token, &m);
    assert_string_equal(world_str(m, "type"), "welcome");
    assert_string_equal(world_str(m, "state"), want_state);
    snprintf(p->id, sizeof(p->id), "%s", world_str(m, "participant"));
    snprintf(p->resume, sizeof(p->resume), "%s", world_str(m, "resume"));
    assert_true(strlen(p->resume) > 20);
    json_decref(m);
}

/* The clinician admits the patient once it shows in the lobby. */
static void admit(struct party *doc, struct party *pat)
{
    for (;;) {
        json_t *m = expect(doc->ws, "lobby");
        size_t n = json_array_size(json_object_get(m, "waiting"));

        json_decref(m);
        if (n == 1)
            break;
    }
    wsconn_send_json(doc->ws, json_pack("{s:s,s:s}", "type", "admit", "participant", pat->id));
    json_decref(expect(pat->ws, "admitted"));
    json_decref(expect(pat->ws, "peer"));
    json_decref(expect(doc->ws, "peer"));
}

static struct refclient *client(bool dtls_client, double tone)
{
    struct refclient_config cfg = {.local_address = "127.0.0.1", .controlling = true,
                                   .regular_nomination = true, .dtls_client = dtls_client,
                                   .tone_hz = tone};
    char err[192];
    struct refclient *rc = refclient_new(&cfg, err, sizeof(err));

    if (rc == NULL)
        fail_msg("refclient_new: %s", err);
    return rc;
}

/* Offer from `from`, answer from `to`, both through signaling's rewrite. */
static void negotiate(struct party *from, struct party *to)
{
    char *buf = malloc(QR_SDP_MAX), err[192];
    const char *sdp;
    json_t *m;

    assert_non_null(buf);
    assert_true(refclient_create_offer(from->rc, buf, QR_SDP_MAX) > 0);
    wsconn_send_json(from->ws,
                     json_pack("{s:s,s:s,s:s}", "type", "offer", "to", to->id, "sdp", buf));
    m = expect(to->ws, "offer");
    sdp = world_str(m, "sdp");
    if (refclient_set_remote_description(to->rc, false, sdp, strlen(sdp), err, sizeof(err)) != 0)
        fail_msg("offer: %s", err);
    json_decref(m);
    assert_true(refclient_create_answer(to->rc, buf, QR_SDP_MAX) > 0);
    wsconn_send_json(to->ws,
                     json_pack("{s:s,s:s,s:s}", "type", "answer", "to", from->id, "sdp", buf));
    m = expect(from->ws, "answer");
    sdp = world_str(m, "sdp");
    if (refclient_set_remote_description(from->rc, true, sdp, strlen(sdp), err, sizeof(err)) != 0)
        fail_msg("answer: %s", err);
    json_decref(m);
    free(buf);
}

static void connect_media(struct party *p[2])
{
    char err[192];

    for (int i = 0; i < 2; i++)
        assert_int_equal(refclient_start(p[i]->rc), 0);
    for (int i = 0; i < 2; i++) {
        if (refclient_wait_ready(p[i]->rc, READY_MS, err, sizeof(err)) != 0)
            fail_msg("client %d: %s", i, err);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(refclient_start_media(p[i]->rc), 0);
    for (uint64_t until = now_ms() + WAIT_MS;; usleep(50000)) {
        struct refclient_stats a, b;

        refclient_get_stats(p[0]->rc, &a);
        refclient_get_stats(p[1]->rc, &b);
        if (a.rtp_received > 0 && b.rtp_received > 0)
            break;
        if (now_ms() > until)
            fail_msg("no audio both ways through the relay");
    }
}

static void kill_signaling(struct world *w)
{
    int status;

    assert_int_equal(kill(w->sig.pid, SIGKILL), 0);
    assert_int_equal(waitpid(w->sig.pid, &status, 0), w->sig.pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    w->sig.pid = 0;
}

/* Presents p's resume secret on a new connection: back, still `state`. */
static void resume(struct world *w, struct party *p, const char *state)
{
    json_t *m;

    wsconn_free(p->ws);
    p->ws = world_connect(w);
    wsconn_send_json(p->ws, json_pack("{s:s,s:s}", "type", "resume", "resume", p->resume));
    m = wsconn_recv(p->ws, WAIT_MS);
    assert_non_null(m);
    if (strcmp(world_str(m, "type"), "resumed") != 0)
        fail_msg("resume refused after the restart: %s %s", world_str(m, "type"),
                 world_str(m, "code"));
    assert_string_equal(world_str(m, "participant"), p->id);
    assert_string_equal(world_str(m, "state"), state);
    json_decref(m);
}

static uint64_t received(struct refclient *rc)
{
    struct refclient_stats st;

    refclient_get_stats(rc, &st);
    return st.rtp_received;
}

static void test_kill9_mid_call_resumes_with_media_flowing(void **state)
{
    struct world *w = *state;
    struct party doc = {0}, pat = {0}, *both[2] = {&doc, &pat};
    char *doc_tok = mint_token(&w->sig, "s-restart", "clinician", "dr-1", NULL);
    char *pat_tok = mint_token(&w->sig, "s-restart", "patient", "pt-1", NULL);
    struct sampler smp = {0};
    uint64_t t_kill, before;
    json_t *m;

    join(w, &doc, doc_tok, "admitted");
    join(w, &pat, pat_tok, "waiting");
    admit(&doc, &pat);
    doc.rc = client(true, 440.0);
    pat.rc = client(false, 880.0);
    negotiate(&doc, &pat);
    connect_media(both);
    smp.rc[0] = doc.rc;
    smp.rc[1] = pat.rc;
    assert_int_equal(pthread_create(&smp.thread, NULL, sampler_run, &smp), 0);
    usleep(500000);

    t_kill = now_ms();
    kill_signaling(w);
    usleep(DOWN_MS * 1000);
    assert_int_equal(signal_restart(&w->sig), 0);
    print_message("signaling back %llu ms after kill -9\n",
                  (unsigned long long)(now_ms() - t_kill));

    /* A token spent before the crash: no new seat. */
    wsconn_free(world_join_token(w, pat_tok, &m));
    assert_string_equal(world_str(m, "type"), "error");
    assert_string_equal(world_str(m, "code"), "token_replayed");
    json_decref(m);

    resume(w, &doc, "admitted");
    resume(w, &pat, "admitted");
    before = received(pat.rc);
    usleep(1000000);
    assert_true(received(pat.rc) > before + 20);

    smp.stop = 1;
    pthread_join(smp.thread, NULL);
    print_message("longest pause in received audio: clinician %llu ms, patient %llu ms\n",
                  (unsigned long long)smp.gap_ms[0], (unsigned long long)smp.gap_ms[1]);
    assert_true(smp.gap_ms[0] < GAP_MAX_MS);
    assert_true(smp.gap_ms[1] < GAP_MAX_MS);

    /* The restored visit is whole: ending it revokes its pair at the relay. */
    wsconn_send_json(doc.ws, json_pack("{s:s}", "type", "end"));
    m = expect(pat.ws, "ended");
    json_decref(m);
    usleep(800000);
    before = received(pat.rc);
    usleep(1000000);
    assert_true(received(pat.rc) - before < 5);

    for (int i = 0; i < 2; i++) {
        refclient_free(both[i]->rc);
        wsconn_free(both[i]->ws);
    }
    free(doc_tok);
    free(pat_tok);
}

/* Restarted with nobody coming back: the visit is read back, and once the
 * resume grace passes its people are dropped and it ends ("empty"). */
static void test_nobody_back_ends_after_grace(void **state)
{
    struct world *w = *state;
    struct party doc = {0};
    char *tok = mint_token(&w->sig, "s-gone", "clinician", "dr-2", NULL);
    char *resp;
    json_t *m;

    join(w, &doc, tok, "admitted");
    kill_signaling(w);
    wsconn_free(doc.ws);
    assert_int_equal(signal_restart(&w->sig), 0);
    resp = http_get(w->sig.port, "/healthz");
    assert_non_null(strstr(resp, "\"sessions\":1"));
    free(resp);
    for (uint64_t until = now_ms() + 5000; now_ms() < until; usleep(100000)) {
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

static int setup(void **state)
{
    static const char *const extra[] = {"resume-grace = 2", NULL};
    struct world_opts o = {.signal_extra = extra};

    return world_setup(state, &o);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_mid_call_resumes_with_media_flowing, setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_nobody_back_ends_after_grace, setup,
                                        world_teardown),
    };

    return world_run_tests("signal_restart", tests, sizeof(tests) / sizeof(tests[0]), NULL,
                           NULL);
}
