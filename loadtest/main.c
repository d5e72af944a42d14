/* quietroom-loadtest: opens N sessions against a relay (or the benchmark's
 * other arms), brings their legs up, sends realistic SRTP media both ways on
 * an open-loop schedule, and reports delivery, loss, latency, and what it
 * cost the server and the generator. Every run ends by itself; traffic goes
 * to loopback only. */
#include <dirent.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "lt.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/keyring.h"

/* Long enough for the 30-minute soak (loadtest/soak.py); shorter than the
 * hour the relay credentials (legs.c) and TURN allocations (turn.c) last. */
#define LT_SECONDS_MAX 3000
#define LT_LINKS_MAX (LT_THREADS_MAX * LT_LEGS_PER_THREAD / 2)

static const struct lt_profile lt_profiles[] = {
    {"audio", 20000000, 1, 100, 160, 111, 0, 0, 0},
    {"video", 33333333, 5, 1150, 1250, 96, 0, 0, 0},
    {"av", 33333333, 5, 1150, 1250, 96, 20000000, 100, 160},
    /* The benchmark: 1,200-byte packets at 750 per second per leg. */
    {"bench", 1333333, 1, 1200, 1200, 96, 0, 0, 0},
};

static const char *const lt_transports[] = {[LT_TRANSPORT_UDP] = "udp",
                                            [LT_TRANSPORT_TCP] = "tcp"};

static const char *const lt_modes[] = {
    [LT_MODE_RELAY] = "relay", [LT_MODE_MINFWD] = "minfwd", [LT_MODE_TURN] = "turn",
    [LT_MODE_DIRECT] = "direct"};

/* --- readings of the server process and the kernel ----------------------- */

struct lt_proc {
    double cpu_s;
    long rss_kb;
    int fds;
};

static void lt__proc(int pid, struct lt_proc *out)
{
    char path[64], buf[4096];
    FILE *f;

    memset(out, 0, sizeof(*out));
    if (pid <= 0)
        return;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if ((f = fopen(path, "r")) != NULL) {
        unsigned long ut = 0, st = 0;
        char *p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;

        /* Fields after the command: state is 3rd; utime and stime 14th, 15th. */
        if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                                &ut, &st) == 2)
            out->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
        fclose(f);
    }
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if ((f = fopen(path, "r")) != NULL) {
        while (fgets(buf, sizeof(buf), f) != NULL)
            sscanf(buf, "VmRSS: %ld kB", &out->rss_kb);
        fclose(f);
    }
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    struct dirent *e;

    while (d != NULL && (e = readdir(d)) != NULL)
        out->fds += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
}

/* UDP receive-buffer and input errors from /proc/net/snmp. */
static void lt__udp_drops(unsigned long long *rcvbuf, unsigned long long *inerr)
{
    FILE *f = fopen("/proc/net/snmp", "r");
    char head[1024], vals[1024];

    *rcvbuf = *inerr = 0;
    while (f != NULL && fgets(head, sizeof(head), f) && fgets(vals, sizeof(vals), f)) {
        char *hs, *vs, *h = strtok_r(head, " \n", &hs), *v = strtok_r(vals, " \n", &vs);

        if (h == NULL || strcmp(h, "Udp:") != 0)
            continue;
        while ((h = strtok_r(NULL, " \n", &hs)) != NULL && (v = strtok_r(NULL, " \n", &vs))) {
            if (strcmp(h, "RcvbufErrors") == 0)
                *rcvbuf = strtoull(v, NULL, 10);
            if (strcmp(h, "InErrors") == 0)
                *inerr = strtoull(v, NULL, 10);
        }
    }
    if (f != NULL)
        fclose(f);
}

static double lt__self_cpu(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* --- one run ------------------------------------------------------------------ */

struct lt_result {
    unsigned links;
    double seconds, setup_s, setups_per_s, setups_per_cpu_s;
    uint64_t sent, received, bytes, corrupt, dup, reordered, late, send_errors, setup_failed;
    uint64_t consent_sent, consent_answered, tcp_closed;
    double loss, pps_sent, pps_received, bits_per_s;
    double p50_us, p99_us, p999_us, max_us;
    double server_cpu_s, server_cpu_per_mpkt, gen_cpu_s;
    long server_rss_kb;
    int server_fds;
    unsigned long long kernel_rcvbuf_errors, kernel_in_errors;
};

struct lt_run {
    const struct lt_options *opt;
    struct lt_thread *threads;
    pthread_barrier_t ready, armed, go;
    uint64_t start_ns, deadline_ns;
};

struct lt_arg {
    struct lt_run *run;
    struct lt_thread *t;
};

static void *lt__thread(void *arg)
{
    struct lt_arg *a = arg;

    lt_legs_setup(a->t);
    pthread_barrier_wait(&a->run->ready);
    /* Sessions are made after setup (not timed with it) and before the
     * start time is set (not eating into the measured window). */
    if (a->run->opt->seconds > 0)
        a->t->srtp_failed = lt_legs_srtp(a->t, a->t->first_link) != 0;
    pthread_barrier_wait(&a->run->armed);
    pthread_barrier_wait(&a->run->go); /* main set the start time */
    if (a->run->opt->seconds > 0 && !a->t->srtp_failed)
        lt_traffic_run(a->t, a->run->start_ns, a->run->deadline_ns);
    return NULL;
}

/* The latency (us) below which a fraction q of packets arrived; q = 1 gives
 * the largest seen. */
static double lt__percentile(const struct lt_thread *ts, unsigned n, uint64_t count, double q)
{
    uint64_t want = q >= 1.0 ? count - 1 : (uint64_t)(q * (double)count), seen = 0;

    if (count == 0)
        return 0;
    for (unsigned b = 0; b < LT_LAT_BUCKETS; b++) {
        for (unsigned i = 0; i < n; i++)
            seen += ts[i].lat[b];
        if (seen > want)
            return b;
    }
    return LT_LAT_BUCKETS; /* beyond the histogram */
}

static void lt__collect(struct lt_run *run, unsigned n, struct lt_result *r)
{
    uint64_t count = 0;

    for (unsigned i = 0; i < n; i++) {
        const struct lt_thread *t = &run->threads[i];

        r->sent += t->sent;
        r->received += t->received;
        r->bytes += t->bytes_sent;
        r->corrupt += t->corrupt;
        r->late += t->late_frames;
        r->send_errors += t->send_errors;
        r->setup_failed += t->setup_failed;
        r->consent_sent += t->consent_sent;
        r->consent_answered += t->consent_answered;
        r->tcp_closed += t->tcp_closed;
        count += t->lat_count;
        for (unsigned l = 0; l < t->n_legs; l++) {
            r->dup += t->legs[l].dup;
            r->reordered += t->legs[l].reordered;
        }
        if ((double)t->setup_ns / 1e9 > r->setup_s)
            r->setup_s = (double)t->setup_ns / 1e9;
    }
    r->loss = r->sent ? (double)(r->sent - (r->received < r->sent ? r->received : r->sent)) /
                            (double)r->sent
                      : 0.0;
    r->pps_sent = (double)r->sent / r->seconds;
    r->pps_received = (double)r->received / r->seconds;
    r->bits_per_s = (double)r->bytes * 8.0 / r->seconds;
    r->p50_us = lt__percentile(run->threads, n, count, 0.50);
    r->p99_us = lt__percentile(run->threads, n, count, 0.99);
    r->p999_us = lt__percentile(run->threads, n, count, 0.999);
    r->max_us = lt__percentile(run->threads, n, count, 1.0);
}

static int lt__start_threads(struct lt_run *run, unsigned links, pthread_t *th,
                             struct lt_arg *args)
{
    const struct lt_options *opt = run->opt;
    unsigned per = (links + opt->threads - 1) / opt->threads, first = 0;

    for (unsigned i = 0; i < opt->threads; i++) {
        struct lt_thread *t = &run->threads[i];
        unsigned mine = links - first < per ? links - first : per;

        t->id = i;
        t->opt = opt;
        t->first_link = first;
        t->fd = -1;
        if (lt_legs_init(t, first, mine) != 0 ||
            (opt->transport == LT_TRANSPORT_TCP ? lt_tcp_init(t) : lt_socket(t)) != 0) {
            fprintf(stderr, "loadtest: cannot set up thread %u\n", i);
            return -1;
        }
        first += mine;
        args[i] = (struct lt_arg){run, t};
        pthread_create(&th[i], NULL, lt__thread, &args[i]);
    }
    return 0;
}

static int lt__run(const struct lt_options *opt, unsigned links, struct lt_result *r)
{
    struct lt_run run = {.opt = opt};
    pthread_t th[LT_THREADS_MAX];
    struct lt_arg args[LT_THREADS_MAX];
    struct lt_proc before, after_setup, after;
    unsigned long long rb0, ie0, rb1, ie1;
    double gen0;

    memset(r, 0, sizeof(*r));
    r->links = links;
    if ((run.threads = calloc(opt->threads, sizeof(*run.threads))) == NULL)
        return -1;
    pthread_barrier_init(&run.ready, NULL, opt->threads + 1);
    pthread_barrier_init(&run.armed, NULL, opt->threads + 1);
    pthread_barrier_init(&run.go, NULL, opt->threads + 1);
    lt__proc(opt->server_pid, &before);
    if (lt__start_threads(&run, links, th, args) != 0)
        exit(1);
    pthread_barrier_wait(&run.ready);
    lt__proc(opt->server_pid, &after_setup);
    pthread_barrier_wait(&run.armed);
    for (unsigned i = 0; i < opt->threads; i++) {
        if (run.threads[i].srtp_failed) {
            fprintf(stderr, "loadtest: cannot create %u SRTP sessions within %llu s "
                            "(fewer links, or more threads)\n",
                    4 * links, LT_SRTP_BUDGET_NS / 1000000000ull);
            exit(1);
        }
    }
    lt__udp_drops(&rb0, &ie0);
    gen0 = lt__self_cpu();
    /* A little ahead, so every thread is waiting when the first frame is due. */
    run.start_ns = lt_now_ns() + 20000000ull;
    run.deadline_ns = run.start_ns + (uint64_t)opt->seconds * 1000000000ull;
    pthread_barrier_wait(&run.go);
    for (unsigned i = 0; i < opt->threads; i++)
        pthread_join(th[i], NULL);
    lt__proc(opt->server_pid, &after);
    lt__udp_drops(&rb1, &ie1);
    r->seconds = opt->seconds > 0 ? opt->seconds : 1;
    lt__collect(&run, opt->threads, r);
    r->setups_per_s = r->setup_s > 0 ? links / r->setup_s : 0;
    r->setups_per_cpu_s = after_setup.cpu_s > before.cpu_s
                              ? links / (after_setup.cpu_s - before.cpu_s)
                              : 0;
    r->server_cpu_s = after.cpu_s - after_setup.cpu_s;
    r->server_cpu_per_mpkt = r->received ? r->server_cpu_s * 1e6 / (double)r->received : 0;
    r->server_rss_kb = after.rss_kb;
    r->server_fds = after.fds;
    r->gen_cpu_s = lt__self_cpu() - gen0;
    r->kernel_rcvbuf_errors = rb1 - rb0;
    r->kernel_in_errors = ie1 - ie0;
    for (unsigned i = 0; i < opt->threads; i++) {
        lt_legs_free(&run.threads[i]);
        close(run.threads[i].fd);
    }
    free(run.threads);
    pthread_barrier_destroy(&run.ready);
    pthread_barrier_destroy(&run.armed);
    pthread_barrier_destroy(&run.go);
    return r->setup_failed == 0 ? 0 : -1;
}

/* --- reporting ----------------------------------------------------------------- */

static void lt__print(const struct lt_options *opt, const struct lt_result *r)
{
    printf("%s over %s, %u links (%u legs), profile %s, %.0f s, %u generator thread(s)\n",
           lt_modes[opt->mode], lt_transports[opt->transport], r->links, 2 * r->links,
           opt->profile.name, r->seconds,
           opt->threads);
    if (opt->mode == LT_MODE_RELAY || opt->mode == LT_MODE_TURN) {
        printf("  setup      %u links in %.3f s (%.0f setups/s", r->links, r->setup_s,
               r->setups_per_s);
        if (r->setups_per_cpu_s > 0)
            printf(", %.0f per server CPU-second", r->setups_per_cpu_s);
        printf("), %llu legs failed\n", (unsigned long long)r->setup_failed);
    }
    printf("  media      sent %llu (%.0f pps, %.1f Mbit/s), received %llu intact\n",
           (unsigned long long)r->sent, r->pps_sent, r->bits_per_s / 1e6,
           (unsigned long long)r->received);
    printf("  quality    loss %.4f %%, reordered %llu, duplicates %llu, corrupt %llu\n",
           r->loss * 100, (unsigned long long)r->reordered, (unsigned long long)r->dup,
           (unsigned long long)r->corrupt);
    printf("  latency    p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us\n", r->p50_us,
           r->p99_us, r->p999_us, r->max_us);
    if (opt->server_pid > 0)
        printf("  server     %.3f CPU-s, %.2f CPU-s per million packets, RSS %ld KiB, %d fds\n",
               r->server_cpu_s, r->server_cpu_per_mpkt, r->server_rss_kb, r->server_fds);
    printf("  generator  %.3f CPU-s (%.0f %% of one core), %llu late frames, %llu send errors\n",
           r->gen_cpu_s, r->gen_cpu_s / r->seconds * 100, (unsigned long long)r->late,
           (unsigned long long)r->send_errors);
    if (r->consent_sent > 0)
        printf("  consent    %llu checks sent during media, %llu answered\n",
               (unsigned long long)r->consent_sent, (unsigned long long)r->consent_answered);
    printf("  kernel     UDP RcvbufErrors +%llu, InErrors +%llu\n", r->kernel_rcvbuf_errors,
           r->kernel_in_errors);
    if (opt->transport == LT_TRANSPORT_TCP)
        printf("  tcp        %llu connections closed by the relay or broken\n",
               (unsigned long long)r->tcp_closed);
}

static json_t *lt__json(const struct lt_options *opt, const struct lt_result *r)
{
    json_t *doc = json_pack(
        "{s:s,s:s,s:i,s:f,s:f,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,"
        "s:f,s:f,s:f,s:f,s:I,s:i,s:I,s:I}",
        "mode", lt_modes[opt->mode], "profile", opt->profile.name, "links", (int)r->links,
        "seconds", r->seconds, "setup_s", r->setup_s, "setups_per_s", r->setups_per_s,
        "setups_per_server_cpu_s", r->setups_per_cpu_s, "sent", (json_int_t)r->sent, "received",
        (json_int_t)r->received, "corrupt", (json_int_t)r->corrupt, "duplicates",
        (json_int_t)r->dup, "reordered", (json_int_t)r->reordered, "late_frames",
        (json_int_t)r->late, "setup_failed", (json_int_t)r->setup_failed, "loss", r->loss,
        "pps_sent", r->pps_sent, "pps_received", r->pps_received, "bits_per_s", r->bits_per_s,
        "latency_p50_us", r->p50_us, "latency_p99_us", r->p99_us, "latency_p999_us",
        r->p999_us, "latency_max_us", r->max_us, "server_cpu_s", r->server_cpu_s,
        "server_cpu_s_per_mpkt", r->server_cpu_per_mpkt, "generator_cpu_s", r->gen_cpu_s,
        "server_rss_kb", (json_int_t)r->server_rss_kb, "server_fds", r->server_fds,
        "kernel_rcvbuf_errors", (json_int_t)r->kernel_rcvbuf_errors, "kernel_in_errors",
        (json_int_t)r->kernel_in_errors);

    /* Consent checks during media (relay mode), as a browser sends them. */
    json_object_set_new(doc, "consent_checks_sent", json_integer((json_int_t)r->consent_sent));
    json_object_set_new(doc, "consent_checks_answered",
                        json_integer((json_int_t)r->consent_answered));
    json_object_set_new(doc, "transport", json_string(lt_transports[opt->transport]));
    json_object_set_new(doc, "tcp_closed", json_integer((json_int_t)r->tcp_closed));
    return doc;
}

/* --- options ------------------------------------------------------------------ */

static void lt__usage(FILE *out)
{
    fprintf(out,
            "usage: quietroom-loadtest --mode relay|minfwd|turn|direct [--server ADDR:PORT]\n"
            "         [--transport udp|tcp]  (relay: tcp = ICE-TCP legs, a connection each to\n"
            "                                 the relay's --listen-tcp address given as --server)\n"
            "         [--secret-file F] [--turn-user U --turn-pass P] [--links N] [--seconds S]\n"
            "         [--threads T] [--profile audio|video|av|bench] [--pps N] [--size BYTES]\n"
            "         [--server-pid PID] [--json FILE] [--ramp] [--ramp-loss RATIO]\n"
            "         [--consent-ms MS]  (relay: a consent check per leg every MS on average,\n"
            "                             randomised +-20 %%; default 5000, as browsers)\n");
}

static int lt__profile(struct lt_options *o, const char *name)
{
    for (size_t i = 0; i < sizeof(lt_profiles) / sizeof(lt_profiles[0]); i++) {
        if (strcmp(lt_profiles[i].name, name) == 0) {
            o->profile = lt_profiles[i];
            return 0;
        }
    }
    return -1;
}

static int lt__mode(struct lt_options *o, const char *name)
{
    for (int m = 0; m <= LT_MODE_DIRECT; m++) {
        if (strcmp(lt_modes[m], name) == 0) {
            o->mode = (enum lt_mode)m;
            return 0;
        }
    }
    return -1;
}

static int lt__transport(struct lt_options *o, const char *name)
{
    for (int i = 0; i <= LT_TRANSPORT_TCP; i++) {
        if (strcmp(lt_transports[i], name) == 0) {
            o->transport = (enum lt_transport)i;
            return 0;
        }
    }
    return -1;
}

static int lt__options(int argc, char **argv, struct lt_options *o)
{
    static const struct option opts[] = {
        {"mode", required_argument, NULL, 'm'},       {"server", required_argument, NULL, 's'},
        {"secret-file", required_argument, NULL, 'k'}, {"turn-user", required_argument, NULL, 'u'},
        {"turn-pass", required_argument, NULL, 'p'},  {"links", required_argument, NULL, 'n'},
        {"seconds", required_argument, NULL, 'd'},    {"threads", required_argument, NULL, 't'},
        {"profile", required_argument, NULL, 'f'},    {"pps", required_argument, NULL, 'r'},
        {"size", required_argument, NULL, 'z'},       {"server-pid", required_argument, NULL, 'P'},
        {"json", required_argument, NULL, 'j'},       {"ramp", no_argument, NULL, 'R'},
        {"ramp-loss", required_argument, NULL, 'L'},  {"help", no_argument, NULL, 'h'},
        {"consent-ms", required_argument, NULL, 'C'}, {"transport", required_argument, NULL, 'T'},
        {0, 0, 0, 0},
    };
    char err[256];
    int c;

    *o = (struct lt_options){.links = 10, .threads = 1, .seconds = 5, .ramp_loss = 0.001,
                             .consent_ms = LT_CONSENT_MS};
    lt__profile(o, "av");
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': if (lt__mode(o, optarg) != 0) return -1; break;
        case 'T': if (lt__transport(o, optarg) != 0) return -1; break;
        case 's': if (netaddr_parse(optarg, &o->server) != 0 || !netaddr_is_loopback(&o->server)) {
                      fprintf(stderr, "loadtest: --server must be a loopback ADDR:PORT\n");
                      return -1;
                  }
                  break;
        case 'k': if (keyring_load(optarg, &o->keys, err, sizeof(err)) != 0) {
                      fprintf(stderr, "loadtest: %s\n", err);
                      return -1;
                  }
                  break;
        case 'u': o->turn_user = optarg; break;
        case 'p': o->turn_pass = optarg; break;
        case 'n': o->links = (unsigned)atoi(optarg); break;
        case 'd': o->seconds = (unsigned)atoi(optarg); break;
        case 't': o->threads = (unsigned)atoi(optarg); break;
        case 'f': if (lt__profile(o, optarg) != 0) return -1; break;
        case 'r': o->profile.frame_ns = 1000000000ull / (uint64_t)atoi(optarg);
                  o->profile.packets_per_frame = 1;
                  o->profile.name = "custom";
                  break;
        case 'z': o->profile.size_min = o->profile.size_max = (unsigned)atoi(optarg);
                  o->profile.name = "custom";
                  break;
        case 'P': o->server_pid = atoi(optarg); break;
        case 'j': o->json_path = optarg; break;
        case 'R': o->ramp = true; break;
        case 'L': o->ramp_loss = atof(optarg); break;
        case 'C': o->consent_ms = (unsigned)atoi(optarg);
                  if (o->consent_ms < 100) {
                      fprintf(stderr, "loadtest: --consent-ms is at least 100\n");
                      return -1;
                  }
                  break;
        default: return -1;
        }
    }
    if (o->links < 1 || o->links > LT_LINKS_MAX || o->threads < 1 ||
        o->threads > LT_THREADS_MAX || o->seconds > LT_SECONDS_MAX ||
        o->profile.size_min < 64 || o->profile.size_max > LT_PACKET_MAX ||
        o->profile.frame_ns == 0) {
        fprintf(stderr, "loadtest: links 1-%d, threads 1-%d, seconds 0-%d (0: setup only), "
                        "sizes 64-%d\n",
                LT_LINKS_MAX, LT_THREADS_MAX, LT_SECONDS_MAX, LT_PACKET_MAX);
        return -1;
    }
    if (o->transport == LT_TRANSPORT_TCP &&
        (o->mode != LT_MODE_RELAY || o->server.sa.sa_family != AF_INET)) {
        fprintf(stderr, "loadtest: --transport tcp is for --mode relay at an IPv4 address\n");
        return -1;
    }
    if (o->mode != LT_MODE_DIRECT && o->server.sa.sa_family == 0) {
        fprintf(stderr, "loadtest: --server is required\n");
        return -1;
    }
    if ((o->mode == LT_MODE_RELAY && o->keys.n == 0) ||
        (o->mode == LT_MODE_TURN && (o->turn_user == NULL || o->turn_pass == NULL))) {
        fprintf(stderr, "loadtest: relay needs --secret-file; turn needs --turn-user/--turn-pass\n");
        return -1;
    }
    return 0;
}

/* TCP legs hold a descriptor each: raise the soft limit as far as the hard
 * one allows, and refuse a run that would still run out. */
static int lt__fd_room(const struct lt_options *o)
{
    struct rlimit rl;
    rlim_t need = 2 * (rlim_t)o->links + 64;

    if (o->transport != LT_TRANSPORT_TCP || getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur >= need)
        return 0;
    fprintf(stderr, "loadtest: %u TCP legs need %llu descriptors; the limit is %llu\n",
            2 * o->links, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
    return -1;
}

/* Why a ramp step is not clean, or NULL if it is. */
static const char *lt__ramp_stop(const struct lt_options *opt, bool ran, const struct lt_result *r)
{
    if (!ran)
        return "the run failed";
    if (r->loss > opt->ramp_loss)
        return "loss above the limit";
    if (r->kernel_rcvbuf_errors != 0 || r->kernel_in_errors != 0)
        return "kernel drops";
    /* Beyond this the generator, not the server, sets the pace. */
    if (r->gen_cpu_s > LT_GENERATOR_SATURATED * r->seconds * opt->threads)
        return "the generator is saturated";
    return NULL;
}

/* Raises the load until loss passes the limit, the kernel drops or the
 * generator saturates; reports the highest clean step. */
static int lt__ramp(const struct lt_options *opt, json_t *out)
{
    struct lt_result r, best = {0};
    unsigned links = opt->links;

    for (int step = 0; step < 30; step++) {
        const char *stop = lt__ramp_stop(opt, lt__run(opt, links, &r) == 0, &r);

        lt__print(opt, &r);
        json_array_append_new(json_object_get(out, "steps"), lt__json(opt, &r));
        if (stop != NULL) {
            printf("ramp stops at %u links: %s\n", links, stop);
            json_object_set_new(out, "stopped_by", json_string(stop));
            break;
        }
        best = r;
        links = links + links / 4 + 1;
        if (links > LT_LINKS_MAX)
            break;
    }
    printf("highest clean load: %u links, %.0f pps received\n", best.links, best.pps_received);
    json_object_set_new(out, "highest_clean", lt__json(opt, &best));
    return best.links > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct lt_options opt;
    struct lt_result r;
    json_t *out = json_object();
    int rc;

    if (lt__options(argc, argv, &opt) != 0) {
        lt__usage(stderr);
        return 2;
    }
    if (lt__fd_room(&opt) != 0)
        return 2;
    srtp_init();
    if (opt.ramp) {
        json_object_set_new(out, "steps", json_array());
        rc = lt__ramp(&opt, out);
    } else {
        json_t *j;

        rc = lt__run(&opt, opt.links, &r) == 0 ? 0 : 1;
        lt__print(&opt, &r);
        j = lt__json(&opt, &r);
        json_object_update(out, j);
        json_decref(j);
    }
    if (opt.json_path != NULL && json_dump_file(out, opt.json_path, JSON_INDENT(2)) != 0)
        fprintf(stderr, "loadtest: cannot write %s\n", opt.json_path);
    json_decref(out);
    keyring_wipe(&opt.keys);
    srtp_shutdown();
    return rc;
}
