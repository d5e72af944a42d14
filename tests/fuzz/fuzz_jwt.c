/* Token verification on arbitrary bytes, against a real keyset: ES256 (kid
 * "es"), EdDSA ("ed", loaded from JWKS) and RS256 ("rs"), made once at
 * start-up with fresh keys. No input can verify, since none was signed by
 * these keys: JWT_OK would mean a forged signature, so it aborts. The same
 * bytes also go to the claims checker as a payload, which a fuzzer could
 * otherwise reach only behind a valid signature. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/auth/jwt_internal.h"
#include "quietroom/auth/jwt.h"

#define NOW INT64_C(1800000000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const roles[] = {"clinician", "patient", NULL};

static const struct jwt_policy policy = {
    .issuer = "quietroom-dev",
    .audience = "quietroom",
    .max_skew_s = 60,
    .max_lifetime_s = 12 * 3600,
    .roles = roles,
};

/* Generates one key pair in dir, adds its public half to ks, and removes
 * the files. */
static void fuzz__add_key(struct jwt_keyset *ks, const char *dir, const char *type, const char *kid,
                          bool jwks)
{
    static const char *const suffix[] = {".key", ".pub.pem", ".jwks.json"};
    char prefix[128], path[160], err[512];
    int rc;

    snprintf(prefix, sizeof(prefix), "%s/%s", dir, kid);
    if (jwt_keygen(type, prefix, kid, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    snprintf(path, sizeof(path), "%s%s", prefix, jwks ? ".jwks.json" : ".pub.pem");
    rc = jwks ? jwt_keyset_add_jwks(ks, path, err, sizeof(err))
              : jwt_keyset_add_pem(ks, kid, path, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", prefix, suffix[i]);
        unlink(path);
    }
}

static const struct jwt_keyset *fuzz__keyset(void)
{
    static struct jwt_keyset *ks;
    char dir[] = "/tmp/qr-fuzz-jwt-XXXXXX";

    if (ks != NULL)
        return ks;
    if (mkdtemp(dir) == NULL || (ks = jwt_keyset_new()) == NULL)
        abort();
    fuzz__add_key(ks, dir, "ec", "es", false);
    fuzz__add_key(ks, dir, "ed25519", "ed", true);
    fuzz__add_key(ks, dir, "rsa", "rs", false);
    rmdir(dir);
    return ks;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct jwt_keyset *ks = fuzz__keyset();
    struct jwt_claims c;
    enum jwt_error e;

    if (jwt_verify(ks, &policy, (const char *)data, size, NOW, &c) == JWT_OK)
        abort();
    memset(&c, 0, sizeof(c));
    e = jwt__check_payload(&policy, data, size, NOW, &c);
    if ((e == JWT_ERR_MISSING_CLAIM || e == JWT_ERR_BAD_CLAIM) && c.missing[0] == '\0')
        abort(); /* the claim at fault is always named */
    if (e == JWT_OK && (c.sub[0] == '\0' || c.sid[0] == '\0' || c.role[0] == '\0'))
        abort(); /* accepted claims are never empty */
    return 0;
}
