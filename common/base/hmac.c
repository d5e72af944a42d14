/* HMAC through OpenSSL's EVP_MAC with contexts kept for reuse. */
#include "quietroom/base/hmac.h"

#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

struct hmac {
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
    size_t size;
};

struct hmac *hmac_new(enum hmac_digest digest)
{
    const char *name = digest == HMAC_SHA1 ? "SHA1" : "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)name, 0),
        OSSL_PARAM_construct_end(),
    };
    struct hmac *h = calloc(1, sizeof(*h));

    if (h == NULL)
        return NULL;
    h->size = digest == HMAC_SHA1 ? HMAC_SHA1_LEN : HMAC_SHA256_LEN;
    if ((h->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
        goto fail;
    if ((h->ctx = EVP_MAC_CTX_new(h->mac)) == NULL)
        goto fail;
    if (!EVP_MAC_CTX_set_params(h->ctx, params))
        goto fail;
    return h;
fail:
    hmac_free(h);
    return NULL;
}

void hmac_free(struct hmac *h)
{
    if (h == NULL)
        return;
    EVP_MAC_CTX_free(h->ctx);
    EVP_MAC_free(h->mac);
    free(h);
}

int hmac_begin(struct hmac *h, const uint8_t *key, size_t key_len)
{
    /* OpenSSL refuses a NULL key pointer even with length 0 (STUN tests do
     * use empty keys), so point at a harmless byte instead. */
    static const uint8_t empty;

    return EVP_MAC_init(h->ctx, key_len ? key : &empty, key_len, NULL) ? 0 : -1;
}

int hmac_update(struct hmac *h, const void *data, size_t len)
{
    return EVP_MAC_update(h->ctx, data, len) ? 0 : -1;
}

int hmac_end(struct hmac *h, uint8_t *out)
{
    size_t out_len = 0;

    if (!EVP_MAC_final(h->ctx, out, &out_len, h->size) || out_len != h->size)
        return -1;
    return 0;
}

size_t hmac_size(const struct hmac *h)
{
    return h->size;
}

int hmac_compute(struct hmac *h, const uint8_t *key, size_t key_len, const void *data, size_t len,
                 uint8_t *out)
{
    if (hmac_begin(h, key, key_len) != 0 || hmac_update(h, data, len) != 0)
        return -1;
    return hmac_end(h, out);
}

int hmac_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}
