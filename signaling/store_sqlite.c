/* The embedded store: one SQLite database in the state directory of one
 * machine. Every write is its own transaction, in WAL mode with
 * synchronous=FULL, so a claim or a record is on disk before the call
 * returns and survives kill -9 and a power cut alike. One process owns
 * the database (a lock file beside it): a second copy of the daemon
 * pointed at the same directory stops at start-up instead of serving
 * visits the first one also serves. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "quietroom/base/lockfile.h"
#include "quietroom/base/log.h"

/* How long a statement waits for a lock held by our own reader (a
 * checkpoint): the database has one writer, this process. */
#define STORE_SQLITE_BUSY_MS 2000

enum {
    Q_CLAIM,
    Q_CLAIMED,
    Q_INSERT,
    Q_UPDATE,
    Q_FORGET,
    Q_LOAD,
    Q_FETCH,
    Q_PURGE,
    Q_COUNT,
};

static const char *const store_sqlite__sql[Q_COUNT] = {
    [Q_CLAIM] = "INSERT INTO claims(key, until, sid, who) VALUES (?1, ?2, ?3, ?4) "
                "ON CONFLICT(key) DO NOTHING",
    [Q_CLAIMED] = "SELECT 1 FROM claims WHERE key = ?1",
    [Q_INSERT] = "INSERT INTO visits(key, rec, rev) VALUES (?1, ?2, 1) "
                 "ON CONFLICT(key) DO NOTHING",
    [Q_UPDATE] = "UPDATE visits SET rec = ?2, rev = rev + 1 WHERE key = ?1 AND rev = ?3",
    [Q_FORGET] = "DELETE FROM visits WHERE key = ?1",
    [Q_LOAD] = "SELECT key, rec, rev FROM visits",
    [Q_FETCH] = "SELECT rec, rev FROM visits WHERE key = ?1",
    [Q_PURGE] = "DELETE FROM claims WHERE until < ?1",
};

static const char store_sqlite__schema[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = FULL;"
    "CREATE TABLE IF NOT EXISTS claims ("
    "  key TEXT PRIMARY KEY, until INTEGER NOT NULL, sid TEXT NOT NULL, who TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS claims_until ON claims(until);"
    "CREATE TABLE IF NOT EXISTS visits ("
    "  key TEXT PRIMARY KEY, rec TEXT NOT NULL, rev INTEGER NOT NULL"
    ") WITHOUT ROWID;";

struct store_sqlite {
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    int lock_fd;
};

/* A statement's failure, once per kind of failure and without the data. */
static enum store_result store_sqlite__fail(struct store_sqlite *s, const char *what)
{
    log_error("state store: %s: %s", what, sqlite3_errmsg(s->db));
    return STORE_UNAVAILABLE;
}

/* Runs q to completion (it writes); the rows it changed, or -1. */
static int store_sqlite__step(struct store_sqlite *s, sqlite3_stmt *q)
{
    int rc = sqlite3_step(q), changed = sqlite3_changes(s->db);

    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_DONE ? changed : -1;
}

static enum store_result store_sqlite__claim(void *impl, const char *key, int64_t until_s,
                                             const char *sid, const char *who)
{
    struct store_sqlite *s = impl;
    sqlite3_stmt *q = s->q[Q_CLAIM];
    int changed;

    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, until_s);
    sqlite3_bind_text(q, 3, sid, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, who, -1, SQLITE_STATIC);
    if ((changed = store_sqlite__step(s, q)) < 0)
        return store_sqlite__fail(s, "claim");
    return changed == 1 ? STORE_OK : STORE_TAKEN;
}

static enum store_result store_sqlite__claimed(void *impl, const char *key)
{
    struct store_sqlite *s = impl;
    sqlite3_stmt *q = s->q[Q_CLAIMED];
    int rc;

    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (rc == SQLITE_ROW)
        return STORE_TAKEN;
    return rc == SQLITE_DONE ? STORE_ABSENT : STORE_UNAVAILABLE;
}

static enum store_result store_sqlite__save(void *impl, const char *vkey, const char *rec,
                                            size_t len, uint64_t *rev)
{
    struct store_sqlite *s = impl;
    sqlite3_stmt *q = s->q[*rev == 0 ? Q_INSERT : Q_UPDATE];
    int changed;

    sqlite3_bind_text(q, 1, vkey, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, rec, (int)len, SQLITE_STATIC);
    if (*rev != 0)
        sqlite3_bind_int64(q, 3, (sqlite3_int64)*rev);
    if ((changed = store_sqlite__step(s, q)) < 0)
        return store_sqlite__fail(s, "save");
    if (changed != 1)
        return STORE_CONFLICT;
    (*rev)++;
    return STORE_OK;
}

static enum store_result store_sqlite__forget(void *impl, const char *vkey)
{
    struct store_sqlite *s = impl;
    sqlite3_stmt *q = s->q[Q_FORGET];

    sqlite3_bind_text(q, 1, vkey, -1, SQLITE_STATIC);
    return store_sqlite__step(s, q) < 0 ? store_sqlite__fail(s, "forget") : STORE_OK;
}

static enum store_result store_sqlite__load(void *impl,
                                            int (*each)(void *ctx, const char *vkey,
                                                        const char *rec, size_t len, uint64_t rev),
                                            void *ctx)
{
    struct store_sqlite *s = impl;
    sqlite3_stmt *q = s->q[Q_LOAD];
    int rc;

    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *vkey = (const char *)sqlite3_column_text(q, 0);
        const char *rec = (const char *)sqlite3_column_text(q, 1);
        int len = sqlite3_column_bytes(q, 1);

        if (vkey != NULL && rec != NULL &&
            each(ctx, vkey, rec, (size_t)len, (uint64_t)sqlite3_column_int64(q, 2)) != 0)
            break;
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : store_sqlite__fail(s, "load");
}

static enum store_result store_sqlite__fetch(void *impl, const char *vkey, char **rec,
                                             size_t *len, uint64_t *rev)
{
    struct store_sqlite *s = impl;
    sqlite3_stmt *q = s->q[Q_FETCH];
    enum store_result r = STORE_ABSENT;
    int rc;

    sqlite3_bind_text(q, 1, vkey, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int n = sqlite3_column_bytes(q, 0);
        const void *text = sqlite3_column_text(q, 0);

        r = STORE_UNAVAILABLE;
        if (text != NULL && (*rec = malloc((size_t)n + 1)) != NULL) {
            memcpy(*rec, text, (size_t)n);
            (*rec)[n] = '\0';
            *len = (size_t)n;
            *rev = (uint64_t)sqlite3_column_int64(q, 1);
            r = STORE_OK;
        }
    } else if (rc != SQLITE_DONE) {
        r = store_sqlite__fail(s, "fetch");
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return r;
}

/* One process: it owns every visit. */
static enum store_result store_sqlite__own(void *impl, const char *vkey, const char *node,
                                           uint32_t lease_ms, char *holder, size_t holder_len)
{
    (void)impl, (void)vkey, (void)lease_ms;
    snprintf(holder, holder_len, "%s", node);
    return STORE_OK;
}

static enum store_result store_sqlite__owner(void *impl, const char *vkey, char *holder,
                                             size_t holder_len)
{
    (void)impl, (void)vkey;
    snprintf(holder, holder_len, "%s", "");
    return STORE_OK;
}

static enum store_result store_sqlite__disown(void *impl, const char *vkey, const char *node)
{
    (void)impl, (void)vkey, (void)node;
    return STORE_OK;
}

static void store_sqlite__purge(void *impl, int64_t now_s)
{
    struct store_sqlite *s = impl;
    sqlite3_stmt *q = s->q[Q_PURGE];

    sqlite3_bind_int64(q, 1, now_s);
    if (store_sqlite__step(s, q) < 0)
        store_sqlite__fail(s, "purge");
}

static void store_sqlite__free(void *impl)
{
    struct store_sqlite *s = impl;

    if (s == NULL)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->q[i]);
    sqlite3_close(s->db);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
}

static const struct store_ops store_sqlite__ops = {
    .name = "sqlite",
    .claim = store_sqlite__claim,
    .claimed = store_sqlite__claimed,
    .save = store_sqlite__save,
    .forget = store_sqlite__forget,
    .load = store_sqlite__load,
    .fetch = store_sqlite__fetch,
    .own = store_sqlite__own,
    .owner = store_sqlite__owner,
    .disown = store_sqlite__disown,
    .purge = store_sqlite__purge,
    .free = store_sqlite__free,
};

/* The directory is ours alone (0700): the database holds names. */
static int store_sqlite__dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "state-dir %s: %s", dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
        snprintf(err, errlen, "state-dir %s: not a directory of this user", dir);
        return -1;
    }
    if ((st.st_mode & 0077) != 0)
        log_warn("state-dir %s is readable by others (mode %03o): it holds visit records; "
                 "chmod 700 it", dir, (unsigned)(st.st_mode & 0777));
    return 0;
}

/* Creates the database file 0600 before SQLite does (it would use the
 * umask), and refuses one that is not a plain file of ours. */
static int store_sqlite__file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct stat st;
    int rc = -1;

    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
        snprintf(err, errlen, "%s: not a plain file of this user", path);
    else
        rc = 0;
    close(fd);
    return rc;
}

static int store_sqlite__prepare(struct store_sqlite *s, const char *path, char *err,
                                 size_t errlen)
{
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(s->db, STORE_SQLITE_BUSY_MS) != SQLITE_OK ||
        sqlite3_exec(s->db, store_sqlite__schema, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        return -1;
    }
    for (int i = 0; i < Q_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, store_sqlite__sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &s->q[i], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
            return -1;
        }
    }
    return 0;
}

struct store *store_sqlite_open(const char *dir, char *err, size_t errlen)
{
    struct store *st = calloc(1, sizeof(*st));
    struct store_sqlite *s = calloc(1, sizeof(*s));
    char path[PATH_MAX + 16];

    if (st == NULL || s == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->lock_fd = -1;
    if (store_sqlite__dir(dir, err, errlen) != 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/signal.lock", dir);
    if ((s->lock_fd = lockfile_open(path, "the state directory", err, errlen)) < 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/signal.db", dir);
    if (store_sqlite__file(path, err, errlen) != 0 ||
        store_sqlite__prepare(s, path, err, errlen) != 0)
        goto fail;
    st->ops = &store_sqlite__ops;
    st->impl = s;
    return st;
fail:
    store_sqlite__free(s);
    free(st);
    return NULL;
}
