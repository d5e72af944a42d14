/* The operator dashboard's data (/api/dashboard): signaling's own counts
 * and, per configured relay, what its last stats replies said, with rates
 * computed between successive polls (relaystat.c). Aggregate only: the
 * relays appear under their configured names, nothing names a person, a
 * session or an address. Event-loop thread. */
#ifndef QUIETROOM_SIGNAL_DASHBOARD_H
#define QUIETROOM_SIGNAL_DASHBOARD_H

struct signal_server;

/* The JSON document, compact; caller frees. NULL when out of memory. */
char *dashboard_json(struct signal_server *srv);

#endif
