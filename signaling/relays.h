/* The relays signaling places calls on. One thread per relay keeps an
 * authenticated control connection, reads its load every QR_RELAY_POLL_MS
 * and sends revocations the moment they are asked for; the event loop only
 * reads a snapshot and queues work, it never waits on a relay. */
#ifndef QUIETROOM_SIGNAL_RELAYS_H
#define QUIETROOM_SIGNAL_RELAYS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "quietroom/audit.h"
#include "quietroom/keyring.h"

struct relays;

/* Starts one thread per relay spec. The keyring is copied. Returns NULL on
 * failure. Stop and free with relays_free. */
struct relays *relays_start(const struct signal_relay_spec *specs, unsigned n,
                            const struct keyring *kr, struct audit_log *audit);
void relays_free(struct relays *r);

/* The healthy relay with the lowest load, or -1 if none is healthy. */
int relays_pick(struct relays *r);
/* The media candidates of relay i (immutable). */
const struct signal_relay_spec *relays_spec(const struct relays *r, int i);
/* Queues a revocation of relay session sid on relay i; it is sent at once if
 * the relay is connected, and again whenever the relay reconnects, until
 * until_s (Unix seconds) has passed. Never blocks. */
void relays_revoke(struct relays *r, int i, const char *sid, uint32_t until_s);
/* Blocks until every queued revocation has been answered or timeout_ms has
 * passed (tests and shutdown). Returns the number still pending. */
int relays_flush(struct relays *r, int timeout_ms);
/* Health and load of each relay, for /healthz and logs. */
json_t *relays_status(struct relays *r);
/* True if at least one relay is healthy. */
bool relays_any_healthy(struct relays *r);

#endif
