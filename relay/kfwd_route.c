/* RTM_GETROUTE for the kernel path's egress (kfwd_route.h): one request,
 * one answer, with the kernel's own rtnetlink macros. */
#include "kfwd_route.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "quietroom/base/limits.h"

int kfwd_route_open(void)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = QR_KFWD_ROUTE_WAIT_MS * 1000};
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        bind(fd, (struct sockaddr *)&local, sizeof(local)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int kfwd_route_watch(void)
{
    static const int groups[] = {RTNLGRP_LINK,      RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE,
                                 RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE};
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    int nexthop = RTNLGRP_NEXTHOP;

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&local, sizeof(local)) != 0)
        goto fail;
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
        if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &groups[i], sizeof(int)) != 0)
            goto fail;
    /* Nexthop objects (ip nexthop) since 5.3: heard where there are. */
    setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &nexthop, sizeof(nexthop));
    return fd;
fail:
    close(fd);
    return -1;
}

int kfwd_route_changed(int fd)
{
    uint8_t buf[4096];
    int changed = 0;

    /* What changed does not matter: each flow's route is asked again. A
     * storm of notices (a full routing table loading) must not hold the
     * caller: the rest wait for the next call. */
    for (int i = 0; i < QR_KFWD_WATCH_READS; i++) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

        if (n > 0 || (n < 0 && errno == ENOBUFS))
            changed = 1;
        else if (!(n < 0 && errno == EINTR))
            break;
    }
    return changed;
}

static void kfwd_route__attr(struct nlmsghdr *h, unsigned short type, const void *data,
                             size_t len)
{
    struct rtattr *a = (struct rtattr *)((uint8_t *)h + NLMSG_ALIGN(h->nlmsg_len));

    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    memcpy(RTA_DATA(a), data, len);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

size_t kfwd_route_request(uint8_t *buf, size_t cap, uint32_t seq, int family, const uint8_t *src,
                          const uint8_t *dst)
{
    size_t alen = family == AF_INET ? 4 : 16;
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    struct rtmsg *rt;

    if (cap < NLMSG_SPACE(sizeof(*rt)) + 2 * RTA_SPACE(16) || (family != AF_INET &&
                                                                  family != AF_INET6))
        return 0;
    memset(buf, 0, NLMSG_SPACE(sizeof(*rt)));
    h->nlmsg_len = NLMSG_LENGTH(sizeof(*rt));
    h->nlmsg_type = RTM_GETROUTE;
    h->nlmsg_flags = NLM_F_REQUEST;
    h->nlmsg_seq = seq;
    rt = NLMSG_DATA(h);
    rt->rtm_family = (unsigned char)family;
    rt->rtm_dst_len = (unsigned char)(alen * 8);
    rt->rtm_src_len = (unsigned char)(alen * 8);
    kfwd_route__attr(h, RTA_DST, dst, alen);
    kfwd_route__attr(h, RTA_SRC, src, alen);
    return h->nlmsg_len;
}

int kfwd_route_parse(const uint8_t *buf, size_t len, uint32_t seq, struct kfwd_route *out)
{
    const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
    const struct rtmsg *rt;
    const struct rtattr *a;
    int alen;

    if (len < NLMSG_HDRLEN || !NLMSG_OK(h, len) || h->nlmsg_seq != seq) {
        errno = EBADMSG;
        return -1;
    }
    if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
        /* The kernel's answer for no route: ENETUNREACH, EHOSTUNREACH... */
        const struct nlmsgerr *e = NLMSG_DATA(h);

        errno = e->error < 0 ? -e->error : EBADMSG;
        return -1;
    }
    if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(*rt))) {
        errno = EBADMSG;
        return -1;
    }
    rt = NLMSG_DATA(h);
    memset(out, 0, sizeof(*out));
    out->local = rt->rtm_type == RTN_LOCAL;
    if (rt->rtm_type != RTN_UNICAST && rt->rtm_type != RTN_LOCAL) {
        errno = EHOSTUNREACH; /* unreachable, blackhole, prohibit... */
        return -1;
    }
    alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*rt)));
    for (a = RTM_RTA(rt); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
        if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= sizeof(int))
            memcpy(&out->ifindex, RTA_DATA(a), sizeof(int));
    }
    if (out->ifindex <= 0) {
        errno = EBADMSG;
        return -1;
    }
    return 0;
}

int kfwd_route_get(int fd, uint32_t seq, int family, const uint8_t *src, const uint8_t *dst,
                   struct kfwd_route *out)
{
    static const struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    uint8_t req[128], ans[1024];
    size_t n;
    ssize_t got;

    if ((n = kfwd_route_request(req, sizeof(req), seq, family, src, dst)) == 0 ||
        sendto(fd, req, n, 0, (const struct sockaddr *)&kernel, sizeof(kernel)) != (ssize_t)n)
        return -1;
    for (int tries = 0; tries < QR_KFWD_ROUTE_SKIP; tries++) {
        const struct nlmsghdr *h = (const struct nlmsghdr *)ans;

        if ((got = recv(fd, ans, sizeof(ans), 0)) < 0)
            return -1;
        if ((size_t)got >= NLMSG_HDRLEN && h->nlmsg_seq != seq)
            continue;
        return kfwd_route_parse(ans, (size_t)got, seq, out);
    }
    errno = EAGAIN;
    return -1;
}
