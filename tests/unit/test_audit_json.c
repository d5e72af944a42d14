/* The shape of a sealed audit line read without parsing it: every proper
 * prefix of a sealed line (one made by audit_record_seal, and handmade ones
 * that reach every corner of the grammar) is a fragment, the whole line is
 * not, and each byte the grammar forbids where it stands is refused. The
 * tail check finds the seal at the end of a line that no longer parses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quietroom/audit/audit_json.h"
#include "quietroom/audit/audit_record.h"

#define KEY1 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
/* 44 base64 characters, as a seal is. */
#define MAC "q83vEjRWeJC7zd7vASNFZ4mrze8BI0VniavN7wEjRWc="
#define SEAL ",\"mac\":\"" MAC "\"}"

static bool frag(const char *s)
{
    return audit_json_is_fragment(s, strlen(s));
}

/* Every proper prefix is a fragment; the whole is not. */
static void assert_cut_anywhere(const char *line)
{
    size_t n = strlen(line);

    for (size_t k = 1; k < n; k++) {
        if (!audit_json_is_fragment(line, k))
            fail_msg("prefix of %zu bytes refused: %.*s", k, (int)k, line);
    }
    assert_false(audit_json_is_fragment(line, n));
}

static void test_sealed_line_cut_anywhere(void **state)
{
    struct keyring kr;
    struct hmac *h = hmac_new(HMAC_SHA256);
    json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:[i, f, b, n]}}", "type", "call.start", "room",
                           "r\"1\\\xc3\xa9\x01", "who", "role", "clinician", "n", -7, 2.5e-3,
                           1);
    char mac[AUDIT_MAC_B64], err[256];
    size_t len;
    char *line;

    (void)state;
    assert_non_null(h);
    assert_non_null(ev);
    assert_int_equal(keyring_parse("1 " KEY1 "\n", &kr, err, sizeof(err)), 0);
    line = audit_record_seal(ev, 7, keyring_find(&kr, 1), AUDIT_GENESIS, h, mac, &len);
    assert_non_null(line);
    assert_true(len > 1 && line[len - 1] == '\n');
    line[len - 1] = '\0';
    assert_cut_anywhere(line);
    free(line);
    json_decref(ev);
    hmac_free(h);
    keyring_wipe(&kr);
}

static void test_handmade_cut_anywhere(void **state)
{
    static const char *const lines[] = {
        "{\"mac\":\"" MAC "\"}",
        "{\"a\":1" SEAL,
        "{ \"a\" : [ 1 , -0.5e+10 , 0 , 10E-2 , true , false , null ] ,\t\"b\":{}\r" SEAL,
        "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uABcd\",\"e\":[],\"o\":{\"k\":[[{}]]}" SEAL,
        "{\"m\\u0061c\":{\"mac\":[1]},\"macx\":3,\"ma\":4,\"MAC\":5" SEAL,
        "{\"x\":{\"mac\":\"not a seal\"}" SEAL,
        "{\"key\":\"\xc3\xa9\xe2\x82\xac\x7f\"" SEAL,
    };

    (void)state;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        assert_cut_anywhere(lines[i]);
}

/* Complete objects are not fragments, sealed or not. */
static void test_complete_is_not_fragment(void **state)
{
    (void)state;
    assert_true(frag("{"));
    assert_false(frag("{}"));
    assert_false(frag("{\"a\":1}"));
    assert_false(frag("{\"a\":1} "));
    assert_false(frag("{}{"));
    assert_false(frag("{\"mac\":\"" MAC "\"}x"));
}

static void test_rejects_start(void **state)
{
    (void)state;
    assert_false(audit_json_is_fragment(NULL, 0));
    assert_false(audit_json_is_fragment("{", 0));
    assert_false(frag(" {"));
    assert_false(frag("["));
    assert_false(frag("\"a\""));
    assert_false(frag("1"));
}

static void test_rejects_structure(void **state)
{
    (void)state;
    assert_false(frag("{1"));             /* a key is due */
    assert_false(frag("{,"));
    assert_false(frag("{\"a\"x"));        /* a colon is due */
    assert_false(frag("{\"a\"::"));
    assert_false(frag("{\"a\":}"));       /* a value is due */
    assert_false(frag("{\"a\":,"));
    assert_false(frag("{\"a\":x"));
    assert_false(frag("{\"a\":1 x"));     /* ',' or a closing bracket */
    assert_false(frag("{\"a\":1 2"));
    assert_false(frag("{\"a\":[1}"));     /* brackets must match */
    assert_false(frag("{\"a\":{\"b\":1]"));
    assert_false(frag("{\"a\":[1,]"));
    assert_false(frag("{\"a\":1,}"));
    assert_false(frag("{]"));
    assert_true(frag("{\"a\":[]"));
    assert_true(frag("{\"a\":[ ]"));
}

static void test_rejects_literals_and_numbers(void **state)
{
    (void)state;
    assert_true(frag("{\"a\":tru"));
    assert_false(frag("{\"a\":tru "));
    assert_false(frag("{\"a\":trUe"));
    assert_false(frag("{\"a\":nul!"));
    assert_false(frag("{\"a\":falsy"));
    assert_false(frag("{\"a\":True"));
    assert_false(frag("{\"a\":-x"));
    assert_false(frag("{\"a\":-}"));      /* a sign alone is not a number */
    assert_false(frag("{\"a\":01"));      /* no leading zeros */
    assert_false(frag("{\"a\":-01"));
    assert_false(frag("{\"a\":1.}"));
    assert_false(frag("{\"a\":1..5"));
    assert_false(frag("{\"a\":.5"));
    assert_false(frag("{\"a\":+1"));
    assert_false(frag("{\"a\":1e}"));
    assert_false(frag("{\"a\":1e+}"));
    assert_false(frag("{\"a\":1e5.1"));
    assert_false(frag("{\"a\":1e5e1"));
    assert_false(frag("{\"a\":0x1"));
    assert_true(frag("{\"a\":1e+"));
    assert_true(frag("{\"a\":-0.0e-0"));
    assert_true(frag("{\"a\":1E9,"));
    assert_true(frag("{\"a\":[0]"));
}

static void test_rejects_strings(void **state)
{
    static const char nul_in_string[] = "{\"a\":\"x\0y";
    static const char nul_escape[] = "{\"a\":\"\\\0";

    (void)state;
    assert_false(frag("{\"a\":\"\x01"));  /* control characters */
    assert_false(frag("{\"a\":\"\x1f"));
    assert_false(frag("{\"a\":\"\t"));
    assert_false(frag("{\"\n"));
    assert_false(audit_json_is_fragment(nul_in_string, sizeof(nul_in_string) - 1));
    assert_false(audit_json_is_fragment(nul_escape, sizeof(nul_escape) - 1));
    assert_false(frag("{\"a\":\"\\x"));   /* escapes */
    assert_false(frag("{\"a\":\"\\U0041"));
    assert_false(frag("{\"a\":\"\\u12G4"));
    assert_false(frag("{\"a\":\"\\u12 4"));
    assert_false(frag("{\"a\\q"));
    assert_true(frag("{\"a\":\"\\u12"));
    assert_true(frag("{\"a\":\"\\\\\\\"\\"));
    assert_true(frag("{\"a\":\" \x7f\xff"));
}

/* The seal: a top-level "mac" must be a string of exactly 44 base64
 * characters, and nothing but the closing brace may follow it. */
static void test_rejects_seal(void **state)
{
    (void)state;
    assert_false(frag("{\"mac\":1"));
    assert_false(frag("{\"mac\":[\""));
    assert_false(frag("{\"mac\":{"));
    assert_false(frag("{\"mac\":null"));
    assert_true(frag("{\"mac\" : \"AB"));
    assert_false(frag("{\"mac\":\"AB!"));
    assert_false(frag("{\"mac\":\"AB\\u0041"));   /* no escapes in a seal */
    assert_false(frag("{\"mac\":\"AB\""));        /* too short */
    assert_false(frag("{\"mac\":\"" MAC "A"));    /* too long */
    assert_true(frag("{\"mac\":\"" MAC "\""));
    assert_false(frag("{\"mac\":\"" MAC "\" "));  /* only '}' after the seal */
    assert_false(frag("{\"mac\":\"" MAC "\","));
    assert_false(frag("{\"mac\":\"" MAC "\"]"));
    /* Elsewhere, "mac" is an ordinary key. */
    assert_true(frag("{\"x\":{\"mac\":1"));
    assert_true(frag("{\"x\":[{\"mac\":true,"));
    assert_true(frag("{\"macs\":1"));
    assert_true(frag("{\"ma\":1"));
    assert_true(frag("{\"m\\u0061c\":1,"));
    assert_true(frag("{\"a\":\"mac\",\"b\":1"));
}

/* Nesting up to AUDIT_JSON_DEPTH_MAX brackets, the object itself counted;
 * the next bracket of either kind is refused, a scalar is not. */
static void assert_depth_limit(const char *open, const char *inner)
{
    char buf[8 * AUDIT_JSON_DEPTH_MAX];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "{\"a\":");

    for (int d = 1; d < AUDIT_JSON_DEPTH_MAX; d++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s", open);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s", inner);
    assert_true(audit_json_is_fragment(buf, n));
    buf[n] = '[';
    assert_false(audit_json_is_fragment(buf, n + 1));
    buf[n] = '{';
    assert_false(audit_json_is_fragment(buf, n + 1));
    buf[n] = '1';
    assert_true(audit_json_is_fragment(buf, n + 1));
}

static void test_depth_limit(void **state)
{
    (void)state;
    assert_depth_limit("[", "");
    assert_depth_limit(" [ ", " ");
    assert_depth_limit("{\"k\":", "");
    assert_depth_limit("[0,", "");
}

/* A line of exactly AUDIT_JSON_LINE_MAX bytes is looked at; one more is
 * never a record. */
static void test_line_limit(void **state)
{
    size_t max = AUDIT_JSON_LINE_MAX;
    char *buf = malloc(max + 1);
    char mac[AUDIT_MAC_B64];

    (void)state;
    assert_non_null(buf);
    memcpy(buf, "{\"a\":\"", 6);
    memset(buf + 6, 'x', max + 1 - 6);
    assert_true(audit_json_is_fragment(buf, max));
    assert_false(audit_json_is_fragment(buf, max + 1));
    memcpy(buf + max - strlen(SEAL), SEAL, strlen(SEAL));
    assert_true(audit_json_tail_mac(buf, max, mac));
    assert_string_equal(mac, MAC);
    memmove(buf + 1, buf, max);
    assert_false(audit_json_tail_mac(buf, max + 1, mac));
    free(buf);
}

static void test_tail_mac(void **state)
{
    static const char *const good[] = {
        SEAL,
        "{\"a\":1" SEAL,
        "garbage, no longer JSON {{{" SEAL,
    };
    char mac[AUDIT_MAC_B64];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(mac, 'Z', sizeof(mac));
        assert_true(audit_json_tail_mac(good[i], strlen(good[i]), mac));
        assert_string_equal(mac, MAC);
    }
}

static void test_tail_mac_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "}",
        "\"mac\":\"" MAC "\"}",            /* one byte short: no ',' */
        ",\"mac\":\"" MAC "\"} ",          /* something after the seal */
        ",\"mac\":\"" MAC "\"",
        ",\"mac\":\"" MAC "}",
        ",\"mac\": \"" MAC "\"}",          /* not the writer's spelling */
        ",\"MAC\":\"" MAC "\"}",
        ";\"mac\":\"" MAC "\"}",
        ",\"mac\":\"" MAC "A\"}",          /* 45 characters: the member is shifted */
        ",\"mac\":\"q83vEjRWeJC7zd7vASNFZ4mrze8BI0VniavN7wEjRW!\"}",
        ",\"mac\":\"q83vEjRWeJC7zd7vASNFZ4mrze8BI0VniavN7wEjRW\xc3\"}",
    };
    char mac[AUDIT_MAC_B64], sentinel[AUDIT_MAC_B64];

    (void)state;
    memset(sentinel, 'Z', sizeof(sentinel));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(mac, sentinel, sizeof(mac));
        if (audit_json_tail_mac(bad[i], strlen(bad[i]), mac))
            fail_msg("accepted: %s", bad[i]);
        assert_memory_equal(mac, sentinel, sizeof(mac));   /* untouched */
    }
    assert_false(audit_json_tail_mac(NULL, 0, mac));
    /* Every cut of a sealed tail loses it. */
    for (size_t k = 0; k < strlen(SEAL); k++)
        assert_false(audit_json_tail_mac(SEAL, k, mac));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sealed_line_cut_anywhere),
        cmocka_unit_test(test_handmade_cut_anywhere),
        cmocka_unit_test(test_complete_is_not_fragment),
        cmocka_unit_test(test_rejects_start),
        cmocka_unit_test(test_rejects_structure),
        cmocka_unit_test(test_rejects_literals_and_numbers),
        cmocka_unit_test(test_rejects_strings),
        cmocka_unit_test(test_rejects_seal),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_tail_mac),
        cmocka_unit_test(test_tail_mac_rejects),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
