/* Reusable HMAC contexts (OpenSSL EVP_MAC) for code that computes many MACs:
 * fetched once, so a MAC on the STUN path allocates nothing. Not thread-safe:
 * each thread owns its own. */
#ifndef QUIETROOM_HMAC_H
#define QUIETROOM_HMAC_H

#include <stddef.h>
#include <stdint.h>

#define HMAC_SHA1_LEN 20
#define HMAC_SHA256_LEN 32

enum hmac_digest { HMAC_SHA1, HMAC_SHA256 };

struct hmac;

/* Allocates a context for one digest; NULL on failure. Free with hmac_free. */
struct hmac *hmac_new(enum hmac_digest digest);
void hmac_free(struct hmac *h);

/* Streaming use: begin with a key, update, end. end writes hmac_size() bytes. */
int hmac_begin(struct hmac *h, const uint8_t *key, size_t key_len);
int hmac_update(struct hmac *h, const void *data, size_t len);
int hmac_end(struct hmac *h, uint8_t *out);
size_t hmac_size(const struct hmac *h);

/* One-shot: out = HMAC(key, data). Returns 0 on success. */
int hmac_compute(struct hmac *h, const uint8_t *key, size_t key_len, const void *data, size_t len,
                 uint8_t *out);

/* Constant-time comparison of two MACs. */
int hmac_equal(const uint8_t *a, const uint8_t *b, size_t len);

#endif
