/* Text building with a doubling buffer; /proc parsing for the process
 * family, as the Prometheus client libraries do it. */
#include "quietroom/ops/metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define METRICS_INITIAL_CAP 4096

void metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof(*m));
}

void metrics_free(struct metrics *m)
{
    free(m->buf);
    memset(m, 0, sizeof(*m));
}

char *metrics_take(struct metrics *m, size_t *len)
{
    char *text = m->failed ? NULL : m->buf;

    if (m->failed)
        free(m->buf);
    *len = text != NULL ? m->len : 0;
    memset(m, 0, sizeof(*m));
    return text;
}

static bool metrics__reserve(struct metrics *m, size_t more)
{
    size_t cap = m->cap ? m->cap : METRICS_INITIAL_CAP;
    char *p;

    if (m->failed)
        return false;
    while (cap < m->len + more + 1)
        cap *= 2;
    if (cap != m->cap) {
        if ((p = realloc(m->buf, cap)) == NULL) {
            m->failed = true;
            return false;
        }
        m->buf = p;
        m->cap = cap;
    }
    return true;
}

static void metrics__printf(struct metrics *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void metrics__printf(struct metrics *m, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !metrics__reserve(m, (size_t)n)) {
        m->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(m->buf + m->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    m->len += (size_t)n;
}

void metrics_family(struct metrics *m, const char *name, const char *type, const char *help)
{
    metrics__printf(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name or name{label="escaped value"} */
static void metrics__name(struct metrics *m, const char *name, const char *label,
                          const char *value)
{
    metrics__printf(m, "%s", name);
    if (label == NULL)
        return;
    metrics__printf(m, "{%s=\"", label);
    for (const char *c = value; *c != '\0'; c++) {
        if (*c == '\\' || *c == '"')
            metrics__printf(m, "\\%c", *c);
        else if (*c == '\n')
            metrics__printf(m, "\\n");
        else
            metrics__printf(m, "%c", *c);
    }
    metrics__printf(m, "\"}");
}

void metrics_u64(struct metrics *m, const char *name, const char *label, const char *value,
                 uint64_t v)
{
    metrics__name(m, name, label, value);
    metrics__printf(m, " %" PRIu64 "\n", v);
}

void metrics_double(struct metrics *m, const char *name, const char *label, const char *value,
                    double v)
{
    metrics__name(m, name, label, value);
    if (isnan(v))
        metrics__printf(m, " NaN\n");
    else if (isinf(v))
        metrics__printf(m, " %s\n", v > 0 ? "+Inf" : "-Inf");
    else
        metrics__printf(m, " %.17g\n", v);
}

void metrics_counter(struct metrics *m, const char *name, const char *help, uint64_t v)
{
    metrics_family(m, name, "counter", help);
    metrics_u64(m, name, NULL, NULL, v);
}

void metrics_gauge(struct metrics *m, const char *name, const char *help, double v)
{
    metrics_family(m, name, "gauge", help);
    metrics_double(m, name, NULL, NULL, v);
}

/* --- process ------------------------------------------------------------ */

static unsigned metrics__open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    unsigned n = 0;
    struct dirent *e;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory stream's own fd */
}

/* utime, stime and starttime (clock ticks) from /proc/self/stat. */
static int metrics__stat(unsigned long long *cpu_ticks, unsigned long long *start_ticks)
{
    char line[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    unsigned long long utime, stime;
    char *p;
    int ok;

    if (f == NULL)
        return -1;
    ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    /* The command name may hold spaces and parentheses: skip to the last ')'. */
    if (!ok || (p = strrchr(line, ')')) == NULL)
        return -1;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                      "%*d %*d %llu",
               &utime, &stime, start_ticks) != 3)
        return -1;
    *cpu_ticks = utime + stime;
    return 0;
}

static double metrics__boot_time(void)
{
    struct timespec now, up;

    clock_gettime(CLOCK_REALTIME, &now);
    clock_gettime(CLOCK_BOOTTIME, &up);
    return (double)now.tv_sec + now.tv_nsec / 1e9 - ((double)up.tv_sec + up.tv_nsec / 1e9);
}

static uint64_t metrics__rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size, resident;
    int ok;

    if (f == NULL)
        return 0;
    ok = fscanf(f, "%llu %llu", &size, &resident) == 2;
    fclose(f);
    return ok ? resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

void metrics_process(struct metrics *m)
{
    unsigned long long cpu, start;
    double hz = (double)sysconf(_SC_CLK_TCK);

    if (metrics__stat(&cpu, &start) == 0) {
        metrics_family(m, "process_cpu_seconds_total", "counter",
                       "User and system CPU time spent, in seconds.");
        metrics_double(m, "process_cpu_seconds_total", NULL, NULL, (double)cpu / hz);
        metrics_gauge(m, "process_start_time_seconds",
                      "Start time of the process since the Unix epoch, in seconds.",
                      metrics__boot_time() + (double)start / hz);
    }
    metrics_gauge(m, "process_resident_memory_bytes", "Resident memory size, in bytes.",
                  (double)metrics__rss_bytes());
    metrics_gauge(m, "process_open_fds", "Number of open file descriptors.",
                  (double)metrics__open_fds());
}

/* --- histograms ------------------------------------------------------------ */

void metrics_histogram_init(struct metrics_histogram *h, const double *bounds, unsigned n,
                            double scale)
{
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->n = n < METRICS_BUCKETS_MAX ? n : METRICS_BUCKETS_MAX;
    h->scale = scale;
}

void metrics_histogram_observe(struct metrics_histogram *h, double v)
{
    unsigned b = 0;

    while (b < h->n && v > h->bounds[b])
        b++;
    atomic_store_explicit(&h->count[b],
                          atomic_load_explicit(&h->count[b], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (v > 0)
        atomic_store_explicit(&h->sum,
                              atomic_load_explicit(&h->sum, memory_order_relaxed) +
                                  (uint64_t)llround(v * h->scale),
                              memory_order_relaxed);
}

void metrics_histogram_write(struct metrics *m, const char *name, const char *help,
                             const struct metrics_histogram *h)
{
    char bucket[128], le[32];
    uint64_t total = 0;

    metrics_family(m, name, "histogram", help);
    snprintf(bucket, sizeof(bucket), "%s_bucket", name);
    for (unsigned b = 0; b <= h->n; b++) {
        total += atomic_load_explicit(&h->count[b], memory_order_relaxed);
        if (b < h->n)
            snprintf(le, sizeof(le), "%g", h->bounds[b]);
        else
            snprintf(le, sizeof(le), "+Inf");
        metrics_u64(m, bucket, "le", le, total);
    }
    metrics__printf(m, "%s_sum %.17g\n%s_count %" PRIu64 "\n", name,
                    (double)atomic_load_explicit(&h->sum, memory_order_relaxed) / h->scale, name,
                    total);
}
