/* How many forwarding workers to run by default: one per CPU the process
 * may actually use, not one per CPU the host has. A relay pinned to one core
 * (taskset, systemd CPUAffinity=, a Kubernetes static CPU policy, a cpuset)
 * or held to a CFS quota would otherwise start workers that only fight over
 * that core. The core (cpus_parse_*, cpus_choose, cpus_describe) does no
 * I/O; cpus_detect reads the affinity mask and the cgroup files. */
#ifndef QUIETROOM_RELAY_CPUS_H
#define QUIETROOM_RELAY_CPUS_H

#include <stddef.h>
#include <stdint.h>

/* Why the relay runs the number of workers it does. */
enum cpus_reason {
    CPUS_CONFIGURED,    /* --workers N */
    CPUS_AFFINITY,      /* the CPUs in the process's affinity mask */
    CPUS_CGROUP_QUOTA,  /* a cgroup CPU quota allows fewer CPUs than the mask */
};

/* A CFS bandwidth limit: quota_us of CPU time every period_us. A zero
 * period means no limit. */
struct cpus_quota {
    uint64_t quota_us;
    uint64_t period_us;
};

struct cpus_choice {
    unsigned workers;             /* 1..QR_WORKERS_MAX */
    enum cpus_reason reason;
    unsigned affinity;            /* CPUs in the affinity mask (at least 1) */
    unsigned available;           /* affinity, or fewer if the quota allows fewer */
    struct cpus_quota quota;      /* the tightest quota found; period_us 0: none */
};

/* Parses the text of a cgroup v2 cpu.max ("max 100000", "150000 100000",
 * one optional trailing newline). Returns 0 with *q set (period 0 for
 * "max"), or -1 for anything else, and then *q means no limit. */
int cpus_parse_max(const char *text, size_t len, struct cpus_quota *q);
/* The same for cgroup v1's cpu.cfs_quota_us ("-1" is no limit) and
 * cpu.cfs_period_us. */
int cpus_parse_cfs(const char *quota, size_t quota_len, const char *period, size_t period_len,
                   struct cpus_quota *q);
/* CPUs a quota allows, rounded up (1.5 CPUs of time keep 2 workers busy);
 * 0 for no limit. */
uint64_t cpus_quota_cpus(const struct cpus_quota *q);
/* The tighter of two quotas (either may be no limit). */
struct cpus_quota cpus_quota_min(struct cpus_quota a, struct cpus_quota b);

/* Chooses the worker count: configured (--workers, 0 if not set) wins;
 * otherwise the CPUs in the affinity mask, or fewer if the quota (may be
 * NULL) allows fewer. Always within [1, QR_WORKERS_MAX]. */
void cpus_choose(unsigned configured, unsigned affinity, const struct cpus_quota *quota,
                 struct cpus_choice *out);
/* cpus_choose with the quota as the text of a cpu.max file (NULL when it
 * is absent or unreadable); malformed text counts as no limit. */
void cpus_workers(unsigned configured, unsigned affinity, const char *cpu_max, size_t len,
                  struct cpus_choice *out);
/* The reason as a metric label value: "configured", "affinity",
 * "cgroup_quota". */
const char *cpus_reason_name(enum cpus_reason reason);
/* One line for the start-up log: "2 workers (cpu affinity: 2 CPUs)". */
void cpus_describe(const struct cpus_choice *c, char *buf, size_t len);

/* I/O. CPUs in this process's affinity mask (sysconf's online count if the
 * kernel will not say). */
unsigned cpus_affinity(void);
/* The tightest CPU quota on this process's cgroup and its ancestors, v2
 * (cpu.max) and v1 (cpu.cfs_*); proc_root is normally "/proc" and
 * cgroup_root "/sys/fs/cgroup". Missing, unreadable or malformed files
 * count as no limit. */
void cpus_cgroup_quota(const char *proc_root, const char *cgroup_root, struct cpus_quota *q);
/* cpus_affinity, cpus_cgroup_quota and cpus_choose together. */
void cpus_detect(const char *proc_root, const char *cgroup_root, unsigned configured,
                 struct cpus_choice *out);

#endif
