/* Token verification keys: PEM and JWKS files in, one EVP_PKEY per kid out,
 * and key pair generation for development. A key's type fixes the one
 * algorithm it verifies; nothing in a token can change that. Error messages
 * name files and key positions, never key material. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "jwt_internal.h"
#include "quietroom/auth/jwt.h"

/* JWK members are at most an RSA modulus long. */
#define JWT_JWK_BYTES_MAX (JWT_RSA_MAX_BITS / 8)
#define JWT_ED25519_LEN 32
#define JWT_RSA_GEN_BITS 3072

struct jwt_keyset *jwt_keyset_new(void)
{
    return calloc(1, sizeof(struct jwt_keyset));
}

void jwt_keyset_free(struct jwt_keyset *ks)
{
    if (ks == NULL)
        return;
    for (unsigned i = 0; i < ks->n; i++)
        EVP_PKEY_free(ks->keys[i].pkey);
    free(ks);
}

unsigned jwt_keyset_count(const struct jwt_keyset *ks)
{
    return ks->n;
}

const struct jwt_key *jwt__keyset_find(const struct jwt_keyset *ks, const char *kid, size_t len)
{
    for (unsigned i = 0; i < ks->n; i++) {
        if (strlen(ks->keys[i].kid) == len && memcmp(ks->keys[i].kid, kid, len) == 0)
            return &ks->keys[i];
    }
    return NULL;
}

bool jwt__kid_valid(const char *kid)
{
    size_t len = strlen(kid);

    if (len == 0 || len > JWT_KID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (kid[i] < 0x20 || kid[i] > 0x7e)
            return false;
    }
    return true;
}

int jwt__key_alg(EVP_PKEY *pkey, enum jwt_alg *alg, char *err, size_t errlen)
{
    char group[64];
    int bits = EVP_PKEY_get_bits(pkey);

    if (EVP_PKEY_is_a(pkey, "EC")) {
        if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) ||
            strcmp(group, "prime256v1") != 0) {
            snprintf(err, errlen, "EC keys must be on curve P-256");
            return -1;
        }
        *alg = JWT_ALG_ES256;
    } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
        *alg = JWT_ALG_EDDSA;
    } else if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (bits < JWT_RSA_MIN_BITS || bits > JWT_RSA_MAX_BITS) {
            snprintf(err, errlen, "RSA key of %d bits: %d to %d are accepted", bits,
                     JWT_RSA_MIN_BITS, JWT_RSA_MAX_BITS);
            return -1;
        }
        *alg = JWT_ALG_RS256;
    } else {
        snprintf(err, errlen, "unsupported key type (EC P-256, Ed25519 or RSA are accepted)");
        return -1;
    }
    return 0;
}

/* --- files ----------------------------------------------------------------- */

/* Reads a whole regular file of at most JWT_KEY_FILE_MAX bytes into a new
 * NUL-terminated buffer (*buf, which the caller cleanses and frees). */
static int jwt__read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    ssize_t n = 0;
    int fd;

    *buf = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > JWT_KEY_FILE_MAX) {
        snprintf(err, errlen, "%s: not a regular file of at most %d bytes", path, JWT_KEY_FILE_MAX);
        goto fail;
    }
    /* One byte more than allowed: a file that grew meanwhile is noticed. */
    if ((*buf = malloc(JWT_KEY_FILE_MAX + 2)) == NULL ||
        (n = read(fd, *buf, JWT_KEY_FILE_MAX + 1)) < 0 || n > JWT_KEY_FILE_MAX) {
        snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "cannot read");
        goto fail;
    }
    (*buf)[n] = '\0';
    *len = (size_t)n;
    close(fd);
    return 0;
fail:
    free(*buf);
    *buf = NULL;
    close(fd);
    return -1;
}

static void jwt__free_text(char *buf, size_t len)
{
    if (buf != NULL)
        OPENSSL_cleanse(buf, len);
    free(buf);
}

/* Encrypted keys are refused, not prompted for: this may run unattended. */
static int jwt__no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* A private key (PKCS#8 or traditional; other PEM blocks such as EC
 * PARAMETERS are skipped), else, unless need_private, a public key. */
static EVP_PKEY *jwt__pem_parse(const char *text, size_t len, bool need_private)
{
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    EVP_PKEY *pkey = NULL;

    if (bio == NULL)
        return NULL;
    pkey = PEM_read_bio_PrivateKey_ex(bio, NULL, jwt__no_passphrase, NULL, NULL, NULL);
    if (pkey == NULL && !need_private && BIO_reset(bio) == 1)
        pkey = PEM_read_bio_PUBKEY_ex(bio, NULL, jwt__no_passphrase, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    return pkey;
}

EVP_PKEY *jwt__pem_load(const char *path, bool need_private, char *err, size_t errlen)
{
    EVP_PKEY *pkey;
    char *text;
    size_t len;

    if (path == NULL) {
        snprintf(err, errlen, "no key file given");
        return NULL;
    }
    if (jwt__read_file(path, &text, &len, err, errlen) != 0)
        return NULL;
    if ((pkey = jwt__pem_parse(text, len, need_private)) == NULL)
        snprintf(err, errlen, "%s: no %s PEM key found (an encrypted key is not accepted)", path,
                 need_private ? "private" : "public or private");
    jwt__free_text(text, len);
    return pkey;
}

/* --- keyset ---------------------------------------------------------------- */

/* Adds pkey under kid; the keyset owns pkey afterwards, or it is freed. The
 * full public-key check runs here, once, not per token. */
static int jwt__keyset_add(struct jwt_keyset *ks, const char *kid, EVP_PKEY *pkey, char *err,
                           size_t errlen)
{
    EVP_PKEY_CTX *ctx = NULL;
    struct jwt_key *k;
    enum jwt_alg alg;

    if (kid == NULL || !jwt__kid_valid(kid)) {
        snprintf(err, errlen, "kid must be 1 to %d printable ASCII characters", JWT_KID_MAX);
        goto fail;
    }
    if (jwt__keyset_find(ks, kid, strlen(kid)) != NULL) {
        snprintf(err, errlen, "kid is already in the keyset");
        goto fail;
    }
    if (ks->n == JWT_KEYS_MAX) {
        snprintf(err, errlen, "more than %d keys", JWT_KEYS_MAX);
        goto fail;
    }
    if (jwt__key_alg(pkey, &alg, err, errlen) != 0)
        goto fail;
    if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
        EVP_PKEY_public_check(ctx) != 1) {
        snprintf(err, errlen, "the public key is not valid");
        goto fail;
    }
    EVP_PKEY_CTX_free(ctx);
    k = &ks->keys[ks->n];
    snprintf(k->kid, sizeof(k->kid), "%s", kid);
    k->alg = alg;
    k->pkey = pkey;
    ks->n++;
    return 0;
fail:
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return -1;
}

int jwt_keyset_add_pem(struct jwt_keyset *ks, const char *kid, const char *path, char *err,
                       size_t errlen)
{
    char why[192];
    EVP_PKEY *pkey = jwt__pem_load(path, false, err, errlen);

    if (pkey == NULL)
        return -1;
    if (jwt__keyset_add(ks, kid, pkey, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    return 0;
}

/* --- JWKS ------------------------------------------------------------------ */

/* Decodes base64url member name of jwk into buf (JWT_JWK_BYTES_MAX). */
static int jwt__jwk_bytes(const json_t *jwk, const char *name, uint8_t *buf, size_t *len)
{
    const json_t *v = json_object_get(jwk, name);
    size_t n = json_string_length(v);

    if (!json_is_string(v) || n == 0)
        return -1;
    return jwt__b64url_decode(json_string_value(v), n, buf, JWT_JWK_BYTES_MAX, len);
}

static EVP_PKEY *jwt__fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = bld ? OSSL_PARAM_BLD_to_param(bld) : NULL;
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    EVP_PKEY *pkey = NULL;

    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* kty EC, crv P-256: the point is 0x04 || x || y (SEC 1 uncompressed). */
static EVP_PKEY *jwt__jwk_ec(const json_t *jwk)
{
    uint8_t x[JWT_JWK_BYTES_MAX], y[JWT_JWK_BYTES_MAX], point[1 + 2 * JWT_ES256_HALF];
    size_t xlen, ylen;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    if (!jwt__str_is(json_object_get(jwk, "crv"), "P-256", false) ||
        jwt__jwk_bytes(jwk, "x", x, &xlen) != 0 || jwt__jwk_bytes(jwk, "y", y, &ylen) != 0 ||
        xlen != JWT_ES256_HALF || ylen != JWT_ES256_HALF)
        return NULL;
    point[0] = 0x04;
    memcpy(point + 1, x, JWT_ES256_HALF);
    memcpy(point + 1 + JWT_ES256_HALF, y, JWT_ES256_HALF);
    if ((bld = OSSL_PARAM_BLD_new()) != NULL &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
        pkey = jwt__fromdata("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/* kty OKP, crv Ed25519 (RFC 8037): x is the raw public key. */
static EVP_PKEY *jwt__jwk_okp(const json_t *jwk)
{
    uint8_t x[JWT_JWK_BYTES_MAX];
    size_t xlen;

    if (!jwt__str_is(json_object_get(jwk, "crv"), "Ed25519", false) ||
        jwt__jwk_bytes(jwk, "x", x, &xlen) != 0 || xlen != JWT_ED25519_LEN)
        return NULL;
    return EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, xlen);
}

/* kty RSA: n and e are big-endian unsigned integers. */
static EVP_PKEY *jwt__jwk_rsa(const json_t *jwk)
{
    uint8_t n[JWT_JWK_BYTES_MAX], e[JWT_JWK_BYTES_MAX];
    size_t nlen, elen;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    if (jwt__jwk_bytes(jwk, "n", n, &nlen) != 0 || jwt__jwk_bytes(jwk, "e", e, &elen) != 0)
        return NULL;
    if ((bn_n = BN_bin2bn(n, (int)nlen, NULL)) != NULL &&
        (bn_e = BN_bin2bn(e, (int)elen, NULL)) != NULL && (bld = OSSL_PARAM_BLD_new()) != NULL &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
        pkey = jwt__fromdata("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return pkey;
}

static const struct {
    const char *kty;
    EVP_PKEY *(*import)(const json_t *jwk);
} jwt_jwk_types[] = {
    {"EC", jwt__jwk_ec},
    {"OKP", jwt__jwk_okp},
    {"RSA", jwt__jwk_rsa},
};

/* Refuses what must never verify a token: symmetric keys and HMAC algs. A
 * key for another purpose ("use" other than "sig") is skipped (*skip). */
static int jwt__jwk_screen(const json_t *jwk, bool *skip, char *err, size_t errlen)
{
    const json_t *use = json_object_get(jwk, "use"), *kty = json_object_get(jwk, "kty");
    const json_t *alg = json_object_get(jwk, "alg"), *kid = json_object_get(jwk, "kid");

    *skip = false;
    if (!json_is_object(jwk) || !json_is_string(kty) || (use && !json_is_string(use)) ||
        (alg && !json_is_string(alg))) {
        snprintf(err, errlen, "not a JWK (kty, use and alg must be strings)");
        return -1;
    }
    if (use != NULL && !jwt__str_is(use, "sig", false)) {
        *skip = true;
        return 0;
    }
    if (jwt__str_is(kty, "oct", false) ||
        (alg != NULL && strncasecmp(json_string_value(alg), "HS", 2) == 0)) {
        snprintf(err, errlen,
                 "symmetric (kty oct / HMAC) keys are refused: "
                 "anyone who can verify with one can forge tokens");
        return -1;
    }
    if (!json_is_string(kid)) {
        snprintf(err, errlen, "kid is required");
        return -1;
    }
    return 0;
}

/* Builds the key of one JWK; the alg it declares must be its type's. */
static EVP_PKEY *jwt__jwk_import(const json_t *jwk, char *err, size_t errlen)
{
    const json_t *kty = json_object_get(jwk, "kty"), *alg = json_object_get(jwk, "alg");
    EVP_PKEY *pkey = NULL;
    enum jwt_alg key_alg;

    for (size_t i = 0; i < sizeof(jwt_jwk_types) / sizeof(jwt_jwk_types[0]); i++) {
        if (jwt__str_is(kty, jwt_jwk_types[i].kty, false))
            pkey = jwt_jwk_types[i].import(jwk);
    }
    ERR_clear_error();
    if (pkey == NULL) {
        snprintf(err, errlen, "not a usable EC P-256, OKP Ed25519 or RSA public key");
        return NULL;
    }
    if (jwt__key_alg(pkey, &key_alg, err, errlen) != 0)
        goto fail;
    if (alg != NULL && !jwt__str_is(alg, jwt__alg_name(key_alg), false)) {
        snprintf(err, errlen, "alg does not match the key type (expected %s)",
                 jwt__alg_name(key_alg));
        goto fail;
    }
    return pkey;
fail:
    EVP_PKEY_free(pkey);
    return NULL;
}

/* Adds every signing key of the JWKS document doc, or none. */
static int jwt__jwks_add(struct jwt_keyset *ks, const json_t *doc, char *err, size_t errlen)
{
    const json_t *keys = json_object_get(doc, "keys"), *jwk;
    unsigned first = ks->n;
    char why[192];
    size_t i;
    bool skip;

    if (!json_is_array(keys)) {
        snprintf(err, errlen, "no \"keys\" array");
        return -1;
    }
    json_array_foreach (keys, i, jwk) {
        EVP_PKEY *pkey;

        if (jwt__jwk_screen(jwk, &skip, why, sizeof(why)) != 0)
            goto fail;
        if (skip)
            continue;
        if ((pkey = jwt__jwk_import(jwk, why, sizeof(why))) == NULL ||
            jwt__keyset_add(ks, json_string_value(json_object_get(jwk, "kid")), pkey, why,
                            sizeof(why)) != 0)
            goto fail;
    }
    if (ks->n == first) {
        snprintf(err, errlen, "no signing key (\"use\":\"sig\") found");
        return -1;
    }
    return 0;
fail:
    snprintf(err, errlen, "keys[%zu]: %s", i, why);
    while (ks->n > first)
        EVP_PKEY_free(ks->keys[--ks->n].pkey);
    return -1;
}

int jwt_keyset_add_jwks(struct jwt_keyset *ks, const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *doc = NULL;
    char *text, why[224];
    size_t len;
    int rc = -1;

    if (path == NULL) {
        snprintf(err, errlen, "no JWKS file given");
        return -1;
    }
    if (jwt__read_file(path, &text, &len, err, errlen) != 0)
        return -1;
    /* jansson's messages quote the input: only the line number is passed on. */
    doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        snprintf(err, errlen, "%s: line %d: not valid JSON (or a member appears twice)", path,
                 jerr.line);
    else if (!json_is_object(doc))
        snprintf(err, errlen, "%s: not a JSON object", path);
    else if (jwt__jwks_add(ks, doc, why, sizeof(why)) != 0)
        snprintf(err, errlen, "%s: %s", path, why);
    else
        rc = 0;
    json_decref(doc);
    jwt__free_text(text, len);
    return rc;
}

/* --- key generation -------------------------------------------------------- */

static char *jwt__b64url_bn(const BIGNUM *bn, int pad)
{
    uint8_t bytes[JWT_JWK_BYTES_MAX];
    char *text;
    int n;

    if (BN_num_bytes(bn) > (int)sizeof(bytes) || pad > (int)sizeof(bytes))
        return NULL;
    n = pad ? BN_bn2binpad(bn, bytes, pad) : BN_bn2bin(bn, bytes);
    if (n <= 0 || (text = malloc((size_t)(n + 2) / 3 * 4 + 1)) == NULL)
        return NULL;
    jwt__b64url_encode(bytes, (size_t)n, text);
    return text;
}

/* The public JWK of pkey: {kty, crv, x, y | n, e, kid, alg, use}. */
static json_t *jwt__jwk_of(EVP_PKEY *pkey, enum jwt_alg alg, const char *kid)
{
    BIGNUM *a = NULL, *b = NULL;
    char *ta = NULL, *tb = NULL, raw[(JWT_ED25519_LEN + 2) / 3 * 4 + 1];
    uint8_t x[JWT_ED25519_LEN];
    size_t xlen = sizeof(x);
    json_t *jwk = NULL;

    if (alg == JWT_ALG_EDDSA) {
        if (EVP_PKEY_get_raw_public_key(pkey, x, &xlen) == 1 && xlen == sizeof(x)) {
            jwt__b64url_encode(x, xlen, raw);
            jwk = json_pack("{s:s,s:s,s:s}", "kty", "OKP", "crv", "Ed25519", "x", raw);
        }
    } else if (alg == JWT_ALG_ES256) {
        if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &a) &&
            EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &b) &&
            (ta = jwt__b64url_bn(a, JWT_ES256_HALF)) && (tb = jwt__b64url_bn(b, JWT_ES256_HALF)))
            jwk = json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256", "x", ta, "y", tb);
    } else if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &a) &&
               EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &b) &&
               (ta = jwt__b64url_bn(a, 0)) && (tb = jwt__b64url_bn(b, 0))) {
        jwk = json_pack("{s:s,s:s,s:s}", "kty", "RSA", "n", ta, "e", tb);
    }
    if (jwk != NULL &&
        json_object_update_new(jwk, json_pack("{s:s,s:s,s:s}", "kid", kid, "alg",
                                              jwt__alg_name(alg), "use", "sig")) != 0) {
        json_decref(jwk);
        jwk = NULL;
    }
    BN_free(a);
    BN_free(b);
    free(ta);
    free(tb);
    return jwk;
}

static EVP_PKEY *jwt__gen_ec(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static EVP_PKEY *jwt__gen_ed25519(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

static EVP_PKEY *jwt__gen_rsa(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)JWT_RSA_GEN_BITS);
}

static const struct {
    const char *type;
    EVP_PKEY *(*generate)(void);
} jwt_keygen_types[] = {
    {"ec", jwt__gen_ec},
    {"ed25519", jwt__gen_ed25519},
    {"rsa", jwt__gen_rsa},
};

enum { JWT_OUT_KEY, JWT_OUT_PUB, JWT_OUT_JWKS, JWT_OUTS };

static const char *const jwt_out_suffix[JWT_OUTS] = {".key", ".pub.pem", ".jwks.json"};

/* Writes one output file through bio (on fd, left open). */
static int jwt__write_out(int which, BIO *bio, EVP_PKEY *pkey, const json_t *jwks)
{
    char *text;
    int ok;

    if (which == JWT_OUT_KEY)
        return PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) ? 0 : -1;
    if (which == JWT_OUT_PUB)
        return PEM_write_bio_PUBKEY(bio, pkey) ? 0 : -1;
    if ((text = json_dumps(jwks, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) == NULL)
        return -1;
    ok = BIO_puts(bio, text) > 0 && BIO_puts(bio, "\n") > 0;
    free(text);
    return ok ? 0 : -1;
}

/* Creates path (which must not exist): the private key is 0600 from the
 * first byte, the public files are world-readable. */
static int jwt__create(const char *path, int which, EVP_PKEY *pkey, const json_t *jwks, char *err,
                       size_t errlen)
{
    mode_t mode = which == JWT_OUT_KEY ? 0600 : 0644;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    BIO *bio;
    int rc = -1;

    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if ((bio = BIO_new_fd(fd, BIO_NOCLOSE)) != NULL &&
        jwt__write_out(which, bio, pkey, jwks) == 0 && BIO_flush(bio) == 1 && fsync(fd) == 0)
        rc = 0;
    else
        snprintf(err, errlen, "%s: cannot write", path);
    BIO_free(bio);
    close(fd);
    if (rc != 0)
        unlink(path);
    ERR_clear_error();
    return rc;
}

static EVP_PKEY *jwt__generate(const char *type, char *err, size_t errlen)
{
    for (size_t i = 0; type != NULL && i < sizeof(jwt_keygen_types) / sizeof(jwt_keygen_types[0]);
         i++) {
        if (strcmp(type, jwt_keygen_types[i].type) == 0) {
            EVP_PKEY *pkey = jwt_keygen_types[i].generate();

            if (pkey == NULL)
                snprintf(err, errlen, "key generation failed");
            ERR_clear_error();
            return pkey;
        }
    }
    snprintf(err, errlen, "key type must be ec, ed25519 or rsa");
    return NULL;
}

static json_t *jwt__jwks_of(EVP_PKEY *pkey, const char *kid, char *err, size_t errlen)
{
    enum jwt_alg alg;
    json_t *jwk, *doc = NULL;

    if (jwt__key_alg(pkey, &alg, err, errlen) != 0)
        return NULL;
    if ((jwk = jwt__jwk_of(pkey, alg, kid)) != NULL)
        doc = json_pack("{s:[o]}", "keys", jwk);
    if (doc == NULL)
        snprintf(err, errlen, "cannot export the public key as JWK");
    ERR_clear_error();
    return doc;
}

int jwt_keygen(const char *type, const char *prefix, const char *kid, char *err, size_t errlen)
{
    char path[JWT_OUTS][PATH_MAX];
    EVP_PKEY *pkey = NULL;
    json_t *jwks = NULL;
    int made = 0;

    if (kid == NULL || !jwt__kid_valid(kid)) {
        snprintf(err, errlen, "kid must be 1 to %d printable ASCII characters", JWT_KID_MAX);
        return -1;
    }
    for (int i = 0; i < JWT_OUTS; i++) {
        int n = prefix ? snprintf(path[i], PATH_MAX, "%s%s", prefix, jwt_out_suffix[i]) : -1;

        if (n <= (int)strlen(jwt_out_suffix[i]) || n >= PATH_MAX) {
            snprintf(err, errlen, "the output prefix is empty or too long");
            return -1;
        }
    }
    if ((pkey = jwt__generate(type, err, errlen)) == NULL ||
        (jwks = jwt__jwks_of(pkey, kid, err, errlen)) == NULL)
        goto out;
    while (made < JWT_OUTS && jwt__create(path[made], made, pkey, jwks, err, errlen) == 0)
        made++;
    /* All three or nothing: a lone private key helps nobody. */
    if (made < JWT_OUTS) {
        while (made > 0)
            unlink(path[--made]);
    }
out:
    json_decref(jwks);
    EVP_PKEY_free(pkey);
    return made == JWT_OUTS ? 0 : -1;
}
