/* A blocking WebSocket test client on libwebsockets, for driving
 * quietroom-signal as a browser would (tests, later the prober). Each client
 * has its own context and service thread. */
#ifndef QUIETROOM_TEST_WSCLIENT_H
#define QUIETROOM_TEST_WSCLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct wsclient;

struct wsclient_opts {
    const char *host;           /* "127.0.0.1" */
    int port;
    bool tls;                   /* wss, accepting a self-signed certificate */
    const char *path;           /* "/ws" */
    const char *origin;         /* Origin header, or NULL for none */
    const char *protocol;       /* subprotocol, or NULL for none */
};

/* Connects and waits for the handshake. NULL with a reason in err (the
 * server refused, or timeout). Free with wsclient_free. */
struct wsclient *wsclient_connect(const struct wsclient_opts *o, int timeout_ms, char *err,
                                  size_t errlen);
void wsclient_free(struct wsclient *c);

/* Sends one text message. */
int wsclient_send(struct wsclient *c, const char *text, size_t len);
/* Sends a JSON object (consumed). */
int wsclient_send_json(struct wsclient *c, json_t *msg);
/* Next received message as JSON, or NULL after timeout_ms or if closed. */
json_t *wsclient_recv(struct wsclient *c, int timeout_ms);
/* Next message of the given "type", discarding others; NULL on timeout. */
json_t *wsclient_expect(struct wsclient *c, const char *type, int timeout_ms);
/* Waits for the server to close; returns its close code, or -1 on timeout. */
int wsclient_wait_closed(struct wsclient *c, int timeout_ms);
/* Drops the connection without a goodbye (as a browser losing the network). */
void wsclient_drop(struct wsclient *c);

#endif
