/* JWS compact tokens: parse, verify, sign. Everything in a token is hostile
 * until its signature checks out, so the order is fixed: structure, then the
 * header's alg (decided before any key is looked at), then kid, then the
 * signature, and only then the claims. Error codes never echo token bytes. */
#include "quietroom/auth/jwt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "jwt_internal.h"

/* 9999-12-31T23:59:59Z: later NumericDates are nonsense, and the bound keeps
 * exp + skew and exp - iat far from overflow. */
#define JWT_DATE_MAX INT64_C(253402300799)
/* DER ECDSA-Sig-Value for P-256: SEQUENCE of two INTEGERs of up to 33 bytes. */
#define JWT_ES256_DER_MAX 72
/* Largest signature made or checked: RSA at JWT_RSA_MAX_BITS. */
#define JWT_SIG_MAX (JWT_RSA_MAX_BITS / 8)

static const struct {
    const char *code;
    const char *message;
} jwt_errors[JWT_ERR_COUNT] = {
    [JWT_OK] = {"ok", "The token is valid."},
    [JWT_ERR_TOO_LARGE] = {"token_too_large", "The token is larger than allowed."},
    [JWT_ERR_MALFORMED] = {"token_malformed", "The token is not a well-formed signed JWT."},
    [JWT_ERR_ALG_NONE] = {"token_alg_none", "Unsigned tokens (alg none) are refused."},
    [JWT_ERR_ALG_HMAC] = {"token_alg_hmac", "HMAC-signed tokens (HS256/384/512) are refused."},
    [JWT_ERR_ALG_UNSUPPORTED] = {"token_alg_unsupported",
                                 "The token's signature algorithm is not supported."},
    [JWT_ERR_UNKNOWN_KID] = {"token_unknown_kid", "The token names no configured signing key."},
    [JWT_ERR_ALG_MISMATCH] = {"token_alg_mismatch",
                              "The token's algorithm is not the one its key signs with."},
    [JWT_ERR_BAD_SIGNATURE] = {"token_bad_signature", "The token's signature is not valid."},
    [JWT_ERR_WRONG_ISSUER] = {"token_wrong_issuer", "The token was issued by someone else."},
    [JWT_ERR_WRONG_AUDIENCE] = {"token_wrong_audience", "The token is meant for another service."},
    [JWT_ERR_EXPIRED] = {"token_expired", "The token has expired."},
    [JWT_ERR_NOT_YET_VALID] = {"token_not_yet_valid", "The token is not valid yet."},
    [JWT_ERR_ISSUED_IN_FUTURE] = {"token_issued_in_future",
                                  "The token claims to be issued in the future."},
    [JWT_ERR_LIFETIME_TOO_LONG] = {"token_lifetime_too_long",
                                   "The token is valid for longer than allowed."},
    [JWT_ERR_MISSING_CLAIM] = {"token_missing_claim", "The token lacks a required claim."},
    [JWT_ERR_BAD_CLAIM] = {"token_bad_claim", "A claim of the token has the wrong type or size."},
    [JWT_ERR_ROLE_NOT_ALLOWED] = {"token_role_not_allowed",
                                  "The token's role may not join a session."},
    [JWT_ERR_REPLAYED] = {"token_replayed", "The token has already been used."},
};

const char *jwt_error_code(enum jwt_error e)
{
    if ((unsigned)e >= JWT_ERR_COUNT)
        return "token_unknown_error";
    return jwt_errors[e].code;
}

const char *jwt_error_message(enum jwt_error e)
{
    if ((unsigned)e >= JWT_ERR_COUNT)
        return "The token was refused.";
    return jwt_errors[e].message;
}

const char *jwt__alg_name(enum jwt_alg alg)
{
    static const char *const names[] = {
        [JWT_ALG_ES256] = "ES256",
        [JWT_ALG_EDDSA] = "EdDSA",
        [JWT_ALG_RS256] = "RS256",
    };

    return (unsigned)alg < sizeof(names) / sizeof(names[0]) ? names[alg] : "?";
}

/* --- base64url ------------------------------------------------------------ */

/* The 6-bit value of a base64url character, or -1. */
static int jwt__b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

size_t jwt__b64url_encode(const uint8_t *in, size_t len, char *out)
{
    size_t n = len ? (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len) : 0;

    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return n;
}

/* Decodes up to 4 characters (a final group may have 2 or 3) already known
 * to be base64url; returns the bytes written to out (up to 3). */
static size_t jwt__b64url_group(const char *in, size_t n, uint8_t *out)
{
    unsigned char text[4] = {'=', '=', '=', '='};
    uint8_t bytes[3];

    for (size_t i = 0; i < n; i++)
        text[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : (unsigned char)in[i];
    /* EVP_DecodeBlock counts '=' padding as zero bytes: keep only n - 1. */
    if (EVP_DecodeBlock(bytes, text, 4) != 3)
        return 0;
    memcpy(out, bytes, n - 1);
    return n - 1;
}

int jwt__b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t rem = len % 4, o = 0;
    int last;

    if (rem == 1 || len / 4 * 3 + (rem ? rem - 1 : 0) > cap)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (jwt__b64url_value(in[i]) < 0)
            return -1;
    }
    /* Bits past the last byte must be zero, or one value would have many
     * spellings (and a "tampered" signature could still verify). */
    last = len ? jwt__b64url_value(in[len - 1]) : 0;
    if ((rem == 2 && (last & 0x0f) != 0) || (rem == 3 && (last & 0x03) != 0))
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        size_t n = len - i < 4 ? len - i : 4;

        if (jwt__b64url_group(in + i, n, out + o) != n - 1)
            return -1;
        o += n - 1;
    }
    *outlen = o;
    return 0;
}

/* --- token structure ------------------------------------------------------ */

enum { JWT_PART_HEADER, JWT_PART_PAYLOAD, JWT_PART_SIG, JWT_PARTS };

struct jwt_parts {
    const char *text[JWT_PARTS]; /* borrowed from the token */
    size_t text_len[JWT_PARTS];
    const uint8_t *raw[JWT_PARTS]; /* decoded, borrowed from the caller's buffer */
    size_t raw_len[JWT_PARTS];
};

/* Splits token at its dots and decodes each part into buf (QR_TOKEN_MAX
 * bytes: decoding only ever shrinks). Header and payload may not be empty;
 * the signature may, so that alg none is reported as such. */
static enum jwt_error jwt__split(const char *token, size_t len, uint8_t *buf, struct jwt_parts *p)
{
    size_t start = 0, used = 0;
    unsigned n = 0;

    if (len > QR_TOKEN_MAX)
        return JWT_ERR_TOO_LARGE;
    if (token == NULL || len == 0)
        return JWT_ERR_MALFORMED;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && token[i] != '.')
            continue;
        if (n == JWT_PARTS)
            return JWT_ERR_MALFORMED;
        p->text[n] = token + start;
        p->text_len[n] = i - start;
        if (jwt__b64url_decode(p->text[n], p->text_len[n], buf + used, QR_TOKEN_MAX - used,
                               &p->raw_len[n]) != 0)
            return JWT_ERR_MALFORMED;
        p->raw[n] = buf + used;
        used += p->raw_len[n];
        start = i + 1;
        n++;
    }
    if (n != JWT_PARTS || p->text_len[JWT_PART_HEADER] == 0 || p->text_len[JWT_PART_PAYLOAD] == 0)
        return JWT_ERR_MALFORMED;
    return JWT_OK;
}

/* Parses a JSON object; duplicate names are refused so that no two readers
 * of one token can disagree on a claim. NULL if it is not an object. */
static json_t *jwt__parse_object(const uint8_t *text, size_t len)
{
    json_error_t jerr;
    json_t *v = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);

    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

bool jwt__str_is(const json_t *v, const char *s, bool any_case)
{
    size_t n = strlen(s);

    if (!json_is_string(v) || json_string_length(v) != n)
        return false;
    return any_case ? strncasecmp(json_string_value(v), s, n) == 0
                    : memcmp(json_string_value(v), s, n) == 0;
}

struct jwt_header {
    json_t *json;      /* owned */
    const json_t *alg; /* a string, borrowed from json */
    const json_t *kid; /* a string or NULL, borrowed from json */
};

/* Header parameters we do not know (jku, x5u, jwk...) are ignored, never
 * followed: keys come from configuration only. crit demands that we
 * understand something we do not, so it is refused. */
static enum jwt_error jwt__parse_header(const struct jwt_parts *p, struct jwt_header *h)
{
    const json_t *typ;

    h->json = jwt__parse_object(p->raw[JWT_PART_HEADER], p->raw_len[JWT_PART_HEADER]);
    if (h->json == NULL)
        return JWT_ERR_MALFORMED;
    h->alg = json_object_get(h->json, "alg");
    h->kid = json_object_get(h->json, "kid");
    typ = json_object_get(h->json, "typ");
    if (!json_is_string(h->alg) || (h->kid != NULL && !json_is_string(h->kid)))
        return JWT_ERR_MALFORMED;
    if ((typ != NULL && !jwt__str_is(typ, "JWT", true)) || json_object_get(h->json, "crit"))
        return JWT_ERR_MALFORMED;
    return JWT_OK;
}

/* The header alg is judged before any key is looked up, so that no key is
 * ever used with an algorithm the token chose (RFC 8725 §2.1, §3.1). */
static enum jwt_error jwt__header_alg(const json_t *alg, enum jwt_alg *out)
{
    static const struct {
        const char *name;
        bool any_case;
        enum jwt_error verdict;
        enum jwt_alg alg;
    } algs[] = {
        {"none", true, JWT_ERR_ALG_NONE, 0},     {"HS256", true, JWT_ERR_ALG_HMAC, 0},
        {"HS384", true, JWT_ERR_ALG_HMAC, 0},    {"HS512", true, JWT_ERR_ALG_HMAC, 0},
        {"ES256", false, JWT_OK, JWT_ALG_ES256}, {"EdDSA", false, JWT_OK, JWT_ALG_EDDSA},
        {"RS256", false, JWT_OK, JWT_ALG_RS256},
    };

    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        if (jwt__str_is(alg, algs[i].name, algs[i].any_case)) {
            *out = algs[i].alg;
            return algs[i].verdict;
        }
    }
    return JWT_ERR_ALG_UNSUPPORTED;
}

static enum jwt_error jwt__select_key(const struct jwt_keyset *ks, const struct jwt_header *h,
                                      const struct jwt_key **key)
{
    enum jwt_alg alg;
    enum jwt_error e = jwt__header_alg(h->alg, &alg);

    if (e != JWT_OK)
        return e;
    if (h->kid == NULL || (*key = jwt__keyset_find(ks, json_string_value(h->kid),
                                                   json_string_length(h->kid))) == NULL)
        return JWT_ERR_UNKNOWN_KID;
    if ((*key)->alg != alg)
        return JWT_ERR_ALG_MISMATCH;
    return JWT_OK;
}

/* --- signatures ------------------------------------------------------------ */

/* JOSE carries ECDSA signatures as raw r||s; OpenSSL wants DER. Only the
 * exact 64-byte form is accepted: a DER signature in a JWS is malformed. */
static int jwt__es256_to_der(const uint8_t *sig, size_t len, uint8_t *der, size_t *der_len)
{
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *p = der;
    int n, rc = -1;

    if (len != JWT_ES256_SIG_LEN || (es = ECDSA_SIG_new()) == NULL)
        return -1;
    r = BN_bin2bn(sig, JWT_ES256_HALF, NULL);
    s = BN_bin2bn(sig + JWT_ES256_HALF, JWT_ES256_HALF, NULL);
    if (r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s))
        goto fail;
    r = s = NULL; /* es owns them now */
    n = i2d_ECDSA_SIG(es, NULL);
    if (n <= 0 || n > JWT_ES256_DER_MAX || i2d_ECDSA_SIG(es, &p) != n)
        goto fail;
    *der_len = (size_t)n;
    rc = 0;
fail:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return rc;
}

static int jwt__der_to_es256(const uint8_t *der, size_t len, uint8_t *sig)
{
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r, *s;
    int rc = -1;

    if (es == NULL)
        return -1;
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, sig, JWT_ES256_HALF) == JWT_ES256_HALF &&
        BN_bn2binpad(s, sig + JWT_ES256_HALF, JWT_ES256_HALF) == JWT_ES256_HALF)
        rc = 0;
    ECDSA_SIG_free(es);
    return rc;
}

/* Sets up ctx to sign or verify with key under alg: SHA-256 except for
 * Ed25519 (which hashes internally), PKCS#1 v1.5 padding for RSA. */
static int jwt__digest_init(EVP_MD_CTX *ctx, EVP_PKEY *pkey, enum jwt_alg alg, bool sign)
{
    const char *md = alg == JWT_ALG_EDDSA ? NULL : "SHA256";
    EVP_PKEY_CTX *pctx = NULL;
    int ok = sign ? EVP_DigestSignInit_ex(ctx, &pctx, md, NULL, NULL, pkey, NULL)
                  : EVP_DigestVerifyInit_ex(ctx, &pctx, md, NULL, NULL, pkey, NULL);

    if (ok != 1)
        return -1;
    if (alg == JWT_ALG_RS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
        return -1;
    return 0;
}

static enum jwt_error jwt__verify_sig(const struct jwt_key *key, const char *msg, size_t len,
                                      const uint8_t *sig, size_t sig_len)
{
    uint8_t der[JWT_ES256_DER_MAX];
    EVP_MD_CTX *ctx = NULL;
    enum jwt_error e = JWT_ERR_BAD_SIGNATURE;

    if (key->alg == JWT_ALG_ES256) {
        if (jwt__es256_to_der(sig, sig_len, der, &sig_len) != 0)
            goto out;
        sig = der;
    } else if (sig_len != (size_t)EVP_PKEY_get_size(key->pkey)) {
        goto out;
    }
    if ((ctx = EVP_MD_CTX_new()) == NULL || jwt__digest_init(ctx, key->pkey, key->alg, false) != 0)
        goto out;
    if (EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)msg, len) == 1)
        e = JWT_OK;
out:
    EVP_MD_CTX_free(ctx);
    /* A refused signature leaves errors queued; they would pile up. */
    ERR_clear_error();
    return e;
}

/* --- claims ---------------------------------------------------------------- */

static enum jwt_error jwt__refuse(struct jwt_claims *out, enum jwt_error e, const char *claim)
{
    snprintf(out->missing, sizeof(out->missing), "%s", claim);
    return e;
}

/* Claim text ends up in logs and session ids: no control characters. */
static bool jwt__text_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    }
    return true;
}

/* Copies string claim name into dst (JWT_CLAIM_MAX bytes). A required claim
 * may not be empty; an absent optional one becomes "". */
static enum jwt_error jwt__claim_string(const json_t *c, const char *name, bool required, char *dst,
                                        struct jwt_claims *out)
{
    const json_t *v = json_object_get(c, name);
    size_t len;

    dst[0] = '\0';
    if (v == NULL)
        return required ? jwt__refuse(out, JWT_ERR_MISSING_CLAIM, name) : JWT_OK;
    if (!json_is_string(v))
        return jwt__refuse(out, JWT_ERR_BAD_CLAIM, name);
    len = json_string_length(v);
    if ((required && len == 0) || len >= JWT_CLAIM_MAX || !jwt__text_ok(json_string_value(v), len))
        return jwt__refuse(out, JWT_ERR_BAD_CLAIM, name);
    memcpy(dst, json_string_value(v), len + 1);
    return JWT_OK;
}

/* A NumericDate (RFC 7519 §2): integer or real seconds, truncated. */
static enum jwt_error jwt__claim_date(const json_t *c, const char *name, bool required, int64_t *t,
                                      struct jwt_claims *out)
{
    const json_t *v = json_object_get(c, name);
    double d;

    *t = 0;
    if (v == NULL)
        return required ? jwt__refuse(out, JWT_ERR_MISSING_CLAIM, name) : JWT_OK;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);

        if (i < 0 || i > JWT_DATE_MAX)
            return jwt__refuse(out, JWT_ERR_BAD_CLAIM, name);
        *t = (int64_t)i;
        return JWT_OK;
    }
    if (!json_is_real(v))
        return jwt__refuse(out, JWT_ERR_BAD_CLAIM, name);
    d = json_real_value(v);
    if (!isfinite(d) || d < 0 || d > (double)JWT_DATE_MAX)
        return jwt__refuse(out, JWT_ERR_BAD_CLAIM, name);
    *t = (int64_t)d;
    return JWT_OK;
}

static enum jwt_error jwt__check_iss(const json_t *c, const struct jwt_policy *p,
                                     struct jwt_claims *out)
{
    enum jwt_error e = jwt__claim_string(c, "iss", true, out->iss, out);

    if (e != JWT_OK)
        return e;
    if (p->issuer == NULL || strcmp(out->iss, p->issuer) != 0)
        return JWT_ERR_WRONG_ISSUER;
    return JWT_OK;
}

static bool jwt__aud_is(const json_t *v, const struct jwt_policy *p)
{
    return p->audience != NULL && jwt__str_is(v, p->audience, false);
}

/* aud is a string or an array of strings (RFC 7519 §4.1.3). */
static enum jwt_error jwt__check_aud(const json_t *c, const struct jwt_policy *p,
                                     struct jwt_claims *out)
{
    const json_t *aud = json_object_get(c, "aud"), *v;
    bool found = false;
    size_t i;

    if (aud == NULL)
        return jwt__refuse(out, JWT_ERR_MISSING_CLAIM, "aud");
    if (json_is_string(aud))
        return jwt__aud_is(aud, p) ? JWT_OK : JWT_ERR_WRONG_AUDIENCE;
    if (!json_is_array(aud))
        return jwt__refuse(out, JWT_ERR_BAD_CLAIM, "aud");
    json_array_foreach (aud, i, v) {
        if (!json_is_string(v))
            return jwt__refuse(out, JWT_ERR_BAD_CLAIM, "aud");
        found = found || jwt__aud_is(v, p);
    }
    return found ? JWT_OK : JWT_ERR_WRONG_AUDIENCE;
}

/* All three dates are read before any is judged, so a token lacking iat is
 * reported as such whatever its exp. */
static enum jwt_error jwt__check_times(const json_t *c, const struct jwt_policy *p, int64_t now,
                                       struct jwt_claims *out)
{
    int64_t skew = p->max_skew_s < QR_TOKEN_SKEW_MAX_S ? p->max_skew_s : QR_TOKEN_SKEW_MAX_S;
    enum jwt_error e;

    if ((e = jwt__claim_date(c, "exp", true, &out->exp, out)) != JWT_OK ||
        (e = jwt__claim_date(c, "nbf", false, &out->nbf, out)) != JWT_OK ||
        (e = jwt__claim_date(c, "iat", true, &out->iat, out)) != JWT_OK)
        return e;
    if (now > out->exp + skew)
        return JWT_ERR_EXPIRED;
    if (json_object_get(c, "nbf") != NULL && now + skew < out->nbf)
        return JWT_ERR_NOT_YET_VALID;
    if (out->iat > now + skew)
        return JWT_ERR_ISSUED_IN_FUTURE;
    if (out->exp - out->iat > (int64_t)p->max_lifetime_s)
        return JWT_ERR_LIFETIME_TOO_LONG;
    return JWT_OK;
}

static enum jwt_error jwt__check_role(const struct jwt_policy *p, const char *role)
{
    for (const char *const *r = p->roles; r != NULL && *r != NULL; r++) {
        if (strcmp(*r, role) == 0)
            return JWT_OK;
    }
    return JWT_ERR_ROLE_NOT_ALLOWED;
}

bool jwt_locale_ok(const char *s)
{
    size_t len = strlen(s);

    return len >= 2 && len < JWT_LOCALE_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-") == len &&
           s[0] != '-' && s[len - 1] != '-';
}

/* The optional language of the person's page. It only picks the page's
 * language, so one that is not a BCP 47 tag's characters ("en_US", a
 * number) is left out rather than refusing the person: the page then
 * follows the browser. */
static void jwt__claim_locale(const json_t *c, struct jwt_claims *out)
{
    const json_t *v = json_object_get(c, "locale");

    out->locale[0] = '\0';
    if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v) &&
        jwt_locale_ok(json_string_value(v)))
        memcpy(out->locale, json_string_value(v), json_string_length(v) + 1);
}

static enum jwt_error jwt__check_ids(const json_t *c, const struct jwt_policy *p,
                                     struct jwt_claims *out)
{
    const json_t *part2 = json_object_get(c, "42cfr_part2");
    enum jwt_error e;

    if ((e = jwt__claim_string(c, "jti", true, out->jti, out)) != JWT_OK ||
        (e = jwt__claim_string(c, "sub", true, out->sub, out)) != JWT_OK ||
        (e = jwt__claim_string(c, "role", true, out->role, out)) != JWT_OK ||
        (e = jwt__claim_string(c, "sid", true, out->sid, out)) != JWT_OK ||
        (e = jwt__claim_string(c, "name", false, out->name, out)) != JWT_OK)
        return e;
    jwt__claim_locale(c, out);
    if (part2 != NULL && !json_is_boolean(part2))
        return jwt__refuse(out, JWT_ERR_BAD_CLAIM, "42cfr_part2");
    out->part2 = json_is_true(part2);
    return jwt__check_role(p, out->role);
}

/* After a signed token is refused, copies every claim that can be read, so
 * that the refusal can be audited: the claims are authentic, only not
 * acceptable. The verdict and the claim it names stay as they were. */
static void jwt__copy_rest(const json_t *c, struct jwt_claims *out)
{
    char missing[sizeof(out->missing)];

    memcpy(missing, out->missing, sizeof(missing));
    (void)jwt__claim_string(c, "iss", true, out->iss, out);
    (void)jwt__claim_string(c, "sub", true, out->sub, out);
    (void)jwt__claim_string(c, "role", true, out->role, out);
    (void)jwt__claim_string(c, "sid", true, out->sid, out);
    (void)jwt__claim_string(c, "jti", true, out->jti, out);
    (void)jwt__claim_string(c, "name", false, out->name, out);
    (void)jwt__claim_date(c, "exp", true, &out->exp, out);
    (void)jwt__claim_date(c, "iat", true, &out->iat, out);
    (void)jwt__claim_date(c, "nbf", false, &out->nbf, out);
    out->part2 = json_is_true(json_object_get(c, "42cfr_part2"));
    memcpy(out->missing, missing, sizeof(missing));
}

enum jwt_error jwt__check_payload(const struct jwt_policy *policy, const uint8_t *payload,
                                  size_t len, int64_t now, struct jwt_claims *out)
{
    json_t *c = jwt__parse_object(payload, len);
    enum jwt_error e;

    if (c == NULL)
        return JWT_ERR_MALFORMED;
    if ((e = jwt__check_iss(c, policy, out)) == JWT_OK &&
        (e = jwt__check_aud(c, policy, out)) == JWT_OK &&
        (e = jwt__check_times(c, policy, now, out)) == JWT_OK)
        e = jwt__check_ids(c, policy, out);
    if (e != JWT_OK)
        jwt__copy_rest(c, out);
    json_decref(c);
    return e;
}

/* --- verify ---------------------------------------------------------------- */

enum jwt_error jwt_verify(const struct jwt_keyset *ks, const struct jwt_policy *policy,
                          const char *token, size_t len, int64_t now, struct jwt_claims *out)
{
    uint8_t buf[QR_TOKEN_MAX];
    struct jwt_parts p;
    struct jwt_header h = {0};
    const struct jwt_key *key = NULL;
    enum jwt_error e;

    /* Nothing is written to out until the signature checks out; from then
     * on it holds authentic claims, even when they are refused. */
    memset(out, 0, sizeof(*out));
    if ((e = jwt__split(token, len, buf, &p)) != JWT_OK ||
        (e = jwt__parse_header(&p, &h)) != JWT_OK || (e = jwt__select_key(ks, &h, &key)) != JWT_OK)
        goto out;
    /* The signing input is the token's own text up to the second dot. */
    e = jwt__verify_sig(key, token, p.text_len[JWT_PART_HEADER] + 1 + p.text_len[JWT_PART_PAYLOAD],
                        p.raw[JWT_PART_SIG], p.raw_len[JWT_PART_SIG]);
    if (e != JWT_OK)
        goto out;
    memcpy(out->kid, key->kid, sizeof(key->kid));
    out->alg = key->alg;
    e = jwt__check_payload(policy, p.raw[JWT_PART_PAYLOAD], p.raw_len[JWT_PART_PAYLOAD], now, out);
out:
    json_decref(h.json);
    /* A token is a bearer credential, and its payload may name a patient. */
    OPENSSL_cleanse(buf, sizeof(buf));
    return e;
}

/* --- sign ------------------------------------------------------------------ */

/* Signs msg; ES256 signatures come out as raw r||s. */
static int jwt__sign(EVP_PKEY *pkey, enum jwt_alg alg, const char *msg, size_t len, uint8_t *sig,
                     size_t *sig_len)
{
    uint8_t der[JWT_SIG_MAX];
    size_t der_len = sizeof(der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = -1;

    if (ctx == NULL || jwt__digest_init(ctx, pkey, alg, true) != 0 ||
        EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)msg, len) != 1)
        goto out;
    if (alg == JWT_ALG_ES256) {
        if (jwt__der_to_es256(der, der_len, sig) != 0)
            goto out;
        *sig_len = JWT_ES256_SIG_LEN;
    } else {
        memcpy(sig, der, der_len);
        *sig_len = der_len;
    }
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

/* Room for base64url of len bytes, NUL included. */
static size_t jwt__b64url_room(size_t len)
{
    return (len + 2) / 3 * 4 + 1;
}

/* Builds "header.payload" text for a key of alg. *out is malloc'ed. */
static int jwt__signing_input(enum jwt_alg alg, const char *kid, const json_t *claims, char **out,
                              size_t *out_len, char *err, size_t errlen)
{
    json_t *hdr = json_pack("{s:s,s:s,s:s}", "alg", jwt__alg_name(alg), "typ", "JWT", "kid", kid);
    char *htext = hdr ? json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    char *ctext = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
    size_t room, n;
    int rc = -1;

    *out = NULL;
    if (htext == NULL || ctext == NULL) {
        snprintf(err, errlen, "cannot encode the token as JSON");
        goto out;
    }
    if (strlen(ctext) > QR_TOKEN_MAX) {
        snprintf(err, errlen, "the claims are larger than a token may be");
        goto out;
    }
    room = jwt__b64url_room(strlen(htext)) + jwt__b64url_room(strlen(ctext)) +
           jwt__b64url_room(JWT_SIG_MAX);
    if ((*out = malloc(room)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    n = jwt__b64url_encode((const uint8_t *)htext, strlen(htext), *out);
    (*out)[n++] = '.';
    n += jwt__b64url_encode((const uint8_t *)ctext, strlen(ctext), *out + n);
    *out_len = n;
    rc = 0;
out:
    free(htext);
    free(ctext);
    json_decref(hdr);
    return rc;
}

int jwt_sign_pem(const char *key_path, const char *kid, const json_t *claims, char **out, char *err,
                 size_t errlen)
{
    uint8_t sig[JWT_SIG_MAX];
    size_t sig_len = 0, n = 0;
    EVP_PKEY *pkey = NULL;
    enum jwt_alg alg;
    char *tok = NULL;

    *out = NULL;
    if (kid == NULL || !jwt__kid_valid(kid)) {
        snprintf(err, errlen, "kid must be 1 to %d printable ASCII characters", JWT_KID_MAX);
        goto fail;
    }
    if (!json_is_object(claims)) {
        snprintf(err, errlen, "claims must be a JSON object");
        goto fail;
    }
    if ((pkey = jwt__pem_load(key_path, true, err, errlen)) == NULL ||
        jwt__key_alg(pkey, &alg, err, errlen) != 0 ||
        jwt__signing_input(alg, kid, claims, &tok, &n, err, errlen) != 0)
        goto fail;
    if (jwt__sign(pkey, alg, tok, n, sig, &sig_len) != 0) {
        snprintf(err, errlen, "%s: signing failed", key_path);
        goto fail;
    }
    tok[n++] = '.';
    n += jwt__b64url_encode(sig, sig_len, tok + n);
    if (n > QR_TOKEN_MAX) {
        snprintf(err, errlen, "the token would be %zu bytes, more than %d", n, QR_TOKEN_MAX);
        goto fail;
    }
    EVP_PKEY_free(pkey);
    *out = tok;
    return 0;
fail:
    EVP_PKEY_free(pkey);
    free(tok);
    return -1;
}
