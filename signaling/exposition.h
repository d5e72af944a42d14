/* quietroom-signal's /metrics: the families docs/operations.md lists, from
 * the counters (stats.h), a census of the session registry, copies of the
 * relays' state and the audit writer's counters. Event-loop thread. */
#ifndef QUIETROOM_SIGNAL_EXPOSITION_H
#define QUIETROOM_SIGNAL_EXPOSITION_H

#include "quietroom/ops/metrics.h"

struct signal_server;

void exposition_write(struct signal_server *srv, struct metrics *m);

#endif
