/* Prometheus text exposition (format 0.0.4) for both daemons' /metrics, and
 * the histograms behind it. Names and label names are the caller's
 * constants; label values are escaped here. Aggregates only: no label may
 * carry a session, a user or an address. */
#ifndef QUIETROOM_METRICS_H
#define QUIETROOM_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growing text buffer; an allocation failure sticks and metrics_take
 * then returns NULL. */
struct metrics {
    char *buf;
    size_t len, cap;
    bool failed;
};

void metrics_init(struct metrics *m);
/* Hands over the text (caller frees) and its length; NULL on failure. */
char *metrics_take(struct metrics *m, size_t *len);
void metrics_free(struct metrics *m);

/* # HELP and # TYPE lines of a family: type is "counter", "gauge" or
 * "histogram". */
void metrics_family(struct metrics *m, const char *name, const char *type, const char *help);
/* One sample, with no label (label NULL) or one label="value". */
void metrics_u64(struct metrics *m, const char *name, const char *label, const char *value,
                 uint64_t v);
void metrics_double(struct metrics *m, const char *name, const char *label, const char *value,
                    double v);
/* A family of one unlabelled sample. */
void metrics_counter(struct metrics *m, const char *name, const char *help, uint64_t v);
void metrics_gauge(struct metrics *m, const char *name, const char *help, double v);

/* process_cpu_seconds_total, process_resident_memory_bytes,
 * process_open_fds and process_start_time_seconds from /proc/self. */
void metrics_process(struct metrics *m);

#define METRICS_BUCKETS_MAX 16

/* A histogram with one writer at a time (the caller serialises writers)
 * and lock-free readers. The sum is kept in integer units of 1/scale. */
struct metrics_histogram {
    const double *bounds;                      /* upper bounds, ascending */
    unsigned n;                                /* bounds; +Inf is implicit */
    double scale;
    _Atomic uint64_t count[METRICS_BUCKETS_MAX + 1];  /* per bucket, not cumulative */
    _Atomic uint64_t sum;
};

void metrics_histogram_init(struct metrics_histogram *h, const double *bounds, unsigned n,
                            double scale);
void metrics_histogram_observe(struct metrics_histogram *h, double v);
/* Writes the family (buckets cumulative, _sum, _count). */
void metrics_histogram_write(struct metrics *m, const char *name, const char *help,
                             const struct metrics_histogram *h);

#endif
