/* The relays signaling places calls on. One thread per relay keeps an
 * authenticated control connection, reads its stats every QR_RELAY_POLL_MS
 * and sends revocations the moment they are asked for; the event loop only
 * reads copies and queues work, it never waits on a relay. */
#ifndef QUIETROOM_SIGNAL_RELAYS_H
#define QUIETROOM_SIGNAL_RELAYS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "quietroom/audit/audit.h"
#include "quietroom/base/keyring.h"
#include "relaystat.h"

struct relays;

/* Starts one thread per relay spec. The keyring is copied. Returns NULL on
 * failure. Stop and free with relays_free. */
struct relays *relays_start(const struct signal_relay_spec *specs, unsigned n,
                            const struct keyring *kr, struct audit_log *audit);
void relays_free(struct relays *r);

/* The relay for a media pair: the healthy relay with the lowest load that
 * is not draining and, if there is a choice, has not just come back
 * (QR_RELAY_HOLD_MS); -1 if there is none. */
int relays_pick(struct relays *r);
/* Why a pair on relay i must leave it now: "relay_lost" (no answer to any
 * control call for QR_RELAY_LOST_MS; one never heard from gets a first
 * connection attempt's time more from start-up),
 * "relay_draining" (its drain-timeout is QR_RELAY_MOVE_LEAD_S away and
 * another relay is ready),
 * "relay_unknown" (no relay i here: a record another configuration
 * wrote); NULL to stay. */
const char *relays_leaving(struct relays *r, int i);
/* The media candidates of relay i (immutable), or NULL when there is no
 * relay i here. */
const struct signal_relay_spec *relays_spec(const struct relays *r, int i);
/* Queues a revocation of relay session sid on relay i; it is sent at once if
 * the relay is connected, and again whenever the relay reconnects, until
 * until_s (Unix seconds) has passed. Never blocks; an unknown i does nothing. */
void relays_revoke(struct relays *r, int i, const char *sid, uint32_t until_s);
/* Blocks until every queued revocation has been answered or timeout_ms has
 * passed (tests and shutdown). Returns the number still pending. */
int relays_flush(struct relays *r, int timeout_ms);
/* Replaces the keyring (configuration reload): control connections made
 * from now on authenticate with it; open ones stay as they are. Copied. */
void relays_set_keys(struct relays *r, const struct keyring *kr);

/* Health and load of each relay, for /healthz and logs. */
json_t *relays_status(struct relays *r);

/* What is known of one relay now: a copy, for /metrics and the dashboard.
 * No addresses: the name is the operator's label from the configuration. */
struct relays_view {
    char name[SIGNAL_RELAY_NAME_MAX];
    bool up;                    /* control connection up and answering */
    bool have_stats;            /* st holds a reply */
    bool have_rates;            /* rates span two replies */
    struct relaystat st;
    struct relayrates rates;
    unsigned revocations_pending;
};
unsigned relays_count(const struct relays *r);
void relays_view(struct relays *r, unsigned i, struct relays_view *out);

enum relays_readiness {
    RELAYS_STARTING,            /* a relay has not been tried yet */
    RELAYS_NONE,                /* none is healthy and ready */
    RELAYS_READY,
};
enum relays_readiness relays_readiness(struct relays *r);

#endif
