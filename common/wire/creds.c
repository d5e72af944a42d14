/* Relay credential encoding. The ufrag is not secret (it travels in SDP and
 * STUN); the password is a MAC of it, so it cannot be forged or altered.
 * Since version 2 the ufrag carries a short MAC of its own, so a relay can
 * refuse a forged ufrag with one hash and no answer. */
#include "quietroom/wire/creds.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "quietroom/base/bytes.h"

/* The fields, then (v2) the MAC. Both lengths divide by 3: base64
 * without '=' padding. */
#define CREDS_FIELDS_LEN 21
#define CREDS_RAW_MAX (CREDS_FIELDS_LEN + CREDS_UFRAG_MAC_LEN)
#define CREDS_PWD_MAC_BYTES 24
#define CREDS_PWD_LABEL "quietroom ice-pwd v1"
#define CREDS_SESSION_LABEL "quietroom session v1"
/* Its own label (NUL included, like the others: no label is a prefix of
 * another), so that no ufrag MAC is ever a password's prefix or the reverse.
 * 72 bits: the MAC can only be attacked online, one datagram per guess, and
 * a wrong guess earns silence; at 2^-72 a guess, a billion guesses a second
 * for a year (2^55) succeed with odds near 2^-17, and all a success buys is
 * a rate-limited 401. 9 bytes also keep the raw ufrag a multiple of 3 (40
 * characters, no padding); 6 (48 bits) would be within reach of a patient
 * attacker, 12 would make the ufrag 44 characters for no use. */
#define CREDS_UFRAG_MAC_LABEL "quietroom ufrag-mac v2"

_Static_assert(CREDS_UFRAG_LEN == CREDS_RAW_MAX / 3 * 4, "v2 ufrag length");
_Static_assert(CREDS_UFRAG_V1_LEN == CREDS_FIELDS_LEN / 3 * 4, "v1 ufrag length");
_Static_assert(CREDS_RAW_MAX % 3 == 0, "v2 ufrag without padding");

static const char *const creds_status_names[] = {
    [CREDS_OK] = "ok",
    [CREDS_MALFORMED] = "malformed",
    [CREDS_BAD_VERSION] = "bad_version",
    [CREDS_UNKNOWN_KEY] = "unknown_key",
    [CREDS_EXPIRED] = "expired",
    [CREDS_TOO_LONG] = "too_long",
    [CREDS_BAD_MAC] = "bad_mac",
    [CREDS_V1_REFUSED] = "v1_refused",
};

const char *creds_status_name(enum creds_status s)
{
    if ((size_t)s >= sizeof(creds_status_names) / sizeof(creds_status_names[0]))
        return "unknown";
    return creds_status_names[s];
}

size_t creds_ufrag_len(uint8_t version)
{
    switch (version) {
    case CREDS_VERSION_V1:
        return CREDS_UFRAG_V1_LEN;
    case CREDS_VERSION:
        return CREDS_UFRAG_LEN;
    default:
        return 0;
    }
}

/* MAC of a v2 ufrag's fields under key. */
static int creds__ufrag_mac(const struct keyring_key *key, const uint8_t *fields, struct hmac *h,
                            uint8_t *out)
{
    uint8_t mac[HMAC_SHA256_LEN];
    int rc = -1;

    if (hmac_size(h) != HMAC_SHA256_LEN || hmac_begin(h, key->secret, key->len) != 0 ||
        hmac_update(h, CREDS_UFRAG_MAC_LABEL, sizeof(CREDS_UFRAG_MAC_LABEL)) != 0 ||
        hmac_update(h, fields, CREDS_FIELDS_LEN) != 0 || hmac_end(h, mac) != 0)
        goto out;
    memcpy(out, mac, CREDS_UFRAG_MAC_LEN);
    rc = 0;
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

int creds_encode_ufrag(const struct creds_leg *leg, const struct keyring_key *key,
                       struct hmac *h, char *out)
{
    uint8_t raw[CREDS_RAW_MAX];
    size_t n = CREDS_FIELDS_LEN;

    if (creds_ufrag_len(leg->version) == 0)
        return -1;
    raw[0] = leg->version;
    raw[1] = leg->kid;
    bytes_put32(raw + 2, leg->expires);
    memcpy(raw + 6, leg->session, CREDS_SESSION_KEY_LEN);
    bytes_put16(raw + 14, leg->link);
    raw[16] = leg->side;
    memcpy(raw + 17, leg->nonce, CREDS_NONCE_LEN);
    if (leg->version != CREDS_VERSION_V1) {
        if (key == NULL || h == NULL || creds__ufrag_mac(key, raw, h, raw + n) != 0)
            return -1;
        n += CREDS_UFRAG_MAC_LEN;
    }
    return EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
}

static bool creds__is_ice_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* Base64 of either length into raw; the version byte must match the length. */
static enum creds_status creds__decode_raw(const char *ufrag, size_t len, uint8_t *raw)
{
    uint8_t version;

    if (len != CREDS_UFRAG_LEN && len != CREDS_UFRAG_V1_LEN)
        return CREDS_MALFORMED;
    for (size_t i = 0; i < len; i++) {
        if (!creds__is_ice_char(ufrag[i]))
            return CREDS_MALFORMED;
    }
    if (EVP_DecodeBlock(raw, (const unsigned char *)ufrag, (int)len) != (int)(len / 4 * 3))
        return CREDS_MALFORMED;
    version = raw[0];
    if (creds_ufrag_len(version) != len)
        return CREDS_BAD_VERSION;
    return CREDS_OK;
}

static void creds__fields(const uint8_t *raw, struct creds_leg *leg)
{
    leg->version = raw[0];
    leg->kid = raw[1];
    leg->expires = bytes_get32(raw + 2);
    memcpy(leg->session, raw + 6, CREDS_SESSION_KEY_LEN);
    leg->link = bytes_get16(raw + 14);
    leg->side = raw[16];
    memcpy(leg->nonce, raw + 17, CREDS_NONCE_LEN);
}

enum creds_status creds_decode_ufrag(const char *ufrag, size_t len, struct creds_leg *leg)
{
    uint8_t raw[CREDS_RAW_MAX];
    enum creds_status s = creds__decode_raw(ufrag, len, raw);

    if (s == CREDS_MALFORMED)
        return s;
    creds__fields(raw, leg);
    if (s != CREDS_OK)
        return s;
    if (leg->side > CREDS_SIDE_B)
        return CREDS_MALFORMED;
    return CREDS_OK;
}

int creds_password(const struct keyring_key *key, const char *ufrag, size_t len, struct hmac *h,
                   char *out)
{
    uint8_t mac[HMAC_SHA256_LEN];
    int rc = -1;

    if (hmac_size(h) != HMAC_SHA256_LEN || hmac_begin(h, key->secret, key->len) != 0 ||
        hmac_update(h, CREDS_PWD_LABEL, sizeof(CREDS_PWD_LABEL)) != 0 ||
        hmac_update(h, ufrag, len) != 0 || hmac_end(h, mac) != 0)
        goto out;
    EVP_EncodeBlock((unsigned char *)out, mac, CREDS_PWD_MAC_BYTES);
    rc = 0;
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

int creds_session_key(const struct keyring_key *key, const char *sid, size_t sid_len,
                      struct hmac *h, uint8_t *out)
{
    uint8_t mac[HMAC_SHA256_LEN];

    if (hmac_size(h) != HMAC_SHA256_LEN || hmac_begin(h, key->secret, key->len) != 0 ||
        hmac_update(h, CREDS_SESSION_LABEL, sizeof(CREDS_SESSION_LABEL)) != 0 ||
        hmac_update(h, sid, sid_len) != 0 || hmac_end(h, mac) != 0)
        return -1;
    memcpy(out, mac, CREDS_SESSION_KEY_LEN);
    return 0;
}

int creds_derive_link(const struct keyring *kr, const char *sid, uint16_t link, uint32_t expires,
                      struct hmac *h, struct creds_link *out)
{
    const struct keyring_key *key = keyring_active(kr);
    struct creds_leg leg = {.version = CREDS_VERSION, .expires = expires, .link = link};

    if (key == NULL || RAND_bytes(leg.nonce, CREDS_NONCE_LEN) != 1)
        return -1;
    leg.kid = key->id;
    if (creds_session_key(key, sid, strlen(sid), h, leg.session) != 0)
        return -1;
    for (int side = CREDS_SIDE_A; side <= CREDS_SIDE_B; side++) {
        leg.side = (uint8_t)side;
        if (creds_encode_ufrag(&leg, key, h, out->ufrag[side]) != CREDS_UFRAG_LEN ||
            creds_password(key, out->ufrag[side], CREDS_UFRAG_LEN, h, out->pwd[side]) != 0)
            return -1;
    }
    return 0;
}

enum creds_status creds_verify(const struct keyring *kr, const char *ufrag, size_t len,
                               uint32_t now, uint32_t max_ttl, bool accept_v1, struct hmac *h,
                               struct creds_leg *leg, char *pwd)
{
    const struct keyring_key *key;
    uint8_t raw[CREDS_RAW_MAX], mac[CREDS_UFRAG_MAC_LEN];
    enum creds_status s = creds__decode_raw(ufrag, len, raw);

    if (s != CREDS_OK)
        return s;
    creds__fields(raw, leg);
    if (leg->version == CREDS_VERSION_V1 && !accept_v1)
        return CREDS_V1_REFUSED;
    if ((key = keyring_find(kr, leg->kid)) == NULL)
        return CREDS_UNKNOWN_KEY;
    /* The one hash a forged v2 ufrag costs; nothing else follows it. */
    if (leg->version != CREDS_VERSION_V1 &&
        (creds__ufrag_mac(key, raw, h, mac) != 0 ||
         CRYPTO_memcmp(mac, raw + CREDS_FIELDS_LEN, CREDS_UFRAG_MAC_LEN) != 0))
        return CREDS_BAD_MAC;
    if (leg->side > CREDS_SIDE_B)
        return CREDS_MALFORMED;
    if (leg->expires <= now)
        return CREDS_EXPIRED;
    if (leg->expires - now > max_ttl)
        return CREDS_TOO_LONG;
    if (creds_password(key, ufrag, len, h, pwd) != 0)
        return CREDS_MALFORMED;
    return CREDS_OK;
}

bool creds_same_link(const struct creds_leg *a, const struct creds_leg *b)
{
    return a->version == b->version && a->kid == b->kid && a->expires == b->expires &&
           a->link == b->link && memcmp(a->session, b->session, CREDS_SESSION_KEY_LEN) == 0 &&
           memcmp(a->nonce, b->nonce, CREDS_NONCE_LEN) == 0;
}
