/* Loading and attaching the kernel path, and giving up the privileges it
 * took. TCX only (kernel 6.6 and later): a TCX attachment is a bpf_link the
 * relay holds, so it goes away with the process, even after kill -9. A
 * clsact filter would stay attached to the interface and keep forwarding
 * flows of a dead relay, revoked sessions included. */
#include "kfwd_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "quietroom/base/log.h"

/* linux/bpf.h of kernels >= 6.6; Debian 12's headers are older. */
#define KFWD_TCX_INGRESS 46

/* The program's object, built by clang -target bpf and embedded
 * (relay/CMakeLists.txt, cmake/embed.cmake). */
extern const unsigned char kfwd_bpf_obj[];
extern const size_t kfwd_bpf_obj_len;

static int kfwd__libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* libbpf's messages (which program, which map, the verifier's reason),
 * for --log-level debug: the relay's own line says what failed. */
static int kfwd__libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    if (level == LIBBPF_DEBUG)
        return 0;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    if (n > 0 && line[n - 1] == '\n')
        line[n - 1] = '\0';
    log_debug("libbpf: %s", line);
    return 0;
}

static enum kfwd_reason kfwd__fail(enum kfwd_reason r, char *err, size_t errlen, const char *fmt,
                                   ...) __attribute__((format(printf, 4, 5)));

static enum kfwd_reason kfwd__fail(enum kfwd_reason r, char *err, size_t errlen, const char *fmt,
                                   ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return r;
}

static bool kfwd__is_loopback4(const union netaddr *a)
{
    return a->sa.sa_family == AF_INET && (ntohl(a->in.sin_addr.s_addr) >> 24) == 127;
}

static bool kfwd__holds(const struct ifaddrs *ifa, const union netaddr *a)
{
    if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != a->sa.sa_family)
        return false;
    if (a->sa.sa_family == AF_INET)
        return ((const struct sockaddr_in *)ifa->ifa_addr)->sin_addr.s_addr ==
               a->in.sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr, &a->in6.sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}

/* The interface holding a (any 127/8 address is loopback's). */
static const struct ifaddrs *kfwd__iface_of(const struct ifaddrs *all, const union netaddr *a)
{
    for (const struct ifaddrs *ifa = all; ifa != NULL; ifa = ifa->ifa_next) {
        if (kfwd__is_loopback4(a) ? (ifa->ifa_flags & IFF_LOOPBACK) &&
                                        ifa->ifa_addr != NULL &&
                                        ifa->ifa_addr->sa_family == AF_INET
                                  : kfwd__holds(ifa, a))
            return ifa;
    }
    return NULL;
}

static int kfwd__add_iface(struct kfwd *kf, const struct ifaddrs *ifa)
{
    int ifindex = (int)if_nametoindex(ifa->ifa_name);

    if (ifindex == 0)
        return 0;
    for (unsigned i = 0; i < kf->n_ifaces; i++) {
        if (kf->ifaces[i].ifindex == ifindex)
            return ifindex;
    }
    kf->ifaces[kf->n_ifaces] = (struct kfwd_iface){
        .ifindex = ifindex, .link_fd = -1, .loopback = (ifa->ifa_flags & IFF_LOOPBACK) != 0};
    snprintf(kf->ifaces[kf->n_ifaces].name, IF_NAMESIZE, "%s", ifa->ifa_name);
    kf->n_ifaces++;
    return ifindex;
}

/* Where each listen address is; returns how many are eligible. */
static unsigned kfwd__find_ifaces(struct kfwd *kf, const union netaddr *listen, unsigned n)
{
    struct ifaddrs *all = NULL;
    unsigned eligible = 0;

    if (getifaddrs(&all) != 0)
        return 0;
    kf->n_listen = n;
    for (unsigned l = 0; l < n; l++) {
        struct kfwd_listen *kl = &kf->listen[l];
        const struct ifaddrs *ifa;

        if (netaddr_is_wildcard(&listen[l]) || (ifa = kfwd__iface_of(all, &listen[l])) == NULL)
            continue;
        if ((kl->ifindex = kfwd__add_iface(kf, ifa)) == 0)
            continue;
        kl->family = (uint8_t)listen[l].sa.sa_family;
        if (kl->family == AF_INET) {
            memcpy(kl->addr, &listen[l].in.sin_addr, 4);
            kl->port = listen[l].in.sin_port;
        } else {
            memcpy(kl->addr, &listen[l].in6.sin6_addr, 16);
            kl->port = listen[l].in6.sin6_port;
        }
        kl->eligible = true;
        eligible++;
    }
    freeifaddrs(all);
    return eligible;
}

static enum kfwd_reason kfwd__load(struct kfwd *kf, uint32_t max_links, char *err, size_t errlen)
{
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "kfwd");
    struct bpf_map *map;
    int rc;

    kf->obj = bpf_object__open_mem(kfwd_bpf_obj, kfwd_bpf_obj_len, &opts);
    if (kf->obj == NULL)
        return kfwd__fail(KFWD_REASON_LOAD_FAILED, err, errlen, "cannot open the program: %s",
                          strerror(errno));
    map = bpf_object__find_map_by_name(kf->obj, "kfwd_flows");
    if (map == NULL || bpf_map__set_max_entries(map, 2 * max_links) != 0)
        return kfwd__fail(KFWD_REASON_LOAD_FAILED, err, errlen, "the program has no flow map");
    if ((rc = bpf_object__load(kf->obj)) != 0) {
        rc = -rc;
        return kfwd__fail(rc == EPERM || rc == EACCES ? KFWD_REASON_NO_PRIVILEGES
                          : rc == ENOSYS             ? KFWD_REASON_UNSUPPORTED
                                                     : KFWD_REASON_LOAD_FAILED,
                          err, errlen, "cannot load the program: %s", strerror(rc));
    }
    kf->map_fd = bpf_map__fd(map);
    return KFWD_REASON_NONE;
}

static enum kfwd_reason kfwd__attach(struct kfwd *kf, char *err, size_t errlen)
{
    int prog_fd = kfwd__prog_fd(kf);
    size_t off = 0;

    if (prog_fd < 0)
        return kfwd__fail(KFWD_REASON_LOAD_FAILED, err, errlen, "the program is missing");
    for (unsigned i = 0; i < kf->n_ifaces; i++) {
        struct kfwd_iface *f = &kf->ifaces[i];

        f->link_fd = bpf_link_create(prog_fd, f->ifindex, (enum bpf_attach_type)KFWD_TCX_INGRESS,
                                     NULL);
        if (f->link_fd < 0) {
            int e = errno;

            return kfwd__fail(e == EPERM || e == EACCES ? KFWD_REASON_NO_PRIVILEGES
                              : e == EINVAL || e == EOPNOTSUPP ? KFWD_REASON_UNSUPPORTED
                                                               : KFWD_REASON_ATTACH_FAILED,
                              err, errlen, "cannot attach to %s with TCX (kernel 6.6 or later): %s",
                              f->name, strerror(e));
        }
        off += (size_t)snprintf(kf->names + off, sizeof(kf->names) - off, "%s%s",
                                i > 0 ? ", " : "", f->name);
    }
    return KFWD_REASON_NONE;
}

struct kfwd *kfwd__open(const union netaddr *listen, unsigned n, uint32_t max_links,
                        enum kfwd_reason *reason, char *err, size_t errlen)
{
    struct kfwd *kf;

    err[0] = '\0';
    if ((kf = calloc(1, sizeof(*kf))) == NULL) {
        *reason = kfwd__fail(KFWD_REASON_LOAD_FAILED, err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&kf->pull_lock, NULL);
    kf->map_fd = -1;
    kf->route_fd = -1;
    kf->watch_fd = -1;
    kf->max_links = max_links;
    if ((kf->route_fd = kfwd_route_open()) < 0) {
        *reason = kfwd__fail(KFWD_REASON_LOAD_FAILED, err, errlen,
                             "cannot open a netlink route socket: %s", strerror(errno));
        goto fail;
    }
    /* Without it flows keep the route they were installed with until their
     * link moves or binds again, as before route changes were followed. */
    if ((kf->watch_fd = kfwd_route_watch()) < 0)
        log_warn("kernel path: cannot hear of route changes (%s); a flow keeps its route "
                 "until its link moves", strerror(errno));
    libbpf_set_print(kfwd__libbpf_log);
    if (kfwd__find_ifaces(kf, listen, n) == 0) {
        *reason = kfwd__fail(KFWD_REASON_NO_INTERFACE, err, errlen,
                             "no listen address is an address of an interface (a wildcard "
                             "address stays on the sockets)");
        goto fail;
    }
    kf->installed = calloc(2 * (size_t)max_links, sizeof(*kf->installed));
    kf->installed_epoch = calloc(2 * (size_t)max_links, sizeof(*kf->installed_epoch));
    kf->snap_keys = calloc(2 * (size_t)max_links, sizeof(*kf->snap_keys));
    kf->snap_values = calloc(2 * (size_t)max_links, sizeof(*kf->snap_values));
    if (kf->installed == NULL || kf->installed_epoch == NULL || kf->snap_keys == NULL ||
        kf->snap_values == NULL) {
        *reason = kfwd__fail(KFWD_REASON_LOAD_FAILED, err, errlen, "out of memory");
        goto fail;
    }
    if ((*reason = kfwd__load(kf, max_links, err, errlen)) != KFWD_REASON_NONE)
        goto fail;
    return kf;
fail:
    kfwd_free(kf);
    return NULL;
}

int kfwd__prog_fd(const struct kfwd *kf)
{
    struct bpf_program *prog = bpf_object__find_program_by_name(kf->obj, "kfwd_ingress");

    return prog != NULL ? bpf_program__fd(prog) : -1;
}

struct kfwd *kfwd_start(enum kfwd_mode mode, const union netaddr *listen, unsigned n,
                        uint32_t max_links, enum kfwd_reason *reason, char *err, size_t errlen)
{
    struct kfwd *kf;

    if (mode == KFWD_OFF) {
        err[0] = '\0';
        *reason = KFWD_REASON_OFF;
        return NULL;
    }
    if ((kf = kfwd__open(listen, n, max_links, reason, err, errlen)) == NULL)
        return NULL;
    if ((*reason = kfwd__attach(kf, err, errlen)) != KFWD_REASON_NONE) {
        kfwd_free(kf);
        return NULL;
    }
    return kf;
}

void kfwd_bound(struct kfwd *kf, const union netaddr *listen, unsigned n)
{
    for (unsigned l = 0; l < n && l < kf->n_listen; l++)
        kf->listen[l].port =
            listen[l].sa.sa_family == AF_INET ? listen[l].in.sin_port : listen[l].in6.sin6_port;
}

void kfwd_free(struct kfwd *kf)
{
    if (kf == NULL)
        return;
    for (unsigned i = 0; i < kf->n_ifaces; i++) {
        if (kf->ifaces[i].link_fd >= 0)
            close(kf->ifaces[i].link_fd);
    }
    bpf_object__close(kf->obj);
    if (kf->route_fd >= 0)
        close(kf->route_fd);
    if (kf->watch_fd >= 0)
        close(kf->watch_fd);
    free(kf->snap_values);
    free(kf->snap_keys);
    free(kf->installed_epoch);
    free(kf->installed);
    pthread_mutex_destroy(&kf->pull_lock);
    free(kf);
}
