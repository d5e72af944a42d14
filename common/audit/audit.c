/* The audit queue and its writer thread. Callers hand over events; the
 * writer seals whatever has queued up, writes it with one write(2), makes it
 * durable with one fdatasync (group commit) and only then reports it
 * written. Rotation, retention and checkpoints happen on the same thread, so
 * the chain has exactly one author. */
#include "quietroom/audit/audit.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_internal.h"
#include "quietroom/audit/audit_ship.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/log.h"

struct audit_log {
    struct audit_file file;           /* writer thread only, after open */
    struct audit_buf buf;             /* writer thread only */
    uint64_t rotate_bytes;
    uint32_t retention_days;
    uint32_t checkpoint_every;
    uint64_t since_checkpoint;        /* writer thread only */
    uint64_t checkpoint_ms;           /* writer thread only */
    uint64_t total;                   /* writer thread only */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;              /* writer: work, or stop */
    pthread_cond_t done;              /* waiters: progress */
    json_t *queue[QR_AUDIT_QUEUE];
    json_t *batch[QR_AUDIT_QUEUE + 1];
    unsigned head, count;
    bool stopping;
    uint64_t enqueued;                /* tickets handed out */
    uint64_t durable;                 /* tickets on disk */
    uint64_t failed_upto;             /* tickets whose write failed */
    uint64_t dropped, dropped_reported;
    struct audit_counters counters;
    struct audit_ship *ship;          /* NULL: not shipped */
    char node[128];
};

/* --- event builders ------------------------------------------------------------ */

json_t *audit_event(const char *type, char action, enum audit_outcome outcome)
{
    char a[2] = {action, '\0'};

    return json_pack("{s:s,s:s,s:i}", "type", type, "action", a, "outcome", (int)outcome);
}

void audit_event_reason(json_t *ev, const char *reason)
{
    if (ev != NULL && reason != NULL)
        json_object_set_new(ev, "reason", json_string(reason));
}

void audit_event_agent(json_t *ev, const char *sub, const char *role, bool requestor,
                       const char *address)
{
    json_t *agents, *a;

    if (ev == NULL || (a = json_object()) == NULL)
        return;
    if ((agents = json_object_get(ev, "agents")) == NULL) {
        agents = json_array();
        json_object_set_new(ev, "agents", agents);
    }
    if (sub != NULL && sub[0] != '\0')
        json_object_set_new(a, "sub", json_string(sub));
    if (role != NULL && role[0] != '\0')
        json_object_set_new(a, "role", json_string(role));
    json_object_set_new(a, "requestor", json_boolean(requestor));
    if (address != NULL && address[0] != '\0')
        json_object_set_new(a, "address", json_string(address));
    json_array_append_new(agents, a);
}

void audit_event_by(json_t *ev, const char *sub, const char *role)
{
    if (ev != NULL)
        json_object_set_new(ev, "by", json_pack("{s:s,s:s}", "sub", sub, "role", role));
}

void audit_event_session(json_t *ev, const char *session, bool part2)
{
    if (ev == NULL || session == NULL)
        return;
    json_object_set_new(ev, "session", json_string(session));
    json_object_set_new(ev, "labels", part2 ? json_pack("[s,s]", "R", "42CFRPart2")
                                            : json_pack("[s]", "R"));
}

void audit_event_period(json_t *ev, uint64_t start_wall_ms, uint64_t end_wall_ms)
{
    char a[32], b[32];

    if (ev != NULL)
        json_object_set_new(ev, "period",
                            json_pack("{s:s,s:s}", "start",
                                      clock_format_utc(start_wall_ms, a, sizeof(a)), "end",
                                      clock_format_utc(end_wall_ms, b, sizeof(b))));
}

void audit_event_detail(json_t *ev, const char *name, json_t *value)
{
    json_t *detail;

    if (ev == NULL) {
        json_decref(value);
        return;
    }
    if ((detail = json_object_get(ev, "detail")) == NULL) {
        detail = json_object();
        json_object_set_new(ev, "detail", detail);
    }
    json_object_set_new(detail, name, value);
}

/* --- queue ------------------------------------------------------------------- */

/* Queues ev; returns its ticket, or 0 if it was lost (queue full, stopped). */
static uint64_t audit__enqueue(struct audit_log *log, json_t *ev, bool wait_for_room)
{
    uint64_t ticket = 0;

    if (ev == NULL)
        return 0;
    json_object_set_new(ev, "time", json_integer((json_int_t)clock_wall_ms()));
    pthread_mutex_lock(&log->lock);
    while (wait_for_room && log->count == QR_AUDIT_QUEUE && !log->stopping)
        pthread_cond_wait(&log->done, &log->lock);
    if (log->count < QR_AUDIT_QUEUE && !log->stopping) {
        log->queue[(log->head + log->count) % QR_AUDIT_QUEUE] = ev;
        log->count++;
        ticket = ++log->enqueued;
        ev = NULL;
        pthread_cond_signal(&log->wake);
    } else {
        log->dropped++;
    }
    pthread_mutex_unlock(&log->lock);
    json_decref(ev);
    return ticket;
}

int audit_emit(struct audit_log *log, json_t *event)
{
    return audit__enqueue(log, event, false) != 0 ? 0 : -1;
}

int audit_write(struct audit_log *log, json_t *event)
{
    uint64_t ticket = audit__enqueue(log, event, true);
    int rc;

    if (ticket == 0)
        return -1;
    pthread_mutex_lock(&log->lock);
    while (log->durable < ticket && log->failed_upto < ticket)
        pthread_cond_wait(&log->done, &log->lock);
    rc = log->durable >= ticket && log->failed_upto < ticket ? 0 : -1;
    pthread_mutex_unlock(&log->lock);
    return rc;
}

void audit_flush(struct audit_log *log)
{
    pthread_mutex_lock(&log->lock);
    uint64_t target = log->enqueued;
    while (log->durable < target && log->failed_upto < target)
        pthread_cond_wait(&log->done, &log->lock);
    pthread_mutex_unlock(&log->lock);
}

void audit_get_counters(struct audit_log *log, struct audit_counters *out)
{
    pthread_mutex_lock(&log->lock);
    *out = log->counters;
    out->dropped = log->dropped;
    pthread_mutex_unlock(&log->lock);
}

bool audit_get_ship_counters(struct audit_log *log, struct audit_ship_counters *out)
{
    if (log == NULL || log->ship == NULL)
        return false;
    audit_ship_get_counters(log->ship, out);
    return true;
}

/* --- writer thread -------------------------------------------------------------- */

/* Writes the buffer and, once it is durable, lets the shipper read it. */
static int audit__commit(struct audit_log *log)
{
    if (audit_file_commit(&log->file, &log->buf) != 0)
        return -1;
    audit_ship_committed(log->ship, log->file.ino, log->file.size);
    return 0;
}

/* Seals a record the writer adds by itself into the current buffer. */
static void audit__own(struct audit_log *log, json_t *ev)
{
    audit_file_seal(&log->file, ev, &log->buf);
}

/* "audit.open" or "audit.close": where the chain comes from or goes to. */
static json_t *audit__boundary(const char *type, const char *key, const char *file,
                               const char *reason)
{
    json_t *ev = audit_event(type, 'E', AUDIT_SUCCESS);

    json_object_set_new(ev, key, file != NULL && file[0] != '\0' ? json_string(file)
                                                                 : json_null());
    audit_event_reason(ev, reason);
    return ev;
}

static void audit__checkpoint_due(struct audit_log *log, uint64_t now_ms)
{
    if (log->since_checkpoint == 0)
        return;
    if (log->since_checkpoint < log->checkpoint_every &&
        now_ms - log->checkpoint_ms < QR_AUDIT_CHECKPOINT_MS)
        return;
    {
        json_t *ev = audit_event("audit.checkpoint", 'E', AUDIT_SUCCESS);

        json_object_set_new(ev, "records", json_integer((json_int_t)log->total));
        audit__own(log, ev);
    }
    log->since_checkpoint = 0;
    log->checkpoint_ms = now_ms;
}

/* Closes the day's (or the full) file and continues the chain in a new
 * one; then applies retention. */
static void audit__rotate(struct audit_log *log)
{
    char rotated[NAME_MAX + 1], err[256] = "";

    /* Stamps have one-second resolution: never rotate onto an existing
     * file; try again on the next round. */
    if (!audit_file_rotation_name(&log->file, rotated, sizeof(rotated)))
        return;
    audit__own(log, audit__boundary("audit.close", "rotated_to", rotated, "rotation"));
    if (audit__commit(log) != 0 ||
        audit_file_rotate(&log->file, rotated, err, sizeof(err)) != 0) {
        log_error("audit: rotation failed: %s", err[0] ? err : strerror(errno));
        return;
    }
    log->counters.rotations++;
    audit__own(log, audit__boundary("audit.open", "previous_file", rotated, "rotation"));
    audit_file_purge(&log->file, log->retention_days, clock_wall_s(), &log->buf);
    if (audit__commit(log) != 0)
        log_error("audit: cannot write after rotation: %s", strerror(errno));
}

/* Takes what is queued (and a note about losses) under the lock. */
static unsigned audit__take(struct audit_log *log)
{
    unsigned n = 0;

    if (log->dropped > log->dropped_reported) {
        json_t *ev = audit_event("audit.overflow", 'E', AUDIT_MINOR_FAILURE);

        json_object_set_new(ev, "lost", json_integer((json_int_t)(log->dropped -
                                                                   log->dropped_reported)));
        log->batch[n++] = ev;
        log->dropped_reported = log->dropped;
    }
    while (log->count > 0) {
        log->batch[n++] = log->queue[log->head];
        log->head = (log->head + 1) % QR_AUDIT_QUEUE;
        log->count--;
    }
    return n;
}

static bool audit__pending(const struct audit_log *log)
{
    return log->count > 0 || log->dropped > log->dropped_reported;
}

static void audit__wait(struct audit_log *log)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += QR_AUDIT_TICK_MS / 1000;
    pthread_cond_timedwait(&log->wake, &log->lock, &ts);
}

/* One round: seal and commit a batch, then the periodic work. */
static void audit__round(struct audit_log *log, unsigned n, uint64_t target)
{
    uint64_t now = clock_mono_ms();
    int rc;

    for (unsigned i = 0; i < n; i++) {
        audit_file_seal(&log->file, log->batch[i], &log->buf);
        log->since_checkpoint++;
        log->total++;
    }
    audit__checkpoint_due(log, now);
    rc = log->buf.len > 0 ? audit__commit(log) : 0;
    if (rc != 0)
        log_error("audit: write failed: %s", strerror(errno));
    pthread_mutex_lock(&log->lock);
    if (rc == 0) {
        log->durable = target;
        log->counters.written += n;
    } else {
        /* Counted as lost, so the next group records that they were. */
        log->failed_upto = target;
        log->counters.write_errors++;
        log->dropped += n;
    }
    pthread_cond_broadcast(&log->done);
    pthread_mutex_unlock(&log->lock);
    if (audit_file_due(&log->file, log->rotate_bytes, clock_wall_s()))
        audit__rotate(log);
}

static void *audit__writer(void *arg)
{
    struct audit_log *log = arg;

    pthread_mutex_lock(&log->lock);
    for (;;) {
        uint64_t target;
        unsigned n;

        if (!audit__pending(log) && !log->stopping)
            audit__wait(log);
        if (!audit__pending(log) && log->stopping)
            break;
        target = log->enqueued;
        n = audit__take(log);
        pthread_mutex_unlock(&log->lock);
        audit__round(log, n, target);
        pthread_mutex_lock(&log->lock);
    }
    pthread_mutex_unlock(&log->lock);
    audit__own(log, audit__boundary("audit.close", "rotated_to", NULL, "stop"));
    if (audit__commit(log) != 0)
        log_error("audit: cannot write the close record: %s", strerror(errno));
    return NULL;
}

/* --- open and close ------------------------------------------------------------- */

/* A torn last line left by a crash: end it so it stays a line of its own,
 * visible to the verifier; the record saying so follows. */
static int audit__mend(struct audit_log *log, size_t torn, char *err, size_t errlen)
{
    struct audit_buf nl = {.data = strdup("\n"), .len = 1, .cap = 1};
    int rc = nl.data ? audit_file_commit(&log->file, &nl) : -1;
    json_t *ev;

    free(nl.data);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", log->file.path, strerror(errno));
        return -1;
    }
    ev = audit_event("audit.recovered", 'E', AUDIT_MINOR_FAILURE);
    audit_event_reason(ev, "torn_last_line");
    json_object_set_new(ev, "torn_bytes", json_integer((json_int_t)torn));
    audit__own(log, ev);
    return 0;
}

/* The records a writer starts with: the opening, then retention. */
static int audit__begin(struct audit_log *log, const char *previous, char *err, size_t errlen)
{
    audit__own(log, audit__boundary("audit.open", "previous_file", previous, "start"));
    audit_file_purge(&log->file, log->retention_days, clock_wall_s(), &log->buf);
    if (audit__commit(log) != 0) {
        snprintf(err, errlen, "%s: %s", log->file.path, strerror(errno));
        return -1;
    }
    return 0;
}

static void audit__free(struct audit_log *log)
{
    audit_ship_stop(log->ship);
    /* Events queued that no writer will take (audit_open failed). */
    for (; log->count > 0; log->count--) {
        json_decref(log->queue[log->head]);
        log->head = (log->head + 1) % QR_AUDIT_QUEUE;
    }
    audit_file_close(&log->file);
    keyring_wipe(&log->file.keys);
    hmac_free(log->file.h);
    free(log->buf.data);
    pthread_cond_destroy(&log->done);
    pthread_cond_destroy(&log->wake);
    pthread_mutex_destroy(&log->lock);
    free(log);
}

struct audit_log *audit_open(const struct audit_config *cfg, char *err, size_t errlen)
{
    struct audit_log *log = calloc(1, sizeof(*log));
    char previous[NAME_MAX + 1];
    uint64_t last_seq;
    size_t torn;

    if (log == NULL)
        return NULL;
    pthread_mutex_init(&log->lock, NULL);
    pthread_cond_init(&log->wake, NULL);
    pthread_cond_init(&log->done, NULL);
    log->file.fd = -1;
    snprintf(log->node, sizeof(log->node), "%s", cfg->node);
    snprintf(log->file.path, sizeof(log->file.path), "%s", cfg->path);
    log->file.keys = *cfg->keys;
    log->file.node = log->node;
    log->file.hash_addresses = cfg->hash_addresses;
    log->rotate_bytes = cfg->rotate_bytes ? cfg->rotate_bytes : QR_AUDIT_ROTATE_BYTES;
    log->retention_days = cfg->retention_days ? cfg->retention_days : QR_AUDIT_RETENTION_DAYS;
    log->checkpoint_every = cfg->checkpoint_every ? cfg->checkpoint_every
                                                  : QR_AUDIT_CHECKPOINT_EVERY;
    log->checkpoint_ms = clock_mono_ms();
    if (keyring_active(cfg->keys) == NULL || (log->file.h = hmac_new(HMAC_SHA256)) == NULL) {
        snprintf(err, errlen, "no audit key");
        goto fail;
    }
    if (audit_file_open(&log->file, &torn, previous, sizeof(previous), err, errlen) != 0)
        goto fail;
    last_seq = log->file.seq;
    if (torn > 0 && audit__mend(log, torn, err, errlen) != 0)
        goto fail;
    /* Shipped from here: this run's records, starting with its opening. */
    if (cfg->ship != NULL && cfg->ship->host[0] != '\0' &&
        (log->ship = audit_ship_start(cfg->ship, cfg->program, cfg->path, log->file.size,
                                      last_seq, log, err, errlen)) == NULL)
        goto fail;
    if (audit__begin(log, previous, err, errlen) != 0)
        goto fail;
    if (pthread_create(&log->thread, NULL, audit__writer, log) != 0) {
        snprintf(err, errlen, "cannot start the audit writer thread");
        goto fail;
    }
    return log;
fail:
    audit__free(log);
    return NULL;
}

void audit_close(struct audit_log *log)
{
    if (log == NULL)
        return;
    audit_ship_quiet(log->ship); /* its records would only be counted as lost */
    pthread_mutex_lock(&log->lock);
    log->stopping = true;
    pthread_cond_signal(&log->wake);
    pthread_cond_broadcast(&log->done);
    pthread_mutex_unlock(&log->lock);
    pthread_join(log->thread, NULL);
    audit__free(log); /* the shipper first delivers what is left */
}
