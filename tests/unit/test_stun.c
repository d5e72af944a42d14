/* STUN codec: the RFC 5769 test vectors, and round trips through our own
 * builders (requests as the load tester sends them, responses as the relay
 * answers). */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "quietroom/wire/stun.h"

static const char rfc5769_password[] = "VOkJxbRl1RmTxUk/WvJxBt";

/* RFC 5769 §2.1 Sample Request. */
static const uint8_t rfc5769_request[] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
    0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74,
    0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e,
    0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
    0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
    0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
    0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5,
    0x7a, 0x3b, 0xcf,
};

/* RFC 5769 §2.2 Sample IPv4 Response. */
static const uint8_t rfc5769_response_v4[] = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
    0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74,
    0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01,
    0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99,
    0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b,
    0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};

/* RFC 5769 §2.3 Sample IPv6 Response. */
static const uint8_t rfc5769_response_v6[] = {
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
    0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74,
    0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02,
    0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5,
    0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6,
    0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41,
    0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};

static int setup(void **state)
{
    *state = hmac_new(HMAC_SHA1);
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    hmac_free(*state);
    return 0;
}

static const uint8_t *pw(void)
{
    return (const uint8_t *)rfc5769_password;
}

static void test_rfc5769_request(void **state)
{
    struct stun_msg m;

    assert_int_equal(stun_parse(rfc5769_request, sizeof(rfc5769_request), &m), STUN_PARSE_OK);
    assert_int_equal(m.cls, STUN_CLASS_REQUEST);
    assert_int_equal(m.method, STUN_METHOD_BINDING);
    assert_int_equal(m.username_len, 9);
    assert_memory_equal(m.username, "evtj:h6vY", 9);
    assert_true(m.has_priority);
    assert_int_equal(m.priority, 0x6e0001ff);
    assert_true(m.ice_controlled);
    assert_false(m.ice_controlling);
    assert_true(m.tiebreaker == 0x932ff9b151263b36ull);
    assert_true(m.has_fingerprint);
    assert_false(m.use_candidate);
    assert_int_equal(m.n_unknown, 0);
    assert_true(stun_check_integrity(rfc5769_request, &m, pw(), strlen(rfc5769_password), *state));
    assert_false(stun_check_integrity(rfc5769_request, &m, (const uint8_t *)"VOkJxbRl1RmTxUk/WvJxBu",
                                      22, *state));
}

static void test_rfc5769_response_v4(void **state)
{
    struct stun_msg m;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&m.mapped;

    assert_int_equal(stun_parse(rfc5769_response_v4, sizeof(rfc5769_response_v4), &m),
                     STUN_PARSE_OK);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
    assert_true(m.has_mapped);
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(ntohs(sin->sin_port), 32853);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), 0xc0000201); /* 192.0.2.1 */
    assert_true(
        stun_check_integrity(rfc5769_response_v4, &m, pw(), strlen(rfc5769_password), *state));
}

static void test_rfc5769_response_v6(void **state)
{
    struct stun_msg m;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&m.mapped;
    struct in6_addr want;

    inet_pton(AF_INET6, "2001:db8:1234:5678:11:2233:4455:6677", &want);
    assert_int_equal(stun_parse(rfc5769_response_v6, sizeof(rfc5769_response_v6), &m),
                     STUN_PARSE_OK);
    assert_true(m.has_mapped);
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(sin6->sin6_port), 32853);
    assert_memory_equal(&sin6->sin6_addr, &want, 16);
    assert_true(
        stun_check_integrity(rfc5769_response_v6, &m, pw(), strlen(rfc5769_password), *state));
}

/* A request with any byte changed must fail to parse, lose its FINGERPRINT
 * (the relay ignores such requests) or fail MESSAGE-INTEGRITY. */
static void test_every_flipped_byte_is_caught(void **state)
{
    for (size_t i = 0; i < sizeof(rfc5769_request) - 4; i++) {
        uint8_t copy[sizeof(rfc5769_request)];
        struct stun_msg m;
        enum stun_parse_result r;

        memcpy(copy, rfc5769_request, sizeof(copy));
        copy[i] ^= 0x01;
        r = stun_parse(copy, sizeof(copy), &m);
        if (r == STUN_PARSE_OK && m.has_fingerprint)
            assert_false(stun_check_integrity(copy, &m, pw(), strlen(rfc5769_password), *state));
    }
}

static size_t build_check(uint8_t *buf, size_t cap, struct hmac *h, bool use_candidate)
{
    struct stun_request r = {
        .txid = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
        .username = "AQFrBXvjdtUpymHCiyoAAABlX6iR:abcd",
        .key = (const uint8_t *)"JBpYAkO6ZAxG14tMPB0iF6qMdFFO/JFf",
        .key_len = 32,
        .has_priority = true,
        .priority = 0x7e7f00ff,
        .use_candidate = use_candidate,
        .ice_controlling = true,
        .tiebreaker = 0x0102030405060708ull,
        .fingerprint = true,
    };

    return stun_build_request(buf, cap, &r, h);
}

static void test_request_round_trip(void **state)
{
    uint8_t buf[256];
    size_t n = build_check(buf, sizeof(buf), *state, true);
    struct stun_msg m;

    assert_true(n > 0);
    assert_int_equal(n % 4, 0);
    assert_int_equal(stun_parse(buf, n, &m), STUN_PARSE_OK);
    assert_int_equal(m.cls, STUN_CLASS_REQUEST);
    assert_int_equal(m.username_len, strlen("AQFrBXvjdtUpymHCiyoAAABlX6iR:abcd"));
    assert_true(m.use_candidate && m.ice_controlling && m.has_priority && m.has_fingerprint);
    assert_int_equal(m.priority, 0x7e7f00ff);
    assert_true(m.tiebreaker == 0x0102030405060708ull);
    assert_true(stun_check_integrity(buf, &m, (const uint8_t *)"JBpYAkO6ZAxG14tMPB0iF6qMdFFO/JFf",
                                     32, *state));
}

static void check_success_for(struct hmac *h, const struct sockaddr *src, socklen_t srclen)
{
    uint8_t req[256], resp[256];
    size_t n = build_check(req, sizeof(req), h, false), rn;
    struct stun_msg m, r;

    assert_int_equal(stun_parse(req, n, &m), STUN_PARSE_OK);
    rn = stun_build_success(resp, n, &m, src, (const uint8_t *)"JBpYAkO6ZAxG14tMPB0iF6qMdFFO/JFf",
                            32, h);
    assert_true(rn > 0 && rn <= n);
    assert_int_equal(stun_parse(resp, rn, &r), STUN_PARSE_OK);
    assert_int_equal(r.cls, STUN_CLASS_SUCCESS);
    assert_memory_equal(r.txid, m.txid, STUN_TXID_LEN);
    assert_true(r.has_fingerprint && r.has_mapped);
    assert_memory_equal(&r.mapped, src, srclen);
    assert_true(stun_check_integrity(resp, &r, (const uint8_t *)"JBpYAkO6ZAxG14tMPB0iF6qMdFFO/JFf",
                                     32, h));
}

static void test_success_response_v4_and_v6(void **state)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(50000)};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(61000)};

    inet_pton(AF_INET, "198.51.100.7", &sin.sin_addr);
    inet_pton(AF_INET6, "2001:db8::42", &sin6.sin6_addr);
    check_success_for(*state, (struct sockaddr *)&sin, sizeof(sin));
    check_success_for(*state, (struct sockaddr *)&sin6, sizeof(sin6));
}

static void test_error_responses(void **state)
{
    uint8_t req[256], resp[256];
    size_t n = build_check(req, sizeof(req), *state, false), rn;
    struct stun_msg m, r;
    const uint8_t *key = (const uint8_t *)"JBpYAkO6ZAxG14tMPB0iF6qMdFFO/JFf";

    assert_int_equal(stun_parse(req, n, &m), STUN_PARSE_OK);

    rn = stun_build_error(resp, sizeof(resp), &m, STUN_ERROR_UNAUTHENTICATED, NULL, 0, *state);
    assert_int_equal(stun_parse(resp, rn, &r), STUN_PARSE_OK);
    assert_int_equal(r.cls, STUN_CLASS_ERROR);
    assert_int_equal(r.error_code, 401);
    assert_int_equal(r.integrity_at, 0); /* RFC 8489 §9.1.3: no integrity on 401 */

    rn = stun_build_error(resp, sizeof(resp), &m, STUN_ERROR_ROLE_CONFLICT, key, 32, *state);
    assert_int_equal(stun_parse(resp, rn, &r), STUN_PARSE_OK);
    assert_int_equal(r.error_code, 487);
    assert_true(stun_check_integrity(resp, &r, key, 32, *state));

    m.n_unknown = 2;
    m.unknown[0] = 0x0033;
    m.unknown[1] = 0x7fff;
    rn = stun_build_error(resp, sizeof(resp), &m, STUN_ERROR_UNKNOWN_ATTRIBUTE, key, 32, *state);
    assert_int_equal(stun_parse(resp, rn, &r), STUN_PARSE_OK);
    assert_int_equal(r.error_code, 420);
    /* UNKNOWN-ATTRIBUTES: header 4 + 2 types = 8 bytes after ERROR-CODE (4 + 4 + 17 + 3 pad). */
    assert_int_equal(resp[20 + 28 + 0], 0x00);
    assert_int_equal(resp[20 + 28 + 1], 0x0A);
    assert_int_equal(resp[20 + 28 + 4], 0x00);
    assert_int_equal(resp[20 + 28 + 5], 0x33);
    assert_int_equal(resp[20 + 28 + 6], 0x7f);
    assert_int_equal(resp[20 + 28 + 7], 0xff);
}

/* The builders never write past their capacity; the relay relies on this to
 * refuse amplification. */
/* The generic writer as the load tester's TURN client uses it: a non-Binding
 * method, odd-length attributes padded, XOR addresses that decode back, and
 * integrity plus fingerprint that our own parser accepts. */
static void test_writer_round_trip(void **state)
{
    static const uint8_t txid[STUN_TXID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    struct sockaddr_in6 peer = {.sin6_family = AF_INET6, .sin6_port = htons(40000)};
    struct sockaddr_storage back;
    struct stun_writer w;
    struct stun_msg m;
    uint8_t buf[256];
    const uint8_t *v;
    size_t n, vlen;

    inet_pton(AF_INET6, "2001:db8::7", &peer.sin6_addr);
    stun_writer_begin(&w, buf, sizeof(buf), 0x003, STUN_CLASS_REQUEST, txid);
    stun_writer_attr(&w, STUN_ATTR_REALM, "abc", 3);
    stun_writer_xor_address(&w, 0x0012, (const struct sockaddr *)&peer);
    stun_writer_integrity(&w, (const uint8_t *)"key", 3, *state);
    n = stun_writer_finish(&w, true);
    assert_true(n > 0 && n % 4 == 0);
    assert_int_equal(stun_parse(buf, n, &m), STUN_PARSE_OK);
    assert_int_equal(m.method, 0x003);
    assert_true(m.has_fingerprint);
    assert_true(stun_check_integrity(buf, &m, (const uint8_t *)"key", 3, *state));
    assert_false(stun_check_integrity(buf, &m, (const uint8_t *)"kex", 3, *state));
    v = stun_find_attr(buf, n, STUN_ATTR_REALM, &vlen);
    assert_non_null(v);
    assert_int_equal(vlen, 3);
    assert_memory_equal(v, "abc", 3);
    v = stun_find_attr(buf, n, 0x0012, &vlen);
    assert_non_null(v);
    assert_true(stun_xor_address(v, vlen, txid, &back));
    assert_memory_equal(&back, &peer, sizeof(peer));
    assert_null(stun_find_attr(buf, n, STUN_ATTR_NONCE, &vlen));
}

/* An overflow anywhere sticks: the message is refused, never truncated. */
static void test_writer_overflow_sticks(void **state)
{
    static const uint8_t txid[STUN_TXID_LEN];
    uint8_t buf[40], big[64] = {0};
    struct stun_writer w;

    stun_writer_begin(&w, buf, sizeof(buf), 0x003, STUN_CLASS_REQUEST, txid);
    stun_writer_attr(&w, STUN_ATTR_SOFTWARE, big, sizeof(big));
    stun_writer_attr(&w, STUN_ATTR_REALM, "x", 1);
    stun_writer_integrity(&w, (const uint8_t *)"key", 3, *state);
    assert_int_equal(stun_writer_finish(&w, true), 0);
}

static void test_capacity_is_respected(void **state)
{
    uint8_t req[256], resp[256];
    size_t n = build_check(req, sizeof(req), *state, false);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(1)};
    struct stun_msg m;

    assert_int_equal(stun_parse(req, n, &m), STUN_PARSE_OK);
    for (size_t cap = 0; cap < 64; cap++) {
        memset(resp, 0xAA, sizeof(resp));
        assert_int_equal(stun_build_success(resp, cap, &m, (struct sockaddr *)&sin,
                                            (const uint8_t *)"k", 1, *state),
                         0);
        for (size_t i = cap; i < sizeof(resp); i++)
            assert_int_equal(resp[i], 0xAA);
    }
    assert_int_equal(stun_build_success(resp, 64, &m, (struct sockaddr *)&sin,
                                        (const uint8_t *)"k", 1, *state),
                     64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rfc5769_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rfc5769_response_v4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rfc5769_response_v6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_flipped_byte_is_caught, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_success_response_v4_and_v6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_responses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity_is_respected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_overflow_sticks, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
