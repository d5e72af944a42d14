/* Default worker count from the CPUs the relay may use. The cgroup files
 * are input from outside the program: every parse is strict and anything
 * unexpected counts as no limit, so a strange host never stops the relay
 * from starting, it only gets the affinity-sized default. */
#include "cpus.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "quietroom/base/limits.h"

/* /proc/self/cgroup is one short line per hierarchy; cgroup v1 hosts have
 * about a dozen. A file that does not fit is not one we understand. */
#define CPUS_PROC_CGROUP_MAX (16 * 1024)
/* cpu.max and cpu.cfs_* hold one or two decimal numbers. */
#define CPUS_VALUE_MAX 64
/* sched_getaffinity fails with EINVAL when the set is smaller than the
 * kernel's CPU mask; the set doubles from CPU_SETSIZE up to this many CPUs
 * (Linux's NR_CPUS is at most 8192 today). */
#define CPUS_SET_MAX (1 << 20)

static const struct cpus_quota cpus_unlimited = {0, 0};

/* Decimal digits only: no sign, no spaces, nothing that would overflow.
 * Returns the digits consumed, 0 if none or on overflow. */
static size_t cpus__u64(const char *s, size_t len, uint64_t *v)
{
    size_t i = 0;

    *v = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');

        if (*v > (UINT64_MAX - d) / 10)
            return 0;
        *v = *v * 10 + d;
    }
    return i;
}

/* A positive number that is the whole of the text but for one trailing
 * newline (how the kernel writes these files). */
static int cpus__positive(const char *s, size_t len, uint64_t *v)
{
    if (len > 0 && s[len - 1] == '\n')
        len--;
    return len > 0 && cpus__u64(s, len, v) == len && *v > 0 ? 0 : -1;
}

int cpus_parse_max(const char *text, size_t len, struct cpus_quota *q)
{
    static const char unlimited[] = "max ";
    struct cpus_quota got = {0, 0};
    uint64_t period;
    size_t p;

    *q = cpus_unlimited;
    if (text == NULL)
        return -1;
    if (len >= sizeof(unlimited) - 1 && memcmp(text, unlimited, sizeof(unlimited) - 1) == 0) {
        p = sizeof(unlimited) - 1;
    } else {
        p = cpus__u64(text, len, &got.quota_us);
        /* A zero quota is not something the kernel accepts. */
        if (p == 0 || got.quota_us == 0 || p >= len || text[p] != ' ')
            return -1;
        p++;
    }
    if (cpus__positive(text + p, len - p, &period) != 0)
        return -1;
    if (got.quota_us != 0)
        *q = (struct cpus_quota){got.quota_us, period};
    return 0;
}

int cpus_parse_cfs(const char *quota, size_t quota_len, const char *period, size_t period_len,
                   struct cpus_quota *q)
{
    static const char unlimited[] = "-1";
    struct cpus_quota got;

    *q = cpus_unlimited;
    if (quota == NULL || period == NULL ||
        cpus__positive(period, period_len, &got.period_us) != 0)
        return -1;
    if (quota_len > 0 && quota[quota_len - 1] == '\n')
        quota_len--;
    if (quota_len == sizeof(unlimited) - 1 && memcmp(quota, unlimited, quota_len) == 0)
        return 0;
    if (cpus__positive(quota, quota_len, &got.quota_us) != 0)
        return -1;
    *q = got;
    return 0;
}

uint64_t cpus_quota_cpus(const struct cpus_quota *q)
{
    uint64_t n;

    if (q == NULL || q->period_us == 0)
        return 0;
    /* Divided rather than added and divided, so no quota can overflow. */
    n = q->quota_us / q->period_us + (q->quota_us % q->period_us != 0);
    return n > 0 ? n : 1;
}

struct cpus_quota cpus_quota_min(struct cpus_quota a, struct cpus_quota b)
{
    if (a.period_us == 0)
        return b;
    if (b.period_us == 0)
        return a;
    /* Doubles are exact enough to pick the tighter of two limits; what is
     * decided from it (cpus_quota_cpus) is computed in integers. */
    return (double)a.quota_us / (double)a.period_us <= (double)b.quota_us / (double)b.period_us
               ? a
               : b;
}

void cpus_choose(unsigned configured, unsigned affinity, const struct cpus_quota *quota,
                 struct cpus_choice *out)
{
    uint64_t allowed = cpus_quota_cpus(quota);
    unsigned n;

    out->affinity = affinity > 0 ? affinity : 1;
    out->quota = allowed != 0 ? *quota : cpus_unlimited;
    out->available = out->affinity;
    out->reason = CPUS_AFFINITY;
    if (allowed != 0 && allowed < out->affinity) {
        out->available = (unsigned)allowed;
        out->reason = CPUS_CGROUP_QUOTA;
    }
    n = out->available;
    if (configured != 0) {
        n = configured;
        out->reason = CPUS_CONFIGURED;
    }
    out->workers = n < 1 ? 1 : n > QR_WORKERS_MAX ? QR_WORKERS_MAX : n;
}

void cpus_workers(unsigned configured, unsigned affinity, const char *cpu_max, size_t len,
                  struct cpus_choice *out)
{
    struct cpus_quota q;

    cpus_parse_max(cpu_max, len, &q); /* on failure q is no limit, as wanted */
    cpus_choose(configured, affinity, &q, out);
}

const char *cpus_reason_name(enum cpus_reason reason)
{
    static const char *const names[] = {
        [CPUS_CONFIGURED] = "configured",
        [CPUS_AFFINITY] = "affinity",
        [CPUS_CGROUP_QUOTA] = "cgroup_quota",
    };

    return (unsigned)reason < sizeof(names) / sizeof(names[0]) ? names[reason] : "unknown";
}

void cpus_describe(const struct cpus_choice *c, char *buf, size_t len)
{
    const char *s = c->workers == 1 ? "" : "s";
    double quota = c->quota.period_us ? (double)c->quota.quota_us / (double)c->quota.period_us : 0;
    int n;

    if (c->reason == CPUS_CONFIGURED && c->workers > c->available)
        n = snprintf(buf, len, "%u worker%s (--workers; %u CPU%s available)", c->workers, s,
                     c->available, c->available == 1 ? "" : "s");
    else if (c->reason == CPUS_CONFIGURED)
        n = snprintf(buf, len, "%u worker%s (--workers)", c->workers, s);
    else if (c->reason == CPUS_CGROUP_QUOTA)
        n = snprintf(buf, len, "%u worker%s (cgroup quota %g CPU%s)", c->workers, s, quota,
                     quota > 1 ? "s" : "");
    else
        n = snprintf(buf, len, "%u worker%s (cpu affinity: %u CPU%s)", c->workers, s,
                     c->affinity, c->affinity == 1 ? "" : "s");
    /* More CPUs than QR_WORKERS_MAX: say why not one per CPU. */
    if (n > 0 && (size_t)n < len && c->reason != CPUS_CONFIGURED && c->workers < c->available)
        snprintf(buf + n - 1, len - (size_t)n + 1, ", at most %d)", QR_WORKERS_MAX);
}

/* --- I/O ---------------------------------------------------------------- */

unsigned cpus_affinity(void)
{
    long online;

    for (int cpus = CPU_SETSIZE; cpus <= CPUS_SET_MAX; cpus *= 2) {
        cpu_set_t *set = CPU_ALLOC(cpus);
        size_t size = CPU_ALLOC_SIZE(cpus);
        int count = -1, err;

        if (set == NULL)
            break;
        CPU_ZERO_S(size, set);
        if (sched_getaffinity(0, size, set) == 0)
            count = CPU_COUNT_S(size, set);
        err = errno;
        CPU_FREE(set);
        if (count > 0)
            return (unsigned)count;
        if (count == 0 || err != EINVAL)
            break;
    }
    online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 && online < (long)UINT_MAX ? (unsigned)online : 1;
}

/* A whole small file into buf (not terminated). Returns its length, or -1
 * if it cannot be read or does not fit. */
static ssize_t cpus__read(const char *path, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    while (len < cap) {
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    return n < 0 || len == cap ? -1 : (ssize_t)len;
}

/* The quota set on one cgroup directory: cpu.max (v2) or cpu.cfs_* (v1). */
static struct cpus_quota cpus__dir_quota(const char *dir, bool v1)
{
    char path[PATH_MAX], text[CPUS_VALUE_MAX], period[CPUS_VALUE_MAX];
    struct cpus_quota q = cpus_unlimited;
    ssize_t n, m;
    int len;

    if (!v1) {
        len = snprintf(path, sizeof(path), "%s/cpu.max", dir);
        if (len > 0 && (size_t)len < sizeof(path) &&
            (n = cpus__read(path, text, sizeof(text))) >= 0)
            cpus_parse_max(text, (size_t)n, &q);
        return q;
    }
    len = snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
    if (len <= 0 || (size_t)len >= sizeof(path) || (n = cpus__read(path, text, sizeof(text))) < 0)
        return q;
    len = snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir);
    if (len <= 0 || (size_t)len >= sizeof(path) ||
        (m = cpus__read(path, period, sizeof(period))) < 0)
        return q;
    cpus_parse_cfs(text, (size_t)n, period, (size_t)m, &q);
    return q;
}

/* A cgroup path as the kernel writes it: absolute, and never climbing out
 * of the hierarchy's mount. */
static bool cpus__path_ok(const char *path)
{
    const char *p = path;

    if (path[0] != '/')
        return false;
    while ((p = strstr(p, "/..")) != NULL) {
        if (p[3] == '/' || p[3] == '\0')
            return false;
        p += 3;
    }
    return true;
}

/* The tightest quota on the cgroup at path under mount and on each of its
 * ancestors: a limit on a parent holds for every child. Walking up also
 * finds the container's own limit when the cgroup path is the host's
 * (/docker/ID) but only the container's subtree is mounted. */
static struct cpus_quota cpus__walk(const char *mount, const char *path, bool v1)
{
    char dir[PATH_MAX];
    struct cpus_quota best = cpus_unlimited;
    size_t mlen = strlen(mount);
    char *cut;
    int len;

    if (!cpus__path_ok(path))
        return best;
    len = snprintf(dir, sizeof(dir), "%s%s", mount, path);
    if (len <= 0 || (size_t)len >= sizeof(dir))
        return best;
    while ((size_t)len > mlen && dir[len - 1] == '/')
        dir[--len] = '\0';
    for (;;) {
        best = cpus_quota_min(best, cpus__dir_quota(dir, v1));
        if ((cut = strrchr(dir + mlen, '/')) == NULL)
            break;
        *cut = '\0';
    }
    return best;
}

/* True if the comma-separated list holds the controller name. */
static bool cpus__has_controller(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list;; p++) {
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
        if ((p = strchr(p, ',')) == NULL)
            return false;
    }
}

/* One line of /proc/self/cgroup, "ID:CONTROLLERS:PATH": the v2 line is
 * "0::PATH"; a v1 line naming the cpu controller is mounted at
 * cgroup_root/CONTROLLERS (Debian: cpu,cpuacct) or at cgroup_root/cpu. */
static struct cpus_quota cpus__line(char *line, const char *cgroup_root)
{
    char mount[PATH_MAX];
    struct cpus_quota q = cpus_unlimited;
    char *ctrl = strchr(line, ':'), *path;
    int len;

    if (ctrl == NULL || (path = strchr(ctrl + 1, ':')) == NULL)
        return q;
    *ctrl++ = '\0';
    *path++ = '\0';
    if (strcmp(line, "0") == 0 && ctrl[0] == '\0')
        return cpus__walk(cgroup_root, path, false);
    if (!cpus__has_controller(ctrl, "cpu") || strchr(ctrl, '/') != NULL)
        return q;
    len = snprintf(mount, sizeof(mount), "%s/%s", cgroup_root, ctrl);
    if (len > 0 && (size_t)len < sizeof(mount))
        q = cpus__walk(mount, path, true);
    if (strcmp(ctrl, "cpu") != 0) {
        len = snprintf(mount, sizeof(mount), "%s/cpu", cgroup_root);
        if (len > 0 && (size_t)len < sizeof(mount))
            q = cpus_quota_min(q, cpus__walk(mount, path, true));
    }
    return q;
}

void cpus_cgroup_quota(const char *proc_root, const char *cgroup_root, struct cpus_quota *q)
{
    char path[PATH_MAX], buf[CPUS_PROC_CGROUP_MAX + 1];
    ssize_t n;
    int len;

    *q = cpus_unlimited;
    len = snprintf(path, sizeof(path), "%s/self/cgroup", proc_root);
    if (len <= 0 || (size_t)len >= sizeof(path) ||
        (n = cpus__read(path, buf, sizeof(buf) - 1)) < 0)
        return;
    buf[n] = '\0';
    /* A NUL inside the file ends it early; the lines before it still count. */
    for (char *line = buf, *next; line != NULL && *line != '\0'; line = next) {
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        *q = cpus_quota_min(*q, cpus__line(line, cgroup_root));
    }
}

void cpus_detect(const char *proc_root, const char *cgroup_root, unsigned configured,
                 struct cpus_choice *out)
{
    struct cpus_quota q;

    cpus_cgroup_quota(proc_root, cgroup_root, &q);
    cpus_choose(configured, cpus_affinity(), &q, out);
}
