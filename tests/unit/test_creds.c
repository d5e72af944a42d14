/* Stateless relay credentials and the secret file: derive, verify, expiry,
 * tampering, key rotation; error messages never carry secret material. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "quietroom/base/bytes.h"
#include "quietroom/wire/creds.h"

#define NOW 1800000000u
#define DAY 86400u

static const char key1_hex[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
static const char key2_hex[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

struct fixture {
    struct hmac *h;
    struct keyring one;       /* key 1 only */
    struct keyring rotated;   /* key 2 signs, key 1 still verifies */
    struct keyring two;       /* key 2 only */
};

static void load(struct keyring *kr, const char *text)
{
    char err[256];

    if (keyring_parse(text, kr, err, sizeof(err)) != 0)
        fail_msg("keyring_parse: %s", err);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char text[512];

    f->h = hmac_new(HMAC_SHA256);
    snprintf(text, sizeof(text), "# dev\n1 %s\n", key1_hex);
    load(&f->one, text);
    snprintf(text, sizeof(text), "2 %s\n\n1 %s\n", key2_hex, key1_hex);
    load(&f->rotated, text);
    snprintf(text, sizeof(text), "2 %s\n", key2_hex);
    load(&f->two, text);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    hmac_free(f->h);
    free(f);
    return 0;
}

static bool is_ice_chars(const char *s)
{
    for (; *s; s++) {
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '+' || *s == '/'))
            return false;
    }
    return true;
}

/* A ufrag made without the secret: version, key id and expiry as given,
 * the rest (session, link, nonce, MAC) filler. Its length is the one the
 * version byte asks for (v2's for unknown versions). */
static size_t forge(uint8_t version, uint8_t kid, uint32_t expires, char *out)
{
    uint8_t raw[30];
    size_t n = version == 1 ? 21 : 30;

    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (uint8_t)(0x5a + 37 * i);
    raw[0] = version;
    raw[1] = kid;
    bytes_put32(raw + 2, expires);
    raw[16] = 0;
    return (size_t)EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
}

static void test_derive_and_verify(void **state)
{
    struct fixture *f = *state;
    struct creds_link l;

    assert_int_equal(creds_derive_link(&f->one, "appointment-42", 3, NOW + 3600, f->h, &l), 0);
    for (int side = 0; side < 2; side++) {
        struct creds_leg leg;
        char pwd[CREDS_PWD_LEN + 1];

        assert_int_equal(strlen(l.ufrag[side]), CREDS_UFRAG_LEN);
        assert_int_equal(strlen(l.pwd[side]), CREDS_PWD_LEN);
        assert_true(is_ice_chars(l.ufrag[side]) && is_ice_chars(l.pwd[side]));
        assert_int_equal(creds_verify(&f->one, l.ufrag[side], CREDS_UFRAG_LEN, NOW, DAY, true, f->h,
                                      &leg, pwd),
                         CREDS_OK);
        assert_string_equal(pwd, l.pwd[side]);
        assert_int_equal(leg.version, CREDS_VERSION);
        assert_int_equal(leg.kid, 1);
        assert_int_equal(leg.expires, NOW + 3600);
        assert_int_equal(leg.link, 3);
        assert_int_equal(leg.side, side);
    }
    assert_string_not_equal(l.ufrag[0], l.ufrag[1]);
    assert_string_not_equal(l.pwd[0], l.pwd[1]);
}

static void test_legs_of_a_link_match_and_links_differ(void **state)
{
    struct fixture *f = *state;
    struct creds_link l1, l2;
    struct creds_leg a, b, c;

    assert_int_equal(creds_derive_link(&f->one, "s", 0, NOW + 60, f->h, &l1), 0);
    assert_int_equal(creds_derive_link(&f->one, "s", 0, NOW + 60, f->h, &l2), 0);
    assert_int_equal(creds_decode_ufrag(l1.ufrag[0], CREDS_UFRAG_LEN, &a), CREDS_OK);
    assert_int_equal(creds_decode_ufrag(l1.ufrag[1], CREDS_UFRAG_LEN, &b), CREDS_OK);
    assert_int_equal(creds_decode_ufrag(l2.ufrag[0], CREDS_UFRAG_LEN, &c), CREDS_OK);
    assert_true(creds_same_link(&a, &b));
    /* A second derivation for the same link number is a new link (ICE restart). */
    assert_false(creds_same_link(&a, &c));
    assert_memory_equal(a.session, c.session, CREDS_SESSION_KEY_LEN);
}

static void test_session_key(void **state)
{
    struct fixture *f = *state;
    uint8_t k1[CREDS_SESSION_KEY_LEN], k2[CREDS_SESSION_KEY_LEN], k3[CREDS_SESSION_KEY_LEN];

    assert_int_equal(creds_session_key(&f->one.keys[0], "abc", 3, f->h, k1), 0);
    assert_int_equal(creds_session_key(&f->one.keys[0], "abd", 3, f->h, k2), 0);
    assert_int_equal(creds_session_key(&f->two.keys[0], "abc", 3, f->h, k3), 0);
    assert_memory_not_equal(k1, k2, CREDS_SESSION_KEY_LEN);
    assert_memory_not_equal(k1, k3, CREDS_SESSION_KEY_LEN);
    assert_int_equal(creds_session_key(&f->one.keys[0], "abc", 3, f->h, k2), 0);
    assert_memory_equal(k1, k2, CREDS_SESSION_KEY_LEN);
}

static void test_expiry(void **state)
{
    struct fixture *f = *state;
    char pwd[CREDS_PWD_LEN + 1];
    struct creds_link l;
    struct creds_leg leg;

    assert_int_equal(creds_derive_link(&f->one, "s", 0, NOW, f->h, &l), 0);
    assert_int_equal(creds_verify(&f->one, l.ufrag[0], CREDS_UFRAG_LEN, NOW - 1, DAY, true, f->h, &leg,
                                  pwd),
                     CREDS_OK);
    assert_int_equal(creds_verify(&f->one, l.ufrag[0], CREDS_UFRAG_LEN, NOW, DAY, true, f->h, &leg, pwd),
                     CREDS_EXPIRED);
    assert_int_equal(creds_verify(&f->one, l.ufrag[0], CREDS_UFRAG_LEN, NOW + 5, DAY, true, f->h, &leg,
                                  pwd),
                     CREDS_EXPIRED);
    /* Longer-lived than any issuer may grant. */
    assert_int_equal(creds_derive_link(&f->one, "s", 0, NOW + DAY + 1, f->h, &l), 0);
    assert_int_equal(creds_verify(&f->one, l.ufrag[0], CREDS_UFRAG_LEN, NOW, DAY, true, f->h, &leg, pwd),
                     CREDS_TOO_LONG);
}

/* Changing any character of a v2 ufrag makes it invalid: its MAC (or its
 * structure) no longer verifies, so the relay never derives a password. */
static void test_tampered_ufrag(void **state)
{
    static const char alphabet[] = "ABab09+/";
    struct fixture *f = *state;
    struct creds_link l;

    assert_int_equal(creds_derive_link(&f->one, "s", 7, NOW + 600, f->h, &l), 0);
    for (int i = 0; i < CREDS_UFRAG_LEN; i++) {
        for (const char *c = alphabet; *c; c++) {
            char u[CREDS_UFRAG_LEN + 1], pwd[CREDS_PWD_LEN + 1];
            struct creds_leg leg;

            if (l.ufrag[0][i] == *c)
                continue;
            memcpy(u, l.ufrag[0], sizeof(u));
            u[i] = *c;
            assert_int_not_equal(
                creds_verify(&f->one, u, CREDS_UFRAG_LEN, NOW, DAY, true, f->h, &leg, pwd),
                CREDS_OK);
        }
    }
}

static void test_malformed_ufrag(void **state)
{
    struct fixture *f = *state;
    char u[CREDS_UFRAG_LEN + 1], pwd[CREDS_PWD_LEN + 1];
    struct creds_link l;
    struct creds_leg leg;

    assert_int_equal(creds_derive_link(&f->one, "s", 0, NOW + 600, f->h, &l), 0);
    assert_int_equal(creds_verify(&f->one, l.ufrag[0], CREDS_UFRAG_LEN - 1, NOW, DAY, true, f->h, &leg,
                                  pwd),
                     CREDS_MALFORMED);
    assert_int_equal(creds_verify(&f->one, "abcd", 4, NOW, DAY, true, f->h, &leg, pwd), CREDS_MALFORMED);
    memcpy(u, l.ufrag[0], sizeof(u));
    u[5] = '=';
    assert_int_equal(creds_verify(&f->one, u, CREDS_UFRAG_LEN, NOW, DAY, true, f->h, &leg, pwd),
                     CREDS_MALFORMED);
    u[5] = '-';
    assert_int_equal(creds_verify(&f->one, u, CREDS_UFRAG_LEN, NOW, DAY, true, f->h, &leg, pwd),
                     CREDS_MALFORMED);

    /* An unknown version is refused by structure, before any key; side 2
     * even under a valid MAC. */
    assert_int_equal(creds_decode_ufrag(l.ufrag[0], CREDS_UFRAG_LEN, &leg), CREDS_OK);
    leg.version = 3;
    assert_int_equal(creds_encode_ufrag(&leg, &f->one.keys[0], f->h, u), -1);
    forge(3, 1, NOW + 60, u);
    assert_int_equal(creds_verify(&f->one, u, CREDS_UFRAG_LEN, NOW, DAY, true, f->h, &leg, pwd),
                     CREDS_BAD_VERSION);
    assert_int_equal(creds_decode_ufrag(l.ufrag[0], CREDS_UFRAG_LEN, &leg), CREDS_OK);
    leg.side = 2;
    assert_int_equal(creds_encode_ufrag(&leg, &f->one.keys[0], f->h, u), CREDS_UFRAG_LEN);
    assert_int_equal(creds_decode_ufrag(u, CREDS_UFRAG_LEN, &leg), CREDS_MALFORMED);
    assert_int_equal(creds_verify(&f->one, u, CREDS_UFRAG_LEN, NOW, DAY, true, f->h, &leg, pwd),
                     CREDS_MALFORMED);
}

/* Rotation: a relay holding both keys serves credentials minted under
 * either; one that lacks the new key ignores the new credentials. */
static void test_rotation(void **state)
{
    struct fixture *f = *state;
    char pwd[CREDS_PWD_LEN + 1];
    struct creds_link old_link, new_link;
    struct creds_leg leg;

    assert_int_equal(creds_derive_link(&f->one, "s", 0, NOW + 600, f->h, &old_link), 0);
    assert_int_equal(creds_derive_link(&f->rotated, "s", 0, NOW + 600, f->h, &new_link), 0);
    assert_int_equal(creds_decode_ufrag(new_link.ufrag[0], CREDS_UFRAG_LEN, &leg), CREDS_OK);
    assert_int_equal(leg.kid, 2);

    assert_int_equal(creds_verify(&f->rotated, old_link.ufrag[0], CREDS_UFRAG_LEN, NOW, DAY, true, f->h,
                                  &leg, pwd),
                     CREDS_OK);
    assert_string_equal(pwd, old_link.pwd[0]);
    assert_int_equal(creds_verify(&f->rotated, new_link.ufrag[1], CREDS_UFRAG_LEN, NOW, DAY, true, f->h,
                                  &leg, pwd),
                     CREDS_OK);
    assert_string_equal(pwd, new_link.pwd[1]);
    assert_int_equal(creds_verify(&f->one, new_link.ufrag[0], CREDS_UFRAG_LEN, NOW, DAY, true, f->h,
                                  &leg, pwd),
                     CREDS_UNKNOWN_KEY);
    /* After the old key is retired, its credentials stop working. */
    assert_int_equal(creds_verify(&f->two, old_link.ufrag[0], CREDS_UFRAG_LEN, NOW, DAY, true, f->h,
                                  &leg, pwd),
                     CREDS_UNKNOWN_KEY);
}

/* The v2 ufrag: 40 ice-chars (21 bytes of fields, 9 of MAC), and the MAC is
 * what makes it valid. */
static void test_v2_format(void **state)
{
    struct fixture *f = *state;
    char u[CREDS_UFRAG_LEN + 1], pwd[CREDS_PWD_LEN + 1];
    struct creds_link l;
    struct creds_leg leg;
    uint8_t raw[30];

    assert_int_equal(CREDS_UFRAG_LEN, 40);
    assert_int_equal(creds_ufrag_len(1), CREDS_UFRAG_V1_LEN);
    assert_int_equal(creds_ufrag_len(2), CREDS_UFRAG_LEN);
    assert_int_equal(creds_ufrag_len(0), 0);
    assert_int_equal(creds_ufrag_len(3), 0);
    assert_int_equal(creds_derive_link(&f->one, "s", 5, NOW + 600, f->h, &l), 0);
    assert_int_equal(EVP_DecodeBlock(raw, (const unsigned char *)l.ufrag[0], CREDS_UFRAG_LEN), 30);
    assert_int_equal(raw[0], 2);
    /* Re-encoding the decoded fields under the same key gives the same ufrag. */
    assert_int_equal(creds_decode_ufrag(l.ufrag[0], CREDS_UFRAG_LEN, &leg), CREDS_OK);
    assert_int_equal(creds_encode_ufrag(&leg, &f->one.keys[0], f->h, u), CREDS_UFRAG_LEN);
    assert_string_equal(u, l.ufrag[0]);
    /* A flipped MAC bit is caught, and the structure alone still decodes. */
    raw[29] ^= 1;
    EVP_EncodeBlock((unsigned char *)u, raw, 30);
    assert_int_equal(creds_decode_ufrag(u, CREDS_UFRAG_LEN, &leg), CREDS_OK);
    assert_int_equal(creds_verify(&f->one, u, CREDS_UFRAG_LEN, NOW, DAY, true, f->h, &leg, pwd),
                     CREDS_BAD_MAC);
    /* The same fields under another key: another MAC. */
    assert_int_equal(creds_decode_ufrag(l.ufrag[0], CREDS_UFRAG_LEN, &leg), CREDS_OK);
    assert_int_equal(creds_encode_ufrag(&leg, &f->two.keys[0], f->h, u), CREDS_UFRAG_LEN);
    assert_string_not_equal(u, l.ufrag[0]);
    /* v2 needs a key to encode. */
    assert_int_equal(creds_encode_ufrag(&leg, NULL, f->h, u), -1);
}

/* The format as docs/relay.md states it, computed independently (Python's
 * hmac and base64): fields kid 2, expires NOW + 600, session 0, link 1,
 * side a, nonce 01020304; key 2 = bytes 0..31. */
static void test_v2_known_answer(void **state)
{
    static const char ufrag[] = "AgJrSdRYAAAAAAAAAAAAAQABAgMEXYBeJYSxJLgs";
    struct fixture *f = *state;
    struct keyring kr;
    struct creds_leg leg;
    char pwd[CREDS_PWD_LEN + 1], u[CREDS_UFRAG_LEN + 1];

    load(&kr, "2 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
    assert_int_equal(creds_verify(&kr, ufrag, CREDS_UFRAG_LEN, NOW, DAY, false, f->h, &leg, pwd),
                     CREDS_OK);
    assert_string_equal(pwd, "nYeATHGNKDeMIvglG2EkMK9Kl+ozohxf");
    assert_int_equal(leg.kid, 2);
    assert_int_equal(leg.expires, NOW + 600);
    assert_int_equal(leg.link, 1);
    assert_int_equal(creds_encode_ufrag(&leg, &kr.keys[0], f->h, u), CREDS_UFRAG_LEN);
    assert_string_equal(u, ufrag);
}

/* Moving a real ufrag to another key id the relay holds does not carry its
 * MAC along: the MAC covers the key id and is under the named key. */
static void test_v2_kid_swap_is_forged(void **state)
{
    struct fixture *f = *state;
    char u[CREDS_UFRAG_LEN + 1], pwd[CREDS_PWD_LEN + 1];
    struct creds_link l;
    struct creds_leg leg;
    uint8_t raw[30];

    assert_int_equal(creds_derive_link(&f->rotated, "s", 0, NOW + 600, f->h, &l), 0);
    assert_int_equal(EVP_DecodeBlock(raw, (const unsigned char *)l.ufrag[0], CREDS_UFRAG_LEN), 30);
    assert_int_equal(raw[1], 2);
    raw[1] = 1;
    EVP_EncodeBlock((unsigned char *)u, raw, 30);
    assert_int_equal(creds_verify(&f->rotated, u, CREDS_UFRAG_LEN, NOW, DAY, true, f->h, &leg,
                                  pwd),
                     CREDS_BAD_MAC);
}

/* Ufrags made without the secret, as an attacker would: none verifies, and
 * each fails for the reason the relay counts. Only v1, which has no MAC,
 * passes while version 1 is accepted (its check then fails on
 * MESSAGE-INTEGRITY). */
static void test_forged_ufrags(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *what;
        uint8_t version, kid;
        int32_t expires_in;
        int cut;                  /* characters removed (<0: added) */
        bool accept_v1;
        enum creds_status want;
    } rows[] = {
        {"v2 valid kid in ttl", 2, 1, 600, 0, true, CREDS_BAD_MAC},
        {"v2 valid kid expired", 2, 1, -600, 0, true, CREDS_BAD_MAC},
        {"v2 valid kid beyond ttl", 2, 1, 2 * 86400, 0, true, CREDS_BAD_MAC},
        {"v2 unknown kid", 2, 9, 600, 0, true, CREDS_UNKNOWN_KEY},
        {"v1 valid kid in ttl, v1 off", 1, 1, 600, 0, false, CREDS_V1_REFUSED},
        {"v1 unknown kid, v1 off", 1, 9, 600, 0, false, CREDS_V1_REFUSED},
        {"v1 valid kid in ttl, v1 on", 1, 1, 600, 0, true, CREDS_OK},
        {"v1 valid kid expired, v1 on", 1, 1, -600, 0, true, CREDS_EXPIRED},
        {"v1 unknown kid, v1 on", 1, 9, 600, 0, true, CREDS_UNKNOWN_KEY},
        {"v0", 0, 1, 600, 0, true, CREDS_BAD_VERSION},
        {"v3", 3, 1, 600, 0, true, CREDS_BAD_VERSION},
        {"v255", 255, 1, 600, 0, true, CREDS_BAD_VERSION},
        {"v2 truncated", 2, 1, 600, 1, true, CREDS_MALFORMED},
        {"v2 truncated to v1 length", 2, 1, 600, 12, true, CREDS_BAD_VERSION},
        {"v2 too long", 2, 1, 600, -4, true, CREDS_MALFORMED},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char u[64], pwd[CREDS_PWD_LEN + 1];
        struct creds_leg leg;
        size_t n = forge(rows[i].version, rows[i].kid, (uint32_t)(NOW + rows[i].expires_in), u);

        if (rows[i].cut < 0) {
            memcpy(u + n, "AAAA", (size_t)-rows[i].cut);
            n += (size_t)-rows[i].cut;
        } else {
            n -= (size_t)rows[i].cut;
        }
        if (creds_verify(&f->one, u, n, NOW, DAY, rows[i].accept_v1, f->h, &leg, pwd) !=
            rows[i].want)
            fail_msg("%s: %s", rows[i].what,
                     creds_status_name(creds_verify(&f->one, u, n, NOW, DAY, rows[i].accept_v1,
                                                    f->h, &leg, pwd)));
    }
}

/* Version 1 (older signaling) still encodes and verifies while accepted. */
static void test_v1_transition(void **state)
{
    struct fixture *f = *state;
    struct creds_leg leg = {.version = CREDS_VERSION_V1, .kid = 1, .expires = NOW + 600,
                            .link = 4, .side = CREDS_SIDE_B};
    char u[CREDS_UFRAG_LEN + 1], pwd[CREDS_PWD_LEN + 1], want[CREDS_PWD_LEN + 1];
    struct creds_leg got;

    assert_int_equal(creds_encode_ufrag(&leg, NULL, NULL, u), CREDS_UFRAG_V1_LEN);
    assert_int_equal(strlen(u), CREDS_UFRAG_V1_LEN);
    assert_int_equal(creds_password(&f->one.keys[0], u, CREDS_UFRAG_V1_LEN, f->h, want), 0);
    assert_int_equal(creds_verify(&f->one, u, CREDS_UFRAG_V1_LEN, NOW, DAY, true, f->h, &got,
                                  pwd),
                     CREDS_OK);
    assert_string_equal(pwd, want);
    assert_int_equal(got.version, 1);
    assert_int_equal(got.link, 4);
    assert_int_equal(got.side, CREDS_SIDE_B);
    assert_int_equal(creds_verify(&f->one, u, CREDS_UFRAG_V1_LEN, NOW, DAY, false, f->h, &got,
                                  pwd),
                     CREDS_V1_REFUSED);
}

static void expect_parse_error(const char *text, const char *secret_fragment)
{
    struct keyring kr;
    char err[256] = "";

    if (keyring_parse(text, &kr, err, sizeof(err)) == 0)
        fail_msg("accepted: %s", text);
    assert_true(err[0] != '\0');
    if (secret_fragment != NULL)
        assert_null(strstr(err, secret_fragment));
}

static void test_keyring_errors_hide_secrets(void **state)
{
    char text[512];

    (void)state;
    expect_parse_error("", NULL);
    expect_parse_error("# only a comment\n", NULL);
    expect_parse_error("1 00112233\n", "00112233");                         /* too short */
    snprintf(text, sizeof(text), "1 %sz\n", key1_hex);                      /* not hex */
    expect_parse_error(text, "00112233");
    snprintf(text, sizeof(text), "256 %s\n", key1_hex);                     /* id range */
    expect_parse_error(text, "00112233");
    snprintf(text, sizeof(text), "1 %s\n1 %s\n", key1_hex, key2_hex);       /* duplicate id */
    expect_parse_error(text, "ffeedd");
    snprintf(text, sizeof(text), "1 %s\n2 %s\n3 %s\n4 %s\n5 %s\n", key1_hex, key1_hex, key1_hex,
             key1_hex, key1_hex);                                           /* too many */
    expect_parse_error(text, "00112233");
    snprintf(text, sizeof(text), "%s\n", key1_hex);                         /* no id */
    expect_parse_error(text, "00112233");
}

static void test_keyring_file_permissions(void **state)
{
    char dir[] = "/tmp/qr-creds-XXXXXX", path[64], err[256];
    struct keyring kr;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/secret", dir);
    assert_int_equal(keyring_generate(path, 9, err, sizeof(err)), 0);
    assert_int_equal(keyring_generate(path, 9, err, sizeof(err)), -1); /* never overwrites */
    assert_int_equal(keyring_load(path, &kr, err, sizeof(err)), 0);
    assert_int_equal(kr.n, 1);
    assert_int_equal(kr.keys[0].id, 9);
    assert_int_equal(kr.keys[0].len, 32);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(keyring_load(path, &kr, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "chmod"));
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_derive_and_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legs_of_a_link_match_and_links_differ, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_session_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_ufrag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_ufrag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_known_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_kid_swap_is_forged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_ufrags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_transition, setup, teardown),
        cmocka_unit_test(test_keyring_errors_hide_secrets),
        cmocka_unit_test(test_keyring_file_permissions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
