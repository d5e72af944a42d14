/* The HTTP and WebSocket faces of quietroom-signal on libwebsockets: one
 * port, the static browser client, /healthz, /readyz, and the WebSocket at /ws. */
#ifndef QUIETROOM_SIGNAL_WEB_H
#define QUIETROOM_SIGNAL_WEB_H

struct signal_server;

#define WEB_WS_PATH "/ws"
#define WEB_WS_PROTOCOL "quietroom.v1"

/* Creates the libwebsockets context and its listening vhost. Returns the
 * bound port, or -1 with a reason logged. */
int web_start(struct signal_server *srv);
/* Serves one round of the event loop (it wakes at least every
 * QR_SIGNAL_TICK_MS, and on lws_cancel_service). -1 on a fatal error. */
int web_service(struct signal_server *srv);
/* Keeps serving for ms milliseconds so queued goodbyes reach browsers. */
void web_flush(struct signal_server *srv, int ms);
/* Closes every connection and frees the context. */
void web_stop(struct signal_server *srv);

#endif
