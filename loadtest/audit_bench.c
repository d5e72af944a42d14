/* quietroom-audit-bench: how many audit records per second the writer makes
 * durable (fdatasync per group commit), for writers that wait for each
 * record (audit_write, as a crash-safe caller does) and for writers that
 * only queue (audit_emit, as the relay's threads do). A benchmark, not a
 * test: run it on the disk the audit log will live on.
 *
 * With --syslog, each mode also runs with every record shipped to that
 * collector (audit-syslog), the two arms alternating for --rounds rounds:
 * the writer's rate with and without shipping, medians and min-max, and
 * how long after the last record the collector had them all.
 *
 *   quietroom-audit-bench [--dir DIR] [--seconds S] [--threads N]
 *                         [--syslog HOST:PORT --syslog-ca FILE [--rounds R]] */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quietroom/audit/audit.h"
#include "quietroom/audit/audit_ship.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/keyring.h"

struct bench {
    struct audit_log *log;
    bool sync;
    uint64_t until_ms;
    _Atomic uint64_t done;
};

static json_t *bench__event(uint64_t n)
{
    json_t *ev = audit_event("participant.admitted", 'E', AUDIT_SUCCESS);

    audit_event_agent(ev, "patient-1234567", "patient", true, "203.0.113.77");
    audit_event_by(ev, "clinician-42", "clinician");
    audit_event_session(ev, "appointment-2026-11-24-0930", false);
    audit_event_detail(ev, "participant", json_string("p2"));
    audit_event_detail(ev, "n", json_integer((json_int_t)n));
    return ev;
}

static void *bench__thread(void *arg)
{
    struct bench *b = arg;
    uint64_t n = 0;

    while (clock_mono_ms() < b->until_ms) {
        int rc = b->sync ? audit_write(b->log, bench__event(n)) : audit_emit(b->log, bench__event(n));

        if (rc == 0)
            atomic_fetch_add(&b->done, 1);
        n++;
    }
    return NULL;
}

/* One run: threads writing for seconds; returns records per second. */
/* With ship: after the writers stop, how long until the collector had
 * acknowledged every record (ms, -1 if not within 30 s). */
static long bench__ship_lag(struct audit_log *log, uint64_t written)
{
    uint64_t t0 = clock_mono_ms();
    struct audit_ship_counters k;

    /* Every record acknowledged by the collector: nothing waits. */
    while (audit_get_ship_counters(log, &k) && (k.sent < written || k.behind_ms > 0)) {
        if (clock_mono_ms() - t0 > 30000)
            return -1;
        usleep(5000);
    }
    return (long)(clock_mono_ms() - t0);
}

static double bench__run(const char *dir, const char *name, bool sync, int threads, int seconds,
                         const struct keyring *keys, const struct audit_ship_config *ship,
                         struct audit_counters *counters, long *lag_ms)
{
    char path[512], err[256];
    struct audit_config cfg = {.path = path, .node = "bench", .keys = keys, .ship = ship,
                               .program = "quietroom-audit-bench"};
    struct bench b = {.sync = sync};
    pthread_t th[64];
    uint64_t start;

    snprintf(path, sizeof(path), "%s/%s.jsonl", dir, name);
    if ((b.log = audit_open(&cfg, err, sizeof(err))) == NULL) {
        fprintf(stderr, "audit_open: %s\n", err);
        exit(1);
    }
    start = clock_mono_ms();
    b.until_ms = start + (uint64_t)seconds * 1000;
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, bench__thread, &b);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    audit_flush(b.log);
    {
        double elapsed = (double)(clock_mono_ms() - start) / 1000.0;

        audit_get_counters(b.log, counters);
        /* The writer's own records (audit.open, checkpoints) come on top. */
        *lag_ms = ship != NULL ? bench__ship_lag(b.log, counters->written) : 0;
        audit_close(b.log);
        unlink(path); /* each run starts a chain of its own */
        snprintf(path, sizeof(path), "%s/.%s.jsonl.ship", dir, name);
        unlink(path);
        return (double)counters->written / elapsed;
    }
}

static int bench__cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* "median (min-max)" of n values (sorted in place). */
static void bench__stats(double *v, int n, char *out, size_t len)
{
    qsort(v, (size_t)n, sizeof(*v), bench__cmp);
    snprintf(out, len, "%.0f (%.0f-%.0f)", n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2,
             v[0], v[n - 1]);
}

/* Plain and shipped arms alternating, rounds times, for each mode. */
static void bench__ship_arms(const char *dir, int threads, int seconds, int rounds,
                             const struct keyring *keys, const struct audit_ship_config *ship)
{
    static const char *const arms[4] = {"audit_write", "audit_write + syslog", "audit_emit",
                                        "audit_emit + syslog"};
    double rate[4][16], lag[4][16];
    char a[64], b[64];

    for (int r = 0; r < rounds; r++) {
        for (int arm = 0; arm < 4; arm++) {
            struct audit_counters k;
            long l;

            rate[arm][r] = bench__run(dir, "arm", arm < 2, threads, seconds, keys,
                                      arm % 2 ? ship : NULL, &k, &l);
            lag[arm][r] = (double)l;
        }
    }
    printf("%-24s %26s %24s\n", "arm", "records/s median (min-max)", "all acked after ms");
    for (int arm = 0; arm < 4; arm++) {
        bench__stats(rate[arm], rounds, a, sizeof(a));
        bench__stats(lag[arm], rounds, b, sizeof(b));
        printf("%-24s %26s %24s\n", arms[arm], a, arm % 2 ? b : "-");
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"seconds", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'},
        {"syslog", required_argument, NULL, 'S'},
        {"syslog-ca", required_argument, NULL, 'C'},
        {"rounds", required_argument, NULL, 'r'},
        {0, 0, 0, 0},
    };
    struct audit_ship_config ship = {0};
    int rounds = 5;
    char dir[256] = "", keyfile[300], err[256];
    int seconds = 3, threads = 4, c;
    struct keyring keys;
    struct audit_counters cs, ca;
    double sync_rate, async_rate;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'd')
            snprintf(dir, sizeof(dir), "%s", optarg);
        else if (c == 's')
            seconds = atoi(optarg);
        else if (c == 't')
            threads = atoi(optarg);
        else if (c == 'S' && audit_ship_parse_target(&ship, optarg, err, sizeof(err)) != 0)
            return fprintf(stderr, "%s\n", err), 2;
        else if (c == 'C')
            snprintf(ship.ca_file, sizeof(ship.ca_file), "%s", optarg);
        else if (c == 'r')
            rounds = atoi(optarg);
        else if (c != 'S')
            return 2;
    }
    if (seconds < 1 || threads < 1 || threads > 64 || rounds < 1 || rounds > 16 ||
        (ship.host[0] != '\0') != (ship.ca_file[0] != '\0'))
        return 2;
    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/qr-audit-bench-XXXXXX");
        if (mkdtemp(dir) == NULL)
            return 1;
    }
    snprintf(keyfile, sizeof(keyfile), "%s/audit.key", dir);
    if (keyring_generate(keyfile, 1, err, sizeof(err)) != 0 ||
        keyring_load(keyfile, &keys, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (ship.host[0] != '\0') {
        bench__ship_arms(dir, threads, seconds, rounds, &keys, &ship);
        keyring_wipe(&keys);
        return 0;
    }
    {
        long lag;

        sync_rate = bench__run(dir, "sync", true, threads, seconds, &keys, NULL, &cs, &lag);
        async_rate = bench__run(dir, "async", false, threads, seconds, &keys, NULL, &ca, &lag);
    }
    printf("%-34s %12s %10s\n", "writers", "records/s", "lost");
    printf("%-34s %12.0f %10llu\n", "audit_write (waits for fdatasync)", sync_rate,
           (unsigned long long)cs.dropped);
    printf("%-34s %12.0f %10llu\n", "audit_emit (queue only)", async_rate,
           (unsigned long long)ca.dropped);
    printf("{\"threads\":%d,\"seconds\":%d,\"sync_per_s\":%.0f,\"async_per_s\":%.0f,"
           "\"async_lost\":%llu,\"dir\":\"%s\"}\n",
           threads, seconds, sync_rate, async_rate, (unsigned long long)ca.dropped, dir);
    keyring_wipe(&keys);
    return 0;
}
