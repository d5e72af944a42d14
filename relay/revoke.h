/* Revoked sessions. Credentials are stateless, so a revoked session must be
 * remembered until every credential that names it has expired. */
#ifndef QUIETROOM_RELAY_REVOKE_H
#define QUIETROOM_RELAY_REVOKE_H

#include <stdbool.h>
#include <stdint.h>

#include "quietroom/wire/creds.h"
#include "quietroom/base/hindex.h"

struct revoke_entry {
    uint8_t kid;
    uint8_t session[CREDS_SESSION_KEY_LEN];
    uint32_t until;   /* Unix seconds */
};

struct revoke_set {
    struct revoke_entry *entries;
    struct hindex index;
    uint32_t count, max;
    uint64_t seed;
};

/* Allocates room for max entries. Returns 0 or -1; revoke_free frees. */
int revoke_init(struct revoke_set *s, uint32_t max, uint64_t seed);
void revoke_free(struct revoke_set *s);
/* Adds or extends a revocation. Returns 0, or -1 when full. */
int revoke_add(struct revoke_set *s, uint8_t kid, const uint8_t *session, uint32_t until);
bool revoke_contains(const struct revoke_set *s, uint8_t kid, const uint8_t *session);
/* Forgets revocations that ended before now. */
void revoke_purge(struct revoke_set *s, uint32_t now);

#endif
