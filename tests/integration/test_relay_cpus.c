/* The relay's default worker count against the running binary: pinned to
 * one CPU with taskset it runs one worker, unpinned one per CPU of its
 * affinity mask, and --workers still wins; the log line and /metrics say
 * which and why. Then the cgroup reader (cpus_cgroup_quota) against fake
 * /proc and /sys/fs/cgroup trees in a temporary directory: v2 and v1
 * layouts, limits on ancestors, and files it must refuse. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cpus.h"
#include "harness.h"
#include "quietroom/base/limits.h"

#define START_MS 10000
/* Larger than any /proc/self/cgroup the reader accepts (16 KiB). */
#define CPUS_BIG (32 * 1024)

/* --- the relay binary, started without --workers ------------------------ */

/* The harness's relay_start always passes --workers; this starts the
 * relay with its defaults, optionally under `taskset -c CPU`, and fills r
 * so that relay_cleanup can stop it and check its exit. */
static void start_default(struct relay_proc *r, int cpu, const char *const *extra)
{
    char ready[HARNESS_PATH], runtime[HARNESS_PATH], cpu_text[16];
    char *secret_argv[] = {QR_CTL_BIN, "secret", "--out", r->secret, NULL};
    char *audit_argv[] = {QR_CTL_BIN, "secret", "--out", r->audit_key, NULL};
    const char *argv[40];
    json_error_t jerr;
    json_t *doc = NULL;
    int n = 0, code;

    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/qr-it-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    snprintf(r->secret, sizeof(r->secret), "%s/relay.secret", r->dir);
    snprintf(r->audit, sizeof(r->audit), "%s/audit.jsonl", r->dir);
    snprintf(r->audit_key, sizeof(r->audit_key), "%s/audit.key", r->dir);
    snprintf(r->log, sizeof(r->log), "%s/relay.log", r->dir);
    snprintf(ready, sizeof(ready), "%s/ready.json", r->dir);
    snprintf(runtime, sizeof(runtime), "%s/run", r->dir);
    free(run_command(secret_argv, &code));
    assert_int_equal(code, 0);
    free(run_command(audit_argv, &code));
    assert_int_equal(code, 0);

    if (cpu >= 0) {
        snprintf(cpu_text, sizeof(cpu_text), "%d", cpu);
        argv[n++] = "taskset";
        argv[n++] = "-c";
        argv[n++] = cpu_text;
    }
    argv[n++] = QR_RELAY_BIN;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--control";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--secret-file";
    argv[n++] = r->secret;
    argv[n++] = "--audit-log";
    argv[n++] = r->audit;
    argv[n++] = "--audit-key-file";
    argv[n++] = r->audit_key;
    argv[n++] = "--ready-file";
    argv[n++] = ready;
    argv[n++] = "--ops-listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--runtime-dir";
    argv[n++] = runtime;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 39; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    if ((r->pid = fork()) == 0) {
        int fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
        /* taskset execs the relay in its own place: same pid, same exit. */
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    assert_true(r->pid > 0);
    for (uint64_t until = now_ms() + START_MS; doc == NULL && now_ms() < until;) {
        if ((doc = json_load_file(ready, 0, &jerr)) == NULL)
            usleep(20000);
        if (waitpid(r->pid, &code, WNOHANG) == r->pid) {
            r->pid = 0;
            r->exit_status = -1;
            relay_cleanup(r);
            fail_msg("the relay exited at start");
        }
    }
    assert_non_null(doc);
    r->ops_port = (int)json_integer_value(json_object_get(doc, "ops_port"));
    json_decref(doc);
    assert_true(r->ops_port > 0);
}

/* CPUs in this process's affinity mask, and the first of them. */
static int affinity(int *first)
{
    size_t size = CPU_ALLOC_SIZE(8192);
    cpu_set_t *set = CPU_ALLOC(8192);
    int count;

    assert_non_null(set);
    assert_int_equal(sched_getaffinity(0, size, set), 0);
    count = CPU_COUNT_S(size, set);
    for (*first = 0; *first < 8192 && !CPU_ISSET_S((size_t)*first, size, set); (*first)++)
        ;
    CPU_FREE(set);
    return count;
}

/* The value of a sample line "name value" in /metrics, labels in name. */
static double sample(const char *metrics, const char *name)
{
    char want[256];
    const char *p;

    snprintf(want, sizeof(want), "\n%s ", name);
    if ((p = strstr(metrics, want)) == NULL)
        fail_msg("no sample %s in /metrics", name);
    return strtod(p + strlen(want), NULL);
}

/* Scrapes /metrics and checks the worker count and its one reason. */
static void expect_metrics(struct relay_proc *r, unsigned workers, const char *reason)
{
    static const char *const reasons[] = {"configured", "affinity", "cgroup_quota"};
    char *resp = http_get(r->ops_port, "/metrics"), name[128];
    const char *body = http_body(resp);

    assert_int_equal(http_status(resp), 200);
    assert_non_null(body);
    assert_true(sample(body - 1, "quietroom_relay_workers") == workers);
    /* Exactly one reason is present, and it is 1. */
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        snprintf(name, sizeof(name), "quietroom_relay_workers_reason{reason=\"%s\"}", reasons[i]);
        if (strcmp(reasons[i], reason) == 0)
            assert_true(sample(body - 1, name) == 1);
        else
            assert_null(strstr(body, name));
    }
    free(resp);
}

static void expect_log(struct relay_proc *r, const char *line)
{
    char *log = read_text(r->log);

    assert_non_null(log);
    if (strstr(log, line) == NULL)
        fail_msg("no \"%s\" in the relay's log:\n%s", line, log);
    free(log);
}

static void test_pinned_runs_one_worker(void **state)
{
    struct relay_proc r;
    int cpu;

    (void)state;
    affinity(&cpu);
    start_default(&r, cpu, NULL);
    expect_metrics(&r, 1, "affinity");
    expect_log(&r, "; 1 worker (cpu affinity: 1 CPU),");
    assert_int_equal(relay_cleanup(&r), 0);
}

/* Unpinned: one worker per CPU of the mask this test runs with, unless
 * the machine's cgroup quota allows fewer. */
static void test_default_follows_affinity(void **state)
{
    struct relay_proc r;
    struct cpus_quota q;
    struct cpus_choice want;
    char line[160];
    int cpu, n = affinity(&cpu);
    unsigned expected = n > QR_WORKERS_MAX ? QR_WORKERS_MAX : (unsigned)n;

    (void)state;
    cpus_cgroup_quota("/proc", "/sys/fs/cgroup", &q);
    if (cpus_quota_cpus(&q) != 0 && cpus_quota_cpus(&q) < expected)
        expected = (unsigned)cpus_quota_cpus(&q);
    cpus_choose(0, (unsigned)n, &q, &want);
    assert_int_equal(want.workers, expected);
    start_default(&r, -1, NULL);
    expect_metrics(&r, expected, cpus_reason_name(want.reason));
    cpus_describe(&want, line + 2, sizeof(line) - 2);
    memcpy(line, "; ", 2);
    expect_log(&r, line);
    assert_int_equal(relay_cleanup(&r), 0);
}

static void test_configured_wins(void **state)
{
    static const char *const extra[] = {"--workers", "3", NULL};
    struct relay_proc r;
    int cpu;

    (void)state;
    affinity(&cpu);
    start_default(&r, cpu, extra);
    expect_metrics(&r, 3, "configured");
    expect_log(&r, "; 3 workers (--workers; 1 CPU available),");
    assert_int_equal(relay_cleanup(&r), 0);
}

/* --- the cgroup reader against fake trees -------------------------------- */

struct tree {
    char root[HARNESS_PATH / 2];
    char proc[HARNESS_PATH];
    char cgroup[HARNESS_PATH];
};

static int tree_setup(void **state)
{
    struct tree *t = calloc(1, sizeof(*t));

    snprintf(t->root, sizeof(t->root), "/tmp/qr-cpus-XXXXXX");
    if (mkdtemp(t->root) == NULL)
        return -1;
    snprintf(t->proc, sizeof(t->proc), "%s/proc", t->root);
    snprintf(t->cgroup, sizeof(t->cgroup), "%s/sys/fs/cgroup", t->root);
    *state = t;
    return 0;
}

static int tree_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int tree_teardown(void **state)
{
    struct tree *t = *state;
    int rc = nftw(t->root, tree_remove_one, 16, FTW_DEPTH | FTW_PHYS);

    free(t);
    return rc;
}

/* Creates under/rel (and the directories above it) holding text; text
 * NULL makes rel a directory. */
static void put(const char *under, const char *rel, const char *text)
{
    char path[PATH_MAX];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", under, rel);
    for (char *p = path + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
        *p = '/';
    }
    if (text == NULL) {
        assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
        return;
    }
    assert_non_null(f = fopen(path, "w"));
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void put_cgroup_file(struct tree *t, const char *text)
{
    put(t->proc, "self/cgroup", text);
}

static struct cpus_quota quota(struct tree *t)
{
    struct cpus_quota q = {1, 1};

    cpus_cgroup_quota(t->proc, t->cgroup, &q);
    return q;
}

static void assert_quota(struct tree *t, uint64_t quota_us, uint64_t period_us)
{
    struct cpus_quota q = quota(t);

    assert_int_equal(q.quota_us, quota_us);
    assert_int_equal(q.period_us, period_us);
}

/* cgroup v2, a systemd service: its own limit, its slice's, the root has
 * no cpu.max. The smallest counts, wherever it is set. */
static void test_v2_ancestors(void **state)
{
    struct tree *t = *state;

    put_cgroup_file(t, "0::/system.slice/quietroom-relay.service\n");
    assert_quota(t, 0, 0); /* nothing there yet */
    put(t->cgroup, "system.slice/quietroom-relay.service/cpu.max", "max 100000\n");
    assert_quota(t, 0, 0);
    put(t->cgroup, "system.slice/cpu.max", "150000 100000\n");
    assert_quota(t, 150000, 100000);
    put(t->cgroup, "system.slice/quietroom-relay.service/cpu.max", "50000 100000\n");
    assert_quota(t, 50000, 100000);
    /* A garbled file on the way counts as no limit, the others still do. */
    put(t->cgroup, "system.slice/cpu.max", "garbage\n");
    assert_quota(t, 50000, 100000);
    put(t->cgroup, "cpu.max", "20000 100000\n");
    assert_quota(t, 20000, 100000);
}

/* In a container with its own cgroup namespace the path is "/" and the
 * container's limit is on the mount's root; without one the path is the
 * host's, missing under the mount, and walking up still finds the root. */
static void test_v2_container(void **state)
{
    struct tree *t = *state;
    struct cpus_choice c;

    put(t->cgroup, "cpu.max", "250000 100000\n");
    put_cgroup_file(t, "0::/\n");
    assert_quota(t, 250000, 100000);
    put_cgroup_file(t, "0::/kubepods/burstable/pod1234/abcdef\n");
    assert_quota(t, 250000, 100000);
    put_cgroup_file(t, "0::/kubepods/burstable/pod1234/abcdef/\n");
    assert_quota(t, 250000, 100000);
    cpus_detect(t->proc, t->cgroup, 0, &c);
    assert_int_equal(c.available, c.affinity < 3 ? c.affinity : 3);
    cpus_detect(t->proc, t->cgroup, 5, &c);
    assert_int_equal(c.workers, 5);
}

/* cgroup v1 (and hybrid, with a v2 line that has no cpu.max): the cpu
 * controller's mount, named after its controllers or just "cpu". */
static void test_v1(void **state)
{
    struct tree *t = *state;

    put_cgroup_file(t, "12:cpuset:/x\n"
                       "11:cpu,cpuacct:/x/y\n"
                       "1:name=systemd:/x/y\n"
                       "0::/x/y\n");
    /* Controllers that are not cpu are never read. */
    put(t->cgroup, "cpuset/x/cpu.cfs_quota_us", "10000\n");
    put(t->cgroup, "cpuset/x/cpu.cfs_period_us", "100000\n");
    put(t->cgroup, "unified/x/y/cpu.max", "10000 100000\n");
    put(t->cgroup, "cpu,cpuacct/x/y/cpu.cfs_quota_us", "-1\n");
    put(t->cgroup, "cpu,cpuacct/x/y/cpu.cfs_period_us", "100000\n");
    assert_quota(t, 0, 0);
    put(t->cgroup, "cpu,cpuacct/x/cpu.cfs_quota_us", "50000\n");
    put(t->cgroup, "cpu,cpuacct/x/cpu.cfs_period_us", "100000\n");
    assert_quota(t, 50000, 100000);
    /* A quota without its period is no limit. */
    put(t->cgroup, "cpu,cpuacct/x/cpu.cfs_period_us", "0\n");
    assert_quota(t, 0, 0);
    /* Mounted as plain "cpu". */
    put(t->cgroup, "cpu/x/y/cpu.cfs_quota_us", "300000\n");
    put(t->cgroup, "cpu/x/y/cpu.cfs_period_us", "100000\n");
    assert_quota(t, 300000, 100000);
    /* v1 and v2 together: the tighter. */
    put(t->cgroup, "x/y/cpu.max", "200000 100000\n");
    assert_quota(t, 200000, 100000);
}

/* Files that must count as no limit, and never be followed elsewhere. */
static void test_refused(void **state)
{
    struct tree *t = *state;
    char big[CPUS_BIG];

    /* No /proc file at all. */
    assert_quota(t, 0, 0);
    /* A path climbing out of the mount to a file that is there (the
     * mount must exist for ".." to resolve). */
    put(t->cgroup, "a", NULL);
    put(t->root, "sys/fs/escape/cpu.max", "10000 100000\n");
    put_cgroup_file(t, "0::/../escape\n");
    assert_quota(t, 0, 0);
    put_cgroup_file(t, "0::/a/../../escape\n");
    assert_quota(t, 0, 0);
    put_cgroup_file(t, "0::relative\n");
    assert_quota(t, 0, 0);
    put_cgroup_file(t, "garbage\n\n:\n::\n0:\n");
    assert_quota(t, 0, 0);
    put_cgroup_file(t, "3:cpu,../..:/\n");
    assert_quota(t, 0, 0);
    /* cpu.max that is a directory, or too long to be one. */
    put_cgroup_file(t, "0::/a\n");
    put(t->cgroup, "a/cpu.max", NULL);
    assert_quota(t, 0, 0);
    put(t->cgroup, "a/b/cpu.max", "1000000000000000000000000000000000000000000000000000000000000"
                                  "0000000000000000000000000000 100000\n");
    put_cgroup_file(t, "0::/a/b\n");
    assert_quota(t, 0, 0);
    put(t->cgroup, "a/b/cpu.max", "99999999999999999999 100000\n");
    assert_quota(t, 0, 0);
    put(t->cgroup, "a/b/cpu.max", "50000 0\n");
    assert_quota(t, 0, 0);
    put(t->cgroup, "a/b/cpu.max", "");
    assert_quota(t, 0, 0);
    /* A /proc file larger than any real one is not read at all. */
    put(t->cgroup, "a/b/cpu.max", "50000 100000\n");
    assert_quota(t, 50000, 100000);
    memset(big, '#', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "0::/a/b\n", 8);
    put_cgroup_file(t, big);
    assert_quota(t, 0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pinned_runs_one_worker),
        cmocka_unit_test(test_default_follows_affinity),
        cmocka_unit_test(test_configured_wins),
        cmocka_unit_test_setup_teardown(test_v2_ancestors, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_container, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v1, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_refused, tree_setup, tree_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
