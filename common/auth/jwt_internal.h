/* What jwt.c and jwt_keys.c share, and the test and fuzz
 * harnesses may reach. Not part of the public interface. */
#ifndef QUIETROOM_JWT_INTERNAL_H
#define QUIETROOM_JWT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "quietroom/auth/jwt.h"

/* A kid is an identifier an operator types: bounded so it fits jwt_claims. */
#define JWT_KID_MAX 64
/* Keys one keyset holds: enough for every EHR key in rotation. */
#define JWT_KEYS_MAX 32
/* RSA moduli accepted: below 2048 bits is breakable, above 8192 only costs
 * verification time an attacker could exploit. */
#define JWT_RSA_MIN_BITS 2048
#define JWT_RSA_MAX_BITS 8192
/* A key or JWKS file larger than this is not one. */
#define JWT_KEY_FILE_MAX (256 * 1024)
/* ES256 signatures are raw r||s (RFC 7518 §3.4), 32 bytes each. */
#define JWT_ES256_HALF 32
#define JWT_ES256_SIG_LEN (2 * JWT_ES256_HALF)

struct jwt_key {
    char kid[JWT_KID_MAX + 1];
    enum jwt_alg alg;
    EVP_PKEY *pkey; /* owned */
};

struct jwt_keyset {
    unsigned n;
    struct jwt_key keys[JWT_KEYS_MAX];
};

/* "ES256", "EdDSA" or "RS256". */
const char *jwt__alg_name(enum jwt_alg alg);

/* Unpadded base64url of in into out (room for 4 * ceil(len / 3) + 1 bytes,
 * NUL-terminated). Returns the text length. */
size_t jwt__b64url_encode(const uint8_t *in, size_t len, char *out);
/* Decodes strict base64url (no padding, no whitespace, canonical trailing
 * bits) into out, which has room for cap bytes. Returns 0 with *outlen, or
 * -1 (also if the result would not fit). */
int jwt__b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen);
/* True if v is the JSON string s (ASCII case ignored if any_case). */
bool jwt__str_is(const json_t *v, const char *s, bool any_case);

/* True for a kid a keyset can hold: 1 to JWT_KID_MAX printable ASCII. */
bool jwt__kid_valid(const char *kid);
/* The algorithm a key may sign or verify with, or -1 with err if the key is
 * of no accepted type (RSA below 2048 bits, a curve other than P-256...). */
int jwt__key_alg(EVP_PKEY *pkey, enum jwt_alg *alg, char *err, size_t errlen);
/* Reads a PEM key from path. With need_private only a private key will do;
 * otherwise a public key is accepted as well. Returns NULL with err. */
EVP_PKEY *jwt__pem_load(const char *path, bool need_private, char *err, size_t errlen);
/* The key stored under kid, or NULL. */
const struct jwt_key *jwt__keyset_find(const struct jwt_keyset *ks, const char *kid, size_t len);

/* Checks the claims of a token whose signature is already good (payload is
 * the decoded JSON text) and copies them into out. Exposed for the fuzzer:
 * no forged signature is needed to reach it there. */
enum jwt_error jwt__check_payload(const struct jwt_policy *policy, const uint8_t *payload,
                                  size_t len, int64_t now, struct jwt_claims *out);

#endif
