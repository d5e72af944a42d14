/* EHR session tokens: a table of tokens, each forged here with OpenSSL
 * independently of jwt.c, and the exact code each must get. Keys are made at
 * test time (ES256, EdDSA, RS256) and loaded both from PEM and from one JWKS
 * file; every row runs against both keysets. Then bytes that are not a
 * token, the size limit, base64url, the claims copied out (also from refused
 * tokens), policy edges and the error codes. Signing, key
 * loading and key generation are in test_jwt_keys.c; the keys and the forging
 * in jwt_fixtures.c. */
#include <fcntl.h>
#include <ftw.h>
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
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../../common/auth/jwt_internal.h"
#include "quietroom/auth/jwt.h"

#include "jwt_fixtures.h"

/* --- the token table ------------------------------------------------------- */

#define OK JWT_OK
#define E(x) JWT_ERR_##x

static const struct tcase cases[] = {
    /* accepted */
    {"ES256", K_ES, .want = OK},
    {"EdDSA", K_ED, .want = OK},
    {"RS256", K_RS, .want = OK},
    {"typ absent", K_ES, .header = "{\"typ\":null}", .want = OK},
    {"typ in lower case", K_ED, .header = "{\"typ\":\"jwt\"}", .want = OK},
    {"jku and x5u are ignored, not followed", K_ES,
     .header = "{\"jku\":\"https://evil.example/k\",\"x5u\":\"https://evil.example/c\"}",
     .want = OK},
    {"name and 42cfr_part2", K_RS, .claims = "{\"name\":\"Dr. Ada\",\"42cfr_part2\":true}",
     .want = OK},
    {"empty name, part2 false", K_ES, .claims = "{\"name\":\"\",\"42cfr_part2\":false}",
     .want = OK},
    {"locale es-MX", K_ES, .claims = "{\"locale\":\"es-MX\"}", .want = OK},
    {"aud array containing ours", K_ES, .claims = "{\"aud\":[\"billing\",\"quietroom\"]}",
     .want = OK},
    {"expired but within skew", K_ES, .claims = "{\"iat\":-600,\"exp\":-60}", .want = OK},
    {"nbf within skew", K_ES, .claims = "{\"nbf\":60}", .want = OK},
    {"nbf in the past", K_ED, .claims = "{\"nbf\":-10}", .want = OK},
    {"iat within skew", K_ES, .claims = "{\"iat\":60,\"exp\":600}", .want = OK},
    {"lifetime exactly the limit", K_ES, .claims = "{\"iat\":0,\"exp\":3600}", .want = OK},
    {"real NumericDates", K_ED, .claims = "{\"iat\":-0.5,\"exp\":600.25,\"nbf\":-1.5}", .want = OK},
    {"127-byte sid", K_ES, .claims = "{\"sid\":\"" X127 "\"}", .want = OK},
    {"unknown claims ignored", K_ES, .claims = "{\"scope\":[\"video\"],\"x\":{}}", .want = OK},
    /* alg none and HMAC: refused before any key is looked at */
    {"alg none, unsigned", K_ES, .header = "{\"alg\":\"none\"}", .sig = SIG_EMPTY,
     .want = E(ALG_NONE)},
    {"alg NoNe", K_ES, .header = "{\"alg\":\"NoNe\"}", .sig = SIG_EMPTY, .want = E(ALG_NONE)},
    {"alg none with a signature", K_ES, .header = "{\"alg\":\"none\"}", .want = E(ALG_NONE)},
    {"alg none, no kid", K_ES, .header = "{\"alg\":\"none\",\"kid\":null}", .sig = SIG_EMPTY,
     .want = E(ALG_NONE)},
    {"HS256 keyed with the EC public key", K_ES, .header = "{\"alg\":\"HS256\"}", .sig = SIG_HMAC,
     .want = E(ALG_HMAC)},
    {"HS256 keyed with the RSA public key", K_RS, .header = "{\"alg\":\"HS256\"}", .sig = SIG_HMAC,
     .want = E(ALG_HMAC)},
    {"HS384", K_RS, .header = "{\"alg\":\"HS384\"}", .sig = SIG_HMAC, .want = E(ALG_HMAC)},
    {"HS512", K_ED, .header = "{\"alg\":\"HS512\"}", .sig = SIG_HMAC, .want = E(ALG_HMAC)},
    {"hs256", K_ES, .header = "{\"alg\":\"hs256\"}", .sig = SIG_HMAC, .want = E(ALG_HMAC)},
    {"ES384", K_ES, .header = "{\"alg\":\"ES384\"}", .want = E(ALG_UNSUPPORTED)},
    {"PS256", K_RS, .header = "{\"alg\":\"PS256\"}", .want = E(ALG_UNSUPPORTED)},
    {"RS512", K_RS, .header = "{\"alg\":\"RS512\"}", .want = E(ALG_UNSUPPORTED)},
    {"es256 (alg names are case-sensitive)", K_ES, .header = "{\"alg\":\"es256\"}",
     .want = E(ALG_UNSUPPORTED)},
    {"empty alg", K_ES, .header = "{\"alg\":\"\"}", .want = E(ALG_UNSUPPORTED)},
    {"alg not a string", K_ES, .header = "{\"alg\":256}", .want = E(MALFORMED)},
    {"alg absent", K_ES, .header = "{\"alg\":null}", .want = E(MALFORMED)},
    /* kid */
    {"unknown kid", K_ES, .header = "{\"kid\":\"nope\"}", .want = E(UNKNOWN_KID)},
    {"missing kid", K_ES, .header = "{\"kid\":null}", .want = E(UNKNOWN_KID)},
    {"empty kid", K_ES, .header = "{\"kid\":\"\"}", .want = E(UNKNOWN_KID)},
    {"kid with a trailing space", K_ES, .header = "{\"kid\":\"k-es \"}", .want = E(UNKNOWN_KID)},
    {"kid not a string", K_ES, .header = "{\"kid\":7}", .want = E(MALFORMED)},
    /* alg mismatch: the key decides, not the token */
    {"RS256 header, EC key's kid", K_ES, .header = "{\"alg\":\"RS256\"}", .want = E(ALG_MISMATCH)},
    {"EdDSA header, RSA key's kid", K_RS, .header = "{\"alg\":\"EdDSA\"}", .want = E(ALG_MISMATCH)},
    {"ES256 header, Ed25519 key's kid", K_ED, .header = "{\"alg\":\"ES256\"}",
     .want = E(ALG_MISMATCH)},
    /* signatures */
    {"ES256 signature in DER", K_ES, .sig = SIG_DER, .want = E(BAD_SIGNATURE)},
    {"ES256 signature flipped", K_ES, .sig = SIG_FLIP, .want = E(BAD_SIGNATURE)},
    {"EdDSA signature flipped", K_ED, .sig = SIG_FLIP, .want = E(BAD_SIGNATURE)},
    {"RS256 signature flipped", K_RS, .sig = SIG_FLIP, .want = E(BAD_SIGNATURE)},
    {"ES256 signature short", K_ES, .sig = SIG_SHORT, .want = E(BAD_SIGNATURE)},
    {"EdDSA signature short", K_ED, .sig = SIG_SHORT, .want = E(BAD_SIGNATURE)},
    {"RS256 signature short", K_RS, .sig = SIG_SHORT, .want = E(BAD_SIGNATURE)},
    {"ES256 empty signature", K_ES, .sig = SIG_EMPTY, .want = E(BAD_SIGNATURE)},
    {"signed by another key under kid k-es", K_OTHER, .header = "{\"kid\":\"k-es\"}",
     .want = E(BAD_SIGNATURE)},
    {"another key, its public key embedded", K_OTHER,
     .header = "{\"kid\":\"k-es\",\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\"}}",
     .want = E(BAD_SIGNATURE)},
    {"ES256 payload tampered", K_ES, .claims = "{\"role\":\"clinician\"}", .sig = SIG_SWAP,
     .want = E(BAD_SIGNATURE)},
    {"EdDSA payload tampered", K_ED, .claims = "{\"sid\":\"appt-43\"}", .sig = SIG_SWAP,
     .want = E(BAD_SIGNATURE)},
    {"RS256 payload tampered", K_RS, .claims = "{\"exp\":86400}", .sig = SIG_SWAP,
     .want = E(BAD_SIGNATURE)},
    /* header structure */
    {"crit header", K_ES, .header = "{\"crit\":[\"exp\"],\"exp\":1}", .want = E(MALFORMED)},
    {"typ JOSE", K_ES, .header = "{\"typ\":\"JOSE\"}", .want = E(MALFORMED)},
    {"typ not a string", K_ES, .header = "{\"typ\":1}", .want = E(MALFORMED)},
    {"header not JSON", K_ES, .header_raw = "{alg:ES256}", .want = E(MALFORMED)},
    {"header an array", K_ES, .header_raw = "[\"ES256\"]", .want = E(MALFORMED)},
    {"header a string", K_ES, .header_raw = "\"ES256\"", .want = E(MALFORMED)},
    {"header with two algs", K_ES,
     .header_raw = "{\"alg\":\"ES256\",\"kid\":\"k-es\",\"alg\":\"none\"}", .want = E(MALFORMED)},
    {"header with trailing bytes", K_ES, .header_raw = "{\"alg\":\"ES256\",\"kid\":\"k-es\"}x",
     .want = E(MALFORMED)},
    {"payload not JSON (signed)", K_ES, .claims_raw = "iss=ehr", .want = E(MALFORMED)},
    {"payload an array (signed)", K_ED, .claims_raw = "[]", .want = E(MALFORMED)},
    {"payload with two roles (signed)", K_RS,
     .claims_raw = "{\"iss\":\"" ISS "\",\"aud\":\"quietroom\",\"sub\":\"u\",\"role\":\"patient\","
                   "\"sid\":\"s\",\"jti\":\"j\",\"iat\":1800000000,\"exp\":1800000600,"
                   "\"role\":\"clinician\"}",
     .want = E(MALFORMED)},
    /* issuer and audience */
    {"wrong iss", K_ES, .claims = "{\"iss\":\"https://evil.example\"}", .want = E(WRONG_ISSUER)},
    {"iss differs in case", K_ES, .claims = "{\"iss\":\"https://EHR.example\"}",
     .want = E(WRONG_ISSUER)},
    {"iss missing", K_ES, .claims = "{\"iss\":null}", .want = E(MISSING_CLAIM), "iss"},
    {"iss a number", K_ES, .claims = "{\"iss\":1}", .want = E(BAD_CLAIM), "iss"},
    {"wrong aud", K_ES, .claims = "{\"aud\":\"billing\"}", .want = E(WRONG_AUDIENCE)},
    {"aud differs in case", K_ES, .claims = "{\"aud\":\"Quietroom\"}", .want = E(WRONG_AUDIENCE)},
    {"aud array without ours", K_ED, .claims = "{\"aud\":[\"billing\",\"lab\"]}",
     .want = E(WRONG_AUDIENCE)},
    {"aud empty array", K_ES, .claims = "{\"aud\":[]}", .want = E(WRONG_AUDIENCE)},
    {"aud array with a number", K_ES, .claims = "{\"aud\":[\"quietroom\",5]}", .want = E(BAD_CLAIM),
     "aud"},
    {"aud a number", K_ES, .claims = "{\"aud\":5}", .want = E(BAD_CLAIM), "aud"},
    {"aud missing", K_ES, .claims = "{\"aud\":null}", .want = E(MISSING_CLAIM), "aud"},
    /* times */
    {"expired beyond skew", K_ES, .claims = "{\"iat\":-600,\"exp\":-61}", .want = E(EXPIRED)},
    {"expired long ago", K_RS, .claims = "{\"iat\":-86400,\"exp\":-83000}", .want = E(EXPIRED)},
    {"nbf in the future", K_ES, .claims = "{\"nbf\":61}", .want = E(NOT_YET_VALID)},
    {"iat in the future", K_ED, .claims = "{\"iat\":61,\"exp\":600}", .want = E(ISSUED_IN_FUTURE)},
    {"lifetime too long", K_ES, .claims = "{\"iat\":0,\"exp\":3601}", .want = E(LIFETIME_TOO_LONG)},
    {"lifetime of a year", K_RS, .claims = "{\"iat\":-10,\"exp\":31536000}",
     .want = E(LIFETIME_TOO_LONG)},
    {"exp missing", K_ES, .claims = "{\"exp\":null}", .want = E(MISSING_CLAIM), "exp"},
    {"iat missing", K_ES, .claims = "{\"iat\":null}", .want = E(MISSING_CLAIM), "iat"},
    {"iat missing, also expired", K_ES, .claims = "{\"iat\":null,\"exp\":-1000}",
     .want = E(MISSING_CLAIM), "iat"},
    {"exp a string", K_ES, .claims = "{\"exp\":\"tomorrow\"}", .want = E(BAD_CLAIM), "exp"},
    {"exp negative", K_ES, .claims = "{\"exp\":-1800000001}", .want = E(BAD_CLAIM), "exp"},
    {"exp absurdly far", K_ES, .claims = "{\"exp\":1e300}", .want = E(BAD_CLAIM), "exp"},
    {"nbf a string", K_ES, .claims = "{\"nbf\":\"now\"}", .want = E(BAD_CLAIM), "nbf"},
    {"iat a boolean", K_ES, .claims = "{\"iat\":true}", .want = E(BAD_CLAIM), "iat"},
    /* identity claims */
    {"sid missing", K_ES, .claims = "{\"sid\":null}", .want = E(MISSING_CLAIM), "sid"},
    {"role missing", K_ED, .claims = "{\"role\":null}", .want = E(MISSING_CLAIM), "role"},
    {"sub missing", K_RS, .claims = "{\"sub\":null}", .want = E(MISSING_CLAIM), "sub"},
    {"jti missing", K_ES, .claims = "{\"jti\":null}", .want = E(MISSING_CLAIM), "jti"},
    {"iss and sid missing: iss first", K_ES, .claims = "{\"iss\":null,\"sid\":null}",
     .want = E(MISSING_CLAIM), "iss"},
    {"sid a number", K_ES, .claims = "{\"sid\":42}", .want = E(BAD_CLAIM), "sid"},
    {"sid an array", K_ES, .claims = "{\"sid\":[]}", .want = E(BAD_CLAIM), "sid"},
    {"sid empty", K_ES, .claims = "{\"sid\":\"\"}", .want = E(BAD_CLAIM), "sid"},
    {"128-byte sid", K_ES, .claims = "{\"sid\":\"" X128 "\"}", .want = E(BAD_CLAIM), "sid"},
    {"jti an array", K_ED, .claims = "{\"jti\":[\"a\"]}", .want = E(BAD_CLAIM), "jti"},
    {"sub with a newline", K_ES, .claims = "{\"sub\":\"a\\nb\"}", .want = E(BAD_CLAIM), "sub"},
    {"role an object", K_ES, .claims = "{\"role\":{}}", .want = E(BAD_CLAIM), "role"},
    {"name a number", K_ES, .claims = "{\"name\":7}", .want = E(BAD_CLAIM), "name"},
    {"128-byte name", K_ES, .claims = "{\"name\":\"" X128 "\"}", .want = E(BAD_CLAIM), "name"},
    /* An unusable locale is left out, never a reason to refuse. */
    {"locale a number", K_ES, .claims = "{\"locale\":7}", .want = OK},
    {"locale en_US", K_ES, .claims = "{\"locale\":\"en_US\"}", .want = OK},
    {"42cfr_part2 a string", K_RS, .claims = "{\"42cfr_part2\":\"yes\"}", .want = E(BAD_CLAIM),
     "42cfr_part2"},
    {"role billing", K_ES, .claims = "{\"role\":\"billing\"}", .want = E(ROLE_NOT_ALLOWED)},
    {"role Patient", K_ED, .claims = "{\"role\":\"Patient\"}", .want = E(ROLE_NOT_ALLOWED)},
};

static void test_token_table(void **state)
{
    const struct fixture *f = *state;
    const struct jwt_keyset *sets[] = {f->by_pem, f->by_jwks};
    const char *set_names[] = {"PEM", "JWKS"};
    unsigned failures = 0;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct tcase *c = &cases[i];
        char *tok = forge(f, c);

        for (size_t s = 0; s < 2; s++) {
            struct jwt_claims cl;
            enum jwt_error e = verify_str(sets[s], tok, &cl);
            const char *want_missing = c->missing ? c->missing : "";

            if (e != c->want || strcmp(cl.missing, want_missing) != 0) {
                print_error("%s [%s]: got %s (%s), want %s (%s)\n", c->name, set_names[s],
                            jwt_error_code(e), cl.missing, jwt_error_code(c->want), want_missing);
                failures++;
            }
        }
        free(tok);
    }
    assert_int_equal(failures, 0);
}

/* --- structure: bytes that are not a token --------------------------------- */

static void expect(const struct fixture *f, const char *tok, size_t len, enum jwt_error want)
{
    struct jwt_claims cl;
    enum jwt_error e = jwt_verify(f->by_pem, &policy, tok, len, NOW, &cl);

    if (e != want)
        fail_msg("got %s, want %s", jwt_error_code(e), jwt_error_code(want));
}

static void expect_edit(const struct fixture *f, const char *before, const char *tok,
                        const char *after, enum jwt_error want)
{
    char *edited;

    assert_true(asprintf(&edited, "%s%s%s", before, tok, after) > 0);
    expect(f, edited, strlen(edited), want);
    free(edited);
}

static void test_malformed(void **state)
{
    const struct fixture *f = *state;
    static const char *const literal[] = {
        "",
        ".",
        "..",
        "...",
        "abc",
        "a.b",
        "a.b.c.d",
        "e30.e30",
        ".e30.",
        "e30..",
        "eyJhbGciOiJFUzI1NiJ9=.e30.",
        "eyJhbGciOiJFUzI1NiJ9.e30.A",
        "e+30.e30.",
        "e/30.e30.",
        "eyJhbGciOiJFUzI1NiJ9 .e30.",
        "\"eyJhbGciOiJFUzI1NiJ9\".e30.",
    };
    char *tok = mint(f, K_ES, NULL);
    char *p = strrchr(tok, '.');

    for (size_t i = 0; i < sizeof(literal) / sizeof(literal[0]); i++)
        expect(f, literal[i], strlen(literal[i]), JWT_ERR_MALFORMED);
    expect(f, NULL, 0, JWT_ERR_MALFORMED);
    expect(f, tok, strlen(tok), JWT_OK);
    expect_edit(f, "", tok, ".", JWT_ERR_MALFORMED);
    expect_edit(f, "", tok, ".e30", JWT_ERR_MALFORMED);
    expect_edit(f, "", tok, " ", JWT_ERR_MALFORMED);
    expect_edit(f, "", tok, "\n", JWT_ERR_MALFORMED);
    expect_edit(f, "", tok, "==", JWT_ERR_MALFORMED);
    expect_edit(f, " ", tok, "", JWT_ERR_MALFORMED);
    expect_edit(f, "Bearer ", tok, "", JWT_ERR_MALFORMED);
    /* A NUL inside the given length. */
    expect(f, tok, strlen(tok) + 1, JWT_ERR_MALFORMED);
    /* Two parts: the signature dropped with its dot. */
    expect(f, tok, (size_t)(p - tok), JWT_ERR_MALFORMED);
    /* Unused low bits of the last character set: same bytes, other text. */
    assert_int_equal(strlen(p + 1) % 4, 2);
    tok[strlen(tok) - 1]++;
    expect(f, tok, strlen(tok), JWT_ERR_MALFORMED);
    free(tok);
}

/* The largest signed token that fits is accepted; one byte more is not. */
static void test_size_limit(void **state)
{
    const struct fixture *f = *state;
    char patch[QR_TOKEN_MAX + 64], pad[QR_TOKEN_MAX];
    size_t under = 0, over = 0;

    for (size_t n = 5600; n < 6200 && (under == 0 || over == 0); n++) {
        char *tok;
        size_t len;

        memset(pad, 'p', n);
        pad[n] = '\0';
        snprintf(patch, sizeof(patch), "{\"pad\":\"%s\"}", pad);
        tok = mint(f, K_ES, patch);
        len = strlen(tok);
        if (len <= QR_TOKEN_MAX) {
            under = len;
            expect(f, tok, len, JWT_OK);
        } else {
            over = len;
            expect(f, tok, len, JWT_ERR_TOO_LARGE);
        }
        free(tok);
    }
    assert_true(under > QR_TOKEN_MAX - 4 && over > QR_TOKEN_MAX && over < QR_TOKEN_MAX + 4);
    memset(pad, 'A', sizeof(pad));
    expect(f, pad, sizeof(pad), JWT_ERR_MALFORMED);
    expect(f, patch, QR_TOKEN_MAX + 1, JWT_ERR_TOO_LARGE);
}

static void test_b64url(void **state)
{
    static const struct {
        const char *text;
        int rc;
        size_t len;
    } cases_b64[] = {
        {"", 0, 0},     {"QQ", 0, 1},    {"QUI", 0, 2},   {"QUJD", 0, 3}, {"QR", -1, 0},
        {"QUJ", -1, 0}, {"Q", -1, 0},    {"QQ==", -1, 0}, {"Q+8", -1, 0}, {"Q_8", 0, 2},
        {"-_-_", 0, 3}, {"QQ\n", -1, 0}, {"Q Q", -1, 0},
    };
    uint8_t out[8];
    size_t len;

    (void)state;
    for (size_t i = 0; i < sizeof(cases_b64) / sizeof(cases_b64[0]); i++) {
        int rc = jwt__b64url_decode(cases_b64[i].text, strlen(cases_b64[i].text), out, sizeof(out),
                                    &len);

        if (rc != cases_b64[i].rc || (rc == 0 && len != cases_b64[i].len))
            fail_msg("\"%s\": rc %d", cases_b64[i].text, rc);
    }
    assert_int_equal(jwt__b64url_decode("QUJD", 4, out, 2, &len), -1);
    assert_int_equal(jwt__b64url_decode("QUJDRA", 6, out, 4, &len), 0);
    assert_memory_equal(out, "ABCD", 4);
}

/* --- claims copied out ------------------------------------------------------ */

static void test_claims_copied(void **state)
{
    const struct fixture *f = *state;
    char *tok = mint(f, K_ED,
                     "{\"name\":\"Dr. Ada\",\"42cfr_part2\":true,\"nbf\":-5,\"locale\":\"es\","
                     "\"iat\":-10,\"exp\":900,\"role\":\"clinician\"}");
    struct jwt_claims c;

    assert_int_equal(verify_str(f->by_jwks, tok, &c), JWT_OK);
    assert_string_equal(c.kid, "k-ed");
    assert_int_equal(c.alg, JWT_ALG_EDDSA);
    assert_string_equal(c.iss, ISS);
    assert_string_equal(c.sub, "user-1");
    assert_string_equal(c.role, "clinician");
    assert_string_equal(c.sid, "appt-42");
    assert_string_equal(c.jti, "jti-1");
    assert_string_equal(c.name, "Dr. Ada");
    assert_string_equal(c.locale, "es");
    assert_true(c.part2);
    assert_int_equal(c.exp, NOW + 900);
    assert_int_equal(c.iat, NOW - 10);
    assert_int_equal(c.nbf, NOW - 5);
    assert_string_equal(c.missing, "");
    free(tok);

    tok = mint(f, K_RS, NULL);
    assert_int_equal(verify_str(f->by_pem, tok, &c), JWT_OK);
    assert_string_equal(c.kid, "k-rs");
    assert_int_equal(c.alg, JWT_ALG_RS256);
    assert_string_equal(c.name, "");
    assert_string_equal(c.locale, "");
    assert_false(c.part2);
    assert_int_equal(c.nbf, 0);
    free(tok);

    for (unsigned i = 0; i < 4; i++) {
        static const char *const bad[] = {"{\"locale\":\"en_US\"}", "{\"locale\":\"e\"}",
                                          "{\"locale\":\"es-\"}", "{\"locale\":[\"es\"]}"};

        tok = mint(f, K_ES, bad[i]);
        assert_int_equal(verify_str(f->by_pem, tok, &c), JWT_OK);
        assert_string_equal(c.locale, "");
        free(tok);
    }
    assert_true(jwt_locale_ok("es-419"));
    assert_false(jwt_locale_ok("abcdefghijklmnopqrstuvwxyz0123456789"));
}

/* A refused token whose signature is good still yields its claims, for the
 * audit record; one whose signature is not yields nothing. */
static void test_refused_claims(void **state)
{
    const struct fixture *f = *state;
    char *tok = mint(f, K_ES, "{\"role\":\"billing\"}");
    struct jwt_claims c;
    static const struct jwt_claims zero;
    struct tcase forged = {"forged", K_OTHER, .header = "{\"kid\":\"k-es\"}"};

    assert_int_equal(verify_str(f->by_pem, tok, &c), JWT_ERR_ROLE_NOT_ALLOWED);
    assert_string_equal(c.kid, "k-es");
    assert_string_equal(c.role, "billing");
    assert_string_equal(c.sid, "appt-42");
    assert_string_equal(c.missing, "");
    free(tok);
    tok = mint(f, K_RS, "{\"iat\":-7200,\"exp\":-3600,\"name\":\"N\",\"42cfr_part2\":true}");
    assert_int_equal(verify_str(f->by_pem, tok, &c), JWT_ERR_EXPIRED);
    assert_string_equal(c.sub, "user-1");
    assert_string_equal(c.jti, "jti-1");
    assert_string_equal(c.name, "N");
    assert_true(c.part2);
    assert_int_equal(c.exp, NOW - 3600);
    free(tok);
    tok = mint(f, K_ES, "{\"jti\":null,\"sid\":7}");
    assert_int_equal(verify_str(f->by_pem, tok, &c), JWT_ERR_MISSING_CLAIM);
    assert_string_equal(c.missing, "jti");
    assert_string_equal(c.sub, "user-1");
    assert_string_equal(c.sid, "");
    free(tok);
    tok = forge(f, &forged);
    assert_int_equal(verify_str(f->by_pem, tok, &c), JWT_ERR_BAD_SIGNATURE);
    assert_memory_equal(&c, &zero, sizeof(c));
    free(tok);
}

static void test_policy_edges(void **state)
{
    const struct fixture *f = *state;
    char *tok = mint(f, K_ES, "{\"iat\":-1000,\"exp\":-120}");
    struct jwt_policy p = policy;
    struct jwt_claims c;

    /* A skew above the cap is clamped to 60 s. */
    p.max_skew_s = 600;
    assert_int_equal(jwt_verify(f->by_pem, &p, tok, strlen(tok), NOW, &c), JWT_ERR_EXPIRED);
    free(tok);
    tok = mint(f, K_ES, NULL);
    p = policy;
    p.roles = NULL;
    assert_int_equal(jwt_verify(f->by_pem, &p, tok, strlen(tok), NOW, &c),
                     JWT_ERR_ROLE_NOT_ALLOWED);
    p = policy;
    p.issuer = NULL;
    assert_int_equal(jwt_verify(f->by_pem, &p, tok, strlen(tok), NOW, &c), JWT_ERR_WRONG_ISSUER);
    p = policy;
    p.audience = NULL;
    assert_int_equal(jwt_verify(f->by_pem, &p, tok, strlen(tok), NOW, &c), JWT_ERR_WRONG_AUDIENCE);
    /* No skew: one second past exp is expired. */
    p = policy;
    p.max_skew_s = 0;
    assert_int_equal(jwt_verify(f->by_pem, &p, tok, strlen(tok), NOW + 600, &c), JWT_OK);
    assert_int_equal(jwt_verify(f->by_pem, &p, tok, strlen(tok), NOW + 601, &c), JWT_ERR_EXPIRED);
    free(tok);
}


static void test_error_codes(void **state)
{
    static const char *const want[JWT_ERR_COUNT] = {
        "ok",
        "token_too_large",
        "token_malformed",
        "token_alg_none",
        "token_alg_hmac",
        "token_alg_unsupported",
        "token_unknown_kid",
        "token_alg_mismatch",
        "token_bad_signature",
        "token_wrong_issuer",
        "token_wrong_audience",
        "token_expired",
        "token_not_yet_valid",
        "token_issued_in_future",
        "token_lifetime_too_long",
        "token_missing_claim",
        "token_bad_claim",
        "token_role_not_allowed",
        "token_replayed",
    };

    (void)state;
    for (int e = 0; e < JWT_ERR_COUNT; e++) {
        assert_non_null(want[e]);
        assert_string_equal(jwt_error_code((enum jwt_error)e), want[e]);
        assert_true(strlen(jwt_error_message((enum jwt_error)e)) > 10);
        for (int o = 0; o < e; o++) {
            assert_string_not_equal(jwt_error_code((enum jwt_error)e),
                                    jwt_error_code((enum jwt_error)o));
            assert_string_not_equal(jwt_error_message((enum jwt_error)e),
                                    jwt_error_message((enum jwt_error)o));
        }
    }
    assert_non_null(jwt_error_code(JWT_ERR_COUNT));
    assert_non_null(jwt_error_message((enum jwt_error) - 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_table),   cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_size_limit),    cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_claims_copied), cmocka_unit_test(test_refused_claims),
        cmocka_unit_test(test_policy_edges),
        cmocka_unit_test(test_error_codes),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
