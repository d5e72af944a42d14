/* Token minting shared by `quietroomctl token` and `quietroomctl probe`. */
#include "token_mint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "quietroom/base/clock.h"
#include "quietroom/auth/jwt.h"

#define TOKEN_JTI_BYTES 16

/* A fresh 128-bit jti in base64url. */
static int token__random_jti(char *out)
{
    unsigned char raw[TOKEN_JTI_BYTES], text[(TOKEN_JTI_BYTES + 2) / 3 * 4 + 1];
    int n;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    n = EVP_EncodeBlock(text, raw, sizeof(raw));
    while (n > 0 && text[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        out[i] = text[i] == '+' ? '-' : text[i] == '/' ? '_' : (char)text[i];
    out[n] = '\0';
    return 0;
}

static json_t *token__claims(const struct token_mint_claims *c, const char *jti, int64_t now)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "iss", c->iss, "aud", c->aud, "sub",
                          c->sub, "role", c->role, "sid", c->sid, "jti", jti, "iat",
                          (json_int_t)now, "exp", (json_int_t)(now + c->ttl));

    if (j == NULL)
        return NULL;
    if ((c->nbf && json_object_set_new(j, "nbf", json_integer(now + c->nbf_in)) != 0) ||
        (c->name && json_object_set_new(j, "name", json_string(c->name)) != 0) ||
        (c->locale && json_object_set_new(j, "locale", json_string(c->locale)) != 0) ||
        (c->part2 && json_object_set_new(j, "42cfr_part2", json_true()) != 0)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

const char *token_mint_bad_claim(const struct token_mint_claims *c)
{
    const struct {
        const char *name, *value;
        bool required;
    } s[] = {
        {"sid", c->sid, true}, {"role", c->role, true}, {"sub", c->sub, true},
        {"iss", c->iss, true}, {"aud", c->aud, true},   {"jti", c->jti, false},
        {"name", c->name, false},
    };

    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        if (s[i].value == NULL ? s[i].required
                               : s[i].value[0] == '\0' || strlen(s[i].value) >= JWT_CLAIM_MAX)
            return s[i].name;
    }
    return NULL;
}

int token_mint(const struct token_mint_claims *c, char **out, char *err, size_t errlen)
{
    char jti[JWT_CLAIM_MAX];
    const char *bad = token_mint_bad_claim(c);
    json_t *claims;
    int rc;

    *out = NULL;
    if (c->key == NULL || c->kid == NULL) {
        snprintf(err, errlen, "a signing key and its kid are required");
        return -1;
    }
    if (bad != NULL) {
        snprintf(err, errlen, "claim %s: 1 to %d bytes", bad, JWT_CLAIM_MAX - 1);
        return -1;
    }
    if (c->jti != NULL)
        snprintf(jti, sizeof(jti), "%s", c->jti);
    else if (token__random_jti(jti) != 0) {
        snprintf(err, errlen, "no randomness available");
        return -1;
    }
    if ((claims = token__claims(c, jti, (int64_t)clock_wall_s())) == NULL) {
        snprintf(err, errlen, "cannot build the claims (is every value UTF-8?)");
        return -1;
    }
    rc = jwt_sign_pem(c->key, c->kid, claims, out, err, errlen);
    json_decref(claims);
    return rc == 0 ? 0 : -1;
}

void token_mint_free(char *token)
{
    if (token == NULL)
        return;
    OPENSSL_cleanse(token, strlen(token));
    free(token);
}
