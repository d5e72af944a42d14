/* Malformed-packet table for the STUN parser: every way a datagram can lie
 * about its shape, each with the precise reason the parser must give. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "quietroom/base/bytes.h"
#include "quietroom/wire/stun.h"

#define MAX_LEN 700

struct packet {
    uint8_t b[MAX_LEN];
    size_t len;
};

/* A header with the given type and a body of raw attribute bytes; the
 * length field is set from the body. */
static void make(struct packet *p, uint16_t type, const uint8_t *body, size_t body_len)
{
    static const uint8_t txid[12] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8};

    bytes_put16(p->b, type);
    bytes_put16(p->b + 2, (uint16_t)body_len);
    bytes_put32(p->b + 4, STUN_MAGIC_COOKIE);
    memcpy(p->b + 8, txid, 12);
    if (body_len > 0)
        memcpy(p->b + 20, body, body_len);
    p->len = 20 + body_len;
}

struct row {
    const char *name;
    const uint8_t *body;
    size_t body_len;
    size_t truncate;       /* if set, the datagram is a header cut by this much */
    int length_delta;      /* added to the header's length field */
    uint8_t first_byte_or; /* ORed into byte 0 */
    uint32_t cookie;       /* 0: the right one */
    enum stun_parse_result want;
};

static const uint8_t attr_overrun[] = {0x00, 0x06, 0x00, 0x10, 'a', 'b', 'c', 'd'};
static const uint8_t attr_header_cut[] = {0x00, 0x06, 0x00, 0x04, 'a', 'b', 'c', 'd', 0x00, 0x24};
static const uint8_t bad_integrity_len[] = {0x00, 0x08, 0x00, 0x04, 0, 0, 0, 0};
static const uint8_t bad_fingerprint_len[] = {0x80, 0x28, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t wrong_fingerprint[] = {0x80, 0x28, 0x00, 0x04, 0x12, 0x34, 0x56, 0x78};
static const uint8_t bad_priority_len[] = {0x00, 0x24, 0x00, 0x02, 0, 1, 0, 0};
static const uint8_t bad_use_candidate_len[] = {0x00, 0x25, 0x00, 0x04, 0, 0, 0, 0};
static const uint8_t bad_controlling_len[] = {0x80, 0x2A, 0x00, 0x04, 0, 0, 0, 1};
static const uint8_t bad_mapped_family[] = {0x00, 0x20, 0x00, 0x08, 0x00, 0x07, 0, 0, 0, 0, 0, 0};
static const uint8_t bad_mapped_len[] = {0x00, 0x20, 0x00, 0x0c, 0x00, 0x01, 0, 0,
                                         0,    0,    0,    0,    0,    0,    0, 0};
static const uint8_t short_error_code[] = {0x00, 0x09, 0x00, 0x02, 0x04, 0x01, 0, 0};
static const uint8_t bad_sha256_len[] = {0x00, 0x1C, 0x00, 0x04, 0, 0, 0, 0};
static const uint8_t ok_empty_software[] = {0x80, 0x22, 0x00, 0x00};

static uint8_t long_username[4 + 516];

static const struct row rows[] = {
    {"empty body is fine", NULL, 0, 0, 0, 0, 0, STUN_PARSE_OK},
    {"unknown optional attribute with no value", ok_empty_software, sizeof(ok_empty_software), 0,
     0, 0, 0, STUN_PARSE_OK},
    {"shorter than a header", NULL, 0, 1, 0, 0, 0, STUN_PARSE_SHORT},
    {"top bits set (RTP-like)", NULL, 0, 0, 0, 0x80, 0, STUN_PARSE_NOT_STUN},
    {"top bit 0x40 set", NULL, 0, 0, 0, 0x40, 0, STUN_PARSE_NOT_STUN},
    {"wrong magic cookie (RFC 3489)", NULL, 0, 0, 0, 0, 0x01020304, STUN_PARSE_NOT_STUN},
    {"length not a multiple of 4", ok_empty_software, 4, 0, 2, 0, 0, STUN_PARSE_BAD_LENGTH},
    {"length longer than datagram", ok_empty_software, 4, 0, 4, 0, 0, STUN_PARSE_BAD_LENGTH},
    {"length shorter than datagram", ok_empty_software, 4, 0, -4, 0, 0, STUN_PARSE_BAD_LENGTH},
    {"attribute value overruns", attr_overrun, sizeof(attr_overrun), 0, 0, 0, 0,
     STUN_PARSE_BAD_ATTRIBUTE},
    {"cut attribute header (body not 4-aligned)", attr_header_cut, sizeof(attr_header_cut), 0, 0, 0, 0,
     STUN_PARSE_BAD_LENGTH},
    {"MESSAGE-INTEGRITY of 4 bytes", bad_integrity_len, sizeof(bad_integrity_len), 0, 0, 0, 0,
     STUN_PARSE_BAD_ATTRIBUTE},
    {"FINGERPRINT of 8 bytes", bad_fingerprint_len, sizeof(bad_fingerprint_len), 0, 0, 0, 0,
     STUN_PARSE_BAD_ATTRIBUTE},
    {"wrong FINGERPRINT", wrong_fingerprint, sizeof(wrong_fingerprint), 0, 0, 0, 0,
     STUN_PARSE_BAD_FINGERPRINT},
    {"PRIORITY of 2 bytes", bad_priority_len, sizeof(bad_priority_len), 0, 0, 0, 0,
     STUN_PARSE_BAD_ATTRIBUTE},
    {"USE-CANDIDATE with a value", bad_use_candidate_len, sizeof(bad_use_candidate_len), 0, 0, 0,
     0, STUN_PARSE_BAD_ATTRIBUTE},
    {"ICE-CONTROLLING of 4 bytes", bad_controlling_len, sizeof(bad_controlling_len), 0, 0, 0, 0,
     STUN_PARSE_BAD_ATTRIBUTE},
    {"XOR-MAPPED-ADDRESS family 7", bad_mapped_family, sizeof(bad_mapped_family), 0, 0, 0, 0,
     STUN_PARSE_BAD_ATTRIBUTE},
    {"XOR-MAPPED-ADDRESS IPv4 of 12 bytes", bad_mapped_len, sizeof(bad_mapped_len), 0, 0, 0, 0,
     STUN_PARSE_BAD_ATTRIBUTE},
    {"ERROR-CODE of 2 bytes", short_error_code, sizeof(short_error_code), 0, 0, 0, 0,
     STUN_PARSE_BAD_ATTRIBUTE},
    {"MESSAGE-INTEGRITY-SHA256 of 4 bytes", bad_sha256_len, sizeof(bad_sha256_len), 0, 0, 0, 0,
     STUN_PARSE_BAD_ATTRIBUTE},
    {"USERNAME of 516 bytes", long_username, sizeof(long_username), 0, 0, 0, 0,
     STUN_PARSE_BAD_ATTRIBUTE},
};

static void test_table(void **state)
{
    (void)state;
    bytes_put16(long_username, STUN_ATTR_USERNAME);
    bytes_put16(long_username + 2, 516);
    memset(long_username + 4, 'u', 516);

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        struct packet p;
        struct stun_msg m;
        enum stun_parse_result got;

        make(&p, 0x0001, r->body, r->body_len);
        bytes_put16(p.b + 2, (uint16_t)(bytes_get16(p.b + 2) + r->length_delta));
        p.b[0] |= r->first_byte_or;
        if (r->cookie)
            bytes_put32(p.b + 4, r->cookie);
        got = stun_parse(p.b, r->truncate ? STUN_HEADER_LEN - r->truncate : p.len, &m);
        if (got != r->want)
            fail_msg("%s: got %s, want %s", r->name, stun_parse_result_name(got),
                     stun_parse_result_name(r->want));
    }
}

/* An attribute after FINGERPRINT: FINGERPRINT must be last. */
static void test_attribute_after_fingerprint(void **state)
{
    struct hmac *h = hmac_new(HMAC_SHA1);
    struct stun_request req = {.fingerprint = true, .has_priority = true, .priority = 1};
    uint8_t buf[128];
    size_t n = stun_build_request(buf, sizeof(buf) - 8, &req, h);
    struct stun_msg m;

    (void)state;
    assert_true(n > 0);
    bytes_put16(buf + n, STUN_ATTR_PRIORITY);
    bytes_put16(buf + n + 2, 4);
    bytes_put32(buf + n + 4, 7);
    bytes_put16(buf + 2, (uint16_t)(n + 8 - 20));
    /* Keep the FINGERPRINT right for the new length, so only its position is wrong. */
    bytes_put32(buf + n - 4, (uint32_t)crc32(0L, buf, (uInt)(n - 8)) ^ STUN_FINGERPRINT_XOR);
    assert_int_equal(stun_parse(buf, n + 8, &m), STUN_PARSE_AFTER_FINGERPRINT);
    hmac_free(h);
}

/* Unknown comprehension-required attributes are listed (the relay answers
 * 420 for them); comprehension-optional ones are not. */
static void test_unknown_attributes_are_collected(void **state)
{
    static const uint8_t body[] = {0x00, 0x33, 0x00, 0x00, 0x7f, 0xff, 0x00, 0x00,
                                   0xC0, 0x57, 0x00, 0x00, 0x00, 0x24, 0x00, 0x04,
                                   0x00, 0x00, 0x00, 0x01};
    struct packet p;
    struct stun_msg m;

    (void)state;
    make(&p, 0x0001, body, sizeof(body));
    assert_int_equal(stun_parse(p.b, p.len, &m), STUN_PARSE_OK);
    assert_int_equal(m.n_unknown, 2);
    assert_int_equal(m.unknown[0], 0x0033);
    assert_int_equal(m.unknown[1], 0x7fff);
    assert_true(m.has_priority);
}

/* Attributes after MESSAGE-INTEGRITY (other than FINGERPRINT) are ignored:
 * they are not covered by it (RFC 8489 §14.5). */
static void test_attributes_after_integrity_are_ignored(void **state)
{
    static const uint8_t body[] = {0x00, 0x08, 0x00, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                   0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0x00, 0x25,
                                   0x00, 0x00, 0x00, 0x24, 0x00, 0x04, 0, 0, 0, 9};
    struct packet p;
    struct stun_msg m;

    (void)state;
    make(&p, 0x0001, body, sizeof(body));
    assert_int_equal(stun_parse(p.b, p.len, &m), STUN_PARSE_OK);
    assert_int_equal(m.integrity_at, 20);
    assert_false(m.use_candidate);
    assert_false(m.has_priority);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_attribute_after_fingerprint),
        cmocka_unit_test(test_unknown_attributes_are_collected),
        cmocka_unit_test(test_attributes_after_integrity_are_ignored),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
