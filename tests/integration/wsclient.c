/* Blocking WebSocket client for tests. libwebsockets may only be called from
 * its service thread (lws_cancel_service excepted), so sends are queued and
 * handed over by waking the loop. */
#include "wsclient.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "quietroom/base/clock.h"

#define WSC_QUEUE 256
#define WSC_MSG_MAX (1024 * 1024)

struct wsclient {
    struct lws_context *ctx;
    SSL_CTX *tls;              /* ours, not lws's: see wsclient_connect */
    struct lws *wsi;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping, connected, failed, closed, drop;
    int close_code;
    char error[160];
    char *out[WSC_QUEUE];      /* each LWS_PRE + text, NUL-terminated after */
    size_t out_len[WSC_QUEUE];
    unsigned out_head, out_n;
    json_t *in[WSC_QUEUE];
    unsigned in_head, in_n;
    char *rx;
    size_t rx_len;
};

static void wsc__received(struct wsclient *c, const void *in, size_t len, bool final)
{
    json_error_t jerr;
    json_t *msg;

    if (c->rx_len + len > WSC_MSG_MAX)
        return;
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (!final)
        return;
    msg = json_loadb(c->rx, c->rx_len, 0, &jerr);
    c->rx_len = 0;
    pthread_mutex_lock(&c->lock);
    if (msg != NULL && c->in_n < WSC_QUEUE) {
        c->in[(c->in_head + c->in_n++) % WSC_QUEUE] = msg;
        msg = NULL;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    json_decref(msg);
}

static int wsc__writeable(struct wsclient *c, struct lws *wsi)
{
    char *buf = NULL;
    size_t len = 0;
    bool drop, more;

    pthread_mutex_lock(&c->lock);
    drop = c->drop;
    if (!drop && c->out_n > 0) {
        buf = c->out[c->out_head];
        len = c->out_len[c->out_head];
        c->out_head = (c->out_head + 1) % WSC_QUEUE;
        c->out_n--;
    }
    more = c->out_n > 0;
    pthread_mutex_unlock(&c->lock);
    if (drop)
        return -1;
    if (buf != NULL) {
        int n = lws_write(wsi, (unsigned char *)buf + LWS_PRE, len, LWS_WRITE_TEXT);

        free(buf);
        if (n < (int)len)
            return -1;
    }
    if (more)
        lws_callback_on_writable(wsi);
    return 0;
}

static void wsc__set(struct wsclient *c, bool *flag, const char *why)
{
    pthread_mutex_lock(&c->lock);
    *flag = true;
    if (why != NULL)
        snprintf(c->error, sizeof(c->error), "%s", why);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static int wsc__cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct wsclient *c = lws_context_user(lws_get_context(wsi));

    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        wsc__set(c, &c->connected, NULL);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        wsc__set(c, &c->failed, in ? (const char *)in : "connection error");
        wsc__set(c, &c->closed, NULL);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        wsc__received(c, in, len, lws_is_final_fragment(wsi));
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return wsc__writeable(c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const unsigned char *p = in;

            pthread_mutex_lock(&c->lock);
            c->close_code = p[0] << 8 | p[1];
            pthread_mutex_unlock(&c->lock);
        }
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        wsc__set(c, &c->closed, NULL);
        break;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (c != NULL && c->wsi != NULL && !c->closed)
            lws_callback_on_writable(c->wsi);
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols wsc_protocols[] = {
    {"wsclient", wsc__cb, 0, 64 * 1024, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *wsc__main(void *arg)
{
    struct wsclient *c = arg;

    while (!c->stopping) {
        if (lws_service(c->ctx, 0) < 0)
            break;
    }
    return NULL;
}

struct wsclient *wsclient_connect(const struct wsclient_opts *o, int timeout_ms, char *err,
                                  size_t errlen)
{
    struct wsclient *c = calloc(1, sizeof(*c));
    struct lws_context_creation_info info;
    struct lws_client_connect_info ci;
    struct timespec ts;

    if (c == NULL || (c->rx = malloc(WSC_MSG_MAX)) == NULL) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = wsc_protocols;
    info.user = c;
    /* Without this flag lws prefixes the Origin with "http://". */
    info.options = LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN |
                   (o->tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0);
    /* libwebsockets 4.1 never frees a client SSL_CTX it made itself, nor
     * the system CA store it loads into it (warmcat/libwebsockets#2044);
     * one we provide, and free after the context, avoids both. The tests
     * accept the server's self-signed certificate anyway. */
    if (o->tls) {
        if ((c->tls = SSL_CTX_new(TLS_client_method())) == NULL) {
            snprintf(err, errlen, "cannot create a TLS client context");
            goto fail;
        }
        info.provided_client_ssl_ctx = c->tls;
    }
    if ((c->ctx = lws_create_context(&info)) == NULL) {
        snprintf(err, errlen, "cannot create a libwebsockets context");
        goto fail;
    }
    memset(&ci, 0, sizeof(ci));
    ci.context = c->ctx;
    ci.address = o->host;
    ci.port = o->port;
    ci.path = o->path;
    ci.host = o->host;
    ci.origin = o->origin;
    ci.protocol = o->protocol;
    ci.local_protocol_name = "wsclient";
    ci.pwsi = &c->wsi;
    if (o->tls)
        ci.ssl_connection = LCCSCF_USE_SSL | LCCSCF_ALLOW_SELFSIGNED |
                            LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
    if (lws_client_connect_via_info(&ci) == NULL) {
        snprintf(err, errlen, "connect failed at once");
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, wsc__main, c) != 0)
        goto fail;
    clock_deadline(CLOCK_REALTIME, timeout_ms < 0 ? 0 : (uint64_t)timeout_ms, &ts);
    pthread_mutex_lock(&c->lock);
    while (!c->connected && !c->failed && !c->closed)
        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
            break;
    if (!c->connected)
        snprintf(err, errlen, "%s", c->error[0] ? c->error : "handshake did not complete");
    pthread_mutex_unlock(&c->lock);
    if (!c->connected) {
        wsclient_free(c);
        return NULL;
    }
    return c;
fail:
    if (c->ctx != NULL)
        lws_context_destroy(c->ctx);
    SSL_CTX_free(c->tls);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c->rx);
    free(c);
    return NULL;
}

void wsclient_free(struct wsclient *c)
{
    if (c == NULL)
        return;
    c->stopping = true;
    lws_cancel_service(c->ctx);
    pthread_join(c->thread, NULL);
    lws_context_destroy(c->ctx);
    SSL_CTX_free(c->tls);
    for (unsigned i = 0; i < c->out_n; i++)
        free(c->out[(c->out_head + i) % WSC_QUEUE]);
    for (unsigned i = 0; i < c->in_n; i++)
        json_decref(c->in[(c->in_head + i) % WSC_QUEUE]);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c->rx);
    free(c);
}

int wsclient_send(struct wsclient *c, const char *text, size_t len)
{
    char *buf = malloc(LWS_PRE + len + 1);
    int rc = -1;

    if (buf == NULL)
        return -1;
    memcpy(buf + LWS_PRE, text, len);
    buf[LWS_PRE + len] = '\0';
    pthread_mutex_lock(&c->lock);
    if (c->out_n < WSC_QUEUE && !c->closed) {
        c->out[(c->out_head + c->out_n) % WSC_QUEUE] = buf;
        c->out_len[(c->out_head + c->out_n) % WSC_QUEUE] = len;
        c->out_n++;
        buf = NULL;
        rc = 0;
    }
    pthread_mutex_unlock(&c->lock);
    free(buf);
    lws_cancel_service(c->ctx);
    return rc;
}

int wsclient_send_json(struct wsclient *c, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    int rc = text ? wsclient_send(c, text, strlen(text)) : -1;

    free(text);
    json_decref(msg);
    return rc;
}

json_t *wsclient_recv(struct wsclient *c, int timeout_ms)
{
    struct timespec ts;
    json_t *msg = NULL;

    clock_deadline(CLOCK_REALTIME, timeout_ms < 0 ? 0 : (uint64_t)timeout_ms, &ts);
    pthread_mutex_lock(&c->lock);
    while (c->in_n == 0 && !c->closed)
        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
            break;
    if (c->in_n > 0) {
        msg = c->in[c->in_head];
        c->in_head = (c->in_head + 1) % WSC_QUEUE;
        c->in_n--;
    }
    pthread_mutex_unlock(&c->lock);
    return msg;
}

json_t *wsclient_expect(struct wsclient *c, const char *type, int timeout_ms)
{
    struct timespec start, now;

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int left;
        json_t *msg;

        clock_gettime(CLOCK_MONOTONIC, &now);
        left = timeout_ms - (int)((now.tv_sec - start.tv_sec) * 1000 +
                                  (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0 || (msg = wsclient_recv(c, left)) == NULL)
            return NULL;
        const char *got = json_string_value(json_object_get(msg, "type"));

        if (got != NULL && strcmp(got, type) == 0)
            return msg;
        json_decref(msg);
    }
}

int wsclient_wait_closed(struct wsclient *c, int timeout_ms)
{
    struct timespec ts;
    int code = -1;

    clock_deadline(CLOCK_REALTIME, timeout_ms < 0 ? 0 : (uint64_t)timeout_ms, &ts);
    pthread_mutex_lock(&c->lock);
    while (!c->closed)
        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
            break;
    if (c->closed)
        code = c->close_code;
    pthread_mutex_unlock(&c->lock);
    return code;
}

void wsclient_drop(struct wsclient *c)
{
    pthread_mutex_lock(&c->lock);
    c->drop = true;
    pthread_mutex_unlock(&c->lock);
    lws_cancel_service(c->ctx);
    wsclient_wait_closed(c, 2000);
}
