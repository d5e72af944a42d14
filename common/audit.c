/* Queue plus writer thread. Records are serialised by the writer, which
 * writes each group with one write(2) and makes it durable with fdatasync
 * before it reports the group written. */
#include "quietroom/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quietroom/clock.h"
#include "quietroom/limits.h"
#include "quietroom/log.h"

struct audit_log {
    int fd;
    char *node;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* writer: work or stop */
    pthread_cond_t done;      /* flushers: progress */
    json_t *queue[QR_AUDIT_QUEUE];
    json_t *batch[QR_AUDIT_QUEUE + 1]; /* writer thread only */
    unsigned head, count;
    bool stopping;
    uint64_t seq;             /* writer thread only */
    uint64_t enqueued, durable;
    uint64_t dropped, dropped_reported;
    uint64_t written, write_errors;
};

int audit_emit(struct audit_log *log, json_t *event)
{
    int rc = -1;

    if (event == NULL)
        return -1;
    json_object_set_new(event, "time", json_integer((json_int_t)clock_wall_ms()));
    pthread_mutex_lock(&log->lock);
    if (log->count < QR_AUDIT_QUEUE && !log->stopping) {
        log->queue[(log->head + log->count) % QR_AUDIT_QUEUE] = event;
        log->count++;
        log->enqueued++;
        event = NULL;
        rc = 0;
        pthread_cond_signal(&log->wake);
    } else {
        log->dropped++;
    }
    pthread_mutex_unlock(&log->lock);
    json_decref(event);
    return rc;
}

/* Adds the writer's fields and appends one line to buf. */
static void audit__format(struct audit_log *log, json_t *event, char **buf, size_t *len,
                          size_t *cap)
{
    char stamp[32];
    json_t *t = json_object_get(event, "time");
    char *line;
    size_t n;

    json_object_set_new(event, "seq", json_integer((json_int_t)++log->seq));
    json_object_set_new(event, "node", json_string(log->node));
    clock_format_utc((uint64_t)json_integer_value(t), stamp, sizeof(stamp));
    json_object_set_new(event, "time", json_string(stamp));
    if ((line = json_dumps(event, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
        return;
    n = strlen(line);
    if (*len + n + 1 > *cap) {
        size_t ncap = (*len + n + 1) * 2;
        char *nbuf = realloc(*buf, ncap);

        if (nbuf == NULL) {
            free(line);
            return;
        }
        *buf = nbuf;
        *cap = ncap;
    }
    memcpy(*buf + *len, line, n);
    (*buf)[*len + n] = '\n';
    *len += n + 1;
    free(line);
}

static int audit__write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return fdatasync(fd);
}

/* Takes what is queued (and a note about losses) out under the lock. */
static unsigned audit__take(struct audit_log *log, json_t **batch)
{
    unsigned n = 0;

    if (log->dropped > log->dropped_reported) {
        batch[n++] = json_pack("{s:s,s:I,s:I}", "type", "audit.overflow", "time",
                               (json_int_t)clock_wall_ms(), "lost",
                               (json_int_t)(log->dropped - log->dropped_reported));
        log->dropped_reported = log->dropped;
    }
    while (log->count > 0 && n < QR_AUDIT_QUEUE + 1) {
        batch[n++] = log->queue[log->head];
        log->head = (log->head + 1) % QR_AUDIT_QUEUE;
        log->count--;
    }
    return n;
}

static bool audit__pending(const struct audit_log *log)
{
    return log->count > 0 || log->dropped > log->dropped_reported;
}

static void *audit__writer(void *arg)
{
    struct audit_log *log = arg;
    json_t **batch = log->batch;
    char *buf = NULL;
    size_t cap = 0;

    pthread_mutex_lock(&log->lock);
    for (;;) {
        uint64_t target;
        unsigned n;
        size_t len = 0;
        int rc;

        while (!audit__pending(log) && !log->stopping)
            pthread_cond_wait(&log->wake, &log->lock);
        if (!audit__pending(log) && log->stopping)
            break;
        target = log->enqueued;
        n = audit__take(log, batch);
        pthread_mutex_unlock(&log->lock);

        /* Group commit: whatever arrived while the last fsync ran goes out
         * in this one. */
        for (unsigned i = 0; i < n; i++) {
            if (batch[i] != NULL)
                audit__format(log, batch[i], &buf, &len, &cap);
            json_decref(batch[i]);
        }
        rc = audit__write_all(log->fd, buf, len);

        pthread_mutex_lock(&log->lock);
        if (rc == 0)
            log->written += n;
        else
            log->write_errors++;
        log->durable = target;
        pthread_cond_broadcast(&log->done);
        if (rc != 0)
            log_error("audit: write failed: %s", strerror(errno));
    }
    log->durable = log->enqueued;
    pthread_cond_broadcast(&log->done);
    pthread_mutex_unlock(&log->lock);
    free(buf);
    return NULL;
}

struct audit_log *audit_open(const char *path, const char *node, char *err, size_t errlen)
{
    struct audit_log *log = calloc(1, sizeof(*log));
    struct stat st;

    if (log == NULL || (log->node = strdup(node)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail_alloc;
    }
    log->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (log->fd < 0 || fstat(log->fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail_open;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        snprintf(err, errlen, "%s: audit log must be accessible to its owner only (chmod 600)",
                 path);
        goto fail_file;
    }
    pthread_mutex_init(&log->lock, NULL);
    pthread_cond_init(&log->wake, NULL);
    pthread_cond_init(&log->done, NULL);
    if (pthread_create(&log->thread, NULL, audit__writer, log) != 0) {
        snprintf(err, errlen, "cannot start audit writer thread");
        goto fail_thread;
    }
    return log;
fail_thread:
    pthread_cond_destroy(&log->done);
    pthread_cond_destroy(&log->wake);
    pthread_mutex_destroy(&log->lock);
fail_file:
    close(log->fd);
fail_open:
    free(log->node);
fail_alloc:
    free(log);
    return NULL;
}

void audit_flush(struct audit_log *log)
{
    pthread_mutex_lock(&log->lock);
    uint64_t target = log->enqueued;
    while (log->durable < target)
        pthread_cond_wait(&log->done, &log->lock);
    pthread_mutex_unlock(&log->lock);
}

void audit_get_counters(struct audit_log *log, struct audit_counters *out)
{
    pthread_mutex_lock(&log->lock);
    out->written = log->written;
    out->dropped = log->dropped;
    out->write_errors = log->write_errors;
    pthread_mutex_unlock(&log->lock);
}

void audit_close(struct audit_log *log)
{
    if (log == NULL)
        return;
    pthread_mutex_lock(&log->lock);
    log->stopping = true;
    pthread_cond_signal(&log->wake);
    pthread_mutex_unlock(&log->lock);
    pthread_join(log->thread, NULL);
    pthread_cond_destroy(&log->done);
    pthread_cond_destroy(&log->wake);
    pthread_mutex_destroy(&log->lock);
    close(log->fd);
    free(log->node);
    free(log);
}
