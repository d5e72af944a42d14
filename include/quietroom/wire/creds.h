/* Stateless relay credentials: signaling derives ICE ufrag/pwd for each leg
 * of a link; any relay holding the secret recomputes pwd from ufrag alone. */
#ifndef QUIETROOM_CREDS_H
#define QUIETROOM_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quietroom/base/hmac.h"
#include "quietroom/base/keyring.h"

/* Version 2 (what creds_derive_link issues) appends a MAC to the ufrag so
 * that a relay can tell a ufrag signaling issued from a forged one before it
 * answers anything; version 1 ufrags (no MAC) are still understood. */
#define CREDS_VERSION 2
#define CREDS_VERSION_V1 1
#define CREDS_UFRAG_MAC_LEN 9     /* truncated HMAC-SHA256: 72 bits, see creds.c */
#define CREDS_UFRAG_LEN 40        /* v2: base64 of 21 + 9 bytes, within ICE's 4..256 */
#define CREDS_UFRAG_V1_LEN 28     /* v1: base64 of 21 bytes */
#define CREDS_PWD_LEN 32    /* base64 of 24 MAC bytes: within ICE's 22..256 */
#define CREDS_SESSION_KEY_LEN 8
#define CREDS_NONCE_LEN 4

enum creds_side { CREDS_SIDE_A = 0, CREDS_SIDE_B = 1 };

/* What a ufrag says about its leg. */
struct creds_leg {
    uint8_t version;
    uint8_t kid;
    uint32_t expires;                        /* Unix seconds */
    uint8_t session[CREDS_SESSION_KEY_LEN];  /* keyed hash of the session id */
    uint16_t link;
    uint8_t side;                            /* enum creds_side */
    uint8_t nonce[CREDS_NONCE_LEN];          /* fresh per derived link */
};

/* Credentials of both legs of one link, NUL-terminated. */
struct creds_link {
    char ufrag[2][CREDS_UFRAG_LEN + 1];
    char pwd[2][CREDS_PWD_LEN + 1];
};

enum creds_status {
    CREDS_OK = 0,
    CREDS_MALFORMED,      /* wrong length or characters */
    CREDS_BAD_VERSION,
    CREDS_UNKNOWN_KEY,    /* key id not in the keyring */
    CREDS_EXPIRED,
    CREDS_TOO_LONG,       /* expiry beyond what any issuer may grant */
    CREDS_BAD_MAC,        /* v2 ufrag whose MAC does not verify: forged or altered */
    CREDS_V1_REFUSED,     /* v1 ufrag while version 1 is not accepted */
};

const char *creds_status_name(enum creds_status s);

/* The ufrag's length for a version: CREDS_UFRAG_LEN or CREDS_UFRAG_V1_LEN,
 * 0 for a version that does not exist. */
size_t creds_ufrag_len(uint8_t version);

/* Writes the ufrag of leg (creds_ufrag_len(leg->version) characters and a
 * NUL). A v2 ufrag carries a MAC under key, which must be the key leg->kid
 * names; h an HMAC_SHA256 context. v1 needs neither (NULL). Returns the
 * length written or -1. */
int creds_encode_ufrag(const struct creds_leg *leg, const struct keyring_key *key,
                       struct hmac *h, char *out);
/* Decodes the structure of a ufrag of either version; does not check its
 * MAC, keys or time. */
enum creds_status creds_decode_ufrag(const char *ufrag, size_t len, struct creds_leg *leg);

/* pwd = base64(HMAC-SHA256(secret, label || ufrag))[..24 bytes] over the
 * len characters of ufrag; h must be an HMAC_SHA256 context. Writes
 * CREDS_PWD_LEN characters and a NUL. */
int creds_password(const struct keyring_key *key, const char *ufrag, size_t len, struct hmac *h,
                   char *out);

/* The session key carried in ufrags: a keyed hash of the session id, so the
 * id itself never appears on the wire. */
int creds_session_key(const struct keyring_key *key, const char *sid, size_t sid_len,
                      struct hmac *h, uint8_t *out);

/* Derives both legs of link number link of session sid under the keyring's
 * active key, expiring at expires. Returns 0 or -1. */
int creds_derive_link(const struct keyring *kr, const char *sid, uint16_t link, uint32_t expires,
                      struct hmac *h, struct creds_link *out);

/* Relay side: decodes ufrag, checks version (v1 only if accept_v1), key,
 * the ufrag's MAC (v2), expiry (not after now, not beyond now + max_ttl)
 * and recomputes its password into pwd. The MAC is checked before the
 * expiry, so that CREDS_EXPIRED and CREDS_TOO_LONG name issued ufrags only. */
enum creds_status creds_verify(const struct keyring *kr, const char *ufrag, size_t len,
                               uint32_t now, uint32_t max_ttl, bool accept_v1, struct hmac *h,
                               struct creds_leg *leg, char *pwd);

/* True if both ufrags name the same link (every field but the side). */
bool creds_same_link(const struct creds_leg *a, const struct creds_leg *b);

#endif
