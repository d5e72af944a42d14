/* What signaling reads from key files: the EHR token keys, the relay
 * secret, the TLS certificate and the operator token. Start-up and reload
 * load them with the same code into a fresh struct, so a reload can check
 * everything before it changes anything. */
#ifndef QUIETROOM_SIGNAL_KEYS_H
#define QUIETROOM_SIGNAL_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "quietroom/auth/jwt.h"
#include "quietroom/base/keyring.h"
#include "quietroom/base/limits.h"

struct tls_cert;

struct signal_keys {
    struct jwt_keyset *ehr;             /* owned */
    uint8_t ehr_digest[32];             /* SHA-256 over the key files as read: did they change? */
    struct keyring relay;               /* wiped by signal_keys_free */
    struct tls_cert *cert;              /* owned; NULL without TLS */
    bool has_token;
    char ops_token[QR_OPS_TOKEN_MAX + 1];
};

/* Loads everything cfg names. Returns 0, or -1 with a reason in err (file
 * names and what is wrong, never key material) and nothing held. */
int signal_keys_load(const struct signal_config *cfg, struct signal_keys *out, char *err,
                     size_t errlen);
/* Frees and wipes; NULL-safe members. */
void signal_keys_free(struct signal_keys *k);

#endif
