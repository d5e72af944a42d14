/* The relay's life after start-up, on the main thread: a drain on SIGTERM,
 * a configuration reload on SIGHUP, and a watch over the workers (are they
 * making progress, how busy are they) for /healthz and the metrics. */
#ifndef QUIETROOM_RELAY_LIFECYCLE_H
#define QUIETROOM_RELAY_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "relay.h"

/* Once the workers run: they count as healthy from here. */
void lifecycle_start(struct relay *r, uint64_t now_ms);

/* First SIGTERM: refuse new sessions, keep the calls in progress. */
void lifecycle_drain(struct relay *r, uint64_t now_ms);
/* True when a drain is over: no call left, or drain-timeout passed. */
bool lifecycle_drained(struct relay *r, uint64_t now_ms);

/* SIGHUP: reads the configuration again and applies what may change while
 * running (secrets, log level, timeouts). On any error nothing changes.
 * Returns 0 or -1 (logged and audited either way). */
int lifecycle_reload(struct relay *r);

/* Every housekeeping tick: worker progress and busy ratios. */
void lifecycle_watch(struct relay *r, uint64_t now_ms);

#endif
