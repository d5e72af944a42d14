/* The audit families both daemons export, written once: records by what
 * became of them and, when records are shipped to a syslog collector, how
 * the shipping goes. */
#ifndef QUIETROOM_METRICS_AUDIT_H
#define QUIETROOM_METRICS_AUDIT_H

#include "quietroom/audit/audit.h"
#include "quietroom/audit/audit_ship.h"
#include "quietroom/ops/metrics.h"

/* prefix is "quietroom_relay" or "quietroom_signal"; ship NULL when records
 * are not shipped. */
void metrics_audit(struct metrics *m, const char *prefix, const struct audit_counters *a,
                   const struct audit_ship_counters *ship);

#endif
