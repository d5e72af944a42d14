/* Durability under kill -9: a child appends to the audit log from several
 * threads, printing each record the moment audit_write acknowledged it, and
 * is killed with SIGKILL at random points, many times over the same log
 * (which also rotates every 64 KiB). Every acknowledged record must be in
 * the log, the chain must verify, and torn lines must be reported as such. */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "harness.h"
#include "quietroom/base/keyring.h"

#define ROUNDS 30
#define ROTATE_BYTES "65536"
#define MAX_ACKS 400000

/* What the children acknowledged, over all rounds: the test's state. */
struct acks {
    long v[MAX_ACKS];
    size_t n;
};

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct acks));
    return *state != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;

    return x < y ? -1 : x > y;
}

/* Reads "n\n" acknowledgements from fd until EOF or deadline. */
static void read_acks(struct acks *a, int fd, uint64_t deadline, char *carry, size_t *clen)
{
    char buf[4096];

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int wait = deadline ? (int)(deadline > now_ms() ? deadline - now_ms() : 0) : 2000;
        ssize_t n;

        if (poll(&p, 1, wait) != 1 || (n = read(fd, buf, sizeof(buf))) <= 0)
            return;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                carry[(*clen)++] = buf[i];
                continue;
            }
            carry[*clen] = '\0';
            if (a->n < MAX_ACKS)
                a->v[a->n++] = atol(carry);
            *clen = 0;
        }
    }
}

static void run_round(struct acks *a, const char *log, const char *key, int round)
{
    char round_s[16], carry[64];
    size_t clen = 0;
    uint8_t rnd;
    int fds[2], status;
    pid_t pid;

    snprintf(round_s, sizeof(round_s), "%d", round);
    assert_int_equal(pipe(fds), 0);
    if ((pid = fork()) == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(QR_AUDIT_CHILD_BIN, "audit_child", log, key, round_s, ROTATE_BYTES, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    RAND_bytes(&rnd, 1);
    read_acks(a, fds[0], now_ms() + 30 + rnd, carry, &clen);
    kill(pid, SIGKILL);
    read_acks(a, fds[0], 0, carry, &clen); /* what it said before it died */
    close(fds[0]);
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* Every "n" found in the log's files, sorted. */
static long *logged_numbers(const char *dir, size_t *count)
{
    long *out = malloc(sizeof(long) * (MAX_ACKS + 1024));
    DIR *d = opendir(dir);
    struct dirent *e;

    *count = 0;
    while ((e = readdir(d)) != NULL) {
        char path[512], *text, *p;

        if (strncmp(e->d_name, "audit.jsonl", 11) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        text = read_text(path);
        for (p = text; p != NULL && (p = strstr(p, "\"detail\":{\"n\":")) != NULL; p++)
            if (*count < MAX_ACKS + 1024)
                out[(*count)++] = atol(p + strlen("\"detail\":{\"n\":"));
        free(text);
    }
    closedir(d);
    qsort(out, *count, sizeof(long), cmp_long);
    return out;
}

static void test_acknowledged_records_survive_sigkill(void **state)
{
    char dir[] = "/tmp/qr-crash-XXXXXX", log[128], key[128], err[128], cmd[512];
    long *found;
    size_t n_found, missing = 0;
    int code;
    char *out;
    struct acks *a = *state;

    assert_non_null(mkdtemp(dir));
    snprintf(log, sizeof(log), "%s/audit.jsonl", dir);
    snprintf(key, sizeof(key), "%s/audit.key", dir);
    assert_int_equal(keyring_generate(key, 3, err, sizeof(err)), 0);
    for (int round = 1; round <= ROUNDS; round++) {
        run_round(a, log, key, round);
        /* A power cut mid-write leaves half a line (kill -9 cannot: write(2)
         * completes); make one, and the next writer must note it. */
        if (round == ROUNDS / 2) {
            FILE *f = fopen(log, "a");

            fputs("{\"type\":\"test.record\",\"action\":\"C\",\"outc", f);
            fclose(f);
        }
    }
    found = logged_numbers(dir, &n_found);
    for (size_t i = 0; i < a->n; i++) {
        if (bsearch(&a->v[i], found, n_found, sizeof(long), cmp_long) == NULL)
            missing++;
    }
    print_message("%zu records acknowledged over %d kills, %zu in the log, %zu missing\n",
                  a->n, ROUNDS, n_found, missing);
    assert_true(a->n > 1000);
    assert_int_equal(missing, 0);

    snprintf(cmd, sizeof(cmd), "%s audit verify --key-file %s %s/audit.jsonl*", QR_CTL_BIN, key,
             dir);
    {
        char *argv[] = {"/bin/sh", "-c", cmd, NULL};

        out = run_command(argv, &code);
    }
    print_message("verify: exit %d\n%s", code, out);
    /* Intact apart from the torn line, which is reported as such (exit 3). */
    assert_int_equal(code, 3);
    assert_non_null(strstr(out, "torn"));
    free(out);
    {
        char *text = NULL;
        DIR *d = opendir(dir);
        struct dirent *e;
        bool recovered = false;

        while ((e = readdir(d)) != NULL && !recovered) {
            char path[512];

            if (strncmp(e->d_name, "audit.jsonl", 11) != 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            text = read_text(path);
            recovered = strstr(text, "\"type\":\"audit.recovered\"") != NULL &&
                        strstr(text, "\"torn_bytes\":40") != NULL;
            free(text);
        }
        closedir(d);
        assert_true(recovered);
    }
    free(found);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (getenv("QR_KEEP_TEST_DIRS") == NULL)
        assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_acknowledged_records_survive_sigkill, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
