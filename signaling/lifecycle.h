/* The process as operators and load balancers see it: alive, ready for new
 * visits or draining, and the drain itself (the first SIGTERM): no new
 * visits, the ones here go on, and the process stops when the last one
 * ends or drain-timeout has passed. Event-loop thread. */
#ifndef QUIETROOM_SIGNAL_LIFECYCLE_H
#define QUIETROOM_SIGNAL_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct signal_server;

/* Starts the drain (idempotent); logs and audits signal.drain. */
void lifecycle_drain(struct signal_server *srv);
/* True when a drain is over: no visit is left, or its time is up. */
bool lifecycle_drain_over(struct signal_server *srv, uint64_t now_ms);
/* Seconds until drain-timeout ends the drain; 0 when not draining. */
uint64_t lifecycle_drain_left_s(const struct signal_server *srv, uint64_t now_ms);

/* NULL when new visits are accepted, else why not: "draining", "starting"
 * or "no relay". */
const char *lifecycle_unready(struct signal_server *srv);

/* The /healthz body (JSON, aggregate); caller frees. NULL when out of
 * memory. */
char *lifecycle_health_json(struct signal_server *srv);

#endif
