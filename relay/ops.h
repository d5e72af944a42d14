/* The relay's operator endpoints on a thread of their own: /metrics
 * (Prometheus), /healthz and /readyz. Every read is of the workers'
 * counters or under the table lock: never a lock a worker forwards under. */
#ifndef QUIETROOM_RELAY_OPS_H
#define QUIETROOM_RELAY_OPS_H

#include <stddef.h>

#include "relay.h"

/* Starts the listener if ops-listen is configured (0 if not). Returns -1
 * with err set on failure. */
int ops_start(struct relay *r, char *err, size_t errlen);
/* The bound port, or 0 when there is no listener. */
int ops_port(const struct relay *r);
void ops_stop(struct relay *r);

#endif
