/* EHR session tokens: a table of tokens, each forged here with OpenSSL
 * independently of jwt.c, and the exact code each must get. Keys are made at
 * test time (ES256, EdDSA, RS256) and loaded both from PEM and from one JWKS
 * file; every row runs against both keysets. Then key loading, signing, key
 * generation, the replay cache and the error codes. */
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

#define NOW INT64_C(1800000000)
#define ISS "https://ehr.example"
#define LIFETIME 3600
#define X16 "xxxxxxxxxxxxxxxx"
#define X127 X16 X16 X16 X16 X16 X16 X16 "xxxxxxxxxxxxxxx"
#define X128 X127 "x"

/* The keys that sign. OTHER is a second EC key that claims kid k-es. */
enum tkey { K_ES, K_ED, K_RS, K_OTHER, K_N };

static const struct {
    const char *type, *kid, *alg;
} tkeys[K_N] = {
    [K_ES] = {"ec", "k-es", "ES256"},
    [K_ED] = {"ed25519", "k-ed", "EdDSA"},
    [K_RS] = {"rsa", "k-rs", "RS256"},
    [K_OTHER] = {"ec", "k-other", "ES256"},
};

struct fixture {
    char dir[64];
    char key[K_N][128];  /* prefix.key */
    char pub[K_N][128];  /* prefix.pub.pem */
    char jwks[K_N][128]; /* prefix.jwks.json */
    char all_jwks[128];  /* ES, EdDSA and RS256 in one JWKS */
    EVP_PKEY *priv[K_N];
    struct jwt_keyset *by_pem, *by_jwks;
};

static const char *const roles[] = {"clinician", "patient", NULL};

static const struct jwt_policy policy = {
    .issuer = ISS,
    .audience = "quietroom",
    .max_skew_s = 60,
    .max_lifetime_s = LIFETIME,
    .roles = roles,
};

/* --- helpers --------------------------------------------------------------- */

static char *b64url(const uint8_t *in, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1);
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);

    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

static char *path_in(const struct fixture *f, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", f->dir, name);
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static char *read_text(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = calloc(1, 1 << 16);

    assert_non_null(fp);
    *len = fread(buf, 1, (1 << 16) - 1, fp);
    fclose(fp);
    return buf;
}

static EVP_PKEY *load_private(const char *path)
{
    BIO *bio = BIO_new_file(path, "r");
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);

    BIO_free(bio);
    assert_non_null(k);
    return k;
}

static void write_pub_pem(const char *path, EVP_PKEY *k)
{
    BIO *bio = BIO_new_file(path, "w");

    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k), 1);
    BIO_free(bio);
}

/* Signs msg the way a JOSE library does (ECDSA as raw r||s) or, with der,
 * the way OpenSSL does. Returns the signature length. */
static size_t sign_with(EVP_PKEY *k, const char *msg, uint8_t *sig, size_t cap, bool der)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const char *md = EVP_PKEY_is_a(k, "ED25519") ? NULL : "SHA256";
    size_t len = cap;

    assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, md, NULL, NULL, k, NULL), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &len, (const unsigned char *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(ctx);
    if (EVP_PKEY_is_a(k, "EC") && !der) {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
        const BIGNUM *r, *s;

        assert_non_null(es);
        ECDSA_SIG_get0(es, &r, &s);
        assert_int_equal(BN_bn2binpad(r, sig, 32), 32);
        assert_int_equal(BN_bn2binpad(s, sig + 32, 32), 32);
        ECDSA_SIG_free(es);
        len = 64;
    }
    return len;
}

/* Merges JSON patch into obj: a null member deletes. With relative, the
 * numbers given for exp, iat and nbf are seconds from NOW. */
static void merge(json_t *obj, const char *patch, bool relative)
{
    json_error_t jerr;
    json_t *p = json_loads(patch, 0, &jerr), *v;
    const char *k;

    if (p == NULL)
        fail_msg("bad patch in the test table: %s", patch);
    json_object_foreach (p, k, v) {
        bool date = relative && (!strcmp(k, "exp") || !strcmp(k, "iat") || !strcmp(k, "nbf"));

        if (json_is_null(v))
            json_object_del(obj, k);
        else if (date && json_is_integer(v))
            json_object_set_new(obj, k, json_integer(NOW + json_integer_value(v)));
        else if (date && json_is_real(v))
            json_object_set_new(obj, k, json_real((double)NOW + json_real_value(v)));
        else
            json_object_set(obj, k, v);
    }
    json_decref(p);
}

static char *dump(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);

    json_decref(v);
    return s;
}

static char *claims_text(const char *patch)
{
    json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "iss", ISS, "aud", "quietroom",
                          "sub", "user-1", "role", "patient", "sid", "appt-42", "jti", "jti-1",
                          "iat", (json_int_t)NOW, "exp", (json_int_t)(NOW + 600));

    if (patch != NULL)
        merge(c, patch, true);
    return dump(c);
}

/* --- the token table ------------------------------------------------------- */

enum sig_mode {
    SIG_JOSE,  /* a correct signature */
    SIG_DER,   /* ECDSA in DER, as OpenSSL makes it, not r||s */
    SIG_EMPTY, /* no signature at all */
    SIG_HMAC,  /* HMAC-SHA256 keyed with the signing key's public PEM */
    SIG_FLIP,  /* a correct signature with one bit flipped */
    SIG_SHORT, /* a correct signature missing its last byte */
    SIG_SWAP,  /* signs the base claims, then carries the patched ones */
};

struct tcase {
    const char *name;
    enum tkey key;
    const char *header;     /* merged into {"alg", "typ", "kid"} of key */
    const char *claims;     /* merged into the base claims */
    const char *header_raw; /* header text as is */
    const char *claims_raw; /* payload text as is */
    enum sig_mode sig;
    enum jwt_error want;
    const char *missing;
};

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
    {"42cfr_part2 a string", K_RS, .claims = "{\"42cfr_part2\":\"yes\"}", .want = E(BAD_CLAIM),
     "42cfr_part2"},
    {"role billing", K_ES, .claims = "{\"role\":\"billing\"}", .want = E(ROLE_NOT_ALLOWED)},
    {"role Patient", K_ED, .claims = "{\"role\":\"Patient\"}", .want = E(ROLE_NOT_ALLOWED)},
};

/* The signature of msg by key in mode (SIG_JOSE for SIG_SWAP). */
static size_t forge_sig(const struct fixture *f, enum tkey key, enum sig_mode mode, const char *msg,
                        uint8_t *sig, size_t cap)
{
    size_t len = 0, pem_len;
    char *pem;

    switch (mode) {
    case SIG_EMPTY:
        return 0;
    case SIG_HMAC:
        pem = read_text(f->pub[key], &pem_len);
        assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, pem, pem_len,
                                  (const unsigned char *)msg, strlen(msg), sig, cap, &len));
        free(pem);
        return len;
    case SIG_DER:
        return sign_with(f->priv[key], msg, sig, cap, true);
    default:
        len = sign_with(f->priv[key], msg, sig, cap, false);
        if (mode == SIG_FLIP)
            sig[len / 2] ^= 0x01;
        return mode == SIG_SHORT ? len - 1 : len;
    }
}

/* A compact token for c; the caller frees it. */
static char *forge(const struct fixture *f, const struct tcase *c)
{
    json_t *h = json_pack("{s:s,s:s,s:s}", "alg", tkeys[c->key].alg, "typ", "JWT", "kid",
                          tkeys[c->key].kid);
    char *htext, *ctext, *signed_ctext, *hb, *cb, *sb, *input, *tok;
    uint8_t sig[1024];
    size_t sig_len;

    if (c->header != NULL)
        merge(h, c->header, false);
    htext = c->header_raw ? strdup(c->header_raw) : dump(h);
    if (c->header_raw)
        json_decref(h);
    ctext = c->claims_raw ? strdup(c->claims_raw) : claims_text(c->claims);
    signed_ctext = c->sig == SIG_SWAP ? claims_text(NULL) : strdup(ctext);
    hb = b64url((const uint8_t *)htext, strlen(htext));
    cb = b64url((const uint8_t *)signed_ctext, strlen(signed_ctext));
    assert_true(asprintf(&input, "%s.%s", hb, cb) > 0);
    sig_len = forge_sig(f, c->key, c->sig, input, sig, sizeof(sig));
    sb = b64url(sig, sig_len);
    free(cb);
    cb = b64url((const uint8_t *)ctext, strlen(ctext));
    assert_true(asprintf(&tok, "%s.%s.%s", hb, cb, sb) > 0);
    free(htext);
    free(ctext);
    free(signed_ctext);
    free(hb);
    free(cb);
    free(sb);
    free(input);
    return tok;
}

static enum jwt_error verify_str(const struct jwt_keyset *ks, const char *tok,
                                 struct jwt_claims *out)
{
    return jwt_verify(ks, &policy, tok, strlen(tok), NOW, out);
}

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

static char *mint(const struct fixture *f, enum tkey key, const char *patch)
{
    struct tcase c = {"mint", key, .claims = patch};

    return forge(f, &c);
}

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
                     "{\"name\":\"Dr. Ada\",\"42cfr_part2\":true,\"nbf\":-5,"
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
    assert_false(c.part2);
    assert_int_equal(c.nbf, 0);
    free(tok);
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

/* The JWK of the test's key k as a JSON object the caller owns. */
static json_t *jwk_of(const struct fixture *f, enum tkey k)
{
    json_error_t jerr;
    json_t *doc = json_load_file(f->jwks[k], 0, &jerr);
    json_t *jwk = json_incref(json_array_get(json_object_get(doc, "keys"), 0));

    assert_non_null(jwk);
    json_decref(doc);
    return jwk;
}

static void write_jwks(const char *path, json_t *keys)
{
    json_t *doc = json_pack("{s:o}", "keys", keys);

    assert_int_equal(json_dump_file(doc, path, 0), 0);
    json_decref(doc);
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

/* --- replay cache -------------------------------------------------------------- */

static void test_replay(void **state)
{
    struct jwt_replay *r = jwt_replay_new(3);

    (void)state;
    assert_null(jwt_replay_new(0));
    assert_null(jwt_replay_new(QR_REPLAY_MAX + 1));
    assert_int_equal(jwt_replay_check(r, ISS, "a", NOW + 600, NOW), JWT_OK);
    assert_int_equal(jwt_replay_check(r, ISS, "a", NOW + 600, NOW + 1), JWT_ERR_REPLAYED);
    /* The same jti from another issuer is another token. */
    assert_int_equal(jwt_replay_check(r, "https://other.example", "a", NOW + 600, NOW), JWT_OK);
    /* No confusion at the iss/jti boundary. */
    assert_int_equal(jwt_replay_check(r, ISS "a", "", NOW + 600, NOW), JWT_OK);
    assert_int_equal(jwt_replay_size(r), 3);
    /* Full: refused rather than forgetting a live token. */
    assert_int_equal(jwt_replay_check(r, ISS, "b", NOW + 600, NOW), JWT_ERR_REPLAY_CACHE_FULL);
    assert_int_equal(jwt_replay_check(r, ISS, "a", NOW + 600, NOW), JWT_ERR_REPLAYED);
    /* Remembered through the skew after exp, then forgotten. */
    assert_int_equal(jwt_replay_check(r, ISS, "b", NOW + 9000, NOW + 660),
                     JWT_ERR_REPLAY_CACHE_FULL);
    assert_int_equal(jwt_replay_check(r, ISS, "b", NOW + 9000, NOW + 661), JWT_OK);
    assert_int_equal(jwt_replay_size(r), 1);
    assert_int_equal(jwt_replay_check(r, ISS, "b", NOW + 9000, NOW + 662), JWT_ERR_REPLAYED);
    /* Already expired: nothing to remember. */
    assert_int_equal(jwt_replay_check(r, ISS, "c", NOW, NOW + 61), JWT_ERR_EXPIRED);
    assert_int_equal(jwt_replay_check(r, NULL, "c", NOW + 600, NOW), JWT_ERR_MISSING_CLAIM);
    jwt_replay_free(r);
    jwt_replay_free(NULL);
}

/* Many entries through lazy expiry: what is kept must stay findable as the
 * dense array is compacted under the index. */
static void test_replay_churn(void **state)
{
    enum { N = 2000 };
    struct jwt_replay *r = jwt_replay_new(N);
    char jti[32];

    (void)state;
    for (int i = 0; i < N; i++) {
        snprintf(jti, sizeof(jti), "j%d", i);
        /* Odd ones live long, even ones expire at NOW + 100. */
        assert_int_equal(jwt_replay_check(r, ISS, jti, i % 2 ? NOW + 100000 : NOW + 100, NOW),
                         JWT_OK);
    }
    assert_int_equal(jwt_replay_check(r, ISS, "x", NOW + 1000, NOW), JWT_ERR_REPLAY_CACHE_FULL);
    for (int i = 0; i < N / 2; i++) {
        snprintf(jti, sizeof(jti), "n%d", i);
        assert_int_equal(jwt_replay_check(r, ISS, jti, NOW + 100000, NOW + 1000), JWT_OK);
    }
    assert_int_equal(jwt_replay_size(r), N);
    for (int i = 0; i < N; i++) {
        snprintf(jti, sizeof(jti), "j%d", i);
        assert_int_equal(jwt_replay_check(r, ISS, jti, NOW + 100000, NOW + 1000),
                         i % 2 ? JWT_ERR_REPLAYED : JWT_ERR_REPLAY_CACHE_FULL);
        snprintf(jti, sizeof(jti), "n%d", i / 2);
        assert_int_equal(jwt_replay_check(r, ISS, jti, NOW + 100000, NOW + 1000), JWT_ERR_REPLAYED);
    }
    jwt_replay_free(r);
}

/* --- error codes ---------------------------------------------------------------- */

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
        "token_replay_cache_full",
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

/* --- fixture -------------------------------------------------------------------- */

static void make_keys(struct fixture *f)
{
    const char *names[K_N] = {"es", "ed", "rs", "other"};
    char err[512];

    for (int k = 0; k < K_N; k++) {
        char prefix[100];

        snprintf(prefix, sizeof(prefix), "%s/%s", f->dir, names[k]);
        if (jwt_keygen(tkeys[k].type, prefix, tkeys[k].kid, err, sizeof(err)) != 0)
            fail_msg("jwt_keygen %s: %s", tkeys[k].type, err);
        snprintf(f->key[k], sizeof(f->key[k]), "%s.key", prefix);
        snprintf(f->pub[k], sizeof(f->pub[k]), "%s.pub.pem", prefix);
        snprintf(f->jwks[k], sizeof(f->jwks[k]), "%s.jwks.json", prefix);
        f->priv[k] = load_private(f->key[k]);
    }
}

static void load_keysets(struct fixture *f)
{
    json_t *keys = json_array();
    char err[512];

    f->by_pem = jwt_keyset_new();
    f->by_jwks = jwt_keyset_new();
    for (int k = K_ES; k <= K_RS; k++) {
        if (jwt_keyset_add_pem(f->by_pem, tkeys[k].kid, f->pub[k], err, sizeof(err)) != 0)
            fail_msg("add_pem: %s", err);
        json_array_append_new(keys, jwk_of(f, (enum tkey)k));
    }
    write_jwks(path_in(f, "all.jwks.json", f->all_jwks, sizeof(f->all_jwks)), keys);
    if (jwt_keyset_add_jwks(f->by_jwks, f->all_jwks, err, sizeof(err)) != 0)
        fail_msg("add_jwks: %s", err);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/qr-test-jwt-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    make_keys(f);
    load_keysets(f);
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    jwt_keyset_free(f->by_pem);
    jwt_keyset_free(f->by_jwks);
    for (int k = 0; k < K_N; k++)
        EVP_PKEY_free(f->priv[k]);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_table),   cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_size_limit),    cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_claims_copied), cmocka_unit_test(test_refused_claims),
        cmocka_unit_test(test_policy_edges),  cmocka_unit_test(test_sign_pem),
        cmocka_unit_test(test_keyset_pem),    cmocka_unit_test(test_keyset_jwks),
        cmocka_unit_test(test_keygen),        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_replay_churn),  cmocka_unit_test(test_error_codes),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
