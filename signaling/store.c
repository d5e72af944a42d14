/* What both store backends share: the claim key, the backend choice and
 * the names of results. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

int store_claim_key(const char *iss, const char *jti, char key[STORE_KEY_LEN])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = -1;

    /* iss holds no NUL, so (iss, NUL, jti) splits one way only. */
    if (ctx != NULL && EVP_DigestInit_ex2(ctx, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, iss, strlen(iss) + 1) == 1 &&
        EVP_DigestUpdate(ctx, jti, strlen(jti)) == 1 && EVP_DigestFinal_ex(ctx, md, &len) == 1 &&
        len == 32) {
        for (unsigned i = 0; i < len; i++)
            snprintf(key + 2 * i, 3, "%02x", md[i]);
        rc = 0;
    }
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

struct store *store_open(const struct store_settings *s, char *err, size_t errlen)
{
    if (s->n_cluster > 0)
        return store_nats_open(s, err, errlen);
    return store_sqlite_open(s->state_dir, err, errlen);
}

void store_free(struct store *st)
{
    if (st == NULL)
        return;
    st->ops->free(st->impl);
    free(st);
}

const char *store_result_name(enum store_result r)
{
    switch (r) {
    case STORE_OK:
        return "ok";
    case STORE_TAKEN:
        return "taken";
    case STORE_CONFLICT:
        return "conflict";
    case STORE_ABSENT:
        return "absent";
    case STORE_UNAVAILABLE:
    default:
        return "unavailable";
    }
}
