/* The control endpoint: a few long-lived TCP connections from signaling and
 * operators, served from the main thread's epoll loop. A connection must
 * authenticate within QR_CONTROL_AUTH_TIMEOUT_MS; requests are one JSON
 * object per line and answered in order. */
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "events.h"
#include "quietroom/base/clock.h"
#include "quietroom/wire/ctlproto.h"
#include "quietroom/base/log.h"
#include "stats.h"

struct control_client {
    int fd;
    bool authed;
    bool closing;             /* close once the output is sent */
    uint64_t deadline_ms;     /* for authentication */
    uint8_t nonce[CTLPROTO_NONCE_LEN];
    char in[QR_CONTROL_LINE_MAX];
    size_t in_len;
    char *out;
    size_t out_len, out_cap;
};

struct control {
    struct relay *relay;
    int epfd;
    int listen_fd;
    union netaddr addr;
    struct hmac *sha256;
    struct control_client clients[QR_CONTROL_CLIENTS_MAX];
};

typedef json_t *(*control_op_fn)(struct control *c, json_t *req);

static void control__drop(struct control *c, struct control_client *cl)
{
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, cl->fd, NULL);
    close(cl->fd);
    free(cl->out);
    memset(cl, 0, sizeof(*cl));
    cl->fd = -1;
}

static uint64_t control__tag(const struct control *c, const struct control_client *cl)
{
    return CONTROL_TAG_CLIENT + (uint64_t)(cl - c->clients);
}

/* Sends what it can; asks for EPOLLOUT while anything is left. */
static void control__flush(struct control *c, struct control_client *cl)
{
    struct epoll_event ev = {.data.u64 = control__tag(c, cl)};
    size_t off = 0;

    while (off < cl->out_len) {
        ssize_t n = send(cl->fd, cl->out + off, cl->out_len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            control__drop(c, cl);
            return;
        }
        off += (size_t)n;
    }
    memmove(cl->out, cl->out + off, cl->out_len - off);
    cl->out_len -= off;
    if (cl->out_len == 0 && cl->closing) {
        control__drop(c, cl);
        return;
    }
    ev.events = EPOLLIN | (cl->out_len > 0 ? EPOLLOUT : 0);
    epoll_ctl(c->epfd, EPOLL_CTL_MOD, cl->fd, &ev);
}

/* Queues one message (consumes msg). A client that does not read its
 * answers is disconnected once QR_CONTROL_OUT_MAX is queued. */
static void control__reply(struct control *c, struct control_client *cl, json_t *msg)
{
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    size_t len;

    json_decref(msg);
    if (text == NULL) {
        control__drop(c, cl);
        return;
    }
    len = strlen(text);
    if (cl->out_len + len + 1 > QR_CONTROL_OUT_MAX) {
        free(text);
        control__drop(c, cl);
        return;
    }
    if (cl->out_len + len + 1 > cl->out_cap) {
        size_t cap = (cl->out_len + len + 1) * 2;
        char *out = realloc(cl->out, cap);

        if (out == NULL) {
            free(text);
            control__drop(c, cl);
            return;
        }
        cl->out = out;
        cl->out_cap = cap;
    }
    memcpy(cl->out + cl->out_len, text, len);
    cl->out[cl->out_len + len] = '\n';
    cl->out_len += len + 1;
    free(text);
    control__flush(c, cl);
}

static json_t *control__error(json_t *req, const char *code)
{
    json_t *id = req ? json_object_get(req, "id") : NULL;

    return json_pack("{s:O?,s:b,s:s}", "id", id, "ok", 0, "error", code);
}

/* --- operations ------------------------------------------------------------ */

static json_t *op_ping(struct control *c, json_t *req)
{
    (void)c;
    return json_pack("{s:O?,s:b}", "id", json_object_get(req, "id"), "ok", 1);
}

static json_t *op_stats(struct control *c, json_t *req)
{
    json_t *stats = stats_relay_json(c->relay);

    if (stats == NULL)
        return control__error(req, "internal");
    return json_pack("{s:O?,s:b,s:o}", "id", json_object_get(req, "id"), "ok", 1, "stats",
                     stats);
}

static const char *control__session_arg(json_t *req)
{
    const char *sid = json_string_value(json_object_get(req, "session"));

    if (sid == NULL || sid[0] == '\0' || strlen(sid) > QR_SESSION_ID_MAX)
        return NULL;
    return sid;
}

static json_t *op_session(struct control *c, json_t *req)
{
    const char *sid = control__session_arg(req);
    json_t *links;

    if (sid == NULL)
        return control__error(req, "bad_session");
    if ((links = stats_session_json(c->relay, sid)) == NULL)
        return control__error(req, "internal");
    return json_pack("{s:O?,s:b,s:o}", "id", json_object_get(req, "id"), "ok", 1, "links",
                     links);
}

/* Revokes the session under every key id: a session may have credentials
 * from both sides of a secret rotation. */
static json_t *op_revoke(struct control *c, json_t *req)
{
    struct relay *r = c->relay;
    const char *sid = control__session_arg(req);
    uint32_t until = clock_wall_s() + atomic_load_explicit(&r->live.max_ttl_s,
                                                           memory_order_relaxed);
    const struct keyring *kr = relay_keys(r);
    json_t *keys = json_array();
    int stopped = 0;

    if (sid == NULL) {
        json_decref(keys);
        return control__error(req, "bad_session");
    }
    for (unsigned i = 0; i < kr->n; i++) {
        uint8_t session[CREDS_SESSION_KEY_LEN];
        char hex[2 * CREDS_SESSION_KEY_LEN + 1];
        int n;

        if (creds_session_key(&kr->keys[i], sid, strlen(sid), c->sha256, session) != 0 ||
            (n = table_revoke(r->table, kr->keys[i].id, session, until)) < 0) {
            json_decref(keys);
            return control__error(req, "revocations_full");
        }
        stopped += n;
        json_array_append_new(keys, json_string(events_session_hex(session, hex)));
    }
    events_revoked(r, keys, stopped);
    return json_pack("{s:O?,s:b,s:i}", "id", json_object_get(req, "id"), "ok", 1,
                     "links_stopped", stopped);
}

static const struct {
    const char *name;
    control_op_fn fn;
} control_ops[] = {
    {"ping", op_ping},
    {"stats", op_stats},
    {"session", op_session},
    {"revoke", op_revoke},
};

/* --- authentication -------------------------------------------------------- */

static void control__auth(struct control *c, struct control_client *cl, json_t *msg)
{
    const struct keyring_key *key = NULL;
    uint8_t cnonce[CTLPROTO_NONCE_LEN];
    char expect[CTLPROTO_B64_LEN], proof[CTLPROTO_B64_LEN];
    const char *given = json_string_value(json_object_get(msg, "proof"));
    json_int_t kid = json_integer_value(json_object_get(msg, "kid"));

    if (json_is_integer(json_object_get(msg, "kid")) && kid >= 0 && kid <= 255)
        key = keyring_find(relay_keys(c->relay), (uint8_t)kid);
    if (key == NULL || given == NULL || strlen(given) != CTLPROTO_B64_LEN - 1 ||
        ctlproto_nonce_decode(json_string_value(json_object_get(msg, "nonce")), cnonce) != 0 ||
        ctlproto_proof(key, CTLPROTO_CLIENT, cl->nonce, cnonce, c->sha256, expect) != 0 ||
        !hmac_equal((const uint8_t *)given, (const uint8_t *)expect, CTLPROTO_B64_LEN - 1) ||
        ctlproto_proof(key, CTLPROTO_SERVER, cl->nonce, cnonce, c->sha256, proof) != 0) {
        log_warn("control: authentication failed");
        cl->closing = true;
        control__reply(c, cl, json_pack("{s:s,s:s}", "type", "error", "error", "auth_failed"));
        return;
    }
    cl->authed = true;
    control__reply(c, cl, json_pack("{s:s,s:s}", "type", "auth_ok", "proof", proof));
}

static void control__line(struct control *c, struct control_client *cl, const char *line,
                          size_t len)
{
    json_error_t jerr;
    json_t *msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *op;

    if (msg == NULL || !json_is_object(msg)) {
        cl->closing = !cl->authed;
        control__reply(c, cl, control__error(NULL, "bad_json"));
        json_decref(msg);
        return;
    }
    if (!cl->authed) {
        control__auth(c, cl, msg);
        json_decref(msg);
        return;
    }
    op = json_string_value(json_object_get(msg, "op"));
    for (size_t i = 0; op != NULL && i < sizeof(control_ops) / sizeof(control_ops[0]); i++) {
        if (strcmp(op, control_ops[i].name) == 0) {
            control__reply(c, cl, control_ops[i].fn(c, msg));
            json_decref(msg);
            return;
        }
    }
    control__reply(c, cl, control__error(msg, "unknown_op"));
    json_decref(msg);
}

static void control__readable(struct control *c, struct control_client *cl)
{
    ssize_t n = recv(cl->fd, cl->in + cl->in_len, sizeof(cl->in) - cl->in_len, MSG_DONTWAIT);
    char *nl;

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        control__drop(c, cl);
        return;
    }
    cl->in_len += (size_t)n;
    while (cl->fd >= 0 && !cl->closing && (nl = memchr(cl->in, '\n', cl->in_len)) != NULL) {
        size_t line = (size_t)(nl - cl->in);

        control__line(c, cl, cl->in, line);
        if (cl->fd < 0)
            return;
        memmove(cl->in, nl + 1, cl->in_len - line - 1);
        cl->in_len -= line + 1;
    }
    if (cl->fd >= 0 && cl->in_len == sizeof(cl->in)) {
        cl->closing = true;
        control__reply(c, cl, control__error(NULL, "line_too_long"));
    }
}

static void control__accept(struct control *c)
{
    char nonce_b64[CTLPROTO_B64_LEN];
    struct control_client *cl = NULL;
    struct epoll_event ev = {.events = EPOLLIN};
    int fd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0)
        return;
    for (int i = 0; i < QR_CONTROL_CLIENTS_MAX && cl == NULL; i++) {
        if (c->clients[i].fd < 0)
            cl = &c->clients[i];
    }
    if (cl == NULL || ctlproto_nonce(cl->nonce, nonce_b64) != 0) {
        log_warn("control: refusing a connection (%s)", cl ? "no randomness" : "too many clients");
        close(fd);
        return;
    }
    cl->fd = fd;
    cl->deadline_ms = clock_mono_ms() + QR_CONTROL_AUTH_TIMEOUT_MS;
    ev.data.u64 = control__tag(c, cl);
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        cl->fd = -1;
        return;
    }
    control__reply(c, cl, json_pack("{s:s,s:s,s:i,s:s}", "type", "hello", "server",
                                    "quietroom-relay", "version", CTLPROTO_VERSION, "nonce",
                                    nonce_b64));
}

void control_event(struct control *c, uint64_t tag, uint32_t events)
{
    struct control_client *cl;

    if (tag == CONTROL_TAG_LISTEN) {
        control__accept(c);
        return;
    }
    if (tag < CONTROL_TAG_CLIENT || tag >= CONTROL_TAG_CLIENT + QR_CONTROL_CLIENTS_MAX)
        return;
    cl = &c->clients[tag - CONTROL_TAG_CLIENT];
    if (cl->fd >= 0 && (events & EPOLLOUT))
        control__flush(c, cl);
    if (cl->fd >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        control__readable(c, cl);
}

void control_tick(struct control *c, uint64_t now_ms)
{
    for (int i = 0; i < QR_CONTROL_CLIENTS_MAX; i++) {
        struct control_client *cl = &c->clients[i];

        if (cl->fd >= 0 && !cl->authed && now_ms > cl->deadline_ms)
            control__drop(c, cl);
    }
}

struct control *control_new(struct relay *r, int epfd, char *err, size_t errlen)
{
    struct control *c = calloc(1, sizeof(*c));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = CONTROL_TAG_LISTEN};
    socklen_t alen = sizeof(c->addr);
    int one = 1;

    if (c == NULL || (c->sha256 = hmac_new(HMAC_SHA256)) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(c);
        return NULL;
    }
    c->relay = r;
    c->epfd = epfd;
    for (int i = 0; i < QR_CONTROL_CLIENTS_MAX; i++)
        c->clients[i].fd = -1;
    c->listen_fd = socket(r->cfg.control.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* [::] means IPv6 only, as 0.0.0.0 means IPv4 only: exactly what is
     * configured. */
    if (c->listen_fd < 0 ||
        setsockopt(c->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (r->cfg.control.sa.sa_family == AF_INET6 &&
         setsockopt(c->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(c->listen_fd, &r->cfg.control.sa, netaddr_len(&r->cfg.control)) != 0 ||
        listen(c->listen_fd, QR_CONTROL_CLIENTS_MAX) != 0 ||
        getsockname(c->listen_fd, &c->addr.sa, &alen) != 0 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->listen_fd, &ev) != 0) {
        char text[NETADDR_STRLEN];

        snprintf(err, errlen, "control endpoint tcp %s: %s",
                 netaddr_format(&r->cfg.control, text, sizeof(text)), strerror(errno));
        control_free(c);
        return NULL;
    }
    if (!netaddr_is_loopback(&c->addr))
        log_warn("control endpoint is not on loopback: it is authenticated but not encrypted; "
                 "keep it on a private network");
    return c;
}

const union netaddr *control_address(const struct control *c)
{
    return &c->addr;
}

void control_free(struct control *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < QR_CONTROL_CLIENTS_MAX; i++) {
        if (c->clients[i].fd >= 0)
            control__drop(c, &c->clients[i]);
    }
    if (c->listen_fd >= 0)
        close(c->listen_fd);
    hmac_free(c->sha256);
    free(c);
}
