/* The SQLite store on real files: claims are single-use and outlive the
 * handle, records keep revisions and refuse stale writers, the directory
 * and database are private, a second process is kept off, and a full disk
 * fails closed (a claim that cannot be written is never granted). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"

struct fixture {
    char dir[64];
    char state[96];
    struct store *st;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];

    snprintf(f->dir, sizeof(f->dir), "/tmp/qr-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
    if ((f->st = store_sqlite_open(f->state, err, sizeof(err))) == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    store_free(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void reopen(struct fixture *f)
{
    char err[256];

    store_free(f->st);
    f->st = store_sqlite_open(f->state, err, sizeof(err));
    if (f->st == NULL)
        fail_msg("reopen: %s", err);
}

static void test_claim_key(void **state)
{
    char a[STORE_KEY_LEN], b[STORE_KEY_LEN], c[STORE_KEY_LEN];

    (void)state;
    assert_int_equal(store_claim_key("https://ehr.example", "jti-1", a), 0);
    assert_int_equal(store_claim_key("https://ehr.example", "jti-1", b), 0);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 64);
    assert_int_equal(strspn(a, "0123456789abcdef"), 64);
    /* The split between iss and jti is part of the key. */
    assert_int_equal(store_claim_key("ab", "c", b), 0);
    assert_int_equal(store_claim_key("a", "bc", c), 0);
    assert_string_not_equal(b, c);
    assert_string_not_equal(a, b);
}

static void test_claim_once_and_durable(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;

    assert_int_equal(store_claim(st, "k1", 2000, "visit-1", "p1"), STORE_OK);
    assert_int_equal(store_claim(st, "k1", 2000, "visit-1", "p2"), STORE_TAKEN);
    assert_int_equal(store_claim(st, "k2", 2000, "visit-1", "p2"), STORE_OK);
    reopen(f);
    assert_int_equal(store_claim(f->st, "k1", 2000, "visit-1", "p3"), STORE_TAKEN);
    /* Purging drops only claims whose until has passed. */
    assert_int_equal(store_claim(f->st, "old", 1000, "visit-0", "p1"), STORE_OK);
    store_purge(f->st, 1500);
    assert_int_equal(store_claim(f->st, "k1", 2000, "visit-1", "p3"), STORE_TAKEN);
    assert_int_equal(store_claim(f->st, "old", 3000, "visit-0", "p1"), STORE_OK);
}

struct seen {
    unsigned n;
    char sid[4][64];
    char rec[4][64];
    uint64_t rev[4];
};

static int collect(void *ctx, const char *sid, const char *rec, size_t len, uint64_t rev)
{
    struct seen *s = ctx;

    assert_true(s->n < 4);
    snprintf(s->sid[s->n], sizeof(s->sid[0]), "%s", sid);
    snprintf(s->rec[s->n], sizeof(s->rec[0]), "%.*s", (int)len, rec);
    s->rev[s->n++] = rev;
    return 0;
}

static void test_records_and_revisions(void **state)
{
    struct fixture *f = *state;
    struct seen seen = {0};
    uint64_t rev = 0, stale;

    assert_int_equal(store_save(f->st, "visit 1/é", "{\"a\":1}", 7, &rev), STORE_OK);
    assert_int_equal(rev, 1);
    stale = rev;
    assert_int_equal(store_save(f->st, "visit 1/é", "{\"a\":2}", 7, &rev), STORE_OK);
    assert_int_equal(rev, 2);
    /* A writer holding an older revision, or creating anew, is refused. */
    assert_int_equal(store_save(f->st, "visit 1/é", "{\"a\":9}", 7, &stale), STORE_CONFLICT);
    stale = 0;
    assert_int_equal(store_save(f->st, "visit 1/é", "{\"a\":9}", 7, &stale), STORE_CONFLICT);
    rev = 0;
    assert_int_equal(store_save(f->st, "visit-2", "{\"b\":1}", 7, &rev), STORE_OK);
    reopen(f);
    assert_int_equal(f->st->ops->load(f->st->impl, collect, &seen), STORE_OK);
    assert_int_equal(seen.n, 2);
    for (unsigned i = 0; i < 2; i++) {
        if (strcmp(seen.sid[i], "visit 1/é") == 0) {
            assert_string_equal(seen.rec[i], "{\"a\":2}");
            assert_int_equal(seen.rev[i], 2);
        } else {
            assert_string_equal(seen.sid[i], "visit-2");
        }
    }
    assert_int_equal(store_forget(f->st, "visit 1/é"), STORE_OK);
    assert_int_equal(store_forget(f->st, "never-there"), STORE_OK);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(f->st->ops->load(f->st->impl, collect, &seen), STORE_OK);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.sid[0], "visit-2");
}

static void test_private_files_and_one_process(void **state)
{
    struct fixture *f = *state;
    char path[160], err[256];
    struct stat st;
    struct store *second;

    assert_int_equal(stat(f->state, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/signal.db", f->state);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* A second handle stands for a second process: flock is per open file. */
    second = store_sqlite_open(f->state, err, sizeof(err));
    assert_null(second);
    assert_non_null(strstr(err, "the state directory is held by pid"));
    assert_non_null(strstr(err, "signal.lock"));
}

static void test_refuses_what_is_not_its_file(void **state)
{
    struct fixture *f = *state;
    char dir[128], path[160], err[256];

    snprintf(dir, sizeof(dir), "%s/other", f->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/signal.db", dir);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    assert_null(store_sqlite_open(dir, err, sizeof(err)));
    assert_non_null(strstr(err, "signal.db"));
    snprintf(path, sizeof(path), "%s/file", f->dir);
    assert_int_equal(close(open(path, O_CREAT | O_WRONLY, 0600)), 0);
    assert_null(store_sqlite_open(path, err, sizeof(err)));
    assert_non_null(strstr(err, "not a directory"));
}

/* A full disk, for real: a 1 MiB tmpfs in a mount namespace of a child
 * (root only), filled up. The claim fails closed and is granted once
 * there is room again; what was written before is intact. */
static int full_disk_child(const char *dir)
{
    char err[256], fill[160];
    struct store *st;
    uint64_t rev = 0;
    int fd, rc = 1;
    static char block[4096];

    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700") != 0)
        return 2;
    if ((st = store_sqlite_open(dir, err, sizeof(err))) == NULL)
        return 3;
    if (store_claim(st, "before", 9999, "v", "p1") != STORE_OK ||
        store_save(st, "v", "{}", 2, &rev) != STORE_OK)
        goto out;
    snprintf(fill, sizeof(fill), "%s/fill", dir);
    fd = open(fill, O_CREAT | O_WRONLY, 0600);
    while (write(fd, block, sizeof(block)) > 0)
        ;
    close(fd);
    /* Full: never granted, always "unavailable". */
    for (int i = 0; i < 50; i++) {
        char key[16];

        snprintf(key, sizeof(key), "full-%d", i);
        if (store_claim(st, key, 9999, "v", "p2") != STORE_UNAVAILABLE)
            goto out;
    }
    unlink(fill);
    if (store_claim(st, "full-0", 9999, "v", "p2") != STORE_OK ||
        store_claim(st, "before", 9999, "v", "p3") != STORE_TAKEN)
        goto out;
    rc = 0;
out:
    store_free(st);
    return rc;
}

static void test_full_disk_fails_closed(void **state)
{
    struct fixture *f = *state;
    char dir[128];
    pid_t pid;
    int status;

    if (geteuid() != 0)
        skip();
    snprintf(dir, sizeof(dir), "%s/small", f->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    if ((pid = fork()) == 0)
        _exit(full_disk_child(dir));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 2)
        skip(); /* no mount namespaces here (a container without CAP_SYS_ADMIN) */
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_key),
        cmocka_unit_test_setup_teardown(test_claim_once_and_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_and_revisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_files_and_one_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_what_is_not_its_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_fails_closed, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
