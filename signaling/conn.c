/* WebSocket connection state. libwebsockets only lets us write from the
 * WRITEABLE callback, so everything we say is queued, one JSON text frame
 * per message, and the queue is bounded. */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "quietroom/base/clock.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/log.h"
#include "server.h"

struct conn_out {
    struct conn_out *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then the message */
};

struct conn *conn_new(struct signal_server *srv, struct lws *wsi)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->wsi = wsi;
    c->srv = srv;
    c->opened_ms = c->bucket_ms = clock_mono_ms();
    c->bucket = 2.0 * srv->cfg.rate_per_s;
    lws_get_peer_simple(wsi, c->addr, sizeof(c->addr));
    /* The listener is dual-stack: show IPv4 peers as IPv4. */
    if (strncmp(c->addr, "::ffff:", 7) == 0 && strchr(c->addr + 7, '.') != NULL)
        memmove(c->addr, c->addr + 7, strlen(c->addr + 7) + 1);
    return c;
}

void conn_free(struct conn *c)
{
    struct conn_out *o, *next;

    if (c == NULL)
        return;
    for (o = c->out_head; o != NULL; o = next) {
        next = o->next;
        free(o);
    }
    free(c->rx);
    free(c);
}

void conn_send(struct conn *c, json_t *msg)
{
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    struct conn_out *o = NULL;
    size_t len;

    json_decref(msg);
    if (text == NULL)
        return;
    len = strlen(text);
    if (c->out_bytes + len > QR_SIGNAL_OUTQ_MAX) {
        /* The browser is not reading: nothing we queue would arrive. */
        log_warn("connection from %s is not reading; closing it", c->addr);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        free(text);
        return;
    }
    if ((o = malloc(sizeof(*o) + LWS_PRE + len)) == NULL) {
        free(text);
        return;
    }
    o->next = NULL;
    o->len = len;
    memcpy(o->buf + LWS_PRE, text, len);
    free(text);
    if (c->out_tail != NULL)
        c->out_tail->next = o;
    else
        c->out_head = o;
    c->out_tail = o;
    c->out_bytes += len;
    lws_callback_on_writable(c->wsi);
}

static void conn__error(struct conn *c, const char *code, const char *message, const char *field)
{
    json_t *m = json_pack("{s:s,s:s,s:s}", "type", "error", "code", code, "message", message);

    if (m != NULL && field != NULL)
        json_object_set_new(m, "field", json_string(field));
    conn_send(c, m);
}

void conn_error(struct conn *c, const char *code, const char *message, const char *field)
{
    stats_count(&c->srv->stats.rejected, code);
    conn__error(c, code, message, field);
}

static enum conn_close_code conn__refusal_close(const char *code)
{
    return strcmp(code, "removed_by_clinician") == 0 || strcmp(code, "declined_by_clinician") == 0
               ? CONN_CLOSE_FORBIDDEN
               : CONN_CLOSE_AUTH;
}

void conn_refuse(struct conn *c, const char *code, const char *message, const char *field)
{
    conn__error(c, code, message, field);
    conn_close(c, conn__refusal_close(code), code);
}

void conn_refuse_early(struct conn *c, const char *code, const char *message,
                       int64_t not_before)
{
    conn_send(c, json_pack("{s:s,s:s,s:s,s:I}", "type", "error", "code", code, "message",
                           message, "not_before", (json_int_t)not_before));
    conn_close(c, CONN_CLOSE_AUTH, code);
}

void conn_close(struct conn *c, enum conn_close_code code, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
    lws_callback_on_writable(c->wsi);
}

int conn_on_receive(struct conn *c, const void *in, size_t len, bool final, const char **msg,
                    size_t *msg_len)
{
    size_t max = c->srv->cfg.max_message;

    *msg_len = 0;
    if (c->closing)
        return 0;
    if (c->rx_overflow || c->rx_len + len > max) {
        if (!c->rx_overflow) {
            conn_error(c, "message_too_large", "messages are limited in size", NULL);
            conn_close(c, CONN_CLOSE_TOO_BIG, "message too large");
        }
        c->rx_overflow = true;
        return 0;
    }
    /* max-message may have grown on a reload since the buffer was made. */
    if (c->rx_cap < max) {
        char *rx = realloc(c->rx, max);

        if (rx == NULL)
            return -1;
        c->rx = rx;
        c->rx_cap = max;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (!final)
        return 0;
    *msg = c->rx;
    *msg_len = c->rx_len;
    c->rx_len = 0;
    return 0;
}

int conn_on_writeable(struct conn *c)
{
    struct conn_out *o = c->out_head;

    if (o == NULL) {
        if (!c->closing)
            return 0;
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        return -1;
    }
    if (lws_write(c->wsi, o->buf + LWS_PRE, o->len, LWS_WRITE_TEXT) < (int)o->len)
        return -1;
    c->out_head = o->next;
    if (c->out_head == NULL)
        c->out_tail = NULL;
    c->out_bytes -= o->len;
    free(o);
    if (c->out_head != NULL || c->closing)
        lws_callback_on_writable(c->wsi);
    return 0;
}

bool conn_rate_ok(struct conn *c, uint64_t now_ms)
{
    double rate = c->srv->cfg.rate_per_s, cap = 2.0 * rate;

    c->bucket += (double)(now_ms - c->bucket_ms) * rate / 1000.0;
    if (c->bucket > cap)
        c->bucket = cap;
    c->bucket_ms = now_ms;
    if (c->bucket >= 1.0) {
        c->bucket -= 1.0;
        return true;
    }
    c->strikes++;
    return false;
}
