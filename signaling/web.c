/* libwebsockets glue. Two protocols: "http" serves files, /healthz and
 * /readyz (and refuses WebSocket upgrades that do not name ours),
 * "quietroom.v1" is the signaling WebSocket at /ws. Every response carries a
 * strict CSP and Referrer-Policy: no-referrer. The operator listener, when
 * configured, is one more vhost of the same context (ops.c). */
#include "web.h"

#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "conn.h"
#include "lifecycle.h"
#include "quietroom/base/clock.h"
#include "quietroom/ops/listener.h"
#include "quietroom/base/log.h"
#include "server.h"
#include "session.h"
#include "tls.h"

#define WEB_HTTP_BODY_MAX 512

struct web_http_pss {
    char body[WEB_HTTP_BODY_MAX];
    size_t len;
    unsigned status;
};

struct web_ws_pss {
    struct conn *c;
};

static struct signal_server *web__server(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* A WebSocket may open only at /ws, from an allowed Origin (the browser's
 * defence against other sites opening sockets with the user's session). */
static int web__check_upgrade(struct signal_server *srv, struct lws *wsi)
{
    char path[64] = "", origin[256] = "";

    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0 ||
        strcmp(path, WEB_WS_PATH) != 0) {
        log_info("websocket refused: wrong path");
        return -1;
    }
    if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0) {
        log_info("websocket refused: no Origin");
        return -1;
    }
    for (unsigned i = 0; i < srv->cfg.n_origins; i++) {
        if (strcmp(origin, srv->cfg.origins[i]) == 0)
            return 0;
    }
    log_info("websocket refused: Origin not allowed");
    return -1;
}

static void web__body(struct web_http_pss *pss, unsigned status, const char *text)
{
    pss->status = status;
    pss->len = text ? strlen(text) : 0;
    if (pss->len >= sizeof(pss->body))
        pss->len = 0;
    memcpy(pss->body, text ? text : "", pss->len);
}

/* /healthz: the process serves (we are answering); /readyz: it takes new
 * visits. Both are for probes and carry nothing but aggregates. */
static int web__probe(struct signal_server *srv, const char *uri, struct web_http_pss *pss,
                      const char **ct)
{
    const char *why;
    char *text;

    if (strcmp(uri, "/healthz") == 0) {
        text = lifecycle_health_json(srv);
        web__body(pss, text ? HTTP_STATUS_OK : HTTP_STATUS_INTERNAL_SERVER_ERROR, text);
        free(text);
        *ct = "application/json";
        return 0;
    }
    if (strcmp(uri, "/readyz") == 0) {
        char line[64];

        why = lifecycle_unready(srv);
        snprintf(line, sizeof(line), "%s\n", why ? why : "ready");
        web__body(pss, why ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_OK, line);
        *ct = "text/plain";
        return 0;
    }
    return -1;
}

/* Dynamic endpoints; `in` of a callback mount is relative to the mount, so
 * the full path is read from the request. */
static int web__http_request(struct lws *wsi, struct web_http_pss *pss)
{
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
                                        *end = buf + sizeof(buf) - 1;
    char uri[64] = "";
    const char *ct = "text/plain";

    lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    if (web__probe(web__server(wsi), uri, pss, &ct) != 0)
        return lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL) ||
               lws_http_transaction_completed(wsi);
    if (lws_add_http_common_headers(wsi, pss->status, ct, pss->len, &p, end) ||
        lws_add_http_header_by_name(wsi, (unsigned char *)"cache-control:",
                                    (unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int web__http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    struct web_http_pss *pss = user;
    unsigned char buf[LWS_PRE + WEB_HTTP_BODY_MAX];

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        log_info("websocket refused: no \"%s\" subprotocol", WEB_WS_PROTOCOL);
        return -1;
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS: {
        /* The listener's SSL_CTX, once: from here on each handshake takes
         * the current certificate (tls.c), so a reload can swap it. */
        struct signal_server *srv = lws_vhost_user((struct lws_vhost *)in);

        if (srv != NULL && srv->tls != NULL)
            tls_attach(srv->tls, user);
        return 0;
    }
    case LWS_CALLBACK_HTTP:
        return web__http_request(wsi, pss);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        memcpy(buf + LWS_PRE, pss->body, pss->len);
        if (lws_write(wsi, buf + LWS_PRE, pss->len, LWS_WRITE_HTTP_FINAL) != (int)pss->len)
            return 1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static int web__ws_receive(struct signal_server *srv, struct lws *wsi, struct conn *c,
                           const void *in, size_t len)
{
    const char *msg;
    size_t msg_len;

    if (lws_frame_is_binary(wsi)) {
        conn_error(c, "bad_json", "messages are JSON text frames", NULL);
        conn_close(c, CONN_CLOSE_PROTOCOL, "binary frame");
        return 0;
    }
    if (conn_on_receive(c, in, len, lws_is_final_fragment(wsi), &msg, &msg_len) != 0)
        return -1;
    if (msg_len > 0)
        session_on_message(srv, c, msg, msg_len);
    return 0;
}

static int web__ws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    struct web_ws_pss *pss = user;
    struct signal_server *srv = web__server(wsi);

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return web__check_upgrade(srv, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        if ((pss->c = conn_new(srv, wsi)) == NULL)
            return -1;
        srv->stats.ws_opened++;
        srv->stats.ws_open++;
        /* Authenticate in time or be dropped (cleared on success). */
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, QR_SIGNAL_AUTH_TIMEOUT_MS / 1000);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return pss->c ? web__ws_receive(srv, wsi, pss->c, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return pss->c ? conn_on_writeable(pss->c) : -1;
    case LWS_CALLBACK_CLOSED:
        if (pss->c != NULL) {
            srv->stats.ws_open--;
            session_on_close(srv, pss->c);
            conn_free(pss->c);
            pss->c = NULL;
        }
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols web_protocols[] = {
    {"http", web__http_cb, sizeof(struct web_http_pss), 0, 0, NULL, 0},
    {WEB_WS_PROTOCOL, web__ws_cb, sizeof(struct web_ws_pss), 16 * 1024, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Headers on every response. The client needs only its own origin: its
 * scripts, styles, the WebSocket, camera/microphone and screen capture
 * (screen share in the call). */
static const struct lws_protocol_vhost_options web_hdr_sts = {
    NULL, NULL, "strict-transport-security:", "max-age=31536000"};
static const struct lws_protocol_vhost_options web_hdr_perm = {
    NULL, NULL, "permissions-policy:",
    "camera=(self), microphone=(self), display-capture=(self), geolocation=()"};
static const struct lws_protocol_vhost_options web_hdr_frame = {
    &web_hdr_perm, NULL, "x-frame-options:", "DENY"};
static const struct lws_protocol_vhost_options web_hdr_nosniff = {
    &web_hdr_frame, NULL, "x-content-type-options:", "nosniff"};
static const struct lws_protocol_vhost_options web_hdr_referrer = {
    &web_hdr_nosniff, NULL, "referrer-policy:", "no-referrer"};
static const struct lws_protocol_vhost_options web_hdr_csp = {
    &web_hdr_referrer, NULL, "content-security-policy:",
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; font-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"};

static void web__lws_log(int level, const char *line)
{
    size_t n = strlen(line);

    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_msg(level == LLL_ERR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN, "libwebsockets: %.*s", (int)n,
            line);
}

static void web__tick(lws_sorted_usec_list_t *sul);

struct web_state {
    lws_sorted_usec_list_t tick;
    struct lws_http_mount mount_files;
    struct lws_http_mount mount_health;
    struct lws_http_mount mount_ready;
    struct lws_protocol_vhost_options hdr_sts;
    struct signal_server *srv;
};

static void web__tick(lws_sorted_usec_list_t *sul)
{
    struct web_state *ws = lws_container_of(sul, struct web_state, tick);

    session_tick(ws->srv);
    stats_tick(&ws->srv->stats, clock_mono_ms());
    lws_sul_schedule(ws->srv->lws, 0, &ws->tick, web__tick, QR_SIGNAL_TICK_MS * LWS_US_PER_MS);
}

static void web__mounts(struct web_state *ws, const struct signal_config *cfg)
{
    memset(&ws->mount_ready, 0, sizeof(ws->mount_ready));
    ws->mount_ready.mountpoint = "/readyz";
    ws->mount_ready.mountpoint_len = (unsigned char)strlen("/readyz");
    ws->mount_ready.origin = "http";
    ws->mount_ready.protocol = "http";
    ws->mount_ready.origin_protocol = LWSMPRO_CALLBACK;
    memset(&ws->mount_health, 0, sizeof(ws->mount_health));
    ws->mount_health.mount_next = &ws->mount_ready;
    ws->mount_health.mountpoint = "/healthz";
    ws->mount_health.mountpoint_len = (unsigned char)strlen("/healthz");
    ws->mount_health.origin = "http";
    ws->mount_health.protocol = "http";
    ws->mount_health.origin_protocol = LWSMPRO_CALLBACK;
    memset(&ws->mount_files, 0, sizeof(ws->mount_files));
    ws->mount_files.mount_next = &ws->mount_health;
    ws->mount_files.mountpoint = "/";
    ws->mount_files.mountpoint_len = 1;
    ws->mount_files.origin = cfg->static_dir;
    ws->mount_files.def = "index.html";
    ws->mount_files.origin_protocol = LWSMPRO_FILE;
}

int web_start(struct signal_server *srv)
{
    struct web_state *ws = calloc(1, sizeof(*ws));
    struct lws_context_creation_info info;
    char iface[NETADDR_STRLEN];
    struct lws_vhost *vh;
    bool tls = srv->cfg.tls_cert[0] != '\0';

    if (ws == NULL)
        return -1;
    srv->web = ws;
    ws->srv = srv;
    web__mounts(ws, &srv->cfg);
    lws_set_log_level(LLL_ERR | LLL_WARN, web__lws_log);
    netaddr_format_host(&srv->cfg.listen, iface, sizeof(iface));

    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
                   (tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0);
    info.user = srv;
    if ((srv->lws = lws_create_context(&info)) == NULL) {
        log_error("cannot create the libwebsockets context");
        return -1;
    }
    info.port = netaddr_port(&srv->cfg.listen);
    info.iface = iface;
    info.options |= listener_lws_options(&srv->cfg.listen);
    info.protocols = web_protocols;
    info.mounts = &ws->mount_files;
    ws->hdr_sts = web_hdr_sts;
    ws->hdr_sts.next = &web_hdr_csp;
    info.headers = tls ? &ws->hdr_sts : &web_hdr_csp;
    info.vhost_name = "quietroom";
    if (tls) {
        info.ssl_cert_filepath = srv->cfg.tls_cert;
        info.ssl_private_key_filepath = srv->cfg.tls_key;
        info.ssl_options_set = SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1;
        /* HTTP/1.1 only: libwebsockets 4.1 offers h2 by default, and a
         * WebSocket over h2 (RFC 8441) fails with it: Firefox never
         * connects, Chromium only after an HTTP/2 protocol error. */
        info.alpn = "http/1.1";
    }
    if ((vh = lws_create_vhost(srv->lws, &info)) == NULL) {
        log_error("cannot listen on %s:%d (address in use, or a certificate problem)",
                  info.iface, info.port);
        return -1;
    }
    lws_sul_schedule(srv->lws, 0, &ws->tick, web__tick, QR_SIGNAL_TICK_MS * LWS_US_PER_MS);
    return lws_get_vhost_listen_port(vh);
}

int web_service(struct signal_server *srv)
{
    return lws_service(srv->lws, 0) < 0 ? -1 : 0;
}

void web_stop(struct signal_server *srv)
{
    if (srv->lws != NULL) {
        lws_sul_cancel(&srv->web->tick);
        lws_context_destroy(srv->lws);
        srv->lws = NULL;
    }
    free(srv->web);
    srv->web = NULL;
}

void web_flush(struct signal_server *srv, int ms)
{
    uint64_t until = clock_mono_ms() + (uint64_t)ms;

    while (clock_mono_ms() < until && lws_service(srv->lws, 0) >= 0)
        ;
}
