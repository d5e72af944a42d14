/* Single-use tokens. An entry holds a keyed digest of (iss, jti) rather than
 * the strings: every entry has the same size, and a memory dump links none
 * to a person. Entries are dense (removal moves the last one into the hole)
 * so that purging touches only live ones. */
#include "quietroom/auth/jwt.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "quietroom/base/hindex.h"

/* 128 bits of a keyed SHA-256: no collision is within anyone's reach. */
#define JWT_REPLAY_DIGEST 16
#define JWT_REPLAY_SEED 32
/* Entries each check examines for expiry, so the cache drains steadily
 * instead of in one long pause when it fills. */
#define JWT_REPLAY_SWEEP 8

struct jwt_replay_entry {
    uint8_t digest[JWT_REPLAY_DIGEST];
    int64_t until; /* forgotten once now passes this */
};

struct jwt_replay {
    struct jwt_replay_entry *entries; /* owned: max of them, count in use */
    struct hindex index;
    uint32_t count, max;
    uint32_t sweep; /* next entry the lazy sweep looks at */
    uint8_t seed[JWT_REPLAY_SEED];
    EVP_MD *sha256;  /* owned */
    EVP_MD_CTX *ctx; /* owned */
};

struct jwt_replay_probe {
    const struct jwt_replay *r;
    const uint8_t *digest;
};

struct jwt_replay *jwt_replay_new(uint32_t max_entries)
{
    struct jwt_replay *r;

    if (max_entries == 0 || max_entries > QR_REPLAY_MAX || (r = calloc(1, sizeof(*r))) == NULL)
        return NULL;
    r->max = max_entries;
    if (hindex_init(&r->index, max_entries) != 0) {
        free(r);
        return NULL;
    }
    r->entries = calloc(max_entries, sizeof(*r->entries));
    r->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    r->ctx = EVP_MD_CTX_new();
    if (r->entries == NULL || r->sha256 == NULL || r->ctx == NULL ||
        RAND_bytes(r->seed, sizeof(r->seed)) != 1) {
        jwt_replay_free(r);
        return NULL;
    }
    return r;
}

void jwt_replay_free(struct jwt_replay *r)
{
    if (r == NULL)
        return;
    hindex_free(&r->index);
    free(r->entries);
    EVP_MD_CTX_free(r->ctx);
    EVP_MD_free(r->sha256);
    OPENSSL_cleanse(r->seed, sizeof(r->seed));
    free(r);
}

uint32_t jwt_replay_size(const struct jwt_replay *r)
{
    return r->count;
}

/* SHA-256(seed || iss || 0 || jti): iss holds no NUL, so the split is
 * unambiguous, and the seed keeps anyone from aiming at one bucket. */
static int jwt__replay_digest(struct jwt_replay *r, const char *iss, const char *jti,
                              uint8_t *digest)
{
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    int rc = -1;

    if (EVP_DigestInit_ex2(r->ctx, r->sha256, NULL) == 1 &&
        EVP_DigestUpdate(r->ctx, r->seed, sizeof(r->seed)) == 1 &&
        EVP_DigestUpdate(r->ctx, iss, strlen(iss) + 1) == 1 &&
        EVP_DigestUpdate(r->ctx, jti, strlen(jti)) == 1 &&
        EVP_DigestFinal_ex(r->ctx, full, &len) == 1 && len >= JWT_REPLAY_DIGEST) {
        memcpy(digest, full, JWT_REPLAY_DIGEST);
        rc = 0;
    }
    ERR_clear_error();
    return rc;
}

/* The digest is already keyed and uniform: its first bytes are the hash. */
static uint64_t jwt__replay_hash(const uint8_t *digest)
{
    uint64_t h;

    memcpy(&h, digest, sizeof(h));
    return h;
}

static bool jwt__replay_eq(const void *ctx, uint32_t id)
{
    const struct jwt_replay_probe *p = ctx;

    return memcmp(p->r->entries[id].digest, p->digest, JWT_REPLAY_DIGEST) == 0;
}

static void jwt__replay_remove(struct jwt_replay *r, uint32_t i)
{
    struct jwt_replay_entry *e = &r->entries[i], *last = &r->entries[r->count - 1];

    hindex_remove(&r->index, jwt__replay_hash(e->digest), i);
    if (e != last) {
        hindex_remove(&r->index, jwt__replay_hash(last->digest), r->count - 1);
        *e = *last;
        /* Cannot fail: two ids just left the index. */
        hindex_insert(&r->index, jwt__replay_hash(e->digest), i);
    }
    r->count--;
}

/* Examines up to budget entries from where the last sweep stopped. */
static void jwt__replay_sweep(struct jwt_replay *r, int64_t now, uint32_t budget)
{
    while (budget-- > 0 && r->count > 0) {
        if (r->sweep >= r->count)
            r->sweep = 0;
        if (r->entries[r->sweep].until < now)
            jwt__replay_remove(r, r->sweep);
        else
            r->sweep++;
    }
}

static void jwt__replay_purge(struct jwt_replay *r, int64_t now)
{
    uint32_t i = 0;

    while (i < r->count) {
        if (r->entries[i].until < now)
            jwt__replay_remove(r, i);
        else
            i++;
    }
}

/* A token is accepted until exp plus the largest skew any policy allows, so
 * it is remembered that long. An already expired token is refused outright:
 * remembering it would only take room. */
enum jwt_error jwt_replay_check(struct jwt_replay *r, const char *iss, const char *jti, int64_t exp,
                                int64_t now)
{
    struct jwt_replay_entry *e;
    struct jwt_replay_probe probe;
    uint8_t digest[JWT_REPLAY_DIGEST];

    if (iss == NULL || jti == NULL)
        return JWT_ERR_MISSING_CLAIM;
    if (exp < now - QR_TOKEN_SKEW_MAX_S)
        return JWT_ERR_EXPIRED;
    if (jwt__replay_digest(r, iss, jti, digest) != 0)
        return JWT_ERR_REPLAY_CACHE_FULL;
    jwt__replay_sweep(r, now, JWT_REPLAY_SWEEP);
    probe = (struct jwt_replay_probe){r, digest};
    if (hindex_find(&r->index, jwt__replay_hash(digest), jwt__replay_eq, &probe) != HINDEX_NONE)
        return JWT_ERR_REPLAYED;
    if (r->count == r->max)
        jwt__replay_purge(r, now);
    if (r->count == r->max || hindex_insert(&r->index, jwt__replay_hash(digest), r->count) != 0)
        return JWT_ERR_REPLAY_CACHE_FULL;
    e = &r->entries[r->count++];
    memcpy(e->digest, digest, sizeof(digest));
    e->until = exp > INT64_MAX - QR_TOKEN_SKEW_MAX_S ? INT64_MAX : exp + QR_TOKEN_SKEW_MAX_S;
    return JWT_OK;
}
