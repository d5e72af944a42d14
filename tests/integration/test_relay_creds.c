/* The running relay against connectivity checks whose USERNAME was forged
 * without the secret: every one earns silence (and the counter of its
 * reason), whatever version, key id or expiry it claims; a real ufrag with a
 * wrong password earns a 401, at most QR_STUN_ERRORS_PER_S a second per
 * source; version 1 ufrags are served while accept-creds-v1 is on. */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "world.h"
#include "quietroom/base/bytes.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/limits.h"

#define WAIT_MS 1000     /* for something that must arrive */
#define SILENCE_MS 300   /* for something that must not */
#define WRONG_PWD "0123456789abcdef0123456789abcdef"

static int setup_with(void **state, const char *const *extra)
{
    struct world_opts o = {.no_signal = true, .relay_extra = extra};
    struct world *w = calloc(1, sizeof(*w));

    *state = w;
    return w != NULL ? world_start(w, &o) : -1;
}

/* An upgraded deployment: version 1 turned off. */
static int setup_v2_only(void **state)
{
    static const char *const extra[] = {"--accept-creds-v1", "no", NULL};

    return setup_with(state, extra);
}

/* The default: version 1 accepted during the transition. */
static int setup_default(void **state)
{
    return setup_with(state, NULL);
}

/* A configuration file naming accept-creds-v1, for the reload test. */
static char reload_conf[] = "/tmp/qr-creds-conf-XXXXXX";

static void write_conf(const char *value)
{
    FILE *fp = fopen(reload_conf, "w");

    assert_non_null(fp);
    fprintf(fp, "[relay]\naccept-creds-v1 = %s\n", value);
    assert_int_equal(fclose(fp), 0);
}

static int setup_reloadable(void **state)
{
    static const char *const extra[] = {"--config", reload_conf, NULL};
    int fd = mkstemp(reload_conf);

    if (fd < 0)
        return -1;
    close(fd);
    write_conf("yes");
    return setup_with(state, extra);
}

static int teardown(void **state)
{
    struct world *w = *state;
    int rc;

    if (w == NULL)
        return 0;
    rc = world_stop(w);
    free(w);
    return rc;
}

/* A ufrag made without the secret: version, key id and expiry as given,
 * session, link, nonce and MAC random. Its length is the version's (v2's
 * for versions that do not exist). */
static size_t forge(uint8_t version, uint8_t kid, uint32_t expires, char *out)
{
    uint8_t raw[30];
    size_t n = version == 1 ? 21 : 30;

    assert_int_equal(RAND_bytes(raw, sizeof(raw)), 1);
    raw[0] = version;
    raw[1] = kid;
    bytes_put32(raw + 2, expires);
    raw[16] = 0;
    return (size_t)EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
}

/* A Binding request as a controlling browser sends it, signed with pwd. */
static size_t build_check(const char *ufrag, const char *pwd, uint8_t *buf, size_t cap)
{
    char username[QR_STUN_USERNAME_MAX];
    struct hmac *h = hmac_new(HMAC_SHA1);
    struct stun_request r = {.username = username, .key = (const uint8_t *)pwd,
                             .key_len = strlen(pwd), .has_priority = true, .priority = 1,
                             .ice_controlling = true, .tiebreaker = 7, .fingerprint = true};
    size_t n;

    snprintf(username, sizeof(username), "%s:peer", ufrag);
    RAND_bytes(r.txid, sizeof(r.txid));
    n = stun_build_request(buf, cap, &r, h);
    hmac_free(h);
    assert_true(n > 0);
    return n;
}

/* Sends one check; returns the length of what came back (-1: nothing
 * within timeout_ms). */
static int exchange(struct udp_peer *p, const union netaddr *relay, const char *ufrag,
                    const char *pwd, uint8_t *resp, int timeout_ms)
{
    uint8_t req[512];
    size_t n = build_check(ufrag, pwd, req, sizeof(req));

    assert_int_equal(peer_send(p, relay, req, n), 0);
    return peer_recv(p, resp, 2048, timeout_ms, NULL);
}

/* A real ufrag with one bit of its MAC flipped. */
static void flip_mac(const char *real, char *out)
{
    uint8_t raw[30];

    assert_int_equal(EVP_DecodeBlock(raw, (const unsigned char *)real, CREDS_UFRAG_LEN), 30);
    raw[29] ^= 0x10;
    EVP_EncodeBlock((unsigned char *)out, raw, 30);
}

struct forged {
    const char *what;
    uint8_t version;
    bool known_kid;
    int32_t expires_in;           /* seconds from now */
    int cut;                      /* characters removed (<0: 'A's added) */
    const char *counter;          /* the "stun" counter that must count it */
};

/* Every forgery an attacker without the secret can make, sent to a relay
 * that has turned version 1 off: no byte comes back, and each is counted
 * under its reason. Bytes out per byte in: 0. */
static void test_forged_usernames_get_silence(void **state)
{
    static const struct forged rows[] = {
        {"v2, valid kid, in max-ttl", 2, true, 600, 0, "ignored_forged"},
        {"v2, valid kid, expired", 2, true, -600, 0, "ignored_forged"},
        {"v2, valid kid, beyond max-ttl", 2, true, 3 * 86400, 0, "ignored_forged"},
        {"v2, unknown kid, in max-ttl", 2, false, 600, 0, "ignored_credentials"},
        {"v1, valid kid, in max-ttl", 1, true, 600, 0, "ignored_v1"},
        {"v1, valid kid, expired", 1, true, -600, 0, "ignored_v1"},
        {"v1, unknown kid", 1, false, 600, 0, "ignored_v1"},
        {"v0", 0, true, 600, 0, "ignored_credentials"},
        {"v3", 3, true, 600, 0, "ignored_credentials"},
        {"v255", 255, true, 600, 0, "ignored_credentials"},
        {"v2 truncated by one", 2, true, 600, 1, "ignored_credentials"},
        {"v2 truncated to v1 length", 2, true, 600, 12, "ignored_credentials"},
        {"v2 too long", 2, true, 600, -4, "ignored_credentials"},
        {"v2 far too long", 2, true, 600, -200, "ignored_credentials"},
    };
    struct world *w = *state;
    const union netaddr *r = &w->relay.listen[0];
    uint8_t kid = w->relay.keys.keys[0].id;
    uint32_t now = clock_wall_s();
    long long in = 0;
    struct udp_peer a;

    assert_int_equal(peer_open(&a, "127.0.0.1:0"), 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char u[300];
        uint8_t req[1024], resp[2048];
        long long before = relay_stat(&w->relay, "stun", rows[i].counter);
        size_t n = forge(rows[i].version, rows[i].known_kid ? kid : (uint8_t)(kid ^ 0x40),
                         (uint32_t)((int64_t)now + rows[i].expires_in), u);
        size_t len;

        if (rows[i].cut < 0) {
            memset(u + n, 'A', (size_t)-rows[i].cut);
            n += (size_t)-rows[i].cut;
        } else {
            n -= (size_t)rows[i].cut;
        }
        u[n] = '\0';
        len = build_check(u, WRONG_PWD, req, sizeof(req));
        in += (long long)len;
        assert_int_equal(peer_send(&a, r, req, len), 0);
        if (peer_recv(&a, resp, sizeof(resp), SILENCE_MS, NULL) != -1)
            fail_msg("answered: %s", rows[i].what);
        if (relay_stat(&w->relay, "stun", rows[i].counter) != before + 1)
            fail_msg("not counted as %s: %s", rows[i].counter, rows[i].what);
    }
    /* A real ufrag with its MAC altered, and one under a secret the relay
     * does not hold. */
    {
        json_t *creds = ctl_creds(&w->relay, "t-forged", 1);
        char u[CREDS_UFRAG_LEN + 1];
        uint8_t resp[2048];
        long long forged = relay_stat(&w->relay, "stun", "ignored_forged");

        assert_non_null(creds);
        flip_mac(creds_ufrag(creds, 0, 0), u);
        assert_int_equal(exchange(&a, r, u, creds_pwd(creds, 0, 0), resp, SILENCE_MS), -1);
        assert_int_equal(relay_stat(&w->relay, "stun", "ignored_forged"), forged + 1);
        json_decref(creds);
    }
    assert_int_equal(relay_stat(&w->relay, "bytes", "forwarded"), 0);
    assert_int_equal(relay_stat(&w->relay, "stun", "unauthenticated"), 0);
    assert_int_equal(relay_stat(&w->relay, "dropped", "amplification"), 0);
    assert_true(in > 0);
    peer_close(&a);
}

/* A ufrag signaling issued, a wrong password: 401, unsigned. */
static void test_real_ufrag_wrong_password_gets_401(void **state)
{
    struct world *w = *state;
    const union netaddr *r = &w->relay.listen[0];
    json_t *creds = ctl_creds(&w->relay, "t-401", 1);
    long long unauth = relay_stat(&w->relay, "stun", "unauthenticated");
    struct udp_peer a;
    uint8_t resp[2048];
    struct stun_msg m;
    int n;

    assert_non_null(creds);
    assert_int_equal(strlen(creds_ufrag(creds, 0, 0)), CREDS_UFRAG_LEN);
    assert_int_equal(peer_open(&a, "127.0.0.1:0"), 0);
    n = exchange(&a, r, creds_ufrag(creds, 0, 0), WRONG_PWD, resp, WAIT_MS);
    assert_true(n > 0);
    assert_int_equal(stun_parse(resp, (size_t)n, &m), STUN_PARSE_OK);
    assert_int_equal(m.cls, STUN_CLASS_ERROR);
    assert_int_equal(m.error_code, 401);
    assert_int_equal(relay_stat(&w->relay, "stun", "unauthenticated"), unauth + 1);
    peer_close(&a);
    json_decref(creds);
}

/* 50 such checks from one source within a second: at most
 * QR_STUN_ERRORS_PER_S 401s, the rest withheld and counted. */
static void test_401_rate_limited_per_source(void **state)
{
    enum { BURST = 50 };
    struct world *w = *state;
    const union netaddr *r = &w->relay.listen[0];
    json_t *creds = ctl_creds(&w->relay, "t-401-burst", 1);
    long long limited = relay_stat(&w->relay, "stun", "errors_rate_limited");
    struct udp_peer a, b;
    uint8_t req[512], resp[2048];
    int answered = 0, n;
    uint64_t start;

    assert_non_null(creds);
    assert_int_equal(peer_open(&a, "127.0.0.1:0"), 0);
    /* Start just after a second of the (shared) monotonic clock turns, so
     * that the burst falls within one of the relay's counting seconds. */
    usleep((useconds_t)(1000 - clock_mono_ms() % 1000 + 20) * 1000);
    start = clock_mono_ms();
    for (int i = 0; i < BURST; i++) {
        size_t len = build_check(creds_ufrag(creds, 0, 0), WRONG_PWD, req, sizeof(req));

        assert_int_equal(peer_send(&a, r, req, len), 0);
    }
    assert_true(clock_mono_ms() - start < 500);
    while ((n = peer_recv(&a, resp, sizeof(resp), SILENCE_MS, NULL)) > 0) {
        struct stun_msg m;

        assert_int_equal(stun_parse(resp, (size_t)n, &m), STUN_PARSE_OK);
        assert_int_equal(m.error_code, 401);
        answered++;
    }
    assert_true(answered >= 1);
    assert_true(answered <= QR_STUN_ERRORS_PER_S);
    assert_int_equal(relay_stat(&w->relay, "stun", "errors_rate_limited"),
                     limited + BURST - answered);
    /* Another source has its own budget. */
    assert_int_equal(peer_open(&b, "127.0.0.2:0"), 0);
    n = exchange(&b, r, creds_ufrag(creds, 0, 1), WRONG_PWD, resp, WAIT_MS);
    assert_true(n > 0);
    peer_close(&b);
    peer_close(&a);
    json_decref(creds);
}

/* The right password on a v2 ufrag: success, signed with it. */
static void test_correct_v2_check_succeeds(void **state)
{
    struct world *w = *state;
    const union netaddr *r = &w->relay.listen[0];
    json_t *creds = ctl_creds(&w->relay, "t-v2-ok", 1);
    struct check c;
    struct hmac *h = hmac_new(HMAC_SHA1);
    struct udp_peer a;
    uint8_t raw[2048];
    struct stun_msg m;

    assert_non_null(creds);
    c = (struct check){.ufrag = creds_ufrag(creds, 0, 0), .pwd = creds_pwd(creds, 0, 0),
                       .nominate = true};
    assert_int_equal(peer_open(&a, "127.0.0.1:0"), 0);
    assert_int_equal(peer_check(&a, r, &c, &m, raw, WAIT_MS), 1);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
    assert_true(stun_check_integrity(raw, &m, (const uint8_t *)c.pwd, strlen(c.pwd), h));
    assert_int_equal(relay_stat(&w->relay, "legs", "binds"), 1);
    peer_close(&a);
    hmac_free(h);
    json_decref(creds);
}

/* A version 1 leg as an old signaling derives it. */
static void v1_leg(struct world *w, char *ufrag, char *pwd)
{
    struct hmac *h = hmac_new(HMAC_SHA256);
    const struct keyring_key *key = &w->relay.keys.keys[0];
    struct creds_leg leg = {.version = CREDS_VERSION_V1, .kid = key->id,
                            .expires = clock_wall_s() + 600, .side = CREDS_SIDE_A};

    RAND_bytes(leg.session, sizeof(leg.session));
    RAND_bytes(leg.nonce, sizeof(leg.nonce));
    assert_int_equal(creds_encode_ufrag(&leg, NULL, NULL, ufrag), CREDS_UFRAG_V1_LEN);
    assert_int_equal(creds_password(key, ufrag, CREDS_UFRAG_V1_LEN, h, pwd), 0);
    hmac_free(h);
}

/* The transition, default on: an old signaling's v1 leg binds; a forged
 * v1 ufrag cannot be told from a real one before MESSAGE-INTEGRITY, so it
 * gets today's (rate-limited) 401; a forged v2 one still gets silence. */
static void test_v1_accepted_by_default(void **state)
{
    struct world *w = *state;
    const union netaddr *r = &w->relay.listen[0];
    char ufrag[CREDS_UFRAG_LEN + 1], pwd[CREDS_PWD_LEN + 1], u[CREDS_UFRAG_LEN + 1];
    struct check c = {.ufrag = ufrag, .pwd = pwd, .nominate = true};
    long long forged = relay_stat(&w->relay, "stun", "ignored_forged");
    struct udp_peer a;
    uint8_t raw[2048];
    struct stun_msg m;
    int n;

    v1_leg(w, ufrag, pwd);
    assert_int_equal(peer_open(&a, "127.0.0.1:0"), 0);
    assert_int_equal(peer_check(&a, r, &c, &m, raw, WAIT_MS), 1);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
    forge(1, w->relay.keys.keys[0].id, clock_wall_s() + 600, u);
    n = exchange(&a, r, u, WRONG_PWD, raw, WAIT_MS);
    assert_true(n > 0);
    assert_int_equal(stun_parse(raw, (size_t)n, &m), STUN_PARSE_OK);
    assert_int_equal(m.error_code, 401);
    forge(2, w->relay.keys.keys[0].id, clock_wall_s() + 600, u);
    assert_int_equal(exchange(&a, r, u, WRONG_PWD, raw, SILENCE_MS), -1);
    assert_int_equal(relay_stat(&w->relay, "stun", "ignored_forged"), forged + 1);
    peer_close(&a);
}

/* Version 1 turned off: even a real v1 leg gets silence, counted. */
static void test_v1_refused_when_off(void **state)
{
    struct world *w = *state;
    const union netaddr *r = &w->relay.listen[0];
    char ufrag[CREDS_UFRAG_LEN + 1], pwd[CREDS_PWD_LEN + 1];
    long long v1 = relay_stat(&w->relay, "stun", "ignored_v1");
    struct udp_peer a;
    uint8_t raw[2048];

    v1_leg(w, ufrag, pwd);
    assert_int_equal(peer_open(&a, "127.0.0.1:0"), 0);
    assert_int_equal(exchange(&a, r, ufrag, pwd, raw, SILENCE_MS), -1);
    assert_int_equal(relay_stat(&w->relay, "stun", "ignored_v1"), v1 + 1);
    peer_close(&a);
}

/* The way docs/relay.md says to end the transition: accept-creds-v1 no in
 * the configuration, then SIGHUP. A real v1 leg binds before, gets silence
 * after. */
static void test_v1_turned_off_by_reload(void **state)
{
    struct world *w = *state;
    const union netaddr *r = &w->relay.listen[0];
    char ufrag[CREDS_UFRAG_LEN + 1], pwd[CREDS_PWD_LEN + 1];
    struct check c = {.ufrag = ufrag, .pwd = pwd};
    struct udp_peer a;
    uint8_t raw[2048];
    struct stun_msg m;
    bool applied = false;

    v1_leg(w, ufrag, pwd);
    assert_int_equal(peer_open(&a, "127.0.0.1:0"), 0);
    assert_int_equal(peer_check(&a, r, &c, &m, raw, WAIT_MS), 1);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
    write_conf("no");
    assert_int_equal(kill(w->relay.pid, SIGHUP), 0);
    for (uint64_t until = clock_mono_ms() + 3000; !applied && clock_mono_ms() < until;
         usleep(20000)) {
        char *audit = read_text(w->relay.audit);

        applied = audit != NULL && strstr(audit, "accept-creds-v1") != NULL;
        free(audit);
    }
    assert_true(applied);
    assert_int_equal(exchange(&a, r, ufrag, pwd, raw, SILENCE_MS), -1);
    assert_int_equal(relay_stat(&w->relay, "stun", "ignored_v1"), 1);
    peer_close(&a);
    unlink(reload_conf);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_forged_usernames_get_silence, setup_v2_only,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_real_ufrag_wrong_password_gets_401, setup_v2_only,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_401_rate_limited_per_source, setup_v2_only,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_correct_v2_check_succeeds, setup_v2_only, teardown),
        cmocka_unit_test_setup_teardown(test_v1_refused_when_off, setup_v2_only, teardown),
        cmocka_unit_test_setup_teardown(test_v1_accepted_by_default, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_v1_turned_off_by_reload, setup_reloadable,
                                        teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return world_run_tests("test_relay_creds", tests, sizeof(tests) / sizeof(tests[0]), NULL,
                           NULL);
}
