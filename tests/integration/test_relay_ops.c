/* The relay's operator side against the running binary: /metrics during a
 * real session (and nothing identifying in it), /healthz and /readyz, the
 * drain on SIGTERM, and the reload of secrets on SIGHUP. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "world.h"
#include "quietroom/base/bytes.h"
#include "quietroom/base/clock.h"

#define WAIT_MS 1000
#define SILENCE_MS 300
#define OPS_TOKEN "operator-token-0123456789"
#define AUTH "Authorization: Bearer " OPS_TOKEN "\r\n"

struct pair {
    json_t *creds;
    struct udp_peer a, b;
};

/* Each test starts its own relay, serving ops with the token, and stops
 * it; a test may stop the relay itself first (world_stop then only checks
 * how it exited). */
static int setup(void **state)
{
    static const char *const extra[] = {"--workers", "2", NULL};
    struct world_opts o = {.no_signal = true, .ops_token = OPS_TOKEN, .relay_extra = extra};
    if (world_setup(state, &o) != 0)
        return -1;
    return ((struct world *)*state)->relay.ops_port > 0 ? 0 : -1;
}

static struct relay_proc *relay_of(void **state)
{
    struct world *w = *state;

    return &w->relay;
}

/* A nominated check that must be answered with success. */
static void bind_ok(struct udp_peer *p, const union netaddr *relay, const char *ufrag,
                    const char *pwd)
{
    struct check c = {.ufrag = ufrag, .pwd = pwd, .nominate = true};
    uint8_t raw[2048];
    struct stun_msg m;

    assert_int_equal(peer_check(p, relay, &c, &m, raw, WAIT_MS), 1);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
}

/* A nominated check that must get no answer at all. */
static void bind_ignored(struct udp_peer *p, const union netaddr *relay, const char *ufrag,
                         const char *pwd)
{
    struct check c = {.ufrag = ufrag, .pwd = pwd, .nominate = true};
    uint8_t raw[2048];
    struct stun_msg m;

    assert_int_equal(peer_check(p, relay, &c, &m, raw, SILENCE_MS), 0);
}

static void pair_open(struct relay_proc *r, struct pair *pr, const char *sid)
{
    pr->creds = ctl_creds(r, sid, 1);
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

static size_t rtp(uint8_t *buf, uint16_t seq, uint32_t ssrc)
{
    memset(buf, 0, 172);
    buf[0] = 0x80;
    buf[1] = 111;
    bytes_put16(buf + 2, seq);
    bytes_put32(buf + 4, seq * 960u);
    bytes_put32(buf + 8, ssrc);
    return 172;
}

/* Sends from one peer and checks the other receives it. */
static void forwards(struct relay_proc *r, struct udp_peer *from, struct udp_peer *to,
                     uint16_t seq, uint32_t ssrc)
{
    uint8_t pkt[256], got[256];

    assert_int_equal(peer_send(from, &r->listen[0], pkt, rtp(pkt, seq, ssrc)), 0);
    assert_int_equal(peer_recv(to, got, sizeof(got), WAIT_MS, NULL), 172);
}

/* The value of one sample line "name value" (labels included in name). */
static double sample(const char *metrics, const char *name)
{
    char want[256];
    const char *p;

    snprintf(want, sizeof(want), "\n%s ", name);
    p = strstr(metrics, want);
    if (p == NULL)
        fail_msg("no sample %s in /metrics", name);
    return strtod(p + strlen(want), NULL);
}

static char *scrape(struct relay_proc *r)
{
    char *resp = http_request(r->ops_port, "/metrics", AUTH);

    assert_int_equal(http_status(resp), 200);
    assert_non_null(strstr(resp, "content-type: text/plain; version=0.0.4"));
    return resp;
}

/* A scrape once name has reached want, or the last one after WAIT_MS: a
 * worker counts a packet after sending it, so the peer may have it a
 * moment before /metrics does. */
static char *scrape_until(struct relay_proc *r, const char *name, double want)
{
    char *m = scrape(r);

    for (uint64_t until = clock_mono_ms() + WAIT_MS;
         sample(m, name) < want && clock_mono_ms() < until; m = scrape(r)) {
        free(m);
        usleep(10000);
    }
    return m;
}

static int get_status(struct relay_proc *r, const char *path)
{
    char *resp = http_get(r->ops_port, path);
    int status = http_status(resp);

    free(resp);
    return status;
}

/* Nothing that names a person, a session or an address. */
static void assert_anonymous(const char *text, const struct pair *pr, const char *sid)
{
    char addr[NETADDR_STRLEN];

    assert_null(strstr(text, sid));
    for (int side = 0; side < 2; side++) {
        assert_null(strstr(text, creds_ufrag(pr->creds, 0, side)));
        assert_null(strstr(text, creds_pwd(pr->creds, 0, side)));
    }
    netaddr_format(&pr->a.local, addr, sizeof(addr));
    assert_null(strstr(text, addr));
    assert_null(strstr(text, "127.0.0.1"));
    assert_null(strstr(text, OPS_TOKEN));
}

static void test_metrics_reflect_a_session(void **state)
{
    struct relay_proc *r = relay_of(state);
    struct pair pr;
    char *m0, *m1, *m2;
    double fwd0;

    assert_int_equal(get_status(r, "/metrics"), 401);
    assert_int_equal(get_status(r, "/healthz"), 200);
    assert_int_equal(get_status(r, "/readyz"), 200);
    m0 = scrape(r);
    fwd0 = sample(m0, "quietroom_relay_packets_forwarded_total");

    pair_open(r, &pr, "ops-metrics-visit");
    /* 100 packets a->b with 10 missing (10 % loss), 60 b->a intact. */
    for (uint16_t s = 0; s < 100; s++) {
        if (s % 10 != 5)
            forwards(r, &pr.a, &pr.b, s, 0x1111);
    }
    for (uint16_t s = 0; s < 60; s++)
        forwards(r, &pr.b, &pr.a, s, 0x2222);
    m1 = scrape_until(r, "quietroom_relay_packets_forwarded_total", fwd0 + 150);
    assert_true(sample(m1, "quietroom_relay_packets_forwarded_total") == fwd0 + 150);
    assert_true(sample(m1, "quietroom_relay_sessions_active") == 1);
    assert_true(sample(m1, "quietroom_relay_links_active") == 1);
    assert_true(sample(m1, "quietroom_relay_legs_active") == 2);
    assert_true(sample(m1, "quietroom_relay_stun_requests_total{result=\"success\"}") == 2);
    assert_true(sample(m1, "quietroom_relay_ready") == 1);
    /* Live loss: one stream at 0, one near 10 %. */
    assert_true(sample(m1, "quietroom_relay_rtp_active_streams{loss_le=\"0.001\"}") == 1);
    assert_true(sample(m1, "quietroom_relay_rtp_active_streams{loss_le=\"0.05\"}") == 1);
    assert_true(sample(m1, "quietroom_relay_rtp_active_streams{loss_le=\"0.1\"}") == 2);
    assert_true(sample(m1, "quietroom_relay_rtp_active_streams{loss_le=\"+Inf\"}") == 2);
    assert_true(sample(m1, "quietroom_relay_worker_busy_seconds_total{worker=\"0\"}") +
                    sample(m1, "quietroom_relay_worker_busy_seconds_total{worker=\"1\"}") >
                0);
    assert_anonymous(m1, &pr, "ops-metrics-visit");

    /* Ending the session puts both streams' loss in the histogram. */
    json_decref(relay_call(r, "revoke", "ops-metrics-visit"));
    for (uint64_t until = clock_mono_ms() + 2000; clock_mono_ms() < until;) {
        m2 = scrape(r);
        if (sample(m2, "quietroom_relay_legs_active") == 0)
            break;
        free(m2);
        m2 = NULL;
        usleep(50000);
    }
    assert_non_null(m2);
    assert_true(sample(m2, "quietroom_relay_rtp_loss_ratio_count") == 2);
    assert_true(sample(m2, "quietroom_relay_rtp_loss_ratio_bucket{le=\"0.001\"}") == 1);
    assert_true(sample(m2, "quietroom_relay_rtp_loss_ratio_bucket{le=\"0.1\"}") == 2);
    assert_true(sample(m2, "quietroom_relay_sessions_active") == 0);
    assert_anonymous(m2, &pr, "ops-metrics-visit");
    free(m0);
    free(m1);
    free(m2);
    pair_close(&pr);
    assert_int_equal(relay_cleanup(r), 0);
}

/* SIGTERM: readiness goes, the call in progress goes on (and may add a
 * link, as an ICE restart does), a new session is ignored; once the call is
 * over the relay exits by itself. */
static void test_drain(void **state)
{
    struct relay_proc *r = relay_of(state);
    struct pair pr, other;
    json_t *restart, *fresh, *stats;
    json_int_t left;
    char *m;

    pair_open(r, &pr, "ops-drain-visit");
    stats = relay_call(r, "stats", NULL);
    assert_non_null(json_object_get(stats, "stats"));
    assert_null(json_object_get(json_object_get(stats, "stats"), "drain_left_s"));
    json_decref(stats);
    kill(r->pid, SIGTERM);
    for (uint64_t until = clock_mono_ms() + 2000;
         get_status(r, "/readyz") != 503 && clock_mono_ms() < until;)
        usleep(20000);
    assert_int_equal(get_status(r, "/readyz"), 503);
    assert_int_equal(get_status(r, "/healthz"), 200);
    m = scrape(r);
    assert_true(sample(m, "quietroom_relay_draining") == 1);
    assert_true(sample(m, "quietroom_relay_ready") == 0);
    free(m);
    /* Signaling reads how long the calls have left here (drain-timeout
     * 3600 s by default) to move them before then. */
    stats = relay_call(r, "stats", NULL);
    assert_true(json_is_true(json_object_get(json_object_get(stats, "stats"), "draining")));
    left = json_integer_value(json_object_get(json_object_get(stats, "stats"), "drain_left_s"));
    assert_true(left >= 3590 && left <= 3600);
    json_decref(stats);
    forwards(r, &pr.a, &pr.b, 1, 0x1111);
    forwards(r, &pr.b, &pr.a, 1, 0x2222);

    /* A new session is refused, silently, and counted. */
    fresh = ctl_creds(r, "ops-drain-new", 1);
    assert_int_equal(peer_open(&other.a, "127.0.0.1:0"), 0);
    bind_ignored(&other.a, &r->listen[0], creds_ufrag(fresh, 0, 0), creds_pwd(fresh, 0, 0));
    assert_int_equal(relay_stat(r, "stun", "ignored_draining"), 1);
    peer_close(&other.a);
    json_decref(fresh);

    /* The session in progress may still add a link. */
    restart = ctl_creds(r, "ops-drain-visit", 1);
    bind_ok(&pr.a, &r->listen[0], creds_ufrag(restart, 0, 0), creds_pwd(restart, 0, 0));
    bind_ok(&pr.b, &r->listen[0], creds_ufrag(restart, 0, 1), creds_pwd(restart, 0, 1));
    forwards(r, &pr.a, &pr.b, 2, 0x1111);
    json_decref(restart);

    /* The call ends: the relay leaves on its own, cleanly. */
    assert_int_equal(relay_wait(r, 300), -2);
    json_decref(relay_call(r, "revoke", "ops-drain-visit"));
    assert_int_equal(relay_wait(r, 3000), 0);
    pair_close(&pr);
    assert_int_equal(relay_cleanup(r), 0);
}

/* A second SIGTERM does not wait for the calls. */
static void test_second_sigterm_stops_at_once(void **state)
{
    struct relay_proc *r = relay_of(state);
    struct pair pr;
    uint64_t t0;

    pair_open(r, &pr, "ops-stop-visit");
    kill(r->pid, SIGTERM);
    usleep(100000);
    assert_int_equal(relay_wait(r, 0), -2);
    t0 = clock_mono_ms();
    kill(r->pid, SIGTERM);
    assert_int_equal(relay_wait(r, 2000), 0);
    assert_true(clock_mono_ms() - t0 < 1000);
    pair_close(&pr);
    assert_int_equal(relay_cleanup(r), 0);
}

static void write_secret(const char *path, const char *lines)
{
    char tmp[HARNESS_PATH + 8];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.new", path);
    f = fopen(tmp, "w");
    assert_non_null(f);
    assert_true(fputs(lines, f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(tmp, 0600), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* Waits until the audit log has n "relay.reload" records; returns the last. */
static char *reload_record(struct relay_proc *r, int n)
{
    for (uint64_t until = clock_mono_ms() + 3000; clock_mono_ms() < until; usleep(20000)) {
        char *log = read_text(r->audit), *p = log, *last = NULL;
        int seen = 0;

        while (p != NULL && (p = strstr(p, "\"relay.reload\"")) != NULL) {
            seen++;
            last = p++;
        }
        if (seen >= n) {
            char *end = strchr(last, '\n');
            char *rec = strndup(last, end ? (size_t)(end - last) : strlen(last));

            free(log);
            return rec;
        }
        free(log);
    }
    fail_msg("no relay.reload record #%d in the audit log", n);
    return NULL;
}

/* The key id a ufrag was made with. */
static int kid_of(const char *ufrag)
{
    struct creds_leg cl;

    assert_int_equal(creds_decode_ufrag(ufrag, strlen(ufrag), &cl), CREDS_OK);
    return cl.kid;
}

/* Credentials for sid from a secret file of our own. */
static json_t *creds_from(const char *secret_file, const char *sid)
{
    char *argv[] = {QR_CTL_BIN, "creds", "--secret-file", (char *)secret_file, "--session",
                    (char *)sid, NULL};
    json_error_t jerr;
    json_t *doc;
    int code;
    char *out = run_command(argv, &code);

    assert_int_equal(code, 0);
    doc = json_loads(out, 0, &jerr);
    free(out);
    assert_non_null(doc);
    return doc;
}

#define KEY7 "7 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\n"

/* SIGHUP swaps the secrets: a second key id (the overlap of a rotation),
 * then only the new one. Calls in progress keep forwarding throughout; a
 * broken secret file changes nothing. */
static void test_reload_rotates_secrets(void **state)
{
    struct relay_proc *r = relay_of(state);
    struct pair old_call, new_call;
    char *text, lines[512], old_file[HARNESS_PATH + 8], *rec;
    json_t *late;

    pair_open(r, &old_call, "ops-reload-old");
    assert_int_equal(kid_of(creds_ufrag(old_call.creds, 0, 0)), 1);
    text = read_text(r->secret);
    snprintf(old_file, sizeof(old_file), "%s.old", r->secret);
    write_secret(old_file, text);

    /* Step 1, the overlap: both keys, the new one first, so new credentials
     * come from key 7 (keyring.h: the first key signs). */
    snprintf(lines, sizeof(lines), "%s%s", KEY7, text);
    write_secret(r->secret, lines);
    kill(r->pid, SIGHUP);
    rec = reload_record(r, 1);
    assert_non_null(strstr(rec, "\"key_ids\":[7,1]"));
    assert_null(strstr(rec, "0f1e2d3c"));
    free(rec);
    pair_open(r, &new_call, "ops-reload-new");
    assert_int_equal(kid_of(creds_ufrag(new_call.creds, 0, 0)), 7);
    forwards(r, &old_call.a, &old_call.b, 1, 0x1111);
    forwards(r, &new_call.a, &new_call.b, 1, 0x3333);

    /* A broken file: refused, nothing changes. */
    write_secret(r->secret, "this is not a key\n");
    kill(r->pid, SIGHUP);
    rec = reload_record(r, 2);
    assert_non_null(strstr(rec, "secret file"));
    free(rec);
    forwards(r, &old_call.a, &old_call.b, 2, 0x1111);

    /* Step 2: key 7 alone. Key-1 credentials no longer bind; the call that
     * bound with them before goes on. */
    write_secret(r->secret, KEY7);
    kill(r->pid, SIGHUP);
    free(reload_record(r, 3));
    /* The control endpoint now knows key 7 only: so must its client. */
    assert_int_equal(keyring_load(r->secret, &r->keys, lines, sizeof(lines)), 0);
    late = creds_from(old_file, "ops-reload-late");
    bind_ignored(&new_call.a, &r->listen[0], creds_ufrag(late, 0, 0), creds_pwd(late, 0, 0));
    assert_true(relay_stat(r, "stun", "ignored_credentials") >= 1);
    forwards(r, &old_call.a, &old_call.b, 3, 0x1111);
    forwards(r, &new_call.b, &new_call.a, 2, 0x4444);
    json_decref(late);
    free(text);
    pair_close(&old_call);
    pair_close(&new_call);
    assert_int_equal(relay_cleanup(r), 0);
}

#define OPS(name) cmocka_unit_test_setup_teardown(name, setup, world_teardown)

int main(void)
{
    struct CMUnitTest tests[] = {
        OPS(test_metrics_reflect_a_session),
        OPS(test_drain),
        OPS(test_second_sigterm_stops_at_once),
        OPS(test_reload_rotates_secrets),
    };

    return world_run_tests("test_relay_ops", tests, sizeof(tests) / sizeof(tests[0]), NULL,
                           NULL);
}
