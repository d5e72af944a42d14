/* quietroom-kfwdbench: what a read of the kernel path's counters costs, and
 * how long of it holds the relay's table lock (a STUN bind waits for that).
 * kfwd_pull_all runs once per /metrics scrape or stats call: the map read
 * without the lock, the fold into the legs under it. Loads the real program
 * (root) for a loopback listen address without attaching it, fills its map
 * with N flows, and times ROUNDS reads for each N, each step apart: median
 * and min-max in microseconds, and nanoseconds per flow.
 *
 *   quietroom-kfwdbench [ROUNDS [N...]]      (defaults: 21; 0 1024 8192 32768)
 *
 * Each flow is installed as the relay installs it and folds into its link
 * (same generation); the totals are checked against the sum of all flows. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "kfwd_int.h"
#include "link.h"
#include "quietroom/base/netaddr.h"

#define BENCH_ROUNDS 21
#define BENCH_SIZES_MAX 16

static const unsigned bench_default_sizes[] = {0, 1024, 8192, 32768};

static int bench__cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double bench__now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Flow i: from 127.0.0.2 + i / 65536, port i % 65536, to 127.0.0.1:3478;
 * leg i % 2 of link i / 2, generation 0 (a fresh link's); installed as the
 * relay installs it, so that the fold takes it. */
static int bench__add(struct kfwd *kf, unsigned i)
{
    struct kfwd_key k = {.family = AF_INET, .local_port = htons(3478)};
    struct kfwd_value v = {.ifindex = 1, .link = i / 2, .gen_side = i % 2};
    uint32_t local = htonl(0x7f000001), remote = htonl(0x7f000002 + (i >> 16));

    memcpy(k.local, &local, 4);
    memcpy(k.remote, &remote, 4);
    k.remote_port = htons((uint16_t)(i & 0xffff));
    memcpy(v.src, &local, 4);
    memcpy(v.dst, &remote, 4);
    v.src_port = htons(3478);
    v.dst_port = htons((uint16_t)((i ^ 1) & 0xffff));
    v.packets = 1000 + i;
    v.bytes = 160000 + i;
    if (bpf_map_update_elem(kf->map_fd, &k, &v, BPF_NOEXIST) != 0)
        return -1;
    kf->installed[i] = k;
    return 0;
}

/* Sorts and prints the median and min-max of n samples. */
static void bench__print(const char *what, double *us, unsigned n, unsigned flows)
{
    qsort(us, n, sizeof(*us), bench__cmp);
    printf("  %s %10.1f us (%.1f-%.1f)", what, us[n / 2], us[0], us[n - 1]);
    if (flows > 0)
        printf(" %6.1f ns/flow", us[n / 2] * 1e3 / flows);
}

/* kfwd_pull_all's steps timed apart: the map read, which runs without the
 * table lock, and the fold into the legs, which holds it. */
static int bench__report(struct kfwd *kf, struct link *links, unsigned flows, unsigned rounds,
                         double *read_us, double *fold_us)
{
    struct kfwd_totals tot;

    for (unsigned r = 0; r < rounds; r++) {
        uint64_t epoch = kfwd__pull_begin(kf);
        double t0 = bench__now_us(), t1;
        int64_t n = kfwd__read_all(kf);

        t1 = bench__now_us();
        if (n != (int64_t)flows) {
            fprintf(stderr, "read %lld flows of %u\n", (long long)n, flows);
            return -1;
        }
        kfwd__fold_all(kf, links, (uint32_t)n, epoch);
        read_us[r] = t1 - t0;
        fold_us[r] = bench__now_us() - t1;
    }
    /* Every flow folded: the totals are the sum of what bench__add wrote. */
    kfwd_totals(kf, &tot);
    if (tot.packets != (uint64_t)flows * 1000 + (uint64_t)flows * (flows - (flows > 0)) / 2) {
        fprintf(stderr, "%u flows: totals %llu, not every flow folded\n", flows,
                (unsigned long long)tot.packets);
        return -1;
    }
    printf("%8u flows:", flows);
    bench__print("read (no lock)", read_us, rounds, flows);
    bench__print(" fold (table lock)", fold_us, rounds, flows);
    printf("\n");
    return 0;
}

static int bench__args(int argc, char **argv, unsigned *rounds, unsigned *sizes, unsigned *n)
{
    *rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : BENCH_ROUNDS;
    *n = 0;
    for (int i = 2; i < argc && *n < BENCH_SIZES_MAX; i++)
        sizes[(*n)++] = (unsigned)strtoul(argv[i], NULL, 10);
    if (*n == 0) {
        *n = sizeof(bench_default_sizes) / sizeof(bench_default_sizes[0]);
        memcpy(sizes, bench_default_sizes, sizeof(bench_default_sizes));
    }
    for (unsigned i = 1; i < *n; i++)
        if (sizes[i] < sizes[i - 1])
            return -1;
    return *rounds > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    unsigned rounds, sizes[BENCH_SIZES_MAX], n, filled = 0;
    union netaddr listen;
    enum kfwd_reason reason;
    struct link *links = NULL;
    struct kfwd *kf = NULL;
    double *read_us = NULL, *fold_us = NULL;
    char err[256];
    int rc = 1;

    if (bench__args(argc, argv, &rounds, sizes, &n) != 0) {
        fprintf(stderr, "usage: quietroom-kfwdbench [ROUNDS [N...]] (N ascending)\n");
        return 2;
    }
    netaddr_parse("127.0.0.1:3478", &listen);
    kf = kfwd__open(&listen, 1, sizes[n - 1] / 2 + 1, &reason, err, sizeof(err));
    if (kf == NULL) {
        fprintf(stderr, "kernel path: %s: %s\n", kfwd_reason_name(reason), err);
        goto fail;
    }
    links = calloc(sizes[n - 1] / 2 + 1, sizeof(*links));
    read_us = calloc(rounds, sizeof(*read_us));
    fold_us = calloc(rounds, sizeof(*fold_us));
    if (links == NULL || read_us == NULL || fold_us == NULL) {
        fprintf(stderr, "out of memory\n");
        goto fail;
    }
    printf("kfwd_pull_all, %u rounds each (median, min-max):\n", rounds);
    for (unsigned s = 0; s < n; s++) {
        for (; filled < sizes[s]; filled++)
            if (bench__add(kf, filled) != 0) {
                fprintf(stderr, "cannot add flow %u: %s\n", filled, strerror(errno));
                goto fail;
            }
        if (bench__report(kf, links, filled, rounds, read_us, fold_us) != 0)
            goto fail;
    }
    rc = 0;
fail:
    free(fold_us);
    free(read_us);
    free(links);
    kfwd_free(kf);
    return rc;
}
