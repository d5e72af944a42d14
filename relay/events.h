/* The relay's audit records: a leg came up, moved, or went down. Metadata
 * only: session key, link, side, address, counters; never payload. */
#ifndef QUIETROOM_RELAY_EVENTS_H
#define QUIETROOM_RELAY_EVENTS_H

#include <stdbool.h>

#include <jansson.h>

#include "link.h"
#include "quietroom/wire/creds.h"
#include "quietroom/base/netaddr.h"

struct relay;

void events_leg_up(struct relay *r, const struct creds_leg *cl, const union netaddr *addr,
                   uint32_t route);
void events_leg_moved(struct relay *r, const struct creds_leg *cl, const union netaddr *from,
                      const union netaddr *to, uint32_t route);
/* Matches table_leg_down_fn; ctx is the relay. */
void events_leg_down(void *ctx, const struct link *k, int side, enum leg_down_reason reason);
/* A revocation from the control endpoint; sessions (consumed) lists the
 * session key under each key id. */
void events_revoked(struct relay *r, json_t *sessions, int links_stopped);
void events_relay(struct relay *r, const char *type);
/* A configuration reload: what changed (consumed), and whether it worked. */
void events_reload(struct relay *r, json_t *changed, bool ok, const char *why);

/* Hex of a session key (2 * CREDS_SESSION_KEY_LEN + 1 bytes). */
const char *events_session_hex(const uint8_t *session, char *out);

#endif
