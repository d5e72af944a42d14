/* The worker loop: epoll_wait, drain each readable socket with recvmmsg,
 * classify every datagram by its first byte, answer STUN, forward the rest,
 * and send what the batch produced with one sendmmsg per socket. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "forward.h"
#include "ice.h"
#include "quietroom/base/clock.h"
#include "tcp.h"
#include "quietroom/base/hindex.h"
#include "quietroom/wire/demux.h"
#include "quietroom/base/log.h"

int worker_socket(const union netaddr *addr)
{
    int one = 1, size = QR_SOCKET_BUFFER;
    int fd = socket(addr->sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (addr->sa.sa_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
        goto fail;
    /* Best effort: the kernel caps these at net.core.[rw]mem_max. */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    if (bind(fd, &addr->sa, netaddr_len(addr)) != 0)
        goto fail;
    return fd;
fail:
    {
        int saved = errno;

        close(fd);
        errno = saved;
    }
    return -1;
}

static int worker__sendmmsg(void *ctx, uint32_t listen, struct mmsghdr *msg, unsigned n)
{
    struct worker *w = ctx;

    return sendmmsg(w->fd[listen], msg, n, MSG_DONTWAIT);
}

void worker_tx_flush(struct worker *w, uint32_t listen)
{
    struct worker_tx *tx;
    unsigned i = 0;

    if (leg_route_is_tcp(listen))
        return;
    tx = &w->tx[listen];
    while (i < tx->n) {
        int sent = w->send(w->send_ctx, listen, &tx->msg[i], tx->n - i);

        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
            /* Socket buffer full: the rest of the batch is lost, counted. */
            stat_add(&w->stats, STAT_DROP_SEND_FAILED, tx->n - i);
            break;
        }
        if (sent < 0) {
            /* This one destination failed (EPERM from a firewall, say). */
            stat_add(&w->stats, STAT_DROP_SEND_FAILED, 1);
            i++;
            continue;
        }
        for (int j = 0; j < sent; j++, i++) {
            size_t len = tx->iov[i].iov_len;

            stat_add(&w->stats, STAT_FWD_PACKETS, tx->from[i] != NULL);
            stat_add(&w->stats, STAT_FWD_BYTES, tx->from[i] != NULL ? len : 0);
            if (tx->from[i] != NULL) {
                link_count32(&tx->from[i]->fwd_packets, 1);
                link_count64(&tx->from[i]->fwd_bytes, len);
            }
        }
    }
    tx->n = 0;
}

void worker_tx_add(struct worker *w, uint32_t listen, const union netaddr *to, uint8_t *buf,
                   size_t len, struct leg *from)
{
    struct worker_tx *tx;
    unsigned n;

    if (leg_route_is_tcp(listen)) {
        tcp_send(w, listen, to, buf, len, from);
        return;
    }
    tx = &w->tx[listen];
    if (tx->n == QR_BATCH)
        worker_tx_flush(w, listen);
    n = tx->n++;
    tx->addr[n] = *to;
    tx->iov[n].iov_base = buf;
    tx->iov[n].iov_len = len;
    tx->from[n] = from;
    tx->msg[n].msg_hdr.msg_name = &tx->addr[n];
    tx->msg[n].msg_hdr.msg_namelen = netaddr_len(to);
    tx->msg[n].msg_hdr.msg_iov = &tx->iov[n];
    tx->msg[n].msg_hdr.msg_iovlen = 1;
}

uint64_t worker_counter(const struct worker *w, enum stat_id id)
{
    return atomic_load_explicit(&w->stats.v[id], memory_order_relaxed);
}

bool worker_handle_from(struct worker *w, uint32_t route, const union netaddr *src,
                        uint8_t *buf, size_t len, const struct worker_now *now,
                        struct ice_peer *peer)
{
    enum demux_class cls;

    stat_add(&w->stats, STAT_RX_PACKETS, 1);
    stat_add(&w->stats, STAT_RX_BYTES, len);
    switch ((cls = demux_classify(buf, len))) {
    case DEMUX_STUN:
        return ice_handle(w, route, src, buf, len, now, peer);
    case DEMUX_DTLS:
    case DEMUX_RTP:
    case DEMUX_RTCP:
        forward_packet(w, route, src, buf, len, cls, now);
        break;
    case DEMUX_TOO_SHORT:
        stat_add(&w->stats, STAT_DROP_MALFORMED, 1);
        break;
    default:
        stat_add(&w->stats, STAT_DROP_PROTOCOL, 1);
        break;
    }
    return false;
}

void worker_handle(struct worker *w, uint32_t listen, const union netaddr *src, uint8_t *buf,
                   size_t len, const struct worker_now *now)
{
    worker_handle_from(w, listen, src, buf, len, now, NULL);
}

void worker_tx_flush_all(struct worker *w)
{
    for (unsigned l = 0; l < w->n_fd; l++) {
        if (w->tx[l].n > 0)
            worker_tx_flush(w, l);
    }
}

static void worker__now(struct worker_now *now)
{
    now->mono_us = clock_mono_us();
    now->mono_ms = now->mono_us / 1000;
    now->wall_ms = clock_wall_ms();
}

/* Handles n received datagrams and sends what they produced. The batch's
 * time is read once; the time spent is the worker's busy time. A datagram
 * the kernel truncated is counted as received and dropped here, since
 * only the receive call knows about it. */
static void worker__batch(struct worker *w, uint32_t listen, int n)
{
    struct worker_now now;

    worker__now(&now);
    for (int i = 0; i < n; i++) {
        size_t len = w->rx_msg[i].msg_len;

        if ((w->rx_msg[i].msg_hdr.msg_flags & MSG_TRUNC) != 0) {
            stat_add(&w->stats, STAT_RX_PACKETS, 1);
            stat_add(&w->stats, STAT_RX_BYTES, len);
            stat_add(&w->stats, STAT_DROP_TRUNCATED, 1);
            continue;
        }
        worker_handle(w, listen, &w->rx_addr[i], w->rx_buf[i], len, &now);
    }
    worker_tx_flush_all(w);
    stat_add(&w->stats, STAT_BUSY_NS, clock_mono_us() * 1000 - now.mono_us * 1000);
}

static void worker__rx_reset(struct worker *w)
{
    for (unsigned i = 0; i < QR_BATCH; i++) {
        w->rx_msg[i].msg_hdr.msg_namelen = sizeof(w->rx_addr[i]);
        w->rx_msg[i].msg_hdr.msg_flags = 0;
    }
}

/* Drains one socket, a bounded number of batches per wake-up so that other
 * sockets and timers get their turn. */
static void worker__receive(struct worker *w, uint32_t listen)
{
    for (int round = 0; round < QR_BATCHES_PER_WAKE; round++) {
        int n;

        worker__rx_reset(w);
        n = recvmmsg(w->fd[listen], w->rx_msg, QR_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                log_warn("worker %u: recvmmsg: %s", w->id, strerror(errno));
            return;
        }
        worker__batch(w, listen, n);
        if (n < QR_BATCH)
            return;
    }
}

/* Between batches a worker holds no link: a quiescent point. */
static void worker__quiescent(struct worker *w)
{
    atomic_store_explicit(&w->quiescent, atomic_load(&w->quiescent) + 1, memory_order_release);
}

/* One event of the TCP side; its time spent is busy time too. */
static void worker__tcp_event(struct worker *w, uint64_t tag, uint32_t events)
{
    struct worker_now now;

    worker__now(&now);
    tcp_event(w, tag, events, &now);
    stat_add(&w->stats, STAT_BUSY_NS, clock_mono_us() * 1000 - now.mono_us * 1000);
}

/* Several sockets (IPv4 and IPv6, say, or TCP connections): epoll tells
 * which is readable. */
static void worker__loop_epoll(struct worker *w)
{
    struct epoll_event ev[QR_EPOLL_EVENTS];

    while (!atomic_load_explicit(&w->relay->stopping, memory_order_acquire)) {
        int n;

        worker__quiescent(w);
        n = epoll_wait(w->epfd, ev, QR_EPOLL_EVENTS, QR_WORKER_TICK_MS);
        for (int i = 0; i < n; i++) {
            uint64_t tag = ev[i].data.u64;

            if (TCP_TAG_IS(tag))
                worker__tcp_event(w, tag, ev[i].events);
            else
                worker__receive(w, (uint32_t)tag);
        }
        if (w->tcp != NULL) {
            struct worker_now now;

            worker__now(&now);
            tcp_after(w, &now);
        }
    }
}

/* One socket, the usual case: a blocking recvmmsg that returns as soon as
 * one datagram is there (MSG_WAITFORONE) saves an epoll_wait per wake-up.
 * The socket's receive timeout wakes the worker for its quiescent points. */
static void worker__loop_single(struct worker *w)
{
    while (!atomic_load_explicit(&w->relay->stopping, memory_order_acquire)) {
        int n;

        worker__quiescent(w);
        worker__rx_reset(w);
        n = recvmmsg(w->fd[0], w->rx_msg, QR_BATCH, MSG_WAITFORONE, NULL);
        if (n > 0)
            worker__batch(w, 0, n);
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            log_warn("worker %u: recvmmsg: %s", w->id, strerror(errno));
    }
}

static void *worker__main(void *arg)
{
    struct worker *w = arg;

    if (w->n_fd == 1 && w->tcp == NULL)
        worker__loop_single(w);
    else
        worker__loop_epoll(w);
    return NULL;
}

/* For the single-socket loop: blocking reads that give up after a tick. */
static int worker__blocking(int fd)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = QR_WORKER_TICK_MS * 1000};
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
        return -1;
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* What every worker has: receive vectors, hash contexts, the address map.
 * Takes fds (n_fd times -1 when fds is NULL) in every case: on failure they
 * are closed. */
static struct worker *worker__alloc(struct relay *r, unsigned id, const int *fds, unsigned n_fd)
{
    struct worker *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        for (unsigned i = 0; fds != NULL && i < n_fd; i++)
            close(fds[i]); /* ours whatever happens: the caller forgets them */
        return NULL;
    }
    w->relay = r;
    w->id = id;
    w->epfd = -1;
    for (unsigned i = 0; i < n_fd; i++)
        w->fd[w->n_fd++] = fds != NULL ? fds[i] : -1;
    w->send = worker__sendmmsg;
    w->send_ctx = w;
    for (unsigned i = 0; i < QR_BATCH; i++) {
        w->rx_iov[i].iov_base = w->rx_buf[i];
        w->rx_iov[i].iov_len = QR_PACKET_MAX;
        w->rx_msg[i].msg_hdr.msg_iov = &w->rx_iov[i];
        w->rx_msg[i].msg_hdr.msg_iovlen = 1;
        w->rx_msg[i].msg_hdr.msg_name = &w->rx_addr[i];
    }
    if ((w->sha1 = hmac_new(HMAC_SHA1)) == NULL || (w->sha256 = hmac_new(HMAC_SHA256)) == NULL)
        goto fail;
    w->map = table_addrmap(r->table);
    w->errors.seed = hindex_mix(r->seed ^ (0x51ed27a9ull + id));
    return w;
fail:
    worker_free(w);
    return NULL;
}

struct worker *worker_new_detached(struct relay *r, unsigned id, unsigned n_listen,
                                   worker_send_fn send, void *ctx)
{
    struct worker *w = n_listen <= QR_LISTEN_MAX ? worker__alloc(r, id, NULL, n_listen) : NULL;

    if (w != NULL) {
        w->send = send;
        w->send_ctx = ctx;
    }
    return w;
}

static void worker__close_all(const int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

struct worker *worker_new(struct relay *r, unsigned id, const int *fds, unsigned n_fd,
                          const int *tcp_fds, unsigned n_tcp)
{
    struct worker *w = worker__alloc(r, id, fds, n_fd);

    if (w == NULL) {
        worker__close_all(tcp_fds, n_tcp);
        return NULL;
    }
    if (w->n_fd == 1 && n_tcp == 0) {
        if (worker__blocking(w->fd[0]) != 0)
            goto fail;
        return w;
    }
    if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        goto fail;
    for (unsigned i = 0; i < w->n_fd; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};

        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->fd[i], &ev) != 0)
            goto fail;
    }
    if (n_tcp > 0 && tcp_worker_new(w, w->epfd, tcp_fds, n_tcp) == NULL) {
        n_tcp = 0; /* closed by tcp_worker_new */
        goto fail;
    }
    return w;
fail:
    worker__close_all(tcp_fds, n_tcp);
    worker_free(w);
    return NULL;
}

int worker_start(struct worker *w)
{
    return pthread_create(&w->thread, NULL, worker__main, w) == 0 ? 0 : -1;
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}

void worker_free(struct worker *w)
{
    if (w == NULL)
        return;
    tcp_worker_free(w);
    if (w->epfd >= 0)
        close(w->epfd);
    for (unsigned i = 0; i < w->n_fd; i++) {
        if (w->fd[i] >= 0)
            close(w->fd[i]);
    }
    hmac_free(w->sha256);
    hmac_free(w->sha1);
    free(w);
}
