/* Reading the audit files back for the shipper: complete lines only, never
 * past what the writer published as durable, and across rotations in the
 * order the chain runs.
 *
 * A rotation links the active file to PATH.STAMP and puts a new file at
 * PATH whose first record is an "audit.open" naming the file it continues
 * ("previous_file"). The reader keeps its descriptor on the file it reads,
 * so a rename does not disturb it; at the end of a file that is no longer
 * PATH it goes to the next rotated file (the smallest stamp after its own)
 * or to PATH, and takes it only if that file's first record continues the
 * one just read: a shipper that fell behind over several rotations reads
 * every file, none skipped. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "audit_ship_internal.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/log.h"

/* "YYYYMMDDTHHMMSSZ" */
#define SHIP_STAMP_LEN 16

int ship_reader_init(struct ship_reader *r, const char *path, uint64_t from, char *err,
                     size_t errlen)
{
    const char *slash = strrchr(path, '/');
    struct stat st;

    memset(r, 0, sizeof(*r));
    r->fd = -1;
    snprintf(r->path, sizeof(r->path), "%s", path);
    if (slash == NULL)
        snprintf(r->dir, sizeof(r->dir), ".");
    else
        snprintf(r->dir, sizeof(r->dir), "%.*s", (int)(slash - path), path);
    snprintf(r->base, sizeof(r->base), "%s", slash ? slash + 1 : path);
    if ((r->buf = malloc(QR_AUDIT_SHIP_READ)) == NULL ||
        (r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(r->fd, &st) != 0) {
        snprintf(err, errlen, "audit-syslog: cannot read %s back: %s", path, strerror(errno));
        return -1;
    }
    r->cap = QR_AUDIT_SHIP_READ;
    r->ino = st.st_ino;
    r->off = from;
    return 0;
}

void ship_reader_free(struct ship_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    r->fd = -1;
    r->buf = NULL;
}

bool ship_reader_caught_up(const struct ship_reader *r, ino_t pub_ino, uint64_t pub_size)
{
    return r->ino == pub_ino && r->off + r->pos >= pub_size;
}

/* The name (PATH's base plus a stamp) the file with inode ino has now. */
static bool ship_reader__name_of(const struct ship_reader *r, ino_t ino, char *name, size_t len)
{
    size_t blen = strlen(r->base);
    DIR *d = opendir(r->dir);
    struct dirent *e;
    bool found = false;

    while (d != NULL && !found && (e = readdir(d)) != NULL) {
        struct stat st;

        if (strncmp(e->d_name, r->base, blen) != 0 || e->d_name[blen] != '.' ||
            strlen(e->d_name) != blen + 1 + SHIP_STAMP_LEN ||
            fstatat(dirfd(d), e->d_name, &st, 0) != 0 || st.st_ino != ino)
            continue;
        snprintf(name, len, "%s", e->d_name);
        found = true;
    }
    if (d != NULL)
        closedir(d);
    return found;
}

/* The rotated file that comes after `after` (the smallest name above it),
 * or "" if there is none. */
static void ship_reader__after(const struct ship_reader *r, const char *after, char *next,
                               size_t len)
{
    size_t blen = strlen(r->base);
    DIR *d = opendir(r->dir);
    struct dirent *e;

    next[0] = '\0';
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, r->base, blen) != 0 || e->d_name[blen] != '.' ||
            strlen(e->d_name) != blen + 1 + SHIP_STAMP_LEN || strcmp(e->d_name, after) <= 0)
            continue;
        if (next[0] == '\0' || strcmp(e->d_name, next) < 0)
            snprintf(next, len, "%s", e->d_name);
    }
    if (d != NULL)
        closedir(d);
}

/* True if the first line of fd is the audit.open that continues `prev`. */
static bool ship_reader__continues(int fd, const char *prev)
{
    char head[4096];
    ssize_t n = pread(fd, head, sizeof(head) - 1, 0);
    char *nl = n > 0 ? memchr(head, '\n', (size_t)n) : NULL;
    json_t *rec = nl ? json_loadb(head, (size_t)(nl - head), 0, NULL) : NULL;
    const char *type = json_string_value(json_object_get(rec, "type"));
    const char *from = json_string_value(json_object_get(rec, "previous_file"));
    bool ok = type != NULL && strcmp(type, "audit.open") == 0 && from != NULL &&
              strcmp(from, prev) == 0;

    json_decref(rec);
    return ok;
}

/* Reads fd (inode ino) from its start from now on. */
static void ship_reader__switch(struct ship_reader *r, int fd, ino_t ino)
{
    close(r->fd);
    r->fd = fd;
    r->ino = ino;
    r->off = 0;
    r->len = r->pos = 0;
    r->skipping = false;
}

/* At the end of a rotated file: moves on to the file after it. 0 if it
 * did, -1 if that file is not there yet (try again later). */
static int ship_reader__next(struct ship_reader *r)
{
    char name[NAME_MAX + 1], next[NAME_MAX + 1], path[PATH_MAX + NAME_MAX + 2];
    struct stat st;
    int fd;

    if (!ship_reader__name_of(r, r->ino, name, sizeof(name))) {
        /* Gone (deleted by hand?): PATH is all that is left to read. */
        log_warn("audit-syslog: the rotated file being read back is gone; going on with %s",
                 r->path);
        name[0] = '\0';
    }
    ship_reader__after(r, name, next, sizeof(next));
    if (next[0] != '\0')
        snprintf(path, sizeof(path), "%s/%s", r->dir, next);
    else
        snprintf(path, sizeof(path), "%s", r->path);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    if (fstat(fd, &st) != 0 || st.st_ino == r->ino ||
        (name[0] != '\0' && !ship_reader__continues(fd, name))) {
        close(fd);
        return -1;
    }
    ship_reader__switch(r, fd, st.st_ino);
    return 0;
}

/* Drops what was consumed from the buffer, keeping a partial line. */
static void ship_reader__compact(struct ship_reader *r)
{
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->off += r->pos;
    r->len -= r->pos;
    r->pos = 0;
}

/* Makes room to read more: grows the buffer, or gives up on a line too
 * long to be a record (skipped to its end, reported once). */
static void ship_reader__room(struct ship_reader *r)
{
    size_t cap = r->cap * 2;
    char *b;

    if (r->len < r->cap)
        return;
    if (cap <= QR_AUDIT_SHIP_LINE_MAX && (b = realloc(r->buf, cap)) != NULL) {
        r->buf = b;
        r->cap = cap;
        return;
    }
    if (!r->skipping)
        log_error("audit-syslog: a line of %s is longer than %d bytes: not shipped", r->path,
                  QR_AUDIT_SHIP_LINE_MAX);
    r->skipping = true;
    r->pos = r->len;
    ship_reader__compact(r);
}

/* Reads more below limit. 1 if it got bytes, 0 at the limit or end, -1. */
static int ship_reader__fill(struct ship_reader *r, uint64_t limit)
{
    uint64_t at = r->off + r->len;
    size_t want = r->cap - r->len;
    ssize_t n;

    if (at >= limit)
        return 0;
    if (limit - at < want)
        want = (size_t)(limit - at);
    do
        n = pread(r->fd, r->buf + r->len, want, (off_t)at);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n < 0 ? -1 : 0;
    r->len += (size_t)n;
    return 1;
}

int ship_reader_line(struct ship_reader *r, ino_t pub_ino, uint64_t pub_size, const char **line,
                     size_t *len)
{
    for (;;) {
        char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
        bool rotated = r->ino != pub_ino;
        int got;

        if (nl != NULL) {
            size_t n = (size_t)(nl - (r->buf + r->pos));

            *line = r->buf + r->pos;
            *len = n;
            r->pos += n + 1;
            if (r->skipping) { /* the end of a line too long to ship */
                r->skipping = false;
                continue;
            }
            return 1;
        }
        ship_reader__compact(r);
        ship_reader__room(r);
        got = ship_reader__fill(r, rotated ? UINT64_MAX : pub_size);
        if (got < 0)
            return -1;
        if (got > 0)
            continue;
        if (!rotated)
            return 0;
        /* A rotated file read to its end (the writer only rotates after its
         * last commit there): go on with the next one. What is left is not
         * a line: the writer never leaves one unfinished. */
        if (r->len > 0) {
            log_error("audit-syslog: %zu bytes without a newline at the end of a rotated file: "
                      "not shipped", r->len);
            r->len = r->pos = 0;
        }
        if (ship_reader__next(r) != 0)
            return 0;
    }
}

void ship_reader_unread(struct ship_reader *r, size_t len)
{
    r->pos -= len + 1;
}

/* --- resuming where the last run stopped ----------------------------------------------------- */

/* The seq a sealed line claims, 0 if none: the seal's members come last
 * (,"seq":N,"kid":K,"prev":...,"mac":...), so the last ,"seq": is its. */
static uint64_t ship_reader__seq(const char *line, size_t len)
{
    static const char key[] = ",\"seq\":";
    const size_t klen = sizeof(key) - 1;
    const char *p = NULL;
    uint64_t v = 0;

    for (size_t i = len >= klen ? len - klen + 1 : 0; i > 0 && p == NULL; i--) {
        if (memcmp(line + i - 1, key, klen) == 0)
            p = line + i - 1;
    }
    if (p == NULL)
        return 0;
    p++; /* the comma */
    for (p += klen - 1; p < line + len && *p >= '0' && *p <= '9'; p++)
        v = v * 10 + (uint64_t)(*p - '0');
    return v;
}

/* The seq of the first record of path, 0 if it has none. */
static uint64_t ship_reader__first_seq(const char *path)
{
    char head[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? pread(fd, head, sizeof(head), 0) : -1;
    char *nl = n > 0 ? memchr(head, '\n', (size_t)n) : NULL;

    if (fd >= 0)
        close(fd);
    return nl ? ship_reader__seq(head, (size_t)(nl - head)) : 0;
}

/* The file of the chain where seq after+1 is, oldest to newest: the last
 * rotated file whose first record is not beyond it, else PATH. */
static void ship_reader__file_for(const struct ship_reader *r, uint64_t after, char *path,
                                  size_t len)
{
    char name[NAME_MAX + 1] = "", next[NAME_MAX + 1];

    snprintf(path, len, "%s", r->path);
    for (;;) {
        char candidate[PATH_MAX + NAME_MAX + 2];
        uint64_t first;

        ship_reader__after(r, name, next, sizeof(next));
        if (next[0] == '\0')
            return;
        snprintf(candidate, sizeof(candidate), "%s/%s", r->dir, next);
        first = ship_reader__first_seq(candidate);
        if (first > after + 1)
            return; /* the one before (already in path) or PATH */
        if (first != 0)
            snprintf(path, len, "%s", candidate);
        snprintf(name, sizeof(name), "%s", next);
    }
}

int ship_reader_resume(struct ship_reader *r, uint64_t after, ino_t pub_ino, uint64_t pub_size)
{
    char path[PATH_MAX + NAME_MAX + 2];
    struct stat st;
    const char *line;
    size_t len;
    int fd, got;

    ship_reader__file_for(r, after, path, sizeof(path));
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    ship_reader__switch(r, fd, st.st_ino);
    /* Up to the first record after `after`; the end of what is published if
     * none is (everything was shipped). */
    while ((got = ship_reader_line(r, pub_ino, pub_size, &line, &len)) > 0) {
        if (ship_reader__seq(line, len) > after) {
            ship_reader_unread(r, len);
            return 0;
        }
    }
    return got < 0 ? -1 : 0;
}
