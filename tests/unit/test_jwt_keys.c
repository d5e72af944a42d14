/* EHR session tokens: signing with a PEM key, key loading (PEM and JWKS:
 * what is refused, and why, all or nothing) and key generation. Keys are made
 * at test time (ES256, EdDSA, RS256) by the fixture in jwt_fixtures.c; the
 * token table is in test_jwt.c. */
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

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void write_pub_pem(const char *path, EVP_PKEY *k)
{
    BIO *bio = BIO_new_file(path, "w");

    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k), 1);
    BIO_free(bio);
}

/* --- signing ---------------------------------------------------------------- */

static void test_sign_pem(void **state)
{
    const struct fixture *f = *state;
    json_t *claims = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "iss", ISS, "aud", "quietroom",
                               "sub", "u", "role", "patient", "sid", "s", "jti", "j", "iat",
                               (json_int_t)NOW, "exp", (json_int_t)(NOW + 60));
    json_t *arr = json_array();
    char err[256], *tok, *dot;
    uint8_t raw[256];
    size_t len;
    struct jwt_claims c;

    for (int k = K_ES; k <= K_RS; k++) {
        assert_int_equal(jwt_sign_pem(f->key[k], tkeys[k].kid, claims, &tok, err, sizeof(err)), 0);
        assert_int_equal(verify_str(f->by_pem, tok, &c), JWT_OK);
        assert_int_equal(verify_str(f->by_jwks, tok, &c), JWT_OK);
        dot = strchr(tok, '.');
        assert_int_equal(jwt__b64url_decode(tok, (size_t)(dot - tok), raw, sizeof(raw), &len), 0);
        raw[len] = '\0';
        if (k == K_ES) {
            assert_string_equal((char *)raw,
                                "{\"alg\":\"ES256\",\"kid\":\"k-es\",\"typ\":\"JWT\"}");
            /* raw r||s: 64 bytes are 86 characters */
            assert_int_equal(strlen(strrchr(tok, '.') + 1), 86);
        }
        free(tok);
    }
    tok = (char *)1;
    assert_int_equal(jwt_sign_pem(f->pub[K_ES], "k", claims, &tok, err, sizeof(err)), -1);
    assert_null(tok);
    assert_non_null(strstr(err, f->pub[K_ES]));
    assert_int_equal(jwt_sign_pem(f->key[K_ES], "", claims, &tok, err, sizeof(err)), -1);
    assert_int_equal(jwt_sign_pem(f->key[K_ES], "k", arr, &tok, err, sizeof(err)), -1);
    assert_int_equal(jwt_sign_pem("/nonexistent/k.key", "k", claims, &tok, err, sizeof(err)), -1);
    json_decref(arr);
    json_decref(claims);
}

/* --- keys -------------------------------------------------------------------- */

static void expect_pem_refused(const char *kid, const char *path, const char *why)
{
    struct jwt_keyset *ks = jwt_keyset_new();
    char err[512] = "";

    assert_int_equal(jwt_keyset_add_pem(ks, kid, path, err, sizeof(err)), -1);
    assert_int_equal(jwt_keyset_count(ks), 0);
    if (strstr(err, why) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, why);
    jwt_keyset_free(ks);
}

static void test_keyset_pem(void **state)
{
    const struct fixture *f = *state;
    struct jwt_keyset *ks = jwt_keyset_new();
    EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
    char path[256], err[512], *tok;
    struct jwt_claims c;
    BIO *bio;

    /* A private key serves through its public half. */
    assert_int_equal(jwt_keyset_add_pem(ks, "k-es", f->key[K_ES], err, sizeof(err)), 0);
    tok = mint(f, K_ES, NULL);
    assert_int_equal(verify_str(ks, tok, &c), JWT_OK);
    free(tok);
    assert_int_equal(jwt_keyset_add_pem(ks, "k-es", f->pub[K_ED], err, sizeof(err)), -1);
    assert_non_null(strstr(err, "already"));
    assert_int_equal(jwt_keyset_count(ks), 1);
    jwt_keyset_free(ks);

    expect_pem_refused("k", path_in(f, "missing.pem", path, sizeof(path)), "missing.pem");
    write_pub_pem(path_in(f, "rsa1024.pem", path, sizeof(path)), weak);
    expect_pem_refused("k", path, "1024 bits");
    write_pub_pem(path_in(f, "p384.pem", path, sizeof(path)), p384);
    expect_pem_refused("k", path, "P-256");
    write_pub_pem(path_in(f, "ed448.pem", path, sizeof(path)), ed448);
    expect_pem_refused("k", path, "unsupported key type");
    write_text(path_in(f, "garbage.pem", path, sizeof(path)), "-----BEGIN PUBLIC KEY-----\nAA\n");
    expect_pem_refused("k", path, "no public or private PEM key");
    expect_pem_refused("k", f->dir, "not a regular file");
    expect_pem_refused("", f->pub[K_ES], "kid must be");
    expect_pem_refused(X16 X16 X16 X16 "x", f->pub[K_ES], "kid must be");
    expect_pem_refused("a\tb", f->pub[K_ES], "kid must be");
    /* An encrypted key is refused without asking for a passphrase. */
    bio = BIO_new_file(path_in(f, "enc.key", path, sizeof(path)), "w");
    assert_int_equal(
        PEM_write_bio_PKCS8PrivateKey(bio, f->priv[K_ES], EVP_aes_128_cbc(), "pw", 2, NULL, NULL),
        1);
    BIO_free(bio);
    expect_pem_refused("k", path, "encrypted");
    EVP_PKEY_free(weak);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(ed448);
}

/* Writes {"keys": [jwk...]} (consuming them) and tries to load it. */
static int load_jwks(const struct fixture *f, struct jwt_keyset *ks, char *err, size_t errlen,
                     json_t *keys)
{
    char path[256];

    write_jwks(path_in(f, "t.jwks.json", path, sizeof(path)), keys);
    return jwt_keyset_add_jwks(ks, path, err, errlen);
}

/* Edits the JWK of k with patch; expects the file refused for why. */
static void expect_jwk_refused(const struct fixture *f, enum tkey k, const char *patch,
                               const char *why)
{
    struct jwt_keyset *ks = jwt_keyset_new();
    json_t *jwk = jwk_of(f, k);
    char err[512] = "";

    merge(jwk, patch, false);
    if (load_jwks(f, ks, err, sizeof(err), json_pack("[o,o]", jwk_of(f, K_ED), jwk)) != -1)
        fail_msg("JWK %s accepted", patch);
    assert_int_equal(jwt_keyset_count(ks), 0);
    if (strstr(err, why) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", patch, err, why);
    jwt_keyset_free(ks);
}

static json_t *rsa1024_jwk(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    BIGNUM *n = NULL, *e = NULL;
    uint8_t nb[256], eb[8];
    char *ns, *es;
    json_t *jwk;

    assert_true(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n));
    assert_true(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e));
    ns = b64url(nb, (size_t)BN_bn2bin(n, nb));
    es = b64url(eb, (size_t)BN_bn2bin(e, eb));
    jwk = json_pack("{s:s,s:s,s:s,s:s}", "kty", "RSA", "kid", "weak", "n", ns, "e", es);
    free(ns);
    free(es);
    BN_free(n);
    BN_free(e);
    EVP_PKEY_free(k);
    return jwk;
}

static void test_keyset_jwks(void **state)
{
    const struct fixture *f = *state;
    struct jwt_keyset *ks = jwt_keyset_new();
    char err[512] = "", path[256];
    json_t *enc = jwk_of(f, K_OTHER);

    assert_int_equal(jwt_keyset_count(f->by_jwks), 3);
    /* A key for encryption is skipped, not refused. */
    json_object_set_new(enc, "use", json_string("enc"));
    assert_int_equal(load_jwks(f, ks, err, sizeof(err), json_pack("[o,o]", enc, jwk_of(f, K_RS))),
                     0);
    assert_int_equal(jwt_keyset_count(ks), 1);
    /* All or nothing: a bad key leaves the keyset as it was. */
    assert_int_equal(
        load_jwks(f, ks, err, sizeof(err),
                  json_pack("[o,{s:s,s:s}]", jwk_of(f, K_ES), "kty", "oct", "k", "c2VjcmV0")),
        -1);
    assert_int_equal(jwt_keyset_count(ks), 1);
    assert_non_null(strstr(err, "keys[1]"));
    assert_null(strstr(err, "c2VjcmV0"));
    jwt_keyset_free(ks);

    expect_jwk_refused(f, K_RS, "{\"alg\":\"HS256\"}", "symmetric");
    expect_jwk_refused(f, K_ES, "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}", "symmetric");
    expect_jwk_refused(f, K_ES, "{\"alg\":\"RS256\"}", "alg does not match");
    expect_jwk_refused(f, K_RS, "{\"alg\":\"PS256\"}", "alg does not match");
    expect_jwk_refused(f, K_ES, "{\"kid\":null}", "kid is required");
    expect_jwk_refused(f, K_ES, "{\"kid\":\"k-ed\"}", "already");
    expect_jwk_refused(f, K_ES, "{\"crv\":\"P-384\"}", "not a usable");
    expect_jwk_refused(f, K_ES, "{\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
                       "not a usable");
    expect_jwk_refused(f, K_ES, "{\"x\":\"AAAA\"}", "not a usable");
    expect_jwk_refused(f, K_ED, "{\"x\":\"AA==\"}", "not a usable");
    expect_jwk_refused(f, K_ED, "{\"crv\":\"Ed448\"}", "not a usable");
    expect_jwk_refused(f, K_RS, "{\"n\":null}", "not a usable");
    expect_jwk_refused(f, K_RS, "{\"kty\":\"DSA\"}", "not a usable");
    expect_jwk_refused(f, K_RS, "{\"use\":7}", "not a JWK");

    ks = jwt_keyset_new();
    assert_int_equal(load_jwks(f, ks, err, sizeof(err), json_pack("[o]", rsa1024_jwk())), -1);
    assert_non_null(strstr(err, "1024 bits"));
    assert_int_equal(load_jwks(f, ks, err, sizeof(err), json_pack("[o]", jwk_of(f, K_ES))), 0);
    assert_int_equal(load_jwks(f, ks, err, sizeof(err), json_pack("[o]", jwk_of(f, K_ES))), -1);
    assert_non_null(strstr(err, "already"));
    json_object_set_new(enc = jwk_of(f, K_ES), "use", json_string("enc"));
    assert_int_equal(load_jwks(f, ks, err, sizeof(err), json_pack("[o]", enc)), -1);
    assert_non_null(strstr(err, "no signing key"));
    assert_int_equal(
        jwt_keyset_add_jwks(ks, path_in(f, "none.json", path, sizeof(path)), err, sizeof(err)), -1);
    write_text(path, "{\"keys\": [}");
    assert_int_equal(jwt_keyset_add_jwks(ks, path, err, sizeof(err)), -1);
    write_text(path, "{\"keys\": {}}");
    assert_int_equal(jwt_keyset_add_jwks(ks, path, err, sizeof(err)), -1);
    write_text(path, "{\"keys\": [], \"keys\": []}");
    assert_int_equal(jwt_keyset_add_jwks(ks, path, err, sizeof(err)), -1);
    assert_int_equal(jwt_keyset_count(ks), 1);
    jwt_keyset_free(ks);
}

/* --- key generation ----------------------------------------------------------- */

static void test_keygen(void **state)
{
    const struct fixture *f = *state;
    char prefix[256], path[300], err[512];
    json_error_t jerr;
    struct stat st;
    json_t *doc, *jwk;

    assert_int_equal(stat(f->key[K_ES], &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    doc = json_load_file(f->jwks[K_ES], 0, &jerr);
    jwk = json_array_get(json_object_get(doc, "keys"), 0);
    assert_int_equal(json_object_size(jwk), 7);
    assert_string_equal(json_string_value(json_object_get(jwk, "kid")), "k-es");
    assert_string_equal(json_string_value(json_object_get(jwk, "use")), "sig");
    assert_int_equal(strlen(json_string_value(json_object_get(jwk, "x"))), 43);
    json_decref(doc);

    /* Never overwrites: the existing key is left as it was. */
    snprintf(prefix, sizeof(prefix), "%s/es", f->dir);
    assert_int_equal(jwt_keygen("ec", prefix, "k", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "exists"));
    assert_int_equal(stat(f->key[K_ES], &st), 0);
    /* Refused types and kids create nothing. */
    snprintf(prefix, sizeof(prefix), "%s/bad", f->dir);
    assert_int_equal(jwt_keygen("dsa", prefix, "k", err, sizeof(err)), -1);
    assert_int_equal(jwt_keygen(NULL, prefix, "k", err, sizeof(err)), -1);
    assert_int_equal(jwt_keygen("ec", prefix, "", err, sizeof(err)), -1);
    assert_int_equal(jwt_keygen("ec", "", "k", err, sizeof(err)), -1);
    snprintf(path, sizeof(path), "%s.key", prefix);
    assert_int_equal(stat(path, &st), -1);
    /* A later file that exists undoes the earlier ones. */
    snprintf(path, sizeof(path), "%s.jwks.json", prefix);
    write_text(path, "{}");
    assert_int_equal(jwt_keygen("ed25519", prefix, "k", err, sizeof(err)), -1);
    snprintf(path, sizeof(path), "%s.key", prefix);
    assert_int_equal(stat(path, &st), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_pem),
        cmocka_unit_test(test_keyset_pem),
        cmocka_unit_test(test_keyset_jwks),
        cmocka_unit_test(test_keygen),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
