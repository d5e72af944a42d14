/* The audit file format, shared by the writer and the verifier: one JSON
 * object per line, each sealed with an HMAC-SHA256 that covers the line and,
 * through its "prev" field, the line before it. */
#ifndef QUIETROOM_AUDIT_RECORD_H
#define QUIETROOM_AUDIT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "quietroom/base/hmac.h"
#include "quietroom/base/keyring.h"

/* base64 of 32 bytes and a NUL. */
#define AUDIT_MAC_B64 45
/* "prev" of the first record of a chain: 32 zero bytes. */
#define AUDIT_GENESIS "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

/* Adds "seq", "kid" and "prev" to ev, serialises it and seals it. Returns
 * the complete line (ending in '\n', NUL-terminated, length in *len) that
 * the caller frees, with its MAC in mac (AUDIT_MAC_B64 bytes); NULL on
 * failure. */
char *audit_record_seal(json_t *ev, uint64_t seq, const struct keyring_key *key,
                        const char *prev, struct hmac *h, char *mac, size_t *len);

enum audit_line_status {
    AUDIT_LINE_OK = 0,
    AUDIT_LINE_NOT_JSON,     /* not a JSON object (torn, or garbage) */
    AUDIT_LINE_NO_SEAL,      /* no seq/kid/prev/mac where they belong */
    AUDIT_LINE_UNKNOWN_KEY,  /* sealed under a key id the keyring lacks */
    AUDIT_LINE_BAD_MAC,      /* the seal does not match the content */
};

/* One line read back. */
struct audit_line {
    json_t *obj;             /* owned; NULL unless the line was JSON */
    uint64_t seq;
    int kid;
    const char *type;        /* points into obj */
    char prev[AUDIT_MAC_B64];
    char mac[AUDIT_MAC_B64];
};

/* Checks one line (len bytes, without its '\n'). Fills out as far as it
 * can: a line with a bad seal is still parsed, so its seq can be reported.
 * Free with audit_line_free. */
enum audit_line_status audit_record_open(const char *line, size_t len, const struct keyring *kr,
                                         struct hmac *h, struct audit_line *out);
void audit_line_free(struct audit_line *l);

#endif
