/* Blocking WebSocket client on libwebsockets. lws may only be called from its
 * service thread (lws_cancel_service excepted), so sends are queued under the
 * lock and handed over by waking the loop; received messages are parsed on
 * the service thread and queued for the caller. */
#include "wsconn.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "quietroom/base/clock.h"
#include "quietroom/base/limits.h"

#define WSCONN_CLOSE_WAIT_MS 500
/* How long wsconn_drop waits for lws to notice its own cut. */
#define WSCONN_DROP_WAIT_MS 2000

struct wsconn__out {
    char *buf; /* owned: LWS_PRE + text; wiped before it is freed */
    size_t len;
};

struct wsconn {
    struct lws_context *ctx; /* owned */
    SSL_CTX *tls;            /* owned; see wsconn__tls */
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; broadcast on every change below */

    /* guarded by lock */
    struct lws *wsi; /* NULL once closed */
    bool established, closed, want_close, want_drop;
    int close_code;
    char error[160];
    struct wsconn__out out[QR_PROBE_WS_QUEUE];
    unsigned out_head, out_n;
    json_t *in[QR_PROBE_WS_QUEUE]; /* owned references */
    unsigned in_head, in_n;

    /* service thread only */
    char *rx; /* owned, QR_PROBE_WS_MESSAGE_MAX bytes */
    size_t rx_len;
    bool rx_overflow;
};

/* --- URL ---------------------------------------------------------------------- */

static int wsconn__host_port(const char *s, size_t n, struct wsconn_target *t)
{
    const char *colon, *end = s + n;
    size_t hlen;

    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);

        if (close == NULL)
            return -1;
        hlen = (size_t)(close - s - 1);
        memcpy(t->host, s + 1, hlen < sizeof(t->host) ? hlen : 0);
        colon = close + 1 < end ? close + 1 : NULL;
        if (colon != NULL && *colon != ':')
            return -1;
    } else {
        colon = memchr(s, ':', n);
        hlen = (size_t)((colon ? colon : end) - s);
        memcpy(t->host, s, hlen < sizeof(t->host) ? hlen : 0);
    }
    if (hlen == 0 || hlen >= sizeof(t->host))
        return -1;
    t->host[hlen] = '\0';
    if (colon == NULL)
        return 0;
    t->port = 0;
    for (const char *p = colon + 1; p < end; p++) {
        if (*p < '0' || *p > '9' || (t->port = t->port * 10 + (*p - '0')) > 65535)
            return -1;
    }
    return colon + 1 < end && t->port > 0 ? 0 : -1;
}

int wsconn_parse_url(const char *url, struct wsconn_target *t, char *err, size_t errlen)
{
    const char *rest, *slash;

    memset(t, 0, sizeof(*t));
    if (strncmp(url, "wss://", 6) == 0) {
        t->tls = true;
        rest = url + 6;
    } else if (strncmp(url, "ws://", 5) == 0) {
        rest = url + 5;
    } else {
        snprintf(err, errlen, "the signaling URL must start with ws:// or wss://");
        return -1;
    }
    if (strpbrk(rest, "@?# ") != NULL) {
        snprintf(err, errlen, "the signaling URL may not carry user info, a query or a fragment");
        return -1;
    }
    t->port = t->tls ? 443 : 80;
    slash = strchr(rest, '/');
    if (wsconn__host_port(rest, slash ? (size_t)(slash - rest) : strlen(rest), t) != 0) {
        snprintf(err, errlen, "the signaling URL has no usable HOST[:PORT]");
        return -1;
    }
    if (slash != NULL && strlen(slash) >= sizeof(t->path)) {
        snprintf(err, errlen, "the signaling URL's path is too long");
        return -1;
    }
    snprintf(t->path, sizeof(t->path), "%s", slash ? slash : "/ws");
    return 0;
}

void wsconn_default_origin(const struct wsconn_target *t, char *out, size_t len)
{
    bool v6 = strchr(t->host, ':') != NULL;
    char port[8] = "";

    if (t->port != (t->tls ? 443 : 80))
        snprintf(port, sizeof(port), ":%d", t->port);
    snprintf(out, len, "%s://%s%s%s%s", t->tls ? "https" : "http", v6 ? "[" : "", t->host,
             v6 ? "]" : "", port);
}

/* --- service thread ------------------------------------------------------------ */

static void wsconn__out_free(struct wsconn__out *o)
{
    OPENSSL_cleanse(o->buf, LWS_PRE + o->len);
    free(o->buf);
    o->buf = NULL;
}

/* A whole message arrived: parse it (objects only) and queue it. */
static void wsconn__deliver(struct wsconn *c)
{
    json_t *msg = json_loadb(c->rx, c->rx_len, 0, NULL);

    OPENSSL_cleanse(c->rx, c->rx_len); /* welcome carries a resume secret */
    c->rx_len = 0;
    if (msg != NULL && !json_is_object(msg)) {
        json_decref(msg);
        msg = NULL;
    }
    pthread_mutex_lock(&c->lock);
    if (msg != NULL && c->in_n < QR_PROBE_WS_QUEUE) {
        c->in[(c->in_head + c->in_n++) % QR_PROBE_WS_QUEUE] = msg;
        msg = NULL;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    json_decref(msg); /* not JSON, or a full queue: dropped, never printed */
}

static void wsconn__received(struct wsconn *c, struct lws *wsi, const void *in, size_t len)
{
    if (c->rx_overflow || c->rx_len + len > QR_PROBE_WS_MESSAGE_MAX)
        c->rx_overflow = true;
    else {
        memcpy(c->rx + c->rx_len, in, len);
        c->rx_len += len;
    }
    if (!lws_is_final_fragment(wsi))
        return;
    if (c->rx_overflow) {
        c->rx_overflow = false;
        OPENSSL_cleanse(c->rx, c->rx_len);
        c->rx_len = 0;
        return;
    }
    wsconn__deliver(c);
}

/* Writes one queued message; -1 asks lws to close the connection. */
static int wsconn__writeable(struct wsconn *c, struct lws *wsi)
{
    struct wsconn__out o = {0};
    bool closing, more;
    int n;

    pthread_mutex_lock(&c->lock);
    if (c->want_drop) {
        pthread_mutex_unlock(&c->lock);
        return -1; /* no close reason set: lws cuts without a close frame */
    }
    if (c->out_n > 0) {
        o = c->out[c->out_head];
        c->out_head = (c->out_head + 1) % QR_PROBE_WS_QUEUE;
        c->out_n--;
    }
    /* A goodbye goes after whatever was queued before it ("end", "leave"). */
    closing = c->want_close && o.buf == NULL;
    more = c->out_n > 0 || c->want_close;
    pthread_mutex_unlock(&c->lock);
    if (closing) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    if (o.buf == NULL)
        return 0;
    n = lws_write(wsi, (unsigned char *)o.buf + LWS_PRE, o.len, LWS_WRITE_TEXT);
    wsconn__out_free(&o);
    if (n < 0)
        return -1;
    if (more)
        lws_callback_on_writable(wsi);
    return 0;
}

static void wsconn__set_closed(struct wsconn *c, const char *why)
{
    pthread_mutex_lock(&c->lock);
    c->closed = true;
    c->wsi = NULL;
    if (why != NULL && c->error[0] == '\0')
        snprintf(c->error, sizeof(c->error), "%s", why);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* lws says "SSL err 1: error:00000001..." for a refused certificate; the
 * detail (which check failed) is in its own error log line just before. */
static void wsconn__connection_error(struct wsconn *c, const char *why)
{
    char text[160];

    if (why != NULL && strstr(why, "SSL") != NULL)
        snprintf(text, sizeof(text), "TLS handshake failed (certificate untrusted or not for "
                                     "this host? see --ca): %s", why);
    else
        snprintf(text, sizeof(text), "%s", why != NULL ? why : "connection error");
    wsconn__set_closed(c, text);
}

static void wsconn__peer_close(struct wsconn *c, const unsigned char *in, size_t len)
{
    if (len < 2)
        return;
    pthread_mutex_lock(&c->lock);
    c->close_code = in[0] << 8 | in[1];
    pthread_mutex_unlock(&c->lock);
}

/* The loop was woken by another thread: something to send or a close. */
static void wsconn__wake(struct wsconn *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->wsi != NULL && (c->out_n > 0 || c->want_close || c->want_drop))
        lws_callback_on_writable(c->wsi);
    pthread_mutex_unlock(&c->lock);
}

static int wsconn__cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    struct wsconn *c = lws_context_user(lws_get_context(wsi));

    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        pthread_mutex_lock(&c->lock);
        c->established = true;
        c->wsi = wsi;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        wsconn__connection_error(c, in);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        wsconn__received(c, wsi, in, len);
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return wsconn__writeable(c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        wsconn__peer_close(c, in, len);
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        wsconn__set_closed(c, "closed by the server");
        break;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (c != NULL)
            wsconn__wake(c);
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols wsconn_protocols[] = {
    {"quietroomctl", wsconn__cb, 0, 64 * 1024, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *wsconn__main(void *arg)
{
    struct wsconn *c = arg;

    while (!atomic_load(&c->stopping)) {
        if (lws_service(c->ctx, 0) < 0)
            break;
    }
    return NULL;
}

/* --- public ---------------------------------------------------------------------- */

static struct wsconn *wsconn__new(void)
{
    struct wsconn *c = calloc(1, sizeof(*c));
    pthread_condattr_t attr;

    if (c == NULL || (c->rx = malloc(QR_PROBE_WS_MESSAGE_MAX)) == NULL) {
        free(c);
        return NULL;
    }
    atomic_init(&c->stopping, false);
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &attr);
    pthread_condattr_destroy(&attr);
    return c;
}

/* The TLS client context, made here rather than by libwebsockets: 4.1
 * never frees one it made itself, nor the CA store loaded into it
 * (warmcat/libwebsockets#2044). Trust is --ca or the system's CAs; lws
 * still checks the peer and its name on every connection. */
static int wsconn__tls(struct wsconn *c, const char *ca_file, char *err, size_t errlen)
{
    if ((c->tls = SSL_CTX_new(TLS_client_method())) == NULL ||
        SSL_CTX_set_min_proto_version(c->tls, TLS1_2_VERSION) != 1) {
        snprintf(err, errlen, "cannot create a TLS client context");
        return -1;
    }
    SSL_CTX_set_verify(c->tls, SSL_VERIFY_PEER, NULL);
    if (ca_file != NULL ? SSL_CTX_load_verify_locations(c->tls, ca_file, NULL) != 1
                        : SSL_CTX_set_default_verify_paths(c->tls) != 1) {
        snprintf(err, errlen, "%s", ca_file ? "cannot read the CA file (readable PEM?)"
                                            : "cannot load the system's CA certificates");
        return -1;
    }
    return 0;
}

static int wsconn__connect(struct wsconn *c, const struct wsconn_opts *o, char *err,
                           size_t errlen)
{
    const struct wsconn_target *t = o->target;
    struct lws_context_creation_info info = {0};
    struct lws_client_connect_info ci = {0};

    lws_set_log_level(LLL_ERR, NULL);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = wsconn_protocols;
    info.user = c;
    /* Without JUST_USE_RAW_ORIGIN lws prefixes the Origin with "http://". */
    info.options = LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN |
                   (t->tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0);
    if (t->tls) {
        if (wsconn__tls(c, o->ca_file, err, errlen) != 0)
            return -1;
        info.provided_client_ssl_ctx = c->tls;
    }
    if ((c->ctx = lws_create_context(&info)) == NULL) {
        snprintf(err, errlen, "cannot create a libwebsockets context");
        return -1;
    }
    ci.context = c->ctx;
    ci.address = t->host;
    ci.port = t->port;
    ci.path = t->path;
    ci.host = t->host;
    ci.origin = o->origin;
    ci.protocol = o->protocol;
    ci.local_protocol_name = wsconn_protocols[0].name;
    ci.ssl_connection = t->tls ? LCCSCF_USE_SSL : 0;
    if (lws_client_connect_via_info(&ci) == NULL) {
        snprintf(err, errlen, "cannot start connecting to the signaling server");
        return -1;
    }
    if (pthread_create(&c->thread, NULL, wsconn__main, c) != 0) {
        snprintf(err, errlen, "cannot start the WebSocket thread");
        return -1;
    }
    c->thread_started = true;
    return 0;
}

struct wsconn *wsconn_open(const struct wsconn_opts *o, int timeout_ms, char *err,
                           size_t errlen)
{
    struct wsconn *c = wsconn__new();
    struct timespec ts;
    bool up;

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (wsconn__connect(c, o, err, errlen) != 0)
        goto fail;
    clock_deadline(CLOCK_MONOTONIC, timeout_ms < 0 ? 0 : (uint64_t)timeout_ms, &ts);
    pthread_mutex_lock(&c->lock);
    while (!c->established && !c->closed)
        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
            break;
    up = c->established && !c->closed;
    if (!up)
        snprintf(err, errlen, "%s", c->error[0] ? c->error : "the handshake did not complete in time");
    pthread_mutex_unlock(&c->lock);
    if (up)
        return c;
fail:
    wsconn_close(c);
    return NULL;
}

/* Asks the service thread to close with 1000 and waits a little for it. */
static void wsconn__goodbye(struct wsconn *c)
{
    struct timespec ts;

    pthread_mutex_lock(&c->lock);
    c->want_close = true;
    pthread_mutex_unlock(&c->lock);
    lws_cancel_service(c->ctx);
    clock_deadline(CLOCK_MONOTONIC, WSCONN_CLOSE_WAIT_MS, &ts);
    pthread_mutex_lock(&c->lock);
    while (c->established && !c->closed)
        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&c->lock);
}

void wsconn_close(struct wsconn *c)
{
    if (c != NULL && c->thread_started)
        wsconn__goodbye(c);
    wsconn_free(c);
}

/* Destroying the context closes with "context destroy", for which lws
 * sends no close frame: the peer sees the connection cut. */
void wsconn_free(struct wsconn *c)
{
    if (c == NULL)
        return;
    if (c->thread_started) {
        atomic_store(&c->stopping, true);
        lws_cancel_service(c->ctx);
        pthread_join(c->thread, NULL);
    }
    if (c->ctx != NULL)
        lws_context_destroy(c->ctx);
    SSL_CTX_free(c->tls);
    for (unsigned i = 0; i < c->out_n; i++)
        wsconn__out_free(&c->out[(c->out_head + i) % QR_PROBE_WS_QUEUE]);
    for (unsigned i = 0; i < c->in_n; i++)
        json_decref(c->in[(c->in_head + i) % QR_PROBE_WS_QUEUE]);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c->rx);
    free(c);
}

int wsconn_send_text(struct wsconn *c, const char *text, size_t len)
{
    struct wsconn__out o = {.buf = malloc(LWS_PRE + len + 1), .len = len};
    int rc = -1;

    if (o.buf == NULL)
        return -1;
    memcpy(o.buf + LWS_PRE, text, len);
    o.buf[LWS_PRE + len] = '\0';
    pthread_mutex_lock(&c->lock);
    if (c->out_n < QR_PROBE_WS_QUEUE && !c->closed && !c->want_close && !c->want_drop) {
        c->out[(c->out_head + c->out_n++) % QR_PROBE_WS_QUEUE] = o;
        o.buf = NULL;
        rc = 0;
    }
    pthread_mutex_unlock(&c->lock);
    if (o.buf != NULL)
        wsconn__out_free(&o);
    lws_cancel_service(c->ctx);
    return rc;
}

int wsconn_send_json(struct wsconn *c, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    size_t len = text ? strlen(text) : 0;
    int rc = text ? wsconn_send_text(c, text, len) : -1;

    json_decref(msg);
    if (text != NULL) {
        OPENSSL_cleanse(text, len); /* the first message carries a token */
        free(text);
    }
    return rc;
}

json_t *wsconn_recv(struct wsconn *c, int timeout_ms)
{
    struct timespec ts;
    json_t *msg = NULL;

    clock_deadline(CLOCK_MONOTONIC, timeout_ms < 0 ? 0 : (uint64_t)timeout_ms, &ts);
    pthread_mutex_lock(&c->lock);
    while (c->in_n == 0 && !c->closed)
        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
            break;
    if (c->in_n > 0) {
        msg = c->in[c->in_head];
        c->in_head = (c->in_head + 1) % QR_PROBE_WS_QUEUE;
        c->in_n--;
    }
    pthread_mutex_unlock(&c->lock);
    return msg;
}

bool wsconn_is_closed(struct wsconn *c, int *code)
{
    bool closed;

    pthread_mutex_lock(&c->lock);
    closed = c->closed;
    if (code != NULL)
        *code = c->close_code;
    pthread_mutex_unlock(&c->lock);
    return closed;
}

json_t *wsconn_recv_type(struct wsconn *c, const char *type, int timeout_ms)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);

    for (;;) {
        uint64_t now = clock_mono_ms();
        const char *got;
        json_t *msg;

        if (now >= deadline || (msg = wsconn_recv(c, (int)(deadline - now))) == NULL)
            return NULL;
        got = json_string_value(json_object_get(msg, "type"));
        if (got != NULL && strcmp(got, type) == 0)
            return msg;
        json_decref(msg);
    }
}

int wsconn_wait_closed(struct wsconn *c, int timeout_ms)
{
    struct timespec ts;
    int code = -1;

    clock_deadline(CLOCK_MONOTONIC, timeout_ms < 0 ? 0 : (uint64_t)timeout_ms, &ts);
    pthread_mutex_lock(&c->lock);
    while (!c->closed)
        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
            break;
    if (c->closed)
        code = c->close_code;
    pthread_mutex_unlock(&c->lock);
    return code;
}

void wsconn_drop(struct wsconn *c)
{
    pthread_mutex_lock(&c->lock);
    c->want_drop = true;
    pthread_mutex_unlock(&c->lock);
    lws_cancel_service(c->ctx);
    wsconn_wait_closed(c, WSCONN_DROP_WAIT_MS);
}
