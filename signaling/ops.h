/* quietroom-signal's operator listener: /metrics, /healthz, /readyz, the
 * live dashboard (/dashboard) and its data (/api/dashboard), served as one
 * more vhost of the event loop's context, so every handler reads the
 * counters on the thread that writes them. Aggregate only. */
#ifndef QUIETROOM_SIGNAL_OPS_H
#define QUIETROOM_SIGNAL_OPS_H

#include <stdbool.h>
#include <stddef.h>

struct signal_server;

/* Starts the listener if ops-listen is set (srv->ops stays NULL if not).
 * token: the operator token or NULL (copied). Returns the bound port, 0
 * when off, or -1 with err set. */
int ops_start(struct signal_server *srv, const char *token, char *err, size_t errlen);
/* A reload's new token (NULL: none); takes effect on the next request. */
void ops_set_token(struct signal_server *srv, const char *token);
/* Frees what ops_start made (the vhost goes with the context). */
void ops_free(struct signal_server *srv);

#endif
