/* Prometheus text exposition: families, labels and their escaping,
 * histograms (cumulative buckets, _sum, _count) and the process family. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quietroom/ops/metrics.h"

static char *render(struct metrics *m)
{
    size_t len;
    char *text = metrics_take(m, &len);

    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void test_families_and_labels(void **state)
{
    struct metrics m;
    char *text;

    (void)state;
    metrics_init(&m);
    metrics_counter(&m, "qr_things_total", "Things.", 18446744073709551615ull);
    metrics_family(&m, "qr_drops_total", "counter", "Drops by reason.");
    metrics_u64(&m, "qr_drops_total", "reason", "a\"b\\c\nd", 7);
    metrics_gauge(&m, "qr_ratio", "A ratio.", 0.25);
    text = render(&m);
    assert_string_equal(text, "# HELP qr_things_total Things.\n"
                              "# TYPE qr_things_total counter\n"
                              "qr_things_total 18446744073709551615\n"
                              "# HELP qr_drops_total Drops by reason.\n"
                              "# TYPE qr_drops_total counter\n"
                              "qr_drops_total{reason=\"a\\\"b\\\\c\\nd\"} 7\n"
                              "# HELP qr_ratio A ratio.\n"
                              "# TYPE qr_ratio gauge\n"
                              "qr_ratio 0.25\n");
    free(text);
}

static void test_histogram(void **state)
{
    static const double bounds[] = {0.01, 0.1};
    struct metrics_histogram h;
    struct metrics m;
    char *text;

    (void)state;
    metrics_histogram_init(&h, bounds, 2, 1e6);
    metrics_histogram_observe(&h, 0.0);
    metrics_histogram_observe(&h, 0.01);  /* le is inclusive */
    metrics_histogram_observe(&h, 0.05);
    metrics_histogram_observe(&h, 0.5);
    metrics_init(&m);
    metrics_histogram_write(&m, "qr_loss_ratio", "Loss.", &h);
    text = render(&m);
    assert_string_equal(text, "# HELP qr_loss_ratio Loss.\n"
                              "# TYPE qr_loss_ratio histogram\n"
                              "qr_loss_ratio_bucket{le=\"0.01\"} 2\n"
                              "qr_loss_ratio_bucket{le=\"0.1\"} 3\n"
                              "qr_loss_ratio_bucket{le=\"+Inf\"} 4\n"
                              "qr_loss_ratio_sum 0.56000000000000005\n"
                              "qr_loss_ratio_count 4\n");
    free(text);
}

static void test_process(void **state)
{
    struct metrics m;
    char *text;

    (void)state;
    metrics_init(&m);
    metrics_process(&m);
    text = render(&m);
    assert_non_null(strstr(text, "\nprocess_cpu_seconds_total "));
    assert_non_null(strstr(text, "\nprocess_start_time_seconds 1"));
    assert_non_null(strstr(text, "\nprocess_resident_memory_bytes "));
    assert_non_null(strstr(text, "\nprocess_open_fds "));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_families_and_labels),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_process),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
