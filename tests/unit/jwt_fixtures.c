/* The fixture of the JWT tests (see jwt_fixtures.h): keys, policy, token
 * forging, and the cmocka group setup that makes the keys. */
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

const struct tkey_info tkeys[K_N] = {
    [K_ES] = {"ec", "k-es", "ES256"},
    [K_ED] = {"ed25519", "k-ed", "EdDSA"},
    [K_RS] = {"rsa", "k-rs", "RS256"},
    [K_OTHER] = {"ec", "k-other", "ES256"},
};

static const char *const roles[] = {"clinician", "patient", NULL};

const struct jwt_policy policy = {
    .issuer = ISS,
    .audience = "quietroom",
    .max_skew_s = 60,
    .max_lifetime_s = LIFETIME,
    .roles = roles,
};

/* --- helpers --------------------------------------------------------------- */

char *b64url(const uint8_t *in, size_t len)
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

char *path_in(const struct fixture *f, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", f->dir, name);
    return buf;
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
void merge(json_t *obj, const char *patch, bool relative)
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
char *forge(const struct fixture *f, const struct tcase *c)
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

enum jwt_error verify_str(const struct jwt_keyset *ks, const char *tok,
                                 struct jwt_claims *out)
{
    return jwt_verify(ks, &policy, tok, strlen(tok), NOW, out);
}

char *mint(const struct fixture *f, enum tkey key, const char *patch)
{
    struct tcase c = {"mint", key, .claims = patch};

    return forge(f, &c);
}

/* The JWK of the test's key k as a JSON object the caller owns. */
json_t *jwk_of(const struct fixture *f, enum tkey k)
{
    json_error_t jerr;
    json_t *doc = json_load_file(f->jwks[k], 0, &jerr);
    json_t *jwk = json_incref(json_array_get(json_object_get(doc, "keys"), 0));

    assert_non_null(jwk);
    json_decref(doc);
    return jwk;
}

void write_jwks(const char *path, json_t *keys)
{
    json_t *doc = json_pack("{s:o}", "keys", keys);

    assert_int_equal(json_dump_file(doc, path, 0), 0);
    json_decref(doc);
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

int setup(void **state)
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

int teardown(void **state)
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
