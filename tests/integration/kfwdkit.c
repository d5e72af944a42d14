/* Shared by the kernel-path tests; see kfwdkit.h. */
#include "kfwdkit.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define KFWD_READY_MS 10000

/* Reasons that say this machine cannot run the program; any other reason
 * is the relay's fault. */
static const char *const kfwd_machine_reasons[] = {"not_built", "unsupported", "no_privileges",
                                                   NULL};

static json_t *kfwd__path_of(json_t *resp)
{
    json_t *p = json_object_get(json_object_get(resp, "stats"), "kernel_path");

    return p != NULL ? p : json_object_get(resp, "kernel_path");
}

static bool kfwd__ci(void)
{
    const char *ci = getenv("CI");

    return ci != NULL && strcmp(ci, "true") == 0;
}

static int kfwd__unavailable(const char *test, const char *why)
{
    if (kfwd__ci()) {
        fprintf(stderr, "%s: FAIL: the kernel path cannot run here (%s), and CI=true: a "
                        "skipped check must not pass in CI\n", test, why);
        return 1;
    }
    fprintf(stderr, "%s: SKIP: the kernel path cannot run here: %s\n", test, why);
    return KFWD_SKIP;
}

int kfwd_gate(const char *test)
{
    static const char *const listen[] = {"127.0.0.1:0", NULL};
    static const char *const extra[] = {"--kernel-forward", "auto", NULL};
    struct relay_proc r;
    const char *reason;
    json_t *resp, *path;
    char why[128];
    int rc = 1;

    if (geteuid() != 0)
        return kfwd__unavailable(test, "not root (CAP_BPF and CAP_NET_ADMIN are needed)");
    if (relay_start(&r, listen, extra) != 0) {
        fprintf(stderr, "%s: FAIL: a relay with --kernel-forward auto did not start\n", test);
        if (r.exit_status == 0)
            r.exit_status = -1; /* so that relay_cleanup prints its log */
        relay_cleanup(&r);
        return 1;
    }
    resp = relay_call(&r, "stats", NULL);
    path = kfwd__path_of(resp);
    reason = json_string_value(json_object_get(path, "reason"));
    if (path == NULL) {
        fprintf(stderr, "%s: FAIL: control stats has no kernel_path\n", test);
    } else if (json_is_true(json_object_get(path, "active"))) {
        rc = 0;
    } else {
        for (int i = 0; kfwd_machine_reasons[i] != NULL && reason != NULL; i++) {
            if (strcmp(reason, kfwd_machine_reasons[i]) == 0) {
                snprintf(why, sizeof(why), "--kernel-forward auto fell back: %s", reason);
                rc = kfwd__unavailable(test, why);
            }
        }
        if (rc == 1 && !kfwd__ci())
            fprintf(stderr, "%s: FAIL: --kernel-forward auto fell back for reason \"%s\", "
                            "which is no limit of this machine\n", test,
                    reason ? reason : "(none)");
    }
    json_decref(resp);
    if (relay_cleanup(&r) != 0)
        rc = 1;
    return rc;
}

json_t *kfwd_path(struct relay_proc *r)
{
    json_t *resp = relay_call(r, "stats", NULL), *path;

    assert_non_null(resp);
    path = kfwd__path_of(resp);
    if (path == NULL)
        fail_msg("control stats has no kernel_path");
    json_incref(path);
    json_decref(resp);
    return path;
}

long long kfwd_count(struct relay_proc *r, const char *name)
{
    json_t *path = kfwd_path(r), *v = json_object_get(path, name);
    long long n;

    if (!json_is_integer(v))
        fail_msg("kernel_path.%s is not an integer", name);
    n = json_integer_value(v);
    json_decref(path);
    return n;
}

bool kfwd_active(struct relay_proc *r)
{
    json_t *path = kfwd_path(r);
    bool on = json_is_true(json_object_get(path, "active"));

    json_decref(path);
    return on;
}

char *kfwd_scrape(struct relay_proc *r, const char *token)
{
    char auth[256];
    char *resp;

    assert_true(r->ops_port > 0);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
    resp = http_request(r->ops_port, "/metrics", auth);
    assert_int_equal(http_status(resp), 200);
    return resp;
}

double kfwd_sample(const char *metrics, const char *name)
{
    char want[256];
    const char *p;

    snprintf(want, sizeof(want), "\n%s ", name);
    p = strstr(metrics, want);
    return p != NULL ? strtod(p + strlen(want), NULL) : -1;
}

void kfwd_call_client(struct kfwd_call *c, int side, const char *local)
{
    struct refclient_config cfg = {
        .local_address = local,
        .controlling = true,
        .dtls_client = side == 0,
        .tone_hz = side == 0 ? KFWD_TONE_A : KFWD_TONE_B,
    };
    char err[256];

    if ((c->rc[side] = refclient_new(&cfg, err, sizeof(err))) == NULL)
        fail_msg("refclient_new on %s: %s", local, err);
}

/* Points side at the relay address: the leg's credentials, the other
 * side's fingerprint, the relay as the one remote candidate. */
static void kfwd__aim(struct kfwd_call *c, int side, const union netaddr *relay)
{
    assert_int_equal(refclient_set_remote(c->rc[side], creds_ufrag(c->creds, 0, side),
                                          creds_pwd(c->creds, 0, side),
                                          refclient_fingerprint(c->rc[!side])),
                     0);
    assert_int_equal(refclient_add_remote_netaddr(c->rc[side], relay), 0);
}

void kfwd_call_connect(struct kfwd_call *c, struct relay_proc *r, const char *sid,
                       const union netaddr *ra, const union netaddr *rb)
{
    char err[256];

    c->creds = ctl_creds(r, sid, 1);
    assert_non_null(c->creds);
    kfwd__aim(c, 0, ra);
    kfwd__aim(c, 1, rb);
    assert_int_equal(refclient_start(c->rc[0]), 0);
    assert_int_equal(refclient_start(c->rc[1]), 0);
    for (int i = 0; i < 2; i++) {
        if (refclient_wait_ready(c->rc[i], KFWD_READY_MS, err, sizeof(err)) != 0)
            fail_msg("side %c not ready: %s", 'a' + i, err);
    }
}

void kfwd_call_talk(struct kfwd_call *c, int ms, struct refclient_stats st[2])
{
    /* One packet every 20 ms; allow a third lost to start-up and scheduling. */
    uint64_t want = (uint64_t)ms / 30;

    assert_int_equal(refclient_start_media(c->rc[0]), 0);
    assert_int_equal(refclient_start_media(c->rc[1]), 0);
    usleep((useconds_t)ms * 1000);
    for (int i = 0; i < 2; i++) {
        refclient_get_stats(c->rc[i], &st[i]);
        print_message("side %c: sent %llu, received %llu, decoded %llu, tone %.1f Hz, %s\n",
                      'a' + i, (unsigned long long)st[i].rtp_sent,
                      (unsigned long long)st[i].rtp_received,
                      (unsigned long long)st[i].frames_decoded, st[i].detected_tone_hz,
                      st[i].srtp_profile);
        assert_true(st[i].ice_ready && st[i].dtls_done && st[i].peer_verified);
        assert_int_equal(st[i].srtp_unprotect_failures, 0);
        assert_true(st[i].rtp_received > want);
        assert_true(st[i].frames_decoded > want);
    }
    /* Each side hears the other's tone, not its own. */
    assert_true(st[0].detected_tone_hz > KFWD_TONE_B - 10 &&
                st[0].detected_tone_hz < KFWD_TONE_B + 10);
    assert_true(st[1].detected_tone_hz > KFWD_TONE_A - 10 &&
                st[1].detected_tone_hz < KFWD_TONE_A + 10);
    assert_string_equal(st[0].srtp_profile, st[1].srtp_profile);
}

void kfwd_call_free(struct kfwd_call *c)
{
    refclient_free(c->rc[0]);
    refclient_free(c->rc[1]);
    json_decref(c->creds);
    memset(c, 0, sizeof(*c));
}

json_t *kfwd_legs(struct relay_proc *r, const char *sid)
{
    json_t *resp = relay_call(r, "session", sid), *legs;

    assert_non_null(resp);
    legs = json_object_get(json_array_get(json_object_get(resp, "links"), 0), "legs");
    assert_non_null(legs);
    json_incref(legs);
    json_decref(resp);
    return legs;
}
