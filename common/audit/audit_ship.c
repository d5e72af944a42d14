/* The audit shipper's thread: it reads back the lines the writer has made
 * durable (never further: a group whose write fails is cut back), frames
 * each one and sends it to the collector over TLS.
 *
 * Delivery. Syslog over TLS has no acknowledgement of its own. A record is
 * known delivered once the collector's TCP acknowledged its last byte
 * (bytes written on the connection minus SIOCOUTQ) and QR_AUDIT_SHIP_HOLD_MS
 * have passed with the connection still up; until then it stays in the
 * window and is sent again if the connection breaks. A collector therefore
 * sees a record twice, byte-identical, rather than never.
 *
 * Rotation. The shipper reads through its own descriptor, which follows
 * the file when it is renamed; once it has read a rotated file to its end
 * it opens PATH again. */
#include "quietroom/audit/audit_ship.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>

#include "audit_ship_internal.h"
#include "quietroom/audit/audit.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/log.h"

struct ship_entry {
    char *frame;
    size_t len;
    uint64_t end;      /* connection bytes written once it was sent */
    uint64_t acked_ms; /* when TCP acknowledged it; 0 not yet */
    bool sent_once;
};

struct ship_reader {
    int fd;
    ino_t ino;
    uint64_t off; /* file offset of buf[0] */
    char *buf;
    size_t cap, len, pos;
};

struct audit_ship {
    struct audit_ship_config cfg;
    SSL_CTX *ctx;
    struct audit_log *log;
    char path[PATH_MAX];
    char hostname[AUDIT_SYSLOG_HOSTNAME_MAX + 1];
    long pid;
    pthread_t thread;
    int efd;              /* the writer's nudge */
    pthread_mutex_t lock; /* guards what follows, up to the thread's own state */
    ino_t pub_ino;
    uint64_t pub_size;
    bool stopping;
    uint64_t drain_until;
    struct audit_ship_counters counters;
    /* The thread's own. */
    struct ship_reader rd;
    struct ship_entry win[QR_AUDIT_SHIP_WINDOW];
    unsigned head, count; /* the window: read, not yet released */
    unsigned nsent;       /* of those, sent on this connection */
    SSL *ssl;
    int sock;
    uint64_t retry_ms, backoff_ms;
    uint64_t down_since_ms; /* 0 while up (or before the first try) */
    bool down_reported;
    bool proven;            /* this connection delivered a record (see ship__proven) */
    bool ever_proven;
    uint64_t behind_since_ms;
};

static void ship__proven(struct audit_ship *s, uint64_t now);

/* --- the window --------------------------------------------------------------------------- */

static struct ship_entry *ship__at(struct audit_ship *s, unsigned i)
{
    return &s->win[(s->head + i) % QR_AUDIT_SHIP_WINDOW];
}

static void ship__pop(struct audit_ship *s)
{
    struct ship_entry *e = ship__at(s, 0);

    free(e->frame);
    *e = (struct ship_entry){0};
    s->head = (s->head + 1) % QR_AUDIT_SHIP_WINDOW;
    s->count--;
}

/* What the collector's TCP has acknowledged of this connection. */
static uint64_t ship__acked(struct audit_ship *s)
{
    uint64_t written = BIO_number_written(SSL_get_wbio(s->ssl));
    int outq = 0;

    if (ioctl(s->sock, SIOCOUTQ, &outq) != 0 || outq < 0 || (uint64_t)outq > written)
        return 0;
    return written - (uint64_t)outq;
}

/* Releases records held long enough after TCP acknowledged them; with all,
 * every acknowledged one (a daemon stopping closes the connection cleanly,
 * so nothing acknowledged is lost). True if every sent record is acked. */
static bool ship__release(struct audit_ship *s, uint64_t now, bool all)
{
    uint64_t acked = ship__acked(s);

    while (s->nsent > 0) {
        struct ship_entry *e = ship__at(s, 0);

        if (e->end > acked)
            return false;
        if (e->acked_ms == 0)
            e->acked_ms = now;
        if (!all && now - e->acked_ms < QR_AUDIT_SHIP_HOLD_MS)
            return false;
        ship__pop(s);
        s->nsent--;
        if (!s->proven)
            ship__proven(s, now);
    }
    return true;
}

/* --- reading back the file ---------------------------------------------------------------- */

static int ship__reader_open(struct audit_ship *s, ino_t want)
{
    struct stat st;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0 || st.st_ino != want) {
        close(fd);
        return -1;
    }
    if (s->rd.fd >= 0)
        close(s->rd.fd);
    s->rd.fd = fd;
    s->rd.ino = st.st_ino;
    s->rd.off = 0;
    s->rd.len = s->rd.pos = 0;
    return 0;
}

/* The next complete line below limit (file offset), without its '\n':
 * 1, 0 if none yet, -1 on a read error. */
static int ship__line(struct ship_reader *r, uint64_t limit, const char **line, size_t *len)
{
    for (;;) {
        char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
        ssize_t n;

        if (nl != NULL) {
            *line = r->buf + r->pos;
            *len = (size_t)(nl - *line);
            r->pos += *len + 1;
            return 1;
        }
        /* Keep the partial line, drop what was consumed. */
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->off += r->pos;
        r->len -= r->pos;
        r->pos = 0;
        if (r->len == r->cap) {
            size_t cap = r->cap * 2;
            char *b = cap <= QR_AUDIT_SHIP_LINE_MAX ? realloc(r->buf, cap) : NULL;

            if (b == NULL) {
                r->len = 0; /* not a record the writer made: skip it */
                continue;
            }
            r->buf = b;
            r->cap = cap;
        }
        if (r->off + r->len >= limit)
            return 0;
        n = pread(r->fd, r->buf + r->len,
                  (size_t)(limit - r->off - r->len < r->cap - r->len ? limit - r->off - r->len
                                                                     : r->cap - r->len),
                  (off_t)(r->off + r->len));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -1 : 0;
        r->len += (size_t)n;
    }
}

/* The frame of one sealed line: its outcome, time and type go into the
 * header; the line itself is the message. */
static char *ship__frame(struct audit_ship *s, const char *line, size_t len, size_t *flen)
{
    json_t *rec = json_loadb(line, len, 0, NULL);
    struct audit_syslog_head h = {
        .severity = audit_syslog_severity((int)json_integer_value(json_object_get(rec, "outcome"))),
        .timestamp = json_string_value(json_object_get(rec, "time")),
        .hostname = s->hostname,
        .app = s->cfg.app,
        .procid = s->pid,
        .msgid = json_string_value(json_object_get(rec, "type")),
    };
    size_t cap = AUDIT_SYSLOG_FRAME_MAX(len);
    char *frame = malloc(cap);

    if (frame != NULL && (*flen = audit_syslog_frame(frame, cap, &h, line, len)) == 0) {
        free(frame);
        frame = NULL;
    }
    json_decref(rec);
    return frame;
}

/* Reads what has been committed into the window, as far as it has room. */
static void ship__fill(struct audit_ship *s, ino_t pub_ino, uint64_t pub_size)
{
    while (s->count < QR_AUDIT_SHIP_WINDOW) {
        bool rotated = s->rd.ino != pub_ino;
        const char *line;
        size_t len, flen;
        int got = ship__line(&s->rd, rotated ? UINT64_MAX : pub_size, &line, &len);
        struct ship_entry *e;

        if (got < 0)
            log_error("audit-syslog: reading %s back: %s", s->path, strerror(errno));
        if (got <= 0) {
            /* A rotated file read to its end: go on with PATH. */
            if (got == 0 && rotated && ship__reader_open(s, pub_ino) == 0)
                continue;
            return;
        }
        if (len == 0)
            continue;
        e = ship__at(s, s->count);
        if ((e->frame = ship__frame(s, line, len, &flen)) == NULL) {
            log_error("audit-syslog: cannot frame a record of %zu bytes", len);
            continue;
        }
        e->len = flen;
        s->count++;
    }
}

/* --- the connection ----------------------------------------------------------------------- */

static void ship__count(struct audit_ship *s, uint64_t *counter, bool connected)
{
    pthread_mutex_lock(&s->lock);
    if (counter != NULL)
        (*counter)++;
    s->counters.connected = connected;
    pthread_mutex_unlock(&s->lock);
}

static bool ship__stopping(struct audit_ship *s)
{
    pthread_mutex_lock(&s->lock);
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return stopping;
}

/* An "audit.ship" record: metadata only (the reason, never an address). */
static void ship__record(struct audit_ship *s, const char *reason, const char *error,
                         uint64_t down_ms)
{
    json_t *ev;

    if (ship__stopping(s)) /* the writer is closing: it would count a loss */
        return;
    ev = audit_event("audit.ship", 'E', error ? AUDIT_MINOR_FAILURE : AUDIT_SUCCESS);
    audit_event_reason(ev, reason);
    if (error != NULL)
        audit_event_detail(ev, "error", json_string(error));
    if (down_ms > 0)
        audit_event_detail(ev, "down_ms", json_integer((json_int_t)down_ms));
    audit_emit(s->log, ev);
}

static void ship__down(struct audit_ship *s, uint64_t now, const char *error, const char *why)
{
    if (!s->down_reported) {
        log_warn("audit-syslog: shipping to %s:%s stopped: %s (records are kept "
                 "and sent once "
                 "it is back)",
                 s->cfg.host, s->cfg.port, why);
        ship__record(s, "stopped", error, 0);
        s->down_reported = true;
        s->down_since_ms = now;
    }
    s->retry_ms = now + s->backoff_ms;
    s->backoff_ms = s->backoff_ms * 2 > QR_AUDIT_SHIP_BACKOFF_MAX_MS ? QR_AUDIT_SHIP_BACKOFF_MAX_MS
                                                                     : s->backoff_ms * 2;
}

/* Drops the connection; everything in the window is sent again. */
static void ship__disconnect(struct audit_ship *s, uint64_t now, const char *error, const char *why)
{
    audit_ship_tls_close(&s->ssl, &s->sock);
    for (unsigned i = 0; i < s->count; i++)
        ship__at(s, i)->acked_ms = 0;
    s->nsent = 0;
    ship__count(s, NULL, false);
    ship__down(s, now, error, why);
}

static void ship__connect(struct audit_ship *s, uint64_t now)
{
    char why[256];
    enum ship_connect rc =
        audit_ship_tls_connect(s->ctx, &s->cfg, &s->ssl, &s->sock, why, sizeof(why));

    if (rc != SHIP_CONNECTED) {
        ship__count(s,
                    rc == SHIP_REFUSED_CERT ? &s->counters.refused_certificate
                                            : &s->counters.connects_failed,
                    false);
        ship__down(s, now, rc == SHIP_REFUSED_CERT ? "certificate" : "connect", why);
        return;
    }
    ship__count(s, &s->counters.connects_ok, true);
    s->proven = false;
}

/* A handshake is not enough: a collector that wants a client certificate
 * completes TLS 1.3 and then closes. Shipping counts as going (backoff
 * reset, "resumed" recorded) once a record was acknowledged and held. */
static void ship__proven(struct audit_ship *s, uint64_t now)
{
    s->proven = true;
    s->backoff_ms = QR_AUDIT_SHIP_BACKOFF_MIN_MS;
    if (s->down_reported) {
        log_info("audit-syslog: shipping to %s:%s resumed", s->cfg.host, s->cfg.port);
        ship__record(s, "resumed", NULL, now - s->down_since_ms);
    } else if (!s->ever_proven) {
        log_info("audit-syslog: shipping to %s:%s", s->cfg.host, s->cfg.port);
    }
    s->ever_proven = true;
    s->down_reported = false;
    s->down_since_ms = 0;
}

/* Sends what the window holds beyond what this connection has sent. */
static void ship__send(struct audit_ship *s, uint64_t now)
{
    uint64_t sent = 0, resent = 0;

    while (s->ssl != NULL && s->nsent < s->count) {
        struct ship_entry *e = ship__at(s, s->nsent);

        if (SSL_write(s->ssl, e->frame, (int)e->len) != (int)e->len) {
            ERR_clear_error();
            ship__disconnect(s, now, "write", "the connection failed while sending");
            break;
        }
        e->end = BIO_number_written(SSL_get_wbio(s->ssl));
        *(e->sent_once ? &resent : &sent) += 1;
        e->sent_once = true;
        s->nsent++;
    }
    pthread_mutex_lock(&s->lock);
    s->counters.sent += sent;
    s->counters.resent += resent;
    pthread_mutex_unlock(&s->lock);
}

/* The collector never speaks: a TLS record from it is a session ticket or
 * its close_notify, and end of stream is its close. */
static void ship__watch(struct audit_ship *s, uint64_t now)
{
    char c;
    ssize_t n;

    if (s->ssl == NULL)
        return;
    n = recv(s->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0) {
        /* AUTO_RETRY is off: a ticket gives WANT_READ, not a wait. */
        int r = SSL_read(s->ssl, &c, 1);

        if (r > 0 || SSL_get_error(s->ssl, r) == SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            return;
        }
    }
    ERR_clear_error();
    ship__disconnect(s, now, "closed",
                     s->proven ? "the collector closed the connection"
                               : "the collector closed the connection before confirming a record "
                                 "(does it require a client certificate?)");
}

/* --- the thread --------------------------------------------------------------------------- */

static void ship__behind(struct audit_ship *s, uint64_t now, bool caught_up)
{
    if (caught_up)
        s->behind_since_ms = 0;
    else if (s->behind_since_ms == 0)
        s->behind_since_ms = now;
    pthread_mutex_lock(&s->lock);
    s->counters.behind_ms = s->behind_since_ms ? now - s->behind_since_ms : 0;
    pthread_mutex_unlock(&s->lock);
}

static void ship__wait(struct audit_ship *s, uint64_t now)
{
    struct pollfd p[2] = {{.fd = s->efd, .events = POLLIN}, {.fd = s->sock, .events = POLLIN}};
    int timeout = QR_AUDIT_SHIP_TICK_MS;
    uint64_t v;

    if (s->ssl == NULL && s->retry_ms > now && s->retry_ms - now < (uint64_t)timeout)
        timeout = (int)(s->retry_ms - now);
    if (poll(p, s->ssl != NULL ? 2 : 1, timeout) > 0 && (p[0].revents & POLLIN) &&
        read(s->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_error("audit-syslog: eventfd: %s", strerror(errno));
}

static void *ship__thread(void *arg)
{
    struct audit_ship *s = arg;

    for (;;) {
        uint64_t now = clock_mono_ms(), drain_until;
        bool stopping, reading_done, all_acked = false;
        ino_t ino;
        uint64_t size;

        pthread_mutex_lock(&s->lock);
        ino = s->pub_ino;
        size = s->pub_size;
        stopping = s->stopping;
        drain_until = s->drain_until;
        pthread_mutex_unlock(&s->lock);

        ship__fill(s, ino, size);
        if (s->ssl == NULL && now >= s->retry_ms)
            ship__connect(s, now);
        if (s->ssl != NULL) {
            ship__watch(s, now);
            ship__send(s, now);
        }
        if (s->ssl != NULL)
            all_acked = ship__release(s, now, stopping);
        reading_done = s->rd.ino == ino && s->rd.off + s->rd.pos >= size;
        ship__behind(s, now, reading_done && s->nsent == s->count);
        if (stopping && ((reading_done && s->nsent == s->count && all_acked) || now >= drain_until))
            break;
        ship__wait(s, now);
    }
    if (s->count > s->nsent || s->rd.ino != s->pub_ino || s->rd.off + s->rd.pos < s->pub_size)
        log_warn("audit-syslog: stopped with records not sent to the collector "
                 "(they are in "
                 "the local file)");
    audit_ship_tls_close(&s->ssl, &s->sock);
    return NULL;
}

/* --- start and stop ----------------------------------------------------------------------- */

static void ship__free(struct audit_ship *s)
{
    while (s->count > 0)
        ship__pop(s);
    if (s->rd.fd >= 0)
        close(s->rd.fd);
    free(s->rd.buf);
    if (s->efd >= 0)
        close(s->efd);
    SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

struct audit_ship *audit_ship_start(const struct audit_ship_config *c, const char *app_default,
                                    const char *path, uint64_t from, struct audit_log *log,
                                    char *err, size_t errlen)
{
    struct audit_ship *s = calloc(1, sizeof(*s));
    struct stat st;

    if (s == NULL) {
        snprintf(err, errlen, "audit-syslog: out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->cfg = *c;
    if (s->cfg.app[0] == '\0')
        snprintf(s->cfg.app, sizeof(s->cfg.app), "%s", app_default);
    s->rd.fd = s->efd = s->sock = -1;
    s->log = log;
    s->pid = (long)getpid();
    s->backoff_ms = QR_AUDIT_SHIP_BACKOFF_MIN_MS;
    snprintf(s->path, sizeof(s->path), "%s", path);
    if (gethostname(s->hostname, sizeof(s->hostname) - 1) != 0)
        s->hostname[0] = '\0';
    if ((s->ctx = audit_ship_tls_context(c, err, errlen)) == NULL)
        goto fail;
    if ((s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
        (s->rd.buf = malloc(QR_AUDIT_SHIP_READ)) == NULL) {
        snprintf(err, errlen, "audit-syslog: %s", strerror(errno));
        goto fail;
    }
    s->rd.cap = QR_AUDIT_SHIP_READ;
    if (stat(path, &st) != 0 || ship__reader_open(s, st.st_ino) != 0) {
        snprintf(err, errlen, "audit-syslog: cannot read %s back: %s", path, strerror(errno));
        goto fail;
    }
    s->rd.off = from;
    s->pub_ino = st.st_ino;
    s->pub_size = from;
    if (pthread_create(&s->thread, NULL, ship__thread, s) != 0) {
        snprintf(err, errlen, "audit-syslog: cannot start its thread");
        goto fail;
    }
    return s;
fail:
    ship__free(s);
    return NULL;
}

static void ship__nudge(struct audit_ship *s)
{
    uint64_t one = 1;

    if (write(s->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_error("audit-syslog: eventfd: %s", strerror(errno));
}

void audit_ship_committed(struct audit_ship *s, ino_t ino, uint64_t size)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->pub_ino = ino;
    s->pub_size = size;
    pthread_mutex_unlock(&s->lock);
    ship__nudge(s);
}

void audit_ship_get_counters(struct audit_ship *s, struct audit_ship_counters *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->counters;
    pthread_mutex_unlock(&s->lock);
}

void audit_ship_stop(struct audit_ship *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    s->drain_until = clock_mono_ms() + QR_AUDIT_SHIP_DRAIN_MS;
    pthread_mutex_unlock(&s->lock);
    ship__nudge(s);
    pthread_join(s->thread, NULL);
    ship__free(s);
}

int audit_ship_parse_target(struct audit_ship_config *c, const char *value, char *err,
                            size_t errlen)
{
    const char *colon, *host = value;
    size_t hlen;
    char *end;
    unsigned long port;

    if (value[0] == '[') {
        const char *close = strchr(value, ']');

        colon = close != NULL && close[1] == ':' ? close + 1 : NULL;
        host = value + 1;
        hlen = close != NULL ? (size_t)(close - host) : 0;
    } else {
        colon = strrchr(value, ':');
        hlen = colon != NULL ? (size_t)(colon - value) : 0;
    }
    if (colon == NULL || hlen == 0 || hlen >= sizeof(c->host) || memchr(host, ' ', hlen))
        goto bad;
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || port == 0 || port > 65535)
        goto bad;
    memcpy(c->host, host, hlen);
    c->host[hlen] = '\0';
    snprintf(c->port, sizeof(c->port), "%lu", port);
    return 0;
bad:
    snprintf(err, errlen, "audit-syslog: want HOST:PORT or [IPv6]:PORT");
    return -1;
}
