/* Legs: their loopback addresses on the thread's shared socket, their SRTP
 * sessions (test keys), and bringing them up against each kind of server. */
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "lt.h"
#include "quietroom/base/clock.h"
#include "quietroom/wire/creds.h"
#include "quietroom/wire/stun.h"

#define LT_SETUP_TRIES 20
#define LT_SETUP_WINDOW 256
/* On TCP a leg in the window is a connection whose leg the relay has not
 * yet bound, and the relay holds few of those at once (256 over all
 * clients: QR_TCP_UNAUTH_MAX): the threads' windows together stay at half
 * of that. */
#define LT_SETUP_WINDOW_TCP 128
#define LT_SETUP_WAIT_MS 100
#define LT_SOCKET_BUFFER (8 * 1024 * 1024)

uint64_t lt_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One socket for every leg of the thread: bound to the wildcard so that it
 * receives for all 127.T.x.y, but tied to the loopback device so that
 * nothing from outside reaches it. */
int lt_socket(struct lt_thread *t)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int one = 1, size = LT_SOCKET_BUFFER;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) != 0)
        fprintf(stderr, "loadtest: cannot tie the socket to lo (%s); it listens on all "
                        "interfaces, sends only to loopback\n",
                strerror(errno));
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        close(fd);
        return -1;
    }
    t->fd = fd;
    t->port = ntohs(sin.sin_port);
    return 0;
}

int lt_send_from(struct lt_thread *t, const struct lt_leg *leg, const union netaddr *to,
                 const void *buf, size_t len)
{
    char control[CMSG_SPACE(sizeof(struct in_pktinfo))] = {0};
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_name = (void *)&to->sa, .msg_namelen = netaddr_len(to),
                        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                        .msg_controllen = sizeof(control)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    struct in_pktinfo pi = {.ipi_spec_dst = leg->ip};

    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(pi));
    memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    return sendmsg(t->fd, &mh, 0) == (ssize_t)len ? 0 : -1;
}

struct lt_leg *lt_leg_by_ip(struct lt_thread *t, struct in_addr ip)
{
    const uint8_t *b = (const uint8_t *)&ip.s_addr;
    unsigned idx = (unsigned)b[2] << 8 | b[3];

    if (b[0] != 127 || b[1] != LT_NET_BASE + t->id || idx >= t->n_legs)
        return NULL;
    return &t->legs[idx];
}

int lt_recv_one(struct lt_thread *t, void *buf, size_t cap, int timeout_ms, struct lt_leg **leg,
                union netaddr *from)
{
    char control[CMSG_SPACE(sizeof(struct in_pktinfo))];
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr mh = {.msg_name = &from->sa, .msg_namelen = sizeof(*from), .msg_iov = &iov,
                        .msg_iovlen = 1, .msg_control = control,
                        .msg_controllen = sizeof(control)};
    struct pollfd p = {.fd = t->fd, .events = POLLIN};
    ssize_t n;

    *leg = NULL;
    if (poll(&p, 1, timeout_ms) != 1 || (n = recvmsg(t->fd, &mh, MSG_DONTWAIT)) < 0)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;

            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            *leg = lt_leg_by_ip(t, pi.ipi_addr);
        }
    }
    return (int)n;
}

/* Test keys: fixed per link and direction, so both ends agree. */
static int lt__srtp(srtp_t *s, uint32_t link, int side, bool outbound)
{
    uint8_t key[SRTP_AEAD_SALT_LEN + 16];
    srtp_policy_t p;

    memset(&p, 0, sizeof(p));
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(link * 31 + (uint32_t)side * 7 + i);
    srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtp);
    srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtcp);
    p.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
    p.key = key;
    p.window_size = 1024;
    return srtp_create(s, &p) == srtp_err_status_ok ? 0 : -1;
}

int lt_legs_init(struct lt_thread *t, unsigned first_link, unsigned links)
{
    t->n_legs = 2 * links;
    if (t->n_legs > LT_LEGS_PER_THREAD || (t->legs = calloc(t->n_legs, sizeof(*t->legs))) == NULL)
        return -1;
    for (unsigned i = 0; i < t->n_legs; i++) {
        struct lt_leg *l = &t->legs[i];
        uint32_t link = first_link + i / 2;
        int side = (int)(i % 2);
        uint8_t *b = (uint8_t *)&l->ip.s_addr;

        b[0] = 127;
        b[1] = (uint8_t)(LT_NET_BASE + t->id);
        b[2] = (uint8_t)(i >> 8);
        b[3] = (uint8_t)i;
        l->peer = &t->legs[i ^ 1];
        l->ssrc = link << 1 | (uint32_t)side;
        l->to = t->opt->server;
        l->tcp_fd = -1;
    }
    return 0;
}

/* SRTP sessions are made only when media is sent: Debian's libsrtp2 runs on
 * NSS, whose per-key bookkeeping grows with every session (a setup-only
 * run of tens of thousands of legs would spend its time there). */
int lt_legs_srtp(struct lt_thread *t, unsigned first_link)
{
    uint64_t give_up = lt_now_ns() + LT_SRTP_BUDGET_NS;

    for (unsigned i = 0; i < t->n_legs; i++) {
        struct lt_leg *l = &t->legs[i];
        uint32_t link = first_link + i / 2;
        int side = (int)(i % 2);

        if (lt__srtp(&l->tx, link, side, true) != 0 || lt__srtp(&l->rx, link, !side, false) != 0)
            return -1;
        if (i % 256 == 255 && lt_now_ns() > give_up)
            return -1;
    }
    return 0;
}

void lt_legs_free(struct lt_thread *t)
{
    lt_tcp_free(t);
    for (unsigned i = 0; t->legs != NULL && i < t->n_legs; i++) {
        if (t->legs[i].tx != NULL)
            srtp_dealloc(t->legs[i].tx);
        if (t->legs[i].rx != NULL)
            srtp_dealloc(t->legs[i].rx);
    }
    free(t->legs);
    t->legs = NULL;
}

/* --- relay: ICE connectivity checks with the relay's credentials ---------- */

static int lt__derive(struct lt_thread *t, struct hmac *h)
{
    uint32_t expires = clock_wall_s() + 3600;

    for (unsigned i = 0; i < t->n_legs; i += 2) {
        char sid[64];
        struct creds_link cl;

        snprintf(sid, sizeof(sid), "loadtest-%u-%u-%u", t->id, i / 2, (unsigned)getpid());
        if (creds_derive_link(&t->opt->keys, sid, 0, expires, h, &cl) != 0)
            return -1;
        for (int side = 0; side < 2; side++) {
            /* Same sizes (lt.h): whole NUL-terminated strings. */
            memcpy(t->legs[i + side].ufrag, cl.ufrag[side], sizeof(t->legs[0].ufrag));
            memcpy(t->legs[i + side].pwd, cl.pwd[side], sizeof(t->legs[0].pwd));
        }
    }
    return 0;
}

void lt_legs_check(struct lt_thread *t, struct lt_leg *l, struct hmac *sha1)
{
    char username[64];
    uint8_t req[256];
    struct stun_request r = {
        .username = username,
        .key = (const uint8_t *)l->pwd,
        .key_len = strlen(l->pwd),
        .has_priority = true,
        .priority = 0x7e0000ff,
        .use_candidate = true,
        .ice_controlling = true,
        .tiebreaker = l->ssrc,
        .fingerprint = true,
    };
    size_t n;

    snprintf(username, sizeof(username), "%s:lt%u", l->ufrag, l->ssrc);
    RAND_bytes(l->txid, sizeof(l->txid));
    memcpy(r.txid, l->txid, sizeof(l->txid));
    if ((n = stun_build_request(req, sizeof(req), &r, sha1)) == 0)
        return;
    /* RFC 6544: the same check on the leg's connection, framed. */
    if (t->opt->transport == LT_TRANSPORT_TCP)
        lt_tcp_send(t, l, req, n);
    else
        lt_send_from(t, l, &t->opt->server, req, n);
}

static void lt__check_answer(struct lt_leg *l, const uint8_t *buf, size_t len, struct hmac *sha1)
{
    struct stun_msg m;

    if (l == NULL || l->ready || stun_parse(buf, len, &m) != STUN_PARSE_OK ||
        m.cls != STUN_CLASS_SUCCESS || memcmp(m.txid, l->txid, sizeof(l->txid)) != 0 ||
        !stun_check_integrity(buf, &m, (const uint8_t *)l->pwd, strlen(l->pwd), sha1))
        return;
    l->ready = true;
}

/* Checks go out in a window of LT_SETUP_WINDOW legs at a time, each retried
 * after LT_SETUP_WAIT_MS: a burst of thousands would only overflow socket
 * buffers and measure the overflow. */
struct lt_window {
    unsigned leg[LT_SETUP_WINDOW];
    uint64_t due[LT_SETUP_WINDOW];
    uint8_t tries[LT_SETUP_WINDOW];
    unsigned n, next, failed;
};

/* Fills free window slots with the legs not yet started; on TCP a leg
 * connects as it enters, so no more than a window's connections are
 * being accepted at once. */
static void lt__window_fill(struct lt_thread *t, struct lt_window *w)
{
    unsigned room = t->opt->transport == LT_TRANSPORT_TCP ? LT_SETUP_WINDOW_TCP / t->opt->threads
                                                          : LT_SETUP_WINDOW;

    while (w->n < room && w->next < t->n_legs) {
        if (t->opt->transport == LT_TRANSPORT_TCP)
            lt_tcp_open(t, &t->legs[w->next]); /* a failure shows as a leg never ready */
        w->leg[w->n] = w->next++;
        w->due[w->n] = 0;
        w->tries[w->n] = 0;
        w->n++;
    }
}

/* (Re)sends what is due; drops legs that are ready or out of tries. */
static void lt__window_send(struct lt_thread *t, struct lt_window *w, struct hmac *sha1)
{
    uint64_t now = lt_now_ns();

    for (unsigned i = 0; i < w->n;) {
        struct lt_leg *l = &t->legs[w->leg[i]];

        if (l->ready || w->tries[i] == LT_SETUP_TRIES) {
            w->failed += !l->ready;
            w->n--;
            w->leg[i] = w->leg[w->n];
            w->due[i] = w->due[w->n];
            w->tries[i] = w->tries[w->n];
            continue;
        }
        if (w->due[i] <= now) {
            lt_legs_check(t, l, sha1);
            w->tries[i]++;
            w->due[i] = now + LT_SETUP_WAIT_MS * 1000000ull;
        }
        i++;
    }
}

static void lt__tcp_answer(struct lt_thread *t, struct lt_leg *l, uint8_t *pkt, size_t len,
                           void *sha1)
{
    (void)t;
    lt__check_answer(l, pkt, len, sha1);
}

/* Takes every answer waiting (wait_ms for the first) on either transport. */
static void lt__setup_receive(struct lt_thread *t, struct hmac *sha1, int wait_ms)
{
    uint8_t buf[LT_PACKET_MAX];
    union netaddr from;
    struct lt_leg *l;
    int n;

    if (t->opt->transport == LT_TRANSPORT_TCP) {
        while (lt_tcp_receive(t, wait_ms, lt__tcp_answer, sha1) > 0)
            wait_ms = 0;
        return;
    }
    while ((n = lt_recv_one(t, buf, sizeof(buf), wait_ms, &l, &from)) > 0) {
        if (l != NULL && !l->ready)
            lt__check_answer(l, buf, (size_t)n, sha1);
    }
}

static int lt__relay_setup(struct lt_thread *t)
{
    struct hmac *sha1 = hmac_new(HMAC_SHA1), *sha256 = hmac_new(HMAC_SHA256);
    struct lt_window *w = calloc(1, sizeof(*w));
    int rc = -1;

    if (sha1 == NULL || sha256 == NULL || w == NULL || lt__derive(t, sha256) != 0)
        goto out;
    for (lt__window_fill(t, w); w->n > 0; lt__window_fill(t, w)) {
        lt__window_send(t, w, sha1);
        /* Take every answer waiting before sending more. */
        lt__setup_receive(t, sha1, w->n > 0 ? 2 : 0);
        lt__window_send(t, w, sha1);
    }
    t->setup_failed = w->failed;
    rc = w->failed == 0 ? 0 : -1;
out:
    free(w);
    hmac_free(sha1);
    hmac_free(sha256);
    return rc;
}

/* --- minfwd: it learns each leg from the first packet it sees ------------- */

static int lt__minfwd_setup(struct lt_thread *t)
{
    uint8_t hello[12] = {0x80, 0x7f};

    for (unsigned i = 0; i < t->n_legs; i++) {
        hello[8] = (uint8_t)(t->legs[i].ssrc >> 24);
        hello[9] = (uint8_t)(t->legs[i].ssrc >> 16);
        hello[10] = (uint8_t)(t->legs[i].ssrc >> 8);
        hello[11] = (uint8_t)t->legs[i].ssrc;
        lt_send_from(t, &t->legs[i], &t->opt->server, hello, sizeof(hello));
    }
    /* Let the hellos arrive, then drop whatever was forwarded of them. */
    usleep(100 * 1000);
    for (;;) {
        uint8_t buf[LT_PACKET_MAX];
        union netaddr from;
        struct lt_leg *l;

        if (lt_recv_one(t, buf, sizeof(buf), 50, &l, &from) < 0)
            break;
    }
    for (unsigned i = 0; i < t->n_legs; i++)
        t->legs[i].ready = true;
    return 0;
}

static int lt__direct_setup(struct lt_thread *t)
{
    for (unsigned i = 0; i < t->n_legs; i++) {
        struct lt_leg *l = &t->legs[i];

        memset(&l->to, 0, sizeof(l->to));
        l->to.in.sin_family = AF_INET;
        l->to.in.sin_addr = l->peer->ip;
        l->to.in.sin_port = htons(t->port);
        l->ready = true;
    }
    return 0;
}

int lt_legs_setup(struct lt_thread *t)
{
    uint64_t start = lt_now_ns();
    int rc;

    switch (t->opt->mode) {
    case LT_MODE_RELAY:
        rc = lt__relay_setup(t);
        break;
    case LT_MODE_MINFWD:
        rc = lt__minfwd_setup(t);
        break;
    case LT_MODE_TURN:
        rc = lt_turn_setup(t);
        break;
    default:
        rc = lt__direct_setup(t);
        break;
    }
    t->setup_ns = lt_now_ns() - start;
    return rc;
}
