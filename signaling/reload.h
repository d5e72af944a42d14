/* SIGHUP: read the configuration and its key files again and apply what can
 * change without a restart (docs/operations.md, "Reload"): EHR keys, the
 * relay secret, the TLS certificate, log level, timeouts and limits, the
 * operator token. All is loaded and checked first; on any error nothing
 * changes. Open connections are kept. Event-loop thread. */
#ifndef QUIETROOM_SIGNAL_RELOAD_H
#define QUIETROOM_SIGNAL_RELOAD_H

struct signal_server;

/* Returns 0 or -1; logged and audited (signal.reload) either way. */
int reload_run(struct signal_server *srv);

#endif
