/* One libwebsockets protocol serves every operator listener. The response
 * is built whole by the route's handler, then written in chunks as the
 * socket takes them. */
#include "quietroom/ops/opshttp.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <openssl/crypto.h>

#include "quietroom/base/limits.h"
#include "quietroom/ops/listener.h"
#include "quietroom/base/log.h"

#define OPS_CHUNK 4096
#define OPS_URI_MAX 256
#define OPS_AUTH_MAX 512
/* Every operator response: a dashboard page may load its own script, style
 * and data, nothing else, and may not be framed. */
#define OPS_CSP                                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "                \
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

struct ops_pss {
    char *body;
    size_t len, sent;
};

struct ops_http {
    struct lws_context *lws;
    pthread_t thread;
    bool running;
    _Atomic bool stop;
    int port;
};

int ops_token_load(const char *path, char *out, char *err, size_t errlen)
{
    char text[QR_OPS_TOKEN_MAX + 3];
    struct stat st;
    ssize_t n;
    size_t len;
    int fd, rc = -1;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & S_IRWXO) != 0) {
        snprintf(err, errlen, "%s: not a regular file, or readable by others (chmod 600 it)",
                 path);
        goto out;
    }
    if ((n = read(fd, text, sizeof(text) - 1)) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    text[n] = '\0';
    len = strcspn(text, "\r\n");
    text[len] = '\0';
    if (len < QR_OPS_TOKEN_MIN || len > QR_OPS_TOKEN_MAX) {
        snprintf(err, errlen, "%s: the token must be %d to %d characters on one line", path,
                 QR_OPS_TOKEN_MIN, QR_OPS_TOKEN_MAX);
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] <= ' ' || text[i] > '~') {
            snprintf(err, errlen, "%s: the token must be visible ASCII without spaces", path);
            goto out;
        }
    }
    memcpy(out, text, len + 1);
    rc = 0;
out:
    OPENSSL_cleanse(text, sizeof(text));
    close(fd);
    return rc;
}

void ops_reply(struct ops_response *out, int status, const char *ct, const char *text)
{
    out->status = status;
    out->content_type = ct;
    out->len = strlen(text);
    out->body = malloc(out->len + 1);
    if (out->body == NULL) {
        out->status = HTTP_STATUS_INTERNAL_SERVER_ERROR;
        out->len = 0;
        return;
    }
    memcpy(out->body, text, out->len + 1);
}

static const struct ops_route *ops__route(const struct ops_site *site, const char *uri)
{
    for (unsigned i = 0; i < site->n_routes; i++) {
        if (strcmp(site->routes[i].path, uri) == 0)
            return &site->routes[i];
    }
    return NULL;
}

/* Constant-time check of "Authorization: Bearer TOKEN". */
static bool ops__authorized(struct lws *wsi, const struct ops_site *site)
{
    static const char prefix[] = "Bearer ";
    char auth[OPS_AUTH_MAX];
    size_t want = strlen(site->token);
    int n = lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);

    if (n <= 0 || strncmp(auth, prefix, sizeof(prefix) - 1) != 0)
        return false;
    return strlen(auth + sizeof(prefix) - 1) == want &&
           CRYPTO_memcmp(auth + sizeof(prefix) - 1, site->token, want) == 0;
}

static int ops__headers(struct lws *wsi, const struct ops_response *r, bool challenge)
{
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf);

    if (lws_add_http_common_headers(wsi, (unsigned)r->status,
                                    r->content_type ? r->content_type : "text/plain", r->len, &p,
                                    end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
                                    (const unsigned char *)"nosniff", 7, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"content-security-policy:",
                                    (const unsigned char *)OPS_CSP, (int)strlen(OPS_CSP), &p,
                                    end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"referrer-policy:",
                                    (const unsigned char *)"no-referrer", 11, &p, end))
        return -1;
    if (challenge && lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
                                                 (const unsigned char *)"Bearer", 6, &p, end))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end);
}

static int ops__request(struct lws *wsi, struct ops_pss *pss)
{
    const struct ops_site *site = lws_vhost_user(lws_get_vhost(wsi));
    struct ops_response r = {.status = HTTP_STATUS_OK};
    char uri[OPS_URI_MAX] = "", query[OPS_URI_MAX] = "";
    const struct ops_route *route;
    bool challenge = false;

    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0) {
        ops_reply(&r, HTTP_STATUS_METHOD_NOT_ALLOWED, NULL, "GET only\n");
    } else if ((route = ops__route(site, uri)) == NULL) {
        ops_reply(&r, HTTP_STATUS_NOT_FOUND, NULL, "not found\n");
    } else if (site->token != NULL && !route->open && !ops__authorized(wsi, site)) {
        ops_reply(&r, HTTP_STATUS_UNAUTHORIZED, NULL, "operator token required\n");
        challenge = true;
    } else {
        lws_hdr_copy(wsi, query, sizeof(query), WSI_TOKEN_HTTP_URI_ARGS);
        route->fn(site->ctx, query, &r);
    }
    pss->body = r.body;
    pss->len = r.len;
    pss->sent = 0;
    if (ops__headers(wsi, &r, challenge) != 0)
        return -1;
    if (pss->len == 0)
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    lws_callback_on_writable(wsi);
    return 0;
}

static int ops__write(struct lws *wsi, struct ops_pss *pss)
{
    unsigned char buf[LWS_PRE + OPS_CHUNK];
    size_t n = pss->len - pss->sent;
    bool last = n <= OPS_CHUNK;

    if (!last)
        n = OPS_CHUNK;
    memcpy(buf + LWS_PRE, pss->body + pss->sent, n);
    if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    pss->sent += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    free(pss->body);
    pss->body = NULL;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int ops__callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    struct ops_pss *pss = user;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return -1; /* no WebSockets here */
    case LWS_CALLBACK_HTTP:
        free(pss->body);
        pss->body = NULL;
        return ops__request(wsi, pss);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return pss != NULL && pss->body != NULL ? ops__write(wsi, pss) : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        /* A connection closed before its first request has no pss. */
        if (pss != NULL) {
            free(pss->body);
            pss->body = NULL;
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols ops_protocols[] = {
    {"ops-http", ops__callback, sizeof(struct ops_pss), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int ops_http_vhost(struct lws_context *lws, const union netaddr *listen,
                   const struct ops_site *site, char *err, size_t errlen)
{
    struct lws_context_creation_info info;
    char iface[NETADDR_STRLEN];
    struct lws_vhost *vh;

    memset(&info, 0, sizeof(info));
    netaddr_format_host(listen, iface, sizeof(iface));
    info.port = netaddr_port(listen);
    info.iface = iface;
    info.options = listener_lws_options(listen) | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    info.protocols = ops_protocols;
    info.user = (void *)site;
    info.vhost_name = "ops";
    if ((vh = lws_create_vhost(lws, &info)) == NULL) {
        snprintf(err, errlen, "cannot listen on %s port %d (address in use?)", iface, info.port);
        return -1;
    }
    return lws_get_vhost_listen_port(vh);
}

static void ops__lws_log(int level, const char *line)
{
    size_t n = strlen(line);

    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_msg(level == LLL_ERR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN, "libwebsockets: %.*s", (int)n,
            line);
}

static void *ops__main(void *arg)
{
    struct ops_http *h = arg;

    while (!atomic_load(&h->stop)) {
        if (lws_service(h->lws, 0) < 0)
            break;
    }
    return NULL;
}

struct ops_http *ops_http_start(const union netaddr *listen, const struct ops_site *site,
                                char *err, size_t errlen)
{
    struct ops_http *h = calloc(1, sizeof(*h));
    struct lws_context_creation_info info;

    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, ops__lws_log);
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if ((h->lws = lws_create_context(&info)) == NULL) {
        snprintf(err, errlen, "cannot create the libwebsockets context");
        goto fail;
    }
    if ((h->port = ops_http_vhost(h->lws, listen, site, err, errlen)) < 0)
        goto fail;
    if (pthread_create(&h->thread, NULL, ops__main, h) != 0) {
        snprintf(err, errlen, "cannot start the HTTP thread");
        goto fail;
    }
    h->running = true;
    return h;
fail:
    ops_http_stop(h);
    return NULL;
}

int ops_http_port(const struct ops_http *h)
{
    return h->port;
}

void ops_http_stop(struct ops_http *h)
{
    if (h == NULL)
        return;
    if (h->running) {
        atomic_store(&h->stop, true);
        lws_cancel_service(h->lws);
        pthread_join(h->thread, NULL);
    }
    if (h->lws != NULL)
        lws_context_destroy(h->lws);
    free(h);
}
