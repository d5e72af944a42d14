/* Relay credential encoding. The ufrag is not secret (it travels in SDP and
 * STUN); the password is a MAC of it, so it cannot be forged or altered. */
#include "quietroom/wire/creds.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "quietroom/base/bytes.h"

#define CREDS_RAW_LEN 21       /* 3 divides it: base64 without '=' padding */
#define CREDS_PWD_MAC_BYTES 24
#define CREDS_PWD_LABEL "quietroom ice-pwd v1"
#define CREDS_SESSION_LABEL "quietroom session v1"

static const char *const creds_status_names[] = {
    [CREDS_OK] = "ok",
    [CREDS_MALFORMED] = "malformed",
    [CREDS_BAD_VERSION] = "bad_version",
    [CREDS_UNKNOWN_KEY] = "unknown_key",
    [CREDS_EXPIRED] = "expired",
    [CREDS_TOO_LONG] = "too_long",
};

const char *creds_status_name(enum creds_status s)
{
    if ((size_t)s >= sizeof(creds_status_names) / sizeof(creds_status_names[0]))
        return "unknown";
    return creds_status_names[s];
}

void creds_encode_ufrag(const struct creds_leg *leg, char *out)
{
    uint8_t raw[CREDS_RAW_LEN];

    raw[0] = leg->version;
    raw[1] = leg->kid;
    bytes_put32(raw + 2, leg->expires);
    memcpy(raw + 6, leg->session, CREDS_SESSION_KEY_LEN);
    bytes_put16(raw + 14, leg->link);
    raw[16] = leg->side;
    memcpy(raw + 17, leg->nonce, CREDS_NONCE_LEN);
    EVP_EncodeBlock((unsigned char *)out, raw, CREDS_RAW_LEN);
}

static bool creds__is_ice_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

enum creds_status creds_decode_ufrag(const char *ufrag, size_t len, struct creds_leg *leg)
{
    uint8_t raw[CREDS_RAW_LEN];

    if (len != CREDS_UFRAG_LEN)
        return CREDS_MALFORMED;
    for (size_t i = 0; i < len; i++) {
        if (!creds__is_ice_char(ufrag[i]))
            return CREDS_MALFORMED;
    }
    if (EVP_DecodeBlock(raw, (const unsigned char *)ufrag, CREDS_UFRAG_LEN) != CREDS_RAW_LEN)
        return CREDS_MALFORMED;
    leg->version = raw[0];
    leg->kid = raw[1];
    leg->expires = bytes_get32(raw + 2);
    memcpy(leg->session, raw + 6, CREDS_SESSION_KEY_LEN);
    leg->link = bytes_get16(raw + 14);
    leg->side = raw[16];
    memcpy(leg->nonce, raw + 17, CREDS_NONCE_LEN);
    if (leg->version != CREDS_VERSION)
        return CREDS_BAD_VERSION;
    if (leg->side > CREDS_SIDE_B)
        return CREDS_MALFORMED;
    return CREDS_OK;
}

int creds_password(const struct keyring_key *key, const char *ufrag, struct hmac *h, char *out)
{
    uint8_t mac[HMAC_SHA256_LEN];
    int rc = -1;

    if (hmac_size(h) != HMAC_SHA256_LEN || hmac_begin(h, key->secret, key->len) != 0 ||
        hmac_update(h, CREDS_PWD_LABEL, sizeof(CREDS_PWD_LABEL)) != 0 ||
        hmac_update(h, ufrag, CREDS_UFRAG_LEN) != 0 || hmac_end(h, mac) != 0)
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
        creds_encode_ufrag(&leg, out->ufrag[side]);
        if (creds_password(key, out->ufrag[side], h, out->pwd[side]) != 0)
            return -1;
    }
    return 0;
}

enum creds_status creds_verify(const struct keyring *kr, const char *ufrag, size_t len,
                               uint32_t now, uint32_t max_ttl, struct hmac *h,
                               struct creds_leg *leg, char *pwd)
{
    const struct keyring_key *key;
    enum creds_status s = creds_decode_ufrag(ufrag, len, leg);

    if (s != CREDS_OK)
        return s;
    if ((key = keyring_find(kr, leg->kid)) == NULL)
        return CREDS_UNKNOWN_KEY;
    if (leg->expires <= now)
        return CREDS_EXPIRED;
    if (leg->expires - now > max_ttl)
        return CREDS_TOO_LONG;
    if (creds_password(key, ufrag, h, pwd) != 0)
        return CREDS_MALFORMED;
    return CREDS_OK;
}

bool creds_same_link(const struct creds_leg *a, const struct creds_leg *b)
{
    return a->version == b->version && a->kid == b->kid && a->expires == b->expires &&
           a->link == b->link && memcmp(a->session, b->session, CREDS_SESSION_KEY_LEN) == 0 &&
           memcmp(a->nonce, b->nonce, CREDS_NONCE_LEN) == 0;
}
