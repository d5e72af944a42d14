/* One browser's WebSocket: assembling incoming messages within the size and
 * rate limits, queueing outgoing JSON until libwebsockets says the socket is
 * writable, closing with a reason once everything queued has gone. */
#ifndef QUIETROOM_SIGNAL_CONN_H
#define QUIETROOM_SIGNAL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct lws;
struct signal_server;
struct session;
struct conn_out;

/* WebSocket close codes (4000-4999 are the application's). */
enum conn_close_code {
    CONN_CLOSE_NORMAL = 1000,
    CONN_CLOSE_TOO_BIG = 1009,
    /* The visit moved to another replica (or this one is stopping): the
     * browser resumes. Not 1012: libwebsockets clients refuse 1012-1014
     * as a protocol error (1002). */
    CONN_CLOSE_MOVED = 4012,
    CONN_CLOSE_PROTOCOL = 4400,
    CONN_CLOSE_AUTH = 4401,
    CONN_CLOSE_FORBIDDEN = 4403,
    CONN_CLOSE_TIMEOUT = 4408,
    CONN_CLOSE_ENDED = 4410,
    CONN_CLOSE_RATE = 4429,
};

struct conn {
    struct lws *wsi;
    struct signal_server *srv;
    struct session *s;              /* NULL until authenticated or resumed */
    char pid[8];                    /* then: which participant of s (a visit id) */
    /* In a cluster, a connection to a visit another replica owns: */
    char owner[64];                 /* that replica's node id; "" otherwise */
    char vkey[33];                  /* the visit's key */
    uint64_t remote_id;             /* our name for this connection to the owner */
    uint64_t owner_wait_ms;         /* a join or resume awaits the owner until then; 0 none */
    char addr[64];                  /* peer address, for the audit log */
    uint64_t opened_ms;
    char *rx;                       /* message being assembled */
    size_t rx_len, rx_cap;
    bool rx_overflow;               /* discarding the rest of an oversized message */
    struct conn_out *out_head, *out_tail;
    size_t out_bytes;
    bool closing;                   /* close once the queue is empty */
    enum conn_close_code close_code;
    char close_reason[64];
    double bucket;                  /* rate-limit tokens */
    uint64_t bucket_ms;
    uint32_t strikes;
};

/* Allocates the connection state for wsi; NULL on failure. */
struct conn *conn_new(struct signal_server *srv, struct lws *wsi);
/* Frees it (the WebSocket is already gone). */
void conn_free(struct conn *c);

/* Queues msg (consumed) for sending. A browser that stops reading is closed
 * once QR_SIGNAL_OUTQ_MAX bytes are queued. */
void conn_send(struct conn *c, json_t *msg);
/* Queues {"type":"error","code":code,"message":message[,"field":field]},
 * counted as a rejected message. */
void conn_error(struct conn *c, const char *code, const char *message, const char *field);
/* The same for a refused token or resume secret, then closes: 4403 for a
 * seat the clinician removed or declined, else 4401. */
void conn_refuse(struct conn *c, const char *code, const char *message, const char *field);
/* conn_refuse for a token not valid before not_before (Unix s), which the
 * error carries so the page can say from when. */
void conn_refuse_early(struct conn *c, const char *code, const char *message,
                       int64_t not_before);
/* Closes after what is queued has been sent. */
void conn_close(struct conn *c, enum conn_close_code code, const char *reason);

/* Called from the WebSocket callback. conn_on_receive sets msg and msg_len
 * to a complete message (owned by c until the next call), or msg_len to 0;
 * it returns -1 only when out of memory. */
int conn_on_receive(struct conn *c, const void *in, size_t len, bool final, const char **msg,
                    size_t *msg_len);
/* Writes one queued message; returns -1 when the connection must close. */
int conn_on_writeable(struct conn *c);
/* Rate limit: true if this message may be processed now. */
bool conn_rate_ok(struct conn *c, uint64_t now_ms);

#endif
