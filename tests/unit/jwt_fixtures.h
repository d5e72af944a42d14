/* Shared by test_jwt.c and test_jwt_keys.c: the test's keys (made at test
 * time with jwt_keygen, loaded from PEM and from one JWKS file), the policy,
 * and tokens forged with OpenSSL independently of jwt.c. */
#ifndef QR_TEST_JWT_FIXTURES_H
#define QR_TEST_JWT_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "quietroom/auth/jwt.h"

#define NOW INT64_C(1800000000)
#define ISS "https://ehr.example"
#define LIFETIME 3600
#define X16 "xxxxxxxxxxxxxxxx"
#define X127 X16 X16 X16 X16 X16 X16 X16 "xxxxxxxxxxxxxxx"
#define X128 X127 "x"

/* The keys that sign. OTHER is a second EC key that claims kid k-es. */
enum tkey { K_ES, K_ED, K_RS, K_OTHER, K_N };

struct tkey_info {
    const char *type, *kid, *alg;
};

extern const struct tkey_info tkeys[K_N];

struct fixture {
    char dir[64];
    char key[K_N][128];  /* prefix.key */
    char pub[K_N][128];  /* prefix.pub.pem */
    char jwks[K_N][128]; /* prefix.jwks.json */
    char all_jwks[128];  /* ES, EdDSA and RS256 in one JWKS */
    EVP_PKEY *priv[K_N];
    struct jwt_keyset *by_pem, *by_jwks;
};

extern const struct jwt_policy policy;

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

char *b64url(const uint8_t *in, size_t len);
char *path_in(const struct fixture *f, const char *name, char *buf, size_t len);
/* Merges JSON patch into obj: a null member deletes. With relative, the
 * numbers given for exp, iat and nbf are seconds from NOW. */
void merge(json_t *obj, const char *patch, bool relative);
/* A compact token for c; the caller frees it. */
char *forge(const struct fixture *f, const struct tcase *c);
enum jwt_error verify_str(const struct jwt_keyset *ks, const char *tok, struct jwt_claims *out);
char *mint(const struct fixture *f, enum tkey key, const char *patch);
/* The JWK of the test's key k as a JSON object the caller owns. */
json_t *jwk_of(const struct fixture *f, enum tkey k);
void write_jwks(const char *path, json_t *keys);

/* cmocka group setup and teardown: the keys in a temporary directory. */
int setup(void **state);
int teardown(void **state);

#endif
