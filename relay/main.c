/* quietroom-relay: start-up, the main thread's loop (control endpoint,
 * housekeeping timer, signals) and orderly shutdown. Forwarding happens in
 * the worker threads. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "control.h"
#include "caps.h"
#include "events.h"
#include "kfwd.h"
#include "lifecycle.h"
#include "ops.h"
#include "quietroom/audit/audit_settings.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/daemon.h"
#include "quietroom/ops/listener.h"
#include "quietroom/base/log.h"
#include "relay.h"
#include "tcp.h"
#include "worker.h"

#define TAG_TIMER 1
#define TAG_SIGNAL 2

/* One worker per CPU the relay may run on (its affinity mask, less if a
 * cgroup quota allows less), unless --workers says otherwise: more workers
 * than CPUs only take turns on the same cores. */
static unsigned relay__worker_count(struct relay *r)
{
    cpus_detect("/proc", "/sys/fs/cgroup", r->cfg.workers, &r->cpus);
    return r->cpus.workers;
}

/* Opens every worker's socket for each of the n addresses with open_fn:
 * fds[w * stride + l]. With port 0 the first socket picks the port and the
 * others join it. */
static int relay__sockets(struct relay *r, union netaddr *addrs, unsigned n,
                          int (*open_fn)(const union netaddr *), const char *proto, int *fds,
                          unsigned stride)
{
    for (unsigned l = 0; l < n; l++) {
        for (unsigned w = 0; w < r->n_workers; w++) {
            char text[NETADDR_STRLEN];
            socklen_t len = sizeof(addrs[l]);
            int fd = open_fn(&addrs[l]);

            fds[w * stride + l] = fd;
            if (fd < 0) {
                log_error("listen %s %s: %s", proto,
                          netaddr_format(&addrs[l], text, sizeof(text)), strerror(errno));
                return -1;
            }
            if (w == 0 && getsockname(fd, &addrs[l].sa, &len) != 0)
                return -1;
        }
    }
    return 0;
}

/* Each ICE-TCP connection is a file descriptor: the soft limit is raised to
 * the hard one, and max-tcp-connections lowered to what it leaves, so that
 * accept never runs out of them in normal operation. */
static void relay__fd_limit(struct relay *r)
{
    uint64_t want = (uint64_t)r->cfg.max_tcp_conns + QR_TCP_FD_RESERVE;
    struct rlimit rl;

    if (r->cfg.n_listen_tcp == 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return;
    r->cfg.max_tcp_conns =
        rl.rlim_cur > QR_TCP_FD_RESERVE + 1 ? (uint32_t)(rl.rlim_cur - QR_TCP_FD_RESERVE) : 1;
    log_warn("max-tcp-connections lowered to %u: only %llu file descriptors (LimitNOFILE)",
             r->cfg.max_tcp_conns, (unsigned long long)rl.rlim_cur);
}

static int relay__start_workers(struct relay *r)
{
    int fds[QR_WORKERS_MAX][QR_LISTEN_MAX], tcp[QR_WORKERS_MAX][QR_TCP_LISTEN_MAX];

    for (unsigned w = 0; w < QR_WORKERS_MAX; w++) {
        for (unsigned l = 0; l < QR_LISTEN_MAX; l++)
            fds[w][l] = -1;
        for (unsigned l = 0; l < QR_TCP_LISTEN_MAX; l++)
            tcp[w][l] = -1;
    }
    if (relay__sockets(r, r->cfg.listen, r->cfg.n_listen, worker_socket, "udp", &fds[0][0],
                       QR_LISTEN_MAX) != 0 ||
        relay__sockets(r, r->cfg.listen_tcp, r->cfg.n_listen_tcp, tcp_listen_socket, "tcp",
                       &tcp[0][0], QR_TCP_LISTEN_MAX) != 0)
        goto fail;
    for (unsigned w = 0; w < r->n_workers; w++) {
        r->workers[w] = worker_new(r, w, fds[w], r->cfg.n_listen, tcp[w], r->cfg.n_listen_tcp);
        for (unsigned l = 0; l < r->cfg.n_listen; l++)
            fds[w][l] = -1; /* the worker's now, even if it failed */
        for (unsigned l = 0; l < r->cfg.n_listen_tcp; l++)
            tcp[w][l] = -1;
        if (r->workers[w] == NULL) {
            log_error("cannot create worker %u (out of memory or file descriptors?)", w);
            goto fail;
        }
    }
    for (unsigned w = 0; w < r->n_workers; w++) {
        if (worker_start(r->workers[w]) != 0) {
            log_error("cannot start worker thread %u", w);
            atomic_store(&r->stopping, true);
            for (unsigned j = 0; j < w; j++)
                worker_join(r->workers[j]);
            return -1;
        }
    }
    return 0;
fail:
    for (unsigned w = 0; w < QR_WORKERS_MAX; w++) {
        for (unsigned l = 0; l < QR_LISTEN_MAX; l++)
            if (fds[w][l] >= 0)
                close(fds[w][l]);
        for (unsigned l = 0; l < QR_TCP_LISTEN_MAX; l++)
            if (tcp[w][l] >= 0)
                close(tcp[w][l]);
    }
    return -1;
}

/* Tells tests and supervisors where the relay ended up (ports may be 0 in
 * the configuration). */
static int relay__ready_file(struct relay *r, const struct control *ctl)
{
    char text[NETADDR_STRLEN];
    json_t *doc = json_pack("{s:[],s:[],s:s,s:i,s:i}", "listen", "listen_tcp", "control",
                            netaddr_format(control_address(ctl), text, sizeof(text)), "ops_port",
                            ops_port(r), "pid", (int)getpid());
    int rc;

    for (unsigned l = 0; doc != NULL && l < r->cfg.n_listen; l++)
        json_array_append_new(json_object_get(doc, "listen"),
                              json_string(netaddr_format(&r->cfg.listen[l], text, sizeof(text))));
    for (unsigned l = 0; doc != NULL && l < r->cfg.n_listen_tcp; l++)
        json_array_append_new(json_object_get(doc, "listen_tcp"),
                              json_string(netaddr_format(&r->cfg.listen_tcp[l], text,
                                                         sizeof(text))));
    rc = daemon_write_ready_file(r->cfg.ready_file, doc);
    json_decref(doc);
    return rc;
}

/* A second copy started by mistake stops here, before it reads a key or
 * writes a record: every address it would serve is claimed (lock files,
 * and a trial bind against anyone else), and audit_open, next, locks the
 * audit log. */
static int relay__claim(struct relay *r)
{
    const struct daemon_settings *d = &r->cfg.daemon;
    struct daemon_address addrs[QR_LISTEN_MAX + QR_TCP_LISTEN_MAX + 2];
    unsigned n = 0;

    for (unsigned l = 0; l < r->cfg.n_listen; l++)
        addrs[n++] = (struct daemon_address){"udp", &r->cfg.listen[l]};
    for (unsigned l = 0; l < r->cfg.n_listen_tcp; l++)
        addrs[n++] = (struct daemon_address){"tcp", &r->cfg.listen_tcp[l]};
    addrs[n++] = (struct daemon_address){"tcp", &r->cfg.control};
    if (d->has_ops)
        addrs[n++] = (struct daemon_address){"tcp", &d->ops_listen};
    return daemon_claim(&r->locks, d->instance.runtime_dir, addrs, n);
}

/* The TCP listeners (control, operator, ICE-TCP) are where the configuration says,
 * as the kernel sees them; the UDP sockets are bound by our own code to the
 * configured addresses (worker_socket). */
static int relay__verify_listeners(struct relay *r, const struct control *ctl)
{
    union netaddr want[2 + QR_TCP_LISTEN_MAX] = {*control_address(ctl), r->cfg.daemon.ops_listen};
    unsigned n = r->cfg.daemon.has_ops ? 2 : 1;
    char err[256];

    netaddr_set_port(&want[1], (uint16_t)ops_port(r));
    for (unsigned l = 0; l < r->cfg.n_listen_tcp; l++)
        want[n++] = r->cfg.listen_tcp[l];
    if (listener_verify(want, n, err, sizeof(err)) != 0) {
        log_error("refusing to serve: %s", err);
        return -1;
    }
    return 0;
}

static int relay__init(struct relay *r, int argc, char **argv, int *exit_code)
{
    char err[512];
    enum config_result cr = relay_config_load(&r->cfg, argc, argv, err, sizeof(err));

    if (daemon_begin(cr, "quietroom-relay", err, &r->cfg.daemon, exit_code) != 0)
        return -1;
    if (relay__claim(r) != 0)
        return -1;
    if (keyring_load(r->cfg.secret_file, &r->keyring[0], err, sizeof(err)) != 0) {
        log_error("secret file: %s", err);
        return -1;
    }
    atomic_store(&r->keys, &r->keyring[0]);
    atomic_store(&r->live.max_ttl_s, r->cfg.max_ttl_s);
    atomic_store(&r->live.consent_timeout_s, r->cfg.consent_timeout_s);
    atomic_store(&r->live.drain_timeout_s, r->cfg.daemon.drain_timeout_s);
    atomic_store(&r->live.creds_v1_refused, !r->cfg.accept_creds_v1);
    metrics_histogram_init(&r->loss, stats_loss_bounds, STATS_LOSS_BOUNDS, 1e6);
    r->argc = argc;
    r->argv = argv;
    if (RAND_bytes((unsigned char *)&r->seed, sizeof(r->seed)) != 1) {
        log_error("no randomness available");
        return -1;
    }
    r->n_workers = relay__worker_count(r);
    relay__fd_limit(r);
    if ((r->table = table_new(r->cfg.max_links, r->seed, events_leg_down, r)) == NULL) {
        log_error("cannot allocate %u links", r->cfg.max_links);
        return -1;
    }
    r->audit = audit_settings_open(&r->cfg.audit, r->cfg.daemon.node_id, "quietroom-relay",
                                   err, sizeof(err));
    if (r->audit == NULL && err[0] != '\0') {
        log_error("audit log: %s", err);
        return -1;
    }
    if (r->audit == NULL)
        log_warn("no audit log configured (--audit-log): leg events are not recorded");
    r->started_wall_ms = clock_wall_ms();
    r->started_mono_ms = clock_mono_ms();
    return 0;
}

/* The signals the main loop handles through a signalfd. They are blocked
 * before any thread exists (the audit writer included), so that no thread
 * can take one with its default action. */
static void relay__signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

/* The main loop's fds: a periodic timer and the signals. */
static int relay__loop_fds(int epfd, int *tfd, int *sfd)
{
    struct itimerspec its = {
        .it_interval = {.tv_nsec = QR_HOUSEKEEP_MS * 1000000L},
        .it_value = {.tv_nsec = QR_HOUSEKEEP_MS * 1000000L},
    };
    struct epoll_event tev = {.events = EPOLLIN, .data.u64 = TAG_TIMER};
    struct epoll_event sev = {.events = EPOLLIN, .data.u64 = TAG_SIGNAL};
    sigset_t set;

    relay__signal_set(&set);
    if ((*sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
        (*tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
        timerfd_settime(*tfd, 0, &its, NULL) != 0 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, *tfd, &tev) != 0 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, *sfd, &sev) != 0)
        return -1;
    return 0;
}

static void relay__housekeep(struct relay *r, struct control *ctl, int tfd)
{
    uint64_t qs[QR_WORKERS_MAX], expirations;

    if (read(tfd, &expirations, sizeof(expirations)) < 0)
        return;
    for (unsigned w = 0; w < r->n_workers; w++)
        qs[w] = atomic_load_explicit(&r->workers[w]->quiescent, memory_order_acquire);
    table_housekeep(r->table, clock_mono_ms(), clock_wall_s(),
                    (uint64_t)atomic_load(&r->live.consent_timeout_s) * 1000, qs, r->n_workers);
    lifecycle_watch(r, clock_mono_ms());
    control_tick(ctl, clock_mono_ms());
}

/* SIGTERM drains (a second one stops), SIGINT stops, SIGHUP reloads.
 * Returns true when the relay should stop now. */
static bool relay__signal(struct relay *r, int sfd)
{
    struct signalfd_siginfo si;

    if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return false;
    if (si.ssi_signo == SIGHUP) {
        lifecycle_reload(r);
        return false;
    }
    if (si.ssi_signo == SIGTERM && !atomic_load(&r->draining)) {
        lifecycle_drain(r, clock_mono_ms());
        return lifecycle_drained(r, clock_mono_ms());
    }
    log_info("signal %u: stopping", si.ssi_signo);
    return true;
}

static void relay__run(struct relay *r, int epfd, int tfd, int sfd, struct control *ctl)
{
    bool stop = false;

    while (!stop) {
        struct epoll_event ev[QR_CONTROL_CLIENTS_MAX + 4];
        int n = epoll_wait(epfd, ev, QR_CONTROL_CLIENTS_MAX + 4, -1);

        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == TAG_TIMER) {
                relay__housekeep(r, ctl, tfd);
                stop = stop || lifecycle_drained(r, clock_mono_ms());
            } else if (ev[i].data.u64 == TAG_SIGNAL) {
                stop = stop || relay__signal(r, sfd);
            } else {
                control_event(ctl, ev[i].data.u64, ev[i].events);
            }
        }
    }
}

/* The kernel path, once the sockets are bound: their ports are part of the
 * flows. `on` makes a failure fatal; `auto` says why and goes on. */
static int relay__kernel_path_start(struct relay *r)
{
    enum kfwd_mode mode = r->cfg.kernel_forward;
    char err[256];
    const char *names;
    unsigned n;

    r->kfwd = kfwd_start(mode, r->cfg.listen, r->cfg.n_listen, r->cfg.max_links, &r->kfwd_reason,
                         err, sizeof(err));
    if (r->kfwd != NULL) {
        table_set_kfwd(r->table, r->kfwd);
        names = kfwd_interfaces(r->kfwd, &n);
        log_info("kernel path on: %u interface(s) (%s)", n, names);
        return 0;
    }
    if (mode == KFWD_ON) {
        log_error("kernel-forward on: %s: %s", kfwd_reason_name(r->kfwd_reason), err);
        return -1;
    }
    if (mode == KFWD_AUTO)
        log_warn("kernel path off: %s: %s", kfwd_reason_name(r->kfwd_reason), err);
    return 0;
}

/* The kernel path's step, after which the privileges it needed are given
 * up whatever came of it: on, fallen back or off. */
static int relay__kernel_path(struct relay *r)
{
    int rc = relay__kernel_path_start(r);

    if (caps_drop_kernel_path() != 0)
        log_warn("cannot give up CAP_BPF and CAP_NET_ADMIN: %s", strerror(errno));
    return rc;
}

static void relay__log_listening(const struct relay *r, const struct control *ctl)
{
    char text[NETADDR_STRLEN], workers[128];

    for (unsigned l = 0; l < r->cfg.n_listen; l++)
        log_info("media on udp %s", netaddr_format(&r->cfg.listen[l], text, sizeof(text)));
    for (unsigned l = 0; l < r->cfg.n_listen_tcp; l++)
        log_info("media on tcp %s (ICE-TCP, passive)",
                 netaddr_format(&r->cfg.listen_tcp[l], text, sizeof(text)));
    cpus_describe(&r->cpus, workers, sizeof(workers));
    log_info("control on tcp %s; %s, %u link slots, %u key(s)",
             netaddr_format(control_address(ctl), text, sizeof(text)), workers,
             r->cfg.max_links, relay_keys(r)->n);
}

int main(int argc, char **argv)
{
    struct relay relay = {0};
    struct relay *r = &relay;
    struct control *ctl = NULL;
    int epfd = -1, tfd = -1, sfd = -1, code = 1;
    bool workers_running = false, started = false;
    char err[256];
    sigset_t set;

    relay__signal_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (relay__init(r, argc, argv, &code) != 0)
        goto out;
    code = 1;
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 || relay__loop_fds(epfd, &tfd, &sfd) != 0) {
        log_error("event loop: %s", strerror(errno));
        goto out;
    }
    if ((ctl = control_new(r, epfd, err, sizeof(err))) == NULL) {
        log_error("%s", err);
        goto out;
    }
    if (relay__start_workers(r) != 0)
        goto out;
    workers_running = true;
    if (relay__kernel_path(r) != 0)
        goto out;
    lifecycle_start(r, clock_mono_ms());
    if (ops_start(r, err, sizeof(err)) != 0) {
        log_error("ops-listen: %s", err);
        goto out;
    }
    if (relay__verify_listeners(r, ctl) != 0)
        goto out;
    relay__log_listening(r, ctl);
    if (r->cfg.ready_file[0] != '\0' && relay__ready_file(r, ctl) != 0)
        goto out;
    events_relay(r, "relay.start");
    started = true;
    relay__run(r, epfd, tfd, sfd, ctl);
    code = 0;
out:
    ops_stop(r);
    atomic_store(&r->stopping, true);
    if (workers_running) {
        for (unsigned w = 0; w < r->n_workers; w++)
            worker_join(r->workers[w]);
        table_close_all(r->table);
        if (started)
            events_relay(r, "relay.stop");
    }
    /* After the links closed: their flows left the kernel with them. */
    if (r->table != NULL)
        table_set_kfwd(r->table, NULL);
    kfwd_free(r->kfwd);
    for (unsigned w = 0; w < r->n_workers; w++)
        worker_free(r->workers[w]);
    control_free(ctl);
    audit_close(r->audit);
    table_free(r->table);
    keyring_wipe(&r->keyring[0]);
    keyring_wipe(&r->keyring[1]);
    lockfile_set_release(&r->locks);
    if (tfd >= 0)
        close(tfd);
    if (sfd >= 0)
        close(sfd);
    if (epfd >= 0)
        close(epfd);
    return code;
}
