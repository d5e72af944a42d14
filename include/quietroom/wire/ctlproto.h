/* The relay control protocol: newline-delimited JSON over TCP with mutual
 * challenge-response authentication under the shared relay secret. Shared by
 * the relay (server side) and its clients (signaling, quietroomctl, tests). */
#ifndef QUIETROOM_CTLPROTO_H
#define QUIETROOM_CTLPROTO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "quietroom/base/hmac.h"
#include "quietroom/base/keyring.h"

#define CTLPROTO_VERSION 1
#define CTLPROTO_NONCE_LEN 32
/* base64 of 32 bytes, with padding, and a NUL */
#define CTLPROTO_B64_LEN 45

enum ctlproto_role { CTLPROTO_CLIENT, CTLPROTO_SERVER };

/* Proof that the sender holds key: HMAC-SHA256 over a role label and both
 * nonces, base64 into out (CTLPROTO_B64_LEN bytes). Returns 0 or -1. */
int ctlproto_proof(const struct keyring_key *key, enum ctlproto_role role,
                   const uint8_t *server_nonce, const uint8_t *client_nonce, struct hmac *h,
                   char *out);

/* Fresh random nonce, raw and base64. Returns 0 or -1. */
int ctlproto_nonce(uint8_t *raw, char *b64);

/* Decodes a base64 nonce of exactly CTLPROTO_NONCE_LEN bytes. */
int ctlproto_nonce_decode(const char *b64, uint8_t *raw);

/* Blocking client. */
struct ctlclient;

/* Connects to addr ("ADDR:PORT"), authenticates with the keyring's active
 * key and checks the server's proof. Returns NULL with a reason in err.
 * Close with ctlclient_close. */
struct ctlclient *ctlclient_connect(const char *addr, const struct keyring *kr, int timeout_ms,
                                    char *err, size_t errlen);

/* Sends request (adds "id"; the caller keeps its reference) and waits for
 * the matching response. Returns a new reference or NULL with err set. */
json_t *ctlclient_call(struct ctlclient *c, json_t *request, int timeout_ms, char *err,
                       size_t errlen);

void ctlclient_close(struct ctlclient *c);

#endif
