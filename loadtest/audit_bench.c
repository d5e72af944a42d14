/* quietroom-audit-bench: how many audit records per second the writer makes
 * durable (fdatasync per group commit), for writers that wait for each
 * record (audit_write, as a crash-safe caller does) and for writers that
 * only queue (audit_emit, as the relay's threads do). A benchmark, not a
 * test: run it on the disk the audit log will live on.
 *
 *   quietroom-audit-bench [--dir DIR] [--seconds S] [--threads N]       */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quietroom/audit/audit.h"
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
static double bench__run(const char *dir, const char *name, bool sync, int threads, int seconds,
                         const struct keyring *keys, struct audit_counters *counters)
{
    char path[512], err[256];
    struct audit_config cfg = {.path = path, .node = "bench", .keys = keys};
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
        audit_close(b.log);
        return (double)counters->written / elapsed;
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"seconds", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'},
        {0, 0, 0, 0},
    };
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
        else
            return 2;
    }
    if (seconds < 1 || threads < 1 || threads > 64)
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
    sync_rate = bench__run(dir, "sync", true, threads, seconds, &keys, &cs);
    async_rate = bench__run(dir, "async", false, threads, seconds, &keys, &ca);
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
