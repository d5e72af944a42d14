/* EHR session tokens: JWS compact serialisation (RFC 7515/7519) verified and
 * signed with OpenSSL. An algorithm allow-list per key (ES256 for EC P-256,
 * EdDSA for Ed25519, RS256 for RSA >= 2048 bits); nothing else, ever. */
#ifndef QUIETROOM_JWT_H
#define QUIETROOM_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "quietroom/base/limits.h"

enum jwt_alg { JWT_ALG_ES256, JWT_ALG_EDDSA, JWT_ALG_RS256 };

/* Why a token was refused. Each has a stable wire code (jwt_error_code). */
enum jwt_error {
    JWT_OK = 0,
    JWT_ERR_TOO_LARGE,          /* token_too_large */
    JWT_ERR_MALFORMED,          /* token_malformed: not three base64url parts of JSON */
    JWT_ERR_ALG_NONE,           /* token_alg_none */
    JWT_ERR_ALG_HMAC,           /* token_alg_hmac: HS256/384/512 */
    JWT_ERR_ALG_UNSUPPORTED,    /* token_alg_unsupported: any other alg */
    JWT_ERR_UNKNOWN_KID,        /* token_unknown_kid: absent or not configured */
    JWT_ERR_ALG_MISMATCH,       /* token_alg_mismatch: alg not allowed for that key */
    JWT_ERR_BAD_SIGNATURE,      /* token_bad_signature */
    JWT_ERR_WRONG_ISSUER,       /* token_wrong_issuer */
    JWT_ERR_WRONG_AUDIENCE,     /* token_wrong_audience */
    JWT_ERR_EXPIRED,            /* token_expired */
    JWT_ERR_NOT_YET_VALID,      /* token_not_yet_valid: nbf in the future */
    JWT_ERR_ISSUED_IN_FUTURE,   /* token_issued_in_future: iat in the future */
    JWT_ERR_LIFETIME_TOO_LONG,  /* token_lifetime_too_long: exp - iat beyond policy */
    JWT_ERR_MISSING_CLAIM,      /* token_missing_claim: see jwt_claims.missing */
    JWT_ERR_BAD_CLAIM,          /* token_bad_claim: wrong type or too long */
    JWT_ERR_ROLE_NOT_ALLOWED,   /* token_role_not_allowed */
    JWT_ERR_REPLAYED,           /* token_replayed: jti spent before (the state store) */
    JWT_ERR_COUNT
};

/* Stable snake_case code for the wire and the audit log ("token_expired"). */
const char *jwt_error_code(enum jwt_error e);
/* One sentence for people; never contains token content. */
const char *jwt_error_message(enum jwt_error e);

/* Public keys by kid, each with the one algorithm it may verify. */
struct jwt_keyset;

struct jwt_keyset *jwt_keyset_new(void);
void jwt_keyset_free(struct jwt_keyset *ks);
/* Adds a PEM public key (or a private key, whose public half is used) under
 * kid; the algorithm follows from the key type. Returns 0 or -1 with err. */
int jwt_keyset_add_pem(struct jwt_keyset *ks, const char *kid, const char *path, char *err,
                       size_t errlen);
/* Adds every signing key of a JWKS file (RFC 7517): kty EC/crv P-256,
 * kty OKP/crv Ed25519, kty RSA; "alg", if present, must match the key type;
 * "use", if present, must be "sig". Returns 0 or -1 with err. */
int jwt_keyset_add_jwks(struct jwt_keyset *ks, const char *path, char *err, size_t errlen);
unsigned jwt_keyset_count(const struct jwt_keyset *ks);

/* What the verifier checks besides the signature. */
struct jwt_policy {
    const char *issuer;            /* iss must equal this */
    const char *audience;          /* aud (string or array) must contain this */
    uint32_t max_skew_s;           /* clock skew tolerated on exp/nbf/iat; at most 60 */
    uint32_t max_lifetime_s;       /* exp - iat at most this */
    const char *const *roles;      /* roles allowed in video, NULL-terminated */
};

#define JWT_CLAIM_MAX 128
#define JWT_LOCALE_MAX 36             /* 35 characters of a BCP 47 tag, and a NUL */

/* The claims Quietroom uses, copied out of a verified token. */
struct jwt_claims {
    char kid[JWT_CLAIM_MAX];
    enum jwt_alg alg;
    char iss[JWT_CLAIM_MAX];
    char sub[JWT_CLAIM_MAX];       /* opaque user id */
    char role[JWT_CLAIM_MAX];
    char sid[JWT_CLAIM_MAX];       /* EHR session / appointment id */
    char jti[JWT_CLAIM_MAX];
    char name[JWT_CLAIM_MAX];      /* optional display name, "" if absent */
    char locale[JWT_LOCALE_MAX];   /* optional BCP 47 tag ("es-MX"), "" if absent */
    int64_t exp, iat, nbf;         /* nbf is 0 if absent */
    bool part2;                    /* "42cfr_part2": true marks a 42 CFR Part 2 session */
    char missing[16];              /* for JWT_ERR_MISSING_CLAIM / JWT_ERR_BAD_CLAIM: which */
};

/* Whether s is a usable locale: 2 to 35 letters, digits and inner '-'. */
bool jwt_locale_ok(const char *s);

/* Verifies token (len bytes, not NUL-terminated necessarily) at Unix time
 * now. Does not consult a replay cache: the caller does, with out->jti.
 * Required claims: iss, aud, exp, iat, jti, sub, role, sid. */
enum jwt_error jwt_verify(const struct jwt_keyset *ks, const struct jwt_policy *policy,
                          const char *token, size_t len, int64_t now, struct jwt_claims *out);

/* Signs claims with the private key in key_path (PEM), kid in the header,
 * alg from the key type. *out is a new NUL-terminated string the caller
 * frees. Returns 0 or -1 with err. For development and tests: a real EHR
 * signs its own tokens. */
int jwt_sign_pem(const char *key_path, const char *kid, const json_t *claims, char **out,
                 char *err, size_t errlen);

/* Creates a signing key pair: type "ec" (P-256), "ed25519" or "rsa" (3072).
 * Writes prefix.key (private, mode 0600, must not exist), prefix.pub.pem and
 * prefix.jwks.json (the public key under kid). Returns 0 or -1 with err. */
int jwt_keygen(const char *type, const char *prefix, const char *kid, char *err, size_t errlen);


#endif
