/* The default worker count from the affinity mask and a cgroup CPU quota,
 * and the parsers of the cgroup files it reads: every malformed input must
 * count as no limit, never as a limit nor a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cpus.h"
#include "quietroom/base/limits.h"

/* cpus_workers with a C string (NULL: no file). */
static struct cpus_choice choose(unsigned configured, unsigned affinity, const char *cpu_max)
{
    struct cpus_choice c;

    memset(&c, 0xa5, sizeof(c)); /* nothing may be left unset */
    cpus_workers(configured, affinity, cpu_max, cpu_max ? strlen(cpu_max) : 0, &c);
    return c;
}

static void test_affinity_only(void **state)
{
    struct cpus_choice c = choose(0, 2, NULL);

    (void)state;
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.reason, CPUS_AFFINITY);
    assert_int_equal(c.affinity, 2);
    assert_int_equal(c.available, 2);
    assert_int_equal(c.quota.period_us, 0);
    assert_string_equal(cpus_reason_name(c.reason), "affinity");

    c = choose(0, 1, NULL);
    assert_int_equal(c.workers, 1);
    assert_int_equal(c.reason, CPUS_AFFINITY);
    /* A mask nobody could read still runs one worker. */
    c = choose(0, 0, NULL);
    assert_int_equal(c.workers, 1);
    assert_int_equal(c.affinity, 1);
}

static void test_quota_smaller(void **state)
{
    struct cpus_choice c = choose(0, 4, "150000 100000\n");

    (void)state;
    assert_int_equal(c.workers, 2); /* 1.5 CPUs of time: rounded up */
    assert_int_equal(c.reason, CPUS_CGROUP_QUOTA);
    assert_int_equal(c.affinity, 4);
    assert_int_equal(c.available, 2);
    assert_int_equal(c.quota.quota_us, 150000);
    assert_int_equal(c.quota.period_us, 100000);
    assert_string_equal(cpus_reason_name(c.reason), "cgroup_quota");

    c = choose(0, 4, "50000 100000");
    assert_int_equal(c.workers, 1);
    assert_int_equal(c.reason, CPUS_CGROUP_QUOTA);
    c = choose(0, 4, "1000 100000\n"); /* the kernel's smallest quota */
    assert_int_equal(c.workers, 1);
    c = choose(0, 8, "300000 100000\n");
    assert_int_equal(c.workers, 3);
    c = choose(0, 8, "300001 100000\n");
    assert_int_equal(c.workers, 4);
}

static void test_quota_not_smaller(void **state)
{
    struct cpus_choice c = choose(0, 2, "400000 100000\n");

    (void)state;
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.reason, CPUS_AFFINITY);
    assert_int_equal(c.quota.quota_us, 400000); /* kept for the record */
    /* A quota of exactly the mask is not what limits. */
    c = choose(0, 2, "200000 100000\n");
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.reason, CPUS_AFFINITY);
    c = choose(0, 2, "150000 100000\n");
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.reason, CPUS_AFFINITY);
}

static void test_max(void **state)
{
    struct cpus_quota q = {1, 1};
    struct cpus_choice c = choose(0, 3, "max 100000\n");

    (void)state;
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.reason, CPUS_AFFINITY);
    assert_int_equal(c.quota.period_us, 0);
    assert_int_equal(cpus_parse_max("max 100000\n", 11, &q), 0);
    assert_int_equal(q.period_us, 0);
    assert_int_equal(cpus_quota_cpus(&q), 0);
    assert_int_equal(cpus_parse_max("max 100000", 10, &q), 0);
}

static void test_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "\n",
        "abc",
        "100000",
        "100000\n",
        "-1 100000",
        "+5 100000",
        "1 0",
        "0 100000",
        "max 0",
        "max",
        "max\n",
        "max  100000",
        "maxi 100000",
        " 50000 100000",
        "50000  100000",
        "50000 100000 ",
        "50000 100000\n\n",
        "50000\t100000",
        "50000 -100000",
        "50000 1e5",
        "0x10 100000",
        "50000 100000x",
        "18446744073709551616 100000",             /* 2^64 */
        "50000 18446744073709551616",
        "99999999999999999999999999999999 100000",
        "50000 100000 100000",
    };
    struct cpus_quota q;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cpus_choice c = choose(0, 3, bad[i]);

        q = (struct cpus_quota){1, 1};
        if (cpus_parse_max(bad[i], strlen(bad[i]), &q) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(q.period_us, 0);
        assert_int_equal(c.workers, 3);
        assert_int_equal(c.reason, CPUS_AFFINITY);
    }
    /* A NUL inside the text, and the length honoured: nothing past it read. */
    assert_int_equal(cpus_parse_max("50000\0 100000", 13, &q), -1);
    assert_int_equal(cpus_parse_max("50000 100000", 8, &q), 0);
    assert_int_equal(q.period_us, 10);
    assert_int_equal(cpus_parse_max(NULL, 0, &q), -1);
    /* The largest numbers that fit are fine, and divide without overflow. */
    assert_int_equal(cpus_parse_max("18446744073709551615 1", 22, &q), 0);
    assert_true(cpus_quota_cpus(&q) == UINT64_MAX);
    assert_int_equal(choose(0, 3, "18446744073709551615 1").workers, 3);
    assert_int_equal(choose(0, 3, "1 18446744073709551615").workers, 1);
}

static void test_cfs(void **state)
{
    struct cpus_quota q = {1, 1};

    (void)state;
    assert_int_equal(cpus_parse_cfs("-1\n", 3, "100000\n", 7, &q), 0);
    assert_int_equal(q.period_us, 0);
    assert_int_equal(cpus_parse_cfs("50000\n", 6, "100000\n", 7, &q), 0);
    assert_int_equal(q.quota_us, 50000);
    assert_int_equal(q.period_us, 100000);
    assert_int_equal(cpus_quota_cpus(&q), 1);
    assert_int_equal(cpus_parse_cfs("250000", 6, "100000", 6, &q), 0);
    assert_int_equal(cpus_quota_cpus(&q), 3);
    assert_int_equal(cpus_parse_cfs("-2", 2, "100000", 6, &q), -1);
    assert_int_equal(q.period_us, 0);
    assert_int_equal(cpus_parse_cfs("0", 1, "100000", 6, &q), -1);
    assert_int_equal(cpus_parse_cfs("50000", 5, "0", 1, &q), -1);
    assert_int_equal(cpus_parse_cfs("50000", 5, "", 0, &q), -1);
    assert_int_equal(cpus_parse_cfs("", 0, "100000", 6, &q), -1);
    assert_int_equal(cpus_parse_cfs("-1", 2, "-1", 2, &q), -1);
    assert_int_equal(cpus_parse_cfs("50000", 5, "99999999999999999999", 20, &q), -1);
    assert_int_equal(cpus_parse_cfs(NULL, 0, "100000", 6, &q), -1);
}

static void test_quota_min(void **state)
{
    struct cpus_quota none = {0, 0}, half = {50000, 100000}, two = {400000, 200000};

    (void)state;
    assert_int_equal(cpus_quota_min(none, half).quota_us, 50000);
    assert_int_equal(cpus_quota_min(half, none).quota_us, 50000);
    assert_int_equal(cpus_quota_min(two, half).quota_us, 50000);
    assert_int_equal(cpus_quota_min(half, two).quota_us, 50000);
    assert_int_equal(cpus_quota_min(none, none).period_us, 0);
    assert_int_equal(cpus_quota_cpus(NULL), 0);
}

static void test_configured_wins(void **state)
{
    struct cpus_choice c = choose(4, 1, "50000 100000\n");

    (void)state;
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.reason, CPUS_CONFIGURED);
    assert_int_equal(c.available, 1);
    assert_string_equal(cpus_reason_name(c.reason), "configured");
    c = choose(1, 8, NULL);
    assert_int_equal(c.workers, 1);
    assert_int_equal(c.reason, CPUS_CONFIGURED);
}

static void test_clamp(void **state)
{
    struct cpus_choice c = choose(0, QR_WORKERS_MAX * 4, NULL);

    (void)state;
    assert_int_equal(c.workers, QR_WORKERS_MAX);
    assert_int_equal(c.reason, CPUS_AFFINITY);
    c = choose(0, QR_WORKERS_MAX * 4, "18446744073709551615 100000");
    assert_int_equal(c.workers, QR_WORKERS_MAX);
    /* A quota of more CPUs than QR_WORKERS_MAX limits the count, the clamp
     * still holds. */
    c = choose(0, QR_WORKERS_MAX * 4, "10000000 100000");
    assert_int_equal(c.available, 100);
    assert_int_equal(c.reason, CPUS_CGROUP_QUOTA);
    assert_int_equal(c.workers, QR_WORKERS_MAX);
    c = choose(QR_WORKERS_MAX + 1, 2, NULL);
    assert_int_equal(c.workers, QR_WORKERS_MAX);
    assert_int_equal(c.reason, CPUS_CONFIGURED);
}

static void test_describe(void **state)
{
    char buf[128], want[64];
    struct cpus_choice c;

    (void)state;
    c = choose(0, 2, NULL);
    cpus_describe(&c, buf, sizeof(buf));
    assert_string_equal(buf, "2 workers (cpu affinity: 2 CPUs)");
    c = choose(0, 1, "max 100000\n");
    cpus_describe(&c, buf, sizeof(buf));
    assert_string_equal(buf, "1 worker (cpu affinity: 1 CPU)");
    c = choose(0, 2, "50000 100000\n");
    cpus_describe(&c, buf, sizeof(buf));
    assert_string_equal(buf, "1 worker (cgroup quota 0.5 CPU)");
    c = choose(0, 4, "150000 100000\n");
    cpus_describe(&c, buf, sizeof(buf));
    assert_string_equal(buf, "2 workers (cgroup quota 1.5 CPUs)");
    c = choose(4, 8, NULL);
    cpus_describe(&c, buf, sizeof(buf));
    assert_string_equal(buf, "4 workers (--workers)");
    c = choose(4, 1, NULL);
    cpus_describe(&c, buf, sizeof(buf));
    assert_string_equal(buf, "4 workers (--workers; 1 CPU available)");
    c = choose(0, QR_WORKERS_MAX * 2, NULL);
    cpus_describe(&c, buf, sizeof(buf));
    snprintf(want, sizeof(want), "%d workers (cpu affinity: %d CPUs, at most %d)", QR_WORKERS_MAX,
             QR_WORKERS_MAX * 2, QR_WORKERS_MAX);
    assert_string_equal(buf, want);
    /* A short buffer is cut, never overrun. */
    cpus_describe(&c, buf, 8);
    assert_int_equal(strlen(buf), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_affinity_only),   cmocka_unit_test(test_quota_smaller),
        cmocka_unit_test(test_quota_not_smaller), cmocka_unit_test(test_max),
        cmocka_unit_test(test_malformed),       cmocka_unit_test(test_cfs),
        cmocka_unit_test(test_quota_min),       cmocka_unit_test(test_configured_wins),
        cmocka_unit_test(test_clamp),           cmocka_unit_test(test_describe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
