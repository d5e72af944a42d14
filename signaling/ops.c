/* The operator routes. The dashboard's files hold no data and are served
 * without the token (a browser cannot put a bearer token on a page load);
 * the page reads the token from its URL fragment, which never leaves the
 * browser, and sends it with each /api/dashboard request. */
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "dashboard.h"
#include "exposition.h"
#include "lifecycle.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/log.h"
#include "quietroom/ops/metrics.h"
#include "quietroom/ops/opshttp.h"
#include "server.h"

#define OPS_PROM "text/plain; version=0.0.4; charset=utf-8"

struct ops_state {
    struct ops_site site;
    char token[QR_OPS_TOKEN_MAX + 1];
    struct signal_server *srv;
};

static void ops__metrics(void *ctx, const char *query, struct ops_response *out)
{
    struct ops_state *o = ctx;
    struct metrics m;

    (void)query;
    metrics_init(&m);
    exposition_write(o->srv, &m);
    out->status = 200;
    out->content_type = OPS_PROM;
    if ((out->body = metrics_take(&m, &out->len)) == NULL)
        ops_reply(out, 500, NULL, "out of memory\n");
}

static void ops__healthz(void *ctx, const char *query, struct ops_response *out)
{
    (void)ctx;
    (void)query;
    ops_reply(out, 200, NULL, "ok\n");
}

static void ops__readyz(void *ctx, const char *query, struct ops_response *out)
{
    struct ops_state *o = ctx;
    const char *why = lifecycle_unready(o->srv);
    char line[64];

    (void)query;
    snprintf(line, sizeof(line), "%s\n", why ? why : "ready");
    ops_reply(out, why ? 503 : 200, NULL, line);
}

static void ops__api(void *ctx, const char *query, struct ops_response *out)
{
    struct ops_state *o = ctx;
    char *text = dashboard_json(o->srv);

    (void)query;
    if (text == NULL) {
        ops_reply(out, 500, NULL, "out of memory\n");
        return;
    }
    out->status = 200;
    out->content_type = "application/json";
    out->body = text;
    out->len = strlen(text);
}

/* Reads one of the dashboard's files whole. */
static void ops__file(struct ops_state *o, const char *name, const char *ct,
                      struct ops_response *out)
{
    char path[PATH_MAX + 64];
    struct stat st;
    char *buf = NULL;
    ssize_t n = -1;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", o->srv->cfg.ops_static_dir, name);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0 ||
        !S_ISREG(st.st_mode) || st.st_size > QR_SIGNAL_OPS_FILE_MAX ||
        (buf = malloc((size_t)st.st_size + 1)) == NULL ||
        (n = read(fd, buf, (size_t)st.st_size)) != st.st_size) {
        log_warn("dashboard file %s: %s", path, n < 0 && errno ? strerror(errno) : "unusable");
        free(buf);
        ops_reply(out, 404, NULL, "not found\n");
        goto out;
    }
    out->status = 200;
    out->content_type = ct;
    out->body = buf;
    out->len = (size_t)n;
out:
    if (fd >= 0)
        close(fd);
}

static void ops__page(void *ctx, const char *query, struct ops_response *out)
{
    (void)query;
    ops__file(ctx, "index.html", "text/html; charset=utf-8", out);
}

static void ops__script(void *ctx, const char *query, struct ops_response *out)
{
    (void)query;
    ops__file(ctx, "dashboard.js", "text/javascript; charset=utf-8", out);
}

static void ops__style(void *ctx, const char *query, struct ops_response *out)
{
    (void)query;
    ops__file(ctx, "dashboard.css", "text/css; charset=utf-8", out);
}

static const struct ops_route ops_routes[] = {
    {"/metrics", ops__metrics, false},
    {"/healthz", ops__healthz, true},
    {"/readyz", ops__readyz, true},
    {"/api/dashboard", ops__api, false},
    {"/dashboard", ops__page, true},
    {"/dashboard/dashboard.js", ops__script, true},
    {"/dashboard/dashboard.css", ops__style, true},
};

void ops_set_token(struct signal_server *srv, const char *token)
{
    struct ops_state *o = srv->ops;

    if (o == NULL)
        return;
    OPENSSL_cleanse(o->token, sizeof(o->token));
    snprintf(o->token, sizeof(o->token), "%s", token ? token : "");
    o->site.token = o->token[0] ? o->token : NULL;
}

int ops_start(struct signal_server *srv, const char *token, char *err, size_t errlen)
{
    struct ops_state *o;
    int port;

    if (!srv->cfg.daemon.has_ops)
        return 0;
    if ((o = calloc(1, sizeof(*o))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    o->srv = srv;
    o->site = (struct ops_site){ops_routes, sizeof(ops_routes) / sizeof(ops_routes[0]), o, NULL};
    srv->ops = o;
    ops_set_token(srv, token);
    if ((port = ops_http_vhost(srv->lws, &srv->cfg.daemon.ops_listen, &o->site, err, errlen)) < 0)
        return -1;
    return port;
}

void ops_free(struct signal_server *srv)
{
    if (srv->ops == NULL)
        return;
    OPENSSL_cleanse(srv->ops->token, sizeof(srv->ops->token));
    free(srv->ops);
    srv->ops = NULL;
}
