/* A blocking WebSocket client (library qr_wsclient) for quietroomctl probe
 * and the integration tests: one connection to quietroom-signal, JSON text
 * messages each way, TLS verified against the system store or a CA file.
 * libwebsockets runs the connection on its own service thread; these
 * functions may be called from any other thread. Messages are never logged:
 * they carry tokens and SDP. Every wait is on CLOCK_MONOTONIC. */
#ifndef QUIETROOM_CTL_WSCONN_H
#define QUIETROOM_CTL_WSCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define WSCONN_HOST_MAX 256
#define WSCONN_PATH_MAX 256
#define WSCONN_ORIGIN_MAX (WSCONN_HOST_MAX + 32)

/* Where a ws:// or wss:// URL points. */
struct wsconn_target {
    bool tls;                       /* wss */
    char host[WSCONN_HOST_MAX];     /* name or address, IPv6 without brackets */
    int port;
    char path[WSCONN_PATH_MAX];     /* "/ws" when the URL has none */
};

/* Parses ws[s]://HOST[:PORT][/PATH]. No user info, query or fragment: a
 * token never belongs in a URL. Returns 0, or -1 with a reason in err. */
int wsconn_parse_url(const char *url, struct wsconn_target *t, char *err, size_t errlen);

/* The Origin a browser on the signaling server's own page would send:
 * https://HOST[:PORT] for wss, http:// for ws (the port only if not the
 * scheme's default). */
void wsconn_default_origin(const struct wsconn_target *t, char *out, size_t len);

struct wsconn_opts {
    const struct wsconn_target *target;
    const char *origin;             /* Origin header; NULL: none */
    const char *protocol;           /* WebSocket subprotocol; NULL: none */
    const char *ca_file;            /* trusted CAs (PEM) for wss; NULL: the system's */
};

struct wsconn;

/* Connects and completes the WebSocket handshake within timeout_ms. NULL
 * with a reason in err (refused, unreachable, TLS, handshake). */
struct wsconn *wsconn_open(const struct wsconn_opts *o, int timeout_ms, char *err,
                           size_t errlen);
/* Closes (1000) if still open, stops the service thread, frees. NULL-safe. */
void wsconn_close(struct wsconn *c);
/* Frees without a goodbye: a connection still open is cut without a close
 * frame, as when a browser tab is killed. NULL-safe. */
void wsconn_free(struct wsconn *c);
/* Cuts the connection without a close frame (a browser losing the network)
 * and waits up to a moment for it to be gone; c stays to be freed. */
void wsconn_drop(struct wsconn *c);

/* Queues one JSON message (consumed). Our copies of its text (the dumped
 * string and the queued frame) are wiped once written, as the first message
 * carries a token; what jansson and libwebsockets copy internally (realloc
 * while dumping, a partial write's remainder) is not ours to wipe. Returns
 * 0, or -1 if closed or full. */
int wsconn_send_json(struct wsconn *c, json_t *msg);
/* Queues len bytes of text as one message, as they are (malformed input
 * for tests); our copy is wiped once written. Returns 0, or -1 if closed or
 * full. */
int wsconn_send_text(struct wsconn *c, const char *text, size_t len);
/* The next message (a JSON object), waiting up to timeout_ms; NULL on
 * timeout or once the connection is closed and drained. */
json_t *wsconn_recv(struct wsconn *c, int timeout_ms);
/* The next message whose "type" is type, dropping others on the way; NULL
 * once timeout_ms have passed or the connection is closed and drained. */
json_t *wsconn_recv_type(struct wsconn *c, const char *type, int timeout_ms);
/* True once closed; *code is the peer's close code (0 if none was sent). */
bool wsconn_is_closed(struct wsconn *c, int *code);
/* Waits up to timeout_ms for the connection to close; returns the peer's
 * close code (0 if none was sent), or -1 if still open. */
int wsconn_wait_closed(struct wsconn *c, int timeout_ms);

#endif
