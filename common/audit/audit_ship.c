/* The audit shipper's thread: it reads back the lines the writer has made
 * durable (audit_ship_reader.c: never further, across rotations), frames
 * each one (audit_syslog.c) and sends it to the collector over TLS
 * (audit_ship_tls.c).
 *
 * Delivery. Syslog over TLS has no acknowledgement of its own. A record
 * stays in the window, and is sent again after a reconnect, until the
 * collector's TCP acknowledged its last byte (bytes written on the
 * connection minus SIOCOUTQ) and QR_AUDIT_SHIP_HOLD_MS passed with the
 * connection up. TCP acknowledges what the collector has not read yet: one
 * that stops reading and is then restarted loses its socket buffer. So a
 * released record moves to the tail, and what the tail holds (the last
 * QR_AUDIT_SHIP_TAIL_MS, at most QR_AUDIT_SHIP_TAIL_BYTES) is sent again
 * after every reconnect as well. A collector therefore sees a record twice,
 * byte-identical, rather than never. */
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
    uint64_t read_ms;  /* when it was read back (it was durable then) */
    uint64_t end;      /* connection bytes written once it was sent */
    uint64_t acked_ms; /* when TCP acknowledged it; 0 not yet */
    uint64_t seq;
    bool sent_once;
};

struct audit_ship {
    struct audit_ship_config cfg;
    SSL_CTX *ctx;
    struct audit_log *log;
    char hostname[AUDIT_SYSLOG_HOSTNAME_MAX + 1];
    long pid;
    pthread_t thread;
    int efd;              /* the writer's nudge */
    pthread_mutex_t lock; /* guards what follows, up to the thread's own state */
    ino_t pub_ino;
    uint64_t pub_size;
    bool quiet;           /* the log is closing: no more records of our own */
    bool stopping;
    uint64_t drain_until;
    uint64_t behind_since_ms;
    struct audit_ship_counters counters;
    /* The thread's own. */
    struct ship_reader rd;
    struct ship_entry win[QR_AUDIT_SHIP_WINDOW];
    unsigned head, count;   /* the window: read, not yet released */
    struct ship_entry tail[QR_AUDIT_SHIP_TAIL]; /* released: acked_ms is when */
    unsigned tail_head, tail_count;
    size_t tail_bytes;
    unsigned nsent;         /* of those, sent on this connection */
    unsigned nacked;        /* of those, acknowledged by the collector's TCP */
    SSL *ssl;
    int sock;
    uint64_t retry_ms, backoff_ms;
    uint64_t down_since_ms; /* 0 while up (or before the first try) */
    uint64_t reader_behind_ms;
    bool down_reported;
    bool proven;            /* this connection delivered a record (see ship__proven) */
    bool ever_proven;
    bool read_failing;      /* reported once per streak */
    char state[PATH_MAX];   /* DIR/.BASE.ship: the last seq released, for the next run */
    uint64_t released_seq, saved_seq, saved_ms;
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

/* --- the tail ------------------------------------------------------------------------------ */

static struct ship_entry *ship__tail_at(struct audit_ship *s, unsigned i)
{
    return &s->tail[(s->tail_head + i) % QR_AUDIT_SHIP_TAIL];
}

static void ship__tail_drop_oldest(struct audit_ship *s)
{
    struct ship_entry *e = ship__tail_at(s, 0);

    s->tail_bytes -= e->len;
    free(e->frame);
    *e = (struct ship_entry){0};
    s->tail_head = (s->tail_head + 1) % QR_AUDIT_SHIP_TAIL;
    s->tail_count--;
}

/* Moves the window's first record, just released at now, to the tail. */
static void ship__retire(struct audit_ship *s, uint64_t now)
{
    struct ship_entry *e = ship__at(s, 0);

    while (s->tail_count > 0 && (s->tail_count == QR_AUDIT_SHIP_TAIL ||
                                 s->tail_bytes + e->len > QR_AUDIT_SHIP_TAIL_BYTES))
        ship__tail_drop_oldest(s);
    *ship__tail_at(s, s->tail_count++) = (struct ship_entry){
        .frame = e->frame, .len = e->len, .acked_ms = now, .sent_once = true, .seq = e->seq};
    if (e->seq > s->released_seq)
        s->released_seq = e->seq;
    s->tail_bytes += e->len;
    e->frame = NULL;
    ship__pop(s);
}

/* After a connection ends: what the tail released recently goes back in
 * front of the window, to be sent again first. */
static void ship__unretire(struct audit_ship *s, uint64_t now)
{
    while (s->tail_count > 0 && now - ship__tail_at(s, 0)->acked_ms > QR_AUDIT_SHIP_TAIL_MS)
        ship__tail_drop_oldest(s);
    while (s->tail_count > 0 && s->count < QR_AUDIT_SHIP_WINDOW) {
        struct ship_entry *t = ship__tail_at(s, --s->tail_count);

        s->tail_bytes -= t->len;
        s->head = (s->head + QR_AUDIT_SHIP_WINDOW - 1) % QR_AUDIT_SHIP_WINDOW;
        *ship__at(s, 0) = (struct ship_entry){
            .frame = t->frame, .len = t->len, .read_ms = now, .sent_once = true, .seq = t->seq};
        *t = (struct ship_entry){0};
        s->count++;
    }
    while (s->tail_count > 0) /* no room in the window: the oldest go */
        ship__tail_drop_oldest(s);
}

/* Notes when each newly acknowledged record was (the acknowledged ones are
 * a prefix of what was sent). Returns how many are acknowledged. */
static unsigned ship__mark_acked(struct audit_ship *s, uint64_t now, uint64_t acked)
{
    while (s->nacked < s->nsent && ship__at(s, s->nacked)->end <= acked)
        ship__at(s, s->nacked++)->acked_ms = now;
    return s->nacked;
}

/* Releases the records known delivered (see the top); with all (the daemon
 * is stopping and closes the connection cleanly), every acknowledged one. */
static void ship__release(struct audit_ship *s, bool all)
{
    uint64_t now = clock_mono_ms();

    ship__mark_acked(s, now, ship__acked(s));
    while (s->nacked > 0) {
        if (!all && now - ship__at(s, 0)->acked_ms < QR_AUDIT_SHIP_HOLD_MS)
            return;
        ship__retire(s, now);
        s->nsent--;
        s->nacked--;
        if (!s->proven)
            ship__proven(s, now);
    }
}

static bool ship__all_acked(struct audit_ship *s)
{
    return s->nsent == 0 || ship__at(s, s->nsent - 1)->end <= ship__acked(s);
}

/* --- reading back ---------------------------------------------------------------------------- */

/* The frame of one sealed line: its outcome, time and type go into the
 * header; the line itself is the message. */
static char *ship__frame(struct audit_ship *s, const char *line, size_t len, size_t *flen,
                         uint64_t *seq)
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

    *seq = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
    if (frame != NULL && (*flen = audit_syslog_frame(frame, cap, &h, line, len)) == 0) {
        free(frame);
        frame = NULL;
    }
    json_decref(rec);
    return frame;
}

static void ship__read_failed(struct audit_ship *s, const char *what)
{
    if (!s->read_failing)
        log_error("audit-syslog: %s: %s (retrying)", what, strerror(errno));
    s->read_failing = true;
}

/* Reads what has been committed into the window, as far as it has room. A
 * line that cannot be framed now is left for the next round: no gap. */
static void ship__fill(struct audit_ship *s, ino_t pub_ino, uint64_t pub_size, uint64_t now)
{
    while (s->count < QR_AUDIT_SHIP_WINDOW) {
        struct ship_entry *e = ship__at(s, s->count);
        const char *line;
        size_t len, flen;
        int got = ship_reader_line(&s->rd, pub_ino, pub_size, &line, &len);

        if (got < 0)
            ship__read_failed(s, "reading the audit log back");
        if (got <= 0)
            return;
        if (len == 0)
            continue;
        if ((e->frame = ship__frame(s, line, len, &flen, &e->seq)) == NULL) {
            ship_reader_unread(&s->rd, len);
            ship__read_failed(s, "framing a record");
            return;
        }
        s->read_failing = false;
        e->len = flen;
        e->read_ms = now;
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

static bool ship__quiet(struct audit_ship *s)
{
    pthread_mutex_lock(&s->lock);
    bool quiet = s->quiet || s->stopping;
    pthread_mutex_unlock(&s->lock);
    return quiet;
}

/* An "audit.ship" record: metadata only (the reason, never an address). */
static void ship__record(struct audit_ship *s, const char *reason, const char *error,
                         uint64_t down_ms)
{
    json_t *ev;

    if (ship__quiet(s)) /* the writer is closing: it would count a loss */
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
        log_warn("audit-syslog: shipping to %s:%s stopped: %s (records are kept and sent once it "
                 "is back)",
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
static void ship__disconnect(struct audit_ship *s)
{
    audit_ship_tls_close(&s->ssl, &s->sock);
    for (unsigned i = 0; i < s->count; i++)
        ship__at(s, i)->acked_ms = 0;
    s->nsent = s->nacked = 0;
    ship__unretire(s, clock_mono_ms());
    ship__count(s, NULL, false);
}

static void ship__connect(struct audit_ship *s, uint64_t now, int timeout_ms)
{
    char why[256];
    enum ship_connect rc =
        audit_ship_tls_connect(s->ctx, &s->cfg, timeout_ms, &s->ssl, &s->sock, why, sizeof(why));

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
 * reset, "resumed" recorded) once a record was delivered. */
static void ship__proven(struct audit_ship *s, uint64_t now)
{
    s->proven = true;
    s->backoff_ms = QR_AUDIT_SHIP_BACKOFF_MIN_MS;
    if (ship__quiet(s))
        return;
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

/* Sends what the window holds beyond what this connection has sent, until
 * deadline (0: none) when the daemon is stopping. */
static void ship__send(struct audit_ship *s, uint64_t now, uint64_t deadline)
{
    uint64_t sent = 0, resent = 0;

    while (s->ssl != NULL && s->nsent < s->count) {
        struct ship_entry *e = ship__at(s, s->nsent);

        if (deadline != 0 && clock_mono_ms() >= deadline)
            break;
        if (SSL_write(s->ssl, e->frame, (int)e->len) != (int)e->len) {
            ERR_clear_error();
            ship__disconnect(s);
            ship__down(s, now, "write", "the connection failed while sending");
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
 * its close_notify, and end of stream is its close. An idle connection
 * closed (a load balancer's timeout) is reopened without a word; shipping
 * counts as stopped only if reopening it fails. */
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
    ship__disconnect(s);
    if (s->proven && s->count == 0) {
        s->retry_ms = now;
        return;
    }
    ship__down(s, now, "closed",
               s->proven ? "the collector closed the connection"
                         : "the collector closed the connection before confirming a record "
                           "(does it require a client certificate?)");
}

/* --- where shipping stands, for the next run -------------------------------------------------- */

/* Notes the last released seq (at most once a second, or now): the next
 * run of the daemon sends what comes after it, so records this run could
 * not deliver are not left out. Not synced: an old note only means more
 * records sent twice. */
static void ship__save(struct audit_ship *s, uint64_t now, bool now_or_never)
{
    char tmp[PATH_MAX + 8], text[32];
    int fd, n;

    if (s->released_seq == s->saved_seq || (!now_or_never && now - s->saved_ms < 1000))
        return;
    snprintf(tmp, sizeof(tmp), "%s.tmp", s->state);
    n = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)s->released_seq);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, text, (size_t)n) != n || close(fd) != 0 || rename(tmp, s->state) != 0) {
        if (fd >= 0)
            unlink(tmp);
        log_error("audit-syslog: cannot note where shipping stands in %s: %s", s->state,
                  strerror(errno));
    }
    s->saved_seq = s->released_seq;
    s->saved_ms = now;
}

/* The last seq the previous run released, 0 if none is noted. */
static uint64_t ship__load(const struct audit_ship *s)
{
    char text[32] = "";
    int fd = open(s->state, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;

    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    return strtoull(text, NULL, 10);
}

/* Starts reading where the previous run stopped shipping, if it stopped
 * before its last record (last_seq). */
static void ship__resume(struct audit_ship *s, uint64_t last_seq, uint64_t from)
{
    uint64_t after = ship__load(s);
    char err[256], path[PATH_MAX];

    s->released_seq = s->saved_seq = after;
    if (after == 0 || after >= last_seq)
        return;
    if (ship_reader_resume(&s->rd, after, s->pub_ino, from) == 0) {
        log_info("audit-syslog: sending the records after seq %llu the last run did not",
                 (unsigned long long)after);
        return;
    }
    log_error("audit-syslog: cannot find seq %llu to resume from; records before this run "
              "are not sent", (unsigned long long)after);
    snprintf(path, sizeof(path), "%s", s->rd.path);
    ship_reader_free(&s->rd);
    if (ship_reader_init(&s->rd, path, from, err, sizeof(err)) != 0)
        log_error("%s", err); /* the thread finds nothing to read: logged, shipped nothing */
}

/* --- the thread --------------------------------------------------------------------------- */

/* Since when the oldest record not yet acknowledged (or not yet read back,
 * with the window full) has waited; 0 if none. */
static void ship__behind(struct audit_ship *s, uint64_t now, bool caught_up)
{
    uint64_t since = 0;

    for (unsigned i = 0; i < s->count && since == 0; i++) {
        if (ship__at(s, i)->acked_ms == 0)
            since = ship__at(s, i)->read_ms;
    }
    if (caught_up)
        s->reader_behind_ms = 0;
    else if (s->reader_behind_ms == 0)
        s->reader_behind_ms = now;
    if (since == 0 || (s->reader_behind_ms != 0 && s->reader_behind_ms < since))
        since = s->reader_behind_ms;
    pthread_mutex_lock(&s->lock);
    s->behind_since_ms = since;
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

/* How long a connection attempt may take now: stopping, only what is left
 * of the drain (0: none). */
static int ship__connect_budget(uint64_t now, bool stopping, uint64_t drain_until)
{
    if (!stopping)
        return QR_AUDIT_SHIP_CONNECT_MS;
    if (drain_until <= now + QR_AUDIT_SHIP_TICK_MS)
        return 0;
    return drain_until - now < QR_AUDIT_SHIP_CONNECT_MS ? (int)(drain_until - now)
                                                        : QR_AUDIT_SHIP_CONNECT_MS;
}

static void *ship__thread(void *arg)
{
    struct audit_ship *s = arg;
    bool caught_up = false;

    for (;;) {
        uint64_t now = clock_mono_ms(), drain_until, size;
        bool stopping;
        ino_t ino;
        int budget;

        pthread_mutex_lock(&s->lock);
        ino = s->pub_ino;
        size = s->pub_size;
        stopping = s->stopping;
        drain_until = s->drain_until;
        pthread_mutex_unlock(&s->lock);

        ship__fill(s, ino, size, now);
        budget = ship__connect_budget(now, stopping, drain_until);
        if (s->ssl == NULL && now >= s->retry_ms && budget > 0)
            ship__connect(s, now, budget);
        if (s->ssl != NULL) {
            ship__watch(s, now);
            ship__send(s, now, stopping ? drain_until : 0);
        }
        if (s->ssl != NULL)
            ship__release(s, stopping);
        ship__save(s, now, false);
        caught_up = ship_reader_caught_up(&s->rd, ino, size) && s->nsent == s->count;
        ship__behind(s, now, caught_up);
        if (stopping && ((caught_up && s->ssl != NULL && ship__all_acked(s)) ||
                         clock_mono_ms() >= drain_until))
            break;
        ship__wait(s, now);
    }
    if (!caught_up || (s->ssl != NULL && !ship__all_acked(s)) || s->ssl == NULL)
        log_warn("audit-syslog: stopped before the collector acknowledged every record (they "
                 "are in the local file)");
    audit_ship_tls_close(&s->ssl, &s->sock);
    ship__save(s, clock_mono_ms(), true);
    return NULL;
}

/* --- start and stop ----------------------------------------------------------------------- */

static void ship__free(struct audit_ship *s)
{
    while (s->count > 0)
        ship__pop(s);
    while (s->tail_count > 0)
        ship__tail_drop_oldest(s);
    ship_reader_free(&s->rd);
    if (s->efd >= 0)
        close(s->efd);
    SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* DIR/.BASE.ship: hidden, so "audit.jsonl*" globs of the log never take it. */
static void ship__state_path(struct audit_ship *s, const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        snprintf(s->state, sizeof(s->state), ".%s.ship", path);
    else
        snprintf(s->state, sizeof(s->state), "%.*s/.%s.ship", (int)(slash - path), path,
                 slash + 1);
}

struct audit_ship *audit_ship_start(const struct audit_ship_config *c, const char *app_default,
                                    const char *path, uint64_t from, uint64_t last_seq,
                                    struct audit_log *log, char *err, size_t errlen)
{
    struct audit_ship *s = calloc(1, sizeof(*s));

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
    if (gethostname(s->hostname, sizeof(s->hostname) - 1) != 0)
        s->hostname[0] = '\0';
    if ((s->ctx = audit_ship_tls_context(c, err, errlen)) == NULL ||
        ship_reader_init(&s->rd, path, from, err, errlen) != 0)
        goto fail;
    if ((s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "audit-syslog: %s", strerror(errno));
        goto fail;
    }
    s->pub_ino = s->rd.ino;
    s->pub_size = from;
    ship__state_path(s, path);
    ship__resume(s, last_seq, from);
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
    uint64_t now = clock_mono_ms();

    pthread_mutex_lock(&s->lock);
    *out = s->counters;
    out->behind_ms = s->behind_since_ms != 0 && now > s->behind_since_ms
                         ? now - s->behind_since_ms
                         : 0;
    pthread_mutex_unlock(&s->lock);
}

void audit_ship_quiet(struct audit_ship *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->quiet = true;
    pthread_mutex_unlock(&s->lock);
}

void audit_ship_stop(struct audit_ship *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->quiet = true;
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
