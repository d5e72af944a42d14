/* The relay's STUN handling in one process: a real link table and keyring,
 * a worker without sockets fed ICE connectivity checks through worker_handle
 * at a chosen time (worker_fixtures.c), and what it would send captured from
 * its send batches: silence for what earns none, the STUN error responses,
 * and a success that binds nothing. Forwarding, early DTLS and drops are in
 * test_worker_forward.c. Each test builds its own relay. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "events.h"
#include "quietroom/base/bytes.h"
#include "quietroom/wire/creds.h"
#include "quietroom/wire/stun.h"
#include "relay.h"
#include "stats.h"
#include "worker.h"

#include "worker_fixtures.h"

#define OTHER_SECRET "2 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f\n"

/* The single reply to a check: parsed, sent back to src on listen, no
 * larger than the request, for the same transaction. */
static void expect_reply(struct fx *f, uint32_t listen, const union netaddr *src, size_t req_len,
                         enum stun_class cls, struct stun_msg *msg)
{
    static const uint8_t txid[STUN_TXID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

    assert_int_equal(f->n_sent, 1);
    assert_int_equal(f->sent[0].listen, listen);
    assert_true(netaddr_equal(&f->sent[0].to, src));
    assert_true(f->sent[0].len <= req_len);
    assert_int_equal(stun_parse(f->sent[0].bytes, f->sent[0].len, msg), STUN_PARSE_OK);
    assert_int_equal(msg->cls, cls);
    assert_int_equal(msg->method, STUN_METHOD_BINDING);
    assert_memory_equal(msg->txid, txid, STUN_TXID_LEN);
    assert_true(msg->has_fingerprint);
}

static void expect_error(struct fx *f, uint32_t listen, const union netaddr *src, size_t req_len,
                         uint16_t code, const char *pwd)
{
    struct stun_msg msg;

    expect_reply(f, listen, src, req_len, STUN_CLASS_ERROR, &msg);
    assert_true(msg.has_error);
    assert_int_equal(msg.error_code, code);
    if (pwd == NULL) {
        assert_int_equal(msg.integrity_at, 0);
    } else {
        assert_true(stun_check_integrity(f->sent[0].bytes, &msg, (const uint8_t *)pwd,
                                         strlen(pwd), f->sha1));
    }
}

/* --- silence ------------------------------------------------------------- */

static void test_unknown_credentials_silent(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    struct creds_link other;
    struct keyring kr;
    struct hmac *sha256 = hmac_new(HMAC_SHA256);
    char err[128];
    struct check c = {.ufrag = "notaufrag", .pwd = "whatever-password-whatever-passw",
                      .nominate = true};

    (void)state;
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_REQUESTS), 1);
    assert_int_equal(counter(f, STAT_STUN_IGNORED_CREDENTIALS), 1);

    /* Well-formed credentials under a key this relay does not hold. */
    assert_int_equal(keyring_parse(OTHER_SECRET, &kr, err, sizeof(err)), 0);
    assert_int_equal(creds_derive_link(&kr, "visit-1", 0, NOW_S + 3600, sha256, &other), 0);
    c = (struct check){.ufrag = other.ufrag[0], .pwd = other.pwd[0], .nominate = true};
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_IGNORED_CREDENTIALS), 2);

    /* Expired, and valid for longer than max-ttl allows. */
    assert_int_equal(creds_derive_link(&f->r.keyring[0], "visit-1", 0, NOW_S - 1, sha256, &other),
                     0);
    c = (struct check){.ufrag = other.ufrag[0], .pwd = other.pwd[0], .nominate = true};
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(creds_derive_link(&f->r.keyring[0], "visit-1", 0,
                                       NOW_S + QR_CREDS_MAX_TTL_S + 60, sha256, &other),
                     0);
    c = (struct check){.ufrag = other.ufrag[0], .pwd = other.pwd[0], .nominate = true};
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_IGNORED_EXPIRED), 2);

    assert_int_equal(counter(f, STAT_STUN_REQUESTS), 4);
    assert_int_equal(counter(f, STAT_RX_PACKETS), 4);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 0);
    assert_int_equal(counter(f, STAT_STUN_SUCCESS), 0);
    keyring_wipe(&kr);
    hmac_free(sha256);
    fx_free(f);
}

/* Datagrams that are no ICE check at all: silence, each counted. */
static void test_not_checks_silent(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    uint8_t buf[512];
    struct stun_writer sw;
    size_t n;

    (void)state;
    /* A Binding indication, and a request without FINGERPRINT. */
    stun_writer_begin(&sw, buf, sizeof(buf), STUN_METHOD_BINDING, STUN_CLASS_INDICATION,
                      (const uint8_t *)"abcdefghijkl");
    n = stun_writer_finish(&sw, true);
    feed(f, 0, &a, buf, n);
    expect_nothing_sent(f);
    stun_writer_begin(&sw, buf, sizeof(buf), STUN_METHOD_BINDING, STUN_CLASS_REQUEST,
                      (const uint8_t *)"abcdefghijkl");
    n = stun_writer_finish(&sw, false);
    feed(f, 0, &a, buf, n);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_IGNORED_OTHER), 2);
    assert_int_equal(counter(f, STAT_STUN_REQUESTS), 0);

    /* STUN by its first byte but not a message: bad cookie. */
    memset(buf, 0, 40);
    buf[3] = 20;
    feed(f, 0, &a, buf, 40);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_MALFORMED), 1);
    fx_free(f);
}

/* --- STUN errors --------------------------------------------------------- */

static void test_400_without_username(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    struct check c = {.no_username = true, .pwd = "whatever-password-whatever-passw"};
    size_t n;

    (void)state;
    n = check(f, 0, &a, &c);
    expect_error(f, 0, &a, n, 400, NULL);
    assert_int_equal(counter(f, STAT_STUN_BAD_REQUEST), 1);

    /* USERNAME but no MESSAGE-INTEGRITY. */
    c = (struct check){.ufrag = f->link[0].ufrag[0]};
    n = check(f, 0, &a, &c);
    expect_error(f, 0, &a, n, 400, NULL);
    assert_int_equal(counter(f, STAT_STUN_BAD_REQUEST), 2);
    assert_int_equal(counter(f, STAT_STUN_REQUESTS), 2);
    fx_free(f);
}

/* A 400 that would be longer than its tiny request is not sent. */
static void test_no_amplification(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    uint8_t buf[64];
    struct stun_writer sw;
    size_t n;

    (void)state;
    stun_writer_begin(&sw, buf, sizeof(buf), STUN_METHOD_BINDING, STUN_CLASS_REQUEST,
                      (const uint8_t *)"abcdefghijkl");
    n = stun_writer_finish(&sw, true);
    assert_int_equal(n, STUN_HEADER_LEN + 8);
    feed(f, 0, &a, buf, n);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_AMPLIFICATION), 1);
    assert_int_equal(counter(f, STAT_STUN_BAD_REQUEST), 0);
    fx_free(f);
}

static void test_400_with_integrity(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    struct check c = {.ufrag = f->link[0].ufrag[0], .pwd = f->link[0].pwd[0],
                      .nominate = true, .no_priority = true};
    size_t n;

    (void)state;
    n = check(f, 0, &a, &c);
    expect_error(f, 0, &a, n, 400, f->link[0].pwd[0]);
    assert_int_equal(counter(f, STAT_STUN_BAD_REQUEST), 1);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 0);
    fx_free(f);
}

static void test_401_bad_integrity(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    struct check c = {.ufrag = f->link[0].ufrag[0], .pwd = f->link[0].pwd[1], .nominate = true};
    uint8_t dgram[64];
    size_t n;

    (void)state;
    n = check(f, 0, &a, &c);
    expect_error(f, 0, &a, n, 401, NULL);
    assert_int_equal(counter(f, STAT_STUN_UNAUTHENTICATED), 1);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 0);
    /* Not bound: its DTLS goes nowhere. */
    feed(f, 0, &a, dgram, dtls(dgram, 1));
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_UNBOUND), 1);
    fx_free(f);
}

/* A ufrag made without the secret: the fixture's key id, in max-ttl. */
static void forge(uint8_t version, char *out)
{
    uint8_t raw[30];

    memset(raw, 0xa5, sizeof(raw));
    raw[0] = version;
    raw[1] = 1;
    bytes_put32(raw + 2, NOW_S + 600);
    raw[16] = 0;
    EVP_EncodeBlock((unsigned char *)out, raw, version == CREDS_VERSION_V1 ? 21 : 30);
}

static void test_forged_v2_silent(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    char u[CREDS_UFRAG_LEN + 1];
    struct check c = {.ufrag = u, .pwd = f->link[0].pwd[0], .nominate = true};

    (void)state;
    forge(CREDS_VERSION, u);
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    /* A real ufrag with its last character (MAC bits) changed. */
    memcpy(u, f->link[0].ufrag[0], sizeof(u));
    u[CREDS_UFRAG_LEN - 1] = u[CREDS_UFRAG_LEN - 1] == 'A' ? 'B' : 'A';
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_IGNORED_FORGED), 2);
    assert_int_equal(counter(f, STAT_STUN_UNAUTHENTICATED), 0);
    fx_free(f);
}

/* v1 while accepted (the default: a zeroed relay_live): today's 401 to a
 * forged one; refused: silence, even for a real one. */
static void test_v1_transition(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    struct hmac *sha256 = hmac_new(HMAC_SHA256);
    struct creds_leg leg = {.version = CREDS_VERSION_V1, .kid = 1, .expires = NOW_S + 600};
    char u[CREDS_UFRAG_LEN + 1], pwd[CREDS_PWD_LEN + 1];
    struct check c = {.ufrag = u, .pwd = pwd, .nominate = true};
    struct stun_msg msg;
    size_t n;

    (void)state;
    assert_int_equal(creds_encode_ufrag(&leg, NULL, NULL, u), CREDS_UFRAG_V1_LEN);
    assert_int_equal(creds_password(&f->r.keyring[0].keys[0], u, CREDS_UFRAG_V1_LEN, sha256, pwd),
                     0);
    n = check(f, 0, &a, &c);
    expect_reply(f, 0, &a, n, STUN_CLASS_SUCCESS, &msg);
    forge(CREDS_VERSION_V1, u);
    n = check(f, 0, &a, &c);
    expect_error(f, 0, &a, n, 401, NULL);

    atomic_store(&f->r.live.creds_v1_refused, true);
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(creds_encode_ufrag(&leg, NULL, NULL, u), CREDS_UFRAG_V1_LEN);
    check(f, 0, &a, &c);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_IGNORED_V1), 2);
    hmac_free(sha256);
    fx_free(f);
}

/* 401s and 400s without integrity: QR_STUN_ERRORS_PER_S a second per
 * source address, whatever its port; another address and the next second
 * have their own. */
static void test_unauthenticated_errors_rate_limited(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000"), a2 = addr("192.0.2.1:5001");
    union netaddr b = addr("[2001:db8::1]:5000");
    struct check c = {.ufrag = f->link[0].ufrag[0], .pwd = f->link[0].pwd[1], .nominate = true};
    struct check bare = {.no_username = true, .pwd = f->link[0].pwd[1]};
    unsigned sent = 0;
    size_t n;

    (void)state;
    for (int i = 0; i < 50; i++) {
        check(f, 0, i % 2 ? &a : &a2, &c);
        sent += f->n_sent;
    }
    assert_int_equal(sent, QR_STUN_ERRORS_PER_S);
    assert_int_equal(counter(f, STAT_STUN_UNAUTHENTICATED), QR_STUN_ERRORS_PER_S);
    assert_int_equal(counter(f, STAT_STUN_ERRORS_LIMITED), 50 - QR_STUN_ERRORS_PER_S);
    check(f, 0, &a, &bare);
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_STUN_ERRORS_LIMITED), 51 - QR_STUN_ERRORS_PER_S);

    n = check(f, 0, &b, &c);
    expect_error(f, 0, &b, n, 401, NULL);
    f->now.mono_ms += 1000;
    n = check(f, 0, &a, &c);
    expect_error(f, 0, &a, n, 401, NULL);
    /* The right password is never limited. */
    f->now.mono_ms -= 1000;
    c.pwd = f->link[0].pwd[0];
    for (int i = 0; i < 3; i++) {
        struct stun_msg msg;

        n = check(f, 0, &a, &c);
        expect_reply(f, 0, &a, n, STUN_CLASS_SUCCESS, &msg);
    }
    fx_free(f);
}

static void test_420_unknown_attribute(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    const char *pwd = f->link[0].pwd[0];
    char username[64];
    static const uint8_t txid[STUN_TXID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint8_t buf[512], prio[4] = {0x6e, 0x7f, 0x1e, 0xff}, tie[8] = {0};
    struct stun_writer sw;
    struct stun_msg msg;
    const uint8_t *v;
    size_t n, vlen;

    (void)state;
    snprintf(username, sizeof(username), "%s:peer", f->link[0].ufrag[0]);
    stun_writer_begin(&sw, buf, sizeof(buf), STUN_METHOD_BINDING, STUN_CLASS_REQUEST, txid);
    stun_writer_attr(&sw, STUN_ATTR_USERNAME, username, strlen(username));
    stun_writer_attr(&sw, STUN_ATTR_PRIORITY, prio, sizeof(prio));
    stun_writer_attr(&sw, STUN_ATTR_ICE_CONTROLLING, tie, sizeof(tie));
    stun_writer_attr(&sw, 0x0030, "xxxx", 4);
    stun_writer_integrity(&sw, (const uint8_t *)pwd, strlen(pwd), f->sha1);
    n = stun_writer_finish(&sw, true);
    assert_true(n > 0);
    feed(f, 0, &a, buf, n);
    expect_error(f, 0, &a, n, 420, pwd);
    assert_int_equal(stun_parse(f->sent[0].bytes, f->sent[0].len, &msg), STUN_PARSE_OK);
    v = stun_find_attr(f->sent[0].bytes, f->sent[0].len, STUN_ATTR_UNKNOWN_ATTRIBUTES, &vlen);
    assert_non_null(v);
    assert_int_equal(vlen, 2);
    assert_int_equal(v[0] << 8 | v[1], 0x0030);
    assert_int_equal(counter(f, STAT_STUN_UNKNOWN_ATTRIBUTE), 1);
    fx_free(f);
}

/* A lite agent is controlled: a peer claiming that role too gets 487. */
static void test_487_role_conflict(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("192.0.2.1:5000");
    struct check c = {.ufrag = f->link[0].ufrag[0], .pwd = f->link[0].pwd[0],
                      .nominate = true, .controlled = true};
    size_t n;

    (void)state;
    n = check(f, 0, &a, &c);
    expect_error(f, 0, &a, n, 487, f->link[0].pwd[0]);
    assert_int_equal(counter(f, STAT_STUN_ROLE_CONFLICT), 1);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 0);
    fx_free(f);
}

/* --- binding ------------------------------------------------------------- */

/* A check without USE-CANDIDATE is answered but binds nothing. */
static void test_success_without_nomination_binds_nothing(void **state)
{
    struct fx *f = fx_new(16, 1);
    union netaddr a = addr("[2001:db8::1]:5000");
    struct check c = {.ufrag = f->link[0].ufrag[0], .pwd = f->link[0].pwd[0]};
    struct sockaddr_storage mapped;
    struct stun_msg msg;
    uint8_t dgram[64];
    size_t n;

    (void)state;
    n = check(f, 0, &a, &c);
    expect_reply(f, 0, &a, n, STUN_CLASS_SUCCESS, &msg);
    assert_true(stun_check_integrity(f->sent[0].bytes, &msg, (const uint8_t *)f->link[0].pwd[0],
                                     CREDS_PWD_LEN, f->sha1));
    assert_true(msg.has_mapped);
    memcpy(&mapped, &msg.mapped, sizeof(mapped));
    assert_true(netaddr_equal((const union netaddr *)&mapped, &a));
    assert_int_equal(counter(f, STAT_STUN_SUCCESS), 1);
    assert_int_equal(counter(f, STAT_LEGS_BOUND), 0);

    feed(f, 0, &a, dgram, dtls(dgram, 1));
    expect_nothing_sent(f);
    assert_int_equal(counter(f, STAT_DROP_UNBOUND), 1);
    assert_int_equal(counter(f, STAT_EARLY_HELD), 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_credentials_silent),
        cmocka_unit_test(test_not_checks_silent),
        cmocka_unit_test(test_400_without_username),
        cmocka_unit_test(test_no_amplification),
        cmocka_unit_test(test_400_with_integrity),
        cmocka_unit_test(test_401_bad_integrity),
        cmocka_unit_test(test_forged_v2_silent),
        cmocka_unit_test(test_v1_transition),
        cmocka_unit_test(test_unauthenticated_errors_rate_limited),
        cmocka_unit_test(test_420_unknown_attribute),
        cmocka_unit_test(test_487_role_conflict),
        cmocka_unit_test(test_success_without_nomination_binds_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
