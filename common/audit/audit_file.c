/* Audit files: where a chain stands after a restart or a crash, sealing
 * lines, durable appends, daily and size rotation, retention. */
#include "audit_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "quietroom/audit/audit.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/lockfile.h"

#define AUDIT_ADDRESS_LABEL "quietroom audit address\n"
/* Opens of the active file before giving up, each losing a race with a
 * rotation (which takes microseconds, once a day or so). */
#define AUDIT_LOCK_TRIES 8

int audit_utc_day(uint64_t unix_s)
{
    time_t t = (time_t)unix_s;
    struct tm tm;

    gmtime_r(&t, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

/* The last record in buf[0..len) whose seq and mac can be read; *torn gets
 * the length of an unterminated tail. Returns 0 if found, -1 if not. */
static int audit_file__last_record(const char *buf, size_t len, struct audit_file *f,
                                   size_t *torn)
{
    size_t end = len;

    while (end > 0 && buf[end - 1] != '\n')
        end--;
    *torn = len - end;
    while (end > 0) {
        size_t start = end - 1;
        struct audit_line line;

        while (start > 0 && buf[start - 1] != '\n')
            start--;
        audit_record_open(buf + start, end - 1 - start, &f->keys, f->h, &line);
        if (line.seq > 0) {
            f->seq = line.seq;
            memcpy(f->prev, line.mac, AUDIT_MAC_B64);
            audit_line_free(&line);
            return 0;
        }
        audit_line_free(&line);
        end = start;
    }
    return -1;
}

/* Reads where the chain of file `path` stands. Returns 0 if found, 1 if the
 * file is empty, 2 if it holds only a torn line (*torn its length), -1 with
 * err. */
static int audit_file__tail(struct audit_file *f, const char *path, size_t *torn, char *err,
                            size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    size_t want;
    char *buf = NULL;
    int rc = -1;

    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (st.st_size == 0) {
        rc = 1;
        goto out;
    }
    want = (size_t)st.st_size < QR_AUDIT_TAIL_SCAN ? (size_t)st.st_size : QR_AUDIT_TAIL_SCAN;
    if ((buf = malloc(want)) == NULL ||
        pread(fd, buf, want, st.st_size - (off_t)want) != (ssize_t)want) {
        snprintf(err, errlen, "%s: cannot read its end", path);
        goto out;
    }
    if (audit_file__last_record(buf, want, f, torn) != 0) {
        /* A file that is nothing but one unfinished line: a crash while
         * writing its first record. The chain stands where it stood. */
        if (*torn == (size_t)st.st_size) {
            rc = 2;
            goto out;
        }
        snprintf(err, errlen, "%s: no sealed record in its last %zu bytes; move it aside", path,
                 want);
        goto out;
    }
    rc = 0;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

static bool audit_file__is_rotated(const char *base, const char *name)
{
    size_t n = strlen(base);

    return strncmp(name, base, n) == 0 && name[n] == '.' &&
           strlen(name + n + 1) == AUDIT_STAMP_LEN - 1 && name[n + 9] == 'T' &&
           name[n + AUDIT_STAMP_LEN - 1] == 'Z';
}

/* The newest rotated file of this log (stamps sort as text), or "". */
static void audit_file__newest_rotated(const struct audit_file *f, char *name, size_t len)
{
    DIR *d = opendir(f->dir);
    struct dirent *e;

    name[0] = '\0';
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (audit_file__is_rotated(f->base, e->d_name) && strcmp(e->d_name, name) > 0)
            snprintf(name, len, "%s", e->d_name);
    }
    if (d != NULL)
        closedir(d);
}

/* Splits the path; the base name must leave room for a rotation stamp. */
static int audit_file__split(struct audit_file *f)
{
    const char *slash = strrchr(f->path, '/');
    const char *base = slash ? slash + 1 : f->path;
    size_t dlen = slash ? (size_t)(slash - f->path) : 0;
    size_t blen = strlen(base);

    if (blen == 0 || blen + 1 + AUDIT_STAMP_LEN > NAME_MAX)
        return -1;
    memcpy(f->base, base, blen + 1);
    if (slash == NULL)
        strcpy(f->dir, ".");
    else if (dlen == 0)
        strcpy(f->dir, "/");
    else {
        memcpy(f->dir, f->path, dlen);
        f->dir[dlen] = '\0';
    }
    return 0;
}

/* A new, empty active file that is locked before anyone can open it: made
 * under a temporary name, locked, then put in place by link (fails if the
 * name exists: -2, try again) or by rename over the old one (replace).
 * Returns the fd, or -1 with err. */
static int audit_file__create_locked(struct audit_file *f, bool replace, char *err,
                                     size_t errlen)
{
    char tmp[PATH_MAX + NAME_MAX + 32];
    int fd, e;

    snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.new", f->dir, f->base, (long)getpid());
    unlink(tmp); /* left by a crash of a process with our pid */
    if ((fd = open(tmp, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0 ||
        flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    if ((replace ? rename(tmp, f->path) : link(tmp, f->path)) != 0) {
        e = errno;
        snprintf(err, errlen, "%s: %s", f->path, strerror(e));
        unlink(tmp);
        close(fd);
        return !replace && e == EEXIST ? -2 : -1;
    }
    if (!replace)
        unlink(tmp);
    return fd;
fail:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    return -1;
}

/* Opens the active file for appending with an exclusive lock held for as
 * long as it is the active file, so that a second process configured with
 * the same log refuses to start instead of interleaving its records with
 * ours (a broken chain: a false compliance incident). */
static int audit_file__acquire(struct audit_file *f, char *err, size_t errlen)
{
    char what[PATH_MAX + 16];

    snprintf(what, sizeof(what), "audit log %s", f->path);
    for (int attempt = 0; attempt < AUDIT_LOCK_TRIES; attempt++) {
        struct stat held, named;
        int fd = open(f->path, O_WRONLY | O_APPEND | O_CLOEXEC);

        if (fd < 0 && errno == ENOENT) {
            if ((fd = audit_file__create_locked(f, false, err, errlen)) == -2)
                continue;
            if (fd < 0)
                return -1;
        } else if (fd < 0) {
            snprintf(err, errlen, "%s: %s", f->path, strerror(errno));
            return -1;
        } else if (lockfile_try(fd, what, err, errlen) != 0) {
            close(fd);
            return -1;
        }
        /* Rotated away between our open and our lock: take the new one. */
        if (fstat(fd, &held) == 0 && stat(f->path, &named) == 0 && held.st_dev == named.st_dev &&
            held.st_ino == named.st_ino) {
            f->fd = fd;
            return 0;
        }
        close(fd);
    }
    snprintf(err, errlen, "%s: replaced again and again while opening it", f->path);
    return -1;
}

/* A crash between rotation's link and rename leaves the active name on the
 * rotated file. We hold the lock on it, so no rotation is under way: give
 * the active name a new, empty file; the chain goes on from the rotated
 * one. */
static int audit_file__heal(struct audit_file *f, char *err, size_t errlen)
{
    char rotated[NAME_MAX + 1], rpath[PATH_MAX + NAME_MAX + 2];
    struct stat a, r;
    int fd;

    audit_file__newest_rotated(f, rotated, sizeof(rotated));
    snprintf(rpath, sizeof(rpath), "%s/%s", f->dir, rotated);
    if (rotated[0] == '\0' || fstat(f->fd, &a) != 0 || stat(rpath, &r) != 0 ||
        a.st_dev != r.st_dev || a.st_ino != r.st_ino)
        return 0;
    if ((fd = audit_file__create_locked(f, true, err, errlen)) < 0)
        return -1;
    close(f->fd);
    f->fd = fd;
    return 0;
}

/* The active file is open and locked: check it and note where it stands. */
static int audit_file__ready(struct audit_file *f, char *err, size_t errlen)
{
    struct stat st;

    if (fstat(f->fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", f->path, strerror(errno));
        return -1;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        snprintf(err, errlen, "%s: audit log must be accessible to its owner only (chmod 600)",
                 f->path);
        return -1;
    }
    f->size = (uint64_t)st.st_size;
    f->ino = st.st_ino;
    f->day = audit_utc_day(clock_wall_s());
    return 0;
}

int audit_file_open(struct audit_file *f, size_t *torn, char *previous, size_t plen, char *err,
                    size_t errlen)
{
    char rotated[NAME_MAX + 1], rpath[PATH_MAX + NAME_MAX + 2];
    int rc;

    f->fd = -1;
    f->seq = 0;
    memcpy(f->prev, AUDIT_GENESIS, AUDIT_MAC_B64);
    *torn = 0;
    previous[0] = '\0';
    if (audit_file__split(f) != 0) {
        snprintf(err, errlen, "audit log path: the file name is empty or too long");
        return -1;
    }
    if (audit_file__acquire(f, err, errlen) != 0 || audit_file__heal(f, err, errlen) != 0 ||
        audit_file__ready(f, err, errlen) != 0)
        return -1;
    if ((rc = audit_file__tail(f, f->path, torn, err, errlen)) < 0)
        return -1;
    if (rc != 0) {
        /* No record in the active file: a crash between rotation's rename
         * and the first record of the new file leaves the chain in the
         * newest rotated file. */
        size_t active_torn = rc == 2 ? *torn : 0, ignored;

        audit_file__newest_rotated(f, rotated, sizeof(rotated));
        snprintf(rpath, sizeof(rpath), "%s/%s", f->dir, rotated);
        if (rotated[0] != '\0') {
            if (audit_file__tail(f, rpath, &ignored, err, errlen) < 0)
                return -1;
            snprintf(previous, plen, "%s", rotated);
        }
        *torn = active_torn; /* a rotated file is never appended to again */
    }
    return 0;
}

/* Replaces each agent's address with a keyed hash: records can still be
 * correlated with each other, not with a person's IP address. */
static void audit_file__hash_addresses(struct audit_file *f, json_t *ev)
{
    const struct keyring_key *key = keyring_active(&f->keys);
    json_t *agents = json_object_get(ev, "agents"), *agent;
    size_t i;

    json_array_foreach(agents, i, agent)
    {
        const char *addr = json_string_value(json_object_get(agent, "address"));
        uint8_t mac[HMAC_SHA256_LEN];
        char hex[2 + 16 + 1] = "h:";

        if (addr == NULL || hmac_begin(f->h, key->secret, key->len) != 0 ||
            hmac_update(f->h, AUDIT_ADDRESS_LABEL, strlen(AUDIT_ADDRESS_LABEL)) != 0 ||
            hmac_update(f->h, addr, strlen(addr)) != 0 || hmac_end(f->h, mac) != 0)
            continue;
        for (int b = 0; b < 8; b++)
            snprintf(hex + 2 + 2 * b, 3, "%02x", mac[b]);
        json_object_set_new(agent, "address", json_string(hex));
    }
}

static int audit_file__append(struct audit_buf *b, const char *line, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = (b->len + len) * 2;
        char *data = realloc(b->data, cap);

        if (data == NULL)
            return -1;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, line, len);
    b->len += len;
    return 0;
}

int audit_file_seal(struct audit_file *f, json_t *ev, struct audit_buf *b)
{
    char stamp[32], mac[AUDIT_MAC_B64], *line;
    json_t *t = json_object_get(ev, "time");
    size_t len;
    int rc = -1;

    if (!json_is_string(t))
        json_object_set_new(ev, "time",
                            json_string(clock_format_utc(json_is_integer(t)
                                                             ? (uint64_t)json_integer_value(t)
                                                             : clock_wall_ms(),
                                                         stamp, sizeof(stamp))));
    json_object_set_new(ev, "node", json_string(f->node));
    if (f->hash_addresses)
        audit_file__hash_addresses(f, ev);
    if (b->len == 0) {
        b->start_seq = f->seq;
        memcpy(b->start_prev, f->prev, AUDIT_MAC_B64);
    }
    line = audit_record_seal(ev, f->seq + 1, keyring_active(&f->keys), f->prev, f->h, mac, &len);
    if (line != NULL && audit_file__append(b, line, len) == 0) {
        f->seq++;
        memcpy(f->prev, mac, AUDIT_MAC_B64);
        rc = 0;
    }
    free(line);
    json_decref(ev);
    return rc;
}

int audit_file_commit(struct audit_file *f, struct audit_buf *b)
{
    size_t off = 0;

    while (off < b->len) {
        ssize_t n = write(f->fd, b->data + off, b->len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* A disk that filled up mid-group must not leave half a line for
             * the next group to be glued onto. */
            int saved = errno ? errno : ENOSPC;

            if (off > 0 && ftruncate(f->fd, (off_t)f->size) != 0)
                saved = errno;
            f->seq = b->start_seq;
            memcpy(f->prev, b->start_prev, AUDIT_MAC_B64);
            b->len = 0;
            errno = saved;
            return -1;
        }
        off += (size_t)n;
    }
    f->size += b->len;
    b->len = 0;
    /* The bytes are in the file: if only the sync fails the records stay,
     * but nobody is told they are durable. */
    return fdatasync(f->fd);
}

bool audit_file_due(const struct audit_file *f, uint64_t rotate_bytes, uint64_t now_s)
{
    return f->size >= rotate_bytes || audit_utc_day(now_s) != f->day;
}

bool audit_file_rotation_name(const struct audit_file *f, char *name, size_t len)
{
    char stamp[AUDIT_STAMP_LEN + 1], path[PATH_MAX + NAME_MAX + 2];
    time_t now = (time_t)clock_wall_s();
    struct tm tm;

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(name, len, "%s.%s", f->base, stamp);
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    return access(path, F_OK) != 0;
}

/* link, then rename: the active name always exists and is always locked
 * by us (the old file until the new one is in place), so a second process
 * can never slip in between. */
int audit_file_rotate(struct audit_file *f, const char *rotated, char *err, size_t errlen)
{
    char to[PATH_MAX + NAME_MAX + 2];
    int fd;

    snprintf(to, sizeof(to), "%s/%s", f->dir, rotated);
    if (fsync(f->fd) != 0) {
        snprintf(err, errlen, "%s: %s", f->path, strerror(errno));
        return -1;
    }
    if (link(f->path, to) != 0) {
        snprintf(err, errlen, "link %s: %s", to, strerror(errno));
        return -1;
    }
    if ((fd = audit_file__create_locked(f, true, err, errlen)) < 0) {
        unlink(to); /* as before: the active file goes on */
        return -1;
    }
    close(f->fd);
    f->fd = fd;
    return audit_file__ready(f, err, errlen);
}

/* First and last record of a rotated file, for the purge record. */
static int audit_file__range(struct audit_file *f, const char *path, uint64_t *first,
                             uint64_t *last, char *last_mac)
{
    struct audit_file probe = {.keys = f->keys, .h = f->h};
    char head[8192], err[64];
    struct audit_line line;
    size_t torn, n;
    ssize_t got;
    int fd;

    if (audit_file__tail(&probe, path, &torn, err, sizeof(err)) != 0)
        return -1;
    *last = probe.seq;
    memcpy(last_mac, probe.prev, AUDIT_MAC_B64);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    got = read(fd, head, sizeof(head));
    close(fd);
    if (got <= 0)
        return -1;
    for (n = 0; n < (size_t)got && head[n] != '\n'; n++)
        ;
    audit_record_open(head, n, &f->keys, f->h, &line);
    *first = line.seq;
    audit_line_free(&line);
    return 0;
}

static uint64_t audit_file__stamp_time(const char *stamp)
{
    struct tm tm = {0};

    if (strptime(stamp, "%Y%m%dT%H%M%SZ", &tm) == NULL)
        return 0;
    return (uint64_t)timegm(&tm);
}

int audit_file_purge(struct audit_file *f, uint32_t days, uint64_t now_s, struct audit_buf *b)
{
    DIR *d = opendir(f->dir);
    struct dirent *e;
    int purged = 0;

    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[PATH_MAX + NAME_MAX + 2], mac[AUDIT_MAC_B64];
        uint64_t when, first = 0, last = 0;
        json_t *ev;

        if (!audit_file__is_rotated(f->base, e->d_name))
            continue;
        when = audit_file__stamp_time(e->d_name + strlen(f->base) + 1);
        if (when == 0 || now_s < when || now_s - when < (uint64_t)days * 86400u)
            continue;
        snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
        if (audit_file__range(f, path, &first, &last, mac) != 0 || unlink(path) != 0)
            continue;
        ev = audit_event("audit.purge", 'D', AUDIT_SUCCESS);
        audit_event_reason(ev, "retention");
        json_object_set_new(ev, "file", json_string(e->d_name));
        json_object_set_new(ev, "first_seq", json_integer((json_int_t)first));
        json_object_set_new(ev, "last_seq", json_integer((json_int_t)last));
        json_object_set_new(ev, "last_mac", json_string(mac));
        audit_file_seal(f, ev, b);
        purged++;
    }
    if (d != NULL)
        closedir(d);
    return purged;
}

void audit_file_close(struct audit_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}
